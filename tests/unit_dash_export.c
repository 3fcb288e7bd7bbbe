/* unit_dash_export.c: both export layouts of a real dashboard run on tiny-a, read back with
 * jansson and zlib: the file sets and batch sizes, every example's tokens (display strings
 * of the prompt ids), values, qualifying index and bins against the result, the Neuron rows'
 * fields, unique deterministic activation ids, byte-identical output for the same input,
 * numeric-range batching across a batch boundary, and errors that name the file.
 * DX_KEEP=1 in the environment keeps the output directories under /tmp for inspection. */
#define _GNU_SOURCE    /* nftw */
#include <dirent.h>    // defines: opendir, readdir
#include <ftw.h>       // defines: nftw
#include <jansson.h>   // defines: json_loadb, json_object_get
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>  // defines: stat, mkdir
#include <unistd.h>
#include <zlib.h>      // defines: gzopen, gzread

#include "engine/dash_export.h"
#include "tests/t.h"

#define TINY "tests/data/models/tiny-a"
#define SAE_STD "tests/data/sae/tiny-a-res-standard"
#define THE_ID 383      /* " The" in GPT-2's vocabulary: every prompt holds it at position 3 */
#define BOS 50256

typedef struct fx {
    saed_backend *be;
    model *m;
    sae *s;
    tokenizer *tok;
    int32_t *prompts;
    int n, T;
    dash_run_opts o;
    dash_run_result r;
    dash_export_meta meta;
    char dir[64];
} fx;

static int fx_open(fx *x)
{
    char err[512];
    memset(x, 0, sizeof *x);
    x->be = backend_cpu_open();
    x->m = model_load(TINY, x->be, err, sizeof err);
    sae_load_opts lo = {.fold_dec_norm = 1};
    x->s = x->m ? sae_load(SAE_STD, x->be, &lo, err, sizeof err) : NULL;
    x->tok = x->s ? tok_load_dir(TINY, err, sizeof err) : NULL;
    if (!x->tok) {
        t_fail(__FILE__, __LINE__, "setup: %s", err);
        return -1;
    }
    x->n = 12;
    x->T = 16;
    x->prompts = malloc(sizeof(int32_t) * (size_t)x->n * x->T);
    uint32_t s = 11;
    for (int i = 0; i < x->n; i++)
        for (int t = 0; t < x->T; t++)
            x->prompts[i * x->T + t] =
                t == 0 ? BOS : t == 3 ? THE_ID : (int32_t)(((s = s * 1664525u + 1013904223u) >> 8) % 2000);
    dash_run_opts_default(&x->o);
    x->o.bos_id = BOS;
    x->o.batch_prompts = 5;
    if (dash_run(x->m, x->s, x->prompts, x->n, x->T, &x->o, &x->r, err, sizeof err)) {
        t_fail(__FILE__, __LINE__, "dash_run: %s", err);
        return -1;
    }
    x->meta = (dash_export_meta){.model_id = "tiny-a",
                                 .source_id = "1-res-test",
                                 .set_name = "res-test",
                                 .layer = 1,
                                 .hook_name = "blocks.1.hook_resid_pre",
                                 .dataset = "none/random-ids",
                                 .n_prompts = x->n,
                                 .n_tokens_in_prompt = x->T,
                                 .prepend_bos = 1,
                                 .bos_id = BOS,
                                 .d_sae = 512,
                                 .creator_name = "saed tests",
                                 .release_id = "tiny-release",
                                 .release_title = "Tiny release",
                                 .created_at = "2025-01-02T03:04:05.000Z",
                                 .prompts = x->prompts,
                                 .tok = x->tok,
                                 .run = &x->o};
    snprintf(x->dir, sizeof x->dir, "/tmp/saed-dash-export-XXXXXX");
    if (!mkdtemp(x->dir)) {
        t_fail(__FILE__, __LINE__, "mkdtemp");
        return -1;
    }
    return 0;
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
    (void)sb;
    (void)flag;
    (void)f;
    return remove(p);
}

static void fx_close(fx *x)
{
    if (x->dir[0] == '/' && !getenv("DX_KEEP")) nftw(x->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    dash_run_result_free(&x->r);
    free(x->prompts);
    tok_free(x->tok);
    sae_free(x->s);
    model_free(x->m);
    backend_close(x->be);
}

/* ---- reading back ---- */

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    for (size_t k; (k = fread(b + n, 1, cap - n, f)) > 0;)
        if ((n += k) == cap) b = realloc(b, cap *= 2);
    fclose(f);
    *len = n;
    return b;
}

static char *slurp_gz(const char *path, size_t *len)
{
    gzFile g = gzopen(path, "rb");
    if (!g) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    for (int k; (k = gzread(g, b + n, (unsigned)(cap - n))) > 0;)
        if ((n += (size_t)k) == cap) b = realloc(b, cap *= 2);
    gzclose(g);
    *len = n;
    return b;
}

static json_t *load_json(const char *path)
{
    size_t n;
    char *b = slurp(path, &n);
    if (!b) return NULL;
    json_error_t je;
    json_t *j = json_loadb(b, n, 0, &je);
    if (!j) t_fail(__FILE__, __LINE__, "%s: %s", path, je.text);
    free(b);
    return j;
}

/* Every line of a .jsonl (gz = 1: gzip) file as one array. */
static json_t *load_jsonl(const char *path, int gz)
{
    size_t n;
    char *b = gz ? slurp_gz(path, &n) : slurp(path, &n);
    if (!b) return NULL;
    json_t *rows = json_array();
    for (size_t i = 0; i < n;) {
        char *nl = memchr(b + i, '\n', n - i);
        size_t end = nl ? (size_t)(nl - b) : n;
        json_error_t je;
        json_t *row = json_loadb(b + i, end - i, 0, &je);
        if (!row) t_fail(__FILE__, __LINE__, "%s: %s", path, je.text);
        else json_array_append_new(rows, row);
        i = end + 1;
    }
    free(b);
    return rows;
}

/* Entries of a directory (without . and ..), sorted names joined by ','. */
static void list_dir(const char *dir, char *out, size_t cap)
{
    char names[64][64];
    int k = 0;
    out[0] = '\0';
    DIR *d = opendir(dir);
    if (!d) return;
    for (struct dirent *e; (e = readdir(d)) && k < 64;)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) snprintf(names[k++], 64, "%s", e->d_name);
    closedir(d);
    qsort(names, (size_t)k, 64, (int (*)(const void *, const void *))strcmp);
    for (int i = 0; i < k; i++) {
        strncat(out, names[i], cap - strlen(out) - 1);
        if (i + 1 < k) strncat(out, ",", cap - strlen(out) - 1);
    }
}

static int same_file(const char *a, const char *b)
{
    size_t na, nb;
    char *x = slurp(a, &na), *y = slurp(b, &nb);
    int same = x && y && na == nb && !memcmp(x, y, na);
    free(x);
    free(y);
    return same;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static double r5(double v) { return round(v * 1e5) / 1e5; }

static double num(const json_t *o, const char *k) { return json_number_value(json_object_get(o, k)); }

/* The value an export must show at position t of example e of feature fi. */
static double want_value(const fx *x, int fi, int e, int t)
{
    const dash_example *ex = &x->r.features[fi].examples[e];
    if (x->prompts[ex->prompt * x->T + t] == BOS) return 0;
    return r5(x->r.example_values[fi][e * x->T + t]);
}

static int tok_is(const tokenizer *tok, const json_t *s, int32_t id)
{
    char *want = tok_token_str(tok, id);
    int ok = want && json_is_string(s) && !strcmp(json_string_value(s), want);
    free(want);
    return ok;
}

/* Checks one example object against the result; drop = 1 for SAEDashboard's BOS-less window.
 * Returns the number of mismatches. */
static int check_example(const fx *x, int fi, int e, const json_t *a, int np)
{
    const dash_feature *f = &x->r.features[fi];
    const dash_example *ex = &f->examples[e];
    const int drop = !np, L = x->T - drop;
    const json_t *tokens = json_object_get(a, "tokens"), *values = json_object_get(a, "values");
    int bad = 0;
    bad += json_array_size(tokens) != (size_t)L || json_array_size(values) != (size_t)L;
    if (bad) return bad;
    for (int t = 0; t < L; t++) {
        bad += !tok_is(x->tok, json_array_get(tokens, t), x->prompts[ex->prompt * x->T + t + drop]);
        bad += json_number_value(json_array_get(values, t)) != want_value(x, fi, e, t + drop);
    }
    /* " The" sits at prompt position 3 */
    bad += strcmp(json_string_value(json_array_get(tokens, 3 - drop)), " The") != 0;
    if (np) bad += strcmp(json_string_value(json_array_get(tokens, 0)), "<|endoftext|>") != 0;
    int q = (int)json_integer_value(json_object_get(a, np ? "qualifyingTokenIndex" : "qualifying_token_index"));
    bad += q != ex->pos - drop;
    bad += fabs(json_number_value(json_array_get(values, q)) - r5(ex->value)) > 1.1e-5;
    double bmin = num(a, np ? "binMin" : "bin_min"), bmax = num(a, np ? "binMax" : "bin_max"),
           bc = num(a, np ? "binContains" : "bin_contains");
    if (ex->group < 0) {
        bad += bmin != -1 || bc != -1 || bmax != round(f->max_value * 1e3) / 1e3;
    } else {
        const dash_interval *iv = &f->intervals[ex->group];
        bad += bmin != r5(iv->lo) || bmax != r5(iv->hi) || fabs(bc - iv->contains) > 1e-12 * (1 + iv->contains);
    }
    return bad;
}

/* Tables common to both layouts. */
static int check_tables(const fx *x, const dash_feature *f, const json_t *o)
{
    int bad = 0;
    bad += fabs(num(o, "frac_nonzero") - f->frac_nonzero) > 1e-14 * (1 + f->frac_nonzero);
    const json_t *ps = json_object_get(o, "pos_str"), *pv = json_object_get(o, "pos_values"),
                 *nv = json_object_get(o, "neg_values"), *hh = json_object_get(o, "freq_hist_data_bar_heights"),
                 *lh = json_object_get(o, "logits_hist_data_bar_heights");
    bad += json_array_size(ps) != (size_t)f->n_logits || json_array_size(pv) != (size_t)f->n_logits;
    bad += json_array_size(hh) != (size_t)f->n_hist || json_array_size(lh) != (size_t)f->n_logit_hist;
    if (bad) return bad;
    for (int k = 0; k < f->n_logits; k++) {
        bad += !tok_is(x->tok, json_array_get(ps, k), f->pos_ids[k]);
        bad += json_number_value(json_array_get(pv, k)) != r5(f->pos_values[k]);
        bad += json_number_value(json_array_get(nv, k)) != r5(f->neg_values[k]);
    }
    for (int k = 0; k < f->n_hist; k++) bad += json_integer_value(json_array_get(hh, k)) != f->hist_heights[k];
    for (int k = 0; k < f->n_logit_hist; k++)
        bad += json_integer_value(json_array_get(lh, k)) != f->logit_hist_heights[k];
    bad += json_array_size(json_object_get(o, "neuron_alignment_indices")) != (size_t)f->n_align;
    bad += json_array_size(json_object_get(o, "correlated_neurons_pearson")) != (size_t)f->n_corr_neurons;
    bad += json_array_size(json_object_get(o, "correlated_features_l1")) != (size_t)f->n_corr_features;
    bad += !json_is_array(json_object_get(o, "decoder_weights_dist"));
    return bad;
}

TEST(dash_export_saedashboard_layout)
{
    fx x;
    if (fx_open(&x)) {
        fx_close(&x);
        return;
    }
    char err[512], dir[128], dir2[128], path[256], files[1024];
    snprintf(dir, sizeof dir, "%s/saed", x.dir);
    snprintf(dir2, sizeof dir2, "%s/saed-again", x.dir);
    CHECK_INT(dash_export_saedashboard(dir, &x.meta, &x.r, err, sizeof err), 0);
    list_dir(dir, files, sizeof files);
    CHECK_STR(files, "batch-0.json,batch-1.json,batch-2.json,batch-3.json,run_settings.json");

    snprintf(path, sizeof path, "%s/run_settings.json", dir);
    json_t *rs = load_json(path);
    CHECK_STR(json_string_value(json_object_get(rs, "generated_by")), "saed");
    CHECK_STR(json_string_value(json_object_get(rs, "np_set_name")), "res-test");
    CHECK_STR(json_string_value(json_object_get(rs, "hook_name")), "blocks.1.hook_resid_pre");
    CHECK_INT(json_integer_value(json_object_get(rs, "n_prompts_total")), x.n);
    CHECK_INT(json_integer_value(json_object_get(rs, "n_tokens_in_prompt")), x.T);
    CHECK_INT(json_integer_value(json_object_get(rs, "n_features_at_a_time")), 128);
    CHECK_INT(json_integer_value(json_object_get(rs, "top_acts_group_size")), 20);
    CHECK_INT(json_integer_value(json_object_get(rs, "n_quantiles")), 5);
    CHECK(json_is_true(json_object_get(rs, "prepend_bos")));
    CHECK_INT(json_integer_value(json_object_get(json_object_get(rs, "saed"), "d_sae")), 512);
    json_decref(rs);

    int fired = 0, bad_ex = 0, bad_tab = 0, bad_top = 0;
    for (int b = 0; b < 4; b++) {
        snprintf(path, sizeof path, "%s/batch-%d.json", dir, b);
        json_t *j = load_json(path);
        CHECK_STR(json_string_value(json_object_get(j, "model_id")), "tiny-a");
        CHECK(json_is_integer(json_object_get(j, "layer")) && json_integer_value(json_object_get(j, "layer")) == 1);
        CHECK_STR(json_string_value(json_object_get(j, "sae_set")), "res-test");
        CHECK(json_is_null(json_object_get(j, "sae_id_suffix")));
        json_t *feats = json_object_get(j, "features");
        CHECK_INT(json_array_size(feats), 128);
        for (size_t k = 0; k < json_array_size(feats) && k < 128; k++) {
            int fi = b * 128 + (int)k;
            const dash_feature *f = &x.r.features[fi];
            json_t *o = json_array_get(feats, k);
            CHECK_INT(json_integer_value(json_object_get(o, "feature_index")), fi);
            CHECK_INT(json_integer_value(json_object_get(o, "n_prompts_total")), x.n);
            CHECK_STR(json_string_value(json_object_get(o, "dataset")), "none/random-ids");
            CHECK(json_is_array(json_object_get(o, "vector")));
            bad_tab += check_tables(&x, f, o);
            json_t *acts = json_object_get(o, "activations");
            CHECK_INT(json_array_size(acts), f->n_examples);
            if (json_array_size(acts) != (size_t)f->n_examples) continue;
            for (int e = 0; e < f->n_examples; e++) bad_ex += check_example(&x, fi, e, json_array_get(acts, e), 0);
            if (f->n_examples) {
                fired++;
                /* the top example's largest value is the feature's max */
                json_t *v = json_object_get(json_array_get(acts, 0), "values");
                double mx = -1;
                for (size_t t = 0; t < json_array_size(v); t++) mx = fmax(mx, json_number_value(json_array_get(v, t)));
                bad_top += fabs(mx - r5(f->max_value)) > 1.1e-5;
            }
        }
        json_decref(j);
    }
    CHECK(fired > 20);
    CHECK_INT(bad_ex, 0);
    CHECK_INT(bad_tab, 0);
    CHECK_INT(bad_top, 0);

    /* Same input, same bytes. */
    CHECK_INT(dash_export_saedashboard(dir2, &x.meta, &x.r, err, sizeof err), 0);
    for (int b = 0; b < 4; b++) {
        char a[256], c[256];
        snprintf(a, sizeof a, "%s/batch-%d.json", dir, b);
        snprintf(c, sizeof c, "%s/batch-%d.json", dir2, b);
        CHECK(same_file(a, c));
    }
    fx_close(&x);
}

TEST(dash_export_neuronpedia_layout)
{
    fx x;
    if (fx_open(&x)) {
        fx_close(&x);
        return;
    }
    char err[512], dir[128], dir2[128], path[256], files[1024];
    snprintf(dir, sizeof dir, "%s/np", x.dir);
    snprintf(dir2, sizeof dir2, "%s/np-again", x.dir);
    CHECK_INT(dash_export_neuronpedia(dir, &x.meta, &x.r, err, sizeof err), 0);
    list_dir(dir, files, sizeof files);
    CHECK_STR(files, "activations,explanations,features,model.jsonl,release.jsonl,source.jsonl,sourceset.jsonl");
    snprintf(path, sizeof path, "%s/features", dir);
    list_dir(path, files, sizeof files);
    CHECK_STR(files, "batch-0.jsonl.gz");
    snprintf(path, sizeof path, "%s/activations", dir);
    list_dir(path, files, sizeof files);
    CHECK_STR(files, "batch-0.jsonl.gz");
    snprintf(path, sizeof path, "%s/explanations", dir);
    list_dir(path, files, sizeof files);
    CHECK_STR(files, "");

    /* One row each, Neuronpedia's column names. */
    const char *one[] = {"release.jsonl", "model.jsonl", "sourceset.jsonl", "source.jsonl"};
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, one[i]);
        json_t *rows = load_jsonl(path, 0);
        CHECK_INT(json_array_size(rows), 1);
        json_t *o = json_array_get(rows, 0);
        CHECK_STR(json_string_value(json_object_get(o, "createdAt")), "2025-01-02T03:04:05.000Z");
        if (i == 0) {
            CHECK_STR(json_string_value(json_object_get(o, "name")), "tiny-release");
            CHECK_STR(json_string_value(json_object_get(o, "description")), "Tiny release");
            CHECK_STR(json_string_value(json_object_get(o, "creatorName")), "saed tests");
        } else if (i == 1) {
            CHECK_STR(json_string_value(json_object_get(o, "id")), "tiny-a");
        } else if (i == 2) {
            CHECK_STR(json_string_value(json_object_get(o, "name")), "res-test");
            CHECK_STR(json_string_value(json_object_get(o, "modelId")), "tiny-a");
            CHECK_STR(json_string_value(json_object_get(o, "releaseName")), "tiny-release");
        } else {
            CHECK_STR(json_string_value(json_object_get(o, "id")), "1-res-test");
            CHECK_STR(json_string_value(json_object_get(o, "setName")), "res-test");
            CHECK_INT(json_integer_value(json_object_get(o, "num_prompts")), x.n);
            CHECK_INT(json_integer_value(json_object_get(o, "num_tokens_in_prompt")), x.T);
            CHECK_STR(json_string_value(json_object_get(o, "dataset")), "none/random-ids");
        }
        json_decref(rows);
    }

    snprintf(path, sizeof path, "%s/features/batch-0.jsonl.gz", dir);
    json_t *neurons = load_jsonl(path, 1);
    snprintf(path, sizeof path, "%s/activations/batch-0.jsonl.gz", dir);
    json_t *acts = load_jsonl(path, 1);
    CHECK_INT(json_array_size(neurons), 512);
    size_t total = 0;
    for (int fi = 0; fi < 512; fi++) total += (size_t)x.r.features[fi].n_examples;
    CHECK_INT(json_array_size(acts), total);
    int bad_ex = 0, bad_tab = 0, bad_row = 0, bad_top = 0;
    char **ids = calloc(total + 1, sizeof *ids);
    size_t row = 0;
    for (int fi = 0; fi < 512 && json_array_size(neurons) == 512 && json_array_size(acts) == total; fi++) {
        const dash_feature *f = &x.r.features[fi];
        json_t *o = json_array_get(neurons, fi);
        char idx[16];
        snprintf(idx, sizeof idx, "%d", fi);
        CHECK(json_is_string(json_object_get(o, "index")));
        bad_row += strcmp(json_string_value(json_object_get(o, "index")) ?: "", idx) != 0;
        bad_row += strcmp(json_string_value(json_object_get(o, "layer")), "1-res-test") != 0;
        bad_row += strcmp(json_string_value(json_object_get(o, "modelId")), "tiny-a") != 0;
        bad_row += strcmp(json_string_value(json_object_get(o, "hookName")), "blocks.1.hook_resid_pre") != 0;
        bad_row += json_array_size(json_object_get(o, "topkCosSimIndices")) != (size_t)f->n_cos;
        for (int k = 0; k < f->n_cos; k++)
            bad_row += json_integer_value(json_array_get(json_object_get(o, "topkCosSimIndices"), k)) != f->cos_idx[k];
        bad_row += !json_is_false(json_object_get(o, "hasVector")) || num(o, "vectorDefaultSteerStrength") != 10;
        bad_tab += check_tables(&x, f, o);
        double max_act = 0;
        for (int e = 0; e < f->n_examples; e++, row++) {
            json_t *a = json_array_get(acts, row);
            bad_row += strcmp(json_string_value(json_object_get(a, "index")) ?: "", idx) != 0;
            bad_ex += check_example(&x, fi, e, a, 1);
            char want_data[24];
            snprintf(want_data, sizeof want_data, "%lld", (long long)f->examples[e].prompt);
            bad_row += strcmp(json_string_value(json_object_get(a, "dataIndex")) ?: "", want_data) != 0;
            /* maxValue / maxValueTokenIndex / minValue come from the values written */
            json_t *v = json_object_get(a, "values");
            double mx = -1e30, mn = 1e30;
            size_t am = 0;
            for (size_t t = 0; t < json_array_size(v); t++) {
                double y = json_number_value(json_array_get(v, t));
                if (y > mx) mx = y, am = t;
                mn = fmin(mn, y);
            }
            bad_row += num(a, "maxValue") != mx || num(a, "minValue") != mn ||
                       (size_t)json_integer_value(json_object_get(a, "maxValueTokenIndex")) != am;
            if (e == 0) bad_top += fabs(num(a, "maxValue") - r5(f->max_value)) > 1.1e-5;
            max_act = fmax(max_act, mx);
            const char *id = json_string_value(json_object_get(a, "id"));
            ids[row] = strdup(id ? id : "");
        }
        bad_row += num(o, "maxActApprox") != max_act;
    }
    CHECK_INT(bad_ex, 0);
    CHECK_INT(bad_tab, 0);
    CHECK_INT(bad_row, 0);
    CHECK_INT(bad_top, 0);
    /* ids: "c" + 24 base-36 characters, all distinct */
    int bad_id = 0;
    for (size_t i = 0; i < row; i++) {
        bad_id += strlen(ids[i]) != 25 || ids[i][0] != 'c' || strspn(ids[i] + 1, "0123456789abcdefghijklmnopqrstuvwxyz") != 24;
    }
    qsort(ids, row, sizeof *ids, cmp_str);
    for (size_t i = 0; i < row; i++) {
        if (i && !strcmp(ids[i], ids[i - 1])) bad_id++;
    }
    for (size_t i = 0; i < row; i++) free(ids[i]);
    CHECK(ids != NULL);
    free(ids);
    CHECK_INT(bad_id, 0);
    json_decref(neurons);
    json_decref(acts);

    /* Same input, same bytes, gzip included. */
    CHECK_INT(dash_export_neuronpedia(dir2, &x.meta, &x.r, err, sizeof err), 0);
    const char *all[] = {"release.jsonl", "model.jsonl", "sourceset.jsonl", "source.jsonl",
                         "features/batch-0.jsonl.gz", "activations/batch-0.jsonl.gz"};
    for (int i = 0; i < 6; i++) {
        char a[256], c[256];
        snprintf(a, sizeof a, "%s/%s", dir, all[i]);
        snprintf(c, sizeof c, "%s/%s", dir2, all[i]);
        CHECK(same_file(a, c));
    }
    fx_close(&x);
}

/* The same result relabelled as features 1000..1511 of a 2048-wide SAE: Neuronpedia batches
 * are numeric ranges of 1024 (24 features in batch-0, 488 in batch-1), SAEDashboard batches
 * of n_features_per_batch start at absolute multiples. */
TEST(dash_export_batches_by_index)
{
    fx x;
    if (fx_open(&x)) {
        fx_close(&x);
        return;
    }
    char err[512], dir[128], path[256], files[1024];
    for (int i = 0; i < 512; i++) x.r.features[i].index += 1000;
    x.r.f0 += 1000;
    x.r.f1 += 1000;
    x.meta.d_sae = 2048;
    x.meta.source_id = "1-res-test__wide";
    snprintf(dir, sizeof dir, "%s/np", x.dir);
    CHECK_INT(dash_export_neuronpedia(dir, &x.meta, &x.r, err, sizeof err), 0);
    snprintf(path, sizeof path, "%s/features", dir);
    list_dir(path, files, sizeof files);
    CHECK_STR(files, "batch-0.jsonl.gz,batch-1.jsonl.gz");
    size_t want_rows[2] = {24, 488}, want_acts[2] = {0, 0};
    for (int i = 0; i < 512; i++) want_acts[i < 24 ? 0 : 1] += (size_t)x.r.features[i].n_examples;
    for (int b = 0; b < 2; b++) {
        snprintf(path, sizeof path, "%s/features/batch-%d.jsonl.gz", dir, b);
        json_t *rows = load_jsonl(path, 1);
        CHECK_INT(json_array_size(rows), want_rows[b]);
        json_t *first = json_array_get(rows, 0);
        CHECK_STR(json_string_value(json_object_get(first, "index")), b == 0 ? "1000" : "1024");
        CHECK_STR(json_string_value(json_object_get(first, "layer")), "1-res-test__wide");
        json_decref(rows);
        snprintf(path, sizeof path, "%s/activations/batch-%d.jsonl.gz", dir, b);
        rows = load_jsonl(path, 1);
        CHECK_INT(json_array_size(rows), want_acts[b]);
        int bad = 0;
        for (size_t i = 0; i < json_array_size(rows); i++) {
            int idx = atoi(json_string_value(json_object_get(json_array_get(rows, i), "index")));
            bad += idx / 1024 != b;
        }
        CHECK_INT(bad, 0);
        json_decref(rows);
    }

    x.meta.n_features_per_batch = 100;
    snprintf(dir, sizeof dir, "%s/saed", x.dir);
    CHECK_INT(dash_export_saedashboard(dir, &x.meta, &x.r, err, sizeof err), 0);
    list_dir(dir, files, sizeof files);
    CHECK_STR(files, "batch-10.json,batch-11.json,batch-12.json,batch-13.json,batch-14.json,batch-15.json,"
                     "run_settings.json");
    snprintf(path, sizeof path, "%s/batch-15.json", dir);
    json_t *j = load_json(path);
    CHECK_INT(json_array_size(json_object_get(j, "features")), 12);
    CHECK_STR(json_string_value(json_object_get(j, "sae_id_suffix")), "wide");
    CHECK_INT(json_integer_value(json_object_get(json_array_get(json_object_get(j, "features"), 0), "feature_index")),
              1500);
    json_decref(j);
    snprintf(path, sizeof path, "%s/run_settings.json", dir);
    j = load_json(path);
    CHECK_INT(json_integer_value(json_object_get(j, "start_batch")), 10);
    CHECK_INT(json_integer_value(json_object_get(j, "end_batch")), 16);
    json_decref(j);
    for (int i = 0; i < 512; i++) x.r.features[i].index -= 1000;
    x.r.f0 -= 1000;
    x.r.f1 -= 1000;
    fx_close(&x);
}

TEST(dash_export_errors_and_helpers)
{
    fx x;
    if (fx_open(&x)) {
        fx_close(&x);
        return;
    }
    char err[512], dir[256], path[256];
    /* A directory under a regular file: -1, the message names the path. */
    snprintf(path, sizeof path, "%s/plain", x.dir);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) fclose(f);
    snprintf(dir, sizeof dir, "%s/plain/out", x.dir);
    CHECK_INT(dash_export_neuronpedia(dir, &x.meta, &x.r, err, sizeof err), -1);
    CHECK_CONTAINS(err, path);
    CHECK_INT(dash_export_saedashboard(dir, &x.meta, &x.r, err, sizeof err), -1);
    CHECK_CONTAINS(err, path);
    /* An existing file's name taken by a directory: rename fails, naming the file, no .tmp left. */
    snprintf(dir, sizeof dir, "%s/taken", x.dir);
    snprintf(path, sizeof path, "%s/taken/release.jsonl", x.dir);
    CHECK(mkdir(dir, 0755) == 0 && mkdir(path, 0755) == 0);
    CHECK_INT(dash_export_neuronpedia(dir, &x.meta, &x.r, err, sizeof err), -1);
    CHECK_CONTAINS(err, "release.jsonl");
    strcat(path, ".tmp");
    CHECK(access(path, F_OK) != 0);
    /* Metadata that disagrees with the result. */
    dash_export_meta m = x.meta;
    m.n_tokens_in_prompt = 8;
    CHECK_INT(dash_export_neuronpedia(dir, &m, &x.r, err, sizeof err), -1);
    CHECK_CONTAINS(err, "8");

    /* The shared example builder gives the rows the writers write. */
    int fi = -1;
    for (int i = 0; i < 512 && fi < 0; i++)
        if (x.r.features[i].n_examples > 3) fi = i;
    CHECK(fi >= 0);
    if (fi >= 0) {
        json_t *a = dash_export_example(&x.meta, &x.r, fi, 1, DASH_EXPORT_NEURONPEDIA, err, sizeof err);
        json_t *s = dash_export_example(&x.meta, &x.r, fi, 1, DASH_EXPORT_SAEDASHBOARD, err, sizeof err);
        CHECK(a && s);
        CHECK_INT(check_example(&x, fi, 1, a, 1), 0);
        CHECK_INT(check_example(&x, fi, 1, s, 0), 0);
        char id[26];
        dash_export_activation_id("tiny-a", "1-res-test", fi, 1, id);
        CHECK_STR(json_string_value(json_object_get(a, "id")), id);
        json_decref(a);
        json_decref(s);
        CHECK(dash_export_example(&x.meta, &x.r, fi, 999, DASH_EXPORT_NEURONPEDIA, err, sizeof err) == NULL);
        json_t *n = dash_export_neuron(&x.meta, &x.r, fi, err, sizeof err);
        CHECK(n != NULL);
        CHECK_INT(check_tables(&x, &x.r.features[fi], n), 0);
        json_decref(n);
    }
    /* Ids: deterministic, and every part of the key matters. */
    char a[26], b[26], c[26], d[26], e[26];
    dash_export_activation_id("gpt2-small", "8-res-jb", 10, 0, a);
    dash_export_activation_id("gpt2-small", "8-res-jb", 10, 0, b);
    dash_export_activation_id("gpt2-small", "8-res-jb", 10, 1, c);
    dash_export_activation_id("gpt2-small", "8-res-jb", 1, 0, d);
    dash_export_activation_id("gemma-2-2b", "8-res-jb", 10, 0, e);
    CHECK_STR(a, b);
    CHECK(strcmp(a, c) && strcmp(a, d) && strcmp(a, e) && strcmp(c, d));
    fx_close(&x);
}
