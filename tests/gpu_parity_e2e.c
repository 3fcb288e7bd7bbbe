/* gpu_parity_e2e.c: gpu-parity's end-to-end checks (gpu_parity.h): tiny-a's forward on the
 * device against the golden cases (tests/data/gpt2/forward_cases.jsonl, abs err ≤ 1e-4 as the
 * CPU test demands) and against the CPU, batched with hooks, write hooks and the KV cache; the
 * three golden SAEs' encodes (tests/data/sae/sae_cases.jsonl) on the device; a whole small
 * dashboard (dash_run) on both backends, every statistic compared; and the errors of tf32 and
 * bf16 GEMMs against the CPU. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/dash_run.h"
#include "engine/model.h"
#include "engine/sae.h"
#include "tests/gpu_parity.h"

#define TINY "tests/data/models/tiny-a"
#define FWD_CASES "tests/data/gpt2/forward_cases.jsonl"
#define SAE_DATA "tests/data/sae"

static void *xcalloc(size_t n)
{
    void *p = calloc(1, n ? n : 1);
    if (!p) {
        fprintf(stderr, "gpu-parity: out of memory\n");
        exit(1);
    }
    return p;
}

/* ---- hook captures ---- */

typedef struct capture {
    float *x;
    int rows, width;
} capture;

static int cap_fn(void *ud, hook_point hp, float *act, int B, int T, int width)
{
    (void)hp;
    capture *c = ud;
    free(c->x);
    c->rows = B * T;
    c->width = width;
    c->x = xcalloc(sizeof(float) * (size_t)B * T * width);
    memcpy(c->x, act, sizeof(float) * (size_t)B * T * width);
    return 0;
}

/* A write hook: adds 0.25 to every value (as steering would). */
static int add_quarter(void *ud, hook_point hp, float *act, int B, int T, int width)
{
    (void)ud, (void)hp;
    for (size_t i = 0; i < (size_t)B * T * width; i++) act[i] += 0.25f;
    return 0;
}

/* max |c − ref| over a (rows, width) capture against a JSON [rows][width] array. */
static double ref_diff(const capture *c, json_t *ref)
{
    if (!c->x || !ref || (int)json_array_size(ref) != c->rows) return INFINITY;
    double worst = 0;
    for (int t = 0; t < c->rows; t++) {
        json_t *row = json_array_get(ref, (size_t)t);
        for (int i = 0; i < c->width; i++) {
            double d = fabs(c->x[(size_t)t * c->width + i] - json_number_value(json_array_get(row, (size_t)i)));
            if (!(d <= worst)) worst = d;
        }
    }
    return worst;
}

json_t **gp_read_jsonl(const char *path, int *n)
{
    FILE *f = fopen(path, "r");
    json_t **v = NULL;
    *n = 0;
    if (!f) return NULL;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        json_t *j = json_loads(line, 0, NULL);
        if (!j) continue;
        json_t **nv = realloc(v, sizeof *v * (size_t)(*n + 1));
        if (!nv) break;
        v = nv;
        v[(*n)++] = j;
    }
    free(line);
    fclose(f);
    return v;
}

static int32_t *json_ids(json_t *cs, int *T)
{
    json_t *j = json_object_get(cs, "ids");
    *T = (int)json_array_size(j);
    int32_t *ids = xcalloc(sizeof(int32_t) * (size_t)*T);
    for (int t = 0; t < *T; t++) ids[t] = (int32_t)json_integer_value(json_array_get(j, (size_t)t));
    return ids;
}

/* ---- forward ---- */

static void forward_cases(gp *g, model *md, model *mc)
{
    int n = 0;
    json_t **cases = gp_read_jsonl(FWD_CASES, &n);
    gp_check(g, n == 4, "forward cases read", "%d of 4 from %s", n, FWD_CASES);
    const int L = model_config(md)->n_layer, V = model_config(md)->vocab_size;
    for (int i = 0; i < n; i++)
        for (int centered = 0; centered < 2; centered++) {
            int T;
            int32_t *ids = json_ids(cases[i], &T);
            const char *cname = json_string_value(json_object_get(cases[i], "name"));
            capture pre[8] = {{0}}, mid[8] = {{0}}, post = {0};
            hook_req hooks[17];
            int nh = 0;
            for (int l = 0; l < L && l < 8; l++) {
                hooks[nh++] = (hook_req){{HOOK_RESID_PRE, l}, cap_fn, &pre[l], 0};
                hooks[nh++] = (hook_req){{HOOK_RESID_MID, l}, cap_fn, &mid[l], 0};
            }
            hooks[nh++] = (hook_req){{HOOK_RESID_POST, L - 1}, cap_fn, &post, 0};
            float *logits = xcalloc(sizeof(float) * (size_t)T * V), *lc = xcalloc(sizeof(float) * (size_t)T * V);
            int32_t *am = xcalloc(sizeof(int32_t) * (size_t)T), *ac = xcalloc(sizeof(int32_t) * (size_t)T);
            fwd_opts o = {.processing = centered ? PROC_CENTER_WRITING : PROC_NONE, .hooks = hooks, .nhooks = nh,
                          .logits = logits, .argmax = am};
            char err[512], name[128];
            snprintf(name, sizeof name, "forward tiny-a %s%s", cname, centered ? " centered" : "");
            if (model_forward(md, ids, 1, T, &o, err, sizeof err)) {
                gp_check(g, 0, name, "%s", err);
            } else {
                double worst = 0;
                char key[8];
                json_t *jpre = json_object_get(cases[i], centered ? "resid_pre_centered" : "resid_pre");
                for (int l = 0; l < L && l < 8; l++) {
                    snprintf(key, sizeof key, "%d", l);
                    worst = fmax(worst, ref_diff(&pre[l], json_object_get(jpre, key)));
                    if (!centered) worst = fmax(worst, ref_diff(&mid[l], json_object_get(json_object_get(cases[i], "resid_mid"), key)));
                }
                worst = fmax(worst, ref_diff(&post, json_object_get(cases[i], centered ? "resid_post_last_layer_centered"
                                                                                       : "resid_post_last_layer")));
                json_t *jl = json_object_get(cases[i], "logits_last");
                double wl = 0;
                for (int v = 0; v < V; v++)
                    wl = fmax(wl, fabs(logits[(size_t)(T - 1) * V + v] - json_number_value(json_array_get(jl, (size_t)v))));
                int am_bad = 0;
                json_t *ja = json_object_get(cases[i], "logits_argmax");
                for (int t = 0; t < T; t++) am_bad += am[t] != json_integer_value(json_array_get(ja, (size_t)t));
                gp_check(g, worst <= 1e-4 && wl <= 1e-4 && !am_bad, name,
                         "vs reference: residuals max|d| %.2e, logits %.2e (tol 1e-4), argmax %d of %d differ", worst, wl,
                         am_bad, T);
                /* and against the CPU backend: the full logits */
                o.logits = lc;
                o.argmax = ac;
                o.nhooks = 0;
                if (model_forward(mc, ids, 1, T, &o, err, sizeof err) == 0) {
                    char n2[160];
                    snprintf(n2, sizeof n2, "%s: all logits vs cpu", name);
                    gp_cmp(g, n2, lc, logits, (size_t)T * V, 2e-5, 1e-4);
                }
            }
            for (int l = 0; l < 8; l++) free(pre[l].x), free(mid[l].x);
            free(post.x), free(logits), free(lc), free(am), free(ac), free(ids);
        }
    for (int i = 0; i < n; i++) json_decref(cases[i]);
    free(cases);
}

/* A batch with the device paths the engine has: several hooks (pattern, z, MLP, ln_final), a
 * write hook with centering (folded back through the device), then the KV cache. */
static void forward_batch(gp *g, model *md, model *mc)
{
    const int B = 4, T = 24, V = model_config(md)->vocab_size;
    int32_t *ids = xcalloc(sizeof(int32_t) * B * T);
    for (int i = 0; i < B * T; i++) ids[i] = (int32_t)((i * 2654435761u) % 50257u);
    static const hook_kind kinds[] = {HOOK_PATTERN, HOOK_Z, HOOK_MLP_POST, HOOK_ATTN_OUT, HOOK_LN_FINAL};
    static const char *const names[] = {"hook_pattern", "hook_z", "mlp.hook_post", "hook_attn_out", "ln_final"};
    capture cd[5] = {{0}}, cc[5] = {{0}};
    hook_req hd[6], hc[6];
    for (int i = 0; i < 5; i++) {
        hook_point hp = {kinds[i], kinds[i] == HOOK_LN_FINAL ? -1 : 1};
        hd[i] = (hook_req){hp, cap_fn, &cd[i], 0};
        hc[i] = (hook_req){hp, cap_fn, &cc[i], 0};
    }
    hd[5] = hc[5] = (hook_req){{HOOK_RESID_MID, 0}, add_quarter, NULL, 1};
    float *ld = xcalloc(sizeof(float) * (size_t)B * T * V), *lc = xcalloc(sizeof(float) * (size_t)B * T * V);
    fwd_opts od = {.processing = PROC_CENTER_WRITING, .hooks = hd, .nhooks = 6, .logits = ld};
    fwd_opts oc = {.processing = PROC_CENTER_WRITING, .hooks = hc, .nhooks = 6, .logits = lc};
    char err[512], name[128];
    int rd = model_forward(md, ids, B, T, &od, err, sizeof err);
    if (rd) gp_check(g, 0, "forward batch with hooks", "device: %s", err);
    int rc = model_forward(mc, ids, B, T, &oc, err, sizeof err);
    if (rc) gp_check(g, 0, "forward batch with hooks", "cpu: %s", err);
    if (!rd && !rc) {
        for (int i = 0; i < 5; i++) {
            snprintf(name, sizeof name, "forward B4 T24 write hook: %s", names[i]);
            if (cd[i].x && cc[i].x && cd[i].rows == cc[i].rows && cd[i].width == cc[i].width)
                gp_cmp(g, name, cc[i].x, cd[i].x, (size_t)cc[i].rows * cc[i].width, 2e-5, 1e-4);
            else gp_check(g, 0, name, "hook not called or shapes differ");
        }
        gp_cmp(g, "forward B4 T24 write hook: logits", lc, ld, (size_t)B * T * V, 2e-5, 1e-4);
    }
    for (int i = 0; i < 5; i++) free(cd[i].x), free(cc[i].x);
    /* KV cache: 16 tokens then 8 more, last logits against the uncached pass */
    kv_cache *kd = kv_cache_new(md, B, T, err, sizeof err), *kc = kv_cache_new(mc, B, T, err, sizeof err);
    float *sd = xcalloc(sizeof(float) * (size_t)B * V), *sc = xcalloc(sizeof(float) * (size_t)B * V);
    int32_t *part = xcalloc(sizeof(int32_t) * B * T);
    int ok = kd && kc;
    for (int step = 0; ok && step < 2; step++) {
        int t0 = step ? 16 : 0, n = step ? 8 : 16;
        for (int b = 0; b < B; b++) memcpy(part + b * n, ids + b * T + t0, sizeof(int32_t) * n);
        fwd_opts a = {.logits = sd, .logits_last_only = 1, .cache = kd}, c = {.logits = sc, .logits_last_only = 1, .cache = kc};
        ok = model_forward(md, part, B, n, &a, err, sizeof err) == 0 && model_forward(mc, part, B, n, &c, err, sizeof err) == 0;
    }
    if (ok) gp_cmp(g, "forward B4 KV cache 16+8: last logits", sc, sd, (size_t)B * V, 2e-5, 1e-4);
    else gp_check(g, 0, "forward B4 KV cache 16+8", "%s", err);
    kv_cache_free(kd);
    kv_cache_free(kc);
    free(ids), free(ld), free(lc), free(sd), free(sc), free(part);
}

/* ---- SAE encodes ---- */

static float *hook_x(model *m, const sae_cfg *c, const int32_t *ids, int T, int processing)
{
    hook_point hp;
    char err[512];
    capture k = {0};
    if (sae_cfg_check_model(c, model_config(m), &hp, err, sizeof err)) return NULL;
    hook_req h = {hp, cap_fn, &k, 0};
    fwd_opts o = {.processing = processing, .hooks = &h, .nhooks = 1};
    if (model_forward(m, ids, 1, T, &o, err, sizeof err)) {
        free(k.x);
        return NULL;
    }
    return k.x;
}

static int encode_on(saed_backend *be, sae *s, const float *x, int T, float *f, float *out)
{
    const sae_cfg *c = sae_config(s);
    char err[512];
    size_t nx = (size_t)T * c->d_in, nf = (size_t)T * c->d_sae, no = (size_t)T * c->d_out;
    float *dx = be->alloc(be, nx * 4), *df = be->alloc(be, nf * 4), *dout = be->alloc(be, no * 4);
    int rc = !dx || !df || !dout || be->upload(be, dx, x, nx * 4) || sae_encode(s, dx, T, df, err, sizeof err) ||
             sae_decode(s, df, dx, T, dout, err, sizeof err) || be->download(be, f, df, nf * 4) ||
             be->download(be, out, dout, no * 4);
    if (dx) be->release(be, dx);
    if (df) be->release(be, df);
    if (dout) be->release(be, dout);
    return rc ? -1 : 0;
}

static void sae_cases(gp *g, model *mc)
{
    int n = 0;
    json_t **cases = gp_read_jsonl(SAE_DATA "/sae_cases.jsonl", &n);
    gp_check(g, n == 24, "SAE cases read", "%d of 24", n);
    for (int i = 0; i < n; i++) {
        json_t *cs = cases[i];
        const char *name = json_string_value(json_object_get(cs, "sae"));
        const char *arch = json_string_value(json_object_get(cs, "architecture"));
        int centered = !strcmp(json_string_value(json_object_get(cs, "input_mode")), "centered");
        char dir[256], err[512], label[160];
        snprintf(dir, sizeof dir, "%s/%s", SAE_DATA, name);
        snprintf(label, sizeof label, "encode %s %s %s", name, json_string_value(json_object_get(cs, "case")),
                 centered ? "centered" : "raw");
        sae *sd = sae_load(dir, g->dev, NULL, err, sizeof err), *sc = sd ? sae_load(dir, g->cpu, NULL, err, sizeof err) : NULL;
        if (!sc) {
            gp_check(g, 0, label, "sae_load: %s", err);
            sae_free(sd);
            continue;
        }
        int T;
        int32_t *ids = json_ids(cs, &T);
        const sae_cfg *c = sae_config(sd);
        const int S = c->d_sae, D = c->d_out;
        /* the hook input comes from the CPU: this isolates the encode */
        float *x = hook_x(mc, c, ids, T, centered ? PROC_CENTER_WRITING : PROC_NONE);
        float *fd = xcalloc(sizeof(float) * (size_t)T * S), *fc = xcalloc(sizeof(float) * (size_t)T * S);
        float *od = xcalloc(sizeof(float) * (size_t)T * D), *oc = xcalloc(sizeof(float) * (size_t)T * D);
        double *ref = xcalloc(sizeof(double) * (size_t)S);
        if (!x || encode_on(g->dev, sd, x, T, fd, od) || encode_on(g->cpu, sc, x, T, fc, oc)) {
            gp_check(g, 0, label, "forward or encode failed: %s", backend_error(g->dev));
        } else {
            double worst = 0, wout = 0;
            int set_bad = 0, l0_bad = 0;
            for (int t = 0; t < T; t++) {
                json_t *acts = json_array_get(json_object_get(cs, "acts"), (size_t)t);
                for (int k = 0; k < S; k++) ref[k] = 0;
                for (size_t j = 0; j < json_array_size(acts); j++) {
                    json_t *p = json_array_get(acts, j);
                    ref[json_integer_value(json_array_get(p, 0))] = json_number_value(json_array_get(p, 1));
                }
                int ours = 0;
                for (int k = 0; k < S; k++) {
                    float v = fd[(size_t)t * S + k];
                    worst = fmax(worst, fabs(v - ref[k]));
                    ours += v > 0;
                    /* active here and not there (or the reverse) only for values near 0 */
                    if ((ref[k] > 0) != (v > 0) && fmax(ref[k], v) >= 1e-5) set_bad++;
                }
                int l0 = (int)json_integer_value(json_array_get(json_object_get(cs, "l0"), (size_t)t));
                if (strcmp(arch, "standard") && ours != l0) l0_bad++;
                json_t *so = json_array_get(json_object_get(cs, "sae_out"), (size_t)t);
                for (int k = 0; k < D; k++)
                    wout = fmax(wout, fabs(od[(size_t)t * D + k] - json_number_value(json_array_get(so, (size_t)k))));
            }
            gp_check(g, worst <= 1e-4 && wout <= 1e-4 && !set_bad && !l0_bad, label,
                     "vs SAELens: acts max|d| %.2e, sae_out %.2e (tol 1e-4), active-set mismatches %d, l0 mismatches %d",
                     worst, wout, set_bad, l0_bad);
            char n2[200];
            snprintf(n2, sizeof n2, "%s: acts vs cpu", label);
            gp_cmp(g, n2, fc, fd, (size_t)T * S, 1e-5, 1e-4);
        }
        free(x), free(fd), free(fc), free(od), free(oc), free(ref), free(ids);
        sae_free(sd);
        sae_free(sc);
    }
    for (int i = 0; i < n; i++) json_decref(cases[i]);
    free(cases);
}

/* ---- a whole dashboard ---- */

static int ex_in(const dash_feature *f, int group, int64_t prompt, int pos)
{
    for (int e = 0; e < f->n_examples; e++)
        if (f->examples[e].group == group && f->examples[e].prompt == prompt && f->examples[e].pos == pos) return e;
    return -1;
}

/* Whether every top example of a that b lacks ties (within tol) with a's lowest top value: the
 * sets may then differ only in which of the (nearly) tied positions made the cut. Called both
 * ways round. */
static int top_sets_agree(const dash_feature *a, const dash_feature *b, double tol)
{
    float last = 0;
    for (int e = 0; e < a->n_examples; e++)
        if (a->examples[e].group == -1) last = a->examples[e].value;
    for (int e = 0; e < a->n_examples; e++) {
        const dash_example *x = &a->examples[e];
        if (x->group != -1) continue;
        if (ex_in(b, -1, x->prompt, x->pos) < 0 && fabs(x->value - last) > tol) return 0;
    }
    return 1;
}

/* Interval examples may differ only where a value sits within tol of an interval edge (it can
 * then land in the neighbouring interval on the other backend). */
static int intervals_agree(const dash_feature *a, const dash_feature *b, double tol)
{
    for (int e = 0; e < a->n_examples; e++) {
        const dash_example *x = &a->examples[e];
        if (x->group < 0 || ex_in(b, x->group, x->prompt, x->pos) >= 0) continue;
        const dash_interval *iv = &a->intervals[x->group];
        if (fabs(x->value - iv->lo) > tol && fabs(x->value - iv->hi) > tol && x->value != 0) return 0;
    }
    return 1;
}

typedef struct dash_cmp {
    int features, fired, nnz_bad, max_bad, top_bad, iv_bad, contains_bad, hist_bad, corr_bad, logit_bad, cos_bad, values_bad;
    double max_dmax, max_dcontains, max_dcorr, max_dvalue;
} dash_cmp;

static void compare_feature(dash_cmp *c, const dash_run_result *rc, const dash_run_result *rd, int i)
{
    const dash_feature *a = &rc->features[i], *b = &rd->features[i];
    const int T = rc->T;
    const double tol = 1e-4 * (1 + fabs(a->max_value));
    c->features++;
    c->fired += a->n_nonzero > 0;
    /* activations within ~1e-6 of 0 may fire on one backend only */
    if (llabs(a->n_nonzero - b->n_nonzero) > 2 || a->n_positions != b->n_positions) c->nnz_bad++;
    double dm = fabs(a->max_value - b->max_value);
    c->max_dmax = fmax(c->max_dmax, dm);
    if (dm > tol) c->max_bad++;
    if (!top_sets_agree(a, b, tol) || !top_sets_agree(b, a, tol)) c->top_bad++;
    if (a->n_intervals != b->n_intervals) {
        c->iv_bad++;
    } else {
        if (!intervals_agree(a, b, tol) || !intervals_agree(b, a, tol)) c->iv_bad++;
        for (int q = 0; q < a->n_intervals; q++) {
            double d = fabs(a->intervals[q].contains - b->intervals[q].contains);
            c->max_dcontains = fmax(c->max_dcontains, d);
            if (d > 3.0 / (double)(a->n_positions ? a->n_positions : 1) + 1e-9) c->contains_bad++;
        }
    }
    if (a->n_hist != b->n_hist) {
        c->hist_bad++;
    } else {
        int64_t diff = 0;
        for (int h = 0; h < a->n_hist; h++) diff += llabs(a->hist_heights[h] - b->hist_heights[h]);
        if (diff > 4 + a->n_nonzero / 100) c->hist_bad++;
    }
    for (int k = 0; k < a->n_corr_neurons && k < b->n_corr_neurons; k++) {
        double d = fabs(a->corr_neuron_pearson[k] - b->corr_neuron_pearson[k]);
        c->max_dcorr = fmax(c->max_dcorr, d);
        /* a different neuron is fine only when the two were within rounding of each other */
        if (d > 1e-3 || (a->corr_neuron_idx[k] != b->corr_neuron_idx[k] &&
                         (k + 1 >= a->n_corr_neurons || fabs(a->corr_neuron_pearson[k] - a->corr_neuron_pearson[k + 1]) > 1e-3)))
            c->corr_bad++;
    }
    for (int k = 0; k < a->n_corr_features && k < b->n_corr_features; k++) {
        double d = fabs(a->corr_feature_pearson[k] - b->corr_feature_pearson[k]);
        c->max_dcorr = fmax(c->max_dcorr, d);
        if (d > 1e-3 || (a->corr_feature_idx[k] != b->corr_feature_idx[k] &&
                         (k + 1 >= a->n_corr_features || fabs(a->corr_feature_pearson[k] - a->corr_feature_pearson[k + 1]) > 1e-3)))
            c->corr_bad++;
    }
    /* the weight-derived fields read the same weights back: identical */
    if (a->n_logits != b->n_logits ||
        (a->n_logits && (memcmp(a->pos_ids, b->pos_ids, sizeof(int32_t) * a->n_logits) ||
                         memcmp(a->pos_values, b->pos_values, sizeof(float) * a->n_logits) ||
                         memcmp(a->neg_ids, b->neg_ids, sizeof(int32_t) * a->n_logits))))
        c->logit_bad++;
    if (a->n_cos != b->n_cos || (a->n_cos && memcmp(a->cos_idx, b->cos_idx, sizeof(int32_t) * a->n_cos))) c->cos_bad++;
    /* per-token values of the examples both runs hold */
    for (int e = 0; e < a->n_examples; e++) {
        int eb = ex_in(b, a->examples[e].group, a->examples[e].prompt, a->examples[e].pos);
        if (eb < 0) continue;
        for (int t = 0; t < T; t++) {
            double d = fabs(rc->example_values[i][(size_t)e * T + t] - rd->example_values[i][(size_t)eb * T + t]);
            c->max_dvalue = fmax(c->max_dvalue, d);
            if (d > tol) c->values_bad++;
        }
    }
}

static void dashboard(gp *g, model *md, model *mc, const char *sae_name)
{
    char dir[256], err[512], name[160];
    snprintf(dir, sizeof dir, "%s/%s", SAE_DATA, sae_name);
    /* decoder norms folded where SAELens allows it, as the job runner does */
    sae_cfg cfg;
    if (sae_cfg_load(dir, &cfg, err, sizeof err)) {
        gp_check(g, 0, sae_name, "cfg: %s", err);
        return;
    }
    sae_load_opts lo = {.fold_dec_norm = !(cfg.arch == SAE_TOPK && !cfg.rescale_acts_by_decoder_norm)};
    sae_cfg_free(&cfg);
    sae *sd = sae_load(dir, g->dev, &lo, err, sizeof err), *sc = sd ? sae_load(dir, g->cpu, &lo, err, sizeof err) : NULL;
    snprintf(name, sizeof name, "dashboard %s", sae_name);
    if (!sc) {
        gp_check(g, 0, name, "sae_load: %s", err);
        sae_free(sd);
        return;
    }
    const int n = g->quick ? 24 : 96, T = 32;
    int32_t *prompts = xcalloc(sizeof(int32_t) * (size_t)n * T);
    uint32_t s = 11;
    for (int i = 0; i < n; i++) {
        prompts[(size_t)i * T] = 50256;
        for (int t = 1; t < T; t++) prompts[(size_t)i * T + t] = (int32_t)((s = s * 1664525u + 1013904223u) >> 8) % 3000;
    }
    dash_run_opts o;
    dash_run_opts_default(&o);
    o.bos_id = 50256;
    o.batch_prompts = 10;
    dash_run_result rd, rc;
    int a = dash_run(md, sd, prompts, n, T, &o, &rd, err, sizeof err);
    if (a) gp_check(g, 0, name, "device dash_run: %s", err);
    int b = dash_run(mc, sc, prompts, n, T, &o, &rc, err, sizeof err);
    if (b) gp_check(g, 0, name, "cpu dash_run: %s", err);
    if (!a && !b) {
        dash_cmp c = {0};
        for (int i = 0; i < rc.f1 - rc.f0; i++) compare_feature(&c, &rc, &rd, i);
        snprintf(name, sizeof name, "dashboard %s %d prompts x %d", sae_name, n, T);
        gp_check(g, c.fired > 0 && !c.nnz_bad && !c.max_bad && !c.top_bad, name,
                 "%d features (%d fire): non-zero counts off %d, max off %d (max|d| %.1e), top-K sets differ %d",
                 c.features, c.fired, c.nnz_bad, c.max_bad, c.max_dmax, c.top_bad);
        gp_check(g, !c.iv_bad && !c.contains_bad && !c.hist_bad, name,
                 "interval examples differ %d, binContains off %d (max|d| %.1e), histograms off %d", c.iv_bad,
                 c.contains_bad, c.max_dcontains, c.hist_bad);
        gp_check(g, !c.corr_bad && !c.logit_bad && !c.cos_bad && !c.values_bad, name,
                 "correlations off %d (max|d| %.1e), logit lens differ %d, cos-sim differ %d, example values off %d "
                 "(max|d| %.1e)",
                 c.corr_bad, c.max_dcorr, c.logit_bad, c.cos_bad, c.values_bad, c.max_dvalue);
    }
    if (!a) dash_run_result_free(&rd);
    if (!b) dash_run_result_free(&rc);
    free(prompts);
    sae_free(sd);
    sae_free(sc);
}

void gp_e2e(gp *g)
{
    char err[512];
    model *md = model_load(TINY, g->dev, err, sizeof err);
    if (!md) {
        gp_check(g, 0, "model_load tiny-a on the device", "%s", err);
        return;
    }
    model *mc = model_load(TINY, g->cpu, err, sizeof err);
    if (!mc) {
        gp_check(g, 0, "model_load tiny-a on the cpu", "%s", err);
        model_free(md);
        return;
    }
    forward_cases(g, md, mc);
    forward_batch(g, md, mc);
    sae_cases(g, mc);
    dashboard(g, md, mc, "tiny-a-res-standard");
    dashboard(g, md, mc, "tiny-a-res-topk");
    if (!g->quick) dashboard(g, md, mc, "tiny-a-res-jumprelu");
    model_free(md);
    model_free(mc);
}

/* ---- tf32 / bf16 ---- */

/* A float's BF16 by truncation, and its IEEE half (round to nearest; |x| well inside the
 * normal range, as the test's values are). */
static uint16_t to_bf16(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    return (uint16_t)(u >> 16);
}

static uint16_t to_f16(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    uint16_t s = (uint16_t)((u >> 16) & 0x8000);
    int e = (int)((u >> 23) & 0xff) - 127 + 15;
    if (e < 1) return s; /* below half's normal range: 0 */
    uint32_t m = u & 0x7fffff, r = m >> 13, rest = m & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (r & 1))) r++;
    return (uint16_t)(s | (((uint32_t)e << 10) + r)); /* a mantissa carry bumps the exponent */
}

void gp_precision(gp *g)
{
    static const backend_precision ps[] = {BACKEND_TF32, BACKEND_BF16};
    /* loose bounds that only a wrong product would break: tf32 keeps 10 mantissa bits, bf16 7 */
    static const double bound[] = {2e-2, 1e-1};
    const int M = 512, N = 768, K = 768;
    float *A = gp_rand(g, (size_t)M * K, -1, 1), *B = gp_rand(g, (size_t)K * N, -1, 1);
    float *Cc = calloc((size_t)M * N, sizeof(float)), *Cd = calloc((size_t)M * N, sizeof(float));
    float *dA = gp_up(g, A, (size_t)M * K), *dB = gp_up(g, B, (size_t)K * N), *dC = gp_up(g, Cc, (size_t)M * N);
    g->cpu->gemm(g->cpu, 0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, Cc, N);
    double cmax = 0;
    for (size_t i = 0; i < (size_t)M * N; i++) cmax = fmax(cmax, fabs(Cc[i]));
    /* W (N,K) = Bᵀ in BF16 (truncated) and F16 (the CPU's reference product on the widened
     * values in C16) */
    uint16_t *W16[2] = {calloc((size_t)N * K, 2), calloc((size_t)N * K, 2)}, *dW16[2] = {NULL, NULL};
    float *C16[2] = {calloc((size_t)M * N, sizeof(float)), calloc((size_t)M * N, sizeof(float))};
    for (int h = 0; h < 2; h++) {
        if (!W16[h] || !C16[h]) continue;
        for (int n = 0; n < N; n++)
            for (int kk = 0; kk < K; kk++) W16[h][(size_t)n * K + kk] = h ? to_f16(B[(size_t)kk * N + n]) : to_bf16(B[(size_t)kk * N + n]);
        g->cpu->gemm_w16(g->cpu, M, N, K, A, K, W16[h], !h, 0.0f, C16[h], N);
        dW16[h] = g->dev->alloc(g->dev, (size_t)N * K * 2);
        if (!dW16[h] || g->dev->upload(g->dev, dW16[h], W16[h], (size_t)N * K * 2)) {
            printf("FAIL device memory: %s\n", backend_error(g->dev));
            exit(1);
        }
    }
    char err[512];
    model *md = model_load(TINY, g->dev, err, sizeof err), *mc = model_load(TINY, g->cpu, err, sizeof err);
    const int V = md ? model_config(md)->vocab_size : 0, T = 11;
    static const int32_t fox[] = {50256, 464, 2068, 7586, 21831, 18045, 625, 262, 16931, 3290, 13};
    float *lc = calloc((size_t)T * (V ? V : 1), sizeof(float)), *ld = calloc((size_t)T * (V ? V : 1), sizeof(float));
    fwd_opts o = {.logits = lc};
    if (mc) model_forward(mc, fox, 1, T, &o, err, sizeof err);
    for (int p = 0; p < 2; p++) {
        g->dev->precision = ps[p];
        double wg = 0, wl = 0;
        if (g->dev->gemm(g->dev, 0, 0, M, N, K, 1.0f, dA, K, dB, N, 0.0f, dC, N) == 0) {
            gp_down(g, Cd, dC, (size_t)M * N);
            for (size_t i = 0; i < (size_t)M * N; i++) wg = fmax(wg, fabs(Cd[i] - Cc[i]));
        } else {
            wg = INFINITY;
        }
        fwd_opts od = {.logits = ld};
        if (md && mc && model_forward(md, fox, 1, T, &od, err, sizeof err) == 0)
            for (size_t i = 0; i < (size_t)T * V; i++) wl = fmax(wl, fabs(ld[i] - lc[i]));
        else wl = INFINITY;
        char name[64];
        snprintf(name, sizeof name, "precision %s", backend_precision_name(ps[p]));
        gp_check(g, wg / cmax <= bound[p] && wl <= bound[p], name,
                 "gemm 512x768x768 max|d| %.2e (%.1e of max|C|), tiny-a logits max|d| %.2e (bound %.0e)", wg, wg / cmax, wl,
                 bound[p]);
        /* 16-bit weights: B's columns rounded to BF16 / F16 as W (N,K); under bf16 the BF16
         * weights take the device's 16-bit product, the F16 ones its widening path */
        for (int h = 0; h < 2; h++) {
            double w16 = INFINITY, wmax = 0;
            if (W16[h] && g->dev->gemm_w16(g->dev, M, N, K, dA, K, dW16[h], !h, 0.0f, dC, N) == 0) {
                gp_down(g, Cd, dC, (size_t)M * N);
                w16 = 0;
                for (size_t i = 0; i < (size_t)M * N; i++) {
                    w16 = fmax(w16, fabs(Cd[i] - C16[h][i]));
                    wmax = fmax(wmax, fabs(C16[h][i]));
                }
            }
            snprintf(name, sizeof name, "precision %s gemm_w16 %s", backend_precision_name(ps[p]), h ? "f16" : "bf16");
            gp_check(g, w16 / wmax <= bound[p], name, "512x768x768 max|d| %.2e (%.1e of max|C|, bound %.0e)", w16,
                     w16 / wmax, bound[p]);
        }
    }
    g->dev->precision = BACKEND_FP32;
    for (int h = 0; h < 2; h++) {
        if (dW16[h]) g->dev->release(g->dev, dW16[h]);
        free(W16[h]), free(C16[h]);
    }
    g->dev->release(g->dev, dA), g->dev->release(g->dev, dB), g->dev->release(g->dev, dC);
    free(A), free(B), free(Cc), free(Cd), free(lc), free(ld);
    model_free(md);
    model_free(mc);
}
