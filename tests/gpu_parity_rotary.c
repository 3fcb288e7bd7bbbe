/* gpu_parity_rotary.c: gpu-parity's checks of the rotary families' ops (gpu_parity.h):
 * rmsnorm, rotary, act, glu, softcap and gemm_w16, device against the CPU on random inputs at
 * the shapes that matter (d_model up to 4096, heads of 256, partial rotary with an odd number of
 * pairs, BF16 and F16 weights with padded strides). Tolerances: 0 where the kernel repeats the
 * CPU's float operations exactly (rotary); the double row sum's order for rmsnorm; a few ulp
 * where both sides call libm (CUDA's tanhf, erff and expf are within 2 ulp of glibc's); GEMM
 * sums in another order for gemm_w16. Attention over the full attn_shape is in gpu_parity.c's
 * op_attention. */
#include <math.h>   // defines: cos, sin, sqrt
#include <stdio.h>  // defines: snprintf
#include <stdlib.h> // defines: free
#include <string.h> // defines: memcpy

#include "gpu/blas16.h"        // defines: blas_widen16
#include "tests/gpu_parity.h"  // defines: gp, gp_cmp, gp_rand

static void op_rmsnorm(gp *g)
{
    static const int Cs[] = {64, 1000, 4096};
    for (int ci = 0; ci < 3; ci++)
        for (int v = 0; v < 3; v++) {
            /* v: 0 weight, 1 weight in place, 2 no weight */
            const int N = 37, C = Cs[ci], inplace = v == 1, use_w = v != 2;
            size_t n = (size_t)N * C;
            float *x = gp_rand(g, n, -3.0f, 5.0f), *w = gp_rand(g, C, 0.5f, 1.5f);
            float *oc = gp_alloc(sizeof(float) * n), *od = gp_alloc(sizeof(float) * n), *xc = gp_dup(x, n);
            float *dx = gp_up(g, x, n), *dw = gp_up(g, w, C), *dout = inplace ? dx : gp_up(g, oc, n);
            char name[96];
            snprintf(name, sizeof name, "rmsnorm %dx%d%s%s", N, C, inplace ? " in place" : "", use_w ? "" : " no weight");
            int rc = g->cpu->rmsnorm(g->cpu, inplace ? xc : oc, xc, use_w ? w : NULL, N, C, 1e-6f);
            int rd = g->dev->rmsnorm(g->dev, dout, dx, use_w ? dw : NULL, N, C, 1e-6f);
            if (gp_both_ok(g, name, rc, rd)) {
                gp_down(g, od, dout, n);
                gp_cmp(g, name, inplace ? xc : oc, od, n, 1e-6, 1e-6);
            }
            if (!inplace) g->dev->release(g->dev, dout);
            g->dev->release(g->dev, dx), g->dev->release(g->dev, dw);
            free(x), free(w), free(oc), free(od), free(xc);
        }
}

/* cos | sin rows for positions 0..P-1, as model_rotary.c's table (theta 10000). */
static float *rope_table(int P, int rot)
{
    const int half = rot / 2;
    float *cs = gp_alloc(sizeof(float) * (size_t)P * rot);
    for (int p = 0; p < P; p++)
        for (int i = 0; i < half; i++) {
            double f = 1.0 / pow(10000.0, (2.0 * i) / rot);
            cs[(size_t)p * rot + i] = (float)cos(p * f);
            cs[(size_t)p * rot + half + i] = (float)sin(p * f);
        }
    return cs;
}

/* Rotary on q and on k inside fused rows [q | k | v], as the model calls it. */
static void op_rotary(gp *g)
{
    struct { int B, T, NH, NKV, hd, rot, pos0; } cs[] = {
        {2, 7, 4, 2, 16, 16, 3},   /* Llama: whole heads, GQA */
        {3, 5, 4, 4, 16, 4, 0},    /* Pythia: rotary_pct 0.25 */
        {2, 9, 3, 3, 12, 6, 11},   /* partial, an odd number of pairs */
        {1, 1, 8, 1, 64, 64, 40},  /* one token against a cache, one key/value head */
        {2, 33, 8, 4, 256, 256, 0}, /* Gemma-2's head_dim 256 */
        {2, 17, 32, 8, 128, 128, 5},
    };
    int ncase = g->quick ? 4 : (int)(sizeof cs / sizeof cs[0]);
    for (int ci = 0; ci < ncase; ci++) {
        const int B = cs[ci].B, T = cs[ci].T, NH = cs[ci].NH, NKV = cs[ci].NKV, hd = cs[ci].hd, rot = cs[ci].rot;
        const int pos0 = cs[ci].pos0, Q = NH * hd, KV = NKV * hd, W = Q + 2 * KV, P = pos0 + T + 2;
        size_t n = (size_t)B * T * W;
        float *x = gp_rand(g, n, -2, 2), *tab = rope_table(P, rot), *xc = gp_dup(x, n), *xd = gp_alloc(sizeof(float) * n);
        float *dx = gp_up(g, x, n), *dtab = gp_up(g, tab, (size_t)P * rot);
        char name[96];
        snprintf(name, sizeof name, "rotary B%d T%d H%d/%d hd%d rot%d pos0 %d", B, T, NH, NKV, hd, rot, pos0);
        int rc = g->cpu->rotary(g->cpu, xc, W, B, T, NH, hd, rot, tab, pos0);
        int rd = g->dev->rotary(g->dev, dx, W, B, T, NH, hd, rot, dtab, pos0);
        if (rc == 0 && rd == 0) {
            rc = g->cpu->rotary(g->cpu, xc + Q, W, B, T, NKV, hd, rot, tab, pos0);
            rd = g->dev->rotary(g->dev, dx + Q, W, B, T, NKV, hd, rot, dtab, pos0);
        }
        if (gp_both_ok(g, name, rc, rd)) {
            gp_down(g, xd, dx, n);
            /* q and k rotated, every v and every unrotated dim untouched: whole rows compared */
            gp_cmp(g, name, xc, xd, n, 0, 0);
        }
        g->dev->release(g->dev, dx), g->dev->release(g->dev, dtab);
        free(x), free(tab), free(xc), free(xd);
    }
    float one = 0;
    int rc = g->cpu->rotary(g->cpu, &one, 8, 1, 1, 1, 8, 5, &one, 0), rd = g->dev->rotary(g->dev, &one, 8, 1, 1, 1, 8, 5, &one, 0);
    gp_check(g, rc == -1 && rd == -1, "rotary refuses an odd rotary_dim", "cpu: %s | device: %s", backend_error(g->cpu),
             backend_error(g->dev));
}

/* act and glu for each activation, softcap. */
static void op_act(gp *g)
{
    static const backend_act acts[] = {ACT_GELU_TANH, ACT_GELU_ERF, ACT_SILU};
    static const char *const names[] = {"gelu_tanh", "gelu_erf", "silu"};
    const size_t m = g->quick ? 20011 : 200003;
    float *x = gp_rand(g, m, -12, 12), *up = gp_rand(g, m, -3, 3);
    static const float edge[] = {0.0f, -0.0f, 30.0f, -30.0f, 100.0f, -100.0f, 1e-30f, -1e-30f, 88.5f, -88.5f, 1e-3f};
    memcpy(x, edge, sizeof edge);
    float *oc = gp_alloc(sizeof(float) * m), *od = gp_alloc(sizeof(float) * m);
    float *dx = gp_up(g, x, m), *dup_ = gp_up(g, up, m), *dout = gp_up(g, oc, m);
    char name[96];
    for (int a = 0; a < 3; a++) {
        /* the tanh GELU of act is GPT-2's (exact kernel); the rest call libm on both sides */
        const double atol = a == 0 ? 1e-7 : 1e-6, rtol = a == 0 ? 1e-6 : 2e-6;
        snprintf(name, sizeof name, "act %s n=%zu", names[a], m);
        if (gp_both_ok(g, name, g->cpu->act(g->cpu, oc, x, m, acts[a]), g->dev->act(g->dev, dout, dx, m, acts[a]))) {
            gp_down(g, od, dout, m);
            gp_cmp(g, name, oc, od, m, atol, rtol);
        }
        snprintf(name, sizeof name, "glu %s n=%zu", names[a], m);
        if (gp_both_ok(g, name, g->cpu->glu(g->cpu, oc, x, up, m, acts[a]), g->dev->glu(g->dev, dout, dx, dup_, m, acts[a]))) {
            gp_down(g, od, dout, m);
            gp_cmp(g, name, oc, od, m, 3e-6, 2e-6); /* act's error times |up| <= 3 */
        }
    }
    /* in place: act over a copy, then glu into its gate */
    float *xc = gp_dup(x, m), *dxc = gp_up(g, x, m);
    snprintf(name, sizeof name, "act silu in place, then glu gelu_tanh into the gate");
    int rc = g->cpu->act(g->cpu, xc, xc, m, ACT_SILU), rd = g->dev->act(g->dev, dxc, dxc, m, ACT_SILU);
    if (rc == 0 && rd == 0) {
        rc = g->cpu->glu(g->cpu, xc, xc, up, m, ACT_GELU_TANH);
        rd = g->dev->glu(g->dev, dxc, dxc, dup_, m, ACT_GELU_TANH);
    }
    if (gp_both_ok(g, name, rc, rd)) {
        gp_down(g, od, dxc, m);
        gp_cmp(g, name, xc, od, m, 3e-6, 4e-6);
    }
    /* Gemma-2's caps: attention 50, final 30; inputs past both */
    static const float caps[] = {30.0f, 50.0f};
    for (int c = 0; c < 2; c++) {
        float *y = gp_rand(g, m, -200, 200);
        y[0] = 0.0f, y[1] = 1e-20f, y[2] = -1e4f;
        float *yc = gp_dup(y, m), *dy = gp_up(g, y, m);
        snprintf(name, sizeof name, "softcap %g n=%zu", caps[c], m);
        if (gp_both_ok(g, name, g->cpu->softcap(g->cpu, yc, m, caps[c]), g->dev->softcap(g->dev, dy, m, caps[c]))) {
            gp_down(g, od, dy, m);
            gp_cmp(g, name, yc, od, m, 1e-6, 1e-6);
        }
        g->dev->release(g->dev, dy);
        free(y), free(yc);
    }
    g->dev->release(g->dev, dx), g->dev->release(g->dev, dup_), g->dev->release(g->dev, dout), g->dev->release(g->dev, dxc);
    free(x), free(up), free(oc), free(od), free(xc);
}

/* Random 16-bit weights with |w| < 1, as stored bits: BF16 (exponents 2^-12 .. 2^-1) or IEEE
 * half (2^-12 .. 2^-1, with some subnormals, which the widening must keep). */
static uint16_t *rand16(gp *g, size_t n, int bf16)
{
    uint16_t *w = gp_alloc(sizeof(uint16_t) * n);
    for (size_t i = 0; i < n; i++) {
        uint64_t r = gp_next(g);
        uint16_t s = (uint16_t)((r & 1) << 15);
        if (bf16) w[i] = s | (uint16_t)(((115 + (r >> 1) % 12) & 0xff) << 7) | (uint16_t)((r >> 8) & 0x7f);
        else w[i] = s | (uint16_t)((((r >> 1) % 16 == 0 ? 0 : 3 + (r >> 1) % 12) & 0x1f) << 10) | (uint16_t)((r >> 8) & 0x3ff);
    }
    return w;
}

/* gemm_w16 as the model calls it (C = A · Wᵀ, beta 0 or 1) and with padded strides and
 * beta 0.5, against the CPU's 16-bit path and against fp32 gemm on the widened weights. */
static void op_gemm_w16(gp *g)
{
    /* the last: a down projection's K (d_mlp 14336) over more weight rows than the device
     * widens at once (128 MB of float32 = 2304 rows), so a second block starts at row 2304 */
    static const int shapes[][3] = {{67, 45, 83}, {1, 130, 64}, {5, 1000, 96}, {128, 768, 768}, {33, 512, 4096},
                                    {3, 4096, 1024}, {2, 2500, 14336}};
    int nshapes = g->quick ? 3 : 7;
    for (int s = 0; s < nshapes; s++)
        for (int v = 0; v < 4; v++) {
            const int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2], bf16 = v & 1, padded = v >> 1;
            const int lda = K + (padded ? 3 : 0), ldc = N + (padded ? 2 : 0);
            const float beta = padded ? 0.5f : 0.0f;
            size_t na = (size_t)M * lda, nw = (size_t)N * K, nc = (size_t)M * ldc;
            float *A = gp_rand(g, na, -1, 1), *C = gp_rand(g, nc, -1, 1), *Cc = gp_dup(C, nc), *Cf = gp_dup(C, nc);
            float *Cd = gp_alloc(sizeof(float) * nc), *wide = gp_alloc(sizeof(float) * nw);
            uint16_t *W = rand16(g, nw, bf16);
            blas_widen16(wide, W, nw, bf16);
            float *dA = gp_up(g, A, na), *dC = gp_up(g, C, nc);
            uint16_t *dW = g->dev->alloc(g->dev, sizeof(uint16_t) * nw);
            if (!dW || g->dev->upload(g->dev, dW, W, sizeof(uint16_t) * nw)) {
                printf("FAIL device memory: %s\n", backend_error(g->dev));
                exit(1);
            }
            char name[96];
            snprintf(name, sizeof name, "gemm_w16 %s %dx%dx%d%s", bf16 ? "bf16" : "f16", M, N, K,
                     padded ? " strided beta .5" : "");
            int rc = g->cpu->gemm_w16(g->cpu, M, N, K, A, lda, W, bf16, beta, Cc, ldc);
            int rd = g->dev->gemm_w16(g->dev, M, N, K, dA, lda, dW, bf16, beta, dC, ldc);
            if (gp_both_ok(g, name, rc, rd)) {
                gp_down(g, Cd, dC, nc);
                gp_cmp(g, name, Cc, Cd, nc, 2e-6 * sqrt((double)K), 1e-5);
                /* and against float32 weights: the widening is exact */
                g->cpu->gemm(g->cpu, 0, 1, M, N, K, 1.0f, A, lda, wide, K, beta, Cf, ldc);
                char n2[128];
                snprintf(n2, sizeof n2, "%s vs fp32 gemm", name);
                gp_cmp(g, n2, Cf, Cd, nc, 2e-6 * sqrt((double)K), 1e-5);
            }
            g->dev->release(g->dev, dA), g->dev->release(g->dev, dC), g->dev->release(g->dev, dW);
            free(A), free(C), free(Cc), free(Cf), free(Cd), free(wide), free(W);
        }
}

void gp_ops_rotary(gp *g)
{
    op_rmsnorm(g);
    op_rotary(g);
    op_act(g);
    op_gemm_w16(g);
}
