/* sae_cfg.c: SAELens cfg.json in every format version: flat v3–v5 files through the renames and
 * defaults of SAELens 6's handle_pre_6_0_config, v6 files with their metadata object; the check
 * of an SAE's hook against a model; and cfg.json output (format 5 or 6) for sae_export.
 * Does not touch weights (sae.c) and never guesses: a field of the wrong type, an unknown
 * architecture, normalization or hook is an error naming the file and the field. */
#include <errno.h>     // defines: errno
#include <jansson.h>   // defines: json_loads, json_object_get, json_dumps
#include <limits.h>    // defines: INT_MAX
#include <math.h>      // defines: floor, isfinite
#include <stdarg.h>    // defines: va_list
#include <stdio.h>     // defines: snprintf, fopen
#include <stdlib.h>    // defines: malloc, free, strtol
#include <string.h>    // defines: strcmp, strstr, strdup

#include "engine/model.h" // defines: PROC_* flags
#include "engine/sae.h"

static const char *const arch_names[] = {"standard", "gated", "jumprelu", "topk", "transcoder", "skip_transcoder",
                                         "jumprelu_transcoder"};
static const char *const norm_names[] = {"none", "expected_average_only_in", "constant_norm_rescale", "layer_norm"};

const char *sae_arch_name(sae_arch a)
{
    return (unsigned)a < sizeof arch_names / sizeof *arch_names ? arch_names[a] : "?";
}

const char *sae_norm_name(sae_norm n)
{
    return (unsigned)n < sizeof norm_names / sizeof *norm_names ? norm_names[n] : "?";
}

static int is_transcoder(sae_arch a)
{
    return a == SAE_TRANSCODER || a == SAE_SKIP_TRANSCODER || a == SAE_JUMPRELU_TRANSCODER;
}

/* ---- parsing ---- */

typedef struct pctx {
    json_t *root, *meta;   /* meta: the v6 metadata object, or NULL */
    int v6;
    const char *label;
    char *err;
    size_t errlen;
} pctx;

static int pfail(pctx *p, const char *field, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int pfail(pctx *p, const char *field, const char *fmt, ...)
{
    char msg[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (field) snprintf(p->err, p->errlen, "%s: field '%s': %s", p->label, field, msg);
    else snprintf(p->err, p->errlen, "%s: %s", p->label, msg);
    return -1;
}

/* v6 keeps the LLM fields in metadata, older files at the top level; either file may carry a
 * stray copy in the other place, so look in both, the format's own place first. alias: the
 * pre-6 name SAELens renames (hook_point → hook_name, …). *found: the key as written. */
static json_t *lookup(const pctx *p, const char *key, const char *alias, const char **found)
{
    json_t *first = p->v6 && p->meta ? p->meta : p->root, *second = first == p->root ? p->meta : p->root;
    const char *keys[2] = {key, alias};
    for (int w = 0; w < 2; w++) {
        json_t *o = w ? second : first;
        if (!o) continue;
        for (int i = 0; i < 2; i++) {
            json_t *v = keys[i] ? json_object_get(o, keys[i]) : NULL;
            if (v) {
                *found = keys[i];
                return v;
            }
        }
    }
    *found = key;
    return NULL;
}

/* The getters return 1 when the field holds a value, 0 when it is absent or null (the caller's
 * default stands), -1 on a type error (err set). */
static int get_int(pctx *p, const char *key, const char *alias, long long *out)
{
    const char *k;
    json_t *v = lookup(p, key, alias, &k);
    if (!v || json_is_null(v)) return 0;
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return 1;
    }
    /* Some writers dump integers as 64.0. */
    if (json_is_real(v) && floor(json_real_value(v)) == json_real_value(v) && fabs(json_real_value(v)) < 1e15) {
        *out = (long long)json_real_value(v);
        return 1;
    }
    return pfail(p, k, "expected an integer");
}

static int get_bool(pctx *p, const char *key, const char *alias, int *out)
{
    const char *k;
    json_t *v = lookup(p, key, alias, &k);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_boolean(v)) return pfail(p, k, "expected true or false");
    *out = json_is_true(v);
    return 1;
}

static int get_str(pctx *p, const char *key, const char *alias, char *buf, size_t n)
{
    const char *k;
    json_t *v = lookup(p, key, alias, &k);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_string(v)) return pfail(p, k, "expected a string");
    const char *s = json_string_value(v);
    if (strlen(s) >= n) return pfail(p, k, "longer than %zu bytes", n - 1);
    memcpy(buf, s, strlen(s) + 1);
    return 1;
}

static int get_dim(pctx *p, const char *key, int required, int *out)
{
    long long v = 0;
    int r = get_int(p, key, NULL, &v);
    if (r < 0) return -1;
    if (r == 0) return required ? pfail(p, NULL, "missing field '%s'", key) : 0;
    if (v < 1 || v > INT_MAX / 4) return pfail(p, key, "%lld is not a valid size", v);
    *out = (int)v;
    return 1;
}

/* Major version of a "6.18.0"-style string; 0 when it does not start with a number. */
static int version_major(const char *s)
{
    char *end;
    long v = strtol(s, &end, 10);
    return end == s || v < 0 || v > 1000 ? 0 : (int)v;
}

static const char *const dtypes[] = {"float32", "float64", "float16", "bfloat16", "torch.float32", "torch.float64",
                                     "torch.float16", "torch.bfloat16"};

static int parse_fields(pctx *p, sae_cfg *c)
{
    /* Sizes. */
    if (get_dim(p, "d_in", 1, &c->d_in) < 0 || get_dim(p, "d_sae", 1, &c->d_sae) < 0) return -1;

    /* Architecture; pre-6 files name TopK through the activation function. */
    char arch[64] = "standard", act[64] = "relu";
    int have_arch = get_str(p, "architecture", NULL, arch, sizeof arch);
    if (have_arch < 0) return -1;
    c->arch = (sae_arch)-1;
    for (size_t i = 0; i < sizeof arch_names / sizeof *arch_names; i++)
        if (!strcmp(arch, arch_names[i])) c->arch = (sae_arch)i;
    if ((int)c->arch < 0)
        return pfail(p, "architecture",
                     "unknown architecture '%s' (known: standard, gated, jumprelu, topk, transcoder, skip_transcoder, "
                     "jumprelu_transcoder)", arch);
    long long k = 0;
    const char *kname = "k";
    int have_k = get_int(p, "k", NULL, &k);
    if (have_k < 0) return -1;
    if (!p->v6) {
        const char *ak;
        if (get_str(p, "activation_fn_str", "activation_fn", act, sizeof act) < 0) return -1;
        lookup(p, "activation_fn_str", "activation_fn", &ak);
        json_t *kw = json_object_get(p->root, "activation_fn_kwargs");
        if (kw && !json_is_null(kw) && !json_is_object(kw)) return pfail(p, "activation_fn_kwargs", "expected an object");
        if (!strcmp(act, "topk")) {
            if (c->arch == SAE_STANDARD) c->arch = SAE_TOPK;
            else if (c->arch != SAE_TOPK)
                return pfail(p, ak, "'topk' does not go with architecture '%s'", arch);
        } else if (strcmp(act, "relu")) {
            return pfail(p, ak, "unsupported activation '%s' (SAELens 6 supports relu and topk)", act);
        }
        json_t *jk = json_is_object(kw) ? json_object_get(kw, "k") : NULL;
        if (c->arch == SAE_TOPK && !have_k && jk && !json_is_null(jk)) {
            if (!json_is_integer(jk)) return pfail(p, "activation_fn_kwargs.k", "expected an integer");
            k = json_integer_value(jk);
            have_k = 1;
            kname = "activation_fn_kwargs.k";
        }
    }
    if (c->arch == SAE_TOPK) {
        c->k = 100; /* SAELens' TopKSAEConfig default */
        if (have_k) {
            if (k < 1 || k > c->d_sae) return pfail(p, kname, "%lld is outside 1..d_sae (%d)", k, c->d_sae);
            c->k = (int)k;
        } else if (c->k > c->d_sae) {
            return pfail(p, NULL, "missing field 'k' and the default 100 exceeds d_sae %d", c->d_sae);
        }
        if (get_bool(p, "rescale_acts_by_decoder_norm", NULL, &c->rescale_acts_by_decoder_norm) < 0) return -1;
    }
    c->d_out = c->d_in;
    if (is_transcoder(c->arch) && get_dim(p, "d_out", 1, &c->d_out) < 0) return -1;

    c->apply_b_dec_to_input = 1;
    if (get_bool(p, "apply_b_dec_to_input", NULL, &c->apply_b_dec_to_input) < 0) return -1;
    if (is_transcoder(c->arch) && c->apply_b_dec_to_input)
        return pfail(p, "apply_b_dec_to_input", "must be false for a %s (SAELens' default is true, so write it)", arch);

    /* normalize_activations: a string, or v3.0's bool. */
    const char *nk;
    json_t *nv = lookup(p, "normalize_activations", NULL, &nk);
    c->norm = SAE_NORM_NONE;
    if (json_is_boolean(nv)) {
        c->norm = json_is_true(nv) ? SAE_NORM_EXPECTED_AVERAGE_ONLY_IN : SAE_NORM_NONE;
    } else if (json_is_string(nv)) {
        int found = -1;
        for (size_t i = 0; i < sizeof norm_names / sizeof *norm_names; i++)
            if (!strcmp(json_string_value(nv), norm_names[i])) found = (int)i;
        if (found < 0)
            return pfail(p, nk, "unknown normalization '%s' (known: none, expected_average_only_in, "
                                "constant_norm_rescale, layer_norm)", json_string_value(nv));
        c->norm = (sae_norm)found;
    } else if (nv && !json_is_null(nv)) {
        return pfail(p, nk, "expected a string");
    }
    json_t *sf = json_object_get(p->root, "norm_scaling_factor");
    if (sf && !json_is_null(sf)) {
        if (!json_is_number(sf) || !isfinite(json_number_value(sf)) || json_number_value(sf) <= 0)
            return pfail(p, "norm_scaling_factor", "expected a positive number");
        c->norm_scaling_factor = json_number_value(sf);
    }

    /* Hooks. */
    int r = get_str(p, "hook_name", "hook_point", c->hook_name, sizeof c->hook_name);
    if (r < 0) return -1;
    if (r == 0) return pfail(p, NULL, "missing field 'hook_name'");
    hook_point hp;
    char e[384];
    const char *hk;
    lookup(p, "hook_name", "hook_point", &hk);
    if (hook_parse(c->hook_name, INT_MAX, &hp, e, sizeof e)) return pfail(p, hk, "%s", e);
    if (hp.kind == HOOK_PATTERN) return pfail(p, hk, "attention patterns cannot feed an SAE");
    if (get_str(p, "hook_name_out", NULL, c->hook_name_out, sizeof c->hook_name_out) < 0) return -1;
    hook_point hpo;
    if (c->hook_name_out[0] && hook_parse(c->hook_name_out, INT_MAX, &hpo, e, sizeof e))
        return pfail(p, "hook_name_out", "%s", e);
    long long hi = -1;
    if (get_int(p, "hook_head_index", "hook_point_head_index", &hi) < 0) return -1;
    if (hi < -1 || hi > 4096) return pfail(p, "hook_head_index", "%lld is not a head index", hi);
    c->hook_head_index = (int)hi;
    if (hi >= 0 && hp.kind != HOOK_Q && hp.kind != HOOK_K && hp.kind != HOOK_V && hp.kind != HOOK_Z)
        return pfail(p, "hook_head_index", "set, but %s has no heads", c->hook_name);
    /* reshape_activations: v6 says it; pre-6 files reshape every hook_z hook. */
    char reshape[32] = "none";
    if (!p->v6) snprintf(reshape, sizeof reshape, "%s", strstr(c->hook_name, "hook_z") ? "hook_z" : "none");
    if (get_str(p, "reshape_activations", NULL, reshape, sizeof reshape) < 0) return -1;
    if (strcmp(reshape, "none") && strcmp(reshape, "hook_z"))
        return pfail(p, "reshape_activations", "unknown value '%s' (known: none, hook_z)", reshape);
    c->reshape_hook_z = !strcmp(reshape, "hook_z");

    /* Model and dataset facts. */
    if (get_str(p, "model_name", NULL, c->model_name, sizeof c->model_name) < 0) return -1;
    long long ctx = 0;
    if (get_int(p, "context_size", NULL, &ctx) < 0) return -1;
    if (ctx < 0 || ctx > INT_MAX) return pfail(p, "context_size", "%lld is not a valid size", ctx);
    c->context_size = (int)ctx;
    c->prepend_bos = 1;
    if (get_bool(p, "prepend_bos", NULL, &c->prepend_bos) < 0) return -1;
    snprintf(c->dtype, sizeof c->dtype, "float32");
    if (get_str(p, "dtype", NULL, c->dtype, sizeof c->dtype) < 0) return -1;
    int dt_ok = 0;
    for (size_t i = 0; i < sizeof dtypes / sizeof *dtypes; i++) dt_ok |= !strcmp(c->dtype, dtypes[i]);
    if (!dt_ok) return pfail(p, "dtype", "unknown dtype '%s' (known: float32, float64, float16, bfloat16)", c->dtype);
    if (get_str(p, "neuronpedia_id", NULL, c->neuronpedia_id, sizeof c->neuronpedia_id) < 0) return -1;
    if (get_str(p, "dataset_path", NULL, c->dataset_path, sizeof c->dataset_path) < 0) return -1;

    /* SAELens loads the model with from_pretrained_no_processing(**kwargs): only flags set true
     * process it; the first two change hook values, fold_ln only what fold_value_biases
     * removes. */
    const char *kk;
    json_t *kw = lookup(p, "model_from_pretrained_kwargs", NULL, &kk);
    if (kw && !json_is_null(kw)) {
        if (!json_is_object(kw)) return pfail(p, kk, "expected an object");
        static const char *const flags[] = {"center_writing_weights", "fold_value_biases", "fold_ln"};
        int *dst[] = {&c->center_writing_weights, &c->fold_value_biases, &c->fold_ln};
        for (int i = 0; i < 3; i++) {
            json_t *v = json_object_get(kw, flags[i]);
            if (!v || json_is_null(v)) continue;
            if (!json_is_boolean(v)) {
                char f[96];
                snprintf(f, sizeof f, "%s.%s", kk, flags[i]);
                return pfail(p, f, "expected true or false");
            }
            *dst[i] = json_is_true(v);
        }
    }
    return 0;
}

int sae_cfg_parse(const char *json_text, const char *label, sae_cfg *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->hook_head_index = -1;
    pctx p = {.label = label ? label : "cfg.json", .err = err, .errlen = errlen};
    json_error_t je;
    p.root = json_loads(json_text ? json_text : "", 0, &je);
    if (!p.root) {
        snprintf(err, errlen, "%s: invalid JSON at line %d: %s", p.label, je.line, je.text);
        return -1;
    }
    int rc = -1;
    if (!json_is_object(p.root)) {
        pfail(&p, NULL, "expected a JSON object");
        goto done;
    }
    p.meta = json_object_get(p.root, "metadata");
    if (p.meta && json_is_null(p.meta)) p.meta = NULL;
    if (p.meta && !json_is_object(p.meta)) {
        pfail(&p, "metadata", "expected an object");
        goto done;
    }
    /* As SAELens' handle_config_defaulting: the version (top level, else metadata) picks the
     * path; none, or one before 6, means the flat pre-6 layout. */
    json_t *ver = json_object_get(p.root, "sae_lens_version");
    if (!json_is_string(ver) || !*json_string_value(ver)) ver = p.meta ? json_object_get(p.meta, "sae_lens_version") : NULL;
    if (ver && !json_is_null(ver) && !json_is_string(ver)) {
        pfail(&p, "sae_lens_version", "expected a string");
        goto done;
    }
    if (json_is_string(ver)) {
        snprintf(out->sae_lens_version, sizeof out->sae_lens_version, "%s", json_string_value(ver));
        p.v6 = version_major(out->sae_lens_version) >= 6;
    }
    out->format = p.v6 ? 6 : 5;
    if (parse_fields(&p, out)) goto done;
    if (!(out->json = strdup(json_text))) {
        snprintf(err, errlen, "%s: out of memory", p.label);
        goto done;
    }
    rc = 0;
done:
    json_decref(p.root);
    if (rc) {
        free(out->json);
        out->json = NULL;
    }
    return rc;
}

int sae_cfg_load(const char *dir, sae_cfg *out, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/cfg.json", dir);
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (n < 0 || n > (64L << 20)) {
        fclose(f);
        snprintf(err, errlen, "%s: not a readable file of at most 64 MiB", path);
        return -1;
    }
    char *text = malloc((size_t)n + 1);
    size_t got = text ? fread(text, 1, (size_t)n, f) : 0;
    fclose(f);
    if (!text || got != (size_t)n) {
        free(text);
        snprintf(err, errlen, "%s: read failed", path);
        return -1;
    }
    text[n] = '\0';
    int rc = sae_cfg_parse(text, path, out, err, errlen);
    free(text);
    return rc;
}

void sae_cfg_free(sae_cfg *c)
{
    if (!c) return;
    free(c->json);
    c->json = NULL;
}

int sae_cfg_processing(const sae_cfg *c)
{
    return (c->center_writing_weights ? PROC_CENTER_WRITING : 0) | (c->fold_value_biases ? PROC_FOLD_VALUE_BIASES : 0) |
           (c->fold_ln ? PROC_FOLD_LN : 0);
}

/* ---- the model side ---- */

static int head_hook(hook_kind k) { return k == HOOK_Q || k == HOOK_K || k == HOOK_V || k == HOOK_Z; }

/* Floats per position at a hook of a model with this config (engine/model.c's widths). */
/* Floats per position at a hook, as model_hook_width gives them (hook_k/hook_v have the
 * key/value heads only under grouped-query attention). */
static int hook_width(const hf_config *m, hook_kind k)
{
    switch (k) {
    case HOOK_MLP_PRE:
    case HOOK_MLP_POST: return m->d_mlp;
    case HOOK_Q:
    case HOOK_Z: return m->n_head * m->head_dim;
    case HOOK_K:
    case HOOK_V: return m->n_kv_head * m->head_dim;
    default: return m->d_model;
    }
}

void sae_cfg_hook_columns(const sae_cfg *c, const hf_config *m, int *col0, int *ncols)
{
    hook_point hp;
    char e[256];
    if (hook_parse(c->hook_name, INT_MAX, &hp, e, sizeof e)) hp.kind = HOOK_RESID_PRE; /* sae_cfg_parse checked it */
    *col0 = 0;
    *ncols = hook_width(m, hp.kind);
    if (c->hook_head_index >= 0 && head_hook(hp.kind) && m->n_head > 0) {
        *ncols = m->head_dim;
        *col0 = c->hook_head_index * *ncols;
    }
}

int sae_cfg_check_model(const sae_cfg *c, const hf_config *m, hook_point *hp, char *err, size_t errlen)
{
    hook_point h;
    char e[384];
    if (hook_parse(c->hook_name, m->n_layer, &h, e, sizeof e)) {
        snprintf(err, errlen, "SAE hook does not exist in the model: %s", e);
        return -1;
    }
    if (h.kind == HOOK_PATTERN) {
        snprintf(err, errlen, "SAE hook %s: attention patterns cannot feed an SAE", c->hook_name);
        return -1;
    }
    int width = hook_width(m, h.kind);
    const char *what = head_hook(h.kind) ? " (n_heads·d_head)" : "";
    if (c->hook_head_index >= 0) {
        int heads = h.kind == HOOK_K || h.kind == HOOK_V ? m->n_kv_head : m->n_head;
        if (!head_hook(h.kind) || c->hook_head_index >= heads) {
            snprintf(err, errlen, "SAE hook_head_index %d: %s has %d heads", c->hook_head_index, c->hook_name,
                     head_hook(h.kind) ? heads : 0);
            return -1;
        }
        width = m->head_dim;
        what = " (d_head, one head)";
    }
    if (width != c->d_in) {
        snprintf(err, errlen, "SAE d_in %d does not match the width %d%s of %s in the model (d_model %d)", c->d_in, width,
                 what, c->hook_name, m->d_model);
        return -1;
    }
    if (c->hook_name_out[0]) {
        hook_point ho;
        if (hook_parse(c->hook_name_out, m->n_layer, &ho, e, sizeof e)) {
            snprintf(err, errlen, "SAE output hook does not exist in the model: %s", e);
            return -1;
        }
        if (ho.kind != HOOK_PATTERN && hook_width(m, ho.kind) != c->d_out) {
            snprintf(err, errlen, "SAE d_out %d does not match the width %d of %s in the model", c->d_out,
                     hook_width(m, ho.kind), c->hook_name_out);
            return -1;
        }
    }
    if (hp) *hp = h;
    return 0;
}

/* ---- cfg.json output ---- */

/* model_from_pretrained_kwargs as the source file had it (other keys, e.g. fold_ln, kept),
 * with the two flags this cfg knows set to its values. */
static json_t *kwargs_json(const sae_cfg *c)
{
    json_t *out = NULL;
    json_t *src = c->json ? json_loads(c->json, 0, NULL) : NULL;
    if (json_is_object(src)) {
        json_t *meta = json_object_get(src, "metadata");
        json_t *kw = json_is_object(meta) ? json_object_get(meta, "model_from_pretrained_kwargs") : NULL;
        if (!json_is_object(kw)) kw = json_object_get(src, "model_from_pretrained_kwargs");
        if (json_is_object(kw)) out = json_deep_copy(kw);
    }
    json_decref(src);
    if (!out) out = json_object();
    static const char *const flags[] = {"center_writing_weights", "fold_value_biases", "fold_ln"};
    const int vals[] = {c->center_writing_weights, c->fold_value_biases, c->fold_ln};
    for (int i = 0; i < 3; i++)
        if (vals[i] || json_object_get(out, flags[i])) json_object_set_new(out, flags[i], json_boolean(vals[i]));
    return out;
}

static json_t *str_or_null(const char *s) { return s && *s ? json_string(s) : json_null(); }

char *sae_cfg_dump(const sae_cfg *c, int format, char *err, size_t errlen)
{
    if (format != 5 && format != 6) {
        snprintf(err, errlen, "cfg.json format %d: expected 5 (flat) or 6 (metadata)", format);
        return NULL;
    }
    json_t *j = json_object();
    json_t *head = c->hook_head_index >= 0 ? json_integer(c->hook_head_index) : json_null();
    json_t *ctx = c->context_size > 0 ? json_integer(c->context_size) : json_null();
    if (format == 6) {
        /* The key order of SAELens 6's SAEConfig.to_dict(). */
        json_object_set_new(j, "d_in", json_integer(c->d_in));
        json_object_set_new(j, "d_sae", json_integer(c->d_sae));
        json_object_set_new(j, "dtype", json_string(c->dtype));
        json_object_set_new(j, "device", json_string("cpu"));
        json_object_set_new(j, "apply_b_dec_to_input", json_boolean(c->apply_b_dec_to_input));
        json_object_set_new(j, "normalize_activations", json_string(sae_norm_name(c->norm)));
        json_object_set_new(j, "reshape_activations", json_string(c->reshape_hook_z ? "hook_z" : "none"));
        json_t *m = json_object();
        json_object_set_new(m, "sae_lens_version", json_string("6.18.0"));
        json_object_set_new(m, "model_name", str_or_null(c->model_name));
        json_object_set_new(m, "hook_name", json_string(c->hook_name));
        json_object_set_new(m, "hook_head_index", head);
        json_object_set_new(m, "context_size", ctx);
        json_object_set_new(m, "prepend_bos", json_boolean(c->prepend_bos));
        json_object_set_new(m, "model_from_pretrained_kwargs", kwargs_json(c));
        json_object_set_new(m, "dataset_path", str_or_null(c->dataset_path));
        json_object_set_new(m, "neuronpedia_id", str_or_null(c->neuronpedia_id));
        if (c->hook_name_out[0]) json_object_set_new(m, "hook_name_out", json_string(c->hook_name_out));
        json_object_set_new(j, "metadata", m);
        json_object_set_new(j, "architecture", json_string(sae_arch_name(c->arch)));
        if (c->arch == SAE_TOPK) {
            json_object_set_new(j, "k", json_integer(c->k));
            json_object_set_new(j, "rescale_acts_by_decoder_norm", json_boolean(c->rescale_acts_by_decoder_norm));
        }
        if (is_transcoder(c->arch)) json_object_set_new(j, "d_out", json_integer(c->d_out));
    } else {
        /* SAELens 5's flat to_dict(); hook_layer is derived from hook_name. */
        hook_point hp;
        char e[256];
        int layer = hook_parse(c->hook_name, INT_MAX, &hp, e, sizeof e) || hp.layer < 0 ? 0 : hp.layer;
        json_object_set_new(j, "architecture", json_string(sae_arch_name(c->arch)));
        json_object_set_new(j, "d_in", json_integer(c->d_in));
        json_object_set_new(j, "d_sae", json_integer(c->d_sae));
        if (is_transcoder(c->arch)) json_object_set_new(j, "d_out", json_integer(c->d_out));
        json_object_set_new(j, "dtype", json_string(c->dtype));
        json_object_set_new(j, "device", json_string("cpu"));
        json_object_set_new(j, "model_name", str_or_null(c->model_name));
        json_object_set_new(j, "hook_name", json_string(c->hook_name));
        json_object_set_new(j, "hook_layer", json_integer(layer));
        json_object_set_new(j, "hook_head_index", head);
        if (c->hook_name_out[0]) json_object_set_new(j, "hook_name_out", json_string(c->hook_name_out));
        json_object_set_new(j, "activation_fn_str", json_string(c->arch == SAE_TOPK ? "topk" : "relu"));
        json_object_set_new(j, "activation_fn_kwargs",
                            c->arch == SAE_TOPK ? json_pack("{s:i}", "k", c->k) : json_object());
        if (c->arch == SAE_TOPK)
            json_object_set_new(j, "rescale_acts_by_decoder_norm", json_boolean(c->rescale_acts_by_decoder_norm));
        json_object_set_new(j, "apply_b_dec_to_input", json_boolean(c->apply_b_dec_to_input));
        json_object_set_new(j, "finetuning_scaling_factor", json_false());
        json_object_set_new(j, "sae_lens_training_version", json_null());
        json_object_set_new(j, "prepend_bos", json_boolean(c->prepend_bos));
        json_object_set_new(j, "dataset_path", str_or_null(c->dataset_path));
        json_object_set_new(j, "context_size", ctx);
        json_object_set_new(j, "normalize_activations", json_string(sae_norm_name(c->norm)));
        json_object_set_new(j, "neuronpedia_id", str_or_null(c->neuronpedia_id));
        json_object_set_new(j, "model_from_pretrained_kwargs", kwargs_json(c));
        json_object_set_new(j, "seqpos_slice", json_pack("[n]"));
    }
    /* Not a SAELens field (its from_dict drops unknown keys): keeps a scaling factor that was
     * supplied at load, so that the export encodes the same. */
    if (c->norm_scaling_factor > 0) json_object_set_new(j, "norm_scaling_factor", json_real(c->norm_scaling_factor));
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
    json_decref(j);
    if (!s) snprintf(err, errlen, "cfg.json: out of memory");
    return s;
}
