/* blas.h: the process's single-precision matrix products. OpenBLAS runs one thread per call
 * and the par.c pool splits a large product into column (or row) blocks, one per core. On the
 * forward's shapes (K = 768, N = 768..3072) OpenBLAS's own threads, which meet at every block
 * of K, reached 0.76-0.85 of its large-square rate on two cores; each core computing its own
 * block keeps the single-core rate. Splitting along M or N leaves every dot product's order
 * (the K loop) as it was. */
#ifndef SAED_GPU_BLAS_H
#define SAED_GPU_BLAS_H

/* C (M,N) = alpha · op(A) · op(B) + beta · C, row-major, op(X) = X^T where ta/tb. One row
 * (M = 1) goes to sgemv, which reads B once where sgemm would pack all of it. */
void blas_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                float beta, float *C, int ldc);

/* Puts OpenBLAS in one-thread mode (once per process; blas_sgemm does it on first use). */
void blas_init(void);

#endif
