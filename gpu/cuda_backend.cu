// cuda_backend.cu: the CUDA backend (backend.h) built into saed-cuda.so when nvcc is found and
// loaded by backend.c at run time. This file holds the backend object — one device, one
// stream, one cuBLAS handle — memory, the GEMM and the op table; the kernels and their
// launchers live in cuda_kernels.cu, cuda_attention.cu, cuda_select.cu, cuda_rotary.cu and
// cuda_gemm16.cu (cuda_ops.h).
//
// Every op makes its device current first (a thread may serve backends on several devices),
// queues work on the backend's stream and returns; only ops that write host memory wait.
// Memory comes from the device's stream-ordered pool with its release threshold raised, so
// the per-batch buffers the engine allocates and frees are recycled instead of going through
// cudaMalloc/cudaFree each time. Errors never exit: they come back as -1 with b->err.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gpu/cuda_ops.h"

extern "C" {
#include "gpu/backend.h"
}

typedef struct cuda_impl {
    int device;
    cublasHandle_t blas;
    cudaStream_t stream;
    int failed; // a sticky error was seen: the context is unusable
} cuda_impl;

static cuda_impl *impl_of(saed_backend *b) { return (cuda_impl *)b->impl; }

// Makes the backend's device current for this thread; -1 with err when it cannot be.
static int enter(saed_backend *b)
{
    cuda_impl *im = impl_of(b);
    return cu_ok(cudaSetDevice(im->device), "cudaSetDevice", b->err, sizeof b->err);
}

// The result of an op: a failure that left the context broken marks the backend failed, so
// healthy() reports it without touching the device again.
static int done(saed_backend *b, int rc)
{
    if (rc) {
        cudaError_t e = cudaPeekAtLastError();
        if (e == cudaErrorIllegalAddress || e == cudaErrorLaunchFailure || e == cudaErrorECCUncorrectable ||
            e == cudaErrorHardwareStackError || e == cudaErrorIllegalInstruction || e == cudaErrorMisalignedAddress ||
            e == cudaErrorInvalidPc || e == cudaErrorDevicesUnavailable || e == cudaErrorUnknown)
            impl_of(b)->failed = 1;
    }
    return rc;
}

cublasComputeType_t cu_compute_type(int precision)
{
    return precision == BACKEND_TF32 ? CUBLAS_COMPUTE_32F_FAST_TF32
         : precision == BACKEND_BF16 ? CUBLAS_COMPUTE_32F_FAST_16BF
                                     : CUBLAS_COMPUTE_32F;
}

// ---- memory ----

static void *cuda_alloc(saed_backend *b, size_t bytes)
{
    cuda_impl *im = impl_of(b);
    void *p = NULL;
    if (enter(b) || cu_scratch(im->stream, &p, bytes, b->err, sizeof b->err)) return NULL;
    if (cu_ok(cudaMemsetAsync(p, 0, bytes, im->stream), "alloc", b->err, sizeof b->err)) {
        cu_scratch_free(im->stream, p);
        return NULL;
    }
    return p;
}

static void cuda_release(saed_backend *b, void *p)
{
    if (p && enter(b) == 0) cu_scratch_free(impl_of(b)->stream, p);
}

static int cuda_copy(saed_backend *b, void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, const char *what)
{
    cuda_impl *im = impl_of(b);
    if (bytes == 0) return 0;
    if (enter(b)) return -1;
    int rc = cu_ok(cudaMemcpyAsync(dst, src, bytes, kind, im->stream), what, b->err, sizeof b->err);
    // A download must be complete when it returns; an upload waits too, so the caller may
    // reuse its buffer at once and a failed copy is reported by the call that made it.
    if (rc == 0) rc = cu_ok(cudaStreamSynchronize(im->stream), what, b->err, sizeof b->err);
    return done(b, rc);
}

static int cuda_upload(saed_backend *b, void *dst, const void *src, size_t bytes)
{
    return cuda_copy(b, dst, src, bytes, cudaMemcpyHostToDevice, "upload");
}

static int cuda_download(saed_backend *b, void *dst, const void *src, size_t bytes)
{
    return cuda_copy(b, dst, src, bytes, cudaMemcpyDeviceToHost, "download");
}

// ---- GEMM ----

static int cuda_gemm(saed_backend *b, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                     const float *B, int ldb, float beta, float *C, int ldc)
{
    cuda_impl *im = impl_of(b);
    if (M < 0 || N < 0 || K < 0) {
        snprintf(b->err, sizeof b->err, "gemm: negative shape %dx%dx%d", M, N, K);
        return -1;
    }
    if (M == 0 || N == 0) return 0;
    if (enter(b)) return -1;
    // Row-major C(M,N) = op(A)(M,K)·op(B)(K,N). cuBLAS is column-major, and a row-major X(r,c)
    // with leading dimension ld is the column-major X^T(c,r) with the same ld. So compute
    // C^T(N,M) = op(B)^T(N,K)·op(A)^T(K,M): cuBLAS m=N, n=M, k=K, first operand B with B's
    // transpose flag and ldb, second A with A's flag and lda, output C with ldc. The flags carry
    // over unchanged: column-major sees B as B^T, and op(B)^T is then B^T as stored (tb = 0,
    // OP_N) or its transpose (tb = 1, OP_T); likewise A.
    int rc = cublas_ok(cublasGemmEx(im->blas, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K,
                                    &alpha, B, CUDA_R_32F, ldb, A, CUDA_R_32F, lda, &beta, C, CUDA_R_32F, ldc,
                                    cu_compute_type(b->precision), CUBLAS_GEMM_DEFAULT),
                       "gemm", b->err, sizeof b->err);
    return done(b, rc);
}

// ---- the other ops: a device switch, then the launcher on this backend's stream ----

#define ST impl_of(b)->stream
#define ERR b->err, sizeof b->err

static int cuda_layernorm(saed_backend *b, float *out, const float *inp, const float *w, const float *bias, int N,
                          int C, float eps)
{
    return enter(b) ? -1 : done(b, cu_layernorm(ST, out, inp, w, bias, N, C, eps, ERR));
}

static int cuda_add_bias(saed_backend *b, float *x, const float *bias, int N, int C)
{
    return enter(b) ? -1 : done(b, cu_add_bias(ST, x, bias, N, C, ERR));
}

static int cuda_gelu(saed_backend *b, float *out, const float *in, size_t n)
{
    return enter(b) ? -1 : done(b, cu_gelu(ST, out, in, n, ERR));
}

static int cuda_add(saed_backend *b, float *out, const float *a, const float *b2, size_t n)
{
    return enter(b) ? -1 : done(b, cu_add(ST, out, a, b2, n, ERR));
}

static int cuda_center_rows(saed_backend *b, float *x, int N, int C)
{
    return enter(b) ? -1 : done(b, cu_center_rows(ST, x, N, C, ERR));
}

static int cuda_embed(saed_backend *b, float *out, const int32_t *ids, const float *wte, const float *wpe, int B, int T,
                      int C, int pos0)
{
    return enter(b) ? -1 : done(b, cu_embed(ST, out, ids, wte, wpe, B, T, C, pos0, ERR));
}

static int cuda_copy2d(saed_backend *b, float *dst, int ldd, const float *src, int lds, int rows, int width)
{
    return enter(b) ? -1 : done(b, cu_copy2d(ST, dst, ldd, src, lds, rows, width, ERR));
}

static int cuda_attention(saed_backend *b, float *z, float *pattern, const float *q, int ldq, const float *k,
                          const float *v, int ldkv, long sbkv, const attn_shape *s)
{
    return enter(b) ? -1
                    : done(b, cu_attention(ST, impl_of(b)->blas, b->precision, z, pattern, q, ldq, k, v, ldkv, sbkv, s,
                                           ERR));
}

static int cuda_rmsnorm(saed_backend *b, float *out, const float *inp, const float *w, int N, int C, float eps)
{
    return enter(b) ? -1 : done(b, cu_rmsnorm(ST, out, inp, w, N, C, eps, ERR));
}

static int cuda_rotary(saed_backend *b, float *x, int ld, int B, int T, int nh, int hd, int rot, const float *cs,
                       int pos0)
{
    return enter(b) ? -1 : done(b, cu_rotary(ST, x, ld, B, T, nh, hd, rot, cs, pos0, ERR));
}

static int cuda_act(saed_backend *b, float *out, const float *in, size_t n, backend_act a)
{
    return enter(b) ? -1 : done(b, cu_act(ST, out, in, NULL, n, (int)a, ERR));
}

static int cuda_glu(saed_backend *b, float *out, const float *gate, const float *up, size_t n, backend_act a)
{
    return enter(b) ? -1 : done(b, cu_act(ST, out, gate, up, n, (int)a, ERR));
}

static int cuda_softcap(saed_backend *b, float *x, size_t n, float cap)
{
    return enter(b) ? -1 : done(b, cu_softcap(ST, x, n, cap, ERR));
}

static int cuda_gemm_w16(saed_backend *b, int M, int N, int K, const float *A, int lda, const uint16_t *W, int bf16,
                         float beta, float *C, int ldc)
{
    return enter(b) ? -1
                    : done(b, cu_gemm_w16(ST, impl_of(b)->blas, b->precision, M, N, K, A, lda, W, bf16, beta, C, ldc,
                                          ERR));
}

static int cuda_argmax_rows(saed_backend *b, int32_t *idx, const float *x, int N, int C)
{
    return enter(b) ? -1 : done(b, cu_argmax_rows(ST, idx, x, N, C, ERR));
}

static int cuda_topk_rows(saed_backend *b, float *vals, int32_t *idx, const float *x, int N, int C, int k)
{
    return enter(b) ? -1 : done(b, cu_topk_rows(ST, vals, idx, x, N, C, k, ERR));
}

static int cuda_masked_relu(saed_backend *b, float *out, const float *h, const float *thr, const float *gate, int N,
                            int C)
{
    return enter(b) ? -1 : done(b, cu_masked_relu(ST, out, h, thr, gate, N, C, ERR));
}

static int cuda_scale_cols(saed_backend *b, float *x, const float *s, int N, int C)
{
    return enter(b) ? -1 : done(b, cu_scale_cols(ST, x, s, N, C, ERR));
}

static int cuda_scale_rows(saed_backend *b, float *x, const float *scale, const float *shift, int N, int C)
{
    return enter(b) ? -1 : done(b, cu_scale_rows(ST, x, scale, shift, N, C, ERR));
}

static int cuda_scatter_rows(saed_backend *b, float *x, const float *vals, const int32_t *idx, int N, int C, int k)
{
    return enter(b) ? -1 : done(b, cu_scatter_rows(ST, x, vals, idx, N, C, k, ERR));
}

static int cuda_nonzeros(saed_backend *b, int64_t *rowptr, int32_t *cols, float *vals, size_t cap, const float *x, int N,
                         int ld, int c0, int F)
{
    return enter(b) ? -1 : done(b, cu_nonzeros(ST, rowptr, cols, vals, cap, x, N, ld, c0, F, ERR));
}

#undef ST
#undef ERR

// What the device has free once the pool has given back the blocks it keeps for reuse.
static int cuda_mem_info(saed_backend *b, size_t *free_bytes, size_t *total_bytes)
{
    cuda_impl *im = impl_of(b);
    cudaMemPool_t pool;
    if (enter(b)) return -1;
    int rc = cu_ok(cudaStreamSynchronize(im->stream), "mem_info", b->err, sizeof b->err);
    if (rc == 0) rc = cu_ok(cudaDeviceGetDefaultMemPool(&pool, im->device), "mem_info", b->err, sizeof b->err);
    if (rc == 0) rc = cu_ok(cudaMemPoolTrimTo(pool, 0), "mem_info", b->err, sizeof b->err);
    if (rc == 0) rc = cu_ok(cudaMemGetInfo(free_bytes, total_bytes), "mem_info", b->err, sizeof b->err);
    return done(b, rc);
}

// A sticky error (or one seen by an op) means every later op fails: report it once asked.
static int cuda_healthy(saed_backend *b)
{
    cuda_impl *im = impl_of(b);
    if (!im->failed && enter(b) == 0) {
        cudaError_t e = cudaStreamQuery(im->stream);
        if (e == cudaSuccess || e == cudaErrorNotReady) return 0;
        im->failed = 1;
        cu_ok(e, "device", b->err, sizeof b->err);
    }
    im->failed = 1;
    if (!b->err[0]) snprintf(b->err, sizeof b->err, "device cuda:%d failed", im->device);
    return -1;
}

static void cuda_destroy(saed_backend *b)
{
    cuda_impl *im = impl_of(b);
    if (im) {
        if (cudaSetDevice(im->device) == cudaSuccess && im->stream) cudaStreamSynchronize(im->stream);
        if (im->blas) cublasDestroy(im->blas);
        if (im->stream) cudaStreamDestroy(im->stream);
        free(im);
    }
    free(b);
}

extern "C" __attribute__((visibility("default"))) int saed_cuda_device_count(void)
{
    int n = 0;
    return cudaGetDeviceCount(&n) == cudaSuccess ? n : 0;
}

extern "C" __attribute__((visibility("default"))) saed_backend *saed_cuda_backend_open(int device, char *err,
                                                                                      size_t errlen)
{
    int count = 0, pools = 0;
    cudaDeviceProp prop;
    saed_backend *b = NULL;
    cuda_impl *im = NULL;
    cudaMemPool_t pool;
    uint64_t keep = UINT64_MAX;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0) {
        snprintf(err, errlen, "no CUDA device: %s", e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
        return NULL;
    }
    if (device >= count) {
        snprintf(err, errlen, "cuda:%d requested but %d device(s) present", device, count);
        return NULL;
    }
    b = (saed_backend *)calloc(1, sizeof *b);
    im = (cuda_impl *)calloc(1, sizeof *im);
    if (!b || !im) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    im->device = device;
    if (cu_ok(cudaSetDevice(device), "cudaSetDevice", err, errlen) ||
        cu_ok(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties", err, errlen) ||
        cu_ok(cudaStreamCreateWithFlags(&im->stream, cudaStreamNonBlocking), "cudaStreamCreate", err, errlen))
        goto fail;
    if (cu_ok(cudaDeviceGetAttribute(&pools, cudaDevAttrMemoryPoolsSupported, device), "device attributes", err, errlen))
        goto fail;
    if (!pools) {
        snprintf(err, errlen, "cuda:%d (%s) has no stream-ordered memory pools (driver too old?)", device, prop.name);
        goto fail;
    }
    if (cu_probe(err, errlen)) goto fail;
    // Keep freed pool memory for reuse instead of returning it at every synchronization.
    if (cu_ok(cudaDeviceGetDefaultMemPool(&pool, device), "memory pool", err, errlen) ||
        cu_ok(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep), "memory pool", err, errlen))
        goto fail;
    if (cublas_ok(cublasCreate(&im->blas), "cublasCreate", err, errlen)) {
        im->blas = NULL;
        goto fail;
    }
    if (cublas_ok(cublasSetStream(im->blas, im->stream), "cublasSetStream", err, errlen)) goto fail;
    b->name = "cuda";
    snprintf(b->device, sizeof b->device, "%s (cuda:%d, sm_%d%d, %zu MiB)", prop.name, device, prop.major, prop.minor,
             (size_t)(prop.totalGlobalMem >> 20));
    b->precision = BACKEND_FP32;
    b->alloc = cuda_alloc;
    b->release = cuda_release;
    b->upload = cuda_upload;
    b->download = cuda_download;
    b->gemm = cuda_gemm;
    b->layernorm = cuda_layernorm;
    b->add_bias = cuda_add_bias;
    b->gelu = cuda_gelu;
    b->add = cuda_add;
    b->center_rows = cuda_center_rows;
    b->embed = cuda_embed;
    b->copy2d = cuda_copy2d;
    b->attention = cuda_attention;
    b->rmsnorm = cuda_rmsnorm;
    b->rotary = cuda_rotary;
    b->act = cuda_act;
    b->glu = cuda_glu;
    b->softcap = cuda_softcap;
    b->gemm_w16 = cuda_gemm_w16;
    b->argmax_rows = cuda_argmax_rows;
    b->topk_rows = cuda_topk_rows;
    b->masked_relu = cuda_masked_relu;
    b->scale_cols = cuda_scale_cols;
    b->scale_rows = cuda_scale_rows;
    b->scatter_rows = cuda_scatter_rows;
    b->nonzeros = cuda_nonzeros;
    b->healthy = cuda_healthy;
    b->mem_info = cuda_mem_info;
    b->destroy = cuda_destroy;
    b->impl = im;
    return b;
fail:
    if (im && im->blas) cublasDestroy(im->blas);
    if (im && im->stream) cudaStreamDestroy(im->stream);
    free(im);
    free(b);
    return NULL;
}
