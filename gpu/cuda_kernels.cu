// cuda_kernels.cu: the CUDA backend's element-wise and row-wise ops. Kernels first, then the
// launchers declared in cuda_ops.h. Each kernel mirrors its cpu.c loop: same expression order,
// no fused multiply-adds, row sums in double, so that most outputs are bit-identical to the
// CPU backend's (layernorm and center_rows may differ in the last bit where the double sums,
// added in another order, round differently).
#include "gpu/cuda_ops.h"

// ---- kernels ----

// Sum of a double over the block; every thread gets the total. sh: CU_THREADS/32 doubles.
__device__ static double block_sum(double v, double *sh)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    __syncthreads(); // sh may still be read from a previous call
    if (lane == 0) sh[w] = v;
    __syncthreads();
    double t = 0;
    for (int i = 0; i < (int)(blockDim.x >> 5); i++) t += sh[i];
    return t;
}

// One block per row: mean and variance in double, then (x − m)·rstd·w + b in float.
__global__ void layernorm_kernel(float *out, const float *inp, const float *w, const float *bias, int C, float eps)
{
    __shared__ double sh[CU_THREADS / 32];
    const float *x = inp + (size_t)blockIdx.x * C;
    float *o = out + (size_t)blockIdx.x * C;
    double s = 0;
    for (int i = threadIdx.x; i < C; i += blockDim.x) s += x[i];
    double mean = block_sum(s, sh) / C, ss = 0;
    for (int i = threadIdx.x; i < C; i += blockDim.x) {
        double d = x[i] - mean;
        ss += d * d;
    }
    ss = block_sum(ss, sh);
    float rstd = (float)(1.0 / sqrt(ss / C + eps));
    float m = (float)mean;
    for (int i = threadIdx.x; i < C; i += blockDim.x)
        o[i] = __fadd_rn(__fmul_rn(__fmul_rn(__fsub_rn(x[i], m), rstd), w[i]), bias[i]);
}

__global__ void add_bias_kernel(float *x, const float *bias, size_t n, int C)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        x[i] = __fadd_rn(x[i], bias[i % (size_t)C]);
}

// cpu.c's exp_poly, operation for operation.
__device__ static float exp_poly(float x)
{
    float t = __fmul_rn(x, 1.44269504088896341f);
    float n = roundf(t);
    float f = __fsub_rn(t, n);
    float p = 1.5403530393381609e-4f;
    p = __fadd_rn(__fmul_rn(p, f), 1.3333558146428443e-3f);
    p = __fadd_rn(__fmul_rn(p, f), 9.6181291076284772e-3f);
    p = __fadd_rn(__fmul_rn(p, f), 5.5504108664821580e-2f);
    p = __fadd_rn(__fmul_rn(p, f), 2.4022650695910071e-1f);
    p = __fadd_rn(__fmul_rn(p, f), 6.9314718055994531e-1f);
    p = __fadd_rn(__fmul_rn(p, f), 1.0f);
    return __fmul_rn(p, __int_as_float(((int)n + 127) << 23));
}

// gelu_new as cpu.c's gelu_range computes it.
__global__ void gelu_kernel(float *out, const float *in, size_t n)
{
    const float k = 0.7978845608028654f;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float x = in[i];
        float cube = __fmul_rn(__fmul_rn(__fmul_rn(0.044715f, x), x), x);
        float u = __fmul_rn(k, __fadd_rn(x, cube));
        u = u > 9.0f ? 9.0f : (u < -9.0f ? -9.0f : u);
        float e = exp_poly(__fmul_rn(2.0f, u));
        float th = __fsub_rn(1.0f, __fdiv_rn(2.0f, __fadd_rn(e, 1.0f)));
        out[i] = __fmul_rn(__fmul_rn(0.5f, x), __fadd_rn(1.0f, th));
    }
}

__global__ void add_kernel(float *out, const float *a, const float *b, size_t n)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        out[i] = __fadd_rn(a[i], b[i]);
}

__global__ void center_rows_kernel(float *x, int C)
{
    __shared__ double sh[CU_THREADS / 32];
    float *row = x + (size_t)blockIdx.x * C;
    double s = 0;
    for (int i = threadIdx.x; i < C; i += blockDim.x) s += row[i];
    float m = (float)(block_sum(s, sh) / C);
    for (int i = threadIdx.x; i < C; i += blockDim.x) row[i] = __fsub_rn(row[i], m);
}

// out (B·T, C) = wte[ids] + wpe[pos0 + t]; a missing part contributes 0.0f, as on the CPU.
__global__ void embed_kernel(float *out, const int32_t *ids, const float *wte, const float *wpe, int T, int C, int pos0,
                             size_t n)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        size_t bt = i / (size_t)C;
        int c = (int)(i % (size_t)C);
        float e = ids ? wte[(size_t)ids[bt] * C + c] : 0.0f;
        float p = wpe ? wpe[(size_t)(pos0 + (int)(bt % (size_t)T)) * C + c] : 0.0f;
        out[i] = __fadd_rn(e, p);
    }
}

__global__ void masked_relu_kernel(float *out, const float *h, const float *thr, const float *gate, size_t n, int C)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float v = h[i];
        int on = v > 0.0f && (!thr || v > thr[i % (size_t)C]) && (!gate || gate[i] > 0.0f);
        out[i] = on ? v : 0.0f;
    }
}

__global__ void scale_cols_kernel(float *x, const float *s, size_t n, int C)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        x[i] = __fmul_rn(x[i], s[i % (size_t)C]);
}

// x·scale[r] + shift[r]; shift NULL adds 0.0f, as cpu.c does.
__global__ void scale_rows_kernel(float *x, const float *scale, const float *shift, size_t n, int C)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        size_t r = i / (size_t)C;
        x[i] = __fadd_rn(__fmul_rn(x[i], scale[r]), shift ? shift[r] : 0.0f);
    }
}

// One thread per row, entries in order: a repeated index keeps the last value, as on the CPU.
__global__ void scatter_rows_kernel(float *x, const float *vals, const int32_t *idx, int N, int C, int k)
{
    int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= N) return;
    for (int j = 0; j < k; j++) x[(size_t)r * C + idx[(size_t)r * k + j]] = vals[(size_t)r * k + j];
}

// ---- scratch ----

int cu_scratch(cudaStream_t st, void **p, size_t bytes, char *err, size_t errlen)
{
    *p = NULL;
    cudaError_t e = cudaMallocAsync(p, bytes ? bytes : 1, st);
    if (e == cudaErrorMemoryAllocation) {
        (void)cudaGetLastError();
        int dev = 0;
        cudaMemPool_t pool;
        if (cudaStreamSynchronize(st) == cudaSuccess && cudaGetDevice(&dev) == cudaSuccess &&
            cudaDeviceGetDefaultMemPool(&pool, dev) == cudaSuccess)
            cudaMemPoolTrimTo(pool, 0);
        e = cudaMallocAsync(p, bytes ? bytes : 1, st);
    }
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        *p = NULL;
        snprintf(err, errlen, "device memory (%zu bytes): %s", bytes, cudaGetErrorString(e));
        return -1;
    }
    return 0;
}

void cu_scratch_free(cudaStream_t st, void *p)
{
    if (p) cudaFreeAsync(p, st);
}

int cu_upload_scratch(cudaStream_t st, void **dst, const void *src, size_t bytes, char *err, size_t errlen)
{
    if (cu_scratch(st, dst, bytes, err, errlen)) return -1;
    if (cu_ok(cudaMemcpyAsync(*dst, src, bytes, cudaMemcpyHostToDevice, st), "upload", err, errlen)) {
        cu_scratch_free(st, *dst);
        *dst = NULL;
        return -1;
    }
    return 0;
}

// ---- launchers ----

int cu_probe(char *err, size_t errlen)
{
    // The kernels are compiled for CUDA_ARCHS (plus PTX of the newest, which the driver can
    // compile for newer GPUs): a device outside that set has no image to run.
    cudaFuncAttributes a;
    cudaError_t e = cudaFuncGetAttributes(&a, add_kernel);
    if (e == cudaSuccess) return 0;
    (void)cudaGetLastError();
    snprintf(err, errlen, "the kernels in saed-cuda.so cannot run on this device (%s): rebuild with CUDA_ARCHS set to "
                          "its compute capability", cudaGetErrorString(e));
    return -1;
}

int cu_layernorm(cudaStream_t st, float *out, const float *inp, const float *w, const float *bias, int N, int C,
                 float eps, char *err, size_t errlen)
{
    if (cu_shape(N < 0 || C < 1, err, errlen, "layernorm: bad shape")) return -1;
    if (N == 0) return 0;
    layernorm_kernel<<<N, CU_THREADS, 0, st>>>(out, inp, w, bias, C, eps);
    return cu_launched("layernorm", err, errlen);
}

int cu_add_bias(cudaStream_t st, float *x, const float *bias, int N, int C, char *err, size_t errlen)
{
    if (cu_shape(N < 0 || C < 0, err, errlen, "add_bias: negative shape")) return -1;
    size_t n = (size_t)N * C;
    if (n == 0) return 0;
    add_bias_kernel<<<cu_blocks(n), CU_THREADS, 0, st>>>(x, bias, n, C);
    return cu_launched("add_bias", err, errlen);
}

int cu_gelu(cudaStream_t st, float *out, const float *in, size_t n, char *err, size_t errlen)
{
    if (n == 0) return 0;
    gelu_kernel<<<cu_blocks(n), CU_THREADS, 0, st>>>(out, in, n);
    return cu_launched("gelu", err, errlen);
}

int cu_add(cudaStream_t st, float *out, const float *a, const float *b, size_t n, char *err, size_t errlen)
{
    if (n == 0) return 0;
    add_kernel<<<cu_blocks(n), CU_THREADS, 0, st>>>(out, a, b, n);
    return cu_launched("add", err, errlen);
}

int cu_center_rows(cudaStream_t st, float *x, int N, int C, char *err, size_t errlen)
{
    if (cu_shape(N < 0 || C < 1, err, errlen, "center_rows: bad shape")) return -1;
    if (N == 0) return 0;
    center_rows_kernel<<<N, CU_THREADS, 0, st>>>(x, C);
    return cu_launched("center_rows", err, errlen);
}

int cu_embed(cudaStream_t st, float *out, const int32_t *ids_host, const float *wte, const float *wpe, int B, int T,
             int C, int pos0, char *err, size_t errlen)
{
    if (cu_shape(B < 0 || T < 0 || C < 0 || pos0 < 0, err, errlen, "embed: negative shape")) return -1;
    size_t n = (size_t)B * T * C;
    if (n == 0) return 0;
    void *ids = NULL;
    // ids are host memory (backend.h): a copy rides on the stream ahead of the kernel.
    if (wte && ids_host && cu_upload_scratch(st, &ids, ids_host, sizeof(int32_t) * (size_t)B * T, err, errlen)) return -1;
    embed_kernel<<<cu_blocks(n), CU_THREADS, 0, st>>>(out, (const int32_t *)ids, ids ? wte : NULL, wpe, T, C, pos0, n);
    int rc = cu_launched("embed", err, errlen);
    cu_scratch_free(st, ids);
    return rc;
}

int cu_copy2d(cudaStream_t st, float *dst, int ldd, const float *src, int lds, int rows, int width, char *err,
              size_t errlen)
{
    if (cu_shape(rows < 0 || width < 0 || (rows > 1 && (ldd < width || lds < width)), err, errlen,
                 "copy2d: a row stride is smaller than the width"))
        return -1;
    if (rows == 0 || width == 0) return 0;
    return cu_ok(cudaMemcpy2DAsync(dst, sizeof(float) * (size_t)(rows > 1 ? ldd : width), src,
                                   sizeof(float) * (size_t)(rows > 1 ? lds : width), sizeof(float) * (size_t)width,
                                   (size_t)rows, cudaMemcpyDeviceToDevice, st),
                 "copy2d", err, errlen);
}

int cu_masked_relu(cudaStream_t st, float *out, const float *h, const float *thr, const float *gate, int N, int C,
                   char *err, size_t errlen)
{
    if (cu_shape(N < 0 || C < 0, err, errlen, "masked_relu: negative shape")) return -1;
    size_t n = (size_t)N * C;
    if (n == 0) return 0;
    masked_relu_kernel<<<cu_blocks(n), CU_THREADS, 0, st>>>(out, h, thr, gate, n, C);
    return cu_launched("masked_relu", err, errlen);
}

int cu_scale_cols(cudaStream_t st, float *x, const float *s, int N, int C, char *err, size_t errlen)
{
    if (cu_shape(N < 0 || C < 0, err, errlen, "scale_cols: negative shape")) return -1;
    size_t n = (size_t)N * C;
    if (n == 0) return 0;
    scale_cols_kernel<<<cu_blocks(n), CU_THREADS, 0, st>>>(x, s, n, C);
    return cu_launched("scale_cols", err, errlen);
}

int cu_scale_rows(cudaStream_t st, float *x, const float *scale_host, const float *shift_host, int N, int C, char *err,
                  size_t errlen)
{
    if (cu_shape(N < 0 || C < 0, err, errlen, "scale_rows: negative shape")) return -1;
    size_t n = (size_t)N * C;
    if (n == 0) return 0;
    void *sc = NULL, *sh = NULL;
    if (cu_upload_scratch(st, &sc, scale_host, sizeof(float) * (size_t)N, err, errlen) ||
        (shift_host && cu_upload_scratch(st, &sh, shift_host, sizeof(float) * (size_t)N, err, errlen))) {
        cu_scratch_free(st, sc);
        return -1;
    }
    scale_rows_kernel<<<cu_blocks(n), CU_THREADS, 0, st>>>(x, (const float *)sc, (const float *)sh, n, C);
    int rc = cu_launched("scale_rows", err, errlen);
    cu_scratch_free(st, sc);
    cu_scratch_free(st, sh);
    return rc;
}

int cu_scatter_rows(cudaStream_t st, float *x, const float *vals_host, const int32_t *idx_host, int N, int C, int k,
                    char *err, size_t errlen)
{
    if (cu_shape(N < 0 || C < 0 || k < 0, err, errlen, "scatter: negative shape")) return -1;
    // Indices are checked on the host, before anything changes, with cpu.c's message.
    for (size_t i = 0; i < (size_t)N * k; i++)
        if (idx_host[i] < 0 || idx_host[i] >= C) {
            snprintf(err, errlen, "scatter: index %d outside rows of %d", (int)idx_host[i], C);
            return -1;
        }
    size_t n = (size_t)N * C;
    if (n == 0) return 0;
    if (cu_ok(cudaMemsetAsync(x, 0, n * sizeof(float), st), "scatter", err, errlen)) return -1;
    if (k == 0) return 0;
    void *v = NULL, *ix = NULL;
    if (cu_upload_scratch(st, &v, vals_host, sizeof(float) * (size_t)N * k, err, errlen) ||
        cu_upload_scratch(st, &ix, idx_host, sizeof(int32_t) * (size_t)N * k, err, errlen)) {
        cu_scratch_free(st, v);
        return -1;
    }
    scatter_rows_kernel<<<(N + CU_THREADS - 1) / CU_THREADS, CU_THREADS, 0, st>>>(x, (const float *)v,
                                                                                (const int32_t *)ix, N, C, k);
    int rc = cu_launched("scatter", err, errlen);
    cu_scratch_free(st, v);
    cu_scratch_free(st, ix);
    return rc;
}
