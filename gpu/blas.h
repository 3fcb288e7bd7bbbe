/* blas.h: the process's single-precision matrix products. Each block is computed by detgemm.h
 * (every element the K terms fused in index order, whatever the shape: a prompt's results do
 * not depend on its batch, which OpenBLAS's AVX2 kernels did not give; on AVX-512 machines
 * OpenBLAS's faster kernels, or as SAED_GEMM=fused|openblas says: blas.c) and the par.c pool
 * splits a large product into column (or row) blocks, one per core; any split gives the same
 * bits. (OpenBLAS, still used by the CPU attention, runs one thread per call: its own threads,
 * which meet at every block of K, reached 0.76-0.85 of its large-square rate on two cores.) */
#ifndef SAED_GPU_BLAS_H
#define SAED_GPU_BLAS_H

/* C (M,N) = alpha · op(A) · op(B) + beta · C, row-major, op(X) = X^T where ta/tb. A few rows
 * (M ≤ 4; OpenBLAS: one row, sgemv) read B in place instead of packing it. */
void blas_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                float beta, float *C, int ldc);

/* 1 where the products are detgemm's (fused terms in order), 0 where OpenBLAS's. */
int blas_fused(void);

/* Puts OpenBLAS in one-thread mode (once per process; blas_sgemm does it on first use). */
void blas_init(void);

#endif
