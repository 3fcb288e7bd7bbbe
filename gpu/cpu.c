/* cpu.c: the CPU backend: blas.h for the model's matrix products (OpenBLAS on AVX-512, detgemm
 * on AVX2 machines, where OpenBLAS rounds a row by its place in the batch; large products split
 * over the par.c pool), OpenBLAS for attention's per-head products, plain C on the pool for the
 * element-wise and row-wise work. It is the fallback
 * when no GPU is present and the reference other backends are tested against, so accuracy
 * comes first: row statistics accumulate in double, GELU's tanh is computed from an exp
 * accurate to ~1 ulp. The element-wise loops have AVX2 and AVX-512 versions (cpu_kernels.h
 * picks the set) that give the same bits; attention's vector kernels differ by rounding. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu/backend.h"
#include "gpu/blas.h"
#include "gpu/blas16.h"
#include "gpu/cpu_avx2.h"
#include "gpu/cpu_avx512.h"
#include "gpu/cpu_kernels.h"
#include "gpu/mem.h"
#include "gpu/par.h"

/* ---- memory ---- */

static void *cpu_alloc(saed_backend *b, size_t bytes)
{
    void *p = NULL;
    if (bytes >= ((size_t)2 << 20)) p = mem_zalloc(1, bytes); /* huge pages for weights and activations */
    else if (!posix_memalign(&p, 64, bytes ? bytes : 64)) memset(p, 0, bytes);
    else p = NULL;
    if (!p) snprintf(b->err, sizeof b->err, "out of memory allocating %zu bytes", bytes);
    return p;
}

static void cpu_release(saed_backend *b, void *p)
{
    (void)b;
    free(p);
}

static int cpu_copy(saed_backend *b, void *dst, const void *src, size_t bytes)
{
    (void)b;
    if (dst != src) memmove(dst, src, bytes);
    return 0;
}

/* ---- GEMM ---- */

static int cpu_gemm(saed_backend *b, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                    const float *B, int ldb, float beta, float *C, int ldc)
{
    if (M < 0 || N < 0 || K < 0) {
        snprintf(b->err, sizeof b->err, "gemm: negative shape %dx%dx%d", M, N, K);
        return -1;
    }
    if (M == 0 || N == 0) return 0;
    blas_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return 0;
}

/* ---- row-wise and element-wise ops ---- */

typedef struct row_job {
    float *out, *x;
    const float *in, *w, *bias, *a, *b;
    uint64_t *map;            /* bias_masked_relu_map: ⌈C/64⌉ words per row */
    int C;
    float eps;
} row_job;

/* Row statistics in double, each row's sums in index order; four rows at a time so that four
 * independent addition chains overlap (the same sums as one row at a time). */
static void ln_rows(void *ctx, size_t r0, size_t r1)
{
    row_job *j = ctx;
    const int C = j->C;
    const cpu_kernel_set ks = cpu_kernels();
    for (size_t r = r0; r < r1; r += 4) {
        int nr = r1 - r < 4 ? (int)(r1 - r) : 4;
        const float *x[4];
        double s[4] = {0}, ss[4] = {0}, mean[4];
        for (int q = 0; q < 4; q++) x[q] = j->in + (r + (size_t)(q < nr ? q : 0)) * C;
        for (int i = 0; i < C; i++) {
            s[0] += x[0][i];
            s[1] += x[1][i];
            s[2] += x[2][i];
            s[3] += x[3][i];
        }
        for (int q = 0; q < 4; q++) mean[q] = s[q] / C;
        for (int i = 0; i < C; i++) {
            double d0 = x[0][i] - mean[0], d1 = x[1][i] - mean[1], d2 = x[2][i] - mean[2], d3 = x[3][i] - mean[3];
            ss[0] += d0 * d0;
            ss[1] += d1 * d1;
            ss[2] += d2 * d2;
            ss[3] += d3 * d3;
        }
        for (int q = 0; q < nr; q++) {
            float *o = j->out + (r + q) * (size_t)C;
            float rstd = (float)(1.0 / sqrt(ss[q] / C + j->eps));
            float m = (float)mean[q];
            if (ks == CPU_K_AVX512) cpu_avx512_ln_row(o, x[q], m, rstd, j->w, j->bias, C);
            else if (ks == CPU_K_AVX2) cpu_avx2_ln_row(o, x[q], m, rstd, j->w, j->bias, C);
            else
                for (int i = 0; i < C; i++) o[i] = (x[q][i] - m) * rstd * j->w[i] + j->bias[i];
        }
    }
}

static int cpu_layernorm(saed_backend *b, float *out, const float *inp, const float *w, const float *bias, int N,
                         int C, float eps)
{
    (void)b;
    row_job j = {.out = out, .in = inp, .w = w, .bias = bias, .C = C, .eps = eps};
    par_for((size_t)N, 16, ln_rows, &j);
    return 0;
}

static void bias_rows(void *ctx, size_t r0, size_t r1)
{
    row_job *j = ctx;
    const cpu_kernel_set ks = cpu_kernels();
    for (size_t r = r0; r < r1; r++) {
        float *x = j->x + r * (size_t)j->C;
        if (ks == CPU_K_AVX512) cpu_avx512_add_row(x, j->bias, j->C);
        else if (ks == CPU_K_AVX2) cpu_avx2_add_row(x, j->bias, j->C);
        else
            for (int i = 0; i < j->C; i++) x[i] += j->bias[i];
    }
}

static int cpu_add_bias(saed_backend *b, float *x, const float *bias, int N, int C)
{
    (void)b;
    row_job j = {.x = x, .bias = bias, .C = C};
    par_for((size_t)N, 32, bias_rows, &j);
    return 0;
}

static void fill_rows(void *ctx, size_t r0, size_t r1)
{
    row_job *j = ctx;
    for (size_t r = r0; r < r1; r++) memcpy(j->x + r * (size_t)j->C, j->bias, sizeof(float) * (size_t)j->C);
}

static int cpu_fill_rows(saed_backend *b, float *x, const float *bias, int N, int C)
{
    (void)b;
    row_job j = {.x = x, .bias = bias, .C = C};
    par_for((size_t)N, 32, fill_rows, &j);
    return 0;
}

static void center_rows(void *ctx, size_t r0, size_t r1)
{
    row_job *j = ctx;
    for (size_t r = r0; r < r1; r++) {
        float *x = j->x + r * (size_t)j->C;
        double s = 0;
        for (int i = 0; i < j->C; i++) s += x[i];
        float m = (float)(s / j->C);
        for (int i = 0; i < j->C; i++) x[i] -= m;
    }
}

static int cpu_center_rows(saed_backend *b, float *x, int N, int C)
{
    (void)b;
    row_job j = {.x = x, .C = C};
    par_for((size_t)N, 32, center_rows, &j);
    return 0;
}

/* exp(x) for x in [-88, 88] without branches, so the GELU loop vectorises: x·log2(e) = n + f,
 * 2^f by a degree-6 polynomial on [-0.5, 0.5] (relative error < 2e-7), 2^n by exponent bits. */
static inline float exp_poly(float x)
{
    float t = x * 1.44269504088896341f;
    float n = __builtin_roundf(t);
    float f = t - n;
    float p = 1.5403530393381609e-4f;
    p = p * f + 1.3333558146428443e-3f;
    p = p * f + 9.6181291076284772e-3f;
    p = p * f + 5.5504108664821580e-2f;
    p = p * f + 2.4022650695910071e-1f;
    p = p * f + 6.9314718055994531e-1f;
    p = p * f + 1.0f;
    union { float f; unsigned i; } u = {.i = (unsigned)((int)n + 127) << 23}; /* unsigned: NaN inputs shift no sign bit */
    return p * u.f;
}

static void gelu_range(void *ctx, size_t i0, size_t i1)
{
    row_job *j = ctx;
    const float *in = j->in;
    float *out = j->out;
    const float k = 0.7978845608028654f; /* sqrt(2/pi) */
    const cpu_kernel_set ks = cpu_kernels();
    if (ks != CPU_K_PORTABLE) {
        (ks == CPU_K_AVX512 ? cpu_avx512_gelu : cpu_avx2_gelu)(out + i0, in + i0, i1 - i0);
        return;
    }
    for (size_t i = i0; i < i1; i++) {
        float x = in[i];
        float u = k * (x + 0.044715f * x * x * x);
        u = u > 9.0f ? 9.0f : (u < -9.0f ? -9.0f : u); /* tanh(±9) is ±1 in float */
        float e = exp_poly(2.0f * u);
        float th = 1.0f - 2.0f / (e + 1.0f);
        out[i] = 0.5f * x * (1.0f + th);
    }
}

static int cpu_gelu(saed_backend *b, float *out, const float *in, size_t n)
{
    (void)b;
    row_job j = {.out = out, .in = in};
    par_for(n, 1 << 14, gelu_range, &j);
    return 0;
}

static void add_range(void *ctx, size_t i0, size_t i1)
{
    row_job *j = ctx;
    const cpu_kernel_set ks = cpu_kernels();
    if (ks != CPU_K_PORTABLE) {
        (ks == CPU_K_AVX512 ? cpu_avx512_add : cpu_avx2_add)(j->out + i0, j->a + i0, j->b + i0, i1 - i0);
        return;
    }
    for (size_t i = i0; i < i1; i++) j->out[i] = j->a[i] + j->b[i];
}

static int cpu_add(saed_backend *b, float *out, const float *a, const float *b2, size_t n)
{
    (void)b;
    row_job j = {.out = out, .a = a, .b = b2};
    par_for(n, 1 << 15, add_range, &j);
    return 0;
}

static int cpu_embed(saed_backend *b, float *out, const int32_t *ids, const float *wte, const float *wpe, int B, int T,
                     int C, int pos0)
{
    (void)b;
    for (int bt = 0; bt < B * T; bt++) {
        const float *e = wte && ids ? wte + (size_t)ids[bt] * C : NULL;
        const float *p = wpe ? wpe + (size_t)(pos0 + bt % T) * C : NULL;
        float *o = out + (size_t)bt * C;
        for (int i = 0; i < C; i++) o[i] = (e ? e[i] : 0.0f) + (p ? p[i] : 0.0f);
    }
    return 0;
}

static int cpu_copy2d(saed_backend *b, float *dst, int ldd, const float *src, int lds, int rows, int width)
{
    (void)b;
    for (int r = 0; r < rows; r++) memmove(dst + (size_t)r * ldd, src + (size_t)r * lds, sizeof(float) * (size_t)width);
    return 0;
}

/* ---- attention ---- */

typedef struct softmax_job {
    float *s;
    int Tq, Tk, window;
    float softcap;
} softmax_job;

/* Rows of (heads, Tq, Tk) scores: soft-cap, causal (and sliding-window) mask, softmax in place. */
static void softmax_rows(void *ctx, size_t r0, size_t r1)
{
    softmax_job *j = ctx;
    for (size_t r = r0; r < r1; r++) {
        float *row = j->s + r * (size_t)j->Tk;
        int t = (int)(r % (size_t)j->Tq);
        int last = j->Tk - j->Tq + t; /* absolute position of this query */
        int first = j->window > 0 && last - j->window + 1 > 0 ? last - j->window + 1 : 0;
        if (j->softcap > 0)
            for (int s = first; s <= last; s++) row[s] = j->softcap * tanhf(row[s] / j->softcap);
        float mx = row[first];
        for (int s = first + 1; s <= last; s++) mx = row[s] > mx ? row[s] : mx;
        double sum = 0;
        for (int s = first; s <= last; s++) {
            row[s] = expf(row[s] - mx);
            sum += row[s];
        }
        float inv = (float)(1.0 / sum);
        for (int s = 0; s < first; s++) row[s] = 0.0f;
        for (int s = first; s <= last; s++) row[s] *= inv;
        for (int s = last + 1; s < j->Tk; s++) row[s] = 0.0f;
    }
}

typedef struct attn_job {
    float *S;                 /* (n, Tq, Tk) the kept pattern of the chunk's heads; NULL: not kept */
    float *z;
    const float *q, *k, *v;
    int ldq, ldkv, Tq, Tk, NH, group, hd;
    long sbkv;
    size_t h0;
    float scale;
    int avx512;               /* 1: cpu_avx512.h's kernels, 0: cpu_avx2.h's */
    int oom;                  /* set by a worker whose scratch allocation failed */
} attn_job;

/* Heads [i0, i1) of the chunk with the AVX-512 or AVX2 kernels (cpu_avx512.h, cpu_avx2.h, the
 * same formulas and bits): scores for the causal
 * half only, softmax, weighted sum; each head on its own, so the pool runs them side by side
 * (OpenBLAS runs these 128×128×64 products one at a time and serializes concurrent calls).
 * Their sums run in a different order than OpenBLAS's and exp is a polynomial: the results
 * differ from the plain path by float rounding (the forward tests hold both to 1e-4). */
static void attn_heads(void *ctx, size_t i0, size_t i1)
{
    attn_job *j = ctx;
    const size_t per = (size_t)j->Tq * j->Tk;
    const int C = j->NH * j->hd;
    /* Without a pattern to keep, each head's scores live in this worker's own buffer, which
     * stays in cache from the scores to the weighted sum. */
    float *kT = malloc(sizeof(float) * (size_t)j->hd * ((size_t)(j->Tk + 15) / 16 * 16));
    float *own = j->S ? NULL : malloc(sizeof(float) * per);
    if (!kT || (!j->S && !own)) {
        free(kT);
        free(own);
        __atomic_store_n(&j->oom, 1, __ATOMIC_RELAXED);
        return;
    }
    for (size_t i = i0; i < i1; i++) {
        int bb = (int)((j->h0 + i) / j->NH), h = (int)((j->h0 + i) % j->NH), kvh = h / j->group;
        const float *qh = j->q + (size_t)bb * j->Tq * j->ldq + (size_t)h * j->hd;
        const float *kh = j->k + (size_t)bb * j->sbkv + (size_t)kvh * j->hd;
        const float *vh = j->v + (size_t)bb * j->sbkv + (size_t)kvh * j->hd;
        float *S = own ? own : j->S + i * per, *zh = j->z + (size_t)bb * j->Tq * C + (size_t)h * j->hd;
        if (j->avx512) {
            cpu_avx512_attn_scores(S, qh, j->ldq, kh, j->ldkv, j->Tq, j->Tk, j->hd, j->scale, kT);
            cpu_avx512_attn_softmax(S, j->Tq, j->Tk);
            cpu_avx512_attn_values(zh, C, S, vh, j->ldkv, j->Tq, j->Tk, j->hd);
        } else {
            cpu_avx2_attn_scores(S, qh, j->ldq, kh, j->ldkv, j->Tq, j->Tk, j->hd, j->scale, kT);
            cpu_avx2_attn_softmax(S, j->Tq, j->Tk);
            cpu_avx2_attn_values(zh, C, S, vh, j->ldkv, j->Tq, j->Tk, j->hd);
        }
    }
    free(kT);
    free(own);
}

static int cpu_attention(saed_backend *b, float *z, float *pattern, const float *q, int ldq, const float *k,
                         const float *v, int ldkv, long sbkv, const attn_shape *sh)
{
    const int B = sh->B, Tq = sh->Tq, Tk = sh->Tk, NH = sh->NH, hd = sh->hd;
    if (Tq > Tk || Tq < 1) {
        snprintf(b->err, sizeof b->err, "attention: %d queries for %d keys", Tq, Tk);
        return -1;
    }
    if (sh->NKV < 1 || NH % sh->NKV) {
        snprintf(b->err, sizeof b->err, "attention: %d query heads for %d key/value heads", NH, sh->NKV);
        return -1;
    }
    const int C = NH * hd, group = NH / sh->NKV;
    const float scale = sh->scale;
    /* Scores for a chunk of (batch, head) pairs at a time keep the scratch bounded. */
    size_t per = (size_t)Tq * Tk, heads = (size_t)B * NH;
    size_t chunk = (size_t)(16u << 20) / per;
    if (chunk < 1) chunk = 1;
    if (chunk > heads) chunk = heads;
    /* The vector kernels know the plain causal mask only. */
    const cpu_kernel_set ks = cpu_kernels();
    if (ks != CPU_K_PORTABLE && sh->softcap <= 0 && sh->window <= 0) {
        attn_job j = {.z = z, .q = q, .k = k, .v = v, .ldq = ldq, .ldkv = ldkv, .Tq = Tq, .Tk = Tk, .NH = NH,
                      .group = group, .hd = hd, .sbkv = sbkv, .scale = scale, .avx512 = ks == CPU_K_AVX512};
        if (!pattern) chunk = heads;
        for (size_t h0 = 0; h0 < heads; h0 += chunk) {
            j.S = pattern ? pattern + h0 * per : NULL;
            j.h0 = h0;
            par_for(heads - h0 < chunk ? heads - h0 : chunk, 1, attn_heads, &j);
        }
        if (j.oom) snprintf(b->err, sizeof b->err, "attention: out of memory");
        return j.oom ? -1 : 0;
    }
    float *scratch = pattern ? NULL : malloc(chunk * per * sizeof(float));
    if (!pattern && !scratch) {
        snprintf(b->err, sizeof b->err, "attention: out of memory");
        return -1;
    }
    for (size_t h0 = 0; h0 < heads; h0 += chunk) {
        size_t n = heads - h0 < chunk ? heads - h0 : chunk;
        float *S = pattern ? pattern + h0 * per : scratch;
        for (size_t i = 0; i < n; i++) {
            int bb = (int)((h0 + i) / NH), h = (int)((h0 + i) % NH);
            const float *qh = q + (size_t)bb * Tq * ldq + (size_t)h * hd;
            const float *kh = k + (size_t)bb * sbkv + (size_t)(h / group) * hd;
            /* S (Tq,Tk) = scale · q_h (Tq,hd) · k_h^T; one query (a generation step): k_h · q_h. */
            if (Tq == 1) cblas_sgemv(CblasRowMajor, CblasNoTrans, Tk, hd, scale, kh, ldkv, qh, 1, 0.0f, S + i * per, 1);
            else
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Tq, Tk, hd, scale, qh, ldq, kh, ldkv, 0.0f,
                            S + i * per, Tk);
        }
        softmax_job sj = {.s = S, .Tq = Tq, .Tk = Tk, .window = sh->window, .softcap = sh->softcap};
        par_for(n * (size_t)Tq, 64, softmax_rows, &sj);
        for (size_t i = 0; i < n; i++) {
            int bb = (int)((h0 + i) / NH), h = (int)((h0 + i) % NH);
            const float *vh = v + (size_t)bb * sbkv + (size_t)(h / group) * hd;
            float *zh = z + (size_t)bb * Tq * C + (size_t)h * hd;
            /* z_h (Tq,hd) = P (Tq,Tk) · v_h (Tk,hd); one query: v_h^T · p. */
            if (Tq == 1) cblas_sgemv(CblasRowMajor, CblasTrans, Tk, hd, 1.0f, vh, ldkv, S + i * per, 1, 0.0f, zh, 1);
            else
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Tq, hd, Tk, 1.0f, S + i * per, Tk, vh, ldkv,
                            0.0f, zh, C);
        }
    }
    free(scratch);
    return 0;
}

/* ---- the rotary families' ops ---- */

static void rms_rows(void *ctx, size_t r0, size_t r1)
{
    row_job *j = ctx;
    const int C = j->C;
    const cpu_kernel_set ks = cpu_kernels();
    for (size_t r = r0; r < r1; r++) {
        const float *x = j->in + r * (size_t)C;
        float *o = j->out + r * (size_t)C;
        /* HF: variance = mean(x²) in float32, x · rsqrt(variance + eps), then · weight. */
        double ss = 0.0; /* float32 in HF; double keeps the row's sum independent of C's size */
        for (int i = 0; i < C; i++) ss += (double)x[i] * x[i];
        float inv = 1.0f / sqrtf((float)(ss / C) + j->eps);
        if (ks != CPU_K_PORTABLE) /* AVX-512 machines have AVX2: the same bits */
            cpu_avx2_scale_row(o, x, inv, j->w, C);
        else if (j->w)
            for (int i = 0; i < C; i++) o[i] = x[i] * inv * j->w[i];
        else
            for (int i = 0; i < C; i++) o[i] = x[i] * inv;
    }
}

static int cpu_rmsnorm(saed_backend *b, float *out, const float *inp, const float *w, int N, int C, float eps)
{
    (void)b;
    row_job j = {.out = out, .in = inp, .w = w, .C = C, .eps = eps};
    par_for((size_t)N, 16, rms_rows, &j);
    return 0;
}

static int cpu_rotary(saed_backend *b, float *x, int ld, int B, int T, int nh, int hd, int rot, const float *cs,
                      int pos0)
{
    if (rot < 2 || rot % 2 || rot > hd) {
        snprintf(b->err, sizeof b->err, "rotary: %d rotary dims for heads of %d", rot, hd);
        return -1;
    }
    const int half = rot / 2;
    for (size_t r = 0; r < (size_t)B * T; r++) {
        const float *c = cs + (size_t)(pos0 + (int)(r % (size_t)T)) * rot, *s = c + half;
        for (int h = 0; h < nh; h++) {
            float *v = x + r * (size_t)ld + (size_t)h * hd;
            for (int i = 0; i < half; i++) {
                float x1 = v[i], x2 = v[i + half];
                v[i] = x1 * c[i] - x2 * s[i];
                v[i + half] = x2 * c[i] + x1 * s[i];
            }
        }
    }
    return 0;
}

static inline float act_one(float x, backend_act a)
{
    switch (a) {
    case ACT_GELU_ERF: return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
    case ACT_SILU: return x / (1.0f + expf(-x));
    default: return 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
    }
}

typedef struct act_job {
    float *out;
    const float *in, *up;
    backend_act a;
} act_job;

static void act_range(void *ctx, size_t i0, size_t i1)
{
    act_job *j = ctx;
    if (j->up)
        for (size_t i = i0; i < i1; i++) j->out[i] = act_one(j->in[i], j->a) * j->up[i];
    else
        for (size_t i = i0; i < i1; i++) j->out[i] = act_one(j->in[i], j->a);
}

static int cpu_act(saed_backend *b, float *out, const float *in, size_t n, backend_act a)
{
    if (a == ACT_GELU_TANH) return cpu_gelu(b, out, in, n);
    act_job j = {.out = out, .in = in, .a = a};
    par_for(n, 1 << 14, act_range, &j);
    return 0;
}

static int cpu_glu(saed_backend *b, float *out, const float *gate, const float *up, size_t n, backend_act a)
{
    (void)b;
    act_job j = {.out = out, .in = gate, .up = up, .a = a};
    par_for(n, 1 << 14, act_range, &j);
    return 0;
}

static int cpu_gemm_w16(saed_backend *b, int M, int N, int K, const float *A, int lda, const uint16_t *W, int bf16,
                        float beta, float *C, int ldc)
{
    if (blas_sgemm_w16(M, N, K, A, lda, W, bf16, beta, C, ldc)) {
        snprintf(b->err, sizeof b->err, "gemm_w16: out of memory");
        return -1;
    }
    return 0;
}

static int cpu_softcap(saed_backend *b, float *x, size_t n, float cap)
{
    (void)b;
    for (size_t i = 0; i < n; i++) x[i] = cap * tanhf(x[i] / cap);
    return 0;
}

static int cpu_argmax_rows(saed_backend *b, int32_t *idx, const float *x, int N, int C)
{
    (void)b;
    for (int r = 0; r < N; r++) {
        const float *row = x + (size_t)r * C;
        int best = 0;
        for (int i = 1; i < C; i++)
            if (row[i] > row[best]) best = i;
        idx[r] = best;
    }
    return 0;
}

typedef struct topk_job {
    float *vals;
    int32_t *idx;
    const float *x;
    int C, k;
} topk_job;

/* a ranks before b: larger value, or equal value and lower index. */
static inline int before(float va, int ia, float vb, int ib) { return va > vb || (va == vb && ia < ib); }

/* Per row: a sorted insertion buffer of k entries; O(C·k) worst case but O(C) on typical
 * data, since most values fail the first comparison against the current k-th. */
static void topk_range(void *ctx, size_t r0, size_t r1)
{
    topk_job *j = ctx;
    for (size_t r = r0; r < r1; r++) {
        const float *x = j->x + r * (size_t)j->C;
        float *v = j->vals + r * (size_t)j->k;
        int32_t *ix = j->idx + r * (size_t)j->k;
        int n = 0;
        for (int i = 0; i < j->C; i++) {
            if (n == j->k && !before(x[i], i, v[n - 1], ix[n - 1])) continue;
            int p = n < j->k ? n++ : n - 1;
            while (p > 0 && before(x[i], i, v[p - 1], ix[p - 1])) {
                v[p] = v[p - 1];
                ix[p] = ix[p - 1];
                p--;
            }
            v[p] = x[i];
            ix[p] = i;
        }
    }
}

static int cpu_topk_rows(saed_backend *b, float *vals, int32_t *idx, const float *x, int N, int C, int k)
{
    if (k < 1 || k > C) {
        snprintf(b->err, sizeof b->err, "topk: k=%d for rows of %d", k, C);
        return -1;
    }
    topk_job j = {vals, idx, x, C, k};
    par_for((size_t)N, 8, topk_range, &j);
    return 0;
}

/* ---- SAE activations ---- */

static void masked_relu_rows(void *ctx, size_t r0, size_t r1)
{
    row_job *j = ctx;
    const int C = j->C;
    const cpu_kernel_set ks = cpu_kernels();
    for (size_t r = r0; r < r1; r++) {
        const float *h = j->in + r * (size_t)C, *g = j->a ? j->a + r * (size_t)C : NULL;
        float *o = j->out + r * (size_t)C;
        if (ks != CPU_K_PORTABLE) {
            (ks == CPU_K_AVX512 ? cpu_avx512_masked_relu_row : cpu_avx2_masked_relu_row)(o, h, j->w, g, C);
            continue;
        }
        for (int i = 0; i < C; i++) {
            int on = h[i] > 0.0f && (!j->w || h[i] > j->w[i]) && (!g || g[i] > 0.0f);
            o[i] = on ? h[i] : 0.0f;
        }
    }
}

static int cpu_masked_relu(saed_backend *b, float *out, const float *h, const float *thr, const float *gate, int N, int C)
{
    (void)b;
    row_job j = {.out = out, .in = h, .w = thr, .a = gate, .C = C};
    par_for((size_t)N, 16, masked_relu_rows, &j);
    return 0;
}

static void bias_relu_rows(void *ctx, size_t r0, size_t r1)
{
    row_job *j = ctx;
    const int C = j->C;
    const cpu_kernel_set ks = cpu_kernels();
    const size_t words = ((size_t)C + 63) / 64;
    for (size_t r = r0; r < r1; r++) {
        float *x = j->x + r * (size_t)C;   /* one row (in cache) through every step */
        uint64_t *map = j->map ? j->map + r * words : NULL;
        if (ks == CPU_K_AVX2) {
            cpu_avx2_bias_relu_map_row(x, j->bias, j->w, C, map);
            continue;
        }
        if (ks == CPU_K_AVX512) {
            cpu_avx512_add_row(x, j->bias, C);
            cpu_avx512_masked_relu_row(x, x, j->w, NULL, C);
            if (map) cpu_avx512_nonzero_bits(x, C, map);
            continue;
        }
        for (int i = 0; i < C; i++) {
            float v = x[i] + j->bias[i];
            x[i] = v > 0.0f && (!j->w || v > j->w[i]) ? v : 0.0f;
        }
        if (map) {
            memset(map, 0, words * sizeof *map);
            for (int i = 0; i < C; i++) {
                uint32_t bits;
                memcpy(&bits, x + i, sizeof bits);
                if (bits) map[i / 64] |= (uint64_t)1 << (i % 64);
            }
        }
    }
}

static int cpu_bias_masked_relu_map(saed_backend *b, float *x, const float *bias, const float *thr, int N, int C,
                                    uint64_t *map)
{
    (void)b;
    row_job j = {.x = x, .bias = bias, .w = thr, .map = map, .C = C};
    par_for((size_t)N, 16, bias_relu_rows, &j);
    return 0;
}

static int cpu_bias_masked_relu(saed_backend *b, float *x, const float *bias, const float *thr, int N, int C)
{
    return cpu_bias_masked_relu_map(b, x, bias, thr, N, C, NULL);
}

static void scale_cols_rows(void *ctx, size_t r0, size_t r1)
{
    row_job *j = ctx;
    for (size_t r = r0; r < r1; r++) {
        float *x = j->x + r * (size_t)j->C;
        for (int i = 0; i < j->C; i++) x[i] *= j->bias[i];
    }
}

static int cpu_scale_cols(saed_backend *b, float *x, const float *s, int N, int C)
{
    (void)b;
    row_job j = {.x = x, .bias = s, .C = C};
    par_for((size_t)N, 16, scale_cols_rows, &j);
    return 0;
}

static void scale_rows_range(void *ctx, size_t r0, size_t r1)
{
    row_job *j = ctx;
    for (size_t r = r0; r < r1; r++) {
        float *x = j->x + r * (size_t)j->C, sc = j->a[r], sh = j->b ? j->b[r] : 0.0f;
        for (int i = 0; i < j->C; i++) x[i] = x[i] * sc + sh;
    }
}

static int cpu_scale_rows(saed_backend *b, float *x, const float *scale, const float *shift, int N, int C)
{
    (void)b;
    row_job j = {.x = x, .a = scale, .b = shift, .C = C};
    par_for((size_t)N, 32, scale_rows_range, &j);
    return 0;
}

static int cpu_scatter_rows(saed_backend *b, float *x, const float *vals, const int32_t *idx, int N, int C, int k)
{
    for (int r = 0; r < N; r++) {
        float *row = x + (size_t)r * C;
        memset(row, 0, sizeof(float) * (size_t)C);
        for (int j = 0; j < k; j++) {
            int32_t i = idx[(size_t)r * k + j];
            if (i < 0 || i >= C) {
                snprintf(b->err, sizeof b->err, "scatter: index %d outside rows of %d", (int)i, C);
                return -1;
            }
            row[i] = vals[(size_t)r * k + j];
        }
    }
    return 0;
}

/* Two passes: count per row (also when the caller's buffer turns out too small), then copy. */
static int cpu_nonzeros(saed_backend *b, int64_t *rowptr, int32_t *cols, float *vals, size_t cap, const float *x, int N,
                        int ld, int c0, int F)
{
    if (N < 0 || F < 0 || c0 < 0 || (N > 0 && ld < c0 + F)) {
        snprintf(b->err, sizeof b->err, "nonzeros: columns [%d, %d+%d) of rows of %d", c0, c0, F, ld);
        return -1;
    }
    rowptr[0] = 0;
    for (int r = 0; r < N; r++) {
        const float *row = x + (size_t)r * ld + c0;
        int64_t n = 0;
        for (int j = 0; j < F; j++) n += row[j] > 0.0f;
        rowptr[r + 1] = rowptr[r] + n;
    }
    if ((uint64_t)rowptr[N] > cap) return 0;
    for (int r = 0; r < N; r++) {
        const float *row = x + (size_t)r * ld + c0;
        int64_t o = rowptr[r];
        for (int j = 0; j < F; j++)
            if (row[j] > 0.0f) {
                cols[o] = c0 + j;
                vals[o++] = row[j];
            }
    }
    return 0;
}

static void cpu_destroy(saed_backend *b) { free(b); }

saed_backend *backend_cpu_open(void)
{
    saed_backend *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->name = "cpu";
    blas_init();
    snprintf(b->device, sizeof b->device, "CPU (%d threads, OpenBLAS one per product block)", par_threads());
    b->host_memory = 1;
    /* OpenBLAS (AVX-512 machines, SAED_GEMM=openblas) takes sgemv for one row and sgemm for
     * two: a row's bits then depend on its batch. Attention runs per (sequence, head). */
    b->rows_exact = blas_fused();
    b->alloc = cpu_alloc;
    b->release = cpu_release;
    b->upload = cpu_copy;
    b->download = cpu_copy;
    b->gemm = cpu_gemm;
    b->layernorm = cpu_layernorm;
    b->add_bias = cpu_add_bias;
    b->fill_rows = cpu_fill_rows;
    b->gelu = cpu_gelu;
    b->add = cpu_add;
    b->center_rows = cpu_center_rows;
    b->embed = cpu_embed;
    b->copy2d = cpu_copy2d;
    b->attention = cpu_attention;
    b->rmsnorm = cpu_rmsnorm;
    b->rotary = cpu_rotary;
    b->act = cpu_act;
    b->glu = cpu_glu;
    b->softcap = cpu_softcap;
    b->gemm_w16 = cpu_gemm_w16;
    b->argmax_rows = cpu_argmax_rows;
    b->topk_rows = cpu_topk_rows;
    b->masked_relu = cpu_masked_relu;
    b->bias_masked_relu = cpu_bias_masked_relu;
    b->bias_masked_relu_map = cpu_bias_masked_relu_map;
    b->scale_cols = cpu_scale_cols;
    b->scale_rows = cpu_scale_rows;
    b->scatter_rows = cpu_scatter_rows;
    b->nonzeros = cpu_nonzeros;
    b->destroy = cpu_destroy;
    return b;
}
