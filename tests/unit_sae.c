/* unit_sae.c: SAEs (engine/sae.h) on the CPU backend. Against SAELens 6.18.0 itself: every line
 * of tests/data/sae/sae_cases.jsonl, loading each SAE from its legacy cfg.json and from its v6
 * cfg, raw and centered, with the hook input computed by tiny-a's forward. Against hand
 * computation and a float64 re-implementation in this file: gated SAEs, the three transcoders,
 * the normalizations, the norm-scaling-factor and decoder-norm folds. Plus cfg parsing of every
 * format version, malformed files, the model check, sparsity files and export round trips.
 * Scratch directories live under /tmp and are removed by each test. */
#define _XOPEN_SOURCE 700 /* nftw, realpath */
#include <ftw.h>       // defines: nftw
#include <jansson.h>   // defines: json_loads
#include <limits.h>    // defines: PATH_MAX
#include <stdint.h>    // defines: uint32_t
#include <stdlib.h>    // defines: malloc, mkdtemp, realpath
#include <string.h>    // defines: memcmp
#include <unistd.h>    // defines: symlink

#include "engine/model.h"
#include "engine/safetensors.h"
#include "engine/sae.h"
#include "tests/t.h"

#define TINY "tests/data/models/tiny-a"
#define SAE_DATA "tests/data/sae"

/* ---- files ---- */

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}
static void rm_tree(const char *dir) { nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS); }

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
        free(s);
        s = NULL;
    }
    if (s) s[n] = '\0';
    fclose(f);
    return s;
}

static void spit(const char *dir, const char *name, const char *text)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    CHECK(f != NULL);
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

static void mk_tmp(char dir[64])
{
    snprintf(dir, 64, "/tmp/saed-sae-XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
}

/* A scratch SAE directory holding cfg_text as cfg.json and a link to src's weights. */
static void tmp_sae_from(const char *src, const char *cfg_text, char dir[64])
{
    char w[PATH_MAX], real[PATH_MAX], link[512];
    mk_tmp(dir);
    spit(dir, "cfg.json", cfg_text);
    snprintf(w, sizeof w, "%s/sae_weights.safetensors", src);
    CHECK(realpath(w, real) != NULL);
    snprintf(link, sizeof link, "%s/sae_weights.safetensors", dir);
    CHECK_INT(symlink(real, link), 0);
}

/* cfg text with model_from_pretrained_kwargs {center_writing_weights: true} (in metadata for v6). */
static char *with_centering(const char *text)
{
    json_t *j = json_loads(text, 0, NULL);
    json_t *meta = json_object_get(j, "metadata");
    json_object_set_new(json_is_object(meta) ? meta : j, "model_from_pretrained_kwargs",
                        json_pack("{s:b}", "center_writing_weights", 1));
    char *s = json_dumps(j, 0);
    json_decref(j);
    return s;
}

/* ---- running an SAE ---- */

/* encode then decode through backend memory; f (N,d_sae) and out (N,d_out) on the host. */
static int run_sae(sae *s, saed_backend *be, const float *x, int N, float *f, float *out)
{
    const sae_cfg *c = sae_config(s);
    char err[512];
    size_t nx = (size_t)N * c->d_in, nf = (size_t)N * c->d_sae, no = (size_t)N * c->d_out;
    float *dx = be->alloc(be, nx * 4), *df = be->alloc(be, nf * 4), *dout = be->alloc(be, no * 4);
    be->upload(be, dx, x, nx * 4);
    int rc = sae_encode(s, dx, N, df, err, sizeof err);
    if (rc) t_fail(__FILE__, __LINE__, "sae_encode: %s", err);
    if (!rc && (rc = sae_decode(s, df, dx, N, dout, err, sizeof err))) t_fail(__FILE__, __LINE__, "sae_decode: %s", err);
    if (f) be->download(be, f, df, nf * 4);
    if (out) be->download(be, out, dout, no * 4);
    be->release(be, dx);
    be->release(be, df);
    be->release(be, dout);
    return rc;
}

typedef struct cap {
    float *x;
    int rows, width;
} cap;

static int cap_fn(void *ud, hook_point hp, float *act, int B, int T, int width)
{
    (void)hp;
    cap *c = ud;
    free(c->x);
    c->x = malloc(sizeof(float) * (size_t)B * T * width);
    memcpy(c->x, act, sizeof(float) * (size_t)B * T * width);
    c->rows = B * T;
    c->width = width;
    return 0;
}

/* The SAE's input for ids: tiny-a to the SAE's hook, with the processing its cfg asks for. */
static float *hook_input(model *m, const sae_cfg *c, const int32_t *ids, int T)
{
    hook_point hp;
    char err[512];
    if (sae_cfg_check_model(c, model_config(m), &hp, err, sizeof err)) {
        t_fail(__FILE__, __LINE__, "sae_cfg_check_model: %s", err);
        return NULL;
    }
    cap k = {0};
    hook_req h = {hp, cap_fn, &k, 0};
    fwd_opts o = {.processing = sae_cfg_processing(c), .hooks = &h, .nhooks = 1};
    if (model_forward(m, ids, 1, T, &o, err, sizeof err)) t_fail(__FILE__, __LINE__, "model_forward: %s", err);
    CHECK_INT(k.width, c->d_in);
    return k.x;
}

/* ---- the SAELens reference cases ---- */

static void run_case(model *m, saed_backend *be, json_t *cs, int v6)
{
    const char *name = json_string_value(json_object_get(cs, "sae"));
    const char *arch = json_string_value(json_object_get(cs, "architecture"));
    const char *cname = json_string_value(json_object_get(cs, "case"));
    int centered = !strcmp(json_string_value(json_object_get(cs, "input_mode")), "centered");
    char src[256], path[320], dir[64], err[512];
    snprintf(src, sizeof src, "%s/%s", SAE_DATA, name);
    snprintf(path, sizeof path, "%s/%s", src, v6 ? "cfg_v6.json" : "cfg.json");
    char *text = slurp(path);
    CHECK(text != NULL);
    if (!text) return;
    char *cfg = centered ? with_centering(text) : strdup(text);
    tmp_sae_from(src, cfg, dir);
    free(text);
    free(cfg);
    sae *s = sae_load(dir, be, NULL, err, sizeof err);
    if (!s) {
        t_fail(__FILE__, __LINE__, "%s: sae_load: %s", name, err);
        rm_tree(dir);
        return;
    }
    const sae_cfg *c = sae_config(s);
    CHECK_INT(c->format, v6 ? 6 : 5);
    CHECK_STR(sae_arch_name(c->arch), arch);
    CHECK_INT(sae_cfg_processing(c), centered ? PROC_CENTER_WRITING : PROC_NONE);
    json_t *jids = json_object_get(cs, "ids");
    const int T = (int)json_array_size(jids), S = c->d_sae, D = c->d_in;
    int32_t *ids = malloc(sizeof(int32_t) * T);
    for (int t = 0; t < T; t++) ids[t] = (int32_t)json_integer_value(json_array_get(jids, (size_t)t));
    float *x = hook_input(m, c, ids, T);
    float *f = malloc(sizeof(float) * (size_t)T * S), *out = malloc(sizeof(float) * (size_t)T * D);
    double *ref = malloc(sizeof(double) * S);
    if (x && !run_sae(s, be, x, T, f, out)) {
        sae_sparse sp;
        CHECK_INT(sae_encode_sparse(s, x, T, &sp, err, sizeof err), 0);
        for (int t = 0; t < T; t++) {
            const float *ft = f + (size_t)t * S;
            json_t *acts = json_array_get(json_object_get(cs, "acts"), (size_t)t);
            for (int i = 0; i < S; i++) ref[i] = 0;
            int listed = (int)json_array_size(acts);
            for (int j = 0; j < listed; j++) {
                json_t *p = json_array_get(acts, (size_t)j);
                ref[json_integer_value(json_array_get(p, 0))] = json_number_value(json_array_get(p, 1));
            }
            double worst = 0;
            int ours = 0, small = 0, set_bad = -1, strict_bad = -1;
            for (int i = 0; i < S; i++) {
                double e = fabs(ft[i] - ref[i]);
                if (e > worst) worst = e;
                ours += ft[i] > 0;
                small += (ft[i] > 0 && ft[i] < 1e-5) || (ref[i] > 0 && ref[i] < 1e-5);
                /* Listed (> 1e-6) but inactive here, or active here and unlisted: only near 0. */
                if ((ref[i] > 0) != (ft[i] > 0) && fmax(ref[i], ft[i]) >= 1e-5) set_bad = i;
                /* The reference lists values > 1e-6. */
                if ((ref[i] > 0) != (ft[i] > 1e-6) && fabs(ft[i] - 1e-6) > 1e-7) strict_bad = i;
            }
            int l0 = (int)json_integer_value(json_array_get(json_object_get(cs, "l0"), (size_t)t));
            if (worst > 1e-4) t_fail(__FILE__, __LINE__, "%s %s %s v%d t=%d: acts max abs err %.3g", cname, name,
                                     centered ? "centered" : "raw", v6 ? 6 : 5, t, worst);
            if (set_bad >= 0)
                t_fail(__FILE__, __LINE__, "%s %s t=%d: feature %d active %g vs reference %g", cname, name, t, set_bad,
                       ft[set_bad], ref[set_bad]);
            if (strcmp(arch, "standard")) {
                /* jumprelu and topk: the same active set (thresholds and the k-th value are
                 * ≥ 2e-4 away; values near 0 may be active, in both). */
                if (ours != l0 || strict_bad >= 0)
                    t_fail(__FILE__, __LINE__, "%s %s t=%d: l0 %d vs %d, feature %d", cname, name, t, ours, l0, strict_bad);
            } else if (abs(ours - l0) > small + (l0 - listed)) {
                t_fail(__FILE__, __LINE__, "%s %s t=%d: l0 %d vs %d", cname, name, t, ours, l0);
            }
            if (!strcmp(arch, "topk")) CHECK_INT(ours, 8);
            json_t *so = json_array_get(json_object_get(cs, "sae_out"), (size_t)t);
            worst = 0;
            for (int i = 0; i < D; i++) {
                double e = fabs(out[(size_t)t * D + i] - json_number_value(json_array_get(so, (size_t)i)));
                if (e > worst) worst = e;
            }
            if (worst > 1e-4) t_fail(__FILE__, __LINE__, "%s %s t=%d: sae_out max abs err %.3g", cname, name, t, worst);
            /* The sparse lists: the dense non-zeros, by value descending. */
            CHECK_INT(sp.count[t], ours);
            for (int j = 0; j < sp.count[t]; j++) {
                int32_t i = sp.idx[sp.offset[t] + j];
                CHECK(sp.val[sp.offset[t] + j] == ft[i]);
                if (j) CHECK(sp.val[sp.offset[t] + j] <= sp.val[sp.offset[t] + j - 1]);
            }
        }
        sae_sparse_free(&sp);
    }
    free(ref);
    free(f);
    free(out);
    free(x);
    free(ids);
    sae_free(s);
    rm_tree(dir);
}

TEST(sae_saelens_reference_cases_legacy_and_v6_cfg)
{
    char err[512];
    saed_backend *be = backend_cpu_open();
    model *m = model_load(TINY, be, err, sizeof err);
    if (!m) t_fail(__FILE__, __LINE__, "model_load: %s", err);
    FILE *f = fopen(SAE_DATA "/sae_cases.jsonl", "r");
    CHECK(f != NULL);
    char *line = NULL;
    size_t cap_ = 0;
    int n = 0;
    while (m && f && getline(&line, &cap_, f) > 0) {
        json_t *cs = json_loads(line, 0, NULL);
        CHECK(cs != NULL);
        for (int v6 = 0; cs && v6 < 2; v6++) run_case(m, be, cs, v6);
        json_decref(cs);
        n++;
    }
    CHECK_INT(n, 24);
    free(line);
    if (f) fclose(f);
    model_free(m);
    backend_close(be);
}

/* ---- a float64 reference of SAELens v6's encode/decode, and small SAEs to feed it ---- */

typedef struct ref_sae {
    sae_arch arch;
    int D, S, O, k, rescale, apply_b_dec;
    sae_norm norm;
    float *W_enc, *b_enc, *b_gate, *r_mag, *b_mag, *thr, *W_dec, *b_dec, *W_skip;
} ref_sae;

static uint32_t rng_state = 20240601;
static float frand(void)
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return (float)((rng_state >> 8) / 16777216.0 * 2.0 - 1.0);
}

static float *rvec(size_t n, float scale)
{
    float *v = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) v[i] = frand() * scale;
    return v;
}

static int is_tc(sae_arch a) { return a == SAE_TRANSCODER || a == SAE_SKIP_TRANSCODER || a == SAE_JUMPRELU_TRANSCODER; }

/* Random weights with decoder rows of norms 0.5–2 (so decoder-norm folding matters). */
static ref_sae ref_random(sae_arch arch, int D, int S, int O)
{
    ref_sae r = {.arch = arch, .D = D, .S = S, .O = O, .k = 3, .apply_b_dec = !is_tc(arch)};
    r.W_enc = rvec((size_t)D * S, 1.0f);
    r.W_dec = rvec((size_t)S * O, 1.0f);
    for (int i = 0; i < S; i++) {
        double n = 0, want = 0.5 + 1.5 * (i % 4) / 3.0;
        for (int j = 0; j < O; j++) n += (double)r.W_dec[i * O + j] * r.W_dec[i * O + j];
        for (int j = 0; j < O; j++) r.W_dec[i * O + j] = (float)(r.W_dec[i * O + j] * want / sqrt(n));
    }
    r.b_dec = rvec((size_t)O, 0.3f);
    if (arch == SAE_GATED) {
        r.b_gate = rvec((size_t)S, 0.5f);
        r.r_mag = rvec((size_t)S, 0.5f);
        r.b_mag = rvec((size_t)S, 0.5f);
    } else {
        r.b_enc = rvec((size_t)S, 0.5f);
    }
    if (arch == SAE_JUMPRELU || arch == SAE_JUMPRELU_TRANSCODER) r.thr = rvec((size_t)S, 0.4f);
    if (arch == SAE_SKIP_TRANSCODER) r.W_skip = rvec((size_t)O * D, 1.0f);
    return r;
}

static void ref_free(ref_sae *r)
{
    float *p[] = {r->W_enc, r->b_enc, r->b_gate, r->r_mag, r->b_mag, r->thr, r->W_dec, r->b_dec, r->W_skip};
    for (size_t i = 0; i < sizeof p / sizeof *p; i++) free(p[i]);
}

/* Writes r's tensors (dt: their dtype, F32 or F16) to dir/sae_weights.safetensors. */
static void ref_write(const ref_sae *r, const char *dir)
{
    const int64_t de[2] = {r->D, r->S}, dd[2] = {r->S, r->O}, ds[1] = {r->S}, dout[1] = {r->O}, dk[2] = {r->O, r->D};
    st_wtensor t[9];
    int n = 0;
    t[n++] = (st_wtensor){"W_enc", ST_F32, 2, de, r->W_enc};
    t[n++] = (st_wtensor){"W_dec", ST_F32, 2, dd, r->W_dec};
    t[n++] = (st_wtensor){"b_dec", ST_F32, 1, dout, r->b_dec};
    if (r->b_enc) t[n++] = (st_wtensor){"b_enc", ST_F32, 1, ds, r->b_enc};
    if (r->b_gate) t[n++] = (st_wtensor){"b_gate", ST_F32, 1, ds, r->b_gate};
    if (r->r_mag) t[n++] = (st_wtensor){"r_mag", ST_F32, 1, ds, r->r_mag};
    if (r->b_mag) t[n++] = (st_wtensor){"b_mag", ST_F32, 1, ds, r->b_mag};
    if (r->thr) t[n++] = (st_wtensor){"threshold", ST_F32, 1, ds, r->thr};
    if (r->W_skip) t[n++] = (st_wtensor){"W_skip", ST_F32, 2, dk, r->W_skip};
    char p[512], err[512];
    snprintf(p, sizeof p, "%s/sae_weights.safetensors", dir);
    if (st_write(p, t, n, NULL, err, sizeof err)) t_fail(__FILE__, __LINE__, "st_write: %s", err);
}

/* A v6 cfg.json for r at blocks.0.hook_resid_pre; extra: more top-level JSON members. */
static void ref_cfg(const ref_sae *r, const char *dir, const char *extra)
{
    char buf[2048];
    snprintf(buf, sizeof buf,
             "{\"d_in\":%d,\"d_sae\":%d,\"dtype\":\"float32\",\"device\":\"cpu\",\"apply_b_dec_to_input\":%s,"
             "\"normalize_activations\":\"%s\",\"reshape_activations\":\"none\",\"architecture\":\"%s\",\"k\":%d,"
             "\"rescale_acts_by_decoder_norm\":%s,\"d_out\":%d,\"metadata\":{\"sae_lens_version\":\"6.18.0\","
             "\"model_name\":\"tiny-a\",\"hook_name\":\"blocks.0.hook_resid_pre\",\"prepend_bos\":true}%s%s}",
             r->D, r->S, r->apply_b_dec ? "true" : "false", sae_norm_name(r->norm), sae_arch_name(r->arch), r->k,
             r->rescale ? "true" : "false", r->O, extra ? "," : "", extra ? extra : "");
    spit(dir, "cfg.json", buf);
}

static double row_norm2(const float *v, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++) s += (double)v[i] * v[i];
    return sqrt(s);
}

/* One row through SAELens v6's math in float64: f (S) and out (O). */
static void ref_run(const ref_sae *r, const float *x, double *f, double *out)
{
    const int D = r->D, S = r->S, O = r->O;
    double *xin = malloc(sizeof(double) * D), *h = malloc(sizeof(double) * S), c = 1, mu = 0, sd = 1;
    double nx = row_norm2(x, D);
    for (int d = 0; d < D; d++) mu += x[d] / (double)D;
    double ss = 0;
    for (int d = 0; d < D; d++) ss += (x[d] - mu) * (x[d] - mu);
    sd = sqrt(ss / (D - 1));
    c = sqrt((double)D) / nx;
    for (int d = 0; d < D; d++) {
        xin[d] = r->norm == SAE_NORM_CONSTANT_NORM_RESCALE ? x[d] * c
                 : r->norm == SAE_NORM_LAYER_NORM          ? (x[d] - mu) / (sd + 1e-5)
                                                           : x[d];
        if (r->apply_b_dec) xin[d] -= r->b_dec[d];
    }
    for (int i = 0; i < S; i++) {
        double hi = 0, pi = 0;
        for (int d = 0; d < D; d++) {
            hi += xin[d] * r->W_enc[d * S + i] * (r->arch == SAE_GATED ? exp((double)r->r_mag[i]) : 1.0);
            pi += xin[d] * r->W_enc[d * S + i];
        }
        if (r->arch == SAE_GATED) {
            hi += r->b_mag[i];
            pi += r->b_gate[i];
            f[i] = pi > 0 && hi > 0 ? hi : 0;
        } else {
            hi += r->b_enc[i];
            if (r->arch == SAE_TOPK && r->rescale) hi *= row_norm2(r->W_dec + i * O, O);
            h[i] = hi;
            f[i] = hi > 0 && (!r->thr || hi > r->thr[i]) ? hi : 0;
        }
    }
    if (r->arch == SAE_TOPK) {
        for (int i = 0; i < S; i++) {
            int rank = 0;
            for (int j = 0; j < S; j++) rank += h[j] > h[i] || (h[j] == h[i] && j < i);
            f[i] = rank < r->k && h[i] > 0 ? h[i] : 0;
        }
    }
    for (int o = 0; o < O; o++) {
        double y = r->b_dec[o];
        for (int i = 0; i < S; i++) {
            double fi = f[i];
            if (r->arch == SAE_TOPK && r->rescale) fi /= row_norm2(r->W_dec + i * O, O);
            y += fi * r->W_dec[i * O + o];
        }
        if (!is_tc(r->arch)) {
            if (r->norm == SAE_NORM_CONSTANT_NORM_RESCALE) y /= c;
            if (r->norm == SAE_NORM_LAYER_NORM) y = y * sd + mu;
        }
        if (r->W_skip)
            for (int d = 0; d < D; d++) y += (double)x[d] * r->W_skip[o * D + d];
        out[o] = y;
    }
    free(xin);
    free(h);
}

/* Loads r (cfg extra as in ref_cfg) and checks N random rows against ref_run. */
static void check_against_ref(const ref_sae *r, const char *extra, int N, double tol, const char *what)
{
    char dir[64], err[512];
    mk_tmp(dir);
    ref_write(r, dir);
    ref_cfg(r, dir, extra);
    saed_backend *be = backend_cpu_open();
    sae *s = sae_load(dir, be, NULL, err, sizeof err);
    if (!s) t_fail(__FILE__, __LINE__, "%s: sae_load: %s", what, err);
    float *x = rvec((size_t)N * r->D, 2.0f), *f = malloc(sizeof(float) * N * r->S), *out = malloc(sizeof(float) * N * r->O);
    double *rf = malloc(sizeof(double) * r->S), *ro = malloc(sizeof(double) * r->O);
    int active = 0;
    if (s && !run_sae(s, be, x, N, f, out)) {
        for (int n = 0; n < N; n++) {
            ref_run(r, x + (size_t)n * r->D, rf, ro);
            for (int i = 0; i < r->S; i++) {
                active += rf[i] > 0;
                if (fabs(f[n * r->S + i] - rf[i]) > tol)
                    t_fail(__FILE__, __LINE__, "%s row %d f[%d]: %.9g vs %.9g", what, n, i, f[n * r->S + i], rf[i]);
            }
            for (int o = 0; o < r->O; o++)
                if (fabs(out[n * r->O + o] - ro[o]) > tol * (1 + fabs(ro[o])))
                    t_fail(__FILE__, __LINE__, "%s row %d out[%d]: %.9g vs %.9g", what, n, o, out[n * r->O + o], ro[o]);
        }
        CHECK(active > 0);            /* the case exercises something */
        CHECK(active < N * r->S);
    }
    free(x);
    free(f);
    free(out);
    free(rf);
    free(ro);
    sae_free(s);
    backend_close(be);
    rm_tree(dir);
}

TEST(sae_every_architecture_matches_float64_reference)
{
    static const sae_arch archs[] = {SAE_STANDARD, SAE_GATED, SAE_JUMPRELU, SAE_TOPK, SAE_TRANSCODER,
                                     SAE_SKIP_TRANSCODER, SAE_JUMPRELU_TRANSCODER};
    for (size_t a = 0; a < sizeof archs / sizeof *archs; a++) {
        ref_sae r = ref_random(archs[a], 12, 40, is_tc(archs[a]) ? 7 : 12);
        check_against_ref(&r, NULL, 9, 1e-4, sae_arch_name(archs[a]));
        if (archs[a] == SAE_TOPK) {
            r.rescale = 1;
            check_against_ref(&r, NULL, 9, 1e-4, "topk rescale_acts_by_decoder_norm");
        }
        ref_free(&r);
    }
}

TEST(sae_normalizations_constant_norm_rescale_and_layer_norm)
{
    static const sae_norm norms[] = {SAE_NORM_CONSTANT_NORM_RESCALE, SAE_NORM_LAYER_NORM};
    static const sae_arch archs[] = {SAE_STANDARD, SAE_JUMPRELU, SAE_TRANSCODER};
    for (int n = 0; n < 2; n++)
        for (int a = 0; a < 3; a++) {
            ref_sae r = ref_random(archs[a], 10, 30, 10);
            r.norm = norms[n];
            char what[96];
            snprintf(what, sizeof what, "%s %s", sae_arch_name(archs[a]), sae_norm_name(norms[n]));
            check_against_ref(&r, NULL, 7, 1e-4, what);
            ref_free(&r);
        }
    /* Hand case, constant_norm_rescale with d_in 4: x = (3, 0, 4, 0), ‖x‖ = 5, c = 2/5. */
    char dir[64], err[512];
    mk_tmp(dir);
    float we[4 * 2] = {1, 0, 0, 1, 1, 0, 0, -1}, be_[2] = {0, 0}, wd[2 * 4] = {1, 0, 0, 0, 0, 0, 1, 0}, bd[4] = {0};
    ref_sae r = {.arch = SAE_STANDARD, .D = 4, .S = 2, .O = 4, .norm = SAE_NORM_CONSTANT_NORM_RESCALE,
                 .W_enc = we, .b_enc = be_, .W_dec = wd, .b_dec = bd};
    ref_write(&r, dir);
    ref_cfg(&r, dir, NULL);
    saed_backend *be = backend_cpu_open();
    sae *s = sae_load(dir, be, NULL, err, sizeof err);
    float x[4] = {3, 0, 4, 0}, f[2], out[4];
    if (s && !run_sae(s, be, x, 1, f, out)) {
        /* x·c = (1.2, 0, 1.6, 0); h = (1.2 + 1.6, 0 − 0) → f = (2.8, 0); y = (2.8, 0, 0, 0) / c. */
        CHECK_NEAR(f[0], 2.8, 1e-6);
        CHECK_NEAR(f[1], 0.0, 0);
        CHECK_NEAR(out[0], 7.0, 1e-5);
        CHECK_NEAR(out[2], 0.0, 1e-6);
        CHECK_INT(sae_decode(s, f, NULL, 1, out, err, sizeof err), -1);
        CHECK_CONTAINS(err, "constant_norm_rescale needs the input x");
    }
    sae_free(s);
    backend_close(be);
    rm_tree(dir);
}

TEST(sae_gated_hand_computed)
{
    /* d_in 3, d_sae 4. x~ = x − b_dec; π = x~ W_enc + b_gate; h = x~ (W_enc ⊙ exp(r_mag)) + b_mag. */
    float we[12] = {1, 0, 0, 1, 0, 1, 0, 1, 0, 0, 1, -1};
    float bgate[4] = {0, -1, 0.5f, 0}, rmag[4] = {0, (float)log(2.0), 0, 0}, bmag[4] = {0.1f, 0, -2, 0};
    float wd[12] = {1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1}, bd[3] = {0.5f, 0, 0};
    ref_sae r = {.arch = SAE_GATED, .D = 3, .S = 4, .O = 3, .apply_b_dec = 1, .W_enc = we, .b_gate = bgate,
                 .r_mag = rmag, .b_mag = bmag, .W_dec = wd, .b_dec = bd};
    char dir[64], err[512];
    mk_tmp(dir);
    ref_write(&r, dir);
    ref_cfg(&r, dir, NULL);
    saed_backend *be = backend_cpu_open();
    sae *s = sae_load(dir, be, NULL, err, sizeof err);
    if (!s) t_fail(__FILE__, __LINE__, "sae_load: %s", err);
    /* Row 0: x~ = (1, 2, 1): π = (1, 1, 1.5, 2) all open; h = (1.1, 4, −1, 2) → f = (1.1, 4, 0, 2);
     * out = 1.1·e0 + 4·e1 + 2·(1,1,1) + b_dec = (3.6, 6, 2).
     * Row 1: x~ = (0, 0.2, 3): π = (0, −0.8, 3.5, −2.8): only gate 2 opens (π = 0 stays shut);
     * h = (0.1, 0.4, 1, −2.8) → f = (0, 0, 1, 0); out = (0.5, 0, 1). */
    float x[6] = {1.5f, 2, 1, 0.5f, 0.2f, 3}, f[8], out[6];
    const float want_f[8] = {1.1f, 4, 0, 2, 0, 0, 1, 0}, want_out[6] = {3.6f, 6, 2, 0.5f, 0, 1};
    if (s && !run_sae(s, be, x, 2, f, out)) {
        for (int i = 0; i < 8; i++) CHECK_NEAR(f[i], want_f[i], 1e-6);
        for (int i = 0; i < 6; i++) CHECK_NEAR(out[i], want_out[i], 1e-6);
    }
    sae_free(s);
    backend_close(be);
    rm_tree(dir);
}

TEST(sae_transcoders_hand_computed)
{
    /* d_in 3, d_sae 4, d_out 2; no b_dec subtraction; out = f W_dec + b_dec (+ x W_skip^T). */
    float we[12] = {1, 0, 0, 1, 0, 1, 0, 1, 0, 0, 1, -1}, benc[4] = {0, -1, 0.5f, 0};
    float wd[8] = {1, 0, 0, 1, 1, 1, 2, -1}, bd[2] = {0.25f, -0.5f}, ws[6] = {1, 0, 0, 0, 0, 2};
    float thr[4] = {1.5f, 0.5f, -1, 3};
    float x[6] = {1.5f, 2, 1, -1, 0, 0};
    /* h = x W_enc + b_enc: row 0 (1.5, 1, 1.5, 2.5), row 1 (−1, −1, 0.5, −1). */
    static const struct {
        sae_arch arch;
        float f[8], out[4];
    } cases[] = {
        /* ReLU: out0 = 1.5·(1,0) + (0,1) + 1.5·(1,1) + 2.5·(2,−1) + b = (8.25, −0.5); out1 = 0.5·(1,1) + b. */
        {SAE_TRANSCODER, {1.5f, 1, 1.5f, 2.5f, 0, 0, 0.5f, 0}, {8.25f, -0.5f, 0.75f, 0}},
        /* + x W_skip^T: row 0 (1.5, 2), row 1 (−1, 0). */
        {SAE_SKIP_TRANSCODER, {1.5f, 1, 1.5f, 2.5f, 0, 0, 0.5f, 0}, {9.75f, 1.5f, -0.25f, 0}},
        /* h > threshold, strictly: 1.5 > 1.5 fails, 2.5 > 3 fails. */
        {SAE_JUMPRELU_TRANSCODER, {0, 1, 1.5f, 0, 0, 0, 0.5f, 0}, {1.75f, 2.0f, 0.75f, 0}},
    };
    for (int c = 0; c < 3; c++) {
        ref_sae r = {.arch = cases[c].arch, .D = 3, .S = 4, .O = 2, .W_enc = we, .b_enc = benc, .W_dec = wd, .b_dec = bd,
                     .thr = cases[c].arch == SAE_JUMPRELU_TRANSCODER ? thr : NULL,
                     .W_skip = cases[c].arch == SAE_SKIP_TRANSCODER ? ws : NULL};
        char dir[64], err[512];
        mk_tmp(dir);
        ref_write(&r, dir);
        ref_cfg(&r, dir, "\"metadata\":{\"sae_lens_version\":\"6.18.0\",\"hook_name\":\"blocks.0.ln2.hook_normalized\"}");
        /* (that hook is not a TransformerLens name saed knows: rejected, naming the field) */
        saed_backend *be = backend_cpu_open();
        CHECK(sae_load(dir, be, NULL, err, sizeof err) == NULL);
        CHECK_CONTAINS(err, "field 'hook_name'");
        ref_cfg(&r, dir, "\"metadata\":{\"sae_lens_version\":\"6.18.0\",\"hook_name\":\"blocks.0.hook_resid_mid\","
                         "\"hook_name_out\":\"blocks.0.hook_mlp_out\"}");
        sae *s = sae_load(dir, be, NULL, err, sizeof err);
        if (!s) t_fail(__FILE__, __LINE__, "%s: sae_load: %s", sae_arch_name(cases[c].arch), err);
        float f[8], out[4];
        if (s) {
            CHECK_INT(sae_config(s)->d_out, 2);
            CHECK_STR(sae_config(s)->hook_name_out, "blocks.0.hook_mlp_out");
        }
        if (s && !run_sae(s, be, x, 2, f, out)) {
            for (int i = 0; i < 8; i++) CHECK_NEAR(f[i], cases[c].f[i], 1e-6);
            for (int i = 0; i < 4; i++) CHECK_NEAR(out[i], cases[c].out[i], 1e-6);
            if (cases[c].arch == SAE_SKIP_TRANSCODER) {
                CHECK_INT(sae_decode(s, f, NULL, 2, out, err, sizeof err), -1);
                CHECK_CONTAINS(err, "skip connection");
            }
        }
        sae_free(s);
        /* apply_b_dec_to_input must be false for transcoders. */
        r.apply_b_dec = 1;
        ref_cfg(&r, dir, NULL);
        CHECK(sae_load(dir, be, NULL, err, sizeof err) == NULL);
        CHECK_CONTAINS(err, "field 'apply_b_dec_to_input': must be false");
        CHECK_CONTAINS(err, "/cfg.json");
        backend_close(be);
        rm_tree(dir);
    }
}

TEST(sae_norm_scaling_factor_is_folded_exactly)
{
    /* expected_average_only_in: identity without a factor; with s, W_enc·s, W_dec/s, b_dec/s, so
     * encode(x) on the folded SAE = encode(x·s) on the plain one, decode scaled by 1/s. */
    ref_sae r = ref_random(SAE_JUMPRELU, 8, 24, 8);
    r.norm = SAE_NORM_EXPECTED_AVERAGE_ONLY_IN;
    char dir[64], dir2[64], err[512];
    mk_tmp(dir);
    mk_tmp(dir2);
    ref_write(&r, dir);
    ref_write(&r, dir2);
    ref_cfg(&r, dir, NULL);
    ref_cfg(&r, dir2, "\"norm_scaling_factor\":0.375");
    saed_backend *be = backend_cpu_open();
    sae *plain = sae_load(dir, be, NULL, err, sizeof err);
    sae *by_opt = sae_load(dir, be, &(sae_load_opts){.norm_scaling_factor = 0.375}, err, sizeof err);
    sae *by_cfg = sae_load(dir2, be, NULL, err, sizeof err);
    CHECK(plain && by_opt && by_cfg);
    const int N = 6, S = 24, D = 8;
    float *x = rvec((size_t)N * D, 3.0f), *xs = malloc(sizeof(float) * N * D);
    for (int i = 0; i < N * D; i++) xs[i] = x[i] * 0.375f;
    float *f0 = malloc(sizeof(float) * N * S), *f1 = malloc(sizeof(float) * N * S), *f2 = malloc(sizeof(float) * N * S);
    float *o0 = malloc(sizeof(float) * N * D), *o1 = malloc(sizeof(float) * N * D), *o2 = malloc(sizeof(float) * N * D);
    if (plain && by_opt && by_cfg) {
        CHECK_NEAR(sae_config(plain)->norm_scaling_factor, 0, 0);
        CHECK_NEAR(sae_config(by_opt)->norm_scaling_factor, 0.375, 0);
        CHECK_INT(sae_is_folded(by_opt), 0);
        run_sae(plain, be, xs, N, f0, o0);
        run_sae(by_opt, be, x, N, f1, o1);
        run_sae(by_cfg, be, x, N, f2, o2);
        int active = 0;
        for (int i = 0; i < N * S; i++) {
            CHECK_NEAR(f1[i], f0[i], 1e-5 * (1 + fabs(f0[i])));
            CHECK(f2[i] == f1[i]);
            active += f0[i] > 0;
        }
        CHECK(active > 0);
        for (int i = 0; i < N * D; i++) {
            CHECK_NEAR(o1[i], o0[i] / 0.375, 1e-4 * (1 + fabs(o1[i])));
            CHECK(o2[i] == o1[i]);
        }
    }
    /* Other modes ignore a factor, as SAELens does. */
    sae_free(by_opt);
    r.norm = SAE_NORM_NONE;
    ref_cfg(&r, dir, NULL);
    by_opt = sae_load(dir, be, &(sae_load_opts){.norm_scaling_factor = 0.375}, err, sizeof err);
    CHECK(by_opt != NULL);
    if (by_opt) CHECK_NEAR(sae_config(by_opt)->norm_scaling_factor, 0, 0);
    CHECK(sae_load(dir, be, &(sae_load_opts){.norm_scaling_factor = -1}, err, sizeof err) == NULL);
    CHECK_CONTAINS(err, "norm_scaling_factor");
    ref_cfg(&r, dir, "\"norm_scaling_factor\":\"big\"");
    CHECK(sae_load(dir, be, NULL, err, sizeof err) == NULL);
    CHECK_CONTAINS(err, "field 'norm_scaling_factor'");
    free(x);
    free(xs);
    free(f0), free(f1), free(f2), free(o0), free(o1), free(o2);
    sae_free(plain);
    sae_free(by_opt);
    sae_free(by_cfg);
    backend_close(be);
    ref_free(&r);
    rm_tree(dir);
    rm_tree(dir2);
}

TEST(sae_fold_dec_norm)
{
    static const sae_arch archs[] = {SAE_STANDARD, SAE_JUMPRELU, SAE_GATED, SAE_TOPK, SAE_JUMPRELU_TRANSCODER};
    saed_backend *be = backend_cpu_open();
    const int N = 8, D = 10, S = 32;
    for (size_t a = 0; a < sizeof archs / sizeof *archs; a++) {
        const int O = is_tc(archs[a]) ? 6 : D;
        ref_sae r = ref_random(archs[a], D, S, O);
        r.rescale = archs[a] == SAE_TOPK;
        char dir[64], err[512];
        mk_tmp(dir);
        ref_write(&r, dir);
        ref_cfg(&r, dir, NULL);
        sae *plain = sae_load(dir, be, NULL, err, sizeof err);
        sae *folded = sae_load(dir, be, &(sae_load_opts){.fold_dec_norm = 1}, err, sizeof err);
        if (!plain || !folded) t_fail(__FILE__, __LINE__, "%s: sae_load: %s", sae_arch_name(archs[a]), err);
        float *x = rvec((size_t)N * D, 2.0f), *f0 = malloc(sizeof(float) * N * S), *f1 = malloc(sizeof(float) * N * S);
        float *o0 = malloc(sizeof(float) * N * O), *o1 = malloc(sizeof(float) * N * O), *row = malloc(sizeof(float) * O);
        if (plain && folded && !run_sae(plain, be, x, N, f0, o0) && !run_sae(folded, be, x, N, f1, o1)) {
            CHECK_INT(sae_is_folded(folded), 1);
            CHECK_INT(sae_is_folded(plain), 0);
            int active = 0;
            for (int i = 0; i < S; i++) {
                /* Decoder rows become unit; activations scale by the old norm. TopK with
                 * rescale already worked in that scale, so its activations stay. */
                double n = row_norm2(r.W_dec + i * O, O);
                CHECK_INT(sae_decoder_row(folded, i, row, err, sizeof err), 0);
                CHECK_NEAR(row_norm2(row, O), 1.0, 1e-6);
                double scale = archs[a] == SAE_TOPK ? 1.0 : n;
                for (int t = 0; t < N; t++) {
                    CHECK_NEAR(f1[t * S + i], f0[t * S + i] * scale, 1e-4 * (1 + fabs(f1[t * S + i])));
                    active += f0[t * S + i] > 0;
                }
            }
            CHECK(active > 0);
            for (int i = 0; i < N * O; i++) CHECK_NEAR(o1[i], o0[i], 1e-4 * (1 + fabs(o0[i])));
            CHECK_INT(sae_decoder_row(folded, S, row, err, sizeof err), -1);
        }
        free(x), free(f0), free(f1), free(o0), free(o1), free(row);
        sae_free(plain);
        sae_free(folded);
        if (archs[a] == SAE_TOPK) {
            /* Without rescale, folding would change which k win: refused, as SAELens does. */
            r.rescale = 0;
            ref_cfg(&r, dir, NULL);
            CHECK(sae_load(dir, be, &(sae_load_opts){.fold_dec_norm = 1}, err, sizeof err) == NULL);
            CHECK_CONTAINS(err, "fold_dec_norm is not defined for topk without rescale_acts_by_decoder_norm");
        }
        ref_free(&r);
        rm_tree(dir);
    }
    backend_close(be);
}

/* ---- cfg.json parsing ---- */

static int parse(const char *text, sae_cfg *c, char *err, size_t n) { return sae_cfg_parse(text, "x/cfg.json", c, err, n); }

TEST(sae_cfg_legacy_renames_and_defaults)
{
    sae_cfg c;
    char err[512];
    /* v3.0-style: hook_point, hook_point_layer, hook_point_head_index, activation_fn, bool
     * normalize_activations; no architecture, prepend_bos or apply_b_dec_to_input. */
    CHECK_INT(parse("{\"d_in\":64,\"d_sae\":128,\"hook_point\":\"blocks.1.attn.hook_z\",\"hook_point_layer\":1,"
                    "\"hook_point_head_index\":null,\"activation_fn\":\"relu\",\"normalize_activations\":true,"
                    "\"model_name\":\"gpt2-small\",\"context_size\":128,\"dtype\":\"float32\",\"l1_coefficient\":8}",
                    &c, err, sizeof err), 0);
    CHECK_INT(c.format, 5);
    CHECK_INT(c.arch, SAE_STANDARD);
    CHECK_STR(c.hook_name, "blocks.1.attn.hook_z");
    CHECK_INT(c.hook_head_index, -1);
    CHECK_INT(c.reshape_hook_z, 1);
    CHECK_INT(c.norm, SAE_NORM_EXPECTED_AVERAGE_ONLY_IN);
    CHECK_INT(c.prepend_bos, 1);
    CHECK_INT(c.apply_b_dec_to_input, 1);
    CHECK_INT(c.context_size, 128);
    CHECK_INT(c.d_out, 64);
    CHECK_STR(c.sae_lens_version, "");
    CHECK_INT(sae_cfg_processing(&c), PROC_NONE);
    CHECK(c.json && strstr(c.json, "hook_point"));
    sae_cfg_free(&c);
    /* normalize_activations false/null → none; activation_fn_str topk + k → topk. */
    CHECK_INT(parse("{\"d_in\":8,\"d_sae\":16,\"hook_name\":\"blocks.0.hook_resid_post\",\"activation_fn_str\":\"topk\","
                    "\"activation_fn_kwargs\":{\"k\":5},\"normalize_activations\":false,\"prepend_bos\":false,"
                    "\"model_from_pretrained_kwargs\":{\"center_writing_weights\":true,\"fold_ln\":false}}",
                    &c, err, sizeof err), 0);
    CHECK_INT(c.arch, SAE_TOPK);
    CHECK_INT(c.k, 5);
    CHECK_INT(c.rescale_acts_by_decoder_norm, 0);
    CHECK_INT(c.norm, SAE_NORM_NONE);
    CHECK_INT(c.prepend_bos, 0);
    CHECK_INT(c.reshape_hook_z, 0);
    CHECK_INT(sae_cfg_processing(&c), PROC_CENTER_WRITING);
    sae_cfg_free(&c);
    CHECK_INT(parse("{\"d_in\":8,\"d_sae\":200,\"hook_name\":\"blocks.0.hook_resid_post\",\"architecture\":\"topk\","
                    "\"normalize_activations\":null,\"model_from_pretrained_kwargs\":{\"center_writing_weights\":true,"
                    "\"fold_value_biases\":true},\"sae_lens_version\":\"5.9.1\"}", &c, err, sizeof err), 0);
    CHECK_INT(c.k, 100); /* SAELens' default */
    CHECK_INT(c.format, 5);
    CHECK_STR(c.sae_lens_version, "5.9.1");
    CHECK_INT(sae_cfg_processing(&c), PROC_CENTER_WRITING | PROC_FOLD_VALUE_BIASES);
    sae_cfg_free(&c);
    /* Errors name the file and the field. */
    static const struct {
        const char *json, *want;
    } bad[] = {
        {"{\"d_sae\":16,\"hook_name\":\"blocks.0.hook_resid_pre\"}", "x/cfg.json: missing field 'd_in'"},
        {"{\"d_in\":0,\"d_sae\":16,\"hook_name\":\"blocks.0.hook_resid_pre\"}", "field 'd_in': 0 is not a valid size"},
        {"{\"d_in\":\"8\",\"d_sae\":16,\"hook_name\":\"blocks.0.hook_resid_pre\"}", "field 'd_in': expected an integer"},
        {"{\"d_in\":8,\"d_sae\":16}", "missing field 'hook_name'"},
        {"{\"d_in\":8,\"d_sae\":16,\"hook_name\":\"blocks.0.hook_foo\"}", "field 'hook_name': hook 'blocks.0.hook_foo'"},
        {"{\"d_in\":8,\"d_sae\":16,\"hook_point\":\"resid\"}", "field 'hook_point'"},
        {"{\"d_in\":8,\"d_sae\":16,\"hook_name\":\"blocks.0.attn.hook_pattern\"}", "attention patterns"},
        {"{\"d_in\":8,\"d_sae\":16,\"hook_name\":\"blocks.0.hook_resid_pre\",\"architecture\":\"matryoshka\"}",
         "field 'architecture': unknown architecture 'matryoshka'"},
        {"{\"d_in\":8,\"d_sae\":16,\"hook_name\":\"blocks.0.hook_resid_pre\",\"activation_fn_str\":\"tanh-relu\"}",
         "field 'activation_fn_str': unsupported activation 'tanh-relu'"},
        {"{\"d_in\":8,\"d_sae\":16,\"hook_name\":\"blocks.0.hook_resid_pre\",\"architecture\":\"gated\","
         "\"activation_fn\":\"topk\"}", "field 'activation_fn'"},
        {"{\"d_in\":8,\"d_sae\":16,\"hook_name\":\"blocks.0.hook_resid_pre\",\"architecture\":\"topk\","
         "\"activation_fn_kwargs\":{\"k\":17}}", "field 'activation_fn_kwargs.k': 17 is outside 1..d_sae (16)"},
        {"{\"d_in\":8,\"d_sae\":16,\"hook_name\":\"blocks.0.hook_resid_pre\",\"normalize_activations\":\"batch_norm\"}",
         "field 'normalize_activations': unknown normalization 'batch_norm'"},
        {"{\"d_in\":8,\"d_sae\":16,\"hook_name\":\"blocks.0.hook_resid_pre\",\"prepend_bos\":\"yes\"}",
         "field 'prepend_bos': expected true or false"},
        {"{\"d_in\":8,\"d_sae\":16,\"hook_name\":\"blocks.0.hook_resid_pre\",\"dtype\":\"int8\"}", "field 'dtype'"},
        {"{\"d_in\":8,\"d_sae\":16,\"hook_name\":\"blocks.0.hook_resid_pre\",\"hook_head_index\":2}",
         "field 'hook_head_index': set, but blocks.0.hook_resid_pre has no heads"},
        {"{\"d_in\":8,\"d_sae\":16,\"hook_name\":\"blocks.0.hook_resid_pre\",\"model_from_pretrained_kwargs\":"
         "{\"center_writing_weights\":1}}", "field 'model_from_pretrained_kwargs.center_writing_weights'"},
        {"{\"d_in\":8,\"d_sae\":16,\"hook_name\":\"blocks.0.hook_resid_pre\",\"architecture\":\"transcoder\","
         "\"apply_b_dec_to_input\":false}", "missing field 'd_out'"},
        {"{\"d_in\":8,\"d_sae\":16,\"hook_name\":\"blocks.0.hook_resid_pre\",\"architecture\":\"skip_transcoder\","
         "\"d_out\":8}", "field 'apply_b_dec_to_input': must be false"},
        {"[1,2]", "x/cfg.json: expected a JSON object"},
        {"{\"d_in\":8,", "x/cfg.json: invalid JSON"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err[0] = '\0';
        if (parse(bad[i].json, &c, err, sizeof err) == 0) {
            t_fail(__FILE__, __LINE__, "accepted: %s", bad[i].json);
            sae_cfg_free(&c);
        }
        CHECK_CONTAINS(err, bad[i].want);
        CHECK(c.json == NULL);
    }
    /* sae_cfg_load names the file it could not read. */
    CHECK_INT(sae_cfg_load("/nonexistent-sae", &c, err, sizeof err), -1);
    CHECK_CONTAINS(err, "/nonexistent-sae/cfg.json");
}

TEST(sae_cfg_v6_metadata)
{
    sae_cfg c;
    char err[512];
    CHECK_INT(parse("{\"d_in\":64,\"d_sae\":128,\"dtype\":\"float32\",\"device\":\"cpu\",\"apply_b_dec_to_input\":false,"
                    "\"normalize_activations\":\"layer_norm\",\"reshape_activations\":\"hook_z\",\"metadata\":{"
                    "\"sae_lens_version\":\"6.0.0-rc.0\",\"model_name\":\"tiny-a\",\"hook_name\":\"blocks.1.attn.hook_z\","
                    "\"hook_head_index\":3,\"context_size\":64,\"prepend_bos\":false,\"dataset_path\":\"d/p\","
                    "\"neuronpedia_id\":\"tiny-a/1-att\",\"model_from_pretrained_kwargs\":{\"fold_value_biases\":true}},"
                    "\"architecture\":\"topk\",\"k\":7,\"rescale_acts_by_decoder_norm\":true}", &c, err, sizeof err), 0);
    CHECK_INT(c.format, 6);
    CHECK_STR(c.sae_lens_version, "6.0.0-rc.0");
    CHECK_INT(c.arch, SAE_TOPK);
    CHECK_INT(c.k, 7);
    CHECK_INT(c.rescale_acts_by_decoder_norm, 1);
    CHECK_INT(c.apply_b_dec_to_input, 0);
    CHECK_INT(c.norm, SAE_NORM_LAYER_NORM);
    CHECK_INT(c.reshape_hook_z, 1);
    CHECK_STR(c.hook_name, "blocks.1.attn.hook_z");
    CHECK_INT(c.hook_head_index, 3);
    CHECK_STR(c.model_name, "tiny-a");
    CHECK_INT(c.context_size, 64);
    CHECK_INT(c.prepend_bos, 0);
    CHECK_STR(c.dataset_path, "d/p");
    CHECK_STR(c.neuronpedia_id, "tiny-a/1-att");
    CHECK_INT(sae_cfg_processing(&c), PROC_FOLD_VALUE_BIASES);
    /* One head of hook_z: tiny-a has 4 heads of 16. */
    hf_config hc;
    hook_point hp;
    CHECK_INT(hf_config_load(TINY, &hc, err, sizeof err), 0);
    CHECK_INT(sae_cfg_check_model(&c, &hc, &hp, err, sizeof err), -1);
    CHECK_CONTAINS(err, "SAE d_in 64 does not match the width 16 (d_head, one head) of blocks.1.attn.hook_z");
    c.d_in = 16;
    CHECK_INT(sae_cfg_check_model(&c, &hc, &hp, err, sizeof err), 0);
    int col0, ncols;
    sae_cfg_hook_columns(&c, &hc, &col0, &ncols);
    CHECK_INT(col0, 48);
    CHECK_INT(ncols, 16);
    c.hook_head_index = 4;
    CHECK_INT(sae_cfg_check_model(&c, &hc, &hp, err, sizeof err), -1);
    CHECK_CONTAINS(err, "has 4 heads");
    c.hook_head_index = -1;
    c.d_in = 64;
    CHECK_INT(sae_cfg_check_model(&c, &hc, &hp, err, sizeof err), 0);
    CHECK_INT(hp.kind, HOOK_Z);
    CHECK_INT(hp.layer, 1);
    sae_cfg_hook_columns(&c, &hc, &col0, &ncols);
    CHECK_INT(col0, 0);
    CHECK_INT(ncols, 64);
    sae_cfg_free(&c);
    /* A version before 6 at the top level means the flat layout, metadata or not. */
    CHECK_INT(parse("{\"d_in\":64,\"d_sae\":128,\"sae_lens_version\":\"5.3.0\",\"hook_name\":\"blocks.0.mlp.hook_post\","
                    "\"metadata\":{\"hook_name\":\"blocks.0.hook_resid_pre\"}}", &c, err, sizeof err), 0);
    CHECK_INT(c.format, 5);
    CHECK_STR(c.hook_name, "blocks.0.mlp.hook_post");
    /* The model check: d_in against the hook's width, the layer against the model. */
    CHECK_INT(sae_cfg_check_model(&c, &hc, &hp, err, sizeof err), -1);
    CHECK_CONTAINS(err, "SAE d_in 64 does not match the width 256 of blocks.0.mlp.hook_post");
    snprintf(c.hook_name, sizeof c.hook_name, "blocks.7.hook_resid_pre");
    CHECK_INT(sae_cfg_check_model(&c, &hc, &hp, err, sizeof err), -1);
    CHECK_CONTAINS(err, "layer 7 out of range");
    sae_cfg_free(&c);
    CHECK_INT(parse("{\"d_in\":8,\"d_sae\":16,\"metadata\":{\"sae_lens_version\":\"6.1.0\"}}", &c, err, sizeof err), -1);
    CHECK_CONTAINS(err, "missing field 'hook_name'");
    CHECK_INT(parse("{\"d_in\":8,\"d_sae\":16,\"metadata\":7}", &c, err, sizeof err), -1);
    CHECK_CONTAINS(err, "field 'metadata': expected an object");
    CHECK_INT(parse("{\"d_in\":8,\"d_sae\":16,\"metadata\":{\"sae_lens_version\":\"6.1.0\",\"hook_name\":"
                    "\"blocks.0.hook_resid_pre\"},\"reshape_activations\":\"flat\"}", &c, err, sizeof err), -1);
    CHECK_CONTAINS(err, "field 'reshape_activations'");
    hf_config_free(&hc);
}

/* ---- weights ---- */

/* A small standard SAE (d_in 3, d_sae 4) with one tensor replaced. */
static void write_standard(const char *dir, const st_wtensor *replace, const st_wtensor *extra)
{
    static const float we[12] = {1, 0, 0, 1, 0, 1, 0, 1, 0, 0, 1, -1}, benc[4] = {0, -1, 0.5f, 0};
    static const float wd[12] = {1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1}, bd[3] = {0.5f, 0, 0};
    static const int64_t de[2] = {3, 4}, dd[2] = {4, 3}, ds[1] = {4}, dn[1] = {3};
    st_wtensor t[6] = {{"W_enc", ST_F32, 2, de, we}, {"b_enc", ST_F32, 1, ds, benc}, {"W_dec", ST_F32, 2, dd, wd},
                       {"b_dec", ST_F32, 1, dn, bd}};
    int n = 4;
    if (replace) {
        int k = 0;
        while (k < n && strcmp(t[k].name, replace->name)) k++;
        if (k < n && replace->ndim < 0) t[k] = t[--n]; /* ndim −1: drop it */
        else if (k < n) t[k] = *replace;
    }
    if (extra) t[n++] = *extra;
    char p[512], err[512];
    snprintf(p, sizeof p, "%s/sae_weights.safetensors", dir);
    if (st_write(p, t, n, NULL, err, sizeof err)) t_fail(__FILE__, __LINE__, "st_write: %s", err);
    spit(dir, "cfg.json", "{\"d_in\":3,\"d_sae\":4,\"hook_name\":\"blocks.0.hook_resid_pre\",\"architecture\":\"standard\"}");
}

static sae *load_expect_error(const char *dir, const char *want)
{
    char err[512] = "";
    saed_backend *be = backend_cpu_open();
    sae *s = sae_load(dir, be, NULL, err, sizeof err);
    if (s) t_fail(__FILE__, __LINE__, "loaded, expected an error containing \"%s\"", want);
    else CHECK_CONTAINS(err, want);
    sae_free(s);
    backend_close(be);
    return NULL;
}

TEST(sae_malformed_weights_name_file_and_tensor)
{
    char dir[64];
    mk_tmp(dir);
    static const int64_t bad_shape[2] = {3, 5}, d4[1] = {4}, dn[1] = {3}, d34[2] = {3, 4};
    static const float z15[15] = {0}, nan4[4] = {0, NAN, 0, 0}, inf3[3] = {0, 0, INFINITY}, two4[4] = {1, 1, 2, 1};
    static const float ones4[4] = {1, 1, 1, 1};
    static const int32_t i4[4] = {0};

    write_standard(dir, &(st_wtensor){"b_enc", ST_F32, -1, NULL, NULL}, NULL);
    load_expect_error(dir, "/sae_weights.safetensors: tensor 'b_enc' not found (architecture standard needs W_enc, "
                           "b_enc, W_dec, b_dec)");
    write_standard(dir, &(st_wtensor){"W_enc", ST_F32, 2, bad_shape, z15}, NULL);
    load_expect_error(dir, "tensor 'W_enc' has shape [3, 5], expected [3, 4] (d_in, d_sae)");
    write_standard(dir, &(st_wtensor){"b_enc", ST_F32, 1, d4, nan4}, NULL);
    load_expect_error(dir, "tensor 'b_enc' holds NaN at index 1");
    write_standard(dir, &(st_wtensor){"b_dec", ST_F32, 1, dn, inf3}, NULL);
    load_expect_error(dir, "tensor 'b_dec' holds Inf at index 2");
    write_standard(dir, &(st_wtensor){"b_enc", ST_I32, 1, d4, i4}, NULL);
    load_expect_error(dir, "tensor 'b_enc' has dtype I32; expected F32, F16, BF16 or F64");
    write_standard(dir, NULL, &(st_wtensor){"threshold", ST_F32, 1, d4, ones4});
    load_expect_error(dir, "unexpected tensor 'threshold' for architecture standard");
    write_standard(dir, NULL, &(st_wtensor){"scaling_factor", ST_F32, 1, d4, two4});
    load_expect_error(dir, "tensor 'scaling_factor' is not all ones (index 2 is 2)");
    spit(dir, "cfg.json", "{\"d_in\":3,\"d_sae\":4,\"hook_name\":\"blocks.0.hook_resid_pre\",\"architecture\":\"jumprelu\"}");
    load_expect_error(dir, "tensor 'threshold' not found (architecture jumprelu needs");
    spit(dir, "cfg.json", "{\"d_in\":3,\"d_sae\":4,\"hook_name\":\"blocks.0.hook_resid_pre\",\"architecture\":\"nope\"}");
    load_expect_error(dir, "/cfg.json: field 'architecture': unknown architecture 'nope'");
    char p[512];
    snprintf(p, sizeof p, "%s/sae_weights.safetensors", dir);
    remove(p);
    write_standard(dir, NULL, NULL);
    remove(p);
    load_expect_error(dir, "/sae_weights.safetensors");

    /* An all-ones scaling_factor is dropped; F16 and BF16 weights are converted. */
    uint16_t we16[12], bd16[3];
    static const float we[12] = {1, 0, 0, 1, 0, 1, 0, 1, 0, 0, 1, -1};
    for (int i = 0; i < 12; i++) we16[i] = we[i] == 1 ? 0x3c00 : we[i] == -1 ? 0xbc00 : 0;
    bd16[0] = 0x3f00; /* BF16 0.5 */
    bd16[1] = bd16[2] = 0;
    write_standard(dir, &(st_wtensor){"W_enc", ST_F16, 2, d34, we16}, &(st_wtensor){"scaling_factor", ST_F32, 1, d4, ones4});
    st_wtensor bf = {"b_dec", ST_BF16, 1, dn, bd16};
    {
        /* rewrite with the BF16 b_dec as well */
        static const float benc[4] = {0, -1, 0.5f, 0}, wd[12] = {1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1};
        static const int64_t dd[2] = {4, 3};
        st_wtensor t[5] = {{"W_enc", ST_F16, 2, d34, we16}, {"b_enc", ST_F32, 1, d4, benc}, {"W_dec", ST_F32, 2, dd, wd}, bf,
                           {"scaling_factor", ST_F32, 1, d4, ones4}};
        char err[512];
        CHECK_INT(st_write(p, t, 5, NULL, err, sizeof err), 0);
    }
    char err[512];
    saed_backend *be = backend_cpu_open();
    sae *s = sae_load(dir, be, NULL, err, sizeof err);
    if (!s) t_fail(__FILE__, __LINE__, "F16/BF16 weights: %s", err);
    float x[3] = {1.5f, 2, 1}, f[4], out[3];
    if (s && !run_sae(s, be, x, 1, f, out)) {
        /* x~ = x − b_dec = (1, 2, 1); x~ W_enc = (1, 2, 1, 2); + b_enc = (1, 1, 1.5, 2). */
        CHECK_NEAR(f[0], 1.0, 0);
        CHECK_NEAR(f[1], 1.0, 0);
        CHECK_NEAR(f[2], 1.5, 0);
        CHECK_NEAR(f[3], 2.0, 0);
        CHECK(sae_log_sparsity(s) == NULL);
    }
    sae_free(s);
    backend_close(be);
    rm_tree(dir);
}

TEST(sae_sparsity_file)
{
    char dir[64], p[512], err[512];
    mk_tmp(dir);
    write_standard(dir, NULL, NULL);
    snprintf(p, sizeof p, "%s/sparsity.safetensors", dir);
    static const int64_t d4[1] = {4}, d3[1] = {3};
    /* Raw frequencies (all ≥ 0, old files) become log10(x + 1e-10); log10 values stay. */
    static const float raw[4] = {0.1f, 0.001f, 0, 1}, logs[4] = {-1, -3.5f, -10, -INFINITY};
    saed_backend *be = backend_cpu_open();
    CHECK_INT(st_write(p, &(st_wtensor){"sparsity", ST_F32, 1, d4, raw}, 1, NULL, err, sizeof err), 0);
    sae *s = sae_load(dir, be, NULL, err, sizeof err);
    CHECK(s && sae_log_sparsity(s));
    if (s && sae_log_sparsity(s)) {
        CHECK_NEAR(sae_log_sparsity(s)[0], -1.0, 1e-6);
        CHECK_NEAR(sae_log_sparsity(s)[1], -3.0, 1e-6);
        CHECK_NEAR(sae_log_sparsity(s)[2], -10.0, 1e-6);
        CHECK_NEAR(sae_log_sparsity(s)[3], 0.0, 1e-6);
    }
    sae_free(s);
    CHECK_INT(st_write(p, &(st_wtensor){"sparsity", ST_F32, 1, d4, logs}, 1, NULL, err, sizeof err), 0);
    s = sae_load(dir, be, NULL, err, sizeof err);
    CHECK(s && sae_log_sparsity(s));
    if (s && sae_log_sparsity(s)) {
        CHECK_NEAR(sae_log_sparsity(s)[0], -1.0, 0);
        CHECK_NEAR(sae_log_sparsity(s)[1], -3.5, 0);
        CHECK_NEAR(sae_log_sparsity(s)[3], -10.0, 0); /* log10(0) */
    }
    sae_free(s);
    CHECK_INT(st_write(p, &(st_wtensor){"sparsity", ST_F32, 1, d3, logs}, 1, NULL, err, sizeof err), 0);
    load_expect_error(dir, "sparsity.safetensors: tensor 'sparsity' has shape [3], expected [4] (d_sae)");
    CHECK_INT(st_write(p, &(st_wtensor){"log_sparsity", ST_F32, 1, d4, logs}, 1, NULL, err, sizeof err), 0);
    load_expect_error(dir, "sparsity.safetensors: tensor 'sparsity' not found");
    backend_close(be);
    rm_tree(dir);
}

/* ---- export ---- */

static void check_same_cfg(const sae_cfg *a, const sae_cfg *b, const char *what)
{
    int same = a->arch == b->arch && a->d_in == b->d_in && a->d_sae == b->d_sae && a->d_out == b->d_out &&
               a->k == b->k && a->rescale_acts_by_decoder_norm == b->rescale_acts_by_decoder_norm &&
               a->apply_b_dec_to_input == b->apply_b_dec_to_input && a->norm == b->norm &&
               a->reshape_hook_z == b->reshape_hook_z && !strcmp(a->hook_name, b->hook_name) &&
               !strcmp(a->hook_name_out, b->hook_name_out) && a->hook_head_index == b->hook_head_index &&
               !strcmp(a->model_name, b->model_name) && a->context_size == b->context_size &&
               a->prepend_bos == b->prepend_bos && a->center_writing_weights == b->center_writing_weights &&
               a->fold_value_biases == b->fold_value_biases && !strcmp(a->dtype, b->dtype) &&
               !strcmp(a->neuronpedia_id, b->neuronpedia_id) && !strcmp(a->dataset_path, b->dataset_path) &&
               a->norm_scaling_factor == b->norm_scaling_factor;
    if (!same) t_fail(__FILE__, __LINE__, "%s: the exported cfg differs", what);
}

/* Every tensor of a's weights file is in b's with the same shape and float32 bits. */
static void check_same_weights(const char *dir_a, const char *dir_b, const char *what)
{
    char pa[512], pb[512], err[512];
    snprintf(pa, sizeof pa, "%s/sae_weights.safetensors", dir_a);
    snprintf(pb, sizeof pb, "%s/sae_weights.safetensors", dir_b);
    st_file *fa = st_open(pa, err, sizeof err), *fb = st_open(pb, err, sizeof err);
    CHECK(fa && fb);
    for (int i = 0; fa && fb && i < st_count(fa); i++) {
        const st_tensor *ta = st_at(fa, i), *tb = st_find(fb, ta->name);
        if (!strcmp(ta->name, "scaling_factor")) continue;
        if (!tb || tb->dtype != ST_F32 || tb->numel != ta->numel || tb->ndim != ta->ndim) {
            t_fail(__FILE__, __LINE__, "%s: tensor %s missing or reshaped in the export", what, ta->name);
            continue;
        }
        float *va = malloc(sizeof(float) * ta->numel), *vb = malloc(sizeof(float) * tb->numel);
        st_to_f32(ta, va, err, sizeof err);
        st_to_f32(tb, vb, err, sizeof err);
        if (memcmp(va, vb, sizeof(float) * ta->numel)) t_fail(__FILE__, __LINE__, "%s: tensor %s differs", what, ta->name);
        free(va);
        free(vb);
    }
    if (fa && fb) CHECK_INT(st_count(fb), st_count(fa) - (st_find(fa, "scaling_factor") != NULL));
    st_close(fa);
    st_close(fb);
}

/* load(src) → export (format) → load: same cfg, same weights, bit-identical encodes. */
static void round_trip(const char *src, const sae_load_opts *o, int format, const char *what)
{
    char out[64], err[512];
    mk_tmp(out);
    saed_backend *be = backend_cpu_open();
    sae *a = sae_load(src, be, o, err, sizeof err);
    if (!a) t_fail(__FILE__, __LINE__, "%s: load: %s", what, err);
    float sp[512];
    for (int i = 0; a && i < sae_config(a)->d_sae && i < 512; i++) sp[i] = -1.0f - i * 0.01f;
    if (a && sae_export(a, out, format, sae_config(a)->d_sae <= 512 ? sp : NULL, err, sizeof err))
        t_fail(__FILE__, __LINE__, "%s: export: %s", what, err);
    sae *b = a ? sae_load(out, be, o, err, sizeof err) : NULL;
    if (a && !b) t_fail(__FILE__, __LINE__, "%s: reload: %s", what, err);
    if (a && b) {
        const sae_cfg *ca = sae_config(a), *cb = sae_config(b);
        CHECK_INT(cb->format, format);
        check_same_cfg(ca, cb, what);
        check_same_weights(src, out, what);
        CHECK(sae_log_sparsity(b) && !memcmp(sae_log_sparsity(b), sp, sizeof(float) * ca->d_sae));
        const int N = 5;
        float *x = rvec((size_t)N * ca->d_in, 1.5f), *fa = malloc(sizeof(float) * N * ca->d_sae);
        float *fb = malloc(sizeof(float) * N * ca->d_sae), *oa = malloc(sizeof(float) * N * ca->d_out);
        float *ob = malloc(sizeof(float) * N * ca->d_out);
        run_sae(a, be, x, N, fa, oa);
        run_sae(b, be, x, N, fb, ob);
        CHECK(!memcmp(fa, fb, sizeof(float) * N * ca->d_sae));
        CHECK(!memcmp(oa, ob, sizeof(float) * N * ca->d_out));
        free(x), free(fa), free(fb), free(oa), free(ob);
        /* The text SAELens reads: v6 nests metadata, v5 is flat with hook_layer. */
        char p[512];
        snprintf(p, sizeof p, "%s/cfg.json", out);
        char *text = slurp(p);
        json_t *j = text ? json_loads(text, 0, NULL) : NULL;
        CHECK(j != NULL);
        if (format == 6) {
            CHECK_STR(json_string_value(json_object_get(json_object_get(j, "metadata"), "sae_lens_version")), "6.18.0");
            CHECK_STR(json_string_value(json_object_get(json_object_get(j, "metadata"), "hook_name")), ca->hook_name);
            CHECK(json_object_get(j, "hook_name") == NULL);
        } else {
            CHECK(json_object_get(j, "metadata") == NULL);
            CHECK(json_is_integer(json_object_get(j, "hook_layer")));
            CHECK_STR(json_string_value(json_object_get(j, "activation_fn_str")), ca->arch == SAE_TOPK ? "topk" : "relu");
        }
        json_decref(j);
        free(text);
    }
    sae_free(a);
    sae_free(b);
    /* Without densities, no sparsity file (and a stale one goes). */
    if (a) {
        sae *c = sae_load(src, be, o, err, sizeof err);
        CHECK_INT(c ? sae_export(c, out, format, NULL, err, sizeof err) : -1, 0);
        char p[512];
        snprintf(p, sizeof p, "%s/sparsity.safetensors", out);
        CHECK(access(p, F_OK) != 0);
        sae_free(c);
    }
    backend_close(be);
    rm_tree(out);
}

TEST(sae_export_round_trip_both_formats)
{
    static const char *const refs[] = {"tiny-a-res-standard", "tiny-a-res-jumprelu", "tiny-a-res-topk"};
    char src[256], what[128], dir[64];
    for (int i = 0; i < 3; i++)
        for (int v6 = 0; v6 < 2; v6++)
            for (int fmt = 5; fmt <= 6; fmt++) {
                snprintf(src, sizeof src, "%s/%s", SAE_DATA, refs[i]);
                char path[320];
                snprintf(path, sizeof path, "%s/%s", src, v6 ? "cfg_v6.json" : "cfg.json");
                char *text = slurp(path), *cfg = with_centering(text);
                tmp_sae_from(src, cfg, dir);
                snprintf(what, sizeof what, "%s (%s cfg) → format %d", refs[i], v6 ? "v6" : "legacy", fmt);
                round_trip(dir, NULL, fmt, what);
                free(text);
                free(cfg);
                rm_tree(dir);
            }
    /* Every architecture, with the optional fields set; loaded folded, the export still holds
     * the tensors as read. */
    static const sae_arch archs[] = {SAE_GATED, SAE_TOPK, SAE_SKIP_TRANSCODER, SAE_JUMPRELU_TRANSCODER, SAE_JUMPRELU};
    for (size_t a = 0; a < sizeof archs / sizeof *archs; a++) {
        ref_sae r = ref_random(archs[a], 6, 20, is_tc(archs[a]) ? 4 : 6);
        r.rescale = archs[a] == SAE_TOPK;
        r.norm = archs[a] == SAE_JUMPRELU ? SAE_NORM_EXPECTED_AVERAGE_ONLY_IN : SAE_NORM_CONSTANT_NORM_RESCALE;
        mk_tmp(dir);
        ref_write(&r, dir);
        ref_cfg(&r, dir, archs[a] == SAE_JUMPRELU ? "\"norm_scaling_factor\":0.25" : NULL);
        char *text = slurp(strcat(strcpy(src, dir), "/cfg.json"));
        json_t *j = json_loads(text, 0, NULL);
        json_t *m = json_object_get(j, "metadata");
        json_object_set_new(m, "hook_head_index", json_null());
        json_object_set_new(m, "context_size", json_integer(256));
        json_object_set_new(m, "neuronpedia_id", json_string("tiny-a/0-res"));
        json_object_set_new(m, "dataset_path", json_string("NeelNanda/pile-10k"));
        json_object_set_new(m, "model_from_pretrained_kwargs", json_pack("{s:b,s:b}", "fold_value_biases", 1, "fold_ln", 0));
        if (is_tc(archs[a])) json_object_set_new(m, "hook_name_out", json_string("blocks.0.hook_mlp_out"));
        char *t2 = json_dumps(j, 0);
        spit(dir, "cfg.json", t2);
        for (int fmt = 5; fmt <= 6; fmt++)
            for (int fold = 0; fold < 2; fold++) {
                snprintf(what, sizeof what, "%s → format %d%s", sae_arch_name(archs[a]), fmt, fold ? " (folded)" : "");
                round_trip(dir, &(sae_load_opts){.fold_dec_norm = fold}, fmt, what);
            }
        json_decref(j);
        free(text);
        free(t2);
        ref_free(&r);
        rm_tree(dir);
    }
    /* Errors. */
    char err[512];
    saed_backend *be = backend_cpu_open();
    snprintf(src, sizeof src, "%s/tiny-a-res-standard", SAE_DATA);
    sae *s = sae_load(src, be, NULL, err, sizeof err);
    CHECK(s != NULL);
    if (s) {
        CHECK_INT(sae_export(s, "/tmp/saed-sae-unused", 4, NULL, err, sizeof err), -1);
        CHECK_CONTAINS(err, "format 4");
        CHECK_INT(sae_export(s, "/proc/saed-no/such", 6, NULL, err, sizeof err), -1);
        CHECK_CONTAINS(err, "/proc/saed-no");
    }
    sae_free(s);
    backend_close(be);
}

TEST(sae_encode_sparse_chunks_and_orders)
{
    /* A topk SAE where values tie: ties list the lower index first; zero rows list nothing. */
    float we[2 * 6] = {1, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 2}, benc[6] = {0}, wd[6 * 2] = {0}, bd[2] = {0};
    ref_sae r = {.arch = SAE_TOPK, .D = 2, .S = 6, .O = 2, .k = 3, .W_enc = we, .b_enc = benc, .W_dec = wd, .b_dec = bd};
    char dir[64], err[512];
    mk_tmp(dir);
    ref_write(&r, dir);
    ref_cfg(&r, dir, NULL);
    saed_backend *be = backend_cpu_open();
    sae *s = sae_load(dir, be, NULL, err, sizeof err);
    float x[6] = {2, 0, 0, 1, -1, -1};
    sae_sparse sp;
    if (s && !sae_encode_sparse(s, x, 3, &sp, err, sizeof err)) {
        CHECK_INT(sp.N, 3);
        CHECK_INT(sp.count[0], 3); /* (2, 2, 2, 0, 0, 0): top 3 = features 0, 1, 2 */
        CHECK_INT(sp.idx[sp.offset[0]], 0);
        CHECK_INT(sp.idx[sp.offset[0] + 2], 2);
        CHECK_INT(sp.count[1], 3); /* (0, 0, 0, 1, 1, 2) */
        CHECK_INT(sp.idx[sp.offset[1]], 5);
        CHECK_INT(sp.idx[sp.offset[1] + 1], 3);
        CHECK_INT(sp.idx[sp.offset[1] + 2], 4);
        CHECK_NEAR(sp.val[sp.offset[1]], 2.0, 0);
        CHECK_INT(sp.count[2], 0); /* all negative: top k are clipped to 0 */
        sae_sparse_free(&sp);
    } else {
        t_fail(__FILE__, __LINE__, "%s", err);
    }
    CHECK_INT(s ? sae_encode_sparse(s, x, 0, &sp, err, sizeof err) : -1, 0);
    sae_sparse_free(&sp);
    sae_free(s);
    backend_close(be);
    rm_tree(dir);
}
