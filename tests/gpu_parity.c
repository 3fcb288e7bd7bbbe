/* gpu_parity.c: build/tests/gpu-parity, run by `make gpu-parity` (and under compute-sanitizer by
 * `make gpu-parity-memcheck`): the CUDA backend against the CPU backend, the reference, op by op
 * on random inputs and end to end (tests/gpu_parity_e2e.c). Usage:
 *   gpu-parity [--device cuda|cuda:N] [--quick] [--require]
 * Without a usable device it prints "skipped: <reason>" and exits 0 (1 with --require, for a
 * machine that is meant to have one). --device cpu-as-device runs every comparison against the
 * CPU backend posing as a device (host_memory = 0): a self-test of this program and of the
 * engine's device paths (hook copies, sparse feature fetch) on machines without a GPU.
 * tests/gpu_parity_rotary.c and gpu_parity_families.c cover the rotary families' ops and
 * checkpoints.
 * Tolerances are per op, atol + rtol·|ref|: 0 where the kernel repeats the CPU's float
 * operations one for one, GEMM-sized where summation order differs. Exit status 1 on any
 * mismatch. */
#include "tests/gpu_parity.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- checks ---- */

void gp_check(gp *g, int ok, const char *name, const char *fmt, ...)
{
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    g->checks++;
    if (!ok) g->failed++;
    printf("%s %-44s %s\n", ok ? "ok  " : "FAIL", name, detail);
    fflush(stdout);
}

int gp_cmp(gp *g, const char *name, const float *ref, const float *got, size_t n, double atol, double rtol)
{
    double worst = 0, worst_rel = 0;
    size_t bad = 0, same = 0, at = 0;
    for (size_t i = 0; i < n; i++) {
        double r = ref[i], x = got[i], d = fabs(x - r);
        if (memcmp(&ref[i], &got[i], sizeof(float)) == 0) same++;
        if (isnan(r) || isnan(x)) {
            if (!(isnan(r) && isnan(x))) bad++, at = i, worst = INFINITY;
            continue;
        }
        if (d > worst) worst = d, at = i;
        if (fabs(r) > 0 && d / fabs(r) > worst_rel) worst_rel = d / fabs(r);
        if (!(d <= atol + rtol * fabs(r))) bad++;
    }
    char detail[256];
    snprintf(detail, sizeof detail, "max|d| %.2e (rel %.1e) at %zu, tol %.0e+%.0e|ref|, identical %zu/%zu%s", worst,
             worst_rel, at, atol, rtol, same, n, bad ? "" : "");
    if (bad) {
        size_t l = strlen(detail);
        snprintf(detail + l, sizeof detail - l, ", %zu outside (ref %.9g got %.9g)", bad, (double)ref[at], (double)got[at]);
    }
    gp_check(g, bad == 0, name, "%s", detail);
    return bad == 0;
}

int gp_cmp_i32(gp *g, const char *name, const int32_t *ref, const int32_t *got, size_t n)
{
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < n; i++)
        if (ref[i] != got[i] && !bad++) first = i;
    if (bad) gp_check(g, 0, name, "%zu of %zu differ, first at %zu: %d vs %d", bad, n, first, (int)ref[first], (int)got[first]);
    else gp_check(g, 1, name, "%zu of %zu equal", n, n);
    return bad == 0;
}

int gp_cmp_i64(gp *g, const char *name, const int64_t *ref, const int64_t *got, size_t n)
{
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < n; i++)
        if (ref[i] != got[i] && !bad++) first = i;
    if (bad)
        gp_check(g, 0, name, "%zu of %zu differ, first at %zu: %lld vs %lld", bad, n, first, (long long)ref[first],
                 (long long)got[first]);
    else gp_check(g, 1, name, "%zu of %zu equal", n, n);
    return bad == 0;
}

/* ---- data ---- */

static uint64_t next64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

float gp_uniform(gp *g, float lo, float hi)
{
    return lo + (hi - lo) * (float)((next64(&g->rng) >> 40) / 16777216.0);
}

float *gp_rand(gp *g, size_t n, float lo, float hi)
{
    float *x = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; x && i < n; i++) x[i] = gp_uniform(g, lo, hi);
    if (!x) {
        fprintf(stderr, "gpu-parity: out of memory\n");
        exit(1);
    }
    return x;
}

void *gp_alloc(size_t n)
{
    void *p = calloc(1, n ? n : 1);
    if (!p) {
        fprintf(stderr, "gpu-parity: out of memory\n");
        exit(1);
    }
    return p;
}

#define xmalloc gp_alloc

float *gp_up(gp *g, const float *h, size_t n)
{
    float *d = g->dev->alloc(g->dev, sizeof(float) * n);
    if (!d || (n && g->dev->upload(g->dev, d, h, sizeof(float) * n))) {
        printf("FAIL device memory: %s\n", backend_error(g->dev));
        exit(1);
    }
    return d;
}

void gp_down(gp *g, float *h, const float *d, size_t n)
{
    if (n && g->dev->download(g->dev, h, d, sizeof(float) * n)) {
        printf("FAIL download: %s\n", backend_error(g->dev));
        exit(1);
    }
}

float *gp_dup(const float *x, size_t n)
{
    float *y = xmalloc(sizeof(float) * n);
    memcpy(y, x, sizeof(float) * n);
    return y;
}

#define dup gp_dup
#define both_ok gp_both_ok

uint64_t gp_next(gp *g) { return next64(&g->rng); }

int gp_both_ok(gp *g, const char *name, int rc_cpu, int rc_dev)
{
    if (rc_cpu == 0 && rc_dev == 0) return 1;
    gp_check(g, 0, name, "cpu rc %d (%s), device rc %d (%s)", rc_cpu, rc_cpu ? backend_error(g->cpu) : "",
             rc_dev, rc_dev ? backend_error(g->dev) : "");
    return 0;
}

/* ---- per-op comparisons ---- */

static void op_gemm(gp *g)
{
    static const int shapes[][3] = {{67, 45, 83}, {1, 50, 64}, {128, 768, 768}, {256, 3072, 768}};
    int nshapes = g->quick ? 2 : 4;
    for (int s = 0; s < nshapes; s++)
        for (int v = 0; v < 4; v++) {
            const int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2], ta = v & 1, tb = v >> 1;
            /* padded leading dimensions, as the engine's strided views use */
            const int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 5, ldc = N + 2;
            size_t na = (size_t)(ta ? K : M) * lda, nb = (size_t)(tb ? N : K) * ldb, nc = (size_t)M * ldc;
            float *A = gp_rand(g, na, -1, 1), *B = gp_rand(g, nb, -1, 1), *C = gp_rand(g, nc, -1, 1);
            float *Cc = dup(C, nc), *Cd = xmalloc(sizeof(float) * nc);
            float *dA = gp_up(g, A, na), *dB = gp_up(g, B, nb), *dC = gp_up(g, C, nc);
            char name[96];
            snprintf(name, sizeof name, "gemm %c%c %dx%dx%d", ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K);
            int rc = g->cpu->gemm(g->cpu, ta, tb, M, N, K, 0.75f, A, lda, B, ldb, 0.5f, Cc, ldc);
            int rd = g->dev->gemm(g->dev, ta, tb, M, N, K, 0.75f, dA, lda, dB, ldb, 0.5f, dC, ldc);
            if (both_ok(g, name, rc, rd)) {
                gp_down(g, Cd, dC, nc);
                /* fp32 sums of K products of |x| ≤ 1 in another order: ~√K·2^-24 relative */
                gp_cmp(g, name, Cc, Cd, nc, 2e-6 * sqrt((double)K), 1e-5);
            }
            g->dev->release(g->dev, dA), g->dev->release(g->dev, dB), g->dev->release(g->dev, dC);
            free(A), free(B), free(C), free(Cc), free(Cd);
        }
}

static void op_layernorm(gp *g)
{
    static const int Cs[] = {64, 768, 1000};
    for (int ci = 0; ci < 3; ci++)
        for (int inplace = 0; inplace < 2; inplace++) {
            const int N = 37, C = Cs[ci];
            size_t n = (size_t)N * C;
            float *x = gp_rand(g, n, 2.0f, 5.0f), *w = gp_rand(g, C, 0.5f, 1.5f), *b = gp_rand(g, C, -0.5f, 0.5f);
            float *oc = xmalloc(sizeof(float) * n), *od = xmalloc(sizeof(float) * n), *xc = dup(x, n);
            float *dx = gp_up(g, x, n), *dw = gp_up(g, w, C), *db = gp_up(g, b, C), *dout = inplace ? dx : gp_up(g, oc, n);
            char name[96];
            snprintf(name, sizeof name, "layernorm %dx%d%s", N, C, inplace ? " in place" : "");
            int rc = g->cpu->layernorm(g->cpu, inplace ? xc : oc, xc, w, b, N, C, 1e-5f);
            int rd = g->dev->layernorm(g->dev, dout, dx, dw, db, N, C, 1e-5f);
            if (both_ok(g, name, rc, rd)) {
                gp_down(g, od, dout, n);
                gp_cmp(g, name, inplace ? xc : oc, od, n, 1e-6, 1e-6);
            }
            if (!inplace) g->dev->release(g->dev, dout);
            g->dev->release(g->dev, dx), g->dev->release(g->dev, dw), g->dev->release(g->dev, db);
            free(x), free(w), free(b), free(oc), free(od), free(xc);
        }
}

/* add_bias, gelu, add, center_rows, scale_cols, masked_relu: element- and row-wise ops. */
static void op_elementwise(gp *g)
{
    const int N = 29, C = 1031;
    const size_t n = (size_t)N * C;
    char name[96];
    {
        float *x = gp_rand(g, n, -3, 3), *bias = gp_rand(g, C, -1, 1), *xc = dup(x, n), *xd = xmalloc(sizeof(float) * n);
        float *dx = gp_up(g, x, n), *db = gp_up(g, bias, C);
        snprintf(name, sizeof name, "add_bias %dx%d", N, C);
        if (both_ok(g, name, g->cpu->add_bias(g->cpu, xc, bias, N, C), g->dev->add_bias(g->dev, dx, db, N, C))) {
            gp_down(g, xd, dx, n);
            gp_cmp(g, name, xc, xd, n, 0, 0);
        }
        /* scale_cols on the same data */
        snprintf(name, sizeof name, "scale_cols %dx%d", N, C);
        if (both_ok(g, name, g->cpu->scale_cols(g->cpu, xc, bias, N, C), g->dev->scale_cols(g->dev, dx, db, N, C))) {
            gp_down(g, xd, dx, n);
            gp_cmp(g, name, xc, xd, n, 0, 0);
        }
        snprintf(name, sizeof name, "center_rows %dx%d", N, C);
        if (both_ok(g, name, g->cpu->center_rows(g->cpu, xc, N, C), g->dev->center_rows(g->dev, dx, N, C))) {
            gp_down(g, xd, dx, n);
            gp_cmp(g, name, xc, xd, n, 1e-6, 1e-6);
        }
        g->dev->release(g->dev, dx), g->dev->release(g->dev, db);
        free(x), free(bias), free(xc), free(xd);
    }
    {
        /* GELU over [-12, 12] plus the clamp region and exact zeros */
        const size_t m = g->quick ? 20011 : 200003;
        float *x = gp_rand(g, m, -12, 12), *oc = xmalloc(sizeof(float) * m), *od = xmalloc(sizeof(float) * m);
        x[0] = 0.0f, x[1] = -0.0f, x[2] = 30.0f, x[3] = -30.0f, x[4] = 1e-30f;
        float *dx = gp_up(g, x, m), *dout = gp_up(g, oc, m);
        snprintf(name, sizeof name, "gelu n=%zu", m);
        if (both_ok(g, name, g->cpu->gelu(g->cpu, oc, x, m), g->dev->gelu(g->dev, dout, dx, m))) {
            gp_down(g, od, dout, m);
            gp_cmp(g, name, oc, od, m, 1e-7, 1e-6);
        }
        snprintf(name, sizeof name, "gelu in place n=%zu", m);
        float *xc = dup(x, m);
        if (both_ok(g, name, g->cpu->gelu(g->cpu, xc, xc, m), g->dev->gelu(g->dev, dx, dx, m))) {
            gp_down(g, od, dx, m);
            gp_cmp(g, name, xc, od, m, 1e-7, 1e-6);
        }
        /* add: out-of-place and in place */
        float *y = gp_rand(g, m, -5, 5), *dy = gp_up(g, y, m);
        snprintf(name, sizeof name, "add n=%zu", m);
        /* (x on the device is gelu(x) now, as xc on the host) */
        if (both_ok(g, name, g->cpu->add(g->cpu, oc, xc, y, m), g->dev->add(g->dev, dout, dx, dy, m))) {
            gp_down(g, od, dout, m);
            gp_cmp(g, name, oc, od, m, 0, 0);
        }
        snprintf(name, sizeof name, "add in place n=%zu", m);
        if (both_ok(g, name, g->cpu->add(g->cpu, xc, xc, y, m), g->dev->add(g->dev, dx, dx, dy, m))) {
            gp_down(g, od, dx, m);
            gp_cmp(g, name, xc, od, m, 0, 0);
        }
        g->dev->release(g->dev, dx), g->dev->release(g->dev, dout), g->dev->release(g->dev, dy);
        free(x), free(oc), free(od), free(xc), free(y);
    }
    /* masked_relu: plain, threshold, gate, both; out of place and in place */
    for (int v = 0; v < 5; v++) {
        float *h = gp_rand(g, n, -1, 1), *thr = gp_rand(g, C, -0.2f, 0.5f), *gate = gp_rand(g, n, -1, 1);
        for (int i = 0; i < 50; i++) h[i * 7] = i % 2 ? 0.0f : -0.0f;
        thr[3] = h[3]; /* h == thr: off (strict) */
        float *oc = xmalloc(sizeof(float) * n), *od = xmalloc(sizeof(float) * n);
        float *dh = gp_up(g, h, n), *dthr = gp_up(g, thr, C), *dgate = gp_up(g, gate, n), *dout = gp_up(g, oc, n);
        const int use_thr = v == 1 || v == 3, use_gate = v == 2 || v == 3, inplace = v == 4;
        snprintf(name, sizeof name, "masked_relu%s%s%s", use_thr ? " thr" : "", use_gate ? " gate" : "",
                 inplace ? " in place" : "");
        float *hc = dup(h, n);
        int rc = g->cpu->masked_relu(g->cpu, inplace ? hc : oc, hc, use_thr ? thr : NULL, use_gate ? gate : NULL, N, C);
        int rd = g->dev->masked_relu(g->dev, inplace ? dh : dout, dh, use_thr ? dthr : NULL, use_gate ? dgate : NULL, N, C);
        if (both_ok(g, name, rc, rd)) {
            gp_down(g, od, inplace ? dh : dout, n);
            gp_cmp(g, name, inplace ? hc : oc, od, n, 0, 0);
        }
        g->dev->release(g->dev, dh), g->dev->release(g->dev, dthr), g->dev->release(g->dev, dgate);
        g->dev->release(g->dev, dout);
        free(h), free(thr), free(gate), free(oc), free(od), free(hc);
    }
    /* scale_rows with and without shift (host factors) */
    for (int v = 0; v < 2; v++) {
        float *x = gp_rand(g, n, -2, 2), *sc = gp_rand(g, N, 0.1f, 3), *sh = gp_rand(g, N, -1, 1);
        float *xc = dup(x, n), *xd = xmalloc(sizeof(float) * n), *dx = gp_up(g, x, n);
        snprintf(name, sizeof name, "scale_rows %dx%d%s", N, C, v ? " + shift" : "");
        if (both_ok(g, name, g->cpu->scale_rows(g->cpu, xc, sc, v ? sh : NULL, N, C),
                    g->dev->scale_rows(g->dev, dx, sc, v ? sh : NULL, N, C))) {
            gp_down(g, xd, dx, n);
            gp_cmp(g, name, xc, xd, n, 0, 0);
        }
        g->dev->release(g->dev, dx);
        free(x), free(sc), free(sh), free(xc), free(xd);
    }
}

static void op_embed_copy(gp *g)
{
    const int V = 97, P = 40, B = 3, T = 11, C = 24, pos0 = 5;
    float *wte = gp_rand(g, (size_t)V * C, -1, 1), *wpe = gp_rand(g, (size_t)P * C, -1, 1);
    int32_t ids[3 * 11];
    for (int i = 0; i < B * T; i++) ids[i] = (int32_t)(next64(&g->rng) % V);
    float *dwte = gp_up(g, wte, (size_t)V * C), *dwpe = gp_up(g, wpe, (size_t)P * C);
    size_t n = (size_t)B * T * C;
    float *oc = xmalloc(sizeof(float) * n), *od = xmalloc(sizeof(float) * n), *dout = gp_up(g, oc, n);
    static const char *const modes[] = {"embed tokens+positions", "embed tokens", "embed positions"};
    for (int m = 0; m < 3; m++) {
        int rc = g->cpu->embed(g->cpu, oc, m == 2 ? NULL : ids, m == 2 ? NULL : wte, m == 1 ? NULL : wpe, B, T, C, pos0);
        int rd = g->dev->embed(g->dev, dout, m == 2 ? NULL : ids, m == 2 ? NULL : dwte, m == 1 ? NULL : dwpe, B, T, C, pos0);
        if (both_ok(g, modes[m], rc, rd)) {
            gp_down(g, od, dout, n);
            gp_cmp(g, modes[m], oc, od, n, 0, 0);
        }
    }
    /* copy2d: a column block of strided rows into another stride */
    const int rows = 13, width = 7, lds = 31, ldd = 11;
    float *src = gp_rand(g, (size_t)rows * lds, -1, 1), *dc = gp_rand(g, (size_t)rows * ldd, -1, 1);
    float *dd = xmalloc(sizeof(float) * (size_t)rows * ldd);
    float *dsrc = gp_up(g, src, (size_t)rows * lds), *ddst = gp_up(g, dc, (size_t)rows * ldd);
    if (both_ok(g, "copy2d", g->cpu->copy2d(g->cpu, dc + 2, ldd, src + 5, lds, rows, width),
                g->dev->copy2d(g->dev, ddst + 2, ldd, dsrc + 5, lds, rows, width))) {
        gp_down(g, dd, ddst, (size_t)rows * ldd);
        gp_cmp(g, "copy2d 13 rows x 7 (strides 31 -> 11)", dc, dd, (size_t)rows * ldd, 0, 0);
    }
    g->dev->release(g->dev, dwte), g->dev->release(g->dev, dwpe), g->dev->release(g->dev, dout);
    g->dev->release(g->dev, dsrc), g->dev->release(g->dev, ddst);
    free(wte), free(wpe), free(oc), free(od), free(src), free(dc), free(dd);
}

/* Attention as the model calls it: q/k/v inside the fused qkv rows ([q (NH·hd) | k (NKV·hd) |
 * v (NKV·hd)]), or k/v from a cache with room for 3 more positions. The GPT-2 shapes first,
 * then the rotary families': grouped heads (NKV = 1, NKV < NH), Gemma's scale and soft-cap,
 * windows shorter than the sequence, one query against a cache. */
static void op_attention(gp *g)
{
    struct { int B, NH, NKV, hd, Tq, Tk, cache, pattern, window; float softcap, scale; } cs[] = {
        {3, 4, 4, 16, 19, 19, 0, 1, 0, 0, 0},     {3, 4, 4, 16, 19, 19, 0, 0, 0, 0, 0},
        {2, 4, 4, 16, 5, 23, 1, 1, 0, 0, 0},      {1, 2, 2, 8, 1, 1, 0, 1, 0, 0, 0},
        {3, 8, 2, 16, 19, 19, 0, 1, 0, 0, 0},     {2, 4, 1, 32, 23, 23, 0, 1, 4, 5.0f, 0},
        {2, 6, 6, 8, 30, 30, 0, 0, 7, 0, 0.25f},  {3, 8, 2, 16, 1, 23, 1, 1, 4, 50.0f, 0},
        {2, 8, 2, 16, 5, 23, 1, 1, 8, 0, 0},      {2, 4, 1, 12, 1, 1, 0, 1, 1, 30.0f, 0.0625f},
        {2, 8, 4, 256, 40, 40, 0, 1, 16, 50.0f, 0.0625f},
        {8, 12, 12, 64, 128, 128, 0, 0, 0, 0, 0}, {4, 12, 12, 64, 128, 128, 0, 1, 0, 0, 0},
        {2, 32, 8, 128, 128, 128, 0, 0, 64, 0, 0},
    };
    int ncase = g->quick ? 11 : (int)(sizeof cs / sizeof cs[0]);
    for (int ci = 0; ci < ncase; ci++) {
        const int B = cs[ci].B, NH = cs[ci].NH, NKV = cs[ci].NKV, hd = cs[ci].hd, Tq = cs[ci].Tq, Tk = cs[ci].Tk;
        const int C = NH * hd, KV = NKV * hd, W = C + 2 * KV, cache = cs[ci].cache;
        const int ldq = W, ldkv = cache ? KV : W;
        const long sbkv = cache ? (long)(Tk + 3) * KV : (long)Tq * W;
        size_t nq = (size_t)B * Tq * ldq, nkv = cache ? (size_t)B * (Tk + 3) * KV : nq;
        float *q = gp_rand(g, nq, -2, 2), *kv = cache ? gp_rand(g, nkv, -2, 2) : q;
        float *vv = cache ? gp_rand(g, nkv, -2, 2) : q + C + KV, *k = cache ? kv : q + C;
        size_t nz = (size_t)B * Tq * C, np = (size_t)B * NH * Tq * Tk;
        float *zc = xmalloc(sizeof(float) * nz), *zd = xmalloc(sizeof(float) * nz);
        float *pc = xmalloc(sizeof(float) * np), *pd = xmalloc(sizeof(float) * np);
        float *dq = gp_up(g, q, nq), *dk = cache ? gp_up(g, kv, nkv) : dq + C;
        float *dv = cache ? gp_up(g, vv, nkv) : dq + C + KV;
        float *dz = gp_up(g, zc, nz), *dp = cs[ci].pattern ? gp_up(g, pc, np) : NULL;
        char name[128], extra[64] = "";
        if (NKV != NH) snprintf(extra + strlen(extra), sizeof extra - strlen(extra), " KV%d", NKV);
        if (cs[ci].window) snprintf(extra + strlen(extra), sizeof extra - strlen(extra), " win%d", cs[ci].window);
        if (cs[ci].softcap > 0) snprintf(extra + strlen(extra), sizeof extra - strlen(extra), " cap%g", cs[ci].softcap);
        if (cs[ci].scale > 0) snprintf(extra + strlen(extra), sizeof extra - strlen(extra), " scale%g", cs[ci].scale);
        snprintf(name, sizeof name, "attention B%d H%d%s hd%d %d/%d%s%s", B, NH, extra, hd, Tq, Tk, cache ? " cache" : "",
                 cs[ci].pattern ? " +pattern" : "");
        attn_shape sh = {.B = B, .Tq = Tq, .Tk = Tk, .NH = NH, .NKV = NKV, .hd = hd,
                         .scale = cs[ci].scale > 0 ? cs[ci].scale : 1.0f / sqrtf((float)hd),
                         .softcap = cs[ci].softcap, .window = cs[ci].window};
        int rc = g->cpu->attention(g->cpu, zc, cs[ci].pattern ? pc : NULL, q, ldq, k, vv, ldkv, sbkv, &sh);
        int rd = g->dev->attention(g->dev, dz, dp, dq, ldq, dk, dv, ldkv, sbkv, &sh);
        if (both_ok(g, name, rc, rd)) {
            gp_down(g, zd, dz, nz);
            gp_cmp(g, name, zc, zd, nz, 1e-5, 1e-4);
            if (dp) {
                gp_down(g, pd, dp, np);
                char pn[160];
                snprintf(pn, sizeof pn, "%s: pattern", name);
                gp_cmp(g, pn, pc, pd, np, 1e-6, 1e-4);
            }
        }
        g->dev->release(g->dev, dq), g->dev->release(g->dev, dz);
        if (dp) g->dev->release(g->dev, dp);
        if (cache) {
            g->dev->release(g->dev, dk), g->dev->release(g->dev, dv);
            free(kv), free(vv);
        }
        free(q), free(zc), free(zd), free(pc), free(pd);
    }
    /* Tq > Tk, and query heads that do not split over the key/value heads, are errors on both */
    float one = 0;
    attn_shape bad = {.B = 1, .Tq = 2, .Tk = 1, .NH = 1, .NKV = 1, .hd = 1, .scale = 1.0f};
    gp_check(g, g->cpu->attention(g->cpu, &one, NULL, &one, 1, &one, &one, 1, 1, &bad) == -1 &&
                    g->dev->attention(g->dev, &one, NULL, &one, 1, &one, &one, 1, 1, &bad) == -1,
             "attention refuses Tq > Tk", "cpu: %s | device: %s", backend_error(g->cpu), backend_error(g->dev));
    attn_shape odd = {.B = 1, .Tq = 1, .Tk = 1, .NH = 3, .NKV = 2, .hd = 1, .scale = 1.0f};
    int rc = g->cpu->attention(g->cpu, &one, NULL, &one, 3, &one, &one, 2, 2, &odd);
    int rd = g->dev->attention(g->dev, &one, NULL, &one, 3, &one, &one, 2, 2, &odd);
    gp_check(g, rc == -1 && rd == -1 && strstr(backend_error(g->dev), "key/value heads"),
             "attention refuses NH % NKV != 0", "cpu: %s | device: %s", backend_error(g->cpu), backend_error(g->dev));
}

static void op_select(gp *g)
{
    char name[96];
    {
        /* argmax over a vocabulary, ties planted (the lower index wins) */
        const int N = g->quick ? 9 : 50, C = 50257;
        size_t n = (size_t)N * C;
        float *x = gp_rand(g, n, -5, 5);
        for (int r = 0; r < N; r++) {
            int a = (int)(next64(&g->rng) % C), b = (int)(next64(&g->rng) % C);
            x[(size_t)r * C + a] = x[(size_t)r * C + b] = 9.0f + (r % 3);
        }
        int32_t *ic = xmalloc(sizeof(int32_t) * N), *id = xmalloc(sizeof(int32_t) * N);
        float *dx = gp_up(g, x, n);
        snprintf(name, sizeof name, "argmax_rows %dx%d ties", N, C);
        if (both_ok(g, name, g->cpu->argmax_rows(g->cpu, ic, x, N, C), g->dev->argmax_rows(g->dev, id, dx, N, C)))
            gp_cmp_i32(g, name, ic, id, (size_t)N);
        g->dev->release(g->dev, dx);
        free(x), free(ic), free(id);
    }
    {
        /* top-k: values on a coarse grid (many ties), ±0 mixed, k from 1 to past the kernel's
         * 2048 (host fallback) */
        const int N = g->quick ? 5 : 33, C = 24576;
        static const int ks[] = {1, 8, 64, 257, 2048, 3000};
        size_t n = (size_t)N * C;
        float *x = gp_rand(g, n, -4, 4);
        for (size_t i = 0; i < n; i++) x[i] = roundf(x[i] * 16) / 16;
        for (size_t i = 0; i < n; i += 97) x[i] = (i / 97) % 2 ? 0.0f : -0.0f;
        float *dx = gp_up(g, x, n);
        for (size_t ki = 0; ki < sizeof ks / sizeof *ks; ki++) {
            const int k = ks[ki];
            float *vc = xmalloc(sizeof(float) * (size_t)N * k), *vd = xmalloc(sizeof(float) * (size_t)N * k);
            int32_t *ic = xmalloc(sizeof(int32_t) * (size_t)N * k), *id = xmalloc(sizeof(int32_t) * (size_t)N * k);
            snprintf(name, sizeof name, "topk_rows %dx%d k=%d", N, C, k);
            if (both_ok(g, name, g->cpu->topk_rows(g->cpu, vc, ic, x, N, C, k), g->dev->topk_rows(g->dev, vd, id, dx, N, C, k))) {
                gp_cmp_i32(g, name, ic, id, (size_t)N * k);
                gp_cmp(g, name, vc, vd, (size_t)N * k, 0, 0);
            }
            free(vc), free(vd), free(ic), free(id);
        }
        float v;
        int32_t i;
        gp_check(g, g->cpu->topk_rows(g->cpu, &v, &i, x, 1, C, C + 1) == -1 && g->dev->topk_rows(g->dev, &v, &i, dx, 1, C, C + 1) == -1,
                 "topk_rows refuses k > C", "cpu: %s | device: %s", backend_error(g->cpu), backend_error(g->dev));
        g->dev->release(g->dev, dx);
        free(x);
    }
    {
        /* top-k whose row is all equal: the first k indices */
        const int C = 5000, k = 40;
        float *x = xmalloc(sizeof(float) * C), v1[40], v2[40];
        int32_t i1[40], i2[40];
        for (int i = 0; i < C; i++) x[i] = 0.25f;
        float *dx = gp_up(g, x, C);
        if (both_ok(g, "topk_rows all tied", g->cpu->topk_rows(g->cpu, v1, i1, x, 1, C, k),
                    g->dev->topk_rows(g->dev, v2, i2, dx, 1, C, k)))
            gp_cmp_i32(g, "topk_rows all tied", i1, i2, k);
        g->dev->release(g->dev, dx);
        free(x);
    }
    {
        /* scatter_rows: k entries per row (a repeated index keeps the last), then a bad index */
        const int N = 21, C = 300, k = 9;
        float *vals = gp_rand(g, (size_t)N * k, 0, 3);
        int32_t *idx = xmalloc(sizeof(int32_t) * (size_t)N * k);
        for (int i = 0; i < N * k; i++) idx[i] = (int32_t)(next64(&g->rng) % C);
        idx[5] = idx[4];
        float *xc = gp_rand(g, (size_t)N * C, -1, 1), *xd = xmalloc(sizeof(float) * (size_t)N * C);
        float *dx = gp_up(g, xc, (size_t)N * C);
        if (both_ok(g, "scatter_rows", g->cpu->scatter_rows(g->cpu, xc, vals, idx, N, C, k),
                    g->dev->scatter_rows(g->dev, dx, vals, idx, N, C, k))) {
            gp_down(g, xd, dx, (size_t)N * C);
            gp_cmp(g, "scatter_rows 21x300 k=9", xc, xd, (size_t)N * C, 0, 0);
        }
        idx[7] = C;
        int rc = g->cpu->scatter_rows(g->cpu, xc, vals, idx, N, C, k), rd = g->dev->scatter_rows(g->dev, dx, vals, idx, N, C, k);
        gp_check(g, rc == -1 && rd == -1 && strstr(backend_error(g->dev), "outside"), "scatter_rows refuses a bad index",
                 "cpu: %s | device: %s", backend_error(g->cpu), backend_error(g->dev));
        g->dev->release(g->dev, dx);
        free(vals), free(idx), free(xc), free(xd);
    }
}

static void op_nonzeros(gp *g)
{
    const int N = 77, ld = 3000;
    size_t n = (size_t)N * ld;
    float *x = gp_rand(g, n, -1, 1);
    for (size_t i = 0; i < n; i++) x[i] = x[i] > 0.9f ? x[i] : x[i] > 0.5f ? 0.0f : x[i] > 0.4f ? -0.0f : -x[i] * 0.0f;
    x[3] = 1e-38f; /* a subnormal-adjacent positive counts */
    float *dx = gp_up(g, x, n);
    struct { int c0, F; } cs[] = {{0, 3000}, {100, 2048}, {2999, 1}, {0, 0}};
    for (int ci = 0; ci < 4; ci++) {
        const int c0 = cs[ci].c0, F = cs[ci].F;
        size_t cap = (size_t)N * (F ? F : 1);
        int64_t *rc_ = xmalloc(sizeof(int64_t) * (N + 1)), *rd_ = xmalloc(sizeof(int64_t) * (N + 1));
        int32_t *cc = xmalloc(sizeof(int32_t) * cap), *cd = xmalloc(sizeof(int32_t) * cap);
        float *vc = xmalloc(sizeof(float) * cap), *vd = xmalloc(sizeof(float) * cap);
        char name[96];
        snprintf(name, sizeof name, "nonzeros %dx[%d,%d) of %d", N, c0, c0 + F, ld);
        if (both_ok(g, name, g->cpu->nonzeros(g->cpu, rc_, cc, vc, cap, x, N, ld, c0, F),
                    g->dev->nonzeros(g->dev, rd_, cd, vd, cap, dx, N, ld, c0, F))) {
            gp_cmp_i64(g, name, rc_, rd_, (size_t)N + 1);
            size_t tot = (size_t)rc_[N];
            if (tot == (size_t)rd_[N] && tot) {
                gp_cmp_i32(g, name, cc, cd, tot);
                gp_cmp(g, name, vc, vd, tot, 0, 0);
            }
            /* a buffer one short: the total comes back, nothing is written */
            if (tot) {
                for (size_t i = 0; i < cap; i++) cd[i] = -7;
                int rd = g->dev->nonzeros(g->dev, rd_, cd, vd, tot - 1, dx, N, ld, c0, F);
                gp_check(g, rd == 0 && (size_t)rd_[N] == tot && cd[0] == -7, "nonzeros with a short buffer",
                         "rc %d, total %lld (want %zu), cols untouched %d", rd, (long long)rd_[N], tot, cd[0] == -7);
            }
        }
        free(rc_), free(rd_), free(cc), free(cd), free(vc), free(vd);
    }
    g->dev->release(g->dev, dx);
    free(x);
}

void gp_ops(gp *g)
{
    op_gemm(g);
    op_layernorm(g);
    op_elementwise(g);
    op_embed_copy(g);
    op_attention(g);
    gp_ops_rotary(g);
    op_select(g);
    op_nonzeros(g);
}

/* ---- main ---- */

int main(int argc, char **argv)
{
    const char *spec = "cuda";
    int require = 0;
    gp g = {.rng = 20260101};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) g.quick = 1;
        else if (!strcmp(argv[i], "--require")) require = 1;
        else if (!strcmp(argv[i], "--device") && i + 1 < argc) spec = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--device cuda|cuda:N|cpu-as-device] [--quick] [--require]\n", argv[0]);
            return 2;
        }
    }
    char err[512];
    g.cpu = backend_cpu_open();
    if (!strcmp(spec, "cpu-as-device")) {
        g.dev = backend_cpu_open();
        g.dev->host_memory = 0; /* the engine then takes its device paths */
        g.dev->name = "cpu-as-device";
    } else if (strncmp(spec, "cuda", 4) || !(g.dev = backend_open(spec, err, sizeof err))) {
        if (strncmp(spec, "cuda", 4)) snprintf(err, sizeof err, "--device %s: expected cuda, cuda:N or cpu-as-device", spec);
        printf("skipped: %s\n", err);
        backend_close(g.cpu);
        return require ? 1 : 0;
    }
    printf("gpu-parity: %s against %s%s\n", g.dev->device, g.cpu->device, g.quick ? " (quick)" : "");
    gp_ops(&g);
    gp_e2e(&g);
    gp_families(&g);
    gp_precision(&g);
    int healthy = !g.dev->healthy || g.dev->healthy(g.dev) == 0;
    gp_check(&g, healthy, "device healthy at the end", "%s", healthy ? "" : backend_error(g.dev));
    printf("gpu-parity: %d checks, %d failed\n", g.checks, g.failed);
    backend_close(g.dev);
    backend_close(g.cpu);
    return g.failed ? 1 : 0;
}
