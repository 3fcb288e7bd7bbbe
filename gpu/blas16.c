/* blas16.c: see blas16.h. Blocks of W16_ROWS output columns: each pool worker widens its
 * block into its own scratch (W16_ROWS × K floats, a few MB) and runs one single-threaded
 * OpenBLAS product on it. */
#include "gpu/blas16.h"

#include <cblas.h>  // defines: cblas_sgemm, cblas_sgemv
#include <stdlib.h> // defines: malloc, free
#include <string.h> // defines: memcpy

#include "gpu/blas.h"    // defines: blas_init, blas_fused
#include "gpu/detgemm.h" // defines: detgemm
#include "gpu/par.h"     // defines: par_for

#define W16_ROWS 64

static inline float widen_bf16(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline float widen_f16(uint16_t h)
{
    uint32_t s = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 0x1f, m = h & 0x3ff, u;
    if (e == 0x1f) u = s | 0x7f800000u | (m << 13);            /* Inf, NaN */
    else if (e) u = s | ((e + 112) << 23) | (m << 13);         /* normal */
    else if (!m) u = s;                                        /* ±0 */
    else {                                                     /* subnormal: renormalize */
        e = 113;
        while (!(m & 0x400)) m <<= 1, e--;
        u = s | (e << 23) | ((m & 0x3ff) << 13);
    }
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

void blas_widen16(float *out, const uint16_t *in, size_t n, int bf16)
{
    if (bf16)
        for (size_t i = 0; i < n; i++) out[i] = widen_bf16(in[i]);
    else
        for (size_t i = 0; i < n; i++) out[i] = widen_f16(in[i]);
}

typedef struct w16_job {
    int M, N, K, lda, ldc, bf16, oom;
    float beta;
    const float *A;
    const uint16_t *W;
    float *C;
} w16_job;

static void w16_blocks(void *ctx, size_t b0, size_t b1)
{
    w16_job *j = ctx;
    float *w = malloc(sizeof(float) * W16_ROWS * (size_t)j->K);
    if (!w) {
        __atomic_store_n(&j->oom, 1, __ATOMIC_RELAXED);
        return;
    }
    for (size_t b = b0; b < b1; b++) {
        int lo = (int)b * W16_ROWS, n = j->N - lo < W16_ROWS ? j->N - lo : W16_ROWS;
        blas_widen16(w, j->W + (size_t)lo * j->K, (size_t)n * j->K, j->bf16);
        /* C[:, lo:lo+n] (M,n) = A (M,K) · w (n,K)ᵀ; one row: w · a. The same kernel as
         * blas_sgemm, so a row's bits do not depend on its batch where blas_sgemm's do not. */
        if (blas_fused()) detgemm(0, 1, j->M, n, j->K, 1.0f, j->A, j->lda, w, j->K, j->beta, j->C + lo, j->ldc);
        else if (j->M == 1) cblas_sgemv(CblasRowMajor, CblasNoTrans, n, j->K, 1.0f, w, j->K, j->A, 1, j->beta, j->C + lo, 1);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, j->M, n, j->K, 1.0f, j->A, j->lda, w, j->K, j->beta,
                        j->C + lo, j->ldc);
    }
    free(w);
}

int blas_sgemm_w16(int M, int N, int K, const float *A, int lda, const uint16_t *W, int bf16, float beta, float *C,
                   int ldc)
{
    blas_init();
    if (M <= 0 || N <= 0) return 0;
    w16_job j = {M, N, K, lda, ldc, bf16, 0, beta, A, W, C};
    par_for(((size_t)N + W16_ROWS - 1) / W16_ROWS, 1, w16_blocks, &j);
    return j.oom ? -1 : 0;
}
