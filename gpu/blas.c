/* blas.c: see blas.h. */
#include "gpu/blas.h"

#include <cblas.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gpu/cpu_avx512.h"
#include "gpu/detgemm.h"
#include "gpu/par.h"

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void pick(void);

static void single(void)
{
    openblas_set_num_threads(1);
    pick();
}

void blas_init(void) { pthread_once(&once, single); }

typedef struct gjob {
    int ta, tb, M, N, K, lda, ldb, ldc, parts, by_cols;
    float alpha, beta;
    const float *A, *B;
    float *C;
} gjob;

/* Which kernel computes the blocks: detgemm (every row's bits independent of its batch) or
 * OpenBLAS. OpenBLAS's AVX2 (Haswell/Zen) kernels round a row differently by its place in the
 * product, so those machines use detgemm; OpenBLAS's AVX-512 kernels (the Intel cores it names
 * SkylakeX, Cooperlake, SapphireRapids) are about twice detgemm's AVX2 rate and kept (the batch
 * tests pass there). What counts is the core OpenBLAS picked, not the CPU's flags: Debian's
 * 0.3.21 runs its Haswell kernels on an AVX-512 AMD EPYC (family 26, Zen 5), where the batch tests failed.
 * SAED_GEMM=fused|openblas forces. */
static int use_openblas;

static int openblas_avx512_core(void)
{
    static const char *const cores[] = {"skylakex", "cooperlake", "sapphirerapids"};
    const char *c = openblas_get_corename();
    for (size_t i = 0; c && i < sizeof cores / sizeof *cores; i++)
        if (!strcasecmp(c, cores[i])) return 1;
    return 0;
}

static void pick(void)
{
    const char *e = getenv("SAED_GEMM");
    if (e && !strcmp(e, "fused")) use_openblas = 0;
    else if (e && !strcmp(e, "openblas")) use_openblas = 1;
    else use_openblas = cpu_avx512_usable() && openblas_avx512_core();
}

int blas_fused(void)
{
    blas_init();
    return !use_openblas;
}

static void product(const gjob *g, int M, int N, const float *A, const float *B, float *C)
{
    if (use_openblas) {
        if (M == 1 && g->K > 0) /* y (1,N) = op(A)(1,K) · op(B)(K,N) */
            cblas_sgemv(CblasRowMajor, g->tb ? CblasNoTrans : CblasTrans, g->tb ? N : g->K, g->tb ? g->K : N, g->alpha,
                        B, g->ldb, A, g->ta ? g->lda : 1, g->beta, C, 1);
        else
            cblas_sgemm(CblasRowMajor, g->ta ? CblasTrans : CblasNoTrans, g->tb ? CblasTrans : CblasNoTrans, M, N, g->K,
                        g->alpha, A, g->lda, B, g->ldb, g->beta, C, g->ldc);
        return;
    }
    detgemm(g->ta, g->tb, M, N, g->K, g->alpha, A, g->lda, B, g->ldb, g->beta, C, g->ldc);
}

/* Block p of parts: [lo, hi) of the split dimension, edges on multiples of 16 (whole kernel
 * tiles) except the last. */
static void block(int n, int p, int parts, int *lo, int *hi)
{
    *lo = (int)((long long)n * p / parts) & ~15;
    *hi = p + 1 == parts ? n : (int)((long long)n * (p + 1) / parts) & ~15;
}

static void run_parts(void *ctx, size_t begin, size_t end)
{
    const gjob *g = ctx;
    for (size_t p = begin; p < end; p++) {
        int lo, hi;
        block(g->by_cols ? g->N : g->M, (int)p, g->parts, &lo, &hi);
        if (lo >= hi) continue;
        if (g->by_cols)
            product(g, g->M, hi - lo, g->A, g->tb ? g->B + (size_t)lo * g->ldb : g->B + lo, g->C + lo);
        else
            product(g, hi - lo, g->N, g->ta ? g->A + lo : g->A + (size_t)lo * g->lda, g->B, g->C + (size_t)lo * g->ldc);
    }
}

void blas_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                float beta, float *C, int ldc)
{
    blas_init();
    gjob g = {ta, tb, M, N, K, lda, ldb, ldc, par_threads(), 1, alpha, beta, A, B, C};
    if (M <= 0 || N <= 0) return;
    /* worth a fork-join: about a million multiply-adds per core, or for a few rows
     * (memory-bound: each core streams its own columns, read once for all rows) a few hundred
     * thousand per row */
    double work = (double)M * N * K;
    if (g.parts > 1 && work >= (M <= 4 ? 2e5 * M : 1e6) * g.parts) {
        /* Each block packs all of the operand it shares: split columns (sharing A, M×K) when
         * M ≤ N, rows (sharing B, K×N) otherwise. */
        int cols_ok = N >= 64 * g.parts, rows_ok = M >= 16 * g.parts;
        if (cols_ok && (M <= N || !rows_ok)) g.by_cols = 1;
        else if (rows_ok) g.by_cols = 0;
        else g.parts = 1;
    } else {
        g.parts = 1;
    }
    if (g.parts == 1) {
        product(&g, M, N, A, B, C);
        return;
    }
    par_for((size_t)g.parts, 1, run_parts, &g);
}
