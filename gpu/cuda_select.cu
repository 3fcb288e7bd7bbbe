// cuda_select.cu: the ops whose results go to host memory — per-row argmax, per-row top k,
// and the non-zeros of a column range as CSR. Orders follow cpu.c exactly: larger value first,
// equal values by lower index (−0 equals +0, as float comparison has it), non-zeros row by row
// with columns ascending.
#include <stdlib.h>

#include "gpu/cuda_ops.h"

#define TOPK_MAX 2048 // larger k: the rows go to the host and cpu.c's algorithm runs there

// ---- kernels ----

// A float as an unsigned key whose order is the float order (−0 folded onto +0).
__device__ static inline uint32_t fkey(float v)
{
    uint32_t u = __float_as_uint(v == 0.0f ? 0.0f : v);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// (v, i) ranks before (w, j): larger value, or equal value and lower index.
__device__ static inline int ranks_before(float v, int i, float w, int j) { return v > w || (v == w && i < j); }

// One block per row: the first largest value's index.
__global__ void argmax_kernel(int32_t *idx, const float *x, int C)
{
    __shared__ float sv[CU_THREADS];
    __shared__ int si[CU_THREADS];
    const float *row = x + (size_t)blockIdx.x * C;
    float bv = row[0];
    int bi = 0;
    for (int i = threadIdx.x; i < C; i += blockDim.x)
        if (ranks_before(row[i], i, bv, bi)) {
            bv = row[i];
            bi = i;
        }
    sv[threadIdx.x] = bv;
    si[threadIdx.x] = bi;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s && ranks_before(sv[threadIdx.x + s], si[threadIdx.x + s], sv[threadIdx.x], si[threadIdx.x])) {
            sv[threadIdx.x] = sv[threadIdx.x + s];
            si[threadIdx.x] = si[threadIdx.x + s];
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) idx[blockIdx.x] = si[0];
}

// Exclusive prefix of a 0/1 flag over the block in thread order; *total gets the sum. sh:
// CU_THREADS/32 ints.
__device__ static int block_rank(int flag, int *sh, int *total)
{
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    unsigned ball = __ballot_sync(0xffffffffu, flag);
    __syncthreads(); // sh may still be read from a previous call
    if (lane == 0) sh[w] = __popc(ball);
    __syncthreads();
    int before = 0, all = 0;
    for (int i = 0; i < (int)(blockDim.x >> 5); i++) {
        if (i < w) before += sh[i];
        all += sh[i];
    }
    *total = all;
    return before + __popc(ball & ((1u << lane) - 1u));
}

// One block per row: radix select of the k-th largest key (four 8-bit digits from the top),
// then the keys above it and the lowest-index keys equal to it, then a bitonic sort of those
// k (padded to kp, a power of two) by key descending, index ascending.
__global__ void topk_kernel(float *vals, int32_t *idx, const float *x, int C, int k, int kp)
{
    extern __shared__ uint32_t sm[]; // kp keys, then kp indices
    uint32_t *skey = sm;
    int32_t *sidx = (int32_t *)(sm + kp);
    __shared__ unsigned hist[256];
    __shared__ uint32_t s_prefix;
    __shared__ int s_need, s_count;
    __shared__ int sh[CU_THREADS / 32];
    const float *row = x + (size_t)blockIdx.x * C;
    uint32_t prefix = 0, mask = 0;
    int need = k; // how many of the keys matching prefix under mask are still to be taken
    for (int shift = 24; shift >= 0; shift -= 8) {
        for (int i = threadIdx.x; i < 256; i += blockDim.x) hist[i] = 0;
        __syncthreads();
        for (int i = threadIdx.x; i < C; i += blockDim.x) {
            uint32_t key = fkey(row[i]);
            if ((key & mask) == prefix) atomicAdd(&hist[(key >> shift) & 255u], 1u);
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            int cum = 0, d = 255;
            for (; d > 0 && cum + (int)hist[d] < need; d--) cum += (int)hist[d];
            s_prefix = prefix | ((uint32_t)d << shift);
            s_need = need - cum;
        }
        __syncthreads();
        prefix = s_prefix;
        need = s_need;
        mask |= 255u << shift;
    }
    // prefix is now the k-th largest key; k − need keys lie above it.
    if (threadIdx.x == 0) s_count = 0;
    __syncthreads();
    for (int i = threadIdx.x; i < C; i += blockDim.x) {
        uint32_t key = fkey(row[i]);
        if (key > prefix) {
            int p = atomicAdd(&s_count, 1);
            skey[p] = key;
            sidx[p] = i;
        }
    }
    int base = k - need, taken = 0;
    for (int c0 = 0; c0 < C && taken < need; c0 += blockDim.x) {
        int i = c0 + threadIdx.x, total;
        int flag = i < C && fkey(row[i]) == prefix;
        int r = block_rank(flag, sh, &total);
        if (flag && taken + r < need) {
            skey[base + taken + r] = prefix;
            sidx[base + taken + r] = i;
        }
        taken += total; // the same on every thread, so the loop ends together
    }
    for (int i = k + threadIdx.x; i < kp; i += blockDim.x) {
        skey[i] = 0;
        sidx[i] = 0x7fffffff;
    }
    __syncthreads();
    for (int size = 2; size <= kp; size <<= 1)
        for (int stride = size >> 1; stride > 0; stride >>= 1) {
            for (int i = threadIdx.x; i < kp; i += blockDim.x) {
                int j = i ^ stride;
                if (j > i) {
                    // descending segments where i & size is 0, so that the whole ends descending
                    int first_is_i = skey[i] > skey[j] || (skey[i] == skey[j] && sidx[i] < sidx[j]);
                    int want_i_first = (i & size) == 0;
                    if (first_is_i != want_i_first) {
                        uint32_t tk = skey[i];
                        skey[i] = skey[j];
                        skey[j] = tk;
                        int32_t ti = sidx[i];
                        sidx[i] = sidx[j];
                        sidx[j] = ti;
                    }
                }
            }
            __syncthreads();
        }
    for (int j = threadIdx.x; j < k; j += blockDim.x) {
        vals[(size_t)blockIdx.x * k + j] = row[sidx[j]];
        idx[(size_t)blockIdx.x * k + j] = sidx[j];
    }
}

// One block per row: the count of values > 0 in the row's column range.
__global__ void nz_count_kernel(int64_t *counts, const float *x, int ld, int c0, int F)
{
    __shared__ int sh[CU_THREADS / 32];
    const float *row = x + (size_t)blockIdx.x * ld + c0;
    int n = 0;
    for (int j = threadIdx.x; j < F; j += blockDim.x) n += row[j] > 0.0f;
    for (int o = 16; o > 0; o >>= 1) n += __shfl_down_sync(0xffffffffu, n, o);
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = n;
    __syncthreads();
    if (threadIdx.x == 0) {
        int64_t t = 0;
        for (int i = 0; i < (int)(blockDim.x >> 5); i++) t += sh[i];
        counts[blockIdx.x] = t;
    }
}

// One block per row: the row's values > 0, columns ascending, from offset rowptr[row].
__global__ void nz_write_kernel(int32_t *cols, float *vals, const int64_t *rowptr, const float *x, int ld, int c0, int F)
{
    __shared__ int sh[CU_THREADS / 32];
    const float *row = x + (size_t)blockIdx.x * ld + c0;
    int64_t o = rowptr[blockIdx.x];
    for (int j0 = 0; j0 < F; j0 += blockDim.x) {
        int j = j0 + threadIdx.x, total;
        float v = j < F ? row[j] : 0.0f;
        int flag = v > 0.0f;
        int r = block_rank(flag, sh, &total);
        if (flag) {
            cols[o + r] = c0 + j;
            vals[o + r] = v;
        }
        o += total;
    }
}

// ---- host fallback for a k beyond TOPK_MAX: cpu.c's insertion buffer ----

static void topk_host_row(const float *x, int C, int k, float *v, int32_t *ix)
{
    int n = 0;
    for (int i = 0; i < C; i++) {
        if (n == k && !(x[i] > v[n - 1] || (x[i] == v[n - 1] && i < ix[n - 1]))) continue;
        int p = n < k ? n++ : n - 1;
        while (p > 0 && (x[i] > v[p - 1] || (x[i] == v[p - 1] && i < ix[p - 1]))) {
            v[p] = v[p - 1];
            ix[p] = ix[p - 1];
            p--;
        }
        v[p] = x[i];
        ix[p] = i;
    }
}

// ---- launchers ----

int cu_argmax_rows(cudaStream_t st, int32_t *idx_host, const float *x, int N, int C, char *err, size_t errlen)
{
    if (cu_shape(N < 0 || C < 1, err, errlen, "argmax: bad shape")) return -1;
    if (N == 0) return 0;
    void *d = NULL;
    if (cu_scratch(st, &d, sizeof(int32_t) * (size_t)N, err, errlen)) return -1;
    argmax_kernel<<<N, CU_THREADS, 0, st>>>((int32_t *)d, x, C);
    int rc = cu_launched("argmax", err, errlen);
    if (rc == 0)
        rc = cu_ok(cudaMemcpyAsync(idx_host, d, sizeof(int32_t) * (size_t)N, cudaMemcpyDeviceToHost, st), "argmax",
                   err, errlen);
    cu_scratch_free(st, d);
    return rc ? rc : cu_ok(cudaStreamSynchronize(st), "argmax", err, errlen);
}

int cu_topk_rows(cudaStream_t st, float *vals_host, int32_t *idx_host, const float *x, int N, int C, int k, char *err,
                 size_t errlen)
{
    if (k < 1 || k > C) {
        snprintf(err, errlen, "topk: k=%d for rows of %d", k, C);
        return -1;
    }
    if (N <= 0) return 0;
    if (k > TOPK_MAX) {
        // Rare (SAE top-k uses k in the tens): rows in chunks of ~64 MB to the host.
        size_t per = (size_t)C, chunk = ((size_t)16 << 20) / per;
        if (chunk < 1) chunk = 1;
        float *h = (float *)malloc(sizeof(float) * per * (chunk < (size_t)N ? chunk : (size_t)N));
        if (!h) {
            snprintf(err, errlen, "topk: out of host memory");
            return -1;
        }
        int rc = 0;
        for (size_t r0 = 0; r0 < (size_t)N && rc == 0; r0 += chunk) {
            size_t n = (size_t)N - r0 < chunk ? (size_t)N - r0 : chunk;
            rc = cu_ok(cudaMemcpyAsync(h, x + r0 * per, sizeof(float) * per * n, cudaMemcpyDeviceToHost, st), "topk",
                       err, errlen);
            if (rc == 0) rc = cu_ok(cudaStreamSynchronize(st), "topk", err, errlen);
            for (size_t r = 0; rc == 0 && r < n; r++)
                topk_host_row(h + r * per, C, k, vals_host + (r0 + r) * k, idx_host + (r0 + r) * k);
        }
        free(h);
        return rc;
    }
    int kp = 1;
    while (kp < k) kp <<= 1;
    void *dv = NULL, *di = NULL;
    if (cu_scratch(st, &dv, sizeof(float) * (size_t)N * k, err, errlen) ||
        cu_scratch(st, &di, sizeof(int32_t) * (size_t)N * k, err, errlen)) {
        cu_scratch_free(st, dv);
        return -1;
    }
    topk_kernel<<<N, CU_THREADS, (size_t)kp * 8, st>>>((float *)dv, (int32_t *)di, x, C, k, kp);
    int rc = cu_launched("topk", err, errlen);
    if (rc == 0)
        rc = cu_ok(cudaMemcpyAsync(vals_host, dv, sizeof(float) * (size_t)N * k, cudaMemcpyDeviceToHost, st), "topk", err,
                   errlen);
    if (rc == 0)
        rc = cu_ok(cudaMemcpyAsync(idx_host, di, sizeof(int32_t) * (size_t)N * k, cudaMemcpyDeviceToHost, st), "topk",
                   err, errlen);
    cu_scratch_free(st, dv);
    cu_scratch_free(st, di);
    return rc ? rc : cu_ok(cudaStreamSynchronize(st), "topk", err, errlen);
}

int cu_nonzeros(cudaStream_t st, int64_t *rowptr, int32_t *cols, float *vals, size_t cap, const float *x, int N, int ld,
                int c0, int F, char *err, size_t errlen)
{
    if (N < 0 || F < 0 || c0 < 0 || (N > 0 && ld < c0 + F)) {
        snprintf(err, errlen, "nonzeros: columns [%d, %d+%d) of rows of %d", c0, c0, F, ld);
        return -1;
    }
    rowptr[0] = 0;
    if (N == 0) return 0;
    void *cnt = NULL, *dc = NULL, *dv = NULL;
    int rc = cu_scratch(st, &cnt, sizeof(int64_t) * ((size_t)N + 1), err, errlen);
    if (rc == 0) {
        nz_count_kernel<<<N, CU_THREADS, 0, st>>>((int64_t *)cnt, x, ld, c0, F);
        rc = cu_launched("nonzeros", err, errlen);
    }
    if (rc == 0)
        rc = cu_ok(cudaMemcpyAsync(rowptr + 1, cnt, sizeof(int64_t) * (size_t)N, cudaMemcpyDeviceToHost, st), "nonzeros",
                   err, errlen);
    if (rc == 0) rc = cu_ok(cudaStreamSynchronize(st), "nonzeros", err, errlen);
    if (rc == 0)
        for (int r = 0; r < N; r++) rowptr[r + 1] += rowptr[r];
    const size_t total = rc == 0 ? (size_t)rowptr[N] : 0;
    if (rc == 0 && total > 0 && total <= cap) {
        // the offsets go back up (the counts' scratch holds them), then one pass writes
        rc = cu_ok(cudaMemcpyAsync(cnt, rowptr, sizeof(int64_t) * (size_t)N, cudaMemcpyHostToDevice, st), "nonzeros",
                   err, errlen);
        if (rc == 0) rc = cu_scratch(st, &dc, sizeof(int32_t) * total, err, errlen);
        if (rc == 0) rc = cu_scratch(st, &dv, sizeof(float) * total, err, errlen);
        if (rc == 0) {
            nz_write_kernel<<<N, CU_THREADS, 0, st>>>((int32_t *)dc, (float *)dv, (const int64_t *)cnt, x, ld, c0, F);
            rc = cu_launched("nonzeros", err, errlen);
        }
        if (rc == 0)
            rc = cu_ok(cudaMemcpyAsync(cols, dc, sizeof(int32_t) * total, cudaMemcpyDeviceToHost, st), "nonzeros", err,
                       errlen);
        if (rc == 0)
            rc = cu_ok(cudaMemcpyAsync(vals, dv, sizeof(float) * total, cudaMemcpyDeviceToHost, st), "nonzeros", err,
                       errlen);
        if (rc == 0) rc = cu_ok(cudaStreamSynchronize(st), "nonzeros", err, errlen);
    }
    cu_scratch_free(st, cnt);
    cu_scratch_free(st, dc);
    cu_scratch_free(st, dv);
    return rc;
}
