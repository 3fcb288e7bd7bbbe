/* unit_device.c: what of the compute-device work can be checked without a GPU: device and
 * precision options, backend_open's answers when CUDA is unavailable, the CPU nonzeros op
 * against a brute force, and the engine's device paths (hook copies, sparse feature fetch)
 * bit-identical to its host paths, run on the CPU backend posing as a device (host_memory 0).
 * The CUDA kernels themselves are compared with the CPU by build/tests/gpu-parity. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/dash_fetch.h"
#include "engine/dash_fit.h"
#include "engine/dash_run.h"
#include "server/config.h"
#include "server/device.h"
#include "tests/t.h"

#define TINY "tests/data/models/tiny-a"

static saed_backend *pseudo_device(void)
{
    saed_backend *b = backend_cpu_open();
    b->host_memory = 0; /* the engine then downloads, uploads and fetches sparsely */
    b->name = "cpu-as-device";
    return b;
}

TEST(device_options_checked_at_start)
{
    saed_config c;
    char err[512];
    char *ok[] = {"--device", "cuda:3", "--gpu-precision", "bf16"};
    CHECK_INT(config_load(&c, 4, ok, err, sizeof err), 0);
    CHECK_STR(c.device, "cuda:3");
    CHECK_STR(c.gpu_precision, "bf16");
    config_free(&c);
    CHECK_INT(config_load(&c, 0, NULL, err, sizeof err), 0);
    CHECK_STR(c.device, "auto");
    CHECK_STR(c.gpu_precision, "fp32");
    config_free(&c);
    char *bad1[] = {"--device", "gpu"}, *bad2[] = {"--device", "cuda:"}, *bad3[] = {"--gpu-precision", "fp16"};
    CHECK_INT(config_load(&c, 2, bad1, err, sizeof err), -1);
    CHECK_CONTAINS(err, "SAED_DEVICE (--device)");
    config_free(&c);
    CHECK_INT(config_load(&c, 2, bad2, err, sizeof err), -1);
    CHECK_CONTAINS(err, "cuda:N");
    config_free(&c);
    CHECK_INT(config_load(&c, 2, bad3, err, sizeof err), -1);
    CHECK_CONTAINS(err, "SAED_GPU_PRECISION (--gpu-precision)");
    config_free(&c);
    backend_precision p;
    CHECK_INT(backend_precision_parse("tf32", &p), 0);
    CHECK_INT(p, BACKEND_TF32);
    CHECK_STR(backend_precision_name(BACKEND_BF16), "bf16");
    CHECK_INT(backend_precision_parse("FP32", &p), -1);
}

TEST(device_open_explicit_cuda_fails_with_a_reason_auto_falls_back)
{
    char err[512];
    /* device 255 exists nowhere: an explicit request fails, naming the device, no path */
    saed_backend *b = device_open("cuda:255", "fp32", 0, err, sizeof err);
    CHECK(b == NULL);
    CHECK_CONTAINS(err, "compute device cuda:255");
    CHECK(strchr(err, '/') == NULL);
    CHECK(device_open("cpu", "fp16", 0, err, sizeof err) == NULL);
    CHECK_CONTAINS(err, "fp16");
    /* auto always gives a backend; the CPU then, with the reason when CUDA was unusable */
    b = backend_open("auto", err, sizeof err);
    CHECK(b != NULL);
    if (b && !strcmp(b->name, "cpu")) CHECK(err[0] != '\0');
    if (b && !strcmp(b->name, "cuda")) CHECK_STR(err, "");
    backend_close(b);
    b = device_open("cpu", "bf16", 3, err, sizeof err);
    CHECK(b != NULL);
    if (b) {
        CHECK_STR(b->name, "cpu");
        CHECK_INT(b->precision, BACKEND_BF16); /* stored, ignored by the CPU */
        CHECK(b->healthy == NULL);
    }
    backend_close(b);
    CHECK_INT(backend_spec_check("cuda:12", err, sizeof err), 0);
    CHECK_INT(backend_spec_check("cuda:256", err, sizeof err), -1);
    CHECK_INT(backend_spec_check("cuda:-1", err, sizeof err), -1);
}

TEST(backend_cpu_nonzeros_matches_brute_force)
{
    saed_backend *b = backend_cpu_open();
    const int N = 9, ld = 40, c0 = 5, F = 30;
    float x[9 * 40];
    for (int i = 0; i < N * ld; i++) x[i] = (i * 37 % 11) - 7.0f + (i % 3 ? 0.0f : 0.5f);
    x[c0] = -0.0f;
    int64_t rowptr[10];
    int32_t cols[9 * 30];
    float vals[9 * 30];
    CHECK_INT(b->nonzeros(b, rowptr, cols, vals, sizeof cols / sizeof *cols, x, N, ld, c0, F), 0);
    int64_t k = 0;
    for (int r = 0; r < N; r++) {
        CHECK_INT(rowptr[r], k);
        for (int j = c0; j < c0 + F; j++)
            if (x[r * ld + j] > 0) {
                CHECK_INT(cols[k], j); /* absolute columns, ascending */
                CHECK(vals[k] == x[r * ld + j]);
                k++;
            }
    }
    CHECK_INT(rowptr[N], k);
    CHECK(k > 20);
    /* too small a buffer: the total, nothing written */
    int32_t c2[4] = {-1, -1, -1, -1};
    CHECK_INT(b->nonzeros(b, rowptr, c2, vals, 4, x, N, ld, c0, F), 0);
    CHECK_INT(rowptr[N], k);
    CHECK_INT(c2[0], -1);
    CHECK_INT(b->nonzeros(b, rowptr, cols, vals, 100, x, N, ld, 20, 30), -1);
    CHECK_CONTAINS(backend_error(b), "nonzeros");
    backend_close(b);
}

/* The sparse fetch rebuilds the dense matrix exactly, also across batches of different sizes
 * (the previous batch's non-zeros are cleared, not the whole buffer). */
TEST(dash_fetch_device_path_rebuilds_the_dense_matrix)
{
    saed_backend *d = pseudo_device(), *h = backend_cpu_open();
    const int S = 300;
    const size_t rows_max = 50;
    dash_fetch *fd = dash_fetch_new(d, rows_max, S), *fh = dash_fetch_new(h, rows_max, S);
    float *hd = malloc(sizeof(float) * rows_max * S), *hh = malloc(sizeof(float) * rows_max * S);
    float *dev = malloc(sizeof(float) * rows_max * S);
    char err[256];
    uint32_t s = 5;
    static const size_t batches[] = {50, 17, 50, 3};
    for (int bi = 0; bi < 4; bi++) {
        size_t rows = batches[bi];
        for (size_t i = 0; i < rows * S; i++) {
            s = s * 1664525u + 1013904223u;
            /* dense enough in the first batch to outgrow the initial CSR buffer */
            dev[i] = (s >> 8) % 100 < (bi == 0 ? 90u : 4u) ? (float)((s >> 16) % 1000) / 100 + 0.01f : 0.0f;
        }
        CHECK_INT(dash_fetch_run(fd, dev, rows, hd, err, sizeof err), 0);
        CHECK_INT(dash_fetch_run(fh, dev, rows, hh, err, sizeof err), 0);
        CHECK(memcmp(hd, hh, sizeof(float) * rows * S) == 0);
        for (size_t i = rows * S; i < rows_max * S; i++)
            if (hd[i] != 0.0f) {
                t_fail(__FILE__, __LINE__, "batch %d: stale value past the batch at %zu", bi, i);
                break;
            }
    }
    CHECK(dash_fetch_bytes(fd) < dash_fetch_bytes(fh));
    CHECK_INT(dash_fetch_run(fd, dev, rows_max + 1, hd, err, sizeof err), -1);
    dash_fetch_free(fd);
    dash_fetch_free(fh);
    free(hd), free(hh), free(dev);
    backend_close(d);
    backend_close(h);
}

static int32_t *prompts_for(int n, int T)
{
    int32_t *p = malloc(sizeof(int32_t) * (size_t)n * T);
    uint32_t s = 99;
    for (int i = 0; i < n; i++) {
        p[(size_t)i * T] = 50256;
        for (int t = 1; t < T; t++) p[(size_t)i * T + t] = (int32_t)((s = s * 1664525u + 1013904223u) >> 8) % 3000;
    }
    return p;
}

/* A whole dashboard through the device paths equals the host run bit for bit. */
TEST(dash_run_device_paths_bit_identical_to_host)
{
    static const char *const saes[] = {"tests/data/sae/tiny-a-res-standard", "tests/data/sae/tiny-a-res-jumprelu"};
    saed_backend *d = pseudo_device(), *h = backend_cpu_open();
    char err[512];
    model *md = model_load(TINY, d, err, sizeof err), *mh = model_load(TINY, h, err, sizeof err);
    CHECK(md && mh);
    const int n = 30, T = 20;
    int32_t *prompts = prompts_for(n, T);
    for (int si = 0; md && mh && si < 2; si++) {
        sae_load_opts lo = {.fold_dec_norm = 1};
        sae *sd = sae_load(saes[si], d, &lo, err, sizeof err), *sh = sae_load(saes[si], h, &lo, err, sizeof err);
        CHECK(sd && sh);
        dash_run_opts o;
        dash_run_opts_default(&o);
        o.bos_id = 50256;
        o.batch_prompts = 7; /* a short last batch */
        dash_run_result a, b;
        int ra = sd && sh ? dash_run(md, sd, prompts, n, T, &o, &a, err, sizeof err) : -1;
        int rb = ra == 0 ? dash_run(mh, sh, prompts, n, T, &o, &b, err, sizeof err) : -1;
        CHECK_INT(ra, 0);
        CHECK_INT(rb, 0);
        if (ra == 0 && rb == 0) {
            int fired = 0;
            for (int f = 0; f < a.f1 - a.f0; f++) {
                dash_feature *x = &a.features[f], *y = &b.features[f];
                fired += x->n_nonzero > 0;
                CHECK(x->n_nonzero == y->n_nonzero && x->max_value == y->max_value && x->min_nonzero == y->min_nonzero);
                CHECK_INT(x->n_examples, y->n_examples);
                if (x->n_examples == y->n_examples && x->n_examples) {
                    CHECK(memcmp(x->examples, y->examples, sizeof *x->examples * (size_t)x->n_examples) == 0);
                    CHECK(memcmp(a.example_values[f], b.example_values[f], sizeof(float) * (size_t)T * x->n_examples) == 0);
                }
                for (int q = 0; q < x->n_intervals && q < y->n_intervals; q++)
                    CHECK(x->intervals[q].contains == y->intervals[q].contains);
                if (x->n_hist == y->n_hist && x->n_hist)
                    CHECK(memcmp(x->hist_heights, y->hist_heights, sizeof(int64_t) * (size_t)x->n_hist) == 0);
                CHECK(x->n_corr_neurons == y->n_corr_neurons && x->n_corr_features == y->n_corr_features);
                for (int k = 0; k < x->n_corr_neurons && k < y->n_corr_neurons; k++)
                    CHECK(x->corr_neuron_idx[k] == y->corr_neuron_idx[k] && x->corr_neuron_pearson[k] == y->corr_neuron_pearson[k]);
            }
            CHECK(fired > 100);
            dash_run_result_free(&a);
            dash_run_result_free(&b);
        } else if (ra == 0) {
            dash_run_result_free(&a);
        }
        sae_free(sd);
        sae_free(sh);
    }
    free(prompts);
    model_free(md);
    model_free(mh);
    backend_close(d);
    backend_close(h);
}

/* ---- a small device: allocations above a cap fail as a GPU's would ---- */

static size_t small_cap = (size_t)-1, small_free;
static void *(*cpu_alloc_fn)(saed_backend *, size_t);

static void *capped_alloc(saed_backend *b, size_t n)
{
    if (n > small_cap) {
        snprintf(b->err, sizeof b->err, "device memory (%zu bytes): out of memory", n);
        return NULL;
    }
    return cpu_alloc_fn(b, n);
}

static int small_mem_info(saed_backend *b, size_t *free_bytes, size_t *total_bytes)
{
    (void)b;
    *free_bytes = small_free;
    *total_bytes = 2 * small_free;
    return 0;
}

TEST(dash_run_fit_shrinks_the_batch_to_the_device)
{
    saed_backend *d = pseudo_device(), *h = backend_cpu_open();
    cpu_alloc_fn = d->alloc;
    d->alloc = capped_alloc;
    char err[512];
    sae_load_opts lo = {.fold_dec_norm = 1};
    model *md = model_load(TINY, d, err, sizeof err), *mh = model_load(TINY, h, err, sizeof err);
    sae *sd = md ? sae_load("tests/data/sae/tiny-a-res-standard", d, &lo, err, sizeof err) : NULL;
    sae *sh = mh ? sae_load("tests/data/sae/tiny-a-res-standard", h, &lo, err, sizeof err) : NULL;
    CHECK(sd && sh);
    const int n = 24, T = 20;
    int32_t *prompts = prompts_for(n, T);
    dash_run_opts o;
    dash_run_opts_default(&o);
    o.bos_id = 50256;
    o.batch_prompts = 30;
    dash_run_result ref, a, b;
    int used = 0;
    if (sd && sh && dash_run(mh, sh, prompts, n, T, &o, &ref, err, sizeof err) == 0) {
        /* the features of 8 prompts (8·20 rows × 512) are the largest buffer that fits: 30
         * fails, 15 fails, 7 fits */
        small_cap = (size_t)8 * T * 512 * sizeof(float);
        CHECK_INT(dash_run(md, sd, prompts, n, T, &o, &a, err, sizeof err), -1);
        CHECK_CONTAINS(err, "out of memory");
        CHECK_INT(dash_run_fit(md, sd, prompts, n, T, &o, &a, &used, err, sizeof err), 0);
        CHECK_INT(used, 7);
        /* free memory known up front: the first batch already fits (3 prompts' worth) */
        small_cap = (size_t)-1;
        small_free = dash_fit_bytes_per_prompt(md, sd, T) * 4;
        d->mem_info = small_mem_info;
        CHECK_INT(dash_run_fit(md, sd, prompts, n, T, &o, &b, &used, err, sizeof err), 0);
        CHECK_INT(used, 3);
        for (int f = 0; f < 512; f++) {
            CHECK(a.features[f].n_nonzero == ref.features[f].n_nonzero && a.features[f].max_value == ref.features[f].max_value);
            CHECK(b.features[f].n_nonzero == ref.features[f].n_nonzero && b.features[f].max_value == ref.features[f].max_value);
            CHECK_INT(a.features[f].n_examples, ref.features[f].n_examples);
        }
        dash_run_result_free(&a);
        dash_run_result_free(&b);
        dash_run_result_free(&ref);
        /* the CPU is not fitted */
        CHECK_INT(dash_run_fit(mh, sh, prompts, n, T, &o, &ref, &used, err, sizeof err), 0);
        CHECK_INT(used, 30);
        dash_run_result_free(&ref);
    }
    small_cap = (size_t)-1;
    free(prompts);
    sae_free(sd);
    sae_free(sh);
    model_free(md);
    model_free(mh);
    backend_close(d);
    backend_close(h);
}
