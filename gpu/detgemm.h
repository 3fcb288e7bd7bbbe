/* detgemm.h: a single-precision matrix product whose every element is rounded the same way
 * wherever it sits in the product: C[i][j] = alpha·acc + beta·C[i][j] (beta = 0: C is not
 * read), acc = fma(op(A)[i][K−1], op(B)[K−1][j], … fma(op(A)[i][0], op(B)[0][j], 0)), the K
 * terms fused and in index order. A row's results therefore depend on that row of op(A) and on
 * op(B) only: not on M, on the row's offset in the product, on its neighbours or on how the
 * product is blocked or split over threads. OpenBLAS does not promise this: its AVX2 kernels
 * (Haswell/Zen) add a tile's terms in an order that depends on where the tile falls (edge
 * tiles for the M and N remainders, the 12-row panels), so one prompt's activations came out
 * a few ulps apart in a batch of 7 and in a batch of 40.
 *
 * Kernel: 6×16 register tiles with AVX2 + FMA (runtime check), panels packed per block; the
 * fused terms make it the same bits on every x86-64 with FMA. Without FMA a portable loop
 * does the same order with a separate multiply and add (deterministic too, other bits). */
#ifndef SAED_GPU_DETGEMM_H
#define SAED_GPU_DETGEMM_H

/* 1 where the AVX2 + FMA kernel runs (otherwise the portable loop). */
int detgemm_fma(void);

/* Row-major, op(X) = X^T where ta/tb; the same arguments as cblas_sgemm. Single-threaded:
 * callers split C into blocks (any split gives the same bits). Out of memory for its panels,
 * it computes the same bits one element at a time (slowly). */
void detgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
            float beta, float *C, int ldc);

#endif
