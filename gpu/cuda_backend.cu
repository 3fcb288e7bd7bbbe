// cuda_backend.cu: the CUDA backend, built into saed-cuda.so when nvcc is found and loaded by
// backend.c at run time. This first version carries the GEMM through cuBLAS plus one kernel,
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

// Zero-fills n floats; used to give sgemm a defined output before beta=0 accumulation.
__global__ void fill_zero_kernel(float *x, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] = 0.0f;
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

static int cuda_sgemm(saed_backend *b, int M, int N, int K, const float *A, const float *B, float *C,
                      char *err, size_t errlen)
{
    cuda_impl *im = (cuda_impl *)b->impl;
    float *dA = NULL, *dB = NULL, *dC = NULL;
    const float one = 1.0f, zero = 0.0f;
    cublasStatus_t st;
    int rc = -1;
    if (M <= 0 || N <= 0 || K <= 0) {
        snprintf(err, errlen, "sgemm: bad shape M=%d N=%d K=%d", M, N, K);
        return -1;
    }
    CU_TRY(cudaSetDevice(im->device), "cudaSetDevice");
    CU_TRY(cudaMalloc(&dA, sizeof(float) * (size_t)M * K), "cudaMalloc A");
    CU_TRY(cudaMalloc(&dB, sizeof(float) * (size_t)K * N), "cudaMalloc B");
    CU_TRY(cudaMalloc(&dC, sizeof(float) * (size_t)M * N), "cudaMalloc C");
    CU_TRY(cudaMemcpyAsync(dA, A, sizeof(float) * (size_t)M * K, cudaMemcpyHostToDevice, im->stream), "copy A");
    CU_TRY(cudaMemcpyAsync(dB, B, sizeof(float) * (size_t)K * N, cudaMemcpyHostToDevice, im->stream), "copy B");
    fill_zero_kernel<<<(M * N + 255) / 256, 256, 0, im->stream>>>(dC, M * N);
    CU_TRY(cudaGetLastError(), "fill_zero_kernel");
    // Row-major C(M,N) = A(M,K)·B(K,N). cuBLAS is column-major: a row-major X(r,c) is the
    // column-major X^T(c,r) with leading dimension c. So compute C^T(N,M) = B^T(N,K)·A^T(K,M):
    // m=N, n=M, k=K, first operand dB (ld N), second dA (ld K), output dC (ld N), no transposes.
    st = cublasSgemm(im->blas, CUBLAS_OP_N, CUBLAS_OP_N, N, M, K, &one, dB, N, dA, K, &zero, dC, N);
    if (st != CUBLAS_STATUS_SUCCESS) {
        snprintf(err, errlen, "cublasSgemm: status %d", (int)st);
        goto fail;
    }
    CU_TRY(cudaMemcpyAsync(C, dC, sizeof(float) * (size_t)M * N, cudaMemcpyDeviceToHost, im->stream), "copy C");
    CU_TRY(cudaStreamSynchronize(im->stream), "sync");
    rc = 0;
fail:
    cudaFree(dA);
    cudaFree(dB);
    cudaFree(dC);
    return rc;
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
    if (cublasCreate(&im->blas) != CUBLAS_STATUS_SUCCESS || cublasSetStream(im->blas, im->stream) != CUBLAS_STATUS_SUCCESS) {
        snprintf(err, errlen, "cublasCreate failed");
        goto fail;
    }
    b->name = "cuda";
    snprintf(b->device, sizeof b->device, "%s (sm_%d%d, %zu MiB)", prop.name, prop.major, prop.minor,
             prop.totalGlobalMem >> 20);
    b->sgemm = cuda_sgemm;
    b->destroy = cuda_destroy;
    b->impl = im;
    return b;
fail:
    if (im && im->stream) cudaStreamDestroy(im->stream);
    free(im);
    free(b);
    return NULL;
}
