/* blas16.h: products with 16-bit weights (BF16 or F16, as checkpoints store them), so that a
 * model whose float32 copy would not fit in memory still runs: W's rows are widened to
 * float32 a block at a time and each block is one float32 product. Widening BF16/F16 is exact,
 * so the results are those of the float32 weights; only memory traffic grows (each weight
 * row is read once more, per product). */
#ifndef SAED_GPU_BLAS16_H
#define SAED_GPU_BLAS16_H

#include <stddef.h>
#include <stdint.h>

/* C (M,N) = A (M,K) · Wᵀ + beta · C, row-major; W (N,K) holds BF16 (bf16 = 1) or IEEE half
 * values (nn.Linear's (out, in) layout). lda ≥ K, ldc ≥ N. 0, or -1 when out of memory. */
int blas_sgemm_w16(int M, int N, int K, const float *A, int lda, const uint16_t *W, int bf16, float beta, float *C,
                   int ldc);

/* n 16-bit values to float32. */
void blas_widen16(float *out, const uint16_t *in, size_t n, int bf16);

#endif
