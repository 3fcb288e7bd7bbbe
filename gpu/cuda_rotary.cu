// cuda_rotary.cu: the element- and row-wise ops of the rotary families (backend.h: rmsnorm,
// rotary, act, glu, softcap). Kernels first, then the launchers declared in cuda_ops.h. Each
// kernel repeats its cpu.c loop operation for operation (explicitly rounded products and sums,
// so nvcc fuses nothing; the row sum of squares in double). Where cpu.c calls libm (tanhf,
// erff, expf), CUDA's versions are within 2 ulp of glibc's, so those outputs may differ from
// the CPU's in the last bits. The products with 16-bit weights are in cuda_gemm16.cu.
#include "gpu/cuda_ops.h"

// ---- kernels ----

// Sum of a double over the block; every thread gets the total. sh: CU_THREADS/32 doubles.
__device__ static double rms_block_sum(double v, double *sh)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    if (lane == 0) sh[w] = v;
    __syncthreads();
    double t = 0;
    for (int i = 0; i < (int)(blockDim.x >> 5); i++) t += sh[i];
    return t;
}

// One block per row: x / sqrt(mean(x²) + eps) · w, as cpu.c's rms_rows (mean in double, then
// float). In place is safe: every thread has read its elements before any is written (the
// block sum synchronizes), and each writes only the elements it read.
__global__ void rmsnorm_kernel(float *out, const float *inp, const float *w, int C, float eps)
{
    __shared__ double sh[CU_THREADS / 32];
    const float *x = inp + (size_t)blockIdx.x * C;
    float *o = out + (size_t)blockIdx.x * C;
    double ss = 0;
    for (int i = threadIdx.x; i < C; i += blockDim.x) ss += (double)x[i] * x[i];
    ss = rms_block_sum(ss, sh);
    float inv = __fdiv_rn(1.0f, __fsqrt_rn(__fadd_rn((float)(ss / C), eps)));
    if (w)
        for (int i = threadIdx.x; i < C; i += blockDim.x) o[i] = __fmul_rn(__fmul_rn(x[i], inv), w[i]);
    else
        for (int i = threadIdx.x; i < C; i += blockDim.x) o[i] = __fmul_rn(x[i], inv);
}

// One thread per rotated pair (row r, head h, i < half): n = rows · nh · half.
__global__ void rotary_kernel(float *x, int ld, int T, int nh, int hd, int rot, const float *cs, int pos0, size_t n)
{
    const int half = rot / 2;
    for (size_t j = (size_t)blockIdx.x * blockDim.x + threadIdx.x; j < n; j += (size_t)gridDim.x * blockDim.x) {
        int i = (int)(j % (size_t)half);
        size_t rh = j / (size_t)half;
        int h = (int)(rh % (size_t)nh);
        size_t r = rh / (size_t)nh;
        const float *c = cs + (size_t)(pos0 + (int)(r % (size_t)T)) * rot, *s = c + half;
        float *v = x + r * (size_t)ld + (size_t)h * hd;
        float x1 = v[i], x2 = v[i + half];
        v[i] = __fsub_rn(__fmul_rn(x1, c[i]), __fmul_rn(x2, s[i]));
        v[i + half] = __fadd_rn(__fmul_rn(x2, c[i]), __fmul_rn(x1, s[i]));
    }
}

// cpu.c's act_one, in its evaluation order.
__device__ static float act_one(float x, int a)
{
    switch (a) {
    case ACT_GELU_ERF: return __fmul_rn(__fmul_rn(0.5f, x), __fadd_rn(1.0f, erff(__fmul_rn(x, 0.70710678118654752f))));
    case ACT_SILU: return __fdiv_rn(x, __fadd_rn(1.0f, expf(-x)));
    default: {
        float cube = __fmul_rn(__fmul_rn(__fmul_rn(0.044715f, x), x), x);
        float u = __fmul_rn(0.7978845608028654f, __fadd_rn(x, cube));
        return __fmul_rn(__fmul_rn(0.5f, x), __fadd_rn(1.0f, tanhf(u)));
    }
    }
}

// out = act(in), or act(in) · up when up is not NULL (the gated MLPs).
__global__ void act_kernel(float *out, const float *in, const float *up, size_t n, int a)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float y = act_one(in[i], a);
        out[i] = up ? __fmul_rn(y, up[i]) : y;
    }
}

__global__ void softcap_kernel(float *x, size_t n, float cap)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        x[i] = __fmul_rn(cap, tanhf(__fdiv_rn(x[i], cap)));
}

// ---- launchers ----

int cu_rmsnorm(cudaStream_t st, float *out, const float *inp, const float *w, int N, int C, float eps, char *err,
               size_t errlen)
{
    if (cu_shape(N < 0 || C < 1, err, errlen, "rmsnorm: bad shape")) return -1;
    if (N == 0) return 0;
    rmsnorm_kernel<<<N, CU_THREADS, 0, st>>>(out, inp, w, C, eps);
    return cu_launched("rmsnorm", err, errlen);
}

int cu_rotary(cudaStream_t st, float *x, int ld, int B, int T, int nh, int hd, int rot, const float *cs, int pos0,
              char *err, size_t errlen)
{
    if (rot < 2 || rot % 2 || rot > hd) {
        snprintf(err, errlen, "rotary: %d rotary dims for heads of %d", rot, hd);
        return -1;
    }
    if (cu_shape(B < 0 || T < 0 || nh < 0 || pos0 < 0 || (B > 0 && T > 0 && ld < nh * hd), err, errlen,
                 "rotary: bad shape or row stride"))
        return -1;
    size_t n = (size_t)B * T * nh * (rot / 2);
    if (n == 0) return 0;
    rotary_kernel<<<cu_blocks(n), CU_THREADS, 0, st>>>(x, ld, T, nh, hd, rot, cs, pos0, n);
    return cu_launched("rotary", err, errlen);
}

int cu_act(cudaStream_t st, float *out, const float *in, const float *up, size_t n, int a, char *err, size_t errlen)
{
    if (a != ACT_GELU_TANH && a != ACT_GELU_ERF && a != ACT_SILU) {
        snprintf(err, errlen, "act: unknown activation %d", a);
        return -1;
    }
    if (n == 0) return 0;
    // cpu.c's act takes GPT-2's gelu (its exp polynomial) for the tanh GELU; its glu does not
    if (!up && a == ACT_GELU_TANH) return cu_gelu(st, out, in, n, err, errlen);
    act_kernel<<<cu_blocks(n), CU_THREADS, 0, st>>>(out, in, up, n, a);
    return cu_launched(up ? "glu" : "act", err, errlen);
}

int cu_softcap(cudaStream_t st, float *x, size_t n, float cap, char *err, size_t errlen)
{
    if (n == 0) return 0;
    softcap_kernel<<<cu_blocks(n), CU_THREADS, 0, st>>>(x, n, cap);
    return cu_launched("softcap", err, errlen);
}
