/* dash_weights.c: the dashboard quantities that come from the weights alone (dashboard.h):
 * logit lens W_dec[i] @ W_U with top/bottom logits and a torch.histc histogram, neuron
 * alignment, and decoder cosine-similarity neighbours against every feature of the SAE.
 * Products are blocked blas_sgemm calls so memory stays O(block · (V + d_sae)); selection
 * runs per row on the par.c pool between them. No streaming state, no I/O. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/dash_kernels.h" // defines: dk_outside, dk_scaled_at_least, dk_minmax, dk_histc
#include "engine/dashboard.h"    // defines: dash_weights, dash_feature, dash_histc_bin, dash_linspace
#include "gpu/blas.h"            // defines: blas_sgemm
#include "gpu/par.h"             // defines: par_for

/* Floats per GEMM output block (256 MB): over a thousand rows, so that OpenBLAS's packing of
 * the whole W_U (154 MB for GPT-2) or W_dec per call is small next to the product (half the
 * block: 3% slower; dash_run calls this after freeing its batch buffers). */
#define BLOCK_FLOATS (64u << 20)
#define SCAN_CHUNK 4096         /* values per filtered scan of a row (dk_outside) */

void dash_wopts_default(dash_wopts *o)
{
    o->logit_k = 10;
    o->logit_bins = 50;
    o->cos_k = 10;
}

/* Bounded selection kept sorted best first: larger v (smaller when low), then lower index.
 * The order is total, so the result does not depend on the order of the offers. */
static inline int sel_before(float v, int i, float w, int j, int low)
{
    return (low ? v < w : v > w) || (v == w && i < j);
}

static void sel_offer(int32_t *idx, float *val, int *n, int k, float v, int i, int low)
{
    if (k <= 0) return;
    int m = *n;
    if (m == k && !sel_before(v, i, val[m - 1], idx[m - 1], low)) return;
    if (m < k) m++;
    int p = m - 1;
    while (p > 0 && sel_before(v, i, val[p - 1], idx[p - 1], low)) {
        idx[p] = idx[p - 1];
        val[p] = val[p - 1];
        p--;
    }
    idx[p] = i;
    val[p] = v;
    *n = m;
}

typedef struct wjob {
    const dash_wopts *o;
    const float *W_dec, *C, *nrm;
    const float *inv;         /* 1/nrm (0 for a zero row), for the cosine filter; NULL: no filter */
    float *edges;             /* (block rows, logit_bins + 1) scratch */
    int d_sae, d_in, V, f0, r0;
    dash_feature *out;
    /* cosine blocks: C (m rows of features a0.., ldc) holds columns [0, f0) then [a0, d_sae) */
    int *n_cos;               /* entries so far per output row */
    int a0, m, ldc;
} wjob;

/* Per row of logits: top/bottom k (once both lists are full, only values beyond their worst
 * entries can enter, and dk_outside finds those a chunk at a time; thresholds only tighten, so
 * the chunk's candidates are a superset and sel_offer still decides), then the histogram. */
static void logit_rows(void *ctx, size_t begin, size_t end)
{
    wjob *w = ctx;
    int nb = w->o->logit_bins, V = w->V;
    int32_t idx[SCAN_CHUNK];
    for (size_t r = begin; r < end; r++) {
        const float *l = w->C + r * (size_t)V;
        dash_feature *f = &w->out[w->r0 + (int)r];
        int np = 0, nn = 0, k = f->n_logits, i = 0;
        for (; i < V && (np < k || nn < k); i++) {
            float v = l[i];
            if (v != v) continue;
            sel_offer(f->pos_ids, f->pos_values, &np, k, v, i, 0);
            sel_offer(f->neg_ids, f->neg_values, &nn, k, v, i, 1);
        }
        while (k > 0 && i < V) {
            int len = V - i < SCAN_CHUNK ? V - i : SCAN_CHUNK;
            int c = dk_outside(l + i, len, f->neg_values[k - 1], f->pos_values[k - 1], idx);
            for (int q = 0; q < c; q++) {
                float v = l[i + idx[q]];
                sel_offer(f->pos_ids, f->pos_values, &np, k, v, i + idx[q], 0);
                sel_offer(f->neg_ids, f->neg_values, &nn, k, v, i + idx[q], 1);
            }
            i += len;
        }
        f->n_logits = np;
        float lo, hi;
        dk_minmax(l, V, &lo, &hi);
        memset(f->logit_hist_heights, 0, (size_t)nb * sizeof *f->logit_hist_heights);
        if (!(lo <= hi)) {
            f->n_logit_hist = 0;
            continue;
        }
        if (lo == hi) { /* torch.histc widens an empty range by 1 on each side */
            lo = (float)((double)lo - 1);
            hi = (float)((double)hi + 1);
        }
        dk_histc(l, V, lo, hi, nb, f->logit_hist_heights);
        dash_linspace(lo, hi, nb + 1, w->edges + r * ((size_t)nb + 1));
        const float *e = w->edges + r * ((size_t)nb + 1);
        for (int i = 0; i < nb; i++) f->logit_hist_values[i] = (e[i] + e[i + 1]) / 2;
        f->n_logit_hist = nb;
    }
}

static inline float cos_exact(float dot, float na, float nb)
{
    double d = (double)na * nb; /* exact, so the same for (a, b) and (b, a) */
    return d > 0 ? (float)(dot / d) : 0.0f;
}

/* Offers feature f (norm nf, 1/nf = s) the cosines of a run of dot products c[0, len) with
 * features feat.. . Once its list is full, a float estimate c·s·(1/‖b‖) within 1e-4 of the
 * exact value picks the candidates a chunk at a time; each is then computed exactly (double
 * division) and offered, as the plain loop would. */
static void cos_run(const wjob *w, dash_feature *f, int *n, const float *c, int feat, int len, float nf, float s)
{
    int32_t idx[SCAN_CHUNK];
    int self = f->index, k = f->n_cos, b = 0;
    for (; b < len && (*n < k || !w->inv); b++)
        if (feat + b != self) sel_offer(f->cos_idx, f->cos_values, n, k, cos_exact(c[b], nf, w->nrm[feat + b]), feat + b, 0);
    while (k > 0 && b < len) {
        int l = len - b < SCAN_CHUNK ? len - b : SCAN_CHUNK;
        int m = dk_scaled_at_least(c + b, w->inv + feat + b, s, l, f->cos_values[k - 1] - 1e-4f, idx);
        for (int q = 0; q < m; q++) {
            int g = feat + b + idx[q];
            if (g != self) sel_offer(f->cos_idx, f->cos_values, n, k, cos_exact(c[b + idx[q]], nf, w->nrm[g]), g, 0);
        }
        b += l;
    }
}

static inline float inv_norm(float nrm) { return nrm > 0 ? 1.0f / nrm : 0.0f; }

/* Rows of a cosine block: features a0 + r against the computed columns. */
static void cos_rows(void *ctx, size_t begin, size_t end)
{
    wjob *w = ctx;
    for (size_t r = begin; r < end; r++) {
        const float *c = w->C + r * (size_t)w->ldc;
        int g = w->a0 + (int)r, *n = &w->n_cos[g - w->f0];
        dash_feature *f = &w->out[g - w->f0];
        float nf = w->nrm[g], s = inv_norm(nf);
        if (w->f0 > 0) cos_run(w, f, n, c, 0, w->f0, nf, s);
        cos_run(w, f, n, c + w->f0, w->a0, w->d_sae - w->a0, nf, s);
    }
}

/* Columns of a cosine block: features of later blocks (a0 + m + i, i in [begin, end)) take
 * the block's rows as candidates, 16 columns at a time so that each row read is one line. */
static void cos_cols(void *ctx, size_t begin, size_t end)
{
    wjob *w = ctx;
    int t0 = w->a0 + w->m;
    for (size_t i0 = begin; i0 < end; i0 += 16) {
        int nc = end - i0 < 16 ? (int)(end - i0) : 16;
        float thr[16], sg[16];
        for (int q = 0; q < nc; q++) {
            int g = t0 + (int)i0 + q;
            dash_feature *f = &w->out[g - w->f0];
            thr[q] = w->n_cos[g - w->f0] < f->n_cos || !w->inv ? NAN : f->cos_values[f->n_cos - 1] - 1e-4f;
            sg[q] = inv_norm(w->nrm[g]);
        }
        const float *col = w->C + w->f0 + (size_t)(t0 - w->a0) + i0;
        for (int r = 0; r < w->m; r++) {
            const float *v = col + (size_t)r * w->ldc;
            int h = w->a0 + r;
            float ir = w->inv ? w->inv[h] : 0.0f;
            for (int q = 0; q < nc; q++) {
                /* NaN threshold: the list is not full yet (or no filter), offer unconditionally */
                if (thr[q] == thr[q] && !(v[q] * sg[q] * ir >= thr[q])) continue;
                int g = t0 + (int)i0 + q;
                dash_feature *f = &w->out[g - w->f0];
                int *n = &w->n_cos[g - w->f0], k = f->n_cos;
                sel_offer(f->cos_idx, f->cos_values, n, k, cos_exact(v[q], w->nrm[g], w->nrm[h]), h, 0);
                if (*n == k && w->inv) thr[q] = f->cos_values[k - 1] - 1e-4f;
            }
        }
    }
}

static void align_rows(void *ctx, size_t begin, size_t end)
{
    wjob *w = ctx;
    for (size_t r = begin; r < end; r++) {
        dash_feature *f = &w->out[r];
        const float *row = w->W_dec + (size_t)f->index * w->d_in;
        double l1 = 0;
        int n = 0;
        for (int i = 0; i < w->d_in; i++) {
            l1 += fabs((double)row[i]);
            sel_offer(f->align_idx, f->align_values, &n, DASH_TOP3, row[i], i, 0);
        }
        f->n_align = n;
        for (int i = 0; i < n; i++) f->align_l1[i] = l1 > 0 ? (float)(fabs((double)f->align_values[i]) / l1) : 0.0f;
    }
}

static void norm_rows(void *ctx, size_t begin, size_t end)
{
    wjob *w = ctx;
    float *nrm = (float *)w->nrm;
    for (size_t r = begin; r < end; r++) {
        const float *row = w->W_dec + r * (size_t)w->d_in;
        double s = 0;
        for (int i = 0; i < w->d_in; i++) s += (double)row[i] * row[i];
        nrm[r] = (float)sqrt(s);
    }
}

static int werr(char *err, size_t errlen, const char *msg)
{
    if (err && errlen) snprintf(err, errlen, "dash_weights: %s", msg);
    return -1;
}

int dash_weights(const dash_wopts *o, const float *W_dec, int d_sae, int d_in, const float *W_U, int V,
                 int wu_rows_are_tokens, int f0, int f1, dash_feature *out, char *err, size_t errlen)
{
    dash_wopts d;
    if (!o) {
        dash_wopts_default(&d);
        o = &d;
    }
    if (!W_dec || !out || d_sae < 1 || d_in < 1) return werr(err, errlen, "W_dec (d_sae, d_in) is required");
    if (f0 < 0 || f1 <= f0 || f1 > d_sae) return werr(err, errlen, "feature range outside [0, d_sae)");
    if (W_U && V < 1) return werr(err, errlen, "V must be >= 1");
    if (o->logit_k < 0 || o->logit_bins < 1 || o->logit_bins > 100000 || o->cos_k < 0)
        return werr(err, errlen, "logit_k, cos_k must be >= 0 and logit_bins in 1..100000");
    int n = f1 - f0, kl = W_U ? (o->logit_k < V ? o->logit_k : V) : 0;
    int kc = o->cos_k < d_sae - 1 ? o->cos_k : d_sae - 1;
    for (int i = 0; i < n; i++) {
        dash_feature *f = &out[i];
        f->index = f0 + i;
        if (W_U) {
            f->n_logits = kl;
            f->pos_ids = malloc(((size_t)kl + 1) * sizeof *f->pos_ids);
            f->neg_ids = malloc(((size_t)kl + 1) * sizeof *f->neg_ids);
            f->pos_values = malloc(((size_t)kl + 1) * sizeof *f->pos_values);
            f->neg_values = malloc(((size_t)kl + 1) * sizeof *f->neg_values);
            f->logit_hist_values = malloc((size_t)o->logit_bins * sizeof *f->logit_hist_values);
            f->logit_hist_heights = malloc((size_t)o->logit_bins * sizeof *f->logit_hist_heights);
            if (!f->pos_ids || !f->neg_ids || !f->pos_values || !f->neg_values || !f->logit_hist_values ||
                !f->logit_hist_heights)
                return werr(err, errlen, "out of memory");
        }
        f->n_cos = kc;
        f->cos_idx = malloc(((size_t)kc + 1) * sizeof *f->cos_idx);
        f->cos_values = malloc(((size_t)kc + 1) * sizeof *f->cos_values);
        if (!f->cos_idx || !f->cos_values) return werr(err, errlen, "out of memory");
    }
    wjob w = {.o = o, .W_dec = W_dec, .d_sae = d_sae, .d_in = d_in, .V = V, .f0 = f0, .out = out};
    par_for((size_t)n, 64, align_rows, &w);

    int width = W_U && V > d_sae ? V : d_sae;
    int rb = (int)(BLOCK_FLOATS / (unsigned)width);
    if (rb < 1) rb = 1;
    if (rb > n) rb = n;
    float *C = malloc((size_t)rb * width * sizeof *C);
    float *nrm = malloc((size_t)d_sae * sizeof *nrm), *inv = malloc((size_t)d_sae * sizeof *inv);
    float *edges = malloc((size_t)rb * ((size_t)o->logit_bins + 1) * sizeof *edges);
    int *n_cos = calloc((size_t)n, sizeof *n_cos);
    if (!C || !nrm || !inv || !edges || !n_cos) {
        free(C);
        free(nrm);
        free(inv);
        free(edges);
        free(n_cos);
        return werr(err, errlen, "out of memory");
    }
    w.C = C;
    w.nrm = nrm;
    w.edges = edges;
    if (W_U)
        for (int r0 = 0; r0 < n; r0 += rb) {
            int m = n - r0 < rb ? n - r0 : rb;
            /* logits (m, V) = W_dec[f0+r0 ..] (m, d_in) · W_U (d_in, V); wte (V, d_in) is W_U^T */
            blas_sgemm(0, wu_rows_are_tokens, m, V, d_in, 1.0f, W_dec + (size_t)(f0 + r0) * d_in, d_in, W_U,
                       wu_rows_are_tokens ? d_in : V, 0.0f, C, V);
            w.r0 = r0;
            par_for((size_t)m, 4, logit_rows, &w);
        }
    if (kc > 0) {
        par_for((size_t)d_sae, 256, norm_rows, &w);
        /* The estimate's error is a few float roundings of values |cos| ≲ 1, far below the
         * 1e-4 slack, as long as 1/‖b‖ is a normal float (else: no filter). */
        int safe = 1;
        for (int b = 0; b < d_sae; b++) {
            safe &= nrm[b] == 0 || (nrm[b] > 1e-30f && nrm[b] < 1e30f);
            inv[b] = inv_norm(nrm[b]);
        }
        w.inv = safe ? inv : NULL;
        w.n_cos = n_cos;
        /* cos(a, b) = cos(b, a) bit for bit (the same products summed in the same order: blas.h),
         * so pairs inside [f0, f1) are computed once: block a0.. against columns [a0, d_sae)
         * offers its rows to itself and its columns in [a0 + m, f1) to those later features.
         * Columns below f0 (outside the range) are computed for every block. At least four
         * blocks, so that a range that fits one block still skips ~3/8 of the products. */
        int rc = rb < (n + 3) / 4 ? rb : (n + 3) / 4;
        if (rc < 8) rc = 8;
        for (int r0 = 0; r0 < n; r0 += rc) {
            int m = n - r0 < rc ? n - r0 : rc, a0 = f0 + r0;
            w.a0 = a0;
            w.m = m;
            w.ldc = f0 + d_sae - a0;
            const float *A = W_dec + (size_t)a0 * d_in;
            if (f0 > 0) blas_sgemm(0, 1, m, f0, d_in, 1.0f, A, d_in, W_dec, d_in, 0.0f, C, w.ldc);
            blas_sgemm(0, 1, m, d_sae - a0, d_in, 1.0f, A, d_in, A, d_in, 0.0f, C + f0, w.ldc);
            par_for((size_t)m, 4, cos_rows, &w);
            if (a0 + m < f1) par_for((size_t)(f1 - a0 - m), 64, cos_cols, &w);
        }
        for (int i = 0; i < n; i++) out[i].n_cos = n_cos[i];
    }
    free(C);
    free(nrm);
    free(inv);
    free(edges);
    free(n_cos);
    return 0;
}

int dash_decoder_nearest(const float *W, int rows, int d_in, int row0, const float *q, int k, int32_t *idx, float *val,
                         int n)
{
    double qq = 0;
    for (int j = 0; j < d_in; j++) qq += (double)q[j] * q[j];
    const double qn = sqrt(qq);
    for (int r = 0; r < rows; r++) {
        const float *w = W + (size_t)r * d_in;
        double dot = 0, ww = 0;
        for (int j = 0; j < d_in; j++) {
            dot += (double)w[j] * q[j];
            ww += (double)w[j] * w[j];
        }
        double d = sqrt(ww) * qn;
        float c = (float)(dot / (d > 1e-8 ? d : 1e-8));
        sel_offer(idx, val, &n, k, isfinite(c) ? c : -INFINITY, row0 + r, 0);
    }
    return n;
}
