// cuda_backend.cu: the CUDA backend, built into saed-cuda.so when nvcc is found and loaded by
// backend.c at run time. This first version carries memory, the GEMM (cuBLAS) and one kernel,
// which proves the toolchain (nvcc, cudart, cuBLAS) compiles and links for CUDA_ARCHS; the
// full backend (layernorm, attention, SAE encode, reductions) follows the same layout:
// kernels first, then plain-C launchers that check their preconditions and every error.
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>

extern "C" {
#include "gpu/backend.h"
}

typedef struct cuda_impl {
    int device;
    cublasHandle_t blas;
    cudaStream_t stream;
} cuda_impl;

// ---- kernels ----

// out = a + b over n elements.
__global__ void add_kernel(float *out, const float *a, const float *b, size_t n)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = a[i] + b[i];
}

// ---- launchers ----

#define CU_TRY(call, what)                                                                     \
    do {                                                                                       \
        cudaError_t e_ = (call);                                                               \
        if (e_ != cudaSuccess) {                                                               \
            snprintf(err, errlen, "%s: %s", what, cudaGetErrorString(e_));                     \
            goto fail;                                                                         \
        }                                                                                      \
    } while (0)

static void *cuda_alloc(saed_backend *b, size_t bytes)
{
    cuda_impl *im = (cuda_impl *)b->impl;
    void *p = NULL;
    cudaError_t e = cudaSetDevice(im->device);
    if (e == cudaSuccess) e = cudaMalloc(&p, bytes ? bytes : 1);
    if (e == cudaSuccess) e = cudaMemsetAsync(p, 0, bytes, im->stream);
    if (e != cudaSuccess) {
        snprintf(b->err, sizeof b->err, "cudaMalloc(%zu): %s", bytes, cudaGetErrorString(e));
        if (p) cudaFree(p);
        return NULL;
    }
    return p;
}

static void cuda_release(saed_backend *b, void *p)
{
    (void)b;
    cudaFree(p);
}

static int cuda_copy(saed_backend *b, void *dst, const void *src, size_t bytes, cudaMemcpyKind kind)
{
    cuda_impl *im = (cuda_impl *)b->impl;
    cudaError_t e = cudaMemcpyAsync(dst, src, bytes, kind, im->stream);
    if (e == cudaSuccess) e = cudaStreamSynchronize(im->stream);
    if (e != cudaSuccess) {
        snprintf(b->err, sizeof b->err, "cudaMemcpy: %s", cudaGetErrorString(e));
        return -1;
    }
    return 0;
}

static int cuda_upload(saed_backend *b, void *dst, const void *src, size_t bytes)
{
    return cuda_copy(b, dst, src, bytes, cudaMemcpyHostToDevice);
}

static int cuda_download(saed_backend *b, void *dst, const void *src, size_t bytes)
{
    return cuda_copy(b, dst, src, bytes, cudaMemcpyDeviceToHost);
}

static int cuda_gemm(saed_backend *b, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                     const float *B, int ldb, float beta, float *C, int ldc)
{
    cuda_impl *im = (cuda_impl *)b->impl;
    if (M < 0 || N < 0 || K < 0) {
        snprintf(b->err, sizeof b->err, "gemm: negative shape %dx%dx%d", M, N, K);
        return -1;
    }
    if (M == 0 || N == 0) return 0;
    // Row-major C(M,N) = op(A)(M,K)·op(B)(K,N). cuBLAS is column-major, and a row-major X(r,c)
    // with leading dimension ld is the column-major X^T(c,r) with the same ld. So compute
    // C^T(N,M) = op(B)^T(N,K)·op(A)^T(K,M): cuBLAS m=N, n=M, k=K, first operand B with B's
    // transpose flag and ldb, second A with A's flag and lda, output C with ldc. The flags carry
    // over unchanged because transposing both sides of the identity swaps nothing else.
    cublasStatus_t st = cublasSgemm(im->blas, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, N, M,
                                    K, &alpha, B, ldb, A, lda, &beta, C, ldc);
    if (st != CUBLAS_STATUS_SUCCESS) {
        snprintf(b->err, sizeof b->err, "cublasSgemm: status %d", (int)st);
        return -1;
    }
    return 0;
}

static void cuda_destroy(saed_backend *b)
{
    cuda_impl *im = (cuda_impl *)b->impl;
    if (im) {
        cublasDestroy(im->blas);
        cudaStreamDestroy(im->stream);
        free(im);
    }
    free(b);
}

static int cuda_add(saed_backend *b, float *out, const float *a, const float *b2, size_t n)
{
    cuda_impl *im = (cuda_impl *)b->impl;
    if (n == 0) return 0;
    add_kernel<<<(unsigned)((n + 255) / 256), 256, 0, im->stream>>>(out, a, b2, n);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) {
        snprintf(b->err, sizeof b->err, "add_kernel: %s", cudaGetErrorString(e));
        return -1;
    }
    return 0;
}

extern "C" saed_backend *saed_cuda_backend_open(int device, char *err, size_t errlen)
{
    int count = 0;
    cudaDeviceProp prop;
    saed_backend *b = NULL;
    cuda_impl *im = NULL;
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
    CU_TRY(cudaSetDevice(device), "cudaSetDevice");
    CU_TRY(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
    CU_TRY(cudaStreamCreateWithFlags(&im->stream, cudaStreamNonBlocking), "cudaStreamCreate");
    if (cublasCreate(&im->blas) != CUBLAS_STATUS_SUCCESS) {
        im->blas = NULL;
        snprintf(err, errlen, "cublasCreate failed");
        goto fail;
    }
    if (cublasSetStream(im->blas, im->stream) != CUBLAS_STATUS_SUCCESS) {
        snprintf(err, errlen, "cublasSetStream failed");
        goto fail;
    }
    b->name = "cuda";
    snprintf(b->device, sizeof b->device, "%s (sm_%d%d, %zu MiB)", prop.name, prop.major, prop.minor,
             prop.totalGlobalMem >> 20);
    b->alloc = cuda_alloc;
    b->release = cuda_release;
    b->upload = cuda_upload;
    b->download = cuda_download;
    b->gemm = cuda_gemm;
    b->add = cuda_add;
    // layernorm, gelu, attention... arrive with the CUDA backend issue; until then
    // backend_missing_op() names the first absent op and callers refuse this backend.
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
