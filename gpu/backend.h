/* backend.h: the compute backend interface the engine calls for heavy math. Two
 * implementations: cpu.c (OpenBLAS + plain C on a small thread pool; also the reference for
 * tests) and the CUDA one (cuda_backend.cu, cuBLAS + kernels), built as a separate shared object
 * and loaded at run time so that saed starts on machines with no GPU, driver or CUDA libraries.
 *
 * Memory: every float* passed to an op is backend memory (device memory for CUDA, host memory
 * for the CPU), obtained from alloc() and filled with upload(). host_memory says whether the
 * engine may read and write it directly. All matrices are row-major float32.
 * Every op returns 0, or -1 with the reason retrievable by last_error(). Knows nothing of HTTP
 * or SQL. */
#ifndef SAED_GPU_BACKEND_H
#define SAED_GPU_BACKEND_H

#include <stddef.h>
#include <stdint.h>

typedef struct saed_backend saed_backend;

struct saed_backend {
    const char *name;       /* "cpu" or "cuda" */
    char device[160];       /* human description, e.g. "NVIDIA H100 (sm_90, 79 GiB)" */
    int host_memory;        /* 1: backend pointers are plain host memory */
    char err[256];          /* last error */

    void *(*alloc)(saed_backend *b, size_t bytes);   /* zero-filled; NULL on failure */
    void (*release)(saed_backend *b, void *p);
    int (*upload)(saed_backend *b, void *dst, const void *src, size_t bytes);
    int (*download)(saed_backend *b, void *dst, const void *src, size_t bytes);

    /* C (M,N) = alpha · op(A) · op(B) + beta · C; op(X) = X or X^T (ta/tb = 1); row-major with
     * leading dimensions lda/ldb/ldc (elements between consecutive rows as stored). */
    int (*gemm)(saed_backend *b, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                const float *B, int ldb, float beta, float *C, int ldc);

    /* out (N,C) = layernorm of each row of inp with weight/bias. out may equal inp. */
    int (*layernorm)(saed_backend *b, float *out, const float *inp, const float *w, const float *bias, int N, int C,
                     float eps);
    /* x (N,C) += bias (C) broadcast over rows. */
    int (*add_bias)(saed_backend *b, float *x, const float *bias, int N, int C);
    /* out = gelu_new(in) (tanh approximation), n elements; out may equal in. */
    int (*gelu)(saed_backend *b, float *out, const float *in, size_t n);
    /* out = a + b, n elements; out may equal a. */
    int (*add)(saed_backend *b, float *out, const float *a, const float *b2, size_t n);
    /* Each row of x (N,C) minus its mean. */
    int (*center_rows)(saed_backend *b, float *x, int N, int C);
    /* out (B,T,C) = wte[ids] + wpe[pos0 + t]; ids is host memory. wte/ids NULL: positions
     * only; wpe NULL: tokens only. */
    int (*embed)(saed_backend *b, float *out, const int32_t *ids, const float *wte, const float *wpe, int B, int T,
                 int C, int pos0);
    /* dst rows (stride ldd) = src rows (stride lds), rows × width elements. */
    int (*copy2d)(saed_backend *b, float *dst, int ldd, const float *src, int lds, int rows, int width);
    /* Causal multi-head attention. q: (B,Tq,NH·hd) with row stride ldq; k, v: (B,Tk,NH·hd)
     * with row stride ldkv and batch stride sbkv (elements). Query t sits at absolute position
     * Tk - Tq + t and attends to keys 0..that position. z: (B,Tq,NH·hd) dense. pattern, when
     * not NULL: (B,NH,Tq,Tk) softmax probabilities (0 above the diagonal). */
    int (*attention)(saed_backend *b, float *z, float *pattern, const float *q, int ldq, const float *k,
                     const float *v, int ldkv, long sbkv, int B, int Tq, int Tk, int NH, int hd);
    /* Per-row argmax of x (N,C) into idx (host memory). */
    int (*argmax_rows)(saed_backend *b, int32_t *idx, const float *x, int N, int C);
    /* Per-row top k of x (N,C), largest first (ties: lower index first), into host vals and
     * idx (N,k). k <= C. */
    int (*topk_rows)(saed_backend *b, float *vals, int32_t *idx, const float *x, int N, int C, int k);
    /* out (N,C) = h where h > 0, h > thr[c] (thr (C), or NULL) and gate[r,c] > 0 (gate (N,C),
     * or NULL), else 0: ReLU, JumpReLU and the gated SAE's mask in one pass. out may equal h. */
    int (*masked_relu)(saed_backend *b, float *out, const float *h, const float *thr, const float *gate, int N, int C);
    /* x (N,C) *= s (C) broadcast over rows. */
    int (*scale_cols)(saed_backend *b, float *x, const float *s, int N, int C);
    /* Row r of x (N,C) becomes x[r]·scale[r] + shift[r]; scale and shift (N) are host memory,
     * shift may be NULL. */
    int (*scale_rows)(saed_backend *b, float *x, const float *scale, const float *shift, int N, int C);
    /* x (N,C) = 0 except x[r, idx[r,j]] = vals[r,j] for j < k; vals and idx (N,k) are host
     * memory, as topk_rows leaves them. */
    int (*scatter_rows)(saed_backend *b, float *x, const float *vals, const int32_t *idx, int N, int C, int k);

    void (*destroy)(saed_backend *b);
    void *impl;
};

/* Convenience for messages. */
static inline const char *backend_error(const saed_backend *b) { return b->err; }

/* spec: "auto" (CUDA when a device and driver are present, else CPU), "cpu", "cuda" or
 * "cuda:N". NULL with err when the requested backend cannot be opened. */
saed_backend *backend_open(const char *spec, char *err, size_t errlen);
saed_backend *backend_cpu_open(void);
void backend_close(saed_backend *b);
/* Call first in main(). OpenBLAS's idle threads spin (sched_yield) for about 2^28 cycles after
 * each product before they sleep, and OPENBLAS_THREAD_TIMEOUT is read only when the library
 * loads; between products the CPU backend runs its own pool (element-wise ops, attention, the
 * dashboard statistics), which those spinning threads slow down on a machine with few cores.
 * So unless the variable is set, this sets it to 4 (2^4 cycles) and re-executes the program
 * (/proc/self/exe, same argv); if that fails, the program goes on as it was. */
void backend_blas_env(char **argv);
/* Names the first op the backend lacks, or NULL when it implements the whole interface. */
const char *backend_missing_op(const saed_backend *b);

/* Entry point exported by the CUDA shared object (saed-cuda.so). */
typedef saed_backend *(*backend_cuda_open_fn)(int device, char *err, size_t errlen);
#define BACKEND_CUDA_SYMBOL "saed_cuda_backend_open"
#define BACKEND_CUDA_LIBRARY "saed-cuda.so"

#endif
