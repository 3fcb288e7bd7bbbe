/* dash_export.c: see dash_export.h. One context (dx) carries the metadata, the result, a cache
 * of token display strings and the error; rows are built as jansson trees one feature (or one
 * example) at a time and dumped straight to their file, so memory stays at one feature's rows
 * whatever the size of the run. */
#include "engine/dash_export.h"

#include <errno.h>     // defines: errno, EEXIST
#include <math.h>      // defines: round, isfinite
#include <stdio.h>     // defines: snprintf, fopen, rename
#include <stdlib.h>    // defines: malloc, free
#include <string.h>    // defines: strlen, strerror
#include <sys/stat.h>  // defines: mkdir, stat
#include <time.h>      // defines: time, gmtime_r, strftime
#include <unistd.h>    // defines: unlink
#include <zlib.h>      // defines: gzopen, gzwrite, gzclose

#define DX_NP_BATCH 1024   /* Neuronpedia's batch width (features and activations) */
#define DX_SAED_BATCH 128  /* SAEDashboard's n_features_at_a_time default */
/* %.15g prints every value rounded to 5 decimals in its shortest form (0.12345, not
 * 0.12345000000000001) and keeps unrounded fractions to 15 significant digits. */
#define DX_DUMP (JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15))
#define DX_PATH 4096

typedef struct dx {
    const dash_export_meta *m;
    const dash_run_result *r;
    int T, n, F, d_sae;
    const char *creator_id, *created_at;
    char now[40];
    char **tokstr;  /* (V) display strings filled on first use; NULL = no cache */
    int V;
    char *err;
    size_t errlen;
    int bad;        /* a jansson constructor failed: out of memory or invalid UTF-8 in metadata */
} dx;

/* ---- numbers and JSON values ---- */

static double dx_round(double v, double scale)
{
    double r = round(v * scale) / scale;
    return r == 0 ? 0.0 : r; /* no "-0.0" */
}
static double r5(double v) { return dx_round(v, 1e5); }
static double r3(double v) { return dx_round(v, 1e3); }

/* jansson refuses NaN/Inf; JSON has no spelling for them. */
static json_t *jreal(double v) { return isfinite(v) ? json_real(v) : json_null(); }

static json_t *jstr(const char *s) { return s ? json_string(s) : json_null(); }

static void put(dx *x, json_t *o, const char *k, json_t *v)
{
    if (!v || json_object_set_new(o, k, v)) x->bad = 1;
}

static void add(dx *x, json_t *a, json_t *v)
{
    if (!v || json_array_append_new(a, v)) x->bad = 1;
}

static json_t *jfloats5(dx *x, const float *v, int n)
{
    json_t *a = json_array();
    if (!a) return NULL;
    for (int i = 0; i < n; i++) add(x, a, jreal(r5(v[i])));
    return a;
}

static json_t *jints32(dx *x, const int32_t *v, int n)
{
    json_t *a = json_array();
    if (!a) return NULL;
    for (int i = 0; i < n; i++) add(x, a, json_integer(v[i]));
    return a;
}

static json_t *jints64(dx *x, const int64_t *v, int n)
{
    json_t *a = json_array();
    if (!a) return NULL;
    for (int i = 0; i < n; i++) add(x, a, json_integer(v[i]));
    return a;
}

/* A token's display string; ids outside the vocabulary read "<|outofrange|>" as SAEDashboard
 * writes them. */
static json_t *dx_token(dx *x, int32_t id)
{
    if (x->tokstr && id >= 0 && id < x->V) {
        if (!x->tokstr[id] && !(x->tokstr[id] = tok_token_str(x->m->tok, id))) return NULL;
        return json_string(x->tokstr[id]);
    }
    char *s = tok_token_str(x->m->tok, id);
    json_t *j = json_string(s ? s : "<|outofrange|>");
    free(s);
    return j;
}

static json_t *jtokens(dx *x, const int32_t *ids, int n)
{
    json_t *a = json_array();
    if (!a) return NULL;
    for (int i = 0; i < n; i++) add(x, a, dx_token(x, ids[i]));
    return a;
}

/* ---- context ---- */

static int dx_init(dx *x, const dash_export_meta *m, const dash_run_result *r, int cache, char *err, size_t errlen)
{
    memset(x, 0, sizeof *x);
    x->err = err;
    x->errlen = errlen;
    err[0] = '\0';
    if (!m || !r || !r->features) {
        snprintf(err, errlen, "export: no metadata or no result");
        return -1;
    }
    if (!m->model_id || !m->source_id || !m->set_name || !m->hook_name || !m->prompts || !m->tok) {
        snprintf(err, errlen, "export: model_id, source_id, set_name, hook_name, prompts and tok are required");
        return -1;
    }
    if ((m->n_prompts && m->n_prompts != r->n_prompts) || (m->n_tokens_in_prompt && m->n_tokens_in_prompt != r->T)) {
        snprintf(err, errlen, "export: metadata says %d prompts × %d tokens, the result has %d × %d", m->n_prompts,
                 m->n_tokens_in_prompt, r->n_prompts, r->T);
        return -1;
    }
    if (r->T < 1 || r->f1 <= r->f0) {
        snprintf(err, errlen, "export: empty result");
        return -1;
    }
    for (int i = 1; i < r->f1 - r->f0; i++)
        if (r->features[i].index <= r->features[i - 1].index) {
            snprintf(err, errlen, "export: feature indices must increase (%d after %d)", r->features[i].index,
                     r->features[i - 1].index);
            return -1;
        }
    x->m = m;
    x->r = r;
    x->T = r->T;
    x->n = r->n_prompts;
    x->F = r->f1 - r->f0;
    x->d_sae = m->d_sae > 0 ? m->d_sae : r->f1;
    x->creator_id = m->creator_id ? m->creator_id : m->creator_name;
    if (m->created_at) {
        x->created_at = m->created_at;
    } else {
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(x->now, sizeof x->now, "%Y-%m-%dT%H:%M:%S.000Z", &tm);
        x->created_at = x->now;
    }
    if (cache) {
        x->V = tok_vocab_size(m->tok);
        x->tokstr = x->V > 0 ? calloc((size_t)x->V, sizeof *x->tokstr) : NULL; /* no cache: slower, same output */
    }
    return 0;
}

static void dx_free(dx *x)
{
    if (x->tokstr)
        for (int i = 0; i < x->V; i++) free(x->tokstr[i]);
    free(x->tokstr);
    x->tokstr = NULL;
}

/* The error for a row that could not be built; -1. */
static int dx_bad(dx *x, const char *what)
{
    if (!x->err[0]) snprintf(x->err, x->errlen, "export: %s: out of memory or invalid UTF-8 in the metadata", what);
    return -1;
}

/* ---- examples: the one place values, windows and bins are decided ---- */

/* The value written for position t of example e of feature fi: BOS positions 0, 5 decimals. */
static double dx_value(const dx *x, int fi, int e, int t)
{
    const dash_example *ex = &x->r->features[fi].examples[e];
    int32_t id = x->m->prompts[(size_t)ex->prompt * x->T + t];
    if (x->m->bos_id >= 0 && id == x->m->bos_id) return 0;
    return r5(x->r->example_values[fi][(size_t)e * x->T + t]);
}

typedef struct dx_win {
    int start;      /* first position written: 1 when SAEDashboard drops the BOS, else 0 */
    double maxv, minv;
    int argmax;     /* first index of maxv in the written window */
} dx_win;

static int dx_example_ok(dx *x, int fi, int e)
{
    if (fi < 0 || fi >= x->F || e < 0 || e >= x->r->features[fi].n_examples || !x->r->example_values ||
        !x->r->example_values[fi]) {
        snprintf(x->err, x->errlen, "export: feature %d has no example %d", fi, e);
        return 0;
    }
    const dash_feature *f = &x->r->features[fi];
    const dash_example *ex = &f->examples[e];
    if (ex->prompt < 0 || ex->prompt >= x->n || ex->pos < 0 || ex->pos >= x->T || ex->group >= f->n_intervals) {
        snprintf(x->err, x->errlen, "export: feature %d example %d is outside the prompts or intervals", f->index, e);
        return 0;
    }
    return 1;
}

static void dx_window(const dx *x, int fi, int e, int drop_first, dx_win *w)
{
    w->start = drop_first && x->T > 1 ? 1 : 0;
    w->argmax = 0;
    w->maxv = w->minv = dx_value(x, fi, e, w->start);
    for (int t = w->start + 1; t < x->T; t++) {
        double v = dx_value(x, fi, e, t);
        if (v > w->maxv) {
            w->maxv = v;
            w->argmax = t - w->start;
        }
        if (v < w->minv) w->minv = v;
    }
}

static json_t *dx_example(dx *x, int fi, int e, int style)
{
    if (!dx_example_ok(x, fi, e)) return NULL;
    const dash_feature *f = &x->r->features[fi];
    const dash_example *ex = &f->examples[e];
    dx_win w;
    dx_window(x, fi, e, style == DASH_EXPORT_SAEDASHBOARD && x->m->prepend_bos, &w);
    const int32_t *ids = x->m->prompts + (size_t)ex->prompt * x->T;
    json_t *values = json_array();
    if (values)
        for (int t = w.start; t < x->T; t++) add(x, values, jreal(dx_value(x, fi, e, t)));
    json_t *tokens = jtokens(x, ids + w.start, x->T - w.start);
    /* SAEDashboard's bins: the top group is (-1, max at 3 decimals, -1); interval j is
     * [lo, hi] with the fraction of all positions inside. */
    double bmin = -1, bmax = r3(f->max_value), bcont = -1;
    if (ex->group >= 0) {
        const dash_interval *iv = &f->intervals[ex->group];
        bmin = r5(iv->lo);
        bmax = r5(iv->hi);
        bcont = iv->contains;
    }
    int qual = ex->pos - w.start;
    json_t *o = json_object();
    if (!o) {
        json_decref(values);
        json_decref(tokens);
        x->bad = 1;
        return NULL;
    }
    if (style == DASH_EXPORT_SAEDASHBOARD) {
        put(x, o, "bin_min", jreal(bmin));
        put(x, o, "bin_max", jreal(bmax));
        put(x, o, "bin_contains", jreal(bcont));
        put(x, o, "tokens", tokens);
        put(x, o, "values", values);
        put(x, o, "qualifying_token_index", json_integer(qual));
    } else {
        char id[26], index[16], data[24];
        dash_export_activation_id(x->m->model_id, x->m->source_id, f->index, e, id);
        snprintf(index, sizeof index, "%d", f->index);
        snprintf(data, sizeof data, "%lld", (long long)ex->prompt);
        put(x, o, "id", json_string(id));
        put(x, o, "modelId", jstr(x->m->model_id));
        put(x, o, "layer", jstr(x->m->source_id));
        put(x, o, "index", json_string(index));
        put(x, o, "tokens", tokens);
        put(x, o, "values", values);
        put(x, o, "maxValue", jreal(w.maxv));
        put(x, o, "maxValueTokenIndex", json_integer(w.argmax));
        put(x, o, "minValue", jreal(w.minv));
        put(x, o, "binMin", jreal(bmin));
        put(x, o, "binMax", jreal(bmax));
        put(x, o, "binContains", jreal(bcont));
        put(x, o, "qualifyingTokenIndex", json_integer(qual));
        put(x, o, "dfaValues", json_array());
        put(x, o, "dfaTargetIndex", json_null());
        put(x, o, "dfaMaxValue", json_null());
        put(x, o, "lossValues", json_array());
        put(x, o, "logitContributions", json_null());
        put(x, o, "dataIndex", json_string(data));
        put(x, o, "dataSource", json_null());
        put(x, o, "creatorId", jstr(x->creator_id));
        put(x, o, "createdAt", jstr(x->created_at));
    }
    if (x->bad) {
        json_decref(o);
        dx_bad(x, "activation row");
        return NULL;
    }
    return o;
}

/* The per-feature tables both layouts carry, under the same names. */
static void dx_tables(dx *x, json_t *o, const dash_feature *f)
{
    put(x, o, "neuron_alignment_indices", jints32(x, f->align_idx, f->n_align));
    put(x, o, "neuron_alignment_values", jfloats5(x, f->align_values, f->n_align));
    put(x, o, "neuron_alignment_l1", jfloats5(x, f->align_l1, f->n_align));
    /* _l1 holds the cosine similarity, as in SAEDashboard */
    put(x, o, "correlated_neurons_indices", jints32(x, f->corr_neuron_idx, f->n_corr_neurons));
    put(x, o, "correlated_neurons_l1", jfloats5(x, f->corr_neuron_cos, f->n_corr_neurons));
    put(x, o, "correlated_neurons_pearson", jfloats5(x, f->corr_neuron_pearson, f->n_corr_neurons));
    put(x, o, "correlated_features_indices", jints32(x, f->corr_feature_idx, f->n_corr_features));
    put(x, o, "correlated_features_l1", jfloats5(x, f->corr_feature_cos, f->n_corr_features));
    put(x, o, "correlated_features_pearson", jfloats5(x, f->corr_feature_pearson, f->n_corr_features));
    put(x, o, "neg_str", jtokens(x, f->neg_ids, f->n_logits));
    put(x, o, "neg_values", jfloats5(x, f->neg_values, f->n_logits));
    put(x, o, "pos_str", jtokens(x, f->pos_ids, f->n_logits));
    put(x, o, "pos_values", jfloats5(x, f->pos_values, f->n_logits));
    put(x, o, "frac_nonzero", jreal(f->frac_nonzero));
    put(x, o, "freq_hist_data_bar_values", jfloats5(x, f->hist_values, f->n_hist));
    put(x, o, "freq_hist_data_bar_heights", jints64(x, f->hist_heights, f->n_hist));
    put(x, o, "logits_hist_data_bar_heights", jints64(x, f->logit_hist_heights, f->n_logit_hist));
    put(x, o, "logits_hist_data_bar_values", jfloats5(x, f->logit_hist_values, f->n_logit_hist));
}

static json_t *dx_neuron(dx *x, int fi)
{
    const dash_feature *f = &x->r->features[fi];
    /* maxActApprox: the largest value of the windows written, as Neuronpedia's converter. */
    double max_act = 0;
    for (int e = 0; e < f->n_examples; e++) {
        if (!dx_example_ok(x, fi, e)) return NULL;
        dx_win w;
        dx_window(x, fi, e, 0, &w);
        if (w.maxv > max_act) max_act = w.maxv;
    }
    char index[16];
    snprintf(index, sizeof index, "%d", f->index);
    json_t *o = json_object();
    if (!o) {
        dx_bad(x, "feature row");
        return NULL;
    }
    put(x, o, "modelId", jstr(x->m->model_id));
    put(x, o, "layer", jstr(x->m->source_id));
    put(x, o, "index", json_string(index));
    put(x, o, "sourceSetName", jstr(x->m->set_name));
    put(x, o, "creatorId", jstr(x->creator_id));
    put(x, o, "createdAt", jstr(x->created_at));
    put(x, o, "maxActApprox", jreal(max_act));
    put(x, o, "hasVector", json_false());
    put(x, o, "vector", json_array());
    put(x, o, "vectorLabel", json_null());
    put(x, o, "vectorDefaultSteerStrength", json_real(10));
    put(x, o, "hookName", jstr(x->m->hook_name));
    put(x, o, "topkCosSimIndices", jints32(x, f->cos_idx, f->n_cos));
    put(x, o, "topkCosSimValues", jfloats5(x, f->cos_values, f->n_cos));
    dx_tables(x, o, f);
    put(x, o, "decoder_weights_dist", json_array());
    if (x->bad) {
        json_decref(o);
        dx_bad(x, "feature row");
        return NULL;
    }
    return o;
}

static json_t *dx_saed_feature(dx *x, int fi)
{
    const dash_feature *f = &x->r->features[fi];
    json_t *o = json_object(), *acts = json_array();
    if (!o || !acts) {
        json_decref(o);
        json_decref(acts);
        dx_bad(x, "feature");
        return NULL;
    }
    put(x, o, "feature_index", json_integer(f->index));
    dx_tables(x, o, f);
    put(x, o, "n_prompts_total", json_integer(x->n));
    put(x, o, "n_tokens_in_prompt", json_integer(x->T));
    put(x, o, "dataset", json_string(x->m->dataset ? x->m->dataset : ""));
    put(x, o, "decoder_weights_dist", json_array());
    for (int e = 0; e < f->n_examples; e++) {
        json_t *a = dx_example(x, fi, e, DASH_EXPORT_SAEDASHBOARD);
        if (!a) {
            json_decref(acts);
            json_decref(o);
            return NULL;
        }
        add(x, acts, a);
    }
    put(x, o, "activations", acts);
    put(x, o, "vector", json_array());
    if (x->bad) {
        json_decref(o);
        dx_bad(x, "feature");
        return NULL;
    }
    return o;
}

/* ---- files: NAME.tmp, renamed into place on success ---- */

typedef struct dx_file {
    char path[DX_PATH], tmp[DX_PATH + 8];
    FILE *f;    /* plain */
    gzFile gz;  /* or gzip */
} dx_file;

static int dx_mkdirs(dx *x, const char *dir)
{
    char p[DX_PATH];
    if (snprintf(p, sizeof p, "%s", dir) >= (int)sizeof p) {
        snprintf(x->err, x->errlen, "export: path too long: %s", dir);
        return -1;
    }
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = '\0';
        if (mkdir(p, 0755) && errno != EEXIST) {
            snprintf(x->err, x->errlen, "export: mkdir %s: %s", p, strerror(errno));
            return -1;
        }
        *s = '/';
    }
    struct stat st;
    if (mkdir(p, 0755) && errno != EEXIST) {
        snprintf(x->err, x->errlen, "export: mkdir %s: %s", p, strerror(errno));
        return -1;
    }
    if (stat(p, &st) || !S_ISDIR(st.st_mode)) {
        snprintf(x->err, x->errlen, "export: %s is not a directory", p);
        return -1;
    }
    return 0;
}

static int dx_open(dx *x, dx_file *o, const char *dir, const char *name, int gz)
{
    memset(o, 0, sizeof *o);
    if (snprintf(o->path, sizeof o->path, "%s/%s", dir, name) >= (int)sizeof o->path) {
        snprintf(x->err, x->errlen, "export: path too long: %s/%s", dir, name);
        return -1;
    }
    snprintf(o->tmp, sizeof o->tmp, "%s.tmp", o->path);
    errno = 0;
    if (gz)
        o->gz = gzopen(o->tmp, "wb5"); /* level 5, as Neuronpedia's exporter */
    else
        o->f = fopen(o->tmp, "wb");
    if (!o->gz && !o->f) {
        snprintf(x->err, x->errlen, "export: create %s: %s", o->tmp, errno ? strerror(errno) : "out of memory");
        return -1;
    }
    return 0;
}

static int dx_write(dx *x, dx_file *o, const char *buf, size_t n)
{
    if (!n) return 0;
    int ok = o->gz ? gzwrite(o->gz, buf, (unsigned)n) == (int)n : fwrite(buf, 1, n, o->f) == n;
    if (!ok) {
        int zerr = 0;
        const char *why = o->gz ? gzerror(o->gz, &zerr) : strerror(errno);
        snprintf(x->err, x->errlen, "export: write %s: %s", o->tmp, zerr == Z_ERRNO ? strerror(errno) : why);
        return -1;
    }
    return 0;
}

/* Drops a file that failed (or whose row failed): no NAME.tmp is left behind. */
static void dx_abort(dx_file *o)
{
    if (o->gz) gzclose(o->gz);
    if (o->f) fclose(o->f);
    if (o->gz || o->f) unlink(o->tmp);
    o->gz = NULL;
    o->f = NULL;
}

static int dx_close(dx *x, dx_file *o)
{
    int ok = o->gz ? gzclose(o->gz) == Z_OK : fclose(o->f) == 0;
    o->gz = NULL;
    o->f = NULL;
    if (!ok) {
        snprintf(x->err, x->errlen, "export: close %s: %s", o->tmp, strerror(errno));
        unlink(o->tmp);
        return -1;
    }
    if (rename(o->tmp, o->path)) {
        snprintf(x->err, x->errlen, "export: rename %s: %s", o->tmp, strerror(errno));
        unlink(o->tmp);
        return -1;
    }
    return 0;
}

/* Writes v compactly followed by tail; takes v's reference. */
static int dx_put_json(dx *x, dx_file *o, json_t *v, const char *tail, size_t flags)
{
    if (!v) return -1;
    char *s = json_dumps(v, flags);
    json_decref(v);
    if (!s) {
        snprintf(x->err, x->errlen, "export: %s: out of memory", o->path);
        return -1;
    }
    int rc = dx_write(x, o, s, strlen(s)) || dx_write(x, o, tail, strlen(tail)) ? -1 : 0;
    free(s);
    return rc;
}

/* A one-document file (run_settings.json, the one-row .jsonl files). */
static int dx_write_doc(dx *x, const char *dir, const char *name, json_t *v, size_t flags)
{
    dx_file o;
    if (!v || x->bad) {
        json_decref(v);
        return dx_bad(x, name);
    }
    if (dx_open(x, &o, dir, name, 0)) {
        json_decref(v);
        return -1;
    }
    if (dx_put_json(x, &o, v, "\n", flags)) {
        dx_abort(&o);
        return -1;
    }
    return dx_close(x, &o);
}

/* ---- SAEDashboard ---- */

/* "{layer}-{set}__{suffix}" → suffix; NULL when the source id has no suffix. */
static const char *dx_suffix(const dx *x)
{
    char pre[512];
    int n = snprintf(pre, sizeof pre, "%d-%s__", x->m->layer, x->m->set_name);
    if (n <= 0 || n >= (int)sizeof pre || strncmp(x->m->source_id, pre, (size_t)n) || !x->m->source_id[n]) return NULL;
    return x->m->source_id + n;
}

static json_t *dx_run_settings(dx *x, const char *dir, int B)
{
    dash_run_opts def;
    dash_run_opts_default(&def);
    const dash_run_opts *ro = x->m->run ? x->m->run : &def;
    const dash_opts *so = &ro->stats;
    const dash_wopts *wo = &ro->weights;
    const int first = x->r->features[0].index / B, last = x->r->features[x->F - 1].index / B;
    json_t *o = json_object(), *s = json_object(), *range = json_array();
    if (!o || !s || !range) {
        json_decref(o);
        json_decref(s);
        json_decref(range);
        return NULL;
    }
    /* NeuronpediaRunnerConfig's fields, as SAEDashboard dumps cfg.__dict__ */
    put(x, o, "sae_set", jstr(x->m->saelens_release ? x->m->saelens_release : x->m->set_name));
    put(x, o, "sae_path", jstr(x->m->saelens_sae_id ? x->m->saelens_sae_id : x->m->hook_name));
    put(x, o, "outputs_dir", jstr(dir));
    put(x, o, "np_sae_id_suffix", jstr(dx_suffix(x)));
    put(x, o, "np_set_name", jstr(x->m->set_name));
    put(x, o, "from_local_sae", json_boolean(!x->m->saelens_release));
    put(x, o, "huggingface_dataset_path", json_string(x->m->dataset ? x->m->dataset : ""));
    put(x, o, "n_prompts_total", json_integer(x->n));
    put(x, o, "n_tokens_in_prompt", json_integer(x->T));
    put(x, o, "n_prompts_in_forward_pass", json_integer(ro->batch_prompts > 0 ? ro->batch_prompts : 32));
    put(x, o, "n_features_at_a_time", json_integer(B));
    put(x, o, "start_batch", json_integer(first));
    put(x, o, "end_batch", json_integer(last + 1));
    put(x, o, "n_quantiles", json_integer(so->n_intervals));
    put(x, o, "top_acts_group_size", json_integer(so->top_k));
    put(x, o, "quantile_group_size", json_integer(so->per_interval));
    put(x, o, "use_dfa", json_false());
    put(x, o, "model_dtype", json_string("float32"));
    put(x, o, "sae_dtype", json_string("float32"));
    put(x, o, "model_id", jstr(x->m->model_id));
    put(x, o, "layer", json_integer(x->m->layer));
    put(x, o, "hook_name", jstr(x->m->hook_name));
    put(x, o, "prepend_bos", json_boolean(x->m->prepend_bos));
    put(x, o, "shuffle_tokens", json_false());
    put(x, o, "prefix_tokens", json_null());
    put(x, o, "suffix_tokens", json_null());
    put(x, o, "ignore_positions", json_null());
    put(x, o, "seed", json_integer((json_int_t)so->seed));
    put(x, o, "generated_by", json_string("saed"));
    /* what saed adds: everything needed to reproduce the run */
    add(x, range, json_integer(x->r->f0));
    add(x, range, json_integer(x->r->f1));
    put(x, s, "source_id", jstr(x->m->source_id));
    put(x, s, "d_sae", json_integer(x->d_sae));
    put(x, s, "feature_range", range);
    put(x, s, "bos_id", json_integer(x->m->bos_id));
    put(x, s, "tokens_processed", json_integer(x->r->tokens));
    put(x, s, "hist_bins", json_integer(so->hist_bins));
    put(x, s, "hist_sub", json_integer(so->hist_sub));
    put(x, s, "hist_exact_max", json_integer(so->hist_exact_max));
    put(x, s, "interval_zeros", json_boolean(so->interval_zeros));
    put(x, s, "interval_cap", json_integer(so->interval_cap));
    put(x, s, "corr_block", json_integer(so->corr_block));
    put(x, s, "logit_k", json_integer(wo->logit_k));
    put(x, s, "logit_bins", json_integer(wo->logit_bins));
    put(x, s, "cos_k", json_integer(wo->cos_k));
    put(x, s, "value_decimals", json_integer(5));
    put(x, s, "created_at", jstr(x->created_at));
    put(x, o, "saed", s);
    return o;
}

int dash_export_saedashboard(const char *dir, const dash_export_meta *m, const dash_run_result *r, char *err,
                             size_t errlen)
{
    dx x;
    if (dx_init(&x, m, r, 1, err, errlen)) return -1;
    const int B = m->n_features_per_batch > 0 ? m->n_features_per_batch : DX_SAED_BATCH;
    int rc = -1;
    dx_file o = {0};
    if (dx_mkdirs(&x, dir)) goto out;
    if (dx_write_doc(&x, dir, "run_settings.json", dx_run_settings(&x, dir, B),
                     JSON_INDENT(4) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15)))
        goto out;
    /* The batch header as SAEDashboard's to_dict, then "features" streamed one at a time. */
    json_t *h = json_object();
    if (!h) goto oom;
    put(&x, h, "model_id", jstr(m->model_id));
    put(&x, h, "layer", json_integer(m->layer));
    put(&x, h, "sae_set", jstr(m->set_name));
    put(&x, h, "sae_id_suffix", jstr(dx_suffix(&x)));
    char *head = x.bad ? NULL : json_dumps(h, DX_DUMP);
    json_decref(h);
    if (!head) goto oom;
    head[strlen(head) - 1] = '\0'; /* drop the closing '}' */
    int batch = -1, in_batch = 0;
    for (int fi = 0; fi < x.F; fi++) {
        int b = r->features[fi].index / B;
        if (b != batch) {
            if (batch >= 0 && (dx_write(&x, &o, "]}\n", 3) || dx_close(&x, &o))) goto fail_head;
            char name[64];
            snprintf(name, sizeof name, "batch-%d.json", b);
            if (dx_open(&x, &o, dir, name, 0) || dx_write(&x, &o, head, strlen(head)) ||
                dx_write(&x, &o, ",\"features\":[", 13))
                goto fail_head;
            batch = b;
            in_batch = 0;
        }
        json_t *f = dx_saed_feature(&x, fi);
        if (!f || (in_batch && dx_write(&x, &o, ",", 1)) || dx_put_json(&x, &o, f, "", DX_DUMP)) goto fail_head;
        in_batch++;
    }
    if (dx_write(&x, &o, "]}\n", 3) || dx_close(&x, &o)) goto fail_head;
    free(head);
    rc = 0;
    goto out;
fail_head:
    free(head);
    dx_abort(&o);
    if (!err[0]) snprintf(err, errlen, "export: %s: failed", o.path);
    goto out;
oom:
    dx_bad(&x, "batch header");
out:
    dx_free(&x);
    return rc;
}

/* ---- Neuronpedia ---- */

static json_t *dx_urls(dx *x)
{
    json_t *a = json_array();
    if (a && x->m->url) add(x, a, json_string(x->m->url));
    return a;
}

static int dx_np_meta(dx *x, const char *dir)
{
    const dash_export_meta *m = x->m;
    size_t flags = DX_DUMP;
    json_t *o;
    /* SourceRelease */
    if (!(o = json_object())) return dx_bad(x, "release.jsonl");
    put(x, o, "name", jstr(m->release_id ? m->release_id : m->set_name));
    put(x, o, "description", json_string(m->release_title ? m->release_title : ""));
    put(x, o, "descriptionShort", jstr(m->release_title));
    put(x, o, "creatorName", json_string(m->creator_name ? m->creator_name : ""));
    put(x, o, "creatorNameShort", jstr(m->creator_name));
    put(x, o, "creatorEmail", json_null());
    put(x, o, "creatorId", jstr(x->creator_id));
    put(x, o, "visibility", json_string("PUBLIC"));
    put(x, o, "isNewUi", json_false());
    put(x, o, "featured", json_false());
    put(x, o, "urls", dx_urls(x));
    put(x, o, "defaultSourceSetName", jstr(m->set_name));
    put(x, o, "defaultSourceId", jstr(m->source_id));
    put(x, o, "defaultUmapSourceIds", json_array());
    put(x, o, "createdAt", jstr(x->created_at));
    if (dx_write_doc(x, dir, "release.jsonl", o, flags)) return -1;
    /* Model */
    size_t ml = strlen(m->model_id);
    if (!(o = json_object())) return dx_bad(x, "model.jsonl");
    put(x, o, "id", jstr(m->model_id));
    put(x, o, "displayNameShort", jstr(m->model_id));
    put(x, o, "displayName", jstr(m->model_id));
    put(x, o, "creatorId", jstr(x->creator_id));
    put(x, o, "owner", json_string(""));
    put(x, o, "website", json_null());
    put(x, o, "tlensId", json_null());
    put(x, o, "dimension", m->d_model > 0 ? json_integer(m->d_model) : json_null());
    put(x, o, "layers", json_integer(m->model_layers > 0 ? m->model_layers : 0));
    put(x, o, "neuronsPerLayer", json_integer(0));
    put(x, o, "instruct", json_boolean(ml >= 3 && !strcmp(m->model_id + ml - 3, "-it")));
    put(x, o, "visibility", json_string("PUBLIC"));
    /* Nothing says the importing instance can run this model. */
    put(x, o, "inferenceEnabled", json_false());
    put(x, o, "defaultSourceSetName", jstr(m->set_name));
    put(x, o, "defaultSourceId", jstr(m->source_id));
    put(x, o, "defaultGraphSourceSetName", json_null());
    put(x, o, "createdAt", jstr(x->created_at));
    put(x, o, "updatedAt", jstr(x->created_at));
    if (dx_write_doc(x, dir, "model.jsonl", o, flags)) return -1;
    /* SourceSet */
    char desc[512];
    snprintf(desc, sizeof desc, "%s, %d features", m->hook_name, x->d_sae);
    if (!(o = json_object())) return dx_bad(x, "sourceset.jsonl");
    put(x, o, "modelId", jstr(m->model_id));
    put(x, o, "name", jstr(m->set_name));
    put(x, o, "description", jstr(m->set_description ? m->set_description : desc));
    put(x, o, "type", json_string(""));
    put(x, o, "creatorName", json_string(m->creator_name ? m->creator_name : ""));
    put(x, o, "creatorEmail", json_null());
    put(x, o, "creatorId", jstr(x->creator_id));
    put(x, o, "urls", dx_urls(x));
    put(x, o, "releaseName", jstr(m->release_id));
    put(x, o, "hasDashboards", json_true());
    put(x, o, "visibility", json_string("PUBLIC"));
    put(x, o, "defaultOfModelId", json_null());
    put(x, o, "defaultRange", json_integer(1));
    put(x, o, "defaultShowBreaks", json_true());
    put(x, o, "showDfa", json_false());
    put(x, o, "showCorrelated", json_false());
    put(x, o, "showHeadAttribution", json_false());
    put(x, o, "showUmap", json_false());
    put(x, o, "createdAt", jstr(x->created_at));
    if (dx_write_doc(x, dir, "sourceset.jsonl", o, flags)) return -1;
    /* Source */
    if (!(o = json_object())) return dx_bad(x, "source.jsonl");
    put(x, o, "id", jstr(m->source_id));
    put(x, o, "modelId", jstr(m->model_id));
    put(x, o, "setName", jstr(m->set_name));
    put(x, o, "creatorId", jstr(x->creator_id));
    put(x, o, "hasDashboards", json_true());
    put(x, o, "inferenceEnabled", json_false());
    put(x, o, "inferenceHosts", json_array());
    put(x, o, "saelensConfig", json_null());
    put(x, o, "saelensRelease", jstr(m->saelens_release));
    put(x, o, "saelensSaeId", jstr(m->saelens_sae_id));
    put(x, o, "hfRepoId", jstr(m->hf_repo_id));
    put(x, o, "hfFolderId", jstr(m->hf_folder_id));
    put(x, o, "visibility", json_string("PUBLIC"));
    put(x, o, "defaultOfModelId", json_null());
    put(x, o, "hasUmap", json_false());
    put(x, o, "hasUmapLogSparsity", json_false());
    put(x, o, "hasUmapClusters", json_false());
    put(x, o, "num_prompts", json_integer(x->n));
    put(x, o, "num_tokens_in_prompt", json_integer(x->T));
    put(x, o, "dataset", jstr(m->dataset));
    put(x, o, "notes", json_null());
    put(x, o, "createdAt", jstr(x->created_at));
    return dx_write_doc(x, dir, "source.jsonl", o, flags);
}

int dash_export_neuronpedia(const char *dir, const dash_export_meta *m, const dash_run_result *r, char *err,
                            size_t errlen)
{
    dx x;
    if (dx_init(&x, m, r, 1, err, errlen)) return -1;
    int rc = -1;
    dx_file fo = {0}, ao = {0};
    char sub[DX_PATH], fdir[DX_PATH], adir[DX_PATH];
    snprintf(fdir, sizeof fdir, "%s/features", dir);
    snprintf(adir, sizeof adir, "%s/activations", dir);
    snprintf(sub, sizeof sub, "%s/explanations", dir);
    if (dx_mkdirs(&x, dir) || dx_mkdirs(&x, fdir) || dx_mkdirs(&x, adir) || dx_mkdirs(&x, sub) || dx_np_meta(&x, dir))
        goto out;
    int batch = -1;
    for (int fi = 0; fi < x.F; fi++) {
        const dash_feature *f = &r->features[fi];
        int b = f->index / DX_NP_BATCH;
        if (b != batch) {
            if (batch >= 0 && (dx_close(&x, &fo) || dx_close(&x, &ao))) goto fail;
            char name[64];
            snprintf(name, sizeof name, "batch-%d.jsonl.gz", b);
            if (dx_open(&x, &fo, fdir, name, 1) || dx_open(&x, &ao, adir, name, 1)) goto fail;
            batch = b;
        }
        if (dx_put_json(&x, &fo, dx_neuron(&x, fi), "\n", DX_DUMP)) goto fail;
        for (int e = 0; e < f->n_examples; e++)
            if (dx_put_json(&x, &ao, dx_example(&x, fi, e, DASH_EXPORT_NEURONPEDIA), "\n", DX_DUMP)) goto fail;
    }
    if (dx_close(&x, &fo) || dx_close(&x, &ao)) goto fail;
    rc = 0;
    goto out;
fail:
    dx_abort(&fo);
    dx_abort(&ao);
out:
    dx_free(&x);
    return rc;
}

/* ---- public single-row builders ---- */

json_t *dash_export_example(const dash_export_meta *m, const dash_run_result *r, int fi, int e, int style, char *err,
                            size_t errlen)
{
    dx x;
    if (dx_init(&x, m, r, 0, err, errlen)) return NULL;
    return dx_example(&x, fi, e, style);
}

json_t *dash_export_neuron(const dash_export_meta *m, const dash_run_result *r, int fi, char *err, size_t errlen)
{
    dx x;
    if (dx_init(&x, m, r, 0, err, errlen)) return NULL;
    if (fi < 0 || fi >= x.F) {
        snprintf(err, errlen, "export: no feature %d in the result", fi);
        return NULL;
    }
    return dx_neuron(&x, fi);
}

/* ---- activation ids ---- */

static uint64_t dx_mix(uint64_t z)
{
    /* splitmix64's finalizer: every input bit reaches every output bit */
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void dx_feed(uint64_t h[2], const char *s)
{
    /* FNV-1a twice, with different bases and multipliers, over the bytes and the NUL */
    for (const unsigned char *p = (const unsigned char *)s;; p++) {
        h[0] = (h[0] ^ *p) * 0x100000001b3ull;
        h[1] = (h[1] ^ *p) * 0x9e3779b97f4a7c15ull;
        if (!*p) break;
    }
}

void dash_export_activation_id(const char *model_id, const char *source_id, int index, int e, char out[26])
{
    static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
    uint64_t h[2] = {0xcbf29ce484222325ull, 0x6a09e667f3bcc909ull};
    char num[32];
    dx_feed(h, model_id ? model_id : "");
    dx_feed(h, source_id ? source_id : "");
    snprintf(num, sizeof num, "%d:%d", index, e);
    dx_feed(h, num);
    out[0] = 'c';
    for (int k = 0; k < 2; k++) {
        uint64_t v = dx_mix(h[k] ^ (k ? dx_mix(h[0]) : 0));
        for (int j = 0; j < 12; j++, v /= 36) out[1 + 12 * k + j] = digits[v % 36];
    }
    out[25] = '\0';
}
