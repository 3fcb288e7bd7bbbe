/* cpu_avx2.c: see cpu_avx2.h. Compiled for every x86-64 build with the target attribute, so
 * the program runs on processors without AVX2 (cpu_kernels.h checks before anything calls
 * these). Tails shorter than 8 use masked loads and stores. */
#include "gpu/cpu_avx2.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h> // defines: _mm256_* intrinsics

#define AVX2 __attribute__((target("avx2,fma")))
#define INLINE static inline __attribute__((always_inline))

/* Lanes [0, n) on (n clamped to [0, 8]). */
AVX2 INLINE __m256i mask8(int n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* cpu.c's exp_poly on 8 lanes; roundf as trunc(t + copysign(0.5⁻, t)), exact for every float. */
AVX2 INLINE __m256 exp_poly8(__m256 x)
{
    const __m256 half_m = _mm256_set1_ps(0.49999997f), sign = _mm256_set1_ps(-0.0f);
    __m256 t = _mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f));
    __m256 bias = _mm256_or_ps(half_m, _mm256_and_ps(t, sign));
    __m256 n = _mm256_round_ps(_mm256_add_ps(t, bias), _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    __m256 f = _mm256_sub_ps(t, n);
    __m256 p = _mm256_set1_ps(1.5403530393381609e-4f);
    p = _mm256_add_ps(_mm256_mul_ps(p, f), _mm256_set1_ps(1.3333558146428443e-3f));
    p = _mm256_add_ps(_mm256_mul_ps(p, f), _mm256_set1_ps(9.6181291076284772e-3f));
    p = _mm256_add_ps(_mm256_mul_ps(p, f), _mm256_set1_ps(5.5504108664821580e-2f));
    p = _mm256_add_ps(_mm256_mul_ps(p, f), _mm256_set1_ps(2.4022650695910071e-1f));
    p = _mm256_add_ps(_mm256_mul_ps(p, f), _mm256_set1_ps(6.9314718055994531e-1f));
    p = _mm256_add_ps(_mm256_mul_ps(p, f), _mm256_set1_ps(1.0f));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvttps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

AVX2 INLINE __m256 gelu8(__m256 x)
{
    const __m256 one = _mm256_set1_ps(1.0f), nine = _mm256_set1_ps(9.0f), mnine = _mm256_set1_ps(-9.0f);
    __m256 c = _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.044715f), x), x), x);
    __m256 u = _mm256_mul_ps(_mm256_set1_ps(0.7978845608028654f), _mm256_add_ps(x, c));
    /* u > 9 ? 9 : (u < -9 ? -9 : u), NaN kept */
    u = _mm256_blendv_ps(u, mnine, _mm256_cmp_ps(u, mnine, _CMP_LT_OQ));
    u = _mm256_blendv_ps(u, nine, _mm256_cmp_ps(u, nine, _CMP_GT_OQ));
    __m256 e = exp_poly8(_mm256_mul_ps(_mm256_set1_ps(2.0f), u));
    __m256 th = _mm256_sub_ps(one, _mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(e, one)));
    return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), x), _mm256_add_ps(one, th));
}

AVX2 void cpu_avx2_gelu(float *out, const float *in, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, gelu8(_mm256_loadu_ps(in + i)));
    if (i < n) {
        __m256i m = mask8((int)(n - i));
        _mm256_maskstore_ps(out + i, m, gelu8(_mm256_maskload_ps(in + i, m)));
    }
}

AVX2 void cpu_avx2_add(float *out, const float *a, const float *b, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, _mm256_add_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)));
    for (; i < n; i++) out[i] = a[i] + b[i];
}

AVX2 void cpu_avx2_add_row(float *x, const float *bias, int C)
{
    int i = 0;
    for (; i + 8 <= C; i += 8) _mm256_storeu_ps(x + i, _mm256_add_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(bias + i)));
    for (; i < C; i++) x[i] += bias[i];
}

AVX2 void cpu_avx2_ln_row(float *o, const float *x, float m, float rstd, const float *w, const float *b, int C)
{
    const __m256 M = _mm256_set1_ps(m), R = _mm256_set1_ps(rstd);
    int i = 0;
    for (; i + 8 <= C; i += 8) {
        __m256 v = _mm256_mul_ps(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), M), R), _mm256_loadu_ps(w + i));
        _mm256_storeu_ps(o + i, _mm256_add_ps(v, _mm256_loadu_ps(b + i)));
    }
    for (; i < C; i++) o[i] = (x[i] - m) * rstd * w[i] + b[i];
}

AVX2 void cpu_avx2_scale_row(float *o, const float *x, float inv, const float *w, int C)
{
    const __m256 I = _mm256_set1_ps(inv);
    int i = 0;
    if (w) {
        for (; i + 8 <= C; i += 8)
            _mm256_storeu_ps(o + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), I), _mm256_loadu_ps(w + i)));
        for (; i < C; i++) o[i] = x[i] * inv * w[i];
    } else {
        for (; i + 8 <= C; i += 8) _mm256_storeu_ps(o + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), I));
        for (; i < C; i++) o[i] = x[i] * inv;
    }
}

AVX2 void cpu_avx2_masked_relu_row(float *o, const float *h, const float *thr, const float *gate, int C)
{
    const __m256 z = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= C; i += 8) {
        __m256 v = _mm256_loadu_ps(h + i), on = _mm256_cmp_ps(v, z, _CMP_GT_OQ);
        if (thr) on = _mm256_and_ps(on, _mm256_cmp_ps(v, _mm256_loadu_ps(thr + i), _CMP_GT_OQ));
        if (gate) on = _mm256_and_ps(on, _mm256_cmp_ps(_mm256_loadu_ps(gate + i), z, _CMP_GT_OQ));
        _mm256_storeu_ps(o + i, _mm256_and_ps(on, v));
    }
    for (; i < C; i++) {
        int on = h[i] > 0.0f && (!thr || h[i] > thr[i]) && (!gate || gate[i] > 0.0f);
        o[i] = on ? h[i] : 0.0f;
    }
}

/* 8 lanes of the encode epilogue; returns the lanes kept (their bits are non-zero: a kept v is > 0). */
AVX2 INLINE unsigned bias_relu8(float *x, const float *bias, const float *thr, __m256i m, int full)
{
    __m256 v = full ? _mm256_loadu_ps(x) : _mm256_maskload_ps(x, m);
    v = _mm256_add_ps(v, full ? _mm256_loadu_ps(bias) : _mm256_maskload_ps(bias, m));
    __m256 on = _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GT_OQ);
    if (thr) on = _mm256_and_ps(on, _mm256_cmp_ps(v, full ? _mm256_loadu_ps(thr) : _mm256_maskload_ps(thr, m), _CMP_GT_OQ));
    if (!full) on = _mm256_and_ps(on, _mm256_castsi256_ps(m));
    v = _mm256_and_ps(on, v);
    if (full) _mm256_storeu_ps(x, v);
    else _mm256_maskstore_ps(x, m, v);
    return (unsigned)_mm256_movemask_ps(on);
}

AVX2 void cpu_avx2_bias_relu_map_row(float *x, const float *bias, const float *thr, int C, uint64_t *map)
{
    const __m256i all = _mm256_set1_epi32(-1);
    int i = 0;
    for (; i + 64 <= C; i += 64) {
        uint64_t w = 0;
        for (int q = 0; q < 8; q++)
            w |= (uint64_t)bias_relu8(x + i + 8 * q, bias + i + 8 * q, thr ? thr + i + 8 * q : NULL, all, 1) << (8 * q);
        if (map) map[i / 64] = w;
    }
    if (i < C) {
        uint64_t w = 0;
        for (int q = 0; i + 8 * q < C; q++) {
            int n = C - (i + 8 * q);
            w |= (uint64_t)bias_relu8(x + i + 8 * q, bias + i + 8 * q, thr ? thr + i + 8 * q : NULL, mask8(n), n >= 8)
                 << (8 * q);
        }
        if (map) map[i / 64] = w;
    }
}

/* ---- attention: cpu_avx512.c's blocking with 8-lane vectors (16 registers: 4 rows × 2) ---- */

/* Scores of R query rows (t..t+R-1) against keys [s0, s0 + 8·nb): the rows share every key
 * load. Each score is q·k summed in d order (mul, then add) whatever R is. */
AVX2 INLINE void scores_block(float *S, const float *q, int ldq, const float *kT, int W, int Tk, int hd, __m256 sc,
                              int t, int s0, const int R, const int nb)
{
    __m256 a[4][2];
    _Pragma("GCC unroll 4")
    for (int r = 0; r < R; r++)
        _Pragma("GCC unroll 2")
        for (int b = 0; b < nb; b++) a[r][b] = _mm256_setzero_ps();
    for (int d = 0; d < hd; d++) {
        const float *kr = kT + (size_t)d * W + s0;
        __m256 kv[2];
        _Pragma("GCC unroll 2")
        for (int b = 0; b < nb; b++) kv[b] = _mm256_loadu_ps(kr + 8 * b);
        _Pragma("GCC unroll 4")
        for (int r = 0; r < R; r++) {
            __m256 qd = _mm256_set1_ps(q[(size_t)(t + r) * ldq + d]);
            _Pragma("GCC unroll 2")
            for (int b = 0; b < nb; b++) a[r][b] = _mm256_add_ps(a[r][b], _mm256_mul_ps(qd, kv[b]));
        }
    }
    _Pragma("GCC unroll 4")
    for (int r = 0; r < R; r++) {
        float *out = S + (size_t)(t + r) * Tk + s0;
        _Pragma("GCC unroll 2")
        for (int b = 0; b < nb; b++) {
            int n = Tk - (s0 + 8 * b);
            if (n >= 8) _mm256_storeu_ps(out + 8 * b, _mm256_mul_ps(a[r][b], sc));
            else _mm256_maskstore_ps(out + 8 * b, mask8(n), _mm256_mul_ps(a[r][b], sc));
        }
    }
}

/* Keys 0..last in blocks of up to 16 for R rows; a row may get scores past its own last key
 * (inside the blocks of the group's last row): softmax zeroes them. */
AVX2 INLINE void scores_rows(float *S, const float *q, int ldq, const float *kT, int W, int Tk, int hd, __m256 sc,
                             int t, int last, const int R)
{
    for (int s0 = 0; s0 <= last; s0 += 16) {
        if (last - s0 >= 8) scores_block(S, q, ldq, kT, W, Tk, hd, sc, t, s0, R, 2);
        else scores_block(S, q, ldq, kT, W, Tk, hd, sc, t, s0, R, 1);
    }
}

AVX2 void cpu_avx2_attn_scores(float *S, const float *q, int ldq, const float *k, int ldk, int Tq, int Tk, int hd,
                               float scale, float *kT)
{
    const int W = (Tk + 15) / 16 * 16; /* kT row length */
    for (int d = 0; d < hd; d++) {
        float *row = kT + (size_t)d * W;
        for (int s = 0; s < Tk; s++) row[s] = k[(size_t)s * ldk + d];
        for (int s = Tk; s < W; s++) row[s] = 0.0f;
    }
    const __m256 sc = _mm256_set1_ps(scale);
    int t = 0;
    for (; t + 4 <= Tq; t += 4) scores_rows(S, q, ldq, kT, W, Tk, hd, sc, t, Tk - Tq + t + 3, 4);
    for (; t < Tq; t++) scores_rows(S, q, ldq, kT, W, Tk, hd, sc, t, Tk - Tq + t, 1);
}

AVX2 void cpu_avx2_attn_softmax(float *S, int Tq, int Tk)
{
    const __m256 lo = _mm256_set1_ps(-87.0f);
    for (int t = 0; t < Tq; t++) {
        float *row = S + (size_t)t * Tk;
        int n = Tk - Tq + t + 1, s; /* keys 0..last */
        __m256 mx = _mm256_set1_ps(row[0]);
        for (s = 0; s + 8 <= n; s += 8) mx = _mm256_max_ps(mx, _mm256_loadu_ps(row + s));
        if (s < n) {
            __m256i m = mask8(n - s);
            mx = _mm256_max_ps(mx, _mm256_blendv_ps(mx, _mm256_maskload_ps(row + s, m), _mm256_castsi256_ps(m)));
        }
        float lane[8];
        _mm256_storeu_ps(lane, mx);
        float big = lane[0];
        for (int i = 1; i < 8; i++) big = lane[i] > big ? lane[i] : big;
        const __m256 M = _mm256_set1_ps(big);
        double sum = 0;
        for (s = 0; s < n; s += 8) {
            __m256i m = mask8(n - s);
            __m256 e = exp_poly8(_mm256_max_ps(_mm256_sub_ps(_mm256_maskload_ps(row + s, m), M), lo));
            _mm256_maskstore_ps(row + s, m, e);
            float tmp[8];
            _mm256_storeu_ps(tmp, e);
            for (int i = 0; i < 8 && s + i < n; i++) sum += tmp[i];
        }
        const __m256 inv = _mm256_set1_ps((float)(1.0 / sum));
        for (s = 0; s < n; s += 8) {
            __m256i m = mask8(n - s);
            _mm256_maskstore_ps(row + s, m, _mm256_mul_ps(_mm256_maskload_ps(row + s, m), inv));
        }
        for (s = n; s < Tk; s++) row[s] = 0.0f;
    }
}

/* Weighted sums of R query rows (t..t+R-1) over value columns [d0, d0 + 8·nb): each output is
 * Σ p·v over its own keys in increasing order (mul, then add). */
AVX2 INLINE void values_acc(__m256 a[4][2], const float *P, const float *vr, const __m256i *m, int Tk, int t, int s,
                            int r0, const int R, const int nb)
{
    __m256 vv[2];
    _Pragma("GCC unroll 2")
    for (int b = 0; b < nb; b++) vv[b] = _mm256_maskload_ps(vr + 8 * b, m[b]);
    _Pragma("GCC unroll 4")
    for (int r = 0; r < R; r++) {
        if (r < r0) continue;
        __m256 ps = _mm256_set1_ps(P[(size_t)(t + r) * Tk + s]);
        _Pragma("GCC unroll 2")
        for (int b = 0; b < nb; b++) a[r][b] = _mm256_add_ps(a[r][b], _mm256_mul_ps(ps, vv[b]));
    }
}

AVX2 INLINE void values_rows(float *z, int ldz, const float *P, const float *v, int ldv, int Tk, int hd, int t,
                             int last, int d0, const int R, const int nb)
{
    __m256i m[2] = {mask8(hd - d0), mask8(hd - d0 - 8)};
    __m256 a[4][2];
    _Pragma("GCC unroll 4")
    for (int r = 0; r < R; r++)
        _Pragma("GCC unroll 2")
        for (int b = 0; b < nb; b++) a[r][b] = _mm256_setzero_ps();
    int s = 0;
    for (; s <= last; s++) values_acc(a, P, v + (size_t)s * ldv + d0, m, Tk, t, s, 0, R, nb);
    /* keys past row t's last: rows r >= s - last only */
    for (; s <= last + R - 1; s++) values_acc(a, P, v + (size_t)s * ldv + d0, m, Tk, t, s, s - last, R, nb);
    _Pragma("GCC unroll 4")
    for (int r = 0; r < R; r++) {
        float *out = z + (size_t)(t + r) * ldz + d0;
        _Pragma("GCC unroll 2")
        for (int b = 0; b < nb; b++) _mm256_maskstore_ps(out + 8 * b, m[b], a[r][b]);
    }
}

AVX2 void cpu_avx2_attn_values(float *z, int ldz, const float *P, const float *v, int ldv, int Tq, int Tk, int hd)
{
    for (int d0 = 0; d0 < hd; d0 += 16) {
        int t = 0;
        if (hd - d0 > 8) {
            for (; t + 4 <= Tq; t += 4) values_rows(z, ldz, P, v, ldv, Tk, hd, t, Tk - Tq + t, d0, 4, 2);
            for (; t < Tq; t++) values_rows(z, ldz, P, v, ldv, Tk, hd, t, Tk - Tq + t, d0, 1, 2);
        } else {
            for (; t + 4 <= Tq; t += 4) values_rows(z, ldz, P, v, ldv, Tk, hd, t, Tk - Tq + t, d0, 4, 1);
            for (; t < Tq; t++) values_rows(z, ldz, P, v, ldv, Tk, hd, t, Tk - Tq + t, d0, 1, 1);
        }
    }
}
#else
/* Not x86-64 with GCC: cpu_kernels.h never picks AVX2; these exist for the linker only. */
void cpu_avx2_gelu(float *out, const float *in, size_t n) { (void)out; (void)in; (void)n; }
void cpu_avx2_add(float *out, const float *a, const float *b, size_t n) { (void)out; (void)a; (void)b; (void)n; }
void cpu_avx2_add_row(float *x, const float *bias, int C) { (void)x; (void)bias; (void)C; }
void cpu_avx2_ln_row(float *o, const float *x, float m, float rstd, const float *w, const float *b, int C)
{
    (void)o; (void)x; (void)m; (void)rstd; (void)w; (void)b; (void)C;
}
void cpu_avx2_scale_row(float *o, const float *x, float inv, const float *w, int C) { (void)o; (void)x; (void)inv; (void)w; (void)C; }
void cpu_avx2_masked_relu_row(float *o, const float *h, const float *thr, const float *gate, int C)
{
    (void)o; (void)h; (void)thr; (void)gate; (void)C;
}
void cpu_avx2_bias_relu_map_row(float *x, const float *bias, const float *thr, int C, uint64_t *map)
{
    (void)x; (void)bias; (void)thr; (void)C; (void)map;
}
void cpu_avx2_attn_scores(float *S, const float *q, int ldq, const float *k, int ldk, int Tq, int Tk, int hd,
                          float scale, float *kT)
{
    (void)S; (void)q; (void)ldq; (void)k; (void)ldk; (void)Tq; (void)Tk; (void)hd; (void)scale; (void)kT;
}
void cpu_avx2_attn_softmax(float *S, int Tq, int Tk) { (void)S; (void)Tq; (void)Tk; }
void cpu_avx2_attn_values(float *z, int ldz, const float *P, const float *v, int ldv, int Tq, int Tk, int hd)
{
    (void)z; (void)ldz; (void)P; (void)v; (void)ldv; (void)Tq; (void)Tk; (void)hd;
}
#endif
