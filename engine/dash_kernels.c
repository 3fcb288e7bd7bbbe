/* dash_kernels.c: see dash_kernels.h. Each kernel has a portable version (plain C, the
 * reference) and an AVX-512 one, chosen once at run time: scans test 16 values per mask
 * (SAE activations are mostly zero, and few values can enter a top-k, so most blocks cost one
 * compare), Σ f·x works on 8 doubles per instruction. Multiplications, divisions and
 * additions stay separate instructions in the same order, so both versions give the same
 * bits. */
#include "engine/dash_kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/dashboard.h" // defines: dash_histc_bin
#include "gpu/cpu_kernels.h"  // defines: cpu_kernels

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define DK_X86 1
#include <immintrin.h> // defines: _mm512_loadu_si512, _mm512_test_epi32_mask
#endif

/* ---- non-zeros of a row ---- */

static int nz_generic(const float *row, int n, int32_t *idx)
{
    int k = 0, q = 0;
    for (; q + 8 <= n; q += 8) {
        uint32_t b[8], any = 0;
        memcpy(b, row + q, sizeof b);
        for (int i = 0; i < 8; i++) any |= b[i];
        if (!any) continue;
        for (int i = 0; i < 8; i++)
            if (b[i]) idx[k++] = q + i;
    }
    for (; q < n; q++) {
        uint32_t b;
        memcpy(&b, row + q, sizeof b);
        if (b) idx[k++] = q;
    }
    return k;
}

#ifdef DK_X86
__attribute__((target("avx512f"))) static int nz_avx512(const float *row, int n, int32_t *idx)
{
    int k = 0, q = 0;
    for (; q + 16 <= n; q += 16) {
        __m512i v = _mm512_loadu_si512((const void *)(row + q));
        unsigned m = _mm512_test_epi32_mask(v, v);
        while (m) {
            idx[k++] = q + __builtin_ctz(m);
            m &= m - 1;
        }
    }
    for (; q < n; q++) {
        uint32_t b;
        memcpy(&b, row + q, sizeof b);
        if (b) idx[k++] = q;
    }
    return k;
}

/* The set cpu_kernels.h chose (SAED_CPU_KERNELS can force the portable loops). */
#define have_avx512 (cpu_kernels() == CPU_K_AVX512)

int dk_nonzeros(const float *row, int n, int32_t *idx)
{
    return have_avx512 ? nz_avx512(row, n, idx) : nz_generic(row, n, idx);
}
#else
int dk_nonzeros(const float *row, int n, int32_t *idx) { return nz_generic(row, n, idx); }
#endif

int dk_set_bits(const uint64_t *words, int bit0, int n, int32_t *idx)
{
    int k = 0;
    if (n <= 0) return 0;
    const int end = bit0 + n;
    for (int w = bit0 / 64; w * 64 < end; w++) {
        uint64_t m = words[w];
        if (w * 64 < bit0) m &= ~(uint64_t)0 << (bit0 - w * 64);
        if (end - w * 64 < 64) m &= ((uint64_t)1 << (end - w * 64)) - 1;
        while (m) {
            idx[k++] = w * 64 + __builtin_ctzll(m) - bit0;
            m &= m - 1;
        }
    }
    return k;
}

/* ---- Σ f·x ---- */

typedef double v2d __attribute__((vector_size(16))); /* GCC vector extension: SSE2/NEON or emulated */

static inline v2d LD2(const float *x) { return (v2d){x[0], x[1]}; }

/* Four non-zeros per pass over c, added in order (((c + v0·x0) + v1·x1) + v2·x2) + v3·x3, as
 * four one-row passes would: a quarter of c's loads and stores. */
static void accum_generic(double *c, const float *x, int d, const dk_pv *e, int m)
{
    int i = 0;
    for (; i + 4 <= m; i += 4) {
        const float *x0 = x + (size_t)e[i].p * d, *x1 = x + (size_t)e[i + 1].p * d;
        const float *x2 = x + (size_t)e[i + 2].p * d, *x3 = x + (size_t)e[i + 3].p * d;
        const double v0 = e[i].v, v1 = e[i + 1].v, v2 = e[i + 2].v, v3 = e[i + 3].v;
        int k = 0;
        for (; k + 2 <= d; k += 2) {
            v2d cc;
            memcpy(&cc, c + k, sizeof cc);
            cc = cc + v0 * LD2(x0 + k);
            cc = cc + v1 * LD2(x1 + k);
            cc = cc + v2 * LD2(x2 + k);
            cc = cc + v3 * LD2(x3 + k);
            memcpy(c + k, &cc, sizeof cc);
        }
        for (; k < d; k++) c[k] = c[k] + v0 * x0[k] + v1 * x1[k] + v2 * x2[k] + v3 * x3[k];
    }
    for (; i < m; i++) {
        const float *xr = x + (size_t)e[i].p * d;
        const double v = e[i].v;
        for (int k = 0; k < d; k++) c[k] += v * xr[k];
    }
}

#ifdef DK_X86
__attribute__((target("avx512f"))) static void accum_avx512(double *c, const float *x, int d, const dk_pv *e, int m)
{
    int i = 0;
    for (; i + 4 <= m; i += 4) {
        const float *x0 = x + (size_t)e[i].p * d, *x1 = x + (size_t)e[i + 1].p * d;
        const float *x2 = x + (size_t)e[i + 2].p * d, *x3 = x + (size_t)e[i + 3].p * d;
        const __m512d v0 = _mm512_set1_pd(e[i].v), v1 = _mm512_set1_pd(e[i + 1].v);
        const __m512d v2 = _mm512_set1_pd(e[i + 2].v), v3 = _mm512_set1_pd(e[i + 3].v);
        /* the next group's rows: the hardware cannot guess the jump to them, so ask early */
        const float *n0 = x0, *n1 = x1, *n2 = x2, *n3 = x3;
        if (i + 8 <= m) {
            n0 = x + (size_t)e[i + 4].p * d;
            n1 = x + (size_t)e[i + 5].p * d;
            n2 = x + (size_t)e[i + 6].p * d;
            n3 = x + (size_t)e[i + 7].p * d;
        }
        int k = 0;
        for (; k + 8 <= d; k += 8) {
            if (!(k & 15)) {
                _mm_prefetch((const char *)(n0 + k), _MM_HINT_T0);
                _mm_prefetch((const char *)(n1 + k), _MM_HINT_T0);
                _mm_prefetch((const char *)(n2 + k), _MM_HINT_T0);
                _mm_prefetch((const char *)(n3 + k), _MM_HINT_T0);
            }
            __m512d cc = _mm512_loadu_pd(c + k);
            cc = _mm512_add_pd(cc, _mm512_mul_pd(v0, _mm512_cvtps_pd(_mm256_loadu_ps(x0 + k))));
            cc = _mm512_add_pd(cc, _mm512_mul_pd(v1, _mm512_cvtps_pd(_mm256_loadu_ps(x1 + k))));
            cc = _mm512_add_pd(cc, _mm512_mul_pd(v2, _mm512_cvtps_pd(_mm256_loadu_ps(x2 + k))));
            cc = _mm512_add_pd(cc, _mm512_mul_pd(v3, _mm512_cvtps_pd(_mm256_loadu_ps(x3 + k))));
            _mm512_storeu_pd(c + k, cc);
        }
        const double s0 = e[i].v, s1 = e[i + 1].v, s2 = e[i + 2].v, s3 = e[i + 3].v;
        for (; k < d; k++) c[k] = c[k] + s0 * x0[k] + s1 * x1[k] + s2 * x2[k] + s3 * x3[k];
    }
    for (; i < m; i++) {
        const float *xr = x + (size_t)e[i].p * d;
        const __m512d v = _mm512_set1_pd(e[i].v);
        int k = 0;
        for (; k + 8 <= d; k += 8)
            _mm512_storeu_pd(c + k, _mm512_add_pd(_mm512_loadu_pd(c + k), _mm512_mul_pd(v, _mm512_cvtps_pd(_mm256_loadu_ps(xr + k)))));
        const double s = e[i].v;
        for (; k < d; k++) c[k] += s * xr[k];
    }
}
#endif

void dk_accum_rows(double *c, const float *x, int d, const dk_pv *e, int m)
{
#ifdef DK_X86
    if (have_avx512) {
        accum_avx512(c, x, d, e, m);
        return;
    }
#endif
    accum_generic(c, x, d, e, m);
}

/* ---- row scans for the weight-derived fields ---- */

static int outside_generic(const float *x, int n, float lo, float hi, int32_t *idx)
{
    int k = 0;
    for (int i = 0; i < n; i++)
        if (x[i] > hi || x[i] < lo) idx[k++] = i;
    return k;
}

static int scaled_generic(const float *c, const float *inv, float s, int n, float thr, int32_t *idx)
{
    int k = 0;
    for (int i = 0; i < n; i++)
        if (c[i] * s * inv[i] >= thr) idx[k++] = i;
    return k;
}

static void minmax_generic(const float *x, int n, float *lo, float *hi)
{
    float l = INFINITY, h = -INFINITY;
    for (int i = 0; i < n; i++) {
        float v = x[i];
        if (v != v) continue;
        if (v < l) l = v;
        if (v > h) h = v;
    }
    *lo = l;
    *hi = h;
}

static void histc_generic(const float *x, int n, float lo, float hi, int bins, int64_t *h)
{
    for (int i = 0; i < n; i++)
        if (x[i] == x[i]) h[dash_histc_bin(x[i], lo, hi, bins)]++;
}

#ifdef DK_X86
__attribute__((target("avx512f"))) static int outside_avx512(const float *x, int n, float lo, float hi, int32_t *idx)
{
    const __m512 L = _mm512_set1_ps(lo), H = _mm512_set1_ps(hi);
    int k = 0, i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i);
        unsigned m = _mm512_cmp_ps_mask(v, H, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v, L, _CMP_LT_OQ);
        while (m) {
            idx[k++] = i + __builtin_ctz(m);
            m &= m - 1;
        }
    }
    for (; i < n; i++)
        if (x[i] > hi || x[i] < lo) idx[k++] = i;
    return k;
}

__attribute__((target("avx512f"))) static int scaled_avx512(const float *c, const float *inv, float s, int n, float thr,
                                                             int32_t *idx)
{
    const __m512 S = _mm512_set1_ps(s), R = _mm512_set1_ps(thr);
    int k = 0, i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_mul_ps(_mm512_mul_ps(_mm512_loadu_ps(c + i), S), _mm512_loadu_ps(inv + i));
        unsigned m = _mm512_cmp_ps_mask(v, R, _CMP_GE_OQ);
        while (m) {
            idx[k++] = i + __builtin_ctz(m);
            m &= m - 1;
        }
    }
    for (; i < n; i++)
        if (c[i] * s * inv[i] >= thr) idx[k++] = i;
    return k;
}

__attribute__((target("avx512f"))) static void minmax_avx512(const float *x, int n, float *lo, float *hi)
{
    __m512 L = _mm512_set1_ps(INFINITY), H = _mm512_set1_ps(-INFINITY);
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i);
        __mmask16 ok = _mm512_cmp_ps_mask(v, v, _CMP_ORD_Q);
        L = _mm512_mask_min_ps(L, ok, L, v);
        H = _mm512_mask_max_ps(H, ok, H, v);
    }
    float l = _mm512_reduce_min_ps(L), h = _mm512_reduce_max_ps(H);
    for (; i < n; i++) {
        float v = x[i];
        if (v != v) continue;
        if (v < l) l = v;
        if (v > h) h = v;
    }
    /* min/max of +0 and -0 may pick either; the scalar loop keeps the first: redo it then */
    if (l == 0 || h == 0) {
        minmax_generic(x, n, lo, hi);
        return;
    }
    *lo = l;
    *hi = h;
}

/* Bins 16 at a time with dash_histc_bin's float operations; counts go to four interleaved
 * sub-histograms so that runs of equal bins do not wait on each other's increments. */
__attribute__((target("avx512f"))) static void histc_avx512(const float *x, int n, float lo, float hi, int bins, int64_t *h)
{
    uint32_t stack[4 * 64], *sub = bins <= 64 ? stack : calloc(4 * (size_t)bins, sizeof *sub);
    if (!sub) {
        histc_generic(x, n, lo, hi, bins, h);
        return;
    }
    if (bins <= 64) memset(stack, 0, sizeof stack);
    const __m512 LO = _mm512_set1_ps(lo), FB = _mm512_set1_ps((float)bins), RANGE = _mm512_set1_ps(hi - lo);
    const __m512i TOP = _mm512_set1_epi32(bins - 1);
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i);
        __mmask16 ok = _mm512_cmp_ps_mask(v, v, _CMP_ORD_Q);
        __m512 q = _mm512_div_ps(_mm512_mul_ps(_mm512_sub_ps(v, LO), FB), RANGE);
        __mmask16 pos = _mm512_cmp_ps_mask(q, _mm512_setzero_ps(), _CMP_GT_OQ);
        __mmask16 top = _mm512_cmp_ps_mask(q, FB, _CMP_GE_OQ);
        __m512i b = _mm512_maskz_cvttps_epi32(pos, q);
        b = _mm512_mask_mov_epi32(b, pos & top, TOP);
        int32_t bb[16];
        _mm512_storeu_si512((void *)bb, b);
        for (int j = 0; j < 16; j++)
            if (ok >> j & 1) sub[(j & 3) * bins + bb[j]]++;
    }
    for (int j = 0; j < 4; j++)
        for (int b = 0; b < bins; b++) h[b] += sub[j * bins + b];
    if (sub != stack) free(sub);
    for (; i < n; i++)
        if (x[i] == x[i]) h[dash_histc_bin(x[i], lo, hi, bins)]++;
}

int dk_outside(const float *x, int n, float lo, float hi, int32_t *idx)
{
    return have_avx512 ? outside_avx512(x, n, lo, hi, idx) : outside_generic(x, n, lo, hi, idx);
}

int dk_scaled_at_least(const float *c, const float *inv, float s, int n, float thr, int32_t *idx)
{
    return have_avx512 ? scaled_avx512(c, inv, s, n, thr, idx) : scaled_generic(c, inv, s, n, thr, idx);
}

void dk_minmax(const float *x, int n, float *lo, float *hi)
{
    if (have_avx512) minmax_avx512(x, n, lo, hi);
    else minmax_generic(x, n, lo, hi);
}

void dk_histc(const float *x, int n, float lo, float hi, int bins, int64_t *h)
{
    if (have_avx512) histc_avx512(x, n, lo, hi, bins, h);
    else histc_generic(x, n, lo, hi, bins, h);
}
#else
int dk_outside(const float *x, int n, float lo, float hi, int32_t *idx) { return outside_generic(x, n, lo, hi, idx); }
int dk_scaled_at_least(const float *c, const float *inv, float s, int n, float thr, int32_t *idx)
{
    return scaled_generic(c, inv, s, n, thr, idx);
}
void dk_minmax(const float *x, int n, float *lo, float *hi) { minmax_generic(x, n, lo, hi); }
void dk_histc(const float *x, int n, float lo, float hi, int bins, int64_t *h) { histc_generic(x, n, lo, hi, bins, h); }
#endif
