/* cpu_avx512.c: see cpu_avx512.h. Compiled for every x86-64 build with the target attribute,
 * so the program runs on processors without AVX-512 (it checks before calling). */
#include "gpu/cpu_avx512.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h> // defines: _mm512_* intrinsics
#include <pthread.h>   // defines: pthread_once
#include <string.h>    // defines: memcpy

#define AVX512 __attribute__((target("avx512f")))

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int usable;

static void probe(void)
{
    __builtin_cpu_init();
    usable = __builtin_cpu_supports("avx512f");
}

int cpu_avx512_usable(void)
{
    pthread_once(&once, probe);
    return usable;
}

/* cpu.c's exp_poly on 16 lanes. roundf (half away from zero) is trunc(t + copysign(0.5⁻, t)),
 * with 0.5⁻ the float just below 0.5: exact for every float, as compilers inline it. */
AVX512 static inline __m512 exp_poly16(__m512 x)
{
    const __m512 half_m = _mm512_set1_ps(0.49999997f);
    __m512 t = _mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f));
    __m512 sgn = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(t), _mm512_set1_epi32((int)0x80000000u)));
    __m512 bias = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(half_m), _mm512_castps_si512(sgn)));
    __m512 n = _mm512_roundscale_ps(_mm512_add_ps(t, bias), _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    __m512 f = _mm512_sub_ps(t, n);
    __m512 p = _mm512_set1_ps(1.5403530393381609e-4f);
    p = _mm512_add_ps(_mm512_mul_ps(p, f), _mm512_set1_ps(1.3333558146428443e-3f));
    p = _mm512_add_ps(_mm512_mul_ps(p, f), _mm512_set1_ps(9.6181291076284772e-3f));
    p = _mm512_add_ps(_mm512_mul_ps(p, f), _mm512_set1_ps(5.5504108664821580e-2f));
    p = _mm512_add_ps(_mm512_mul_ps(p, f), _mm512_set1_ps(2.4022650695910071e-1f));
    p = _mm512_add_ps(_mm512_mul_ps(p, f), _mm512_set1_ps(6.9314718055994531e-1f));
    p = _mm512_add_ps(_mm512_mul_ps(p, f), _mm512_set1_ps(1.0f));
    __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvttps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_mul_ps(p, _mm512_castsi512_ps(e));
}

AVX512 static inline __m512 gelu16(__m512 x)
{
    const __m512 one = _mm512_set1_ps(1.0f), nine = _mm512_set1_ps(9.0f), mnine = _mm512_set1_ps(-9.0f);
    __m512 c = _mm512_mul_ps(_mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.044715f), x), x), x);
    __m512 u = _mm512_mul_ps(_mm512_set1_ps(0.7978845608028654f), _mm512_add_ps(x, c));
    /* u > 9 ? 9 : (u < -9 ? -9 : u), NaN kept */
    __mmask16 hi = _mm512_cmp_ps_mask(u, nine, _CMP_GT_OQ), lo = _mm512_cmp_ps_mask(u, mnine, _CMP_LT_OQ);
    u = _mm512_mask_mov_ps(_mm512_mask_mov_ps(u, lo, mnine), hi, nine);
    __m512 e = exp_poly16(_mm512_mul_ps(_mm512_set1_ps(2.0f), u));
    __m512 th = _mm512_sub_ps(one, _mm512_div_ps(_mm512_set1_ps(2.0f), _mm512_add_ps(e, one)));
    return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), x), _mm512_add_ps(one, th));
}

AVX512 void cpu_avx512_gelu(float *out, const float *in, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(out + i, gelu16(_mm512_loadu_ps(in + i)));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(out + i, m, gelu16(_mm512_maskz_loadu_ps(m, in + i)));
    }
}

AVX512 void cpu_avx512_add(float *out, const float *a, const float *b, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(out + i, _mm512_add_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i)));
    for (; i < n; i++) out[i] = a[i] + b[i];
}

AVX512 void cpu_avx512_add_row(float *x, const float *bias, int C)
{
    int i = 0;
    for (; i + 16 <= C; i += 16) _mm512_storeu_ps(x + i, _mm512_add_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(bias + i)));
    for (; i < C; i++) x[i] += bias[i];
}

AVX512 void cpu_avx512_ln_row(float *o, const float *x, float m, float rstd, const float *w, const float *b, int C)
{
    const __m512 M = _mm512_set1_ps(m), R = _mm512_set1_ps(rstd);
    int i = 0;
    for (; i + 16 <= C; i += 16) {
        __m512 v = _mm512_mul_ps(_mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(x + i), M), R), _mm512_loadu_ps(w + i));
        _mm512_storeu_ps(o + i, _mm512_add_ps(v, _mm512_loadu_ps(b + i)));
    }
    for (; i < C; i++) o[i] = (x[i] - m) * rstd * w[i] + b[i];
}

AVX512 void cpu_avx512_masked_relu_row(float *o, const float *h, const float *thr, const float *gate, int C)
{
    const __m512 z = _mm512_setzero_ps();
    int i = 0;
    for (; i + 16 <= C; i += 16) {
        __m512 v = _mm512_loadu_ps(h + i);
        __mmask16 on = _mm512_cmp_ps_mask(v, z, _CMP_GT_OQ);
        if (thr) on &= _mm512_cmp_ps_mask(v, _mm512_loadu_ps(thr + i), _CMP_GT_OQ);
        if (gate) on &= _mm512_cmp_ps_mask(_mm512_loadu_ps(gate + i), z, _CMP_GT_OQ);
        _mm512_storeu_ps(o + i, _mm512_maskz_mov_ps(on, v));
    }
    for (; i < C; i++) {
        int on = h[i] > 0.0f && (!thr || h[i] > thr[i]) && (!gate || gate[i] > 0.0f);
        o[i] = on ? h[i] : 0.0f;
    }
}

AVX512 void cpu_avx512_nonzero_bits(const float *x, int C, uint64_t *map)
{
    int i = 0;
    for (; i + 64 <= C; i += 64) {
        uint64_t w = 0;
        for (int q = 0; q < 4; q++) {
            __m512i v = _mm512_loadu_si512((const void *)(x + i + 16 * q));
            w |= (uint64_t)_mm512_test_epi32_mask(v, v) << (16 * q);
        }
        map[i / 64] = w;
    }
    if (i < C) {
        uint64_t w = 0;
        for (int q = i; q < C; q++) {
            uint32_t b;
            memcpy(&b, x + q, sizeof b);
            if (b) w |= (uint64_t)1 << (q - i);
        }
        map[i / 64] = w;
    }
}

/* Scores of R query rows (t..t+R-1) against keys [s0, s0 + 16·nb): the rows share every key
 * load and the R·nb independent sums hide the adds' latency. Each score is q·k summed in d
 * order (mul, then add) whatever R is, so blocking rows does not change a bit. */
AVX512 static inline __attribute__((always_inline)) void scores_block(float *S, const float *q, int ldq,
                                                                         const float *kT, int W, int Tk, int hd,
                                                                         __m512 sc, int t, int s0, const int R,
                                                                         const int nb)
{
    __m512 a[4][4];
    _Pragma("GCC unroll 4")
    for (int r = 0; r < R; r++)
        _Pragma("GCC unroll 4")
        for (int b = 0; b < nb; b++) a[r][b] = _mm512_setzero_ps();
    for (int d = 0; d < hd; d++) {
        const float *kr = kT + (size_t)d * W + s0;
        __m512 kv[4];
        _Pragma("GCC unroll 4")
        for (int b = 0; b < nb; b++) kv[b] = _mm512_loadu_ps(kr + 16 * b);
        _Pragma("GCC unroll 4")
        for (int r = 0; r < R; r++) {
            __m512 qd = _mm512_set1_ps(q[(size_t)(t + r) * ldq + d]);
            _Pragma("GCC unroll 4")
            for (int b = 0; b < nb; b++) a[r][b] = _mm512_add_ps(a[r][b], _mm512_mul_ps(qd, kv[b]));
        }
    }
    _Pragma("GCC unroll 4")
    for (int r = 0; r < R; r++) {
        float *out = S + (size_t)(t + r) * Tk + s0;
        _Pragma("GCC unroll 4")
        for (int b = 0; b < nb; b++) {
            int n = Tk - (s0 + 16 * b);
            __mmask16 m = n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1);
            _mm512_mask_storeu_ps(out + 16 * b, m, _mm512_mul_ps(a[r][b], sc));
        }
    }
}

/* Keys 0..last in blocks of up to 64 for R rows; a row may get scores past its own last key
 * (inside the blocks of the group's last row): softmax zeroes them. */
AVX512 static inline __attribute__((always_inline)) void scores_rows(float *S, const float *q, int ldq,
                                                                        const float *kT, int W, int Tk, int hd,
                                                                        __m512 sc, int t, int last, const int R)
{
    for (int s0 = 0; s0 <= last; s0 += 64) {
        int nb = (last - s0) / 16 + 1;
        switch (nb > 4 ? 4 : nb) {
        case 1: scores_block(S, q, ldq, kT, W, Tk, hd, sc, t, s0, R, 1); break;
        case 2: scores_block(S, q, ldq, kT, W, Tk, hd, sc, t, s0, R, 2); break;
        case 3: scores_block(S, q, ldq, kT, W, Tk, hd, sc, t, s0, R, 3); break;
        default: scores_block(S, q, ldq, kT, W, Tk, hd, sc, t, s0, R, 4); break;
        }
    }
}

AVX512 void cpu_avx512_attn_scores(float *S, const float *q, int ldq, const float *k, int ldk, int Tq, int Tk, int hd,
                                   float scale, float *kT)
{
    const int W = (Tk + 15) / 16 * 16; /* kT row length */
    for (int d = 0; d < hd; d++) {
        float *row = kT + (size_t)d * W;
        for (int s = 0; s < Tk; s++) row[s] = k[(size_t)s * ldk + d];
        for (int s = Tk; s < W; s++) row[s] = 0.0f;
    }
    const __m512 sc = _mm512_set1_ps(scale);
    int t = 0;
    for (; t + 4 <= Tq; t += 4) scores_rows(S, q, ldq, kT, W, Tk, hd, sc, t, Tk - Tq + t + 3, 4);
    for (; t < Tq; t++) scores_rows(S, q, ldq, kT, W, Tk, hd, sc, t, Tk - Tq + t, 1);
}

AVX512 void cpu_avx512_attn_softmax(float *S, int Tq, int Tk)
{
    const __m512 lo = _mm512_set1_ps(-87.0f);
    for (int t = 0; t < Tq; t++) {
        float *row = S + (size_t)t * Tk;
        int n = Tk - Tq + t + 1, s; /* keys 0..last */
        __m512 mx = _mm512_set1_ps(row[0]);
        for (s = 0; s + 16 <= n; s += 16) mx = _mm512_max_ps(mx, _mm512_loadu_ps(row + s));
        if (s < n) mx = _mm512_max_ps(mx, _mm512_mask_loadu_ps(mx, (__mmask16)((1u << (n - s)) - 1), row + s));
        __m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
        double sum = 0;
        for (s = 0; s < n; s += 16) {
            __mmask16 k = n - s >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - s)) - 1);
            __m512 e = exp_poly16(_mm512_max_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, row + s), m), lo));
            _mm512_mask_storeu_ps(row + s, k, e);
            float tmp[16];
            _mm512_storeu_ps(tmp, e);
            for (int i = 0; i < 16 && s + i < n; i++) sum += tmp[i];
        }
        __m512 inv = _mm512_set1_ps((float)(1.0 / sum));
        for (s = 0; s < n; s += 16) {
            __mmask16 k = n - s >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - s)) - 1);
            _mm512_mask_storeu_ps(row + s, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, row + s), inv));
        }
        for (s = n; s < Tk; s++) row[s] = 0.0f;
    }
}

/* Weighted sums of R query rows (t..t+R-1, whose last keys are last..last+R-1) over value
 * columns [d0, d0 + 16·nb): the rows share each value row's loads. Each output is Σ p·v over
 * its own keys in increasing order (mul, then add), as one row at a time would compute it. */
AVX512 static inline __attribute__((always_inline)) void values_acc(__m512 a[4][4], const float *P, const float *vr,
                                                                       const __mmask16 *m, int Tk, int t, int s,
                                                                       int r0, const int R, const int nb)
{
    __m512 vv[4];
    _Pragma("GCC unroll 4")
    for (int b = 0; b < nb; b++) vv[b] = _mm512_maskz_loadu_ps(m[b], vr + 16 * b);
    _Pragma("GCC unroll 4")
    for (int r = 0; r < R; r++) {
        if (r < r0) continue;
        __m512 ps = _mm512_set1_ps(P[(size_t)(t + r) * Tk + s]);
        _Pragma("GCC unroll 4")
        for (int b = 0; b < nb; b++) a[r][b] = _mm512_add_ps(a[r][b], _mm512_mul_ps(ps, vv[b]));
    }
}

AVX512 static inline __attribute__((always_inline)) void values_rows(float *z, int ldz, const float *P, const float *v,
                                                                        int ldv, int Tk, int hd, int t, int last,
                                                                        int d0, const int R, const int nb)
{
    __mmask16 m[4];
    for (int b = 0; b < 4; b++) {
        int n = hd - (d0 + 16 * b);
        m[b] = n >= 16 ? (__mmask16)0xffff : n > 0 ? (__mmask16)((1u << n) - 1) : 0;
    }
    __m512 a[4][4];
    _Pragma("GCC unroll 4")
    for (int r = 0; r < R; r++)
        _Pragma("GCC unroll 4")
        for (int b = 0; b < nb; b++) a[r][b] = _mm512_setzero_ps();
    int s = 0;
    for (; s <= last; s++) values_acc(a, P, v + (size_t)s * ldv + d0, m, Tk, t, s, 0, R, nb);
    /* keys past row t's last: rows r >= s - last only */
    for (; s <= last + R - 1; s++) values_acc(a, P, v + (size_t)s * ldv + d0, m, Tk, t, s, s - last, R, nb);
    _Pragma("GCC unroll 4")
    for (int r = 0; r < R; r++) {
        float *out = z + (size_t)(t + r) * ldz + d0;
        _Pragma("GCC unroll 4")
        for (int b = 0; b < nb; b++) _mm512_mask_storeu_ps(out + 16 * b, m[b], a[r][b]);
    }
}

AVX512 void cpu_avx512_attn_values(float *z, int ldz, const float *P, const float *v, int ldv, int Tq, int Tk, int hd)
{
#define VALUES_ROWS(R, NB) values_rows(z, ldz, P, v, ldv, Tk, hd, t, Tk - Tq + t, d0, R, NB)
    for (int d0 = 0; d0 < hd; d0 += 64) {
        int nb = (hd - d0 + 15) / 16, t = 0;
        for (; t + 4 <= Tq; t += 4) {
            switch (nb > 4 ? 4 : nb) {
            case 1: VALUES_ROWS(4, 1); break;
            case 2: VALUES_ROWS(4, 2); break;
            case 3: VALUES_ROWS(4, 3); break;
            default: VALUES_ROWS(4, 4); break;
            }
        }
        for (; t < Tq; t++) {
            switch (nb > 4 ? 4 : nb) {
            case 1: VALUES_ROWS(1, 1); break;
            case 2: VALUES_ROWS(1, 2); break;
            case 3: VALUES_ROWS(1, 3); break;
            default: VALUES_ROWS(1, 4); break;
            }
        }
    }
#undef VALUES_ROWS
}
#else
int cpu_avx512_usable(void) { return 0; }
void cpu_avx512_gelu(float *out, const float *in, size_t n) { (void)out; (void)in; (void)n; }
void cpu_avx512_add(float *out, const float *a, const float *b, size_t n) { (void)out; (void)a; (void)b; (void)n; }
void cpu_avx512_add_row(float *x, const float *bias, int C) { (void)x; (void)bias; (void)C; }
void cpu_avx512_ln_row(float *o, const float *x, float m, float rstd, const float *w, const float *b, int C)
{
    (void)o; (void)x; (void)m; (void)rstd; (void)w; (void)b; (void)C;
}
void cpu_avx512_masked_relu_row(float *o, const float *h, const float *thr, const float *gate, int C)
{
    (void)o; (void)h; (void)thr; (void)gate; (void)C;
}
void cpu_avx512_nonzero_bits(const float *x, int C, uint64_t *map) { (void)x; (void)C; (void)map; }
void cpu_avx512_attn_scores(float *S, const float *q, int ldq, const float *k, int ldk, int Tq, int Tk, int hd,
                            float scale, float *kT)
{
    (void)S; (void)q; (void)ldq; (void)k; (void)ldk; (void)Tq; (void)Tk; (void)hd; (void)scale; (void)kT;
}
void cpu_avx512_attn_softmax(float *S, int Tq, int Tk) { (void)S; (void)Tq; (void)Tk; }
void cpu_avx512_attn_values(float *z, int ldz, const float *P, const float *v, int ldv, int Tq, int Tk, int hd)
{
    (void)z; (void)ldz; (void)P; (void)v; (void)ldv; (void)Tq; (void)Tk; (void)hd;
}
#endif
