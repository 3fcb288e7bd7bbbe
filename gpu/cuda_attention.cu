// cuda_attention.cu: causal multi-head attention as the CPU backend computes it — scores by a
// GEMM, soft-cap, causal (and sliding-window) mask and softmax in place, weighted sum by a GEMM
// — with each GEMM one batched cuBLAS call over every (batch, query head) pair of a chunk.
// The per-pair matrix addresses are written by a small kernel (query head h reads key/value
// head h / (NH/NKV)), so nothing waits on the host between calls. Scores outside the mask are
// computed and then zeroed: the products stay dense.
#include "gpu/cuda_ops.h"

// ---- kernels ----

// Pointers of pair i = h0 + j (batch i / NH, query head i % NH, key/value head that / group)
// for the two batched GEMMs.
__global__ void attn_ptrs_kernel(const float **qp, const float **kp, const float **vp, float **sp, const float **spc,
                                 float **zp, const float *q, const float *k, const float *v, float *S, float *z,
                                 long h0, int n, int NH, int group, int Tq, int ldq, long sbkv, int hd, int C, size_t per)
{
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= n) return;
    long i = h0 + j, bb = i / NH, h = i % NH, kvh = h / group;
    qp[j] = q + (size_t)bb * Tq * ldq + (size_t)h * hd;
    kp[j] = k + (size_t)bb * sbkv + (size_t)kvh * hd;
    vp[j] = v + (size_t)bb * sbkv + (size_t)kvh * hd;
    sp[j] = S + (size_t)j * per;
    spc[j] = sp[j];
    zp[j] = z + (size_t)bb * Tq * C + (size_t)h * hd;
}

// One warp per score row (the whole warp shares r, so the shuffles see all 32 lanes): soft-cap,
// causal and window mask, softmax in place, as cpu.c's softmax_rows (float cap, max and exp,
// double sum, float reciprocal). The query at absolute position last sees keys first..last;
// first <= last always (window >= 1), so no row is fully masked.
__global__ void softmax_kernel(float *S, size_t rows, int Tq, int Tk, int window, float cap)
{
    size_t r = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    int lane = threadIdx.x & 31;
    if (r >= rows) return;
    float *row = S + r * (size_t)Tk;
    int last = Tk - Tq + (int)(r % (size_t)Tq);
    int first = window > 0 && last - window + 1 > 0 ? last - window + 1 : 0;
    if (cap > 0) {
        for (int s = first + lane; s <= last; s += 32) row[s] = __fmul_rn(cap, tanhf(__fdiv_rn(row[s], cap)));
        __syncwarp(); // row[first] below was capped by lane 0
    }
    float mx = row[first];
    for (int s = first + lane; s <= last; s += 32) mx = row[s] > mx ? row[s] : mx;
    for (int o = 16; o > 0; o >>= 1) {
        float other = __shfl_xor_sync(0xffffffffu, mx, o);
        mx = other > mx ? other : mx;
    }
    double sum = 0;
    for (int s = first + lane; s <= last; s += 32) {
        float e = expf(__fsub_rn(row[s], mx));
        row[s] = e;
        sum += e;
    }
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    float inv = (float)(1.0 / sum);
    for (int s = lane; s < first; s += 32) row[s] = 0.0f;
    for (int s = first + lane; s <= last; s += 32) row[s] = __fmul_rn(row[s], inv);
    for (int s = last + 1 + lane; s < Tk; s += 32) row[s] = 0.0f;
}

// ---- launcher ----

int cu_attention(cudaStream_t st, cublasHandle_t blas, int precision, float *z, float *pattern, const float *q, int ldq,
                 const float *k, const float *v, int ldkv, long sbkv, const attn_shape *s, char *err, size_t errlen)
{
    const int B = s->B, Tq = s->Tq, Tk = s->Tk, NH = s->NH, NKV = s->NKV, hd = s->hd;
    if (Tq > Tk || Tq < 1) {
        snprintf(err, errlen, "attention: %d queries for %d keys", Tq, Tk);
        return -1;
    }
    if (NKV < 1 || NH % NKV) {
        snprintf(err, errlen, "attention: %d query heads for %d key/value heads", NH, NKV);
        return -1;
    }
    if (cu_shape(B < 0 || NH < 1 || hd < 1 || ldq < NH * hd || ldkv < NKV * hd || (B > 1 && sbkv < (long)Tk * ldkv),
                 err, errlen, "attention: bad shape or row stride"))
        return -1;
    if (B == 0) return 0;
    const int C = NH * hd, group = NH / NKV;
    const float scale = s->scale, one = 1.0f, zero = 0.0f;
    const size_t per = (size_t)Tq * Tk, heads = (size_t)B * NH;
    // Without a pattern to fill, the scores live in scratch: 256 MB of them at a time.
    size_t chunk = pattern ? heads : (size_t)(64u << 20) / per;
    if (chunk < 1) chunk = 1;
    if (chunk > heads) chunk = heads;
    if (chunk > (size_t)INT32_MAX / 8) chunk = (size_t)INT32_MAX / 8;
    void *scratch = NULL, *ptrs = NULL;
    if ((!pattern && cu_scratch(st, &scratch, chunk * per * sizeof(float), err, errlen)) ||
        cu_scratch(st, &ptrs, 6 * chunk * sizeof(void *), err, errlen)) {
        cu_scratch_free(st, scratch);
        return -1;
    }
    const float **qp = (const float **)ptrs, **kp = qp + chunk, **vp = kp + chunk, **spc = vp + chunk + chunk;
    float **sp = (float **)(vp + chunk), **zp = (float **)(spc + chunk);
    const cublasComputeType_t ct = cu_compute_type(precision);
    int rc = 0;
    for (size_t h0 = 0; h0 < heads && rc == 0; h0 += chunk) {
        const int n = (int)(heads - h0 < chunk ? heads - h0 : chunk);
        float *S = pattern ? pattern + h0 * per : (float *)scratch;
        attn_ptrs_kernel<<<(n + 127) / 128, 128, 0, st>>>(qp, kp, vp, sp, spc, zp, q, k, v, S, z, (long)h0, n, NH, group,
                                                           Tq, ldq, sbkv, hd, C, per);
        if ((rc = cu_launched("attention pointers", err, errlen))) break;
        // Scores, row-major S (Tq,Tk) = scale · Q (Tq,hd; ld ldq) · K^T, K (Tk,hd; ld ldkv) (the
        // pair's key/value head).
        // cuBLAS is column-major, and a row-major X with leading dimension ld reads as the
        // column-major X^T with the same ld. So ask for S^T (Tk,Tq) = K (Tk,hd) · Q^T (hd,Tq):
        // first operand K, which column-major sees as K^T (hd,Tk), hence OP_T with ldkv; second
        // Q, seen as Q^T (hd,Tq), taken as is (OP_N) with ldq; m = Tk, n = Tq, k = hd; S^T
        // column-major with ld Tk is S row-major.
        rc = cublas_ok(cublasGemmBatchedEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, Tk, Tq, hd, &scale, (const void *const *)kp,
                                           CUDA_R_32F, ldkv, (const void *const *)qp, CUDA_R_32F, ldq, &zero,
                                           (void *const *)sp, CUDA_R_32F, Tk, n, ct, CUBLAS_GEMM_DEFAULT),
                       "attention scores", err, errlen);
        if (rc) break;
        size_t rows = (size_t)n * Tq;
        softmax_kernel<<<(unsigned)((rows * 32 + CU_THREADS - 1) / CU_THREADS), CU_THREADS, 0, st>>>(
            S, rows, Tq, Tk, s->window, s->softcap);
        if ((rc = cu_launched("attention softmax", err, errlen))) break;
        // Weighted sum, row-major Z (Tq,hd; ld C) = P (Tq,Tk; ld Tk) · V (Tk,hd; ld ldkv). As
        // column-major: Z^T (hd,Tq) = V^T (hd,Tk) · P^T (Tk,Tq), and V^T, P^T are exactly how
        // column-major reads the row-major V and P, so both OP_N: m = hd, n = Tq, k = Tk, first
        // V with ldkv, second P with Tk, output ld C.
        rc = cublas_ok(cublasGemmBatchedEx(blas, CUBLAS_OP_N, CUBLAS_OP_N, hd, Tq, Tk, &one, (const void *const *)vp,
                                           CUDA_R_32F, ldkv, (const void *const *)spc, CUDA_R_32F, Tk, &zero,
                                           (void *const *)zp, CUDA_R_32F, C, n, ct, CUBLAS_GEMM_DEFAULT),
                       "attention values", err, errlen);
    }
    cu_scratch_free(st, scratch);
    cu_scratch_free(st, ptrs);
    return rc;
}
