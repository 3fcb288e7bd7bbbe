// cuda_ops.h: the CUDA backend's launchers, one per backend op, and the helpers they share.
// Only the .cu files include it. A launcher takes the stream to queue on, checks its shapes,
// launches, and returns 0 or -1 with err; it never synchronizes unless it must hand results to
// host memory. Kernels follow the CPU backend (cpu.c) operation for operation: float products
// and sums are written with __fmul_rn/__fadd_rn so that nvcc cannot fuse them into FMAs the
// CPU does not use, and row statistics accumulate in double as on the CPU.
#ifndef SAED_GPU_CUDA_OPS_H
#define SAED_GPU_CUDA_OPS_H

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

extern "C" {
#include "gpu/backend.h" // defines: attn_shape, backend_act, backend_precision
}

#define CU_THREADS 256

static inline int cu_ok(cudaError_t e, const char *what, char *err, size_t errlen)
{
    if (e == cudaSuccess) return 0;
    snprintf(err, errlen, "%s: %s (%s)", what, cudaGetErrorString(e), cudaGetErrorName(e));
    return -1;
}

// After a launch: configuration errors (and sticky errors from earlier work) surface here.
static inline int cu_launched(const char *what, char *err, size_t errlen)
{
    return cu_ok(cudaGetLastError(), what, err, errlen);
}

static inline int cublas_ok(cublasStatus_t st, const char *what, char *err, size_t errlen)
{
    if (st == CUBLAS_STATUS_SUCCESS) return 0;
    snprintf(err, errlen, "%s: cuBLAS status %d (%s)", what, (int)st, cublasGetStatusString(st));
    return -1;
}

static inline int cu_shape(int bad, char *err, size_t errlen, const char *msg)
{
    if (bad) snprintf(err, errlen, "%s", msg);
    return bad ? -1 : 0;
}

// Blocks for a grid-stride loop over n items.
static inline unsigned cu_blocks(size_t n)
{
    size_t b = (n + CU_THREADS - 1) / CU_THREADS;
    return (unsigned)(b < 1 ? 1 : b > (1u << 20) ? (1u << 20) : b);
}

// Stream-ordered scratch: device memory from the pool that the backend configured to keep
// freed blocks, so per-call scratch costs no cudaMalloc. An allocation that fails is retried
// once after the pool has given back what it holds unused.
int cu_scratch(cudaStream_t st, void **p, size_t bytes, char *err, size_t errlen);
void cu_scratch_free(cudaStream_t st, void *p);
// Host → device copy of a small host array into fresh scratch.
int cu_upload_scratch(cudaStream_t st, void **dst, const void *src, size_t bytes, char *err, size_t errlen);

// 0 when this library's kernels can run on the current device, else -1 with err.
int cu_probe(char *err, size_t errlen);

// Element-wise and row-wise ops (cuda_kernels.cu); shapes as in backend.h.
int cu_layernorm(cudaStream_t st, float *out, const float *inp, const float *w, const float *bias, int N, int C,
                 float eps, char *err, size_t errlen);
int cu_add_bias(cudaStream_t st, float *x, const float *bias, int N, int C, char *err, size_t errlen);
int cu_gelu(cudaStream_t st, float *out, const float *in, size_t n, char *err, size_t errlen);
int cu_add(cudaStream_t st, float *out, const float *a, const float *b, size_t n, char *err, size_t errlen);
int cu_center_rows(cudaStream_t st, float *x, int N, int C, char *err, size_t errlen);
int cu_embed(cudaStream_t st, float *out, const int32_t *ids_host, const float *wte, const float *wpe, int B, int T,
             int C, int pos0, char *err, size_t errlen);
int cu_copy2d(cudaStream_t st, float *dst, int ldd, const float *src, int lds, int rows, int width, char *err,
              size_t errlen);
int cu_masked_relu(cudaStream_t st, float *out, const float *h, const float *thr, const float *gate, int N, int C,
                   char *err, size_t errlen);
int cu_scale_cols(cudaStream_t st, float *x, const float *s, int N, int C, char *err, size_t errlen);
int cu_scale_rows(cudaStream_t st, float *x, const float *scale_host, const float *shift_host, int N, int C, char *err,
                  size_t errlen);
int cu_scatter_rows(cudaStream_t st, float *x, const float *vals_host, const int32_t *idx_host, int N, int C, int k,
                    char *err, size_t errlen);

// GEMM (cuda_backend.cu's wrapper is the one caller): cuBLAS compute type for a precision.
cublasComputeType_t cu_compute_type(int precision);

// Attention (cuda_attention.cu) over the whole attn_shape: grouped key/value heads, any scale,
// soft-capped scores, sliding windows.
int cu_attention(cudaStream_t st, cublasHandle_t blas, int precision, float *z, float *pattern, const float *q, int ldq,
                 const float *k, const float *v, int ldkv, long sbkv, const attn_shape *s, char *err, size_t errlen);

// The rotary families' ops (cuda_rotary.cu); shapes as in backend.h. cu_act with up = NULL is
// the act op, with up the glu op (act(in) · up).
int cu_rmsnorm(cudaStream_t st, float *out, const float *inp, const float *w, int N, int C, float eps, char *err,
               size_t errlen);
int cu_rotary(cudaStream_t st, float *x, int ld, int B, int T, int nh, int hd, int rot, const float *cs, int pos0,
              char *err, size_t errlen);
int cu_act(cudaStream_t st, float *out, const float *in, const float *up, size_t n, int a, char *err, size_t errlen);
int cu_softcap(cudaStream_t st, float *x, size_t n, float cap, char *err, size_t errlen);

// C (M,N) = A (M,K) · Wᵀ + beta · C with W (N,K) 16-bit on the device (cuda_gemm16.cu): W
// widened block by block to float32 and multiplied at the given precision, or under bf16
// precision with BF16 weights, A rounded to BF16 and one 16-bit cuBLAS product.
int cu_gemm_w16(cudaStream_t st, cublasHandle_t blas, int precision, int M, int N, int K, const float *A, int lda,
                const uint16_t *W, int bf16, float beta, float *C, int ldc, char *err, size_t errlen);

// Selections (cuda_select.cu): results land in host memory, so these synchronize.
int cu_argmax_rows(cudaStream_t st, int32_t *idx_host, const float *x, int N, int C, char *err, size_t errlen);
int cu_topk_rows(cudaStream_t st, float *vals_host, int32_t *idx_host, const float *x, int N, int C, int k, char *err,
                 size_t errlen);
int cu_nonzeros(cudaStream_t st, int64_t *rowptr, int32_t *cols, float *vals, size_t cap, const float *x, int N, int ld,
                int c0, int F, char *err, size_t errlen);

#endif
