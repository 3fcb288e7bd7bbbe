/* gpu_parity_families.c: gpu-parity's end-to-end checks of the rotary families (gpu_parity.h)
 * on the checkpoints in tests/data/families/ (Llama with GQA, Llama-3 rope scaling in BF16,
 * Mistral's window in F16, Qwen2's biases, Gemma-2, Pythia's partial rotary and parallel
 * residual, NeoX in F16): every case of forward.jsonl with every hook on the device, against
 * the float64 reference (tests/ref/families.py; 1e-4 + 1e-4·|ref| as unit_families.c demands
 * of the CPU) and against the CPU backend; a batch with the pattern hook; incremental decoding
 * through the KV cache (one query against the cache, windows sliding over cached keys); and
 * the logits under tf32 and bf16 precision (loosely bounded). 16-bit checkpoints stay 16-bit
 * on the device (gemm_w16). */
#include <jansson.h> // defines: json_t, json_object_foreach
#include <math.h>    // defines: fabs, fmax
#include <stdio.h>   // defines: snprintf
#include <stdlib.h>  // defines: free
#include <string.h>  // defines: memcpy, strcmp

#include "engine/hooks.h"      // defines: hook_parse
#include "engine/model.h"      // defines: model_load, model_forward, kv_cache
#include "tests/gpu_parity.h"  // defines: gp, gp_check, gp_cmp

#define FAM_DIR "tests/data/families"
#define REF_ATOL 1e-4 /* against the float64 reference, as unit_families.c */
#define REF_RTOL 1e-4
#define CPU_ATOL 2e-5 /* against the CPU backend, as tiny-a's forward */
#define CPU_RTOL 1e-4

static const char *const families[] = {"llama-gqa", "llama3-rope", "mistral-swa", "qwen2-bias",
                                       "gemma2",    "pythia",      "neox-seq"};

typedef struct fcap {
    float *x;
    int rows, width;
} fcap;

static int fcap_fn(void *ud, hook_point hp, float *act, int B, int T, int width)
{
    (void)hp;
    fcap *c = ud;
    size_t n = (size_t)B * T * width;
    free(c->x);
    c->x = gp_alloc(sizeof(float) * n);
    memcpy(c->x, act, sizeof(float) * n);
    c->rows = B * T;
    c->width = width;
    return 0;
}

/* Worst |x − ref| and worst excess over atol + rtol·|ref| of n values. */
static void excess(const float *x, const float *ref, size_t n, double atol, double rtol, double *absd, double *ex)
{
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)x[i] - ref[i]);
        if (!(d <= *absd)) *absd = d;
        double e = d - atol - rtol * fabs(ref[i]);
        if (!(e <= *ex)) *ex = e;
    }
}

/* A JSON [rows][width] array as floats; NULL when the shape differs. */
static float *json_matrix(json_t *j, int rows, int width)
{
    if (!json_is_array(j) || (int)json_array_size(j) != rows) return NULL;
    float *x = gp_alloc(sizeof(float) * (size_t)rows * width);
    for (int r = 0; r < rows; r++) {
        json_t *row = json_array_get(j, (size_t)r);
        if ((int)json_array_size(row) != width) {
            free(x);
            return NULL;
        }
        for (int i = 0; i < width; i++) x[(size_t)r * width + i] = (float)json_number_value(json_array_get(row, (size_t)i));
    }
    return x;
}

/* saed's pattern (NH, T, T) in the reference's layout: T rows of NH·T (head-major per query). */
static void pattern_to_ref(fcap *c, int NH, int T)
{
    float *p = gp_alloc(sizeof(float) * (size_t)T * NH * T);
    for (int h = 0; h < NH; h++)
        for (int q = 0; q < T; q++) memcpy(p + ((size_t)q * NH + h) * T, c->x + ((size_t)h * T + q) * T, sizeof(float) * T);
    free(c->x);
    c->x = p;
    c->rows = T;
    c->width = NH * T;
}

/* One forward.jsonl line on both backends, every hook listed and the logits. */
static void family_case(gp *g, const char *fam, model *md, model *mc, json_t *line)
{
    const hf_config *cfg = model_config(md);
    const char *proc_s = json_string_value(json_object_get(line, "processing"));
    const char *cname = json_string_value(json_object_get(line, "name"));
    const int proc = proc_s && !strcmp(proc_s, "tl") ? model_processing_parse("tl") : PROC_NONE, V = cfg->vocab_size;
    json_t *jids = json_object_get(line, "ids"), *hooks = json_object_get(line, "hooks"), *jlog = json_object_get(line, "logits");
    const int T = (int)json_array_size(jids);
    int32_t *ids = gp_alloc(sizeof(int32_t) * (size_t)(T ? T : 1));
    for (int t = 0; t < T; t++) ids[t] = (int32_t)json_integer_value(json_array_get(jids, (size_t)t));
    size_t nh = json_object_size(hooks), i = 0;
    fcap *cd = gp_alloc(sizeof *cd * (nh ? nh : 1)), *cc = gp_alloc(sizeof *cc * (nh ? nh : 1));
    hook_req *rd = gp_alloc(sizeof *rd * (nh ? nh : 1)), *rc = gp_alloc(sizeof *rc * (nh ? nh : 1));
    const char **names = gp_alloc(sizeof *names * (nh ? nh : 1));
    char err[512], name[160];
    snprintf(name, sizeof name, "family %s %s %s", fam, cname ? cname : "?", proc_s ? proc_s : "none");
    const char *key;
    json_t *val;
    int bad_hook = 0;
    json_object_foreach(hooks, key, val)
    {
        hook_point hp;
        if (hook_parse(key, cfg->n_layer, &hp, err, sizeof err)) {
            bad_hook = 1;
            continue;
        }
        names[i] = key;
        rd[i] = (hook_req){hp, fcap_fn, &cd[i], 0};
        rc[i] = (hook_req){hp, fcap_fn, &cc[i], 0};
        i++;
    }
    float *ld = gp_alloc(sizeof(float) * (size_t)T * V), *lc = gp_alloc(sizeof(float) * (size_t)T * V);
    fwd_opts od = {.processing = proc, .hooks = rd, .nhooks = (int)i, .logits = ld};
    fwd_opts oc = {.processing = proc, .hooks = rc, .nhooks = (int)i, .logits = lc};
    if (bad_hook) {
        gp_check(g, 0, name, "hook name: %s", err);
    } else if (model_forward(md, ids, 1, T, &od, err, sizeof err)) {
        gp_check(g, 0, name, "device forward: %s", err);
    } else if (model_forward(mc, ids, 1, T, &oc, err, sizeof err)) {
        gp_check(g, 0, name, "cpu forward: %s", err);
    } else {
        double ref_d = 0, ref_ex = -1e30, cpu_d = 0, cpu_ex = -1e30;
        int missing = 0;
        const char *worst_hook = "logits";
        for (size_t h = 0; h < i; h++) {
            if (!cd[h].x || !cc[h].x || cd[h].rows != cc[h].rows || cd[h].width != cc[h].width) {
                missing++;
                continue;
            }
            double before = cpu_ex;
            excess(cd[h].x, cc[h].x, (size_t)cd[h].rows * cd[h].width, CPU_ATOL, CPU_RTOL, &cpu_d, &cpu_ex);
            if (cpu_ex > before && cpu_ex > 0) worst_hook = names[h];
            if (rd[h].hp.kind == HOOK_PATTERN) pattern_to_ref(&cd[h], cfg->n_head, T);
            float *ref = json_matrix(json_object_get(hooks, names[h]), cd[h].rows, cd[h].width);
            if (!ref) {
                missing++;
                continue;
            }
            before = ref_ex;
            excess(cd[h].x, ref, (size_t)cd[h].rows * cd[h].width, REF_ATOL, REF_RTOL, &ref_d, &ref_ex);
            if (ref_ex > before && ref_ex > 0) worst_hook = names[h];
            free(ref);
        }
        excess(ld, lc, (size_t)T * V, CPU_ATOL, CPU_RTOL, &cpu_d, &cpu_ex);
        float *ref = jlog ? json_matrix(jlog, T, V) : NULL;
        if (ref) excess(ld, ref, (size_t)T * V, REF_ATOL, REF_RTOL, &ref_d, &ref_ex);
        else if (jlog) missing++;
        free(ref);
        gp_check(g, !missing && ref_ex <= 0 && cpu_ex <= 0, name,
                 "%zu hooks%s: vs reference max|d| %.2e (tol %.0e+%.0e|ref|), vs cpu %.2e (tol %.0e+%.0e|ref|)%s%s, %d "
                 "missing",
                 i, jlog ? " + logits" : "", ref_d, REF_ATOL, REF_RTOL, cpu_d, CPU_ATOL, CPU_RTOL,
                 ref_ex > 0 || cpu_ex > 0 ? ", worst at " : "", ref_ex > 0 || cpu_ex > 0 ? worst_hook : "", missing);
    }
    for (size_t h = 0; h < nh; h++) free(cd[h].x), free(cc[h].x);
    free(cd), free(cc), free(rd), free(rc), free(names), free(ld), free(lc), free(ids);
}

/* B = 3 prompts of 10 tokens: the last layer's pattern, layer 0's z, the last residual and the
 * logits, device against the CPU. */
static void family_batch(gp *g, const char *fam, model *md, model *mc)
{
    const hf_config *cfg = model_config(md);
    const int B = 3, T = 10, V = cfg->vocab_size, L = cfg->n_layer;
    int32_t ids[30];
    for (int i = 0; i < B * T; i++) ids[i] = (int32_t)((i * 2654435761u) % (unsigned)V);
    static const char *const hn[] = {"hook_pattern", "hook_z", "hook_resid_post"};
    const hook_point hps[3] = {{HOOK_PATTERN, L - 1}, {HOOK_Z, 0}, {HOOK_RESID_POST, L - 1}};
    fcap cd[3] = {{0}}, cc[3] = {{0}};
    hook_req rd[3], rc[3];
    for (int i = 0; i < 3; i++) {
        rd[i] = (hook_req){hps[i], fcap_fn, &cd[i], 0};
        rc[i] = (hook_req){hps[i], fcap_fn, &cc[i], 0};
    }
    float *ld = gp_alloc(sizeof(float) * (size_t)B * T * V), *lc = gp_alloc(sizeof(float) * (size_t)B * T * V);
    fwd_opts od = {.hooks = rd, .nhooks = 3, .logits = ld}, oc = {.hooks = rc, .nhooks = 3, .logits = lc};
    char err[512], name[160];
    snprintf(name, sizeof name, "family %s B3 T10", fam);
    if (model_forward(md, ids, B, T, &od, err, sizeof err)) gp_check(g, 0, name, "device forward: %s", err);
    else if (model_forward(mc, ids, B, T, &oc, err, sizeof err)) gp_check(g, 0, name, "cpu forward: %s", err);
    else {
        for (int i = 0; i < 3; i++) {
            snprintf(name, sizeof name, "family %s B3 T10: %s", fam, hn[i]);
            if (cd[i].x && cc[i].x && cd[i].rows == cc[i].rows && cd[i].width == cc[i].width)
                gp_cmp(g, name, cc[i].x, cd[i].x, (size_t)cc[i].rows * cc[i].width, CPU_ATOL, CPU_RTOL);
            else gp_check(g, 0, name, "hook not called or shapes differ");
        }
        snprintf(name, sizeof name, "family %s B3 T10: logits", fam);
        gp_cmp(g, name, lc, ld, (size_t)B * T * V, CPU_ATOL, CPU_RTOL);
    }
    for (int i = 0; i < 3; i++) free(cd[i].x), free(cc[i].x);
    free(ld), free(lc);
}

/* Two prompts: a 6-token prefill, then 5 single tokens through the KV cache, every step's
 * logits device against CPU (windows of 4 slide over the cache on Mistral and Gemma-2). */
static void family_cache(gp *g, const char *fam, model *md, model *mc)
{
    const int B = 2, T = 11, P = 6, V = model_config(md)->vocab_size;
    int32_t ids[22], part[12];
    for (int i = 0; i < B * T; i++) ids[i] = (int32_t)((i * 37 + 5) % V);
    char err[512] = "", name[160];
    snprintf(name, sizeof name, "family %s KV cache %d+1x%d: logits of every step", fam, P, T - P);
    kv_cache *kd = kv_cache_new(md, B, T, err, sizeof err), *kc = kd ? kv_cache_new(mc, B, T, err, sizeof err) : NULL;
    float *sd = gp_alloc(sizeof(float) * (size_t)B * T * V), *sc = gp_alloc(sizeof(float) * (size_t)B * T * V);
    int ok = kd && kc;
    size_t off = 0;
    for (int t0 = 0; ok && t0 < T; t0 += t0 ? 1 : P) {
        const int n = t0 ? 1 : P;
        for (int b = 0; b < B; b++) memcpy(part + b * n, ids + b * T + t0, sizeof(int32_t) * n);
        fwd_opts a = {.logits = sd + off, .cache = kd}, c = {.logits = sc + off, .cache = kc};
        ok = model_forward(md, part, B, n, &a, err, sizeof err) == 0 && model_forward(mc, part, B, n, &c, err, sizeof err) == 0;
        off += (size_t)B * n * V;
    }
    if (ok) gp_cmp(g, name, sc, sd, off, CPU_ATOL, CPU_RTOL);
    else gp_check(g, 0, name, "%s", err);
    kv_cache_free(kd);
    kv_cache_free(kc);
    free(sd), free(sc);
}

/* The first case's logits under tf32 and bf16 (the device's 16-bit product for BF16 weights),
 * against the CPU's fp32: bounds only a wrong product would break. */
static void family_precision(gp *g, const char *fam, model *md, model *mc)
{
    static const backend_precision ps[] = {BACKEND_TF32, BACKEND_BF16};
    static const double bound[] = {2e-2, 1e-1};
    const int T = 12, V = model_config(md)->vocab_size;
    int32_t ids[12];
    for (int t = 0; t < T; t++) ids[t] = (int32_t)((t * 53 + 3) % V);
    float *lc = gp_alloc(sizeof(float) * (size_t)T * V), *ld = gp_alloc(sizeof(float) * (size_t)T * V);
    char err[512] = "", name[160];
    fwd_opts oc = {.logits = lc};
    int rc = model_forward(mc, ids, 1, T, &oc, err, sizeof err);
    double lmax = 0;
    for (size_t i = 0; i < (size_t)T * V; i++) lmax = fmax(lmax, fabs(lc[i]));
    saed_backend *be = model_backend(md);
    for (int p = 0; p < 2; p++) {
        be->precision = ps[p];
        fwd_opts od = {.logits = ld};
        double w = INFINITY;
        if (rc == 0 && model_forward(md, ids, 1, T, &od, err, sizeof err) == 0) {
            w = 0;
            for (size_t i = 0; i < (size_t)T * V; i++) w = fmax(w, fabs(ld[i] - lc[i]));
        }
        snprintf(name, sizeof name, "family %s precision %s: logits", fam, backend_precision_name(ps[p]));
        gp_check(g, w <= bound[p] * (1 + lmax), name, "max|d| %.2e (bound %.0e·(1 + max|logit| %.2f))%s%s", w, bound[p],
                 lmax, w == INFINITY ? ": " : "", w == INFINITY ? err : "");
    }
    be->precision = BACKEND_FP32;
    free(lc), free(ld);
}

void gp_families(gp *g)
{
    for (size_t fi = 0; fi < sizeof families / sizeof *families; fi++) {
        const char *fam = families[fi];
        char dir[256], path[300], err[512];
        snprintf(dir, sizeof dir, "%s/%s", FAM_DIR, fam);
        snprintf(path, sizeof path, "%s/forward.jsonl", dir);
        model *md = model_load(dir, g->dev, err, sizeof err);
        if (!md) {
            gp_check(g, 0, fam, "model_load on the device: %s", err);
            continue;
        }
        model *mc = model_load(dir, g->cpu, err, sizeof err);
        if (!mc) {
            gp_check(g, 0, fam, "model_load on the cpu: %s", err);
            model_free(md);
            continue;
        }
        int n = 0;
        json_t **lines = gp_read_jsonl(path, &n);
        /* equal sizes: 16-bit checkpoints stay 16-bit on the device as on the CPU */
        gp_check(g, n >= 2 && model_weight_bytes(md) == model_weight_bytes(mc), fam,
                 "%s loaded on the device (%zu weight bytes, the cpu %zu), %d cases in %s",
                 model_config(md)->architecture, model_weight_bytes(md), model_weight_bytes(mc), n, path);
        for (int i = 0; i < n && (!g->quick || i < 2); i++) family_case(g, fam, md, mc, lines[i]);
        for (int i = 0; i < n; i++) json_decref(lines[i]);
        free(lines);
        family_batch(g, fam, md, mc);
        family_cache(g, fam, md, mc);
        family_precision(g, fam, md, mc);
        model_free(md);
        model_free(mc);
    }
}
