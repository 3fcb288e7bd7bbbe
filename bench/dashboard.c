/* bench/dashboard.c: dashboard generation throughput, memory and speed-up, in one run.
 *   build/bench/dashboard [--quick] [--prompts N] [--features N] [--ref-batches N]
 * Prints: OpenBLAS sgemm GFLOP/s (large square, sampled four times across the run); then for a
 * random gpt2-small-shaped model (d 768, 12 layers, 12 heads, vocab 50257) and a random standard SAE (24576 features at
 * blocks.6.hook_resid_pre, 0.1–0.5% of features firing) on random 128-token prompts (BOS first):
 *  - saed's dash_run (engine/dash_run.h) at 2048 and at 4096 prompts: wall time, tokens/s,
 *    peak RSS, phase times (forward, encode and statistics summed over every batch, each GEMM
 *    phase with its own sgemm ratio, and both together: the ratio the job would reach if the
 *    statistics and the weight-derived fields cost nothing), and the counted FLOP rate (forward
 *    to the hook + SAE encode, once per prompt: the examples' values are captured in the same
 *    pass) as a fraction of sgemm;
 *  - the C reference of SAEDashboard's algorithm (bench/saedash_ref.h) on the same 2048
 *    prompts, timed on N evenly spaced feature batches (16 of 192 by default) and extrapolated
 *    linearly to all of them, its agreement with saed on those features, and the speed-up.
 * Each configuration runs in its own forked child, so each peak RSS (ru_maxrss from wait4) is
 * that configuration's own. --quick: 64/128 prompts and a 4096-feature SAE, for a smoke run;
 * --prompts N: N and 2N prompts instead of 2048 and 4096; --features: the SAE's width;
 * --density LO,HI: the features' firing rates in percent, log-uniform (0.1,0.5 by default: an L0
 * of 55 at calibration and ~90 on the prompts, near gpt2-small-res-jb's ~60, which this SAE's
 * shape copies; 1,5 gives an L0 of ~650, ten times that, where the statistics cost more).
 *
 * --device cuda[:N] [--precision fp32|tf32|bf16] [--batch B]: the same model and SAE on the
 * GPU at issue 8's size, 24576 prompts x 128 tokens (SAEDashboard's default) in one dash_run:
 * wall time, tokens/s, the counted FLOP rate against a cuBLAS GEMM rate measured in the same
 * run (an 8192³ GEMM and the encode's own shape), and one batch split into forward, encode
 * (its FLOP rate against the GEMM rate), the sparse fetch to the host and the statistics. No
 * SAEDashboard reference in this mode (--ref-batches N adds it, on the CPU). --quick: 256
 * prompts, 4096 features. --device cpu-as-device is a dry run of this mode on the CPU backend
 * posing as a device (it exercises the same code paths; its figures mean nothing). */
#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/common.h"
#include "bench/saedash_ref.h"
#include "engine/dash_fetch.h"
#include "engine/dash_run.h"
#include "engine/safetensors.h"
#include "engine/sae.h"
#include "tools/fixture.h"
#include "gpu/blas.h"
#include "gpu/par.h"

#define T_CTX 128
#define D_IN 768
#define BOS 50256
#define HOOK "blocks.6.hook_resid_pre"

/* n prompts of T ids: BOS, then ids uniform over [0, 4000). */
static int32_t *make_prompts(int n, uint64_t seed)
{
    int32_t *p = malloc(sizeof(int32_t) * (size_t)n * T_CTX);
    for (int i = 0; p && i < n; i++) {
        p[(size_t)i * T_CTX] = BOS;
        for (int t = 1; t < T_CTX; t++) p[(size_t)i * T_CTX + t] = (int32_t)(bench_next(&seed) % 4000);
    }
    return p;
}

/* ---- the benchmark's shared state (set up before any fork) ---- */

typedef struct bench {
    int quick, n1, n2, d_sae, ref_batches, sgemm_n;
    char device[32];    /* backend spec: "cpu" (default) or cuda[:N] */
    backend_precision prec;
    int batch;          /* prompts per dash_run batch (32) */
    double dens_lo, dens_hi; /* per-feature firing rates, log-uniform in [lo, hi] (0.1%, 0.5%) */
    char dir[64], model_dir[96], sae_dir[96], saed_stats[96];
    int32_t *prompts;   /* n2 prompts; the first n1 are the 2048-prompt configuration's */
} bench;

/* The benchmark's backend; NULL with err. */
static saed_backend *bench_backend(const bench *bn, char *err, size_t errlen)
{
    if (!strcmp(bn->device, "cpu-as-device")) {
        /* dry run of the device mode: the CPU backend taking the engine's device paths */
        saed_backend *be = backend_cpu_open();
        be->host_memory = 0;
        be->name = "cpu-as-device";
        return be;
    }
    saed_backend *be = backend_open(bn->device, err, errlen);
    if (be) be->precision = bn->prec;
    return be;
}

/* ---- child: sgemm, model and SAE files ---- */

typedef struct setup_out {
    int ok, threads;
    double sgemm[2], seconds, model_mb, calib_l0; /* sgemm: sustained, fastest single run */
    char err[512];
} setup_out;

/* A SAELens v6 folder: W_enc ~ N(0, 1/√768), W_dec = W_encᵀ with unit-norm rows (SAELens's
 * tied init), b_dec small, and b_enc set per feature from calibration prompts so that feature i
 * fires on a fraction d_i of tokens, d_i log-uniform in [1%, 5%] (--density sets the range). */
static int write_sae(const bench *bn, model *m, setup_out *so)
{
    const int D = D_IN, S = bn->d_sae, NC = 16, N = NC * T_CTX;
    char *err = so->err;
    size_t errlen = sizeof so->err;
    uint64_t rng = 12345;
    float *W_enc = malloc(sizeof(float) * (size_t)D * S), *W_dec = malloc(sizeof(float) * (size_t)S * D);
    float *b_enc = malloc(sizeof(float) * S), *b_dec = malloc(sizeof(float) * D);
    float *x = malloc(sizeof(float) * (size_t)N * D), *h = malloc(sizeof(float) * (size_t)N * S);
    float *col = malloc(sizeof(float) * N);
    int32_t *cal = make_prompts(NC, 999);
    int rc = -1;
    if (!W_enc || !W_dec || !b_enc || !b_dec || !x || !h || !col || !cal) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    const float sd = 1.0f / sqrtf((float)D);
    for (size_t i = 0; i < (size_t)D * S; i++) W_enc[i] = sd * bench_normal(&rng);
    for (int i = 0; i < D; i++) b_dec[i] = 0.01f * bench_normal(&rng);
    for (int i = 0; i < S; i++) {
        double s2 = 0;
        for (int d = 0; d < D; d++) s2 += (double)W_enc[(size_t)d * S + i] * W_enc[(size_t)d * S + i];
        float inv = (float)(1.0 / sqrt(s2));
        for (int d = 0; d < D; d++) W_dec[(size_t)i * D + d] = W_enc[(size_t)d * S + i] * inv;
    }
    hook_req req = {{HOOK_RESID_PRE, 6}, bench_copy_hook, x, 0};
    fwd_opts fo = {.hooks = &req, .nhooks = 1};
    if (model_forward(m, cal, NC, T_CTX, &fo, err, errlen)) goto out;
    for (int r = 0; r < N; r++)
        for (int d = 0; d < D; d++) x[(size_t)r * D + d] -= b_dec[d];
    blas_sgemm(0, 0, N, S, D, 1.0f, x, D, W_enc, S, 0.0f, h, S);
    double l0 = 0;
    for (int i = 0; i < S; i++) {
        int nc = 0;
        for (int r = 0; r < N; r++)
            if (r % T_CTX) col[nc++] = h[(size_t)r * S + i];   /* BOS rows are masked anyway */
        qsort(col, (size_t)nc, sizeof *col, bench_cmp_float);
        double dens = exp(log(bn->dens_lo) + bench_uniform(&rng) * (log(bn->dens_hi) - log(bn->dens_lo)));
        int q = nc - 1 - (int)(dens * nc);
        b_enc[i] = -col[q];   /* the values above col[q] fire */
        l0 += (double)(nc - 1 - q) / nc;
    }
    so->calib_l0 = l0;
    char path[160];
    snprintf(path, sizeof path, "%s/sae_weights.safetensors", bn->sae_dir);
    const int64_t se[2] = {D, S}, sdec[2] = {S, D}, s1[1] = {S}, sdin[1] = {D};
    st_wtensor t[4] = {{"W_enc", ST_F32, 2, se, W_enc}, {"W_dec", ST_F32, 2, sdec, W_dec},
                       {"b_enc", ST_F32, 1, s1, b_enc}, {"b_dec", ST_F32, 1, sdin, b_dec}};
    if (st_write(path, t, 4, NULL, err, errlen)) goto out;
    snprintf(path, sizeof path, "%s/cfg.json", bn->sae_dir);
    FILE *f = fopen(path, "w");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        goto out;
    }
    fprintf(f,
            "{\"architecture\": \"standard\", \"d_in\": %d, \"d_sae\": %d, \"dtype\": \"float32\", \"device\": \"cpu\",\n"
            " \"apply_b_dec_to_input\": true, \"normalize_activations\": \"none\", \"reshape_activations\": \"none\",\n"
            " \"metadata\": {\"sae_lens_version\": \"6.5.0\", \"model_name\": \"gpt2\", \"hook_name\": \"%s\",\n"
            "  \"hook_head_index\": null, \"prepend_bos\": true, \"context_size\": %d, \"dataset_path\": \"random\",\n"
            "  \"neuronpedia_id\": null, \"model_from_pretrained_kwargs\": {}}}\n",
            D, S, HOOK, T_CTX);
    if (fclose(f)) {
        snprintf(err, errlen, "%s: write failed", path);
        goto out;
    }
    rc = 0;
out:
    free(W_enc);
    free(W_dec);
    free(b_enc);
    free(b_dec);
    free(x);
    free(h);
    free(col);
    free(cal);
    return rc;
}

static void child_setup(const bench *bn, void *out)
{
    setup_out *so = out;
    so->sgemm[0] = bench_sgemm_gflops(bn->sgemm_n, &so->sgemm[1]);
    so->threads = bench_sgemm_threads();
    double t = bench_now();
    fixture_gpt2 fx = {.d_model = D_IN, .n_layer = 12, .n_head = 12, .n_ctx = 1024, .vocab = 50257, .seed = 7, .prefixed = 1};
    if (mkdir(bn->model_dir, 0700) || mkdir(bn->sae_dir, 0700)) {
        snprintf(so->err, sizeof so->err, "mkdir: %s", strerror(errno));
        return;
    }
    if (fixture_gpt2_write(bn->model_dir, &fx, so->err, sizeof so->err)) return;
    saed_backend *be = backend_cpu_open();
    model *m = model_load(bn->model_dir, be, so->err, sizeof so->err);
    if (!m) return;
    so->model_mb = model_weight_bytes(m) / 1e6;
    if (write_sae(bn, m, so) == 0) {
        sae_load_opts lo = {.fold_dec_norm = 1};
        sae *s = sae_load(bn->sae_dir, be, &lo, so->err, sizeof so->err);   /* fail early on a bad folder */
        so->ok = s != NULL;
        sae_free(s);
    }
    model_free(m);
    backend_close(be);
    so->seconds = bench_now() - t;
}

static void child_sgemm(const bench *bn, void *out)
{
    double *r = out; /* sustained, fastest single run */
    r[0] = bench_sgemm_gflops(bn->sgemm_n, &r[1]);
}

/* ---- child: saed's dash_run ---- */

typedef struct saed_out {
    int ok, n;
    char device[160];
    double wall, stats, weights, load;
    double cpu;                   /* CPU seconds of the process (all threads) during dash_run */
    double fwd_s, enc_s, acc_s;   /* the statistics pass's phases, summed over every batch */
    double flops_fwd, flops_enc, mean_l0;
    char err[512];
} saed_out;

static int progress(void *ud, const char *phase, int64_t done, int64_t total)
{
    double *t0 = ud;
    static char last_phase[32];
    static int64_t last_q = -1;
    /* one line per 25% of a phase, to stderr: the figures on stdout stay clean */
    int64_t q = done * 4 / total;
    if (strcmp(phase, last_phase)) {
        snprintf(last_phase, sizeof last_phase, "%s", phase);
        last_q = -1;
    }
    if (q != last_q) {
        last_q = q;
        fprintf(stderr, "  [%6.0f s] %s %lld/%lld\n", bench_now() - *t0, phase, (long long)done, (long long)total);
    }
    return 0;
}

/* user + system seconds of this process, all threads */
static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void child_saed(const bench *bn, int n, void *out)
{
    saed_out *so = out;
    so->n = n;
    double t = bench_now();
    saed_backend *be = bench_backend(bn, so->err, sizeof so->err);
    if (!be) return;
    snprintf(so->device, sizeof so->device, "%s", be->device);
    model *m = model_load(bn->model_dir, be, so->err, sizeof so->err);
    sae_load_opts lo = {.fold_dec_norm = 1};
    sae *s = m ? sae_load(bn->sae_dir, be, &lo, so->err, sizeof so->err) : NULL;
    if (!s) return;
    so->load = bench_now() - t;
    dash_run_opts o;
    dash_run_opts_default(&o);
    o.bos_id = BOS;
    o.batch_prompts = bn->batch;
    double t0 = bench_now();
    o.progress = progress;
    o.ud = &t0;
    dash_run_result r;
    double cpu0 = cpu_seconds();
    if (dash_run(m, s, bn->prompts, n, T_CTX, &o, &r, so->err, sizeof so->err)) return;
    so->wall = bench_now() - t0;
    so->cpu = cpu_seconds() - cpu0;
    so->stats = r.seconds_stats;
    so->weights = r.seconds_weights;
    so->fwd_s = r.seconds_forward;
    so->enc_s = r.seconds_encode;
    so->acc_s = r.seconds_accumulate;
    /* Counted work: forward to the hook (6 blocks) + the dense encode, once per prompt (the
     * examples' values are captured in the same pass). */
    const double enc_per_token = 2.0 * D_IN * (double)bn->d_sae;
    const int Bmax = o.batch_prompts;
    for (int p = 0; p < n; p += Bmax) so->flops_fwd += model_forward_flops(m, n - p < Bmax ? n - p : Bmax, T_CTX, 6, 0);
    so->flops_enc = enc_per_token * n * T_CTX;
    int64_t nnz = 0;
    FILE *f = n == bn->n1 ? fopen(bn->saed_stats, "wb") : NULL;
    for (int i = 0; i < r.f1 - r.f0; i++) {
        const dash_feature *df = &r.features[i];
        nnz += df->n_nonzero;
        if (f) {   /* for the reference's cross-check */
            int64_t top1 = df->n_examples ? df->examples[0].prompt * T_CTX + df->examples[0].pos : -1;
            fwrite(&df->n_nonzero, sizeof(int64_t), 1, f);
            fwrite(&df->max_value, sizeof(float), 1, f);
            fwrite(&top1, sizeof(int64_t), 1, f);
        }
    }
    if (f) fclose(f);
    so->mean_l0 = (double)nnz / ((double)n * (T_CTX - 1));   /* BOS positions are masked */
    dash_run_result_free(&r);
    sae_free(s);
    model_free(m);
    backend_close(be);
    so->ok = 1;
}

static void child_saed_1(const bench *bn, void *out)
{
    child_saed(bn, bn->n1, out);
}

static void child_saed_2(const bench *bn, void *out)
{
    child_saed(bn, bn->n2, out);
}

/* ---- child: where one steady-state batch of dash_run's statistics pass goes ---- */

typedef struct split_out {
    int ok, B;
    double forward, encode, copies, stats, stats_nocorr;
    double fetched_mb; /* what crossed from the backend for the batch (device backends) */
    char err[512];
} split_out;

/* The same steps as dash_run's pipe_batch + dash_acc_add_map (values captured, the encode's
 * output and its map of non-zeros read in place on host-memory backends), timed one by one on
 * the second of two batches (the first warms caches and fills the accumulator's scratch). On a device the encode is
 * followed by a 4-byte download, so that its time is the device's. */
static void child_split(const bench *bn, void *out)
{
    split_out *so = out;
    char *err = so->err;
    size_t errlen = sizeof so->err;
    const int B = bn->batch, S = bn->d_sae;
    const size_t rows = (size_t)B * T_CTX;
    so->B = B;
    if (bn->n2 < 2 * B) { /* it times the second of two batches taken from the prompts */
        snprintf(err, errlen, "the batch breakdown needs at least %d prompts (two batches of %d); have %d", 2 * B, B,
                 bn->n2);
        return;
    }
    saed_backend *be = bench_backend(bn, err, errlen);
    if (!be) return;
    model *m = model_load(bn->model_dir, be, err, errlen);
    sae_load_opts lo = {.fold_dec_norm = 1};
    sae *s = m ? sae_load(bn->sae_dir, be, &lo, err, errlen) : NULL;
    float *x = malloc(sizeof(float) * rows * D_IN), *fd = be->alloc(be, sizeof(float) * rows * S);
    uint8_t *mask = malloc(rows);
    const int host = be->host_memory;
    float *xd = host ? x : be->alloc(be, sizeof(float) * rows * D_IN);
    float *fh = host ? fd : malloc(sizeof(float) * rows * S);
    dash_fetch *fetch = host ? NULL : dash_fetch_new(be, rows, S);
    const size_t words = ((size_t)S + 63) / 64;
    uint64_t *map = host && be->bias_masked_relu_map ? malloc(sizeof *map * rows * words) : NULL;
    if (!s || !x || !fd || !mask || !xd || !fh || (!host && !fetch) || (host && be->bias_masked_relu_map && !map)) {
        if (!*err) snprintf(err, errlen, "out of memory");
        return;
    }
    dash_opts o, onc;
    dash_opts_default(&o);
    o.capture_values = 1;
    onc = o;
    onc.corr_block = 0;
    dash_acc *a = dash_acc_new(&o, 0, S, T_CTX, D_IN, err, errlen);
    dash_acc *anc = a ? dash_acc_new(&onc, 0, S, T_CTX, 0, err, errlen) : NULL;
    if (!anc) return;
    hook_req req = {{HOOK_RESID_PRE, 6}, bench_copy_hook, x, 0};
    fwd_opts fo = {.hooks = &req, .nhooks = 1};
    for (int b = 0; b < 2; b++) {
        const int32_t *ids = bn->prompts + (size_t)b * B * T_CTX;
        double t0 = bench_now();
        if (model_forward(m, ids, B, T_CTX, &fo, err, errlen)) return;
        double t1 = bench_now();
        if (!host) be->upload(be, xd, x, sizeof(float) * rows * D_IN);
        int mapped = sae_encode_map(s, xd, (int)rows, fd, map, err, errlen);
        if (mapped < 0) return;
        dash_nzmap nz = {map, words, 0};
        float probe;
        if (!host && be->download(be, &probe, fd, sizeof probe)) return;
        double t2 = bench_now();
        if (!host) {
            size_t before = dash_fetch_bytes(fetch);
            if (dash_fetch_run(fetch, fd, rows, fh, err, errlen)) return;   /* dash_run's pipe_batch */
            so->fetched_mb = (dash_fetch_bytes(fetch) - before) / 1e6;
        }
        double t2b = bench_now();
        for (size_t i = 0; i < rows; i++) mask[i] = ids[i] != BOS;
        if (dash_acc_add_map(a, fh, (size_t)S, mapped ? &nz : NULL, mask, B, (int64_t)b * B, x, err, errlen)) return;
        double t3 = bench_now();
        if (dash_acc_add_map(anc, fh, (size_t)S, mapped ? &nz : NULL, mask, B, (int64_t)b * B, NULL, err, errlen))
            return;
        double t4 = bench_now();
        so->forward = t1 - t0;
        so->encode = t2 - t1;
        so->copies = t2b - t2;
        so->stats = t3 - t2b;
        so->stats_nocorr = t4 - t3;
    }
    dash_acc_free(a);
    dash_acc_free(anc);
    dash_fetch_free(fetch);
    if (!host) {
        free(fh);
        be->release(be, xd);
    }
    free(x);
    free(mask);
    free(map);
    be->release(be, fd);
    sae_free(s);
    model_free(m);
    backend_close(be);
    so->ok = 1;
}

/* ---- child: the SAEDashboard reference ---- */

typedef struct ref_out {
    int ok, batches_run, batches_total, checked, same_nnz, same_max, same_top1;
    double forward, batches, encode, flops_fwd, flops_enc, cache_gb;
    char err[512];
} ref_out;

static void child_ref(const bench *bn, void *out)
{
    ref_out *ro = out;
    saed_backend *be = backend_cpu_open();
    model *m = model_load(bn->model_dir, be, ro->err, sizeof ro->err);
    if (!m) return;
    saedash_ref_opts o;
    saedash_ref_opts_default(&o);
    o.bos_id = BOS;
    o.max_batches = bn->ref_batches;
    saedash_ref_result r;
    if (saedash_ref_run(m, bn->sae_dir, bn->prompts, bn->n1, T_CTX, &o, &r, ro->err, sizeof ro->err)) return;
    ro->forward = r.seconds_forward;
    ro->batches = r.seconds_batches;
    ro->encode = r.seconds_encode;
    ro->batches_run = r.batches_run;
    ro->batches_total = r.batches_total;
    ro->flops_fwd = r.flops_forward;
    ro->flops_enc = r.flops_encode;
    ro->cache_gb = r.cache_bytes / 1e9;
    /* Same features, same prompts: the counts, maxima and top examples should agree with saed
     * (up to the GEMMs' rounding, which can differ between a full and a column-slice product). */
    FILE *f = fopen(bn->saed_stats, "rb");
    for (int i = 0; f && i < r.d_sae; i++) {
        int64_t nnz, top1;
        float mx;
        if (fread(&nnz, sizeof nnz, 1, f) != 1 || fread(&mx, sizeof mx, 1, f) != 1 || fread(&top1, sizeof top1, 1, f) != 1)
            break;
        if (r.nnz[i] < 0) continue;
        ro->checked++;
        ro->same_nnz += nnz == r.nnz[i];
        ro->same_max += fabsf(mx - r.max[i]) <= 1e-5f * fabsf(mx) + 1e-6f;
        ro->same_top1 += top1 == r.top1[i];
    }
    if (f) fclose(f);
    saedash_ref_result_free(&r);
    model_free(m);
    backend_close(be);
    ro->ok = 1;
}

/* ---- child: the device's GEMM rate ---- */

typedef struct gemm_out {
    int ok;
    double square, encode;   /* GFLOP/s: 8192³ (4096³ with --quick), and (batch·128) x d_sae x 768 */
    char device[160], err[512];
} gemm_out;

/* Seconds per C = A·B of (M,K)·(K,N) on the backend: the best of 5 timed runs after a warm-up,
 * each closed by a 4-byte download (the stream drains before it returns). */
static double dev_gemm_seconds(saed_backend *be, int M, int N, int K, char *err, size_t errlen)
{
    float *A = be->alloc(be, sizeof(float) * (size_t)M * K), *B = be->alloc(be, sizeof(float) * (size_t)K * N);
    float *C = be->alloc(be, sizeof(float) * (size_t)M * N), probe;
    double best = -1;
    for (int r = 0; A && B && C && r < 6; r++) {
        double t = bench_now();
        if (be->gemm(be, 0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N) || be->download(be, &probe, C, sizeof probe)) {
            snprintf(err, errlen, "gemm: %s", backend_error(be));
            best = -1;
            break;
        }
        t = bench_now() - t;
        if (r > 0 && (best < 0 || t < best)) best = t;
    }
    if (!A || !B || !C) snprintf(err, errlen, "device memory for a %dx%dx%d GEMM: %s", M, N, K, backend_error(be));
    if (A) be->release(be, A);
    if (B) be->release(be, B);
    if (C) be->release(be, C);
    return best;
}

static void child_dev_gemm(const bench *bn, void *out)
{
    gemm_out *go = out;
    saed_backend *be = bench_backend(bn, go->err, sizeof go->err);
    if (!be) return;
    snprintf(go->device, sizeof go->device, "%s", be->device);
    const int n = bn->quick ? 4096 : 8192, M = bn->batch * T_CTX;
    double t1 = dev_gemm_seconds(be, n, n, n, go->err, sizeof go->err);
    double t2 = t1 > 0 ? dev_gemm_seconds(be, M, bn->d_sae, D_IN, go->err, sizeof go->err) : -1;
    if (t1 > 0 && t2 > 0) {
        go->square = 2.0 * n * (double)n * n / t1 / 1e9;
        go->encode = 2.0 * M * (double)bn->d_sae * D_IN / t2 / 1e9;
        go->ok = 1;
    }
    backend_close(be);
}

/* Runs fn in a forked child; its output struct comes back through a pipe. Returns the child's
 * peak RSS in bytes (ru_maxrss), or -1 when it failed. */
static double run_child(const bench *bn, void (*fn)(const bench *, void *), void *out, size_t outsz)
{
    int pfd[2];
    if (pipe(pfd)) return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        close(pfd[0]);
        memset(out, 0, outsz);
        fn(bn, out);
        const char *p = out;
        for (size_t done = 0; done < outsz;) {
            ssize_t k = write(pfd[1], p + done, outsz - done);
            if (k <= 0) _exit(2);
            done += (size_t)k;
        }
        _exit(0);
    }
    close(pfd[1]);
    size_t got = 0;
    while (got < outsz) {
        ssize_t k = read(pfd[0], (char *)out + got, outsz - got);
        if (k <= 0) break;
        got += (size_t)k;
    }
    close(pfd[0]);
    int status;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0 || got != outsz) return -1;
    return ru.ru_maxrss * 1024.0;
}

static void rmtree(const bench *bn)
{
    const char *files[] = {"model/config.json", "model/model.safetensors", "sae/cfg.json", "sae/sae_weights.safetensors",
                           "saed_stats.bin"};
    char p[160];
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(p, sizeof p, "%s/%s", bn->dir, files[i]);
        unlink(p);
    }
    rmdir(bn->model_dir);
    rmdir(bn->sae_dir);
    rmdir(bn->dir);
}

static void print_saed(const bench *bn, const saed_out *s, double rss, double peak)
{
    double flops = s->flops_fwd + s->flops_enc, tokens = (double)s->n * T_CTX;
    printf("saed dash_run %4d prompts x %d: %.1f s, %.0f tokens/s, peak RSS %.2f GB, CPU time %.2f x wall on %d cores\n", s->n,
           T_CTX, s->wall, tokens / s->wall, rss / 1e9, s->wall > 0 ? s->cpu / s->wall : 0, par_threads());
    printf("    statistics pass %.1f s (examples' values captured in it), weight-derived fields %.1f s\n", s->stats,
           s->weights);
    /* forward + encode alone bound the whole job's ratio: what it would be with free statistics */
    double fe = s->fwd_s + s->enc_s;
    printf("    statistics pass by phase, all batches: forward %.1f s (%.2f of sgemm), encode %.1f s (%.2f of sgemm),"
           " together %.2f of sgemm; statistics %.1f s\n",
           s->fwd_s, s->fwd_s > 0 ? s->flops_fwd / s->fwd_s / 1e9 / peak : 0, s->enc_s,
           s->enc_s > 0 ? s->flops_enc / s->enc_s / 1e9 / peak : 0, fe > 0 ? flops / fe / 1e9 / peak : 0, s->acc_s);
    printf("    mean L0 %.0f (%.2f%% of %d features); counted %.2f TFLOP (forward %.2f + encode %.2f) = %.1f GFLOP/s"
           " = %.2f of sgemm\n",
           s->mean_l0, 100.0 * s->mean_l0 / bn->d_sae, bn->d_sae, flops / 1e12, s->flops_fwd / 1e12, s->flops_enc / 1e12,
           flops / s->wall / 1e9, flops / s->wall / 1e9 / peak);
}

/* --device cuda: one dash_run at issue 8's size, the GEMM rate before and after it, and one
 * batch's breakdown. */
static int main_device(bench *bn)
{
    if (bn->n1 <= 0) bn->n1 = bn->quick ? 256 : 24576;
    bn->n2 = bn->n1;
    if (bn->d_sae <= 0) bn->d_sae = bn->quick ? 4096 : 24576;
    bn->sgemm_n = bn->quick ? 1024 : 2048;
    snprintf(bn->dir, sizeof bn->dir, "/tmp/saed-bench-dash-XXXXXX");
    if (!mkdtemp(bn->dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(bn->model_dir, sizeof bn->model_dir, "%s/model", bn->dir);
    snprintf(bn->sae_dir, sizeof bn->sae_dir, "%s/sae", bn->dir);
    snprintf(bn->saed_stats, sizeof bn->saed_stats, "%s/saed_stats.bin", bn->dir);
    bn->prompts = make_prompts(bn->n1, 42);
    double t_all = bench_now();
    int rc = 1;
    setup_out so;
    gemm_out g1, g2;
    saed_out s1;
    split_out sp;
    ref_out ro = {0};
    /* the device first: no model is written for a machine without one */
    if (run_child(bn, child_dev_gemm, &g1, sizeof g1) < 0 || !g1.ok) {
        fprintf(stderr, "%s: %s\n", bn->device, g1.err);
        goto out;
    }
    if (run_child(bn, child_setup, &so, sizeof so) < 0 || !so.ok) {
        fprintf(stderr, "setup: %s\n", so.err);
        goto out;
    }
    double rss1 = run_child(bn, child_saed_1, &s1, sizeof s1);
    if (rss1 < 0 || !s1.ok) {
        fprintf(stderr, "saed %d prompts on %s: %s\n", bn->n1, bn->device, s1.err);
        goto out;
    }
    if (run_child(bn, child_split, &sp, sizeof sp) < 0 || !sp.ok) {
        fprintf(stderr, "batch breakdown: %s\n", sp.err);
        goto out;
    }
    if (run_child(bn, child_dev_gemm, &g2, sizeof g2) < 0 || !g2.ok) g2 = g1;
    if (bn->ref_batches > 0 && (run_child(bn, child_ref, &ro, sizeof ro) < 0 || !ro.ok))
        fprintf(stderr, "reference: %s\n", ro.err);
    double peak = g1.square > g2.square ? g1.square : g2.square;
    double enc_peak = g1.encode > g2.encode ? g1.encode : g2.encode;
    printf("device: %s, %s GEMMs\n", g1.device, backend_precision_name(bn->prec));
    printf("device GEMM rate (cuBLAS on a GPU; same run, best of two samples): %dx%dx%d %.1f TFLOP/s; encode shape %dx%dx%d"
           " %.1f TFLOP/s\n",
           bn->quick ? 4096 : 8192, bn->quick ? 4096 : 8192, bn->quick ? 4096 : 8192, peak / 1e3, bn->batch * T_CTX,
           bn->d_sae, D_IN, enc_peak / 1e3);
    printf("host: OpenBLAS sgemm %.1f GFLOP/s (%d threads)\n", so.sgemm[0], so.threads);
    printf("model: random gpt2-small shape (d 768, 12 layers, 12 heads, vocab 50257), %.0f MB; SAE: standard, %d"
           " features at " HOOK " (calibration L0 %.0f); prompts: %d x %d tokens, batches of %d prompts\n",
           so.model_mb, bn->d_sae, so.calib_l0, bn->n1, T_CTX, bn->batch);
    print_saed(bn, &s1, rss1, peak);
    double enc_flops = 2.0 * sp.B * T_CTX * (double)D_IN * bn->d_sae;
    printf("    one %d-prompt batch: forward %.3f s, encode %.3f s (%.1f TFLOP/s = %.2f of the GEMM rate), fetch to host"
           " %.3f s (%.1f MB crossed), statistics %.3f s (%.3f s without correlated neurons/features)\n",
           sp.B, sp.forward, sp.encode, enc_flops / sp.encode / 1e12, enc_flops / sp.encode / 1e9 / peak, sp.copies,
           sp.fetched_mb, sp.stats, sp.stats_nocorr);
    printf("issue 8 targets: whole job <= 60 s: %s (%.1f s); encode >= 0.50 of the GEMM rate: %s (%.2f)\n",
           s1.wall <= 60 ? "met" : "NOT met", s1.wall, enc_flops / sp.encode / 1e9 / peak >= 0.5 ? "met" : "NOT met",
           enc_flops / sp.encode / 1e9 / peak);
    if (ro.ok)
        printf("reference (CPU) agreement on %d features: non-zero count %d, max %d, top example %d\n", ro.checked,
               ro.same_nnz, ro.same_max, ro.same_top1);
    printf("benchmark wall time %.0f s\n", bench_now() - t_all);
    rc = 0;
out:
    rmtree(bn);
    free(bn->prompts);
    return rc;
}

int main(int argc, char **argv)
{
    backend_blas_env(argv);
    bench bn;
    memset(&bn, 0, sizeof bn);
    bn.dens_lo = 0.001, bn.dens_hi = 0.005;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) bn.quick = 1;
        else if (!strcmp(argv[i], "--ref-batches") && i + 1 < argc) bn.ref_batches = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--prompts") && i + 1 < argc) bn.n1 = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--features") && i + 1 < argc) bn.d_sae = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--device") && i + 1 < argc) snprintf(bn.device, sizeof bn.device, "%s", argv[++i]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) bn.batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--density") && i + 1 < argc &&
                 sscanf(argv[i + 1], "%lf,%lf", &bn.dens_lo, &bn.dens_hi) == 2 && bn.dens_lo > 0 &&
                 bn.dens_lo <= bn.dens_hi && bn.dens_hi < 100) {
            bn.dens_lo /= 100, bn.dens_hi /= 100;
            i++;
        }
        else if (!strcmp(argv[i], "--precision") && i + 1 < argc && !backend_precision_parse(argv[i + 1], &bn.prec)) i++;
        else {
            fprintf(stderr, "usage: %s [--quick] [--prompts N] [--features N] [--ref-batches N] [--device cpu|cuda[:N]]"
                            " [--precision fp32|tf32|bf16] [--batch B] [--density LO,HI (percent)]\n", argv[0]);
            return 2;
        }
    }
    if (!bn.device[0]) snprintf(bn.device, sizeof bn.device, "cpu");
    if (bn.batch <= 0) bn.batch = 32;
    char why[256];
    if ((backend_spec_check(bn.device, why, sizeof why) || !strcmp(bn.device, "auto")) && strcmp(bn.device, "cpu-as-device")) {
        fprintf(stderr, "--device %s: expected cpu, cuda or cuda:N\n", bn.device);
        return 2;
    }
    if (bench_print_kernels()) return 2;
    if (strcmp(bn.device, "cpu")) return main_device(&bn);
    if (bn.n1 <= 0) bn.n1 = bn.quick ? 64 : 2048;
    bn.n2 = 2 * bn.n1;
    if (bn.d_sae <= 0) bn.d_sae = bn.quick ? 4096 : 24576;
    bn.sgemm_n = bn.quick ? 1024 : 2048;
    if (!bn.ref_batches) bn.ref_batches = bn.quick ? 0 : 16;   /* 0: all */
    snprintf(bn.dir, sizeof bn.dir, "/tmp/saed-bench-dash-XXXXXX");
    if (!mkdtemp(bn.dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(bn.model_dir, sizeof bn.model_dir, "%s/model", bn.dir);
    snprintf(bn.sae_dir, sizeof bn.sae_dir, "%s/sae", bn.dir);
    snprintf(bn.saed_stats, sizeof bn.saed_stats, "%s/saed_stats.bin", bn.dir);
    bn.prompts = make_prompts(bn.n2, 42);
    double t_all = bench_now(), load[3] = {0};
    int rc = 1;
    /* The dev machine is shared: a busy neighbour halves a 2-core figure, so say how busy. */
    getloadavg(load, 3);
    printf("load average at start: %.2f %.2f %.2f\n", load[0], load[1], load[2]);

    /* Everything runs first and prints at the end, so that every ratio uses the same sgemm
     * rate: on this shared 2-vCPU VM the rate moves (170-400 GFLOP/s seen), so it is sampled
     * before each configuration and at the end, each sample sustained over two seconds (the jobs
     * run for minutes; a single 45 ms GEMM catches bursts they do not see), and ratios use the
     * highest sample. */
    double gf[4][2] = {{0}};
    setup_out so;
    if (run_child(&bn, child_setup, &so, sizeof so) < 0 || !so.ok) {
        fprintf(stderr, "setup: %s\n", so.err);
        goto out;
    }
    gf[0][0] = so.sgemm[0];
    gf[0][1] = so.sgemm[1];
    saed_out s1, s2;
    split_out sp;
    ref_out ro;
    double rss1 = run_child(&bn, child_saed_1, &s1, sizeof s1);
    if (rss1 < 0 || !s1.ok) {
        fprintf(stderr, "saed %d prompts: %s\n", bn.n1, s1.err);
        goto out;
    }
    if (run_child(&bn, child_split, &sp, sizeof sp) < 0 || !sp.ok) {
        fprintf(stderr, "batch breakdown: %s\n", sp.err);
        goto out;
    }
    run_child(&bn, child_sgemm, gf[1], sizeof gf[1]);
    double rss2 = run_child(&bn, child_saed_2, &s2, sizeof s2);
    if (rss2 < 0 || !s2.ok) {
        fprintf(stderr, "saed %d prompts: %s\n", bn.n2, s2.err);
        goto out;
    }
    run_child(&bn, child_sgemm, gf[2], sizeof gf[2]);
    double rss3 = run_child(&bn, child_ref, &ro, sizeof ro);
    if (rss3 < 0 || !ro.ok) {
        fprintf(stderr, "reference: %s\n", ro.err);
        goto out;
    }
    run_child(&bn, child_sgemm, gf[3], sizeof gf[3]);

    double peak = 0, low = 1e30, burst = 0;
    for (int i = 0; i < 4; i++) {
        if (gf[i][0] > peak) peak = gf[i][0];
        if (gf[i][0] > 0 && gf[i][0] < low) low = gf[i][0];
        if (gf[i][1] > burst) burst = gf[i][1];
    }
    printf("sgemm (OpenBLAS, %d threads, %dx%d square): %.1f GFLOP/s sustained (highest of 4 two-second samples"
           " across the run; lowest %.1f; fastest single run %.1f)\n", so.threads, bn.sgemm_n, bn.sgemm_n, peak, low,
           burst);
    printf("model: random gpt2-small shape (d 768, 12 layers, 12 heads, vocab 50257), %.0f MB; SAE: standard, %d"
           " features at " HOOK ", b_enc set for %g-%g%% firing (calibration L0 %.0f); written in %.1f s\n",
           so.model_mb, bn.d_sae, bn.dens_lo * 100, bn.dens_hi * 100, so.calib_l0, so.seconds);
    printf("prompts: %d-token windows, BOS + ids uniform over [0, 4000); batches of 32 prompts\n", T_CTX);
    print_saed(&bn, &s1, rss1, peak);
    printf("    one 32-prompt batch of the statistics pass: forward %.2f s, encode %.2f s, statistics and captured"
           " values %.2f s (%.2f s without correlated neurons/features)\n",
           sp.forward, sp.encode, sp.stats, sp.stats_nocorr);
    print_saed(&bn, &s2, rss2, peak);
    printf("memory: peak RSS %.2f GB at %d prompts | %.2f GB at %d prompts (%+.1f%%)\n", rss1 / 1e9, bn.n1, rss2 / 1e9,
           bn.n2, 100.0 * (rss2 - rss1) / rss1);
    double scale = (double)ro.batches_total / ro.batches_run;
    double ref_total = ro.forward + ro.batches * scale, ref_flops = ro.flops_fwd + ro.flops_enc * scale;
    printf("reference (SAEDashboard's algorithm in C) %d prompts: forward + in-memory cache %.1f s (%.2f GB cached);"
           " %d of %d feature batches in %.1f s (encode %.1f s), %.2f s/batch\n",
           bn.n1, ro.forward, ro.cache_gb, ro.batches_run, ro.batches_total, ro.batches, ro.encode,
           ro.batches / ro.batches_run);
    printf("    total %s%.1f s, %.0f tokens/s, peak RSS %.2f GB; counted %.2f TFLOP = %.1f GFLOP/s = %.2f of sgemm\n",
           ro.batches_run < ro.batches_total ? "(feature batches extrapolated linearly) " : "", ref_total,
           (double)bn.n1 * T_CTX / ref_total, rss3 / 1e9, ref_flops / 1e12, ref_flops / ref_total / 1e9,
           ref_flops / ref_total / 1e9 / peak);
    printf("    agreement with saed on those %d features: non-zero count %d, max (1e-5 rel) %d, top example %d\n",
           ro.checked, ro.same_nnz, ro.same_max, ro.same_top1);
    printf("speed-up saed / reference at %d prompts: %.2fx (%.1f s vs %.1f s)\n", bn.n1, ref_total / s1.wall, s1.wall,
           ref_total);
    getloadavg(load, 3);
    printf("benchmark wall time %.0f s; load average at end: %.2f %.2f %.2f\n", bench_now() - t_all, load[0], load[1], load[2]);
    rc = 0;
out:
    rmtree(&bn);
    free(bn.prompts);
    return rc;
}
