/* unit_engine.c: model config reading and the compute backends (CPU GEMM against a naive
 * triple loop; CUDA against CPU when a device is present, skipped with the reason otherwise). */
#include <cblas.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/hfconfig.h"
#include "gpu/backend.h"
#include "gpu/blas.h"
#include "gpu/cpu_avx512.h"
#include "gpu/par.h"
#include "tests/t.h"

TEST(hfconfig_tiny_a)
{
    hf_config c;
    char err[512];
    CHECK_INT(hf_config_load("tests/data/models/tiny-a", &c, err, sizeof err), 0);
    CHECK_STR(c.architecture, "gpt2");
    CHECK_INT(c.n_layer, 2);
    CHECK_INT(c.d_model, 64);
    CHECK_INT(c.n_head, 4);
    CHECK_INT(c.n_ctx, 128);
    CHECK_INT(c.vocab_size, 50257);
    CHECK_NEAR(c.ln_eps, 1e-5, 1e-12);
    CHECK_STR(c.weights, "single");
    hf_config_free(&c);
}

static void write_cfg(const char *dir, const char *json)
{
    char p[512];
    snprintf(p, sizeof p, "%s/config.json", dir);
    FILE *f = fopen(p, "w");
    fputs(json, f);
    fclose(f);
}

TEST(hfconfig_errors_name_file_and_field)
{
    char dir[] = "/tmp/saed-hfc-XXXXXX", err[512];
    CHECK(mkdtemp(dir) != NULL);
    hf_config c;
    CHECK_INT(hf_config_load(dir, &c, err, sizeof err), -1);
    CHECK_CONTAINS(err, "config.json: not found");
    write_cfg(dir, "{\"model_type\":\"gpt2\",\"n_layer\":2}");
    CHECK_INT(hf_config_load(dir, &c, err, sizeof err), -1);
    CHECK_CONTAINS(err, "'n_embd' is missing");
    write_cfg(dir, "{\"model_type\":\"mamba\"}");
    CHECK_INT(hf_config_load(dir, &c, err, sizeof err), -1);
    CHECK_CONTAINS(err, "model_type 'mamba' is not supported");
    write_cfg(dir, "{\"model_type\":\"gpt2\",\"n_layer\":2,\"n_embd\":65,\"n_head\":4,\"n_positions\":8,\"vocab_size\":10}");
    CHECK_INT(hf_config_load(dir, &c, err, sizeof err), -1);
    CHECK_CONTAINS(err, "not a multiple");
    write_cfg(dir, "{\"model_type\":\"gpt2\",\"n_layer\":2,\"n_embd\":64,\"n_head\":4,\"n_positions\":8,\"vocab_size\":10}");
    CHECK_INT(hf_config_load(dir, &c, err, sizeof err), -1);
    CHECK_CONTAINS(err, "no model.safetensors");
    char st_path[512];
    snprintf(st_path, sizeof st_path, "%s/model.safetensors", dir);
    FILE *sf = fopen(st_path, "w"); /* only its existence matters here */
    if (sf) fclose(sf);
    write_cfg(dir, "{\"model_type\":\"gpt2\",\"n_layer\":2,\"n_embd\":64,\"n_head\":4,\"n_positions\":8,\"vocab_size\":10,"
                   "\"activation_function\":\"relu\"}");
    CHECK_INT(hf_config_load(dir, &c, err, sizeof err), -1);
    CHECK_CONTAINS(err, "activation_function 'relu' is not supported");
    write_cfg(dir, "{\"model_type\":\"gpt2\",\"n_layer\":2,\"n_embd\":64,\"n_head\":4,\"n_positions\":8,\"vocab_size\":10,"
                   "\"scale_attn_by_inverse_layer_idx\":true}");
    CHECK_INT(hf_config_load(dir, &c, err, sizeof err), -1);
    CHECK_CONTAINS(err, "scale_attn_by_inverse_layer_idx = true is not supported");
    unlink(st_path);
    write_cfg(dir, "{\"model_type\": ");
    CHECK_INT(hf_config_load(dir, &c, err, sizeof err), -1);
    CHECK_CONTAINS(err, "invalid JSON");
    char p[512];
    snprintf(p, sizeof p, "%s/config.json", dir);
    unlink(p);
    rmdir(dir);
}

static void naive(int M, int N, int K, const float *A, const float *B, float *C)
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++) s += (double)A[i * K + k] * B[k * N + j];
            C[i * N + j] = (float)s;
        }
}

/* C = A·B and C = A^T·B^T through backend memory, against a double-precision loop. */
static void check_backend_gemm(saed_backend *b)
{
    const int M = 37, N = 29, K = 53;
    size_t fa = sizeof(float) * M * K, fb = sizeof(float) * K * N, fc = sizeof(float) * M * N;
    float *A = malloc(fa), *B = malloc(fb), *C = malloc(fc), *R = malloc(fc), *At = malloc(fa), *Bt = malloc(fb);
    unsigned s = 12345;
    for (int i = 0; i < M * K; i++) A[i] = (float)((s = s * 1103515245u + 12345u) >> 16 & 0xff) / 128.0f - 1.0f;
    for (int i = 0; i < K * N; i++) B[i] = (float)((s = s * 1103515245u + 12345u) >> 16 & 0xff) / 128.0f - 1.0f;
    for (int i = 0; i < M; i++)
        for (int k = 0; k < K; k++) At[k * M + i] = A[i * K + k];
    for (int k = 0; k < K; k++)
        for (int j = 0; j < N; j++) Bt[j * K + k] = B[k * N + j];
    naive(M, N, K, A, B, R);
    float *dA = b->alloc(b, fa), *dB = b->alloc(b, fb), *dC = b->alloc(b, fc);
    float *dAt = b->alloc(b, fa), *dBt = b->alloc(b, fb);
    CHECK(dA && dB && dC && dAt && dBt);
    b->upload(b, dA, A, fa);
    b->upload(b, dB, B, fb);
    b->upload(b, dAt, At, fa);
    b->upload(b, dBt, Bt, fb);
    for (int variant = 0; variant < 2; variant++) {
        int rc = variant == 0 ? b->gemm(b, 0, 0, M, N, K, 1.0f, dA, K, dB, N, 0.0f, dC, N)
                              : b->gemm(b, 1, 1, M, N, K, 1.0f, dAt, M, dBt, K, 0.0f, dC, N);
        CHECK_INT(rc, 0);
        CHECK_INT(b->download(b, C, dC, fc), 0);
        double worst = 0;
        for (int i = 0; i < M * N; i++) worst = fmax(worst, fabs((double)C[i] - R[i]));
        CHECK_NEAR(worst, 0, 1e-4);
        CHECK_NEAR(C[5 * N + 7], R[5 * N + 7], 1e-4);
    }
    b->release(b, dA);
    b->release(b, dB);
    b->release(b, dC);
    b->release(b, dAt);
    b->release(b, dBt);
    free(A);
    free(B);
    free(C);
    free(R);
    free(At);
    free(Bt);
}

TEST(backend_cpu_sgemm_matches_naive)
{
    saed_backend *b = backend_open("cpu", NULL, 0);
    CHECK(b != NULL);
    CHECK_STR(b->name, "cpu");
    check_backend_gemm(b);
    backend_close(b);
}

TEST(backend_device_spec_errors)
{
    char err[256];
    CHECK(backend_open("tpu", err, sizeof err) == NULL);
    CHECK_CONTAINS(err, "expected auto, cpu, cuda or cuda:N");
    CHECK(backend_open("cuda:x", err, sizeof err) == NULL);
    saed_backend *b = backend_open("auto", err, sizeof err); /* never fails: falls back to CPU */
    CHECK(b != NULL);
    backend_close(b);
}

TEST(backend_cuda_sgemm_matches_cpu)
{
    char err[512];
    if (getenv("SAED_TEST_NO_CUDA")) {
        t_skip("SAED_TEST_NO_CUDA is set");
        return;
    }
    saed_backend *b = backend_open("cuda", err, sizeof err);
    if (!b) {
        t_skip("no GPU: %s", err);
        return;
    }
    CHECK_STR(b->name, "cuda");
    check_backend_gemm(b);
    backend_close(b);
}

TEST(readme_config_table_matches_code)
{
    FILE *f = fopen("README.md", "r");
    CHECK(f != NULL);
    if (!f) return;
    static char readme[1 << 20];
    size_t n = fread(readme, 1, sizeof readme - 1, f);
    readme[n] = '\0';
    fclose(f);
    char *table = NULL;
    size_t tl = 0;
    FILE *m = open_memstream(&table, &tl);
    extern void config_print_markdown(FILE *);
    config_print_markdown(m);
    fclose(m);
    if (!strstr(readme, table)) t_fail(__FILE__, __LINE__, "README.md's config table differs from `saed config-docs`; paste its output");
    free(table);
}

TEST(backend_cpu_topk_rows)
{
    saed_backend *b = backend_cpu_open();
    float x[2 * 6] = {0.5f, 3.0f, -1.0f, 3.0f, 2.0f, 0.0f, /* tie at 3.0: index 1 first */
                      -5.0f, -4.0f, -3.0f, -2.0f, -1.0f, -6.0f};
    float v[2 * 3];
    int32_t ix[2 * 3];
    CHECK_INT(b->topk_rows(b, v, ix, x, 2, 6, 3), 0);
    CHECK_INT(ix[0], 1);
    CHECK_INT(ix[1], 3);
    CHECK_INT(ix[2], 4);
    CHECK_NEAR(v[2], 2.0, 0);
    CHECK_INT(ix[3], 4);
    CHECK_INT(ix[4], 3);
    CHECK_INT(ix[5], 2);
    CHECK_INT(b->topk_rows(b, v, ix, x, 2, 6, 7), -1);
    CHECK_CONTAINS(backend_error(b), "k=7");
    backend_close(b);
}

TEST(backend_cpu_ops_against_formulas)
{
    saed_backend *b = backend_cpu_open();
    /* gelu_new at known points (tanh approximation). */
    float in[5] = {-3.0f, -0.5f, 0.0f, 0.7f, 4.0f}, out[5];
    CHECK_INT(b->gelu(b, out, in, 5), 0);
    for (int i = 0; i < 5; i++) {
        double x = in[i], ref = 0.5 * x * (1 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
        CHECK_NEAR(out[i], ref, 2e-7 * (1 + fabs(ref)));
    }
    /* layernorm of one row: mean 0, var 1 before the affine part. */
    float row[4] = {1, 2, 3, 4}, w[4] = {1, 1, 1, 1}, bias[4] = {0, 0, 0, 1}, o[4];
    CHECK_INT(b->layernorm(b, o, row, w, bias, 1, 4, 1e-5f), 0);
    CHECK_NEAR(o[0], -1.5 / sqrt(1.25 + 1e-5), 1e-6);
    CHECK_NEAR(o[3], 1.5 / sqrt(1.25 + 1e-5) + 1, 1e-6);
    CHECK_INT(b->center_rows(b, row, 1, 4), 0);
    CHECK_NEAR(row[0], -1.5, 0);
    backend_close(b);
}

/* Inputs for the encode's activation ops: x (N,C) in [-0.5, 0.5) from an LCG seeded with st,
 * biases in [-0.15, 0.15] and JumpReLU thresholds in [0, 0.16], so that both sides of the
 * activation occur. */
static void relu_inputs(float *x, int N, int C, float *bias, float *thr, uint64_t st)
{
    for (int i = 0; i < N * C; i++) x[i] = (float)((double)(st = st * 6364136223846793005ULL + 1) / 1.8e19 - 0.5);
    for (int i = 0; i < C; i++) {
        bias[i] = (float)((i % 7) - 3) * 0.05f;
        thr[i] = (float)(i % 5) * 0.04f;
    }
}

/* The one-pass ops give the bits of the ops they replace: bias + activation (the encode) and
 * fill-then-accumulate against GEMM-then-bias (up to the order of one addition). Rows of 37
 * columns exercise the vector loops' tails. */
TEST(backend_cpu_fused_ops_equal_their_parts)
{
    saed_backend *b = backend_cpu_open();
    enum { N = 5, C = 37, K = 19 };
    float x[N * C], bias[C], thr[C], ref[N * C], got[N * C], A[N * K], W[K * C];
    relu_inputs(x, N, C, bias, thr, 12345);
    for (int with_thr = 0; with_thr < 2; with_thr++) {
        memcpy(ref, x, sizeof x);
        memcpy(got, x, sizeof x);
        CHECK_INT(b->add_bias(b, ref, bias, N, C), 0);
        CHECK_INT(b->masked_relu(b, ref, ref, with_thr ? thr : NULL, NULL, N, C), 0);
        CHECK_INT(b->bias_masked_relu(b, got, bias, with_thr ? thr : NULL, N, C), 0);
        CHECK(memcmp(ref, got, sizeof ref) == 0);
        int zeros = 0;
        for (int i = 0; i < N * C; i++) zeros += got[i] == 0.0f;
        CHECK(zeros > 10 && zeros < N * C - 10);   /* both sides of the activation are exercised */
    }
    for (int i = 0; i < N * K; i++) A[i] = x[i] * 2;
    for (int i = 0; i < K * C; i++) W[i] = x[i % (N * C)] - 0.1f * (float)(i % 3);
    CHECK_INT(b->gemm(b, 0, 0, N, C, K, 1.0f, A, K, W, C, 0.0f, ref, C), 0);
    CHECK_INT(b->add_bias(b, ref, bias, N, C), 0);
    CHECK_INT(b->fill_rows(b, got, bias, N, C), 0);
    CHECK_INT(b->gemm(b, 0, 0, N, C, K, 1.0f, A, K, W, C, 1.0f, got, C), 0);
    double worst = 0;
    for (int i = 0; i < N * C; i++) worst = fmax(worst, fabs(ref[i] - got[i]));
    CHECK_NEAR(worst, 0.0, 1e-6);
    backend_close(b);
}

/* bias_masked_relu_map writes bias_masked_relu's values and sets exactly the bits of the
 * non-zero results: rows of 150 columns cover two full 64-bit words and a tail of 22, with the
 * bits past column 150 left 0. */
TEST(backend_cpu_relu_map_marks_the_nonzeros)
{
    saed_backend *b = backend_cpu_open();
    enum { N = 5, C = 150, W = (C + 63) / 64 };
    static float x[N * C], ref[N * C], got[N * C], bias[C], thr[C];
    uint64_t map[N * W];
    relu_inputs(x, N, C, bias, thr, 99);
    for (int with_thr = 0; with_thr < 2; with_thr++) {
        memcpy(ref, x, sizeof x);
        memcpy(got, x, sizeof x);
        memset(map, 0xa5, sizeof map);
        CHECK_INT(b->bias_masked_relu(b, ref, bias, with_thr ? thr : NULL, N, C), 0);
        CHECK_INT(b->bias_masked_relu_map(b, got, bias, with_thr ? thr : NULL, N, C, map), 0);
        CHECK(memcmp(ref, got, sizeof ref) == 0);
        int wrong = 0, set = 0;
        for (int r = 0; r < N; r++)
            for (int c = 0; c < W * 64; c++) {
                int bit = (int)(map[r * W + c / 64] >> (c % 64) & 1), want = c < C && got[r * C + c] != 0.0f;
                wrong += bit != want;
                set += bit;
            }
        CHECK_INT(wrong, 0);
        CHECK(set > 50 && set < N * C - 50);
    }
    backend_close(b);
}

/* The AVX-512 attention kernels run four query rows at a time (and one for the rest); every
 * score and weighted sum must still be cpu_avx512.h's formula bit for bit, whatever the row's
 * place in its group, with queries offset into the keys (Tq < Tk) and head widths that are not
 * a multiple of 16 or span two 64-wide passes. Probabilities above the diagonal are NaN: a
 * kernel that read them would return NaN. */
TEST(cpu_avx512_attention_kernels_follow_their_formulas)
{
    if (!cpu_avx512_usable()) {
        t_skip("no AVX-512 on this processor");
        return;
    }
    static const int shapes[][3] = {{7, 11, 64}, {128, 128, 64}, {5, 5, 40}, {1, 9, 64}, {9, 9, 80}, {6, 70, 16}};
    uint64_t st = 777;
    for (size_t c = 0; c < sizeof shapes / sizeof *shapes; c++) {
        int Tq = shapes[c][0], Tk = shapes[c][1], hd = shapes[c][2], ld = hd + 3;
        float *q = malloc(sizeof(float) * Tq * ld), *k = malloc(sizeof(float) * Tk * ld), *v = malloc(sizeof(float) * Tk * ld);
        float *S = malloc(sizeof(float) * Tq * Tk), *P = malloc(sizeof(float) * Tq * Tk), *z = malloc(sizeof(float) * Tq * ld);
        float *kT = malloc(sizeof(float) * hd * ((Tk + 15) / 16 * 16));
        for (int i = 0; i < Tq * ld; i++) q[i] = (float)((double)(st = st * 6364136223846793005ULL + 1) / 1.8e19 - 0.5);
        for (int i = 0; i < Tk * ld; i++) k[i] = (float)((double)(st = st * 6364136223846793005ULL + 1) / 1.8e19 - 0.5);
        for (int i = 0; i < Tk * ld; i++) v[i] = (float)((double)(st = st * 6364136223846793005ULL + 1) / 1.8e19 - 0.5);
        const float scale = 0.125f;
        cpu_avx512_attn_scores(S, q, ld, k, ld, Tq, Tk, hd, scale, kT);
        for (int t = 0; t < Tq; t++)
            for (int s = 0; s < Tk; s++)
                P[t * Tk + s] = s <= Tk - Tq + t ? (float)((double)(st = st * 6364136223846793005ULL + 1) / 1.8e19) : NAN;
        cpu_avx512_attn_values(z, ld, P, v, ld, Tq, Tk, hd);
        int bad_s = 0, bad_z = 0;
        for (int t = 0; t < Tq; t++) {
            for (int s = 0; s <= Tk - Tq + t; s++) {
                float a = 0.0f;
                for (int d = 0; d < hd; d++) a = a + q[t * ld + d] * k[s * ld + d];
                bad_s += memcmp(&(float){a * scale}, &S[t * Tk + s], sizeof a) != 0;
            }
            for (int d = 0; d < hd; d++) {
                float a = 0.0f;
                for (int s = 0; s <= Tk - Tq + t; s++) a = a + P[t * Tk + s] * v[s * ld + d];
                bad_z += memcmp(&a, &z[t * ld + d], sizeof a) != 0;
            }
        }
        CHECK_INT(bad_s, 0);
        CHECK_INT(bad_z, 0);
        free(q), free(k), free(v), free(S), free(P), free(z), free(kT);
    }
}

/* Every element of a product is the fused K terms in index order, then alpha·acc + beta·C
 * (gpu/detgemm.h): whatever the shape, transposition, split over the pool or kernel path
 * (packed tiles, edge tiles, a few rows read in place). */
TEST(blas_products_equal_the_fused_loop)
{
    if (!blas_fused()) {
        t_skip("products by OpenBLAS (AVX-512 or SAED_GEMM=openblas)");
        return;
    }
    const int shapes[][3] = {{1, 3000, 700}, {1, 700, 3000}, {3, 70, 33},   {4, 17, 9},     {13, 45, 513},
                             {300, 2000, 64}, {600, 200, 50}, {2000, 40, 300}, {129, 257, 33}, {7, 33, 1}};
    uint32_t s = 11;
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        int M = shapes[si][0], N = shapes[si][1], K = shapes[si][2];
        for (int t = 0; t < 4; t++) {
            int ta = t & 1, tb = t >> 1;
            float beta = si % 2 ? 0.0f : 0.25f;
            float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N);
            float *C1 = malloc(sizeof(float) * M * N), *C0 = malloc(sizeof(float) * M * N);
            for (int i = 0; i < M * K; i++) A[i] = (float)((s = s * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f;
            for (int i = 0; i < K * N; i++) B[i] = (float)((s = s * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f;
            for (int i = 0; i < M * N; i++) C1[i] = C0[i] = (float)(i % 11) / 7.0f;
            blas_sgemm(ta, tb, M, N, K, 0.5f, A, ta ? M : K, B, tb ? K : N, beta, C1, N);
            int bad = 0;
            for (int i = 0; i < M; i++)
                for (int j = 0; j < N; j++) {
                    float acc = 0.0f;
                    for (int k = 0; k < K; k++)
                        acc = fmaf(ta ? A[(size_t)k * M + i] : A[(size_t)i * K + k], tb ? B[(size_t)j * K + k] : B[(size_t)k * N + j], acc);
                    float want = beta == 0.0f ? 0.5f * acc : 0.5f * acc + beta * C0[(size_t)i * N + j];
                    bad += memcmp(&want, &C1[(size_t)i * N + j], sizeof want) != 0;
                }
            if (bad) t_fail(__FILE__, __LINE__, "blas_sgemm %dx%dx%d ta=%d tb=%d: %d elements differ from the fused loop", M, N, K, ta, tb, bad);
            free(A);
            free(B);
            free(C1);
            free(C0);
        }
    }
}

/* A row's products do not depend on the rows around it: the rows of one 640-row product equal
 * those of the same rows in products of 1, 2, 5, 7·16 and 40·16 rows at any offset. */
TEST(blas_rows_do_not_depend_on_the_batch)
{
    if (!blas_fused()) {
        t_skip("products by OpenBLAS (AVX-512 or SAED_GEMM=openblas)");
        return;
    }
    const int M = 640, Ns[] = {64, 192, 512}, Ks[] = {64, 256};
    uint32_t s = 5;
    for (int ni = 0; ni < 3; ni++)
        for (int ki = 0; ki < 2; ki++) {
            int N = Ns[ni], K = Ks[ki];
            float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N);
            float *C = malloc(sizeof(float) * M * N), *D = malloc(sizeof(float) * M * N);
            for (int i = 0; i < M * K; i++) A[i] = (float)((s = s * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f;
            for (int i = 0; i < K * N; i++) B[i] = (float)((s = s * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f;
            for (int tb = 0; tb < 2; tb++) {
                /* tb: the same op(B) stored transposed */
                float *Bt = malloc(sizeof(float) * K * N);
                for (int k = 0; k < K; k++)
                    for (int j = 0; j < N; j++) Bt[(size_t)j * K + k] = B[(size_t)k * N + j];
                const float *op = tb ? Bt : B;
                int ldb = tb ? K : N;
                blas_sgemm(0, tb, M, N, K, 1.0f, A, K, op, ldb, 0.0f, C, N);
                const int rows[] = {1, 2, 5, 112, 640};
                for (int ri = 0; ri < 5; ri++) {
                    int off = 0;
                    for (int r0 = 3; r0 < M; r0 += rows[ri] + 3 * ri) {
                        int m = M - r0 < rows[ri] ? M - r0 : rows[ri];
                        blas_sgemm(0, tb, m, N, K, 1.0f, A + (size_t)r0 * K, K, op, ldb, 0.0f, D + (size_t)r0 * N, N);
                        if (memcmp(C + (size_t)r0 * N, D + (size_t)r0 * N, sizeof(float) * m * N)) off++;
                        if (ri < 3 && r0 > 100) break;
                    }
                    if (off) t_fail(__FILE__, __LINE__, "N=%d K=%d tb=%d: %d blocks of %d rows differ", N, K, tb, off, rows[ri]);
                }
                free(Bt);
            }
            free(A);
            free(B);
            free(C);
            free(D);
        }
}
