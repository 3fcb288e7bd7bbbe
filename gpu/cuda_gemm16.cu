// cuda_gemm16.cu: the product with 16-bit weights (backend.h gemm_w16), so that BF16/F16
// checkpoints stay at their stored size in device memory. Two ways, by precision:
//  - fp32 and tf32 (and bf16 with F16 weights): a block of weight rows is widened to float32
//    (exact) in scratch and multiplied by one cublasGemmEx at the backend's precision — the
//    CPU's gpu/blas16.c, the same numbers as float32 weights;
//  - bf16 with BF16 weights: A is rounded to BF16 (what bf16 precision does to every input)
//    and one cublasGemmEx takes both 16-bit operands directly (CUDA_R_16BF, fp32 accumulation
//    and output), with no widened copy of the weights.
// F16 weights under bf16 precision take the widening path with bf16 tensor-core products:
// rounding A to F16 instead could overflow (|x| > 65504).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "gpu/cuda_ops.h"

// Scratch per product: widened weight rows (float32) or rounded activation rows (BF16).
#define W16_SCRATCH_BYTES ((size_t)128 << 20)

// ---- kernels ----

// out (n) = the n 16-bit values of in, widened exactly.
__global__ void widen16_kernel(float *out, const uint16_t *in, size_t n, int bf16)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        uint16_t h = in[i];
        out[i] = bf16 ? __uint_as_float((uint32_t)h << 16) : __half2float(__ushort_as_half(h));
    }
}

// out (rows, K) dense = A (rows, K; ld lda) rounded to BF16, to nearest even.
__global__ void round_bf16_kernel(__nv_bfloat16 *out, const float *A, int lda, int K, size_t n)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        size_t r = i / (size_t)K, c = i % (size_t)K;
        out[i] = __float2bfloat16_rn(A[r * (size_t)lda + c]);
    }
}

// ---- launcher ----

// Blocks of weight rows widened to float32, one fp32-output product per block.
static int gemm_widened(cudaStream_t st, cublasHandle_t blas, int precision, int M, int N, int K, const float *A,
                        int lda, const uint16_t *W, int bf16, float beta, float *C, int ldc, char *err, size_t errlen)
{
    // rows per block: a multiple of 64 (keeps C + n0 aligned for the tensor-core kernels)
    size_t per = W16_SCRATCH_BYTES / (sizeof(float) * (size_t)(K > 0 ? K : 1)) / 64 * 64;
    if (per < 64) per = 64;
    if (per > (size_t)N) per = (size_t)N;
    void *w = NULL;
    if (cu_scratch(st, &w, sizeof(float) * per * (size_t)K, err, errlen)) return -1;
    const float one = 1.0f;
    const int ldw = K > 0 ? K : 1; // cuBLAS wants ld >= 1 even for an empty sum
    const cublasComputeType_t ct = cu_compute_type(precision);
    int rc = 0;
    for (size_t n0 = 0; n0 < (size_t)N && rc == 0; n0 += per) {
        const int nc = (int)((size_t)N - n0 < per ? (size_t)N - n0 : per);
        const size_t n = (size_t)nc * K;
        if (n) {
            widen16_kernel<<<cu_blocks(n), CU_THREADS, 0, st>>>((float *)w, W + n0 * (size_t)K, n, bf16);
            if ((rc = cu_launched("gemm_w16 widen", err, errlen))) break;
        }
        // Row-major C[:, n0:n0+nc] (M,nc) = A (M,K; ld lda) · Wb (nc,K; ld K)ᵀ, cuda_gemm's ta = 0,
        // tb = 1: column-major sees C^T (nc,M) = Wb (nc,K) · A^T (K,M); Wb row-major reads as
        // Wb^T column-major, hence OP_T with ld K; A reads as A^T, taken as is (OP_N) with lda;
        // m = nc, n = M, k = K; output C + n0 with ldc.
        rc = cublas_ok(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, nc, M, K, &one, w, CUDA_R_32F, ldw, A, CUDA_R_32F, lda,
                                    &beta, C + n0, CUDA_R_32F, ldc, ct, CUBLAS_GEMM_DEFAULT),
                       "gemm_w16", err, errlen);
    }
    cu_scratch_free(st, w);
    return rc;
}

// Blocks of A's rows rounded to BF16, one BF16 × BF16 product (fp32 accumulation) per block.
static int gemm_bf16(cudaStream_t st, cublasHandle_t blas, int M, int N, int K, const float *A, int lda,
                     const uint16_t *W, float beta, float *C, int ldc, char *err, size_t errlen)
{
    size_t per = W16_SCRATCH_BYTES / (sizeof(__nv_bfloat16) * (size_t)K);
    if (per < 1) per = 1;
    if (per > (size_t)M) per = (size_t)M;
    void *a16 = NULL;
    if (cu_scratch(st, &a16, sizeof(__nv_bfloat16) * per * (size_t)K, err, errlen)) return -1;
    const float one = 1.0f;
    int rc = 0;
    for (size_t m0 = 0; m0 < (size_t)M && rc == 0; m0 += per) {
        const int mc = (int)((size_t)M - m0 < per ? (size_t)M - m0 : per);
        const size_t n = (size_t)mc * K;
        round_bf16_kernel<<<cu_blocks(n), CU_THREADS, 0, st>>>((__nv_bfloat16 *)a16, A + m0 * (size_t)lda, lda, K, n);
        if ((rc = cu_launched("gemm_w16 round", err, errlen))) break;
        // Row-major C[m0:m0+mc, :] (mc,N) = Ab (mc,K; ld K) · W (N,K; ld K)ᵀ: as column-major
        // C^T (N,mc) = W (N,K) · Ab^T (K,mc); W reads as W^T (OP_T, ld K), Ab as Ab^T (OP_N,
        // ld K); m = N, n = mc, k = K; output C + m0·ldc with ldc. BF16 inputs with
        // CUBLAS_COMPUTE_32F and a CUDA_R_32F output is one of cublasGemmEx's listed combinations.
        rc = cublas_ok(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, N, mc, K, &one, W, CUDA_R_16BF, K, a16, CUDA_R_16BF,
                                    K, &beta, C + m0 * (size_t)ldc, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F,
                                    CUBLAS_GEMM_DEFAULT),
                       "gemm_w16 bf16", err, errlen);
    }
    cu_scratch_free(st, a16);
    return rc;
}

int cu_gemm_w16(cudaStream_t st, cublasHandle_t blas, int precision, int M, int N, int K, const float *A, int lda,
                const uint16_t *W, int bf16, float beta, float *C, int ldc, char *err, size_t errlen)
{
    if (M < 0 || N < 0 || K < 0) {
        snprintf(err, errlen, "gemm_w16: negative shape %dx%dx%d", M, N, K);
        return -1;
    }
    if (cu_shape((M > 1 && lda < K) || ldc < N, err, errlen, "gemm_w16: a leading dimension is below its row")) return -1;
    if (M == 0 || N == 0) return 0;
    // one row's stride is never used, but cuBLAS checks it: at least max(1, K)
    const int ld = lda > K ? lda : K > 0 ? K : 1;
    if (precision == BACKEND_BF16 && bf16 && K > 0)
        return gemm_bf16(st, blas, M, N, K, A, ld, W, beta, C, ldc, err, errlen);
    return gemm_widened(st, blas, precision, M, N, K, A, ld, W, bf16, beta, C, ldc, err, errlen);
}
