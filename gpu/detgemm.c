/* detgemm.c: see detgemm.h. Blocking (BLIS's loops, K innermost per block of C):
 *   columns in blocks of nc → pack op(B)'s block (all K) into strips of 16 columns
 *   rows in blocks of mc   → pack op(A)'s block (all K) into strips of 6 rows
 *   K in chunks of KC      → each 6×16 tile runs the chunk's terms from the partial sums of the
 *                            chunks before (a float tile: storing and reloading is exact), the
 *                            last chunk writes alpha·acc + beta·C.
 * Small products with op(B) = B read B's rows in place instead of packing them. */
#include "gpu/detgemm.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MR 6
#define NR 16
#define KC 256

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int has_fma;

static void probe(void)
{
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
    __builtin_cpu_init();
    has_fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
}

int detgemm_fma(void)
{
    pthread_once(&once, probe);
    return has_fma;
}

static inline float fin1(float acc, float alpha, float beta, float c)
{
    return beta == 0.0f ? alpha * acc : alpha * acc + beta * c;
}

/* One element at a time in the same order: fused (libm's fmaf, exact like the instruction)
 * where the kernel would have run but its panels found no memory, else multiply then add. */
static void plain(int fused, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                  const float *B, int ldb, float beta, float *C, int ldc)
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            float acc = 0.0f;
            for (int k = 0; k < K; k++) {
                float a = ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                float b = tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                acc = fused ? fmaf(a, b, acc) : acc + a * b;
            }
            C[(size_t)i * ldc + j] = fin1(acc, alpha, beta, C[(size_t)i * ldc + j]);
        }
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>

#define FMA __attribute__((target("avx2,fma")))

/* 8 rows of 8 floats → their 8 columns: col[q] lane r = row r's float q. */
FMA static inline __attribute__((always_inline)) void transpose8(const __m256 r[8], __m256 col[8])
{
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]), t2 = _mm256_unpacklo_ps(r[2], r[3]),
           t3 = _mm256_unpackhi_ps(r[2], r[3]), t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]),
           t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE), u2 = _mm256_shuffle_ps(t1, t3, 0x44),
           u3 = _mm256_shuffle_ps(t1, t3, 0xEE), u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE),
           u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    col[0] = _mm256_permute2f128_ps(u0, u4, 0x20), col[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
    col[2] = _mm256_permute2f128_ps(u2, u6, 0x20), col[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
    col[4] = _mm256_permute2f128_ps(u0, u4, 0x31), col[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    col[6] = _mm256_permute2f128_ps(u2, u6, 0x31), col[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

/* Rows [i0, i0+mc) of op(A), all K: strips of MR rows, Ap[strip·K·MR + k·MR + r]; rows past
 * the block are 0. Packing only moves floats, so how it is vectorized changes no result; a
 * scalar transposition here cost a tenth of the product's time. */
FMA static void pack_a(int ta, const float *A, int lda, int i0, int mc, int K, float *Ap)
{
    for (int s = 0; s < mc; s += MR) {
        int mr = mc - s < MR ? mc - s : MR;
        float *p = Ap + (size_t)s * K;
        if (mr < MR) memset(p, 0, sizeof(float) * (size_t)K * MR);
        if (ta && mr == MR)
            for (int k = 0; k < K; k++) { /* 6 floats in a row: 4 + 2 */
                const float *a = A + (size_t)k * lda + i0 + s;
                _mm_storeu_ps(p + (size_t)k * MR, _mm_loadu_ps(a));
                _mm_storel_pi((__m64 *)(p + (size_t)k * MR + 4), _mm_loadl_pi(_mm_setzero_ps(), (const __m64 *)(a + 4)));
            }
        else if (ta)
            for (int k = 0; k < K; k++)
                for (int r = 0; r < mr; r++) p[(size_t)k * MR + r] = A[(size_t)k * lda + i0 + s + r];
        else {
            int k = 0;
            if (mr == MR) /* 6 rows × 8 terms transposed in registers */
                for (; k + 8 <= K; k += 8) {
                    __m256 r[8], col[8];
                    for (int q = 0; q < MR; q++) r[q] = _mm256_loadu_ps(A + (size_t)(i0 + s + q) * lda + k);
                    r[6] = r[7] = _mm256_setzero_ps();
                    transpose8(r, col);
                    for (int q = 0; q < 8; q++) {
                        float *o = p + (size_t)(k + q) * MR;
                        _mm_storeu_ps(o, _mm256_castps256_ps128(col[q]));
                        _mm_storel_pi((__m64 *)(o + 4), _mm256_extractf128_ps(col[q], 1));
                    }
                }
            for (int r = 0; r < mr; r++) {
                const float *a = A + (size_t)(i0 + s + r) * lda;
                for (int kk = k; kk < K; kk++) p[(size_t)kk * MR + r] = a[kk];
            }
        }
    }
}

/* Columns [j0, j0+nc) of op(B), all K: strips of NR columns, Bp[strip·K·NR + k·NR + c];
 * columns past the block are 0. */
FMA static void pack_b(int tb, const float *B, int ldb, int j0, int nc, int K, float *Bp)
{
    for (int s = 0; s < nc; s += NR) {
        int nr = nc - s < NR ? nc - s : NR;
        float *p = Bp + (size_t)s * K;
        if (nr < NR) memset(p, 0, sizeof(float) * (size_t)K * NR);
        if (tb) {
            int k = 0;
            if (nr == NR) /* two groups of 8 rows of B × 8 terms transposed in registers */
                for (; k + 8 <= K; k += 8)
                    for (int h = 0; h < 2; h++) {
                        __m256 r[8], col[8];
                        for (int q = 0; q < 8; q++) r[q] = _mm256_loadu_ps(B + (size_t)(j0 + s + 8 * h + q) * ldb + k);
                        transpose8(r, col);
                        for (int q = 0; q < 8; q++) _mm256_storeu_ps(p + (size_t)(k + q) * NR + 8 * h, col[q]);
                    }
            for (int c = 0; c < nr; c++) {
                const float *b = B + (size_t)(j0 + s + c) * ldb;
                for (int kk = k; kk < K; kk++) p[(size_t)kk * NR + c] = b[kk];
            }
        } else if (nr == NR)
            for (int k = 0; k < K; k++) {
                const float *b = B + (size_t)k * ldb + j0 + s;
                _mm256_storeu_ps(p + (size_t)k * NR, _mm256_loadu_ps(b));
                _mm256_storeu_ps(p + (size_t)k * NR + 8, _mm256_loadu_ps(b + 8));
            }
        else
            for (int k = 0; k < K; k++) memcpy(p + (size_t)k * NR, B + (size_t)k * ldb + j0 + s, sizeof(float) * nr);
    }
}

/* One 6×16 tile over kc terms: a (kc×MR), b (kc rows bs apart, 16 wide). Starts from ci
 * (rows ldi apart; NULL: 0). fin = 0: stores the sums to co; fin = 1: co = alpha·acc + beta·co. */
FMA static void micro(int kc, const float *a, const float *b, long bs, const float *ci, long ldi, float *co, long ldo,
                      int fin, float alpha, float beta)
{
    __m256 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
    if (ci) {
#define LD(r) c##r##0 = _mm256_loadu_ps(ci + r * ldi), c##r##1 = _mm256_loadu_ps(ci + r * ldi + 8)
        LD(0); LD(1); LD(2); LD(3); LD(4); LD(5);
#undef LD
    } else {
        c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = c40 = c41 = c50 = c51 = _mm256_setzero_ps();
    }
    for (int k = 0; k < kc; k++) {
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8), x;
#define STEP(r) x = _mm256_broadcast_ss(a + r), c##r##0 = _mm256_fmadd_ps(x, b0, c##r##0), c##r##1 = _mm256_fmadd_ps(x, b1, c##r##1)
        STEP(0); STEP(1); STEP(2); STEP(3); STEP(4); STEP(5);
#undef STEP
        a += MR;
        b += bs;
    }
    if (!fin) {
#define ST(r) _mm256_storeu_ps(co + r * ldo, c##r##0), _mm256_storeu_ps(co + r * ldo + 8, c##r##1)
        ST(0); ST(1); ST(2); ST(3); ST(4); ST(5);
#undef ST
        return;
    }
    const __m256 al = _mm256_set1_ps(alpha), be = _mm256_set1_ps(beta);
    if (beta == 0.0f) {
#define FZ(r) _mm256_storeu_ps(co + r * ldo, _mm256_mul_ps(al, c##r##0)), _mm256_storeu_ps(co + r * ldo + 8, _mm256_mul_ps(al, c##r##1))
        FZ(0); FZ(1); FZ(2); FZ(3); FZ(4); FZ(5);
#undef FZ
    } else {
#define FB(r, h)                                                                                                    \
    _mm256_storeu_ps(co + r * ldo + 8 * h,                                                                         \
                     _mm256_add_ps(_mm256_mul_ps(al, c##r##h), _mm256_mul_ps(be, _mm256_loadu_ps(co + r * ldo + 8 * h))))
        FB(0, 0); FB(0, 1); FB(1, 0); FB(1, 1); FB(2, 0); FB(2, 1);
        FB(3, 0); FB(3, 1); FB(4, 0); FB(4, 1); FB(5, 0); FB(5, 1);
#undef FB
    }
}

/* A tile of mr × nr (≤ 6 × 16) at the edge of C or of the block: the kernel on a local tile. */
static void edge(int kc, const float *a, const float *b, long bs, const float *ci, long ldi, float *co, long ldo,
                 int fin, float alpha, float beta, int mr, int nr)
{
    float t[MR * NR];
    if (ci) {
        memset(t, 0, sizeof t);
        for (int r = 0; r < mr; r++) memcpy(t + r * NR, ci + r * ldi, sizeof(float) * nr);
    }
    micro(kc, a, b, bs, ci ? t : NULL, NR, t, NR, 0, 1.0f, 0.0f);
    for (int r = 0; r < mr; r++)
        for (int c = 0; c < nr; c++) {
            float *o = co + r * ldo + c;
            *o = fin ? fin1(t[r * NR + c], alpha, beta, *o) : t[r * NR + c];
        }
}

/* A few rows times op(B) = B^T (the logits of a few tokens): B's rows are read in place, 8 of
 * them × 8 terms transposed in registers so that each lane runs one output's terms in order. */
FMA static inline __attribute__((always_inline)) void rows_bt_m(const int M, int ta, int N, int K, float alpha,
                                                                const float *A, int lda, const float *B, int ldb,
                                                                float beta, float *C, int ldc)
{
    int j = 0;
    for (; j + 8 <= N; j += 8) {
        __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
        const float *b = B + (size_t)j * ldb;
        const size_t l = (size_t)ldb;
        int k = 0;
        for (; k + 8 <= K; k += 8) {
            __m256 r0 = _mm256_loadu_ps(b + k), r1 = _mm256_loadu_ps(b + l + k), r2 = _mm256_loadu_ps(b + 2 * l + k),
                   r3 = _mm256_loadu_ps(b + 3 * l + k), r4 = _mm256_loadu_ps(b + 4 * l + k),
                   r5 = _mm256_loadu_ps(b + 5 * l + k), r6 = _mm256_loadu_ps(b + 6 * l + k),
                   r7 = _mm256_loadu_ps(b + 7 * l + k);
            __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1), t2 = _mm256_unpacklo_ps(r2, r3),
                   t3 = _mm256_unpackhi_ps(r2, r3), t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5),
                   t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
            __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE),
                   u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE),
                   u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE),
                   u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
            __m256 col[8] = {_mm256_permute2f128_ps(u0, u4, 0x20), _mm256_permute2f128_ps(u1, u5, 0x20),
                             _mm256_permute2f128_ps(u2, u6, 0x20), _mm256_permute2f128_ps(u3, u7, 0x20),
                             _mm256_permute2f128_ps(u0, u4, 0x31), _mm256_permute2f128_ps(u1, u5, 0x31),
                             _mm256_permute2f128_ps(u2, u6, 0x31), _mm256_permute2f128_ps(u3, u7, 0x31)};
#pragma GCC unroll 8
            for (int q = 0; q < 8; q++)
#pragma GCC unroll 4
                for (int i = 0; i < M; i++)
                    acc[i] = _mm256_fmadd_ps(_mm256_set1_ps(ta ? A[(size_t)(k + q) * lda + i] : A[(size_t)i * lda + k + q]),
                                             col[q], acc[i]);
        }
        for (; k < K; k++) {
            __m256 col = _mm256_set_ps(b[7 * l + k], b[6 * l + k], b[5 * l + k], b[4 * l + k], b[3 * l + k], b[2 * l + k],
                                       b[l + k], b[k]);
#pragma GCC unroll 4
            for (int i = 0; i < M; i++)
                acc[i] = _mm256_fmadd_ps(_mm256_set1_ps(ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k]), col, acc[i]);
        }
#pragma GCC unroll 4
        for (int i = 0; i < M; i++) {
            float o[8];
            _mm256_storeu_ps(o, acc[i]);
            for (int q = 0; q < 8; q++) C[(size_t)i * ldc + j + q] = fin1(o[q], alpha, beta, C[(size_t)i * ldc + j + q]);
        }
    }
    if (j < N) plain(1, ta, 1, M, N - j, K, alpha, A, lda, B + (size_t)j * ldb, ldb, beta, C + j, ldc);
}

/* A few rows times op(B) = B: B's rows streamed in order into the outputs' partial sums, a
 * column chunk at a time (the sums stay in L1). */
FMA static inline __attribute__((always_inline)) void rows_b_m(const int M, int ta, int N, int K, float alpha,
                                                               const float *A, int lda, const float *B, int ldb,
                                                               float beta, float *C, int ldc)
{
    enum { CH = 2048 };
    float acc[4][CH] __attribute__((aligned(32)));
    for (int j0 = 0; j0 < N; j0 += CH) {
        int w = N - j0 < CH ? N - j0 : CH, wv = w / 8 * 8;
        for (int i = 0; i < M; i++) memset(acc[i], 0, sizeof(float) * (size_t)w);
        int k = 0;
        for (; k + 4 <= K; k += 4) { /* four rows of B at a time, each sum still in k order */
            const float *b = B + (size_t)k * ldb + j0;
            const size_t l = (size_t)ldb;
            __m256 ak[4][4];
#pragma GCC unroll 4
            for (int i = 0; i < M; i++)
                for (int q = 0; q < 4; q++)
                    ak[i][q] = _mm256_set1_ps(ta ? A[(size_t)(k + q) * lda + i] : A[(size_t)i * lda + k + q]);
            for (int c = 0; c < wv; c += 8) {
                __m256 b0 = _mm256_loadu_ps(b + c), b1 = _mm256_loadu_ps(b + l + c), b2 = _mm256_loadu_ps(b + 2 * l + c),
                       b3 = _mm256_loadu_ps(b + 3 * l + c);
#pragma GCC unroll 4
                for (int i = 0; i < M; i++) {
                    __m256 x = _mm256_fmadd_ps(ak[i][0], b0, _mm256_load_ps(acc[i] + c));
                    x = _mm256_fmadd_ps(ak[i][1], b1, x);
                    x = _mm256_fmadd_ps(ak[i][2], b2, x);
                    _mm256_store_ps(acc[i] + c, _mm256_fmadd_ps(ak[i][3], b3, x));
                }
            }
            for (int c = wv; c < w; c++)
                for (int i = 0; i < M; i++)
                    for (int q = 0; q < 4; q++)
                        acc[i][c] = fmaf(ta ? A[(size_t)(k + q) * lda + i] : A[(size_t)i * lda + k + q], b[q * l + c], acc[i][c]);
        }
        for (; k < K; k++) {
            const float *b = B + (size_t)k * ldb + j0;
            for (int c = 0; c < w; c++)
                for (int i = 0; i < M; i++) acc[i][c] = fmaf(ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k], b[c], acc[i][c]);
        }
        for (int i = 0; i < M; i++)
            for (int c = 0; c < w; c++) C[(size_t)i * ldc + j0 + c] = fin1(acc[i][c], alpha, beta, C[(size_t)i * ldc + j0 + c]);
    }
}

FMA static void few_rows(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                         int ldb, float beta, float *C, int ldc)
{
#define CASE(m)                                                                       \
    case m:                                                                           \
        if (tb) rows_bt_m(m, ta, N, K, alpha, A, lda, B, ldb, beta, C, ldc);          \
        else rows_b_m(m, ta, N, K, alpha, A, lda, B, ldb, beta, C, ldc);              \
        break;
    switch (M) {
        CASE(1) CASE(2) CASE(3) CASE(4)
    }
#undef CASE
}

static void *alloc64(size_t floats)
{
    void *p = NULL;
    return posix_memalign(&p, 64, sizeof(float) * (floats ? floats : 1)) ? NULL : p;
}

static int fast(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                float beta, float *C, int ldc)
{
    if (M <= 4) {
        few_rows(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return 0;
    }
    /* panels of a few MiB whatever K is */
    int nc = (int)((2u << 20) / ((size_t)K * sizeof(float))) / NR * NR, mc = (int)((1u << 20) / ((size_t)K * sizeof(float))) / MR * MR;
    nc = nc < 2 * NR ? 2 * NR : nc > 1024 ? 1024 : nc;
    mc = mc < 2 * MR ? 2 * MR : mc > 96 ? 96 : mc;
    if (nc > (N + NR - 1) / NR * NR) nc = (N + NR - 1) / NR * NR;
    if (mc > (M + MR - 1) / MR * MR) mc = (M + MR - 1) / MR * MR;
    /* a dozen rows of op(B) = B: its rows are read where they are (a tail strip is packed) */
    int direct = !tb && M <= 2 * MR;
    float *Ap = alloc64((size_t)mc * K), *Bp = alloc64((size_t)(direct ? NR : nc) * K);
    float *T = K > KC ? alloc64((size_t)mc * nc) : NULL;
    if (!Ap || !Bp || (K > KC && !T)) {
        free(Ap), free(Bp), free(T);
        return -1;
    }
    for (int jc = 0; jc < N; jc += nc) {
        int ncur = N - jc < nc ? N - jc : nc;
        if (!direct) pack_b(tb, B, ldb, jc, ncur, K, Bp);
        else if (ncur % NR) pack_b(0, B, ldb, jc + ncur / NR * NR, ncur % NR, K, Bp);
        for (int ic = 0; ic < M; ic += mc) {
            int mcur = M - ic < mc ? M - ic : mc;
            pack_a(ta, A, lda, ic, mcur, K, Ap);
            for (int pc = 0; pc < K; pc += KC) {
                int kc = K - pc < KC ? K - pc : KC, first = pc == 0, last = pc + kc == K;
                for (int jr = 0; jr < ncur; jr += NR) {
                    int nr = ncur - jr < NR ? ncur - jr : NR;
                    const float *bp;
                    long bs = NR;
                    if (!direct) bp = Bp + (size_t)jr * K + (size_t)pc * NR;
                    else if (nr < NR) bp = Bp + (size_t)pc * NR;
                    else bp = B + (size_t)pc * ldb + jc + jr, bs = ldb;
                    for (int ir = 0; ir < mcur; ir += MR) {
                        int mr = mcur - ir < MR ? mcur - ir : MR;
                        const float *ap = Ap + (size_t)ir * K + (size_t)pc * MR;
                        float *t = T ? T + (size_t)ir * ncur + jr : NULL, *c = C + (size_t)(ic + ir) * ldc + jc + jr;
                        const float *ci = first ? NULL : t;
                        float *co = last ? c : t;
                        long ldo = last ? ldc : ncur;
                        if (mr == MR && nr == NR) micro(kc, ap, bp, bs, ci, ncur, co, ldo, last, alpha, beta);
                        else edge(kc, ap, bp, bs, ci, ncur, co, ldo, last, alpha, beta, mr, nr);
                    }
                }
            }
        }
    }
    free(Ap), free(Bp), free(T);
    return 0;
}
#endif

void detgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
            float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] = fin1(0.0f, alpha, beta, C[(size_t)i * ldc + j]);
        return;
    }
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
    if (detgemm_fma() && fast(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) == 0) return;
#endif
    plain(detgemm_fma(), ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
