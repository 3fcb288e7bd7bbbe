/* steer.c: see steer.h. The DEFAULT and STEERED runs are two rows of one generation (each with
 * its own generator and counts, one KV cache of two sequences); they share the read-only model
 * and steering set, and start from the same seed, so with a zero coefficient they produce the
 * same tokens. */
#include "server/steer.h"

#include <math.h>     // defines: sqrt
#include <stdio.h>    // defines: snprintf
#include <stdlib.h>   // defines: malloc, free
#include <string.h>   // defines: strcmp, strncmp, strdup

#include "engine/generate.h"
#include "engine/live.h"      // defines: live_tokenize
#include "engine/sample.h"
#include "engine/tok_prompt.h"
#include "server/compute.h"
#include "server/engines.h"
#include "server/log.h"
#include "server/steer_chat.h"

struct steer_plan {
    saed_app *app;
    steer_req q;
    char *prompt;
    char *features_json;         /* [{layer, index, strength}]: the cache key's feature set */
    char num[7][32];             /* temperature, n_tokens, freq_penalty, seed, n_logprobs, multiplier, method */
    char *stored_id[2], *stored_text[2], *stored_lp[2];
    const eng_ref *model;        /* held from prepare to free */
    steer_set *set;
    int processing;
    int32_t *ids[2];             /* each run's prompt ([STEER_STEERED], [STEER_DEFAULT]), BOS included */
    int T[2];
    unsigned char *skip;         /* steer-chat without steer_special_tokens: STEERED prompt positions left alone */
    char *chat_key[2];           /* steer-chat: each run's conversation as stored (steer_chat_key) */
    char *rendered[2];           /* steer-chat: each run's rendered prompt */
};

void steer_out_free(steer_out *o)
{
    for (int k = 0; k < 2; k++) {
        free(o->text[k]);
        free(o->prompt[k]);
        json_decref(o->logprobs[k]);
        o->text[k] = NULL;
        o->prompt[k] = NULL;
        o->logprobs[k] = NULL;
    }
}

void steer_plan_free(steer_plan *p)
{
    if (!p) return;
    for (int k = 0; k < 2; k++) {
        free(p->stored_id[k]);
        free(p->stored_text[k]);
        free(p->stored_lp[k]);
        free(p->ids[k]);
        free(p->chat_key[k]);
        free(p->rendered[k]);
    }
    if (p->model) engines_put(p->app->engines, p->model);
    steer_free(p->set);
    free(p->skip);
    free(p->prompt);
    free(p->features_json);
    free(p);
}

bool steer_plan_stored(const steer_plan *p) { return p->stored_id[STEER_STEERED] && p->stored_id[STEER_DEFAULT]; }

const char *steer_plan_rendered(const steer_plan *p, int k) { return p->rendered[k] ? p->rendered[k] : ""; }

/* ---- text ---- */

/* Bytes the UTF-8 character at p needs (1-4), or 0 when p[0] cannot start one. */
static size_t utf8_need(unsigned char c)
{
    return c < 0x80 ? 1 : (c >= 0xc2 && c <= 0xdf) ? 2 : (c >= 0xe0 && c <= 0xef) ? 3 : (c >= 0xf0 && c <= 0xf4) ? 4 : 0;
}

/* Whether the k bytes at p (k ≤ what p[0] needs) can begin a valid character: continuation
 * bytes, no overlong form, no surrogate, nothing above U+10FFFF. */
static bool utf8_ok_prefix(const unsigned char *p, size_t k)
{
    for (size_t i = 1; i < k; i++)
        if ((p[i] & 0xc0) != 0x80) return false;
    if (k > 1 && ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] > 0x9f) || (p[0] == 0xf0 && p[1] < 0x90) ||
                  (p[0] == 0xf4 && p[1] > 0x8f)))
        return false;
    return true;
}

char *steer_utf8_text(const char *bytes, size_t len, bool hold_tail)
{
    char *out = malloc(len * 3 + 1);
    if (!out) return NULL;
    size_t o = 0;
    const unsigned char *p = (const unsigned char *)bytes;
    for (size_t i = 0; i < len;) {
        size_t n = p[i] ? utf8_need(p[i]) : 0, avail = len - i;
        if (n && n <= avail && utf8_ok_prefix(p + i, n)) {
            memcpy(out + o, p + i, n);
            o += n;
            i += n;
            continue;
        }
        if (hold_tail && n > avail && utf8_ok_prefix(p + i, avail)) break; /* unfinished at the end */
        memcpy(out + o, "\xef\xbf\xbd", 3);
        o += 3;
        i++;
    }
    out[o] = '\0';
    return out;
}

static char *decode(const tokenizer *tok, const int32_t *ids, int n, bool hold_tail)
{
    size_t len = 0;
    char *raw = tok_decode(tok, ids, n, &len);
    if (!raw) return NULL;
    char *t = steer_utf8_text(raw, len, hold_tail);
    free(raw);
    return t;
}

char *steer_plan_prompt_text(const steer_plan *p, int k)
{
    return p->model && p->ids[k] ? decode(p->model->tok, p->ids[k], p->T[k], false) : NULL;
}

static json_t *logprobs_json(const tokenizer *tok, const gen *g, int r)
{
    json_t *a = json_array();
    const gen_token *t = gen_row_tokens(g, r);
    for (int i = 0; a && i < gen_row_count(g, r); i++) {
        json_t *top = json_array();
        for (int k = 0; top && k < t[i].ntop; k++) {
            char *s = tok_token_str(tok, t[i].top_id[k]);
            json_array_append_new(top, json_pack("{s:s,s:f}", "token", s ? s : "", "logprob", (double)t[i].top_logprob[k]));
            free(s);
        }
        char *s = tok_token_str(tok, t[i].id);
        json_array_append_new(a, json_pack("{s:s,s:f,s:o}", "token", s ? s : "", "logprob", (double)t[i].logprob,
                                           "topLogprobs", top ? top : json_array()));
        free(s);
    }
    return a;
}

/* ---- prepare ---- */

/* The hook a feature's vector goes to and its columns there: the SAE's hook (a transcoder's
 * output hook, where its decoder writes), all columns or one head's. */
static int feature_hook(const sae_cfg *c, const hf_config *mc, hook_point *hp, int *col0, int *n, svc_err *e,
                        const steer_feature *f)
{
    char err[512];
    if (sae_cfg_check_model(c, mc, hp, err, sizeof err))
        return svc_fail(e, SVC_INVALID, "invalid_feature", "feature %s/%s: the SAE does not fit the model: %s", f->layer, f->index, err);
    sae_cfg_hook_columns(c, mc, col0, n);
    if (c->hook_name_out[0]) {
        if (hook_parse(c->hook_name_out, mc->n_layer, hp, err, sizeof err))
            return svc_fail(e, SVC_INVALID, "invalid_feature", "feature %s/%s: %s", f->layer, f->index, err);
        *col0 = 0;
        *n = c->d_out;
    }
    if (hp->kind == HOOK_PATTERN || hp->kind == HOOK_LN_FINAL)
        return svc_fail(e, SVC_INVALID, "invalid_feature", "feature %s/%s: hook %s cannot be steered (read-only)", f->layer,
                    f->index, c->hook_name_out[0] ? c->hook_name_out : c->hook_name);
    if (*n != c->d_out)
        return svc_fail(e, SVC_INVALID, "invalid_feature", "feature %s/%s: the decoder writes %d values, the hook takes %d",
                    f->layer, f->index, c->d_out, *n);
    return 0;
}

/* v (n floats, the caller's scratch) into the set at hp with coeff = multiplier × strength,
 * first scaled to unit norm when the request asks (normalizeSteering). */
static int set_add(steer_plan *p, hook_point hp, int col0, float *v, int n, double strength, const char *what, svc_err *e)
{
    char err[600];
    if (p->q.normalize) {
        double ss = 0;
        for (int i = 0; i < n; i++) ss += (double)v[i] * v[i];
        if (!(ss > 0) || !isfinite(ss))
            return svc_fail(e, SVC_INVALID, "invalid_feature", "%s: normalizeSteering needs a vector of finite, non-zero norm",
                            what);
        double inv = 1 / sqrt(ss);
        for (int i = 0; i < n; i++) v[i] = (float)(v[i] * inv);
    }
    if (steer_add(p->set, hp, col0, v, n, p->q.strength_multiplier * strength, err, sizeof err))
        return svc_fail(e, SVC_INVALID, "invalid_feature", "%s: %s", what, err);
    return 0;
}

/* The request's raw vectors (/v1/steer `vectors`) into the set: each at its hook, all columns;
 * seen without model processing, as the hook's values are computed. */
static int add_vectors(steer_plan *p, svc_err *e)
{
    const hf_config *mc = model_config(p->model->model);
    for (int i = 0; i < p->q.nvectors; i++) {
        const steer_vec *sv = &p->q.vectors[i];
        char what[32], err[512];
        snprintf(what, sizeof what, "vectors[%d]", i);
        hook_point hp;
        if (hook_parse(sv->hook, mc->n_layer, &hp, err, sizeof err))
            return svc_fail(e, SVC_INVALID, "invalid_field", "%s.hook: %s", what, err);
        if (hp.kind == HOOK_PATTERN || hp.kind == HOOK_LN_FINAL)
            return svc_fail(e, SVC_INVALID, "invalid_field", "%s.hook: %s cannot be steered (read-only)", what, sv->hook);
        int w = model_hook_width(p->model->model, hp, 0);
        if (w != sv->n)
            return svc_fail(e, SVC_INVALID, "invalid_field", "%s.steeringVector: %d values, and the model's %s takes %d", what,
                            sv->n, sv->hook, w);
        float *v = malloc(sizeof(float) * (size_t)sv->n);
        if (!v) return svc_fail(e, SVC_INTERNAL, "internal", "out of memory");
        memcpy(v, sv->v, sizeof(float) * (size_t)sv->n);
        int rc = set_add(p, hp, 0, v, sv->n, sv->strength, what, e);
        free(v);
        if (rc) return -1;
    }
    return 0;
}

/* Loads the features' vectors (or the request's raw ones) into the plan's steering set. */
static int build_set(steer_plan *p, char saes[][4096], svc_err *e)
{
    const steer_req *q = &p->q;
    const hf_config *mc = model_config(p->model->model);
    char err[600];
    if (!(p->set = steer_new(q->method))) return svc_fail(e, SVC_INTERNAL, "internal", "out of memory");
    for (int i = 0; i < q->nfeatures; i++) {
        const steer_feature *f = &q->features[i];
        const eng_ref *s = engines_sae(p->app->engines, saes[i], err, sizeof err);
        if (!s) {
            log_error("steering: SAE %s/%s: %s", q->model_id, f->layer, err);
            return svc_fail(e, SVC_INTERNAL, "internal", "could not load SAE '%s' (see the server log)", f->layer);
        }
        const sae_cfg *c = sae_config(s->sae);
        hook_point hp;
        int col0, n, rc = feature_hook(c, mc, &hp, &col0, &n, e, f);
        int proc = sae_cfg_processing(c);
        if (rc == 0 && i > 0 && proc != p->processing && q->method == STEER_ORTHOGONAL)
            rc = svc_fail(e, SVC_INVALID, "invalid_feature",
                      "features: ORTHOGONAL_DECOMP needs one model processing, and the SAEs of %s and %s differ in it "
                      "(center_writing_weights / fold_value_biases)", q->features[0].layer, f->layer);
        if (i == 0) p->processing = proc;
        float *v = rc ? NULL : malloc(sizeof(float) * (size_t)n);
        if (rc == 0 && !v) rc = svc_fail(e, SVC_INTERNAL, "internal", "out of memory");
        if (rc == 0 && sae_decoder_row_raw(s->sae, atoi(f->index), v, err, sizeof err))
            rc = svc_fail(e, SVC_NOT_FOUND, "not_found", "feature %s/%s/%s: %s", q->model_id, f->layer, f->index, err);
        char what[300];
        snprintf(what, sizeof what, "feature %s/%s", f->layer, f->index);
        if (rc == 0) rc = set_add(p, hp, col0, v, n, f->strength, what, e);
        free(v);
        engines_put(p->app->engines, s);
        if (rc) return -1;
    }
    return add_vectors(p, e);
}

static char *dup_or_null(const PGresult *r, int col)
{
    return PQgetisnull(r, 0, col) ? NULL : strdup(PQgetvalue(r, 0, col));
}

/* steer-chat: each run's conversation rendered with the model's chat template, and its key. */
static int render_chats(steer_plan *p, const char *model_path, svc_err *e)
{
    chat_template t = {0};
    if (steer_chat_template(p->q.model_id, model_path, &t, e)) return -1;
    int rc = 0;
    for (int k = 0; k < 2 && rc == 0; k++) {
        if (!(p->rendered[k] = steer_chat_render(&t, p->q.chat[k], e))) rc = -1;
        else if (!(p->chat_key[k] = steer_chat_key(p->q.chat[k]))) rc = svc_fail(e, SVC_INTERNAL, "internal", "out of memory");
    }
    chat_template_free(&t);
    return rc;
}

/* Run k's prompt ids. /api/steer tokenizes as activation/new does (live_tokenize: the BOS
 * prepended unless the prompt starts with it, every "<|endoftext|>" in it the BOS id, as
 * upstream); steer-chat tokenizes the rendered conversation as HF's add_special_tokens=False
 * (the template writes the BOS itself where the model wants one) and, without
 * steer_special_tokens, marks the STEERED prompt's special tokens to be left unsteered. */
static int tokenize_run(steer_plan *p, int k, int ctx, svc_err *e)
{
    const tokenizer *tok = p->model->tok;
    char err[600];
    int32_t *ids = NULL;
    int n;
    if (p->q.chat[0]) {
        const char *text = p->rendered[k];
        n = tok_encode_special(tok, text, strlen(text), &ids, err, sizeof err);
        if (n == 0) {
            free(ids);
            return svc_fail(e, SVC_INVALID, "invalid_field", "the rendered conversation is empty");
        }
        if (n > ctx) n = -2;
    } else {
        n = live_tokenize(tok, p->prompt, strlen(p->prompt), ctx, &ids, err, sizeof err);
    }
    if (n == -2) {
        free(ids);
        return svc_fail(e, SVC_INVALID, "too_long", "prompt is more than the model's context of %d tokens (BOS included)", ctx);
    }
    if (n < 0) return svc_fail(e, SVC_INVALID, "invalid_field", "prompt: %s", err);
    p->ids[k] = ids;
    p->T[k] = n;
    if (n + p->q.n_tokens > ctx)
        return svc_fail(e, SVC_INVALID, "too_long",
                        "prompt is %d tokens (BOS included) and n_tokens is %d: together over the model's context of %d", n,
                        p->q.n_tokens, ctx);
    if (k == STEER_STEERED && p->q.chat[0] && !p->q.steer_special) {
        if (!(p->skip = malloc((size_t)n))) return svc_fail(e, SVC_INTERNAL, "internal", "out of memory");
        for (int t = 0; t < n; t++) p->skip[t] = (unsigned char)tok_special_id(tok, ids[t]);
    }
    return 0;
}

/* The outputs an identical request stored (none found: the ids stay NULL). */
static int find_stored(steer_plan *p, db_conn *c, svc_err *e)
{
    const steer_req *q = &p->q;
    PGresult *r;
    if (q->chat[0])
        r = db_exec(c, DB_STEER_CHAT_FIND,
                    (const char *const[]){q->model_id, p->chat_key[STEER_DEFAULT], p->chat_key[STEER_STEERED], p->num[0],
                                          p->num[1], p->num[2], p->num[3], p->num[4], p->num[5], p->num[6],
                                          p->features_json, q->steer_special ? "true" : "false"});
    else
        r = db_exec(c, DB_STEER_FIND, (const char *const[]){q->model_id, p->prompt, p->num[0], p->num[1], p->num[2],
                                                            p->num[3], p->num[4], p->num[5], p->num[6], p->features_json});
    if (db_kind(r) != DB_OK) {
        registry_db_err(e, r, "looking up stored outputs");
        PQclear(r);
        return -1;
    }
    p->stored_id[STEER_DEFAULT] = dup_or_null(r, 0);
    p->stored_text[STEER_DEFAULT] = dup_or_null(r, 1);
    p->stored_lp[STEER_DEFAULT] = dup_or_null(r, 2);
    p->stored_id[STEER_STEERED] = dup_or_null(r, 3);
    p->stored_text[STEER_STEERED] = dup_or_null(r, 4);
    p->stored_lp[STEER_STEERED] = dup_or_null(r, 5);
    PQclear(r);
    return 0;
}

steer_plan *steer_prepare(saed_app *app, db_conn *c, const steer_req *q, svc_err *e)
{
    steer_plan *p = calloc(1, sizeof *p);
    char (*saes)[4096] = calloc((size_t)q->nfeatures + 1, sizeof *saes);
    char model_path[4096] = "", err[600];
    PGresult *r = NULL;
    if (!p || !saes || !(p->prompt = strdup(q->prompt))) {
        svc_fail(e, SVC_INTERNAL, "internal", "out of memory");
        goto bad;
    }
    p->app = app;
    p->q = *q;
    p->q.prompt = p->prompt;
    if (!registry_id_valid(q->model_id)) {
        svc_fail(e, SVC_NOT_FOUND, "not_found", "model '%s' not found", q->model_id);
        goto bad;
    }
    r = db_exec(c, DB_MODEL_PATH, (const char *const[]){q->model_id});
    if (db_kind(r) != DB_OK) {
        registry_db_err(e, r, "reading the model");
        goto bad;
    }
    if (PQntuples(r) == 0) {
        svc_fail(e, SVC_NOT_FOUND, "not_found", "model '%s' not found", q->model_id);
        goto bad;
    }
    snprintf(model_path, sizeof model_path, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    r = NULL;
    json_t *fj = json_array();
    for (int i = 0; i < q->nfeatures; i++) {
        const steer_feature *f = &q->features[i];
        int found = 0;
        if (registry_id_valid(f->layer)) {
            r = db_exec(c, DB_STEER_SAE, (const char *const[]){q->model_id, f->layer});
            if (db_kind(r) != DB_OK) {
                json_decref(fj);
                registry_db_err(e, r, "reading the features' SAEs");
                goto bad;
            }
            found = PQntuples(r) == 1 && atoll(f->index) < atoll(PQgetvalue(r, 0, 1));
            if (found) snprintf(saes[i], sizeof saes[i], "%s", PQgetvalue(r, 0, 0));
            PQclear(r);
            r = NULL;
        }
        if (!found) {
            json_decref(fj);
            svc_fail(e, SVC_NOT_FOUND, "not_found", "feature %s/%s/%s not found", q->model_id, f->layer, f->index);
            goto bad;
        }
        json_array_append_new(fj, json_pack("{s:s,s:s,s:f}", "layer", f->layer, "index", f->index, "strength", f->strength));
    }
    p->features_json = json_dumps(fj, JSON_COMPACT);
    json_decref(fj);
    snprintf(p->num[0], sizeof p->num[0], "%.17g", q->temperature);
    snprintf(p->num[1], sizeof p->num[1], "%d", q->n_tokens);
    snprintf(p->num[2], sizeof p->num[2], "%.17g", q->freq_penalty);
    snprintf(p->num[3], sizeof p->num[3], "%.17g", q->seed);
    snprintf(p->num[4], sizeof p->num[4], "%d", q->n_logprobs);
    snprintf(p->num[5], sizeof p->num[5], "%.17g", q->strength_multiplier);
    snprintf(p->num[6], sizeof p->num[6], "%s", steer_method_name(q->method));
    if (!p->features_json) {
        svc_fail(e, SVC_INTERNAL, "internal", "out of memory");
        goto bad;
    }
    if (q->chat[0] && render_chats(p, model_path, e)) goto bad;
    if (!q->ephemeral) {
        if (find_stored(p, c, e)) goto bad;
        if (steer_plan_stored(p)) goto good;
    }
    if (!(p->model = engines_model(app->engines, model_path, err, sizeof err))) {
        log_error("steering: model %s: %s", q->model_id, err);
        svc_fail(e, SVC_INTERNAL, "internal", "could not load model '%s' (see the server log)", q->model_id);
        goto bad;
    }
    const int ctx = model_config(p->model->model)->n_ctx;
    for (int k = 0; k < 2; k++)
        if (tokenize_run(p, k, ctx, e)) goto bad;
    if (!p->stored_id[STEER_STEERED] && build_set(p, saes, e)) goto bad;
good:
    free(saes);
    return p;
bad:
    PQclear(r);
    free(saes);
    steer_plan_free(p);
    return NULL;
}

/* ---- generate ---- */

static int stored_out(const steer_plan *p, int k, steer_out *out, svc_err *e)
{
    if (!(out->text[k] = strdup(p->stored_text[k] ? p->stored_text[k] : "")))
        return svc_fail(e, SVC_INTERNAL, "internal", "out of memory");
    if (p->stored_lp[k] && !(out->logprobs[k] = json_loads(p->stored_lp[k], 0, NULL)))
        return svc_fail(e, SVC_INTERNAL, "internal", "a stored output's logprobs are not JSON");
    return 0;
}

/* The outputs not stored yet, as rows of generations. DEFAULT and STEERED over one prompt are
 * two rows of one generation that share every forward (engine/generate.h: each row's tokens
 * are those it would get alone); chat runs whose conversations differ are two generations. */
typedef struct steer_runs {
    gen *g[2];
    int gi[2], row[2]; /* output k is row row[k] of g[gi[k]]; gi[k] < 0: stored */
    int ng;
} steer_runs;

static bool same_prompt(const steer_plan *p)
{
    return p->T[0] == p->T[1] && !memcmp(p->ids[0], p->ids[1], (size_t)p->T[0] * sizeof *p->ids[0]);
}

static int start_runs(steer_plan *p, steer_runs *r, char *err, size_t errlen)
{
    gen_opts o[2];
    int ks[2], n = 0;
    for (int k = 0; k < 2; k++) {
        r->gi[k] = r->row[k] = -1;
        if (p->stored_id[k] || p->q.skip_run[k]) continue;
        int nh = 0;
        const hook_req *h = k == STEER_STEERED ? steer_hooks(p->set, &nh) : NULL;
        o[n] = (gen_opts){.n_tokens = p->q.n_tokens, .temperature = p->q.temperature, .freq_penalty = p->q.freq_penalty,
                          .seed = sample_seed_from_double(p->q.seed), .eos = tok_eos_id(p->model->tok),
                          .n_logprobs = p->q.n_logprobs, .hooks = h, .nhooks = nh, .processing = p->processing};
        ks[n++] = k;
    }
    bool together = n == 2 && same_prompt(p);
    for (int i = 0; i < n; i++) {
        int k = ks[i], rows = together ? 2 : 1;
        bool steered = together || k == STEER_STEERED;
        /* the mask covers the prefill only: generated tokens are always steered; the STEERED
         * row's hooks see only its own sequence, so the mask is its prompt's */
        if (steered && p->skip) steer_skip(p->set, p->skip, p->T[STEER_STEERED]);
        gen *g = gen_start_rows(p->model->model, p->ids[k], p->T[k], &o[i], rows, err, errlen);
        if (steered && p->skip) steer_skip(p->set, NULL, 0);
        if (!g) return -1;
        r->g[r->ng] = g;
        for (int j = 0; j < rows; j++) {
            r->gi[ks[i + j]] = r->ng;
            r->row[ks[i + j]] = j;
        }
        r->ng++;
        if (together) break;
    }
    return 0;
}

static char *run_text(const tokenizer *tok, const steer_runs *r, int k, bool hold_tail)
{
    const gen *g = r->g[r->gi[k]];
    return decode(tok, gen_row_ids(g, r->row[k]), gen_row_count(g, r->row[k]), hold_tail);
}

int steer_generate(steer_plan *p, steer_progress cb, void *ud, steer_out *out, svc_err *e)
{
    memset(out, 0, sizeof *out);
    steer_runs r = {.ng = 0};
    char err[600];
    int rc = -1;
    for (int k = 0; k < 2; k++) {
        if (p->stored_id[k] && stored_out(p, k, out, e)) goto done;
        if (p->q.skip_run[k] && !(out->text[k] = strdup(""))) {
            svc_fail(e, SVC_INTERNAL, "internal", "out of memory");
            goto done;
        }
    }
    if (start_runs(p, &r, err, sizeof err)) {
        log_error("steering: %s", err);
        svc_fail(e, SVC_INTERNAL, "internal", "generation failed (see the server log)");
        goto done;
    }
    const tokenizer *tok = p->model ? p->model->tok : NULL;
    for (bool more = true; more;) {
        more = false;
        for (int i = 0; i < r.ng; i++) {
            if (gen_done(r.g[i])) continue;
            if (compute_stopping(p->app->compute)) {
                svc_fail(e, SVC_UNAVAILABLE, "shutting_down", "saed is shutting down; retry");
                goto done;
            }
            if (gen_step(r.g[i], err, sizeof err) < 0) {
                log_error("steering: %s", err);
                svc_fail(e, SVC_INTERNAL, "internal", "generation failed (see the server log)");
                goto done;
            }
            more |= !gen_done(r.g[i]);
        }
        if (!cb || !more) continue;
        char *t[2];
        for (int k = 0; k < 2; k++) t[k] = r.gi[k] >= 0 ? run_text(tok, &r, k, true) : strdup(out->text[k]);
        int stop = !t[0] || !t[1] || cb(ud, t[STEER_STEERED], t[STEER_DEFAULT]);
        free(t[0]);
        free(t[1]);
        if (stop) {
            svc_fail(e, SVC_UNAVAILABLE, "cancelled", "the client went away");
            goto done;
        }
    }
    for (int k = 0; k < 2; k++) {
        if (p->rendered[k] && !(out->prompt[k] = strdup(p->rendered[k]))) {
            svc_fail(e, SVC_INTERNAL, "internal", "out of memory");
            goto done;
        }
        if (r.gi[k] < 0) continue;
        if (!(out->text[k] = run_text(tok, &r, k, false))) {
            svc_fail(e, SVC_INTERNAL, "internal", "out of memory");
            goto done;
        }
        if (p->q.n_logprobs > 0) out->logprobs[k] = logprobs_json(tok, r.g[r.gi[k]], r.row[k]);
    }
    rc = 0;
done:
    for (int i = 0; i < r.ng; i++) gen_free(r.g[i]);
    if (rc) steer_out_free(out);
    return rc;
}

/* ---- store ---- */

int steer_store(db_conn *c, steer_plan *p, steer_out *out, svc_err *e)
{
    if (p->q.ephemeral) return svc_fail(e, SVC_INTERNAL, "internal", "an ephemeral steering plan is not stored");
    if (steer_plan_stored(p)) {
        snprintf(out->id, sizeof out->id, "%s", p->stored_id[STEER_STEERED]);
        return 0;
    }
    char *lp[2] = {NULL, NULL};
    for (int k = 0; k < 2; k++)
        if (out->logprobs[k] && !p->stored_id[k]) lp[k] = json_dumps(out->logprobs[k], JSON_COMPACT);
    const char *s_id = p->stored_id[STEER_STEERED], *d_id = p->stored_id[STEER_DEFAULT];
    PGresult *r;
    if (p->q.chat[0])
        r = db_exec(c, DB_STEER_CHAT_STORE,
                    (const char *const[]){p->q.model_id, p->chat_key[STEER_DEFAULT], p->chat_key[STEER_STEERED], p->num[0],
                                          p->num[1], p->num[2], p->num[3], p->num[4], p->num[5], p->num[6], p->features_json,
                                          p->q.steer_special ? "true" : "false", s_id ? NULL : out->text[STEER_STEERED],
                                          lp[STEER_STEERED], s_id, d_id ? NULL : out->text[STEER_DEFAULT], lp[STEER_DEFAULT],
                                          d_id, p->rendered[STEER_STEERED], p->rendered[STEER_DEFAULT]});
    else
        r = db_exec(c, DB_STEER_STORE,
                          (const char *const[]){p->q.model_id, p->prompt, p->num[0], p->num[1], p->num[2], p->num[3], p->num[4],
                                                p->num[5], p->num[6], p->features_json,
                                                s_id ? NULL : out->text[STEER_STEERED], lp[STEER_STEERED], s_id,
                                                d_id ? NULL : out->text[STEER_DEFAULT], lp[STEER_DEFAULT], d_id});
    free(lp[0]);
    free(lp[1]);
    int rc = 0;
    if (db_kind(r) != DB_OK) rc = (registry_db_err(e, r, "storing the outputs"), -1);
    else snprintf(out->id, sizeof out->id, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return rc;
}
