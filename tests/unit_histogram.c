/* unit_histogram.c: the activation histogram (freq_hist_data_*) and the interval binContains of
 * the dashboard engine (engine/dashboard.h), every count against a brute force that keeps every
 * value: thousands of features shaped like SAE features (log-normal magnitudes, densities 1e-4
 * to 1e-1) and the awkward ones (one value ever, all values equal, a huge dynamic range, a
 * range a few float steps wide, values on the bin edges, tiny magnitudes, never firing).
 *
 * The brute force is SAEDashboard's HistogramData.from_data, torch.histc(data, bins) over a
 * feature's non-zero values, written out here from torch's formula rather than taken from the
 * library: the range is [min, max] of the data, widened to [min − 1, max + 1] (in double, then
 * stored as float) when they are equal; an element's bin is the float32 expression
 * (elt − min) · bins / (max − min), truncated, and bins itself (elt = max) goes to the last bin.
 * binContains is the fraction of all positions (masked ones count as 0) with
 * lower ≤ value ≤ upper over torch.linspace(0, max, n + 1), zeros in the lowest interval. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/dashboard.h"
#include "tests/t.h"

static uint64_t h_mix(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
static double h_u(uint64_t *s) { return (double)(h_mix(*s += 0x632be59bd9b4e019ULL) >> 11) / 9007199254740992.0; }
static double h_normal(uint64_t *s) { return sqrt(-2 * log(h_u(s) + 1e-300)) * cos(6.283185307179586 * h_u(s)); }

/* ---- the brute force ---- */

static void ref_linspace(float a, float b, int n, float *out)
{
    /* torch's CPU linspace: from the start for the first half, from the end for the rest */
    float step = (b - a) / (float)(n - 1);
    for (int i = 0; i < n; i++) {
        volatile float t = step * (float)(i < n / 2 ? i : n - 1 - i);
        out[i] = i < n / 2 ? a + t : b - t;
    }
}

/* torch.histc of v[0..n) with `bins` bins over the data's own range. */
static void ref_histc(const float *v, int n, int bins, int64_t *h)
{
    memset(h, 0, (size_t)bins * sizeof *h);
    float lo = v[0], hi = v[0];
    for (int i = 1; i < n; i++) {
        if (v[i] < lo) lo = v[i];
        if (v[i] > hi) hi = v[i];
    }
    if (lo == hi) {
        lo = (float)((double)lo - 1);
        hi = (float)((double)hi + 1);
    }
    for (int i = 0; i < n; i++) {
        volatile float d = v[i] - lo, t = d * (float)bins, q = t / (hi - lo);
        long b = (long)q;
        if (b == bins) b = bins - 1;
        h[b]++;
    }
}

/* ---- features ---- */

typedef struct hfeat {
    int n, cap;
    int32_t *pos;   /* positions (prompt·T + t), increasing */
    float *v;       /* as fed; only those > 0 at unmasked positions count */
} hfeat;

static void hf_push(hfeat *f, int32_t p, float v)
{
    if (f->n == f->cap) {
        f->cap = f->cap ? 2 * f->cap : 16;
        f->pos = realloc(f->pos, (size_t)f->cap * sizeof *f->pos);
        f->v = realloc(f->v, (size_t)f->cap * sizeof *f->v);
    }
    f->pos[f->n] = p;
    f->v[f->n++] = v;
}

/* Feature f over N positions of prompts of T tokens (position 0 of each prompt is masked),
 * density log-uniform in [10^lg0, 10^lg1]. */
static void make_feature(hfeat *out, int f, int N, int T, double lg0, double lg1)
{
    uint64_t s = h_mix(0x5eedULL + (uint64_t)f);
    int kind = f % 16;
    double dens = pow(10, lg0 + (lg1 - lg0) * h_u(&s)), mu = -2 + 3 * h_u(&s), sigma = 0.3 + 1.7 * h_u(&s);
    if (kind == 7) dens = 0.05 + 0.05 * h_u(&s);
    memset(out, 0, sizeof *out);
    if (kind == 0) { /* fires exactly once */
        int p = (int)(h_u(&s) * N);
        if (p % T == 0) p++;
        hf_push(out, p, (float)exp(mu + sigma * h_normal(&s)));
        return;
    }
    double lq = log(1 - dens);
    int k = 0;
    for (double p = floor(log(h_u(&s) + 1e-300) / lq); p < N; p += 1 + floor(log(h_u(&s) + 1e-300) / lq), k++) {
        double u = h_u(&s), v;
        switch (kind) {
        case 1: v = 1.75; break;                                            /* all equal */
        case 2: v = 0.125 * (1 + (int)(u * 24)); break;                     /* quantized */
        case 3: v = exp(-14 + 22 * u); break;                               /* 1e-6 .. 4e3 */
        case 4: v = 10 + 1e-3 * u; break;                                   /* ~1000 floats wide */
        case 5: v = 1 + 2 * (k < 2 ? 50 * k : (int)(u * 51)) / 50.0; break; /* on the edges of [1, 3] */
        case 6: v = u < 0.5 ? -1.0 : NAN; break;                            /* never fires */
        case 7: v = 0.5; break;                                             /* dense, all equal */
        case 8: v = 1e-30 * (1 + u); break;                                 /* tiny */
        case 9: v = u < 0.3 ? 0.3 : 0.7; break;                             /* two values */
        default: v = exp(mu + sigma * h_normal(&s)); break;                 /* log-normal */
        }
        hf_push(out, (int32_t)p, (float)v);
    }
}

static int cmp_float(const void *x, const void *y)
{
    float a = *(const float *)x, b = *(const float *)y;
    return (a > b) - (a < b);
}

typedef struct hist_stats {
    int exact, grid, fired;
    double worst_grid;        /* largest misplaced fraction of a grid feature */
    int64_t worst_n;
    int failures;             /* features that failed (the first few are reported) */
} hist_stats;

/* Every count of feature r against the brute force over the values fed (hf). */
static void check_feature(const hfeat *hf, int T, int64_t N, const dash_opts *o, const dash_feature *r, double tol,
                          hist_stats *st)
{
    float *v = malloc(((size_t)hf->n + 1) * sizeof *v);
    int n = 0;
    for (int i = 0; i < hf->n; i++)
        if (hf->pos[i] % T != 0 && hf->v[i] > 0) v[n++] = hf->v[i];
    CHECK_INT(r->n_nonzero, n);
    if (!n) {
        CHECK_INT(r->n_hist, 0);
        free(v);
        return;
    }
    st->fired++;
    /* up to hist_exact_max distinct values the engine must be exact */
    float *u = malloc((size_t)n * sizeof *u);
    memcpy(u, v, (size_t)n * sizeof *u);
    qsort(u, (size_t)n, sizeof *u, cmp_float);
    int distinct = 1;
    for (int i = 1; i < n; i++) distinct += u[i] != u[i - 1];
    free(u);
    if (distinct <= o->hist_exact_max && !r->hist_exact)
        st->failures++, t_fail(__FILE__, __LINE__, "feature %d: %d distinct values but not exact", r->index, distinct);
    int nb = o->hist_bins;
    int64_t *h = malloc((size_t)nb * sizeof *h);
    ref_histc(v, n, nb, h);
    CHECK_INT(r->n_hist, nb);
    int64_t off = 0, sum = 0;
    for (int b = 0; b < nb && b < r->n_hist; b++) {
        off += llabs(r->hist_heights[b] - h[b]);
        sum += r->hist_heights[b];
    }
    CHECK_INT(sum, n);
    int64_t misplaced = off / 2;
    if (r->hist_exact) {
        st->exact++;
        if (misplaced)
            st->failures++, t_fail(__FILE__, __LINE__, "feature %d (%d values, exact): %lld counts in the wrong bin", r->index, n,
                   (long long)misplaced);
        CHECK_INT(r->hist_err_max, 0);
    } else {
        st->grid++;
        double frac = (double)misplaced / n;
        if (frac > st->worst_grid) {
            st->worst_grid = frac;
            st->worst_n = n;
        }
        if (misplaced > r->hist_err_max || frac > tol)
            st->failures++, t_fail(__FILE__, __LINE__, "feature %d (%d values, grid): %lld misplaced (%.3f%%), bound %lld", r->index, n,
                   (long long)misplaced, 100 * frac, (long long)r->hist_err_max);
    }
    /* binContains of the interval groups */
    float e[102];
    float mx = 0;
    for (int i = 0; i < n; i++)
        if (v[i] > mx) mx = v[i];
    ref_linspace(0, mx, o->n_intervals + 1, e);
    CHECK_INT(r->n_intervals, o->n_intervals);
    for (int q = 0; q < o->n_intervals && q < r->n_intervals; q++) {
        int64_t in = q == 0 && o->interval_zeros ? N - n : 0;
        for (int i = 0; i < n; i++) in += v[i] >= e[q] && v[i] <= e[q + 1];
        double want = (double)in / (double)N;
        if (r->hist_exact ? r->intervals[q].contains != want
                          : fabs(r->intervals[q].contains - want) * (double)N > 2.0 * (double)r->hist_err_max + 1)
            t_fail(__FILE__, __LINE__, "feature %d interval %d: binContains %.12g, expected %.12g", r->index, q,
                   r->intervals[q].contains, want);
    }
    free(h);
    free(v);
}

/* Feeds F features over P prompts of T tokens in batches of B prompts (position 0 of every
 * prompt masked and holding garbage the mask must hide) and checks every feature. */
static void run_case(int F, int P, int T, int B, double lg0, double lg1, const dash_opts *o, double tol,
                     hist_stats *st)
{
    const int N = P * T;
    hfeat *hf = calloc((size_t)F, sizeof *hf);
    int *cur = calloc((size_t)F, sizeof *cur);
    for (int f = 0; f < F; f++) make_feature(&hf[f], f, N, T, lg0, lg1);
    char err[256];
    dash_acc *a = dash_acc_new(o, 0, F, T, 0, err, sizeof err);
    float *buf = malloc((size_t)B * T * F * sizeof *buf);
    uint8_t *mask = malloc((size_t)B * T);
    if (!a) t_fail(__FILE__, __LINE__, "dash_acc_new: %s", err);
    for (int p0 = 0; a && p0 < P; p0 += B) {
        int nb = P - p0 < B ? P - p0 : B, end = (p0 + nb) * T;
        memset(buf, 0, (size_t)nb * T * F * sizeof *buf);
        for (int i = 0; i < nb * T; i++) mask[i] = i % T != 0;
        for (int f = 0; f < F; f++)
            for (; cur[f] < hf[f].n && hf[f].pos[cur[f]] < end; cur[f]++)
                buf[(size_t)(hf[f].pos[cur[f]] - p0 * T) * F + f] = hf[f].v[cur[f]];
        for (int p = 0; p < nb; p++)
            for (int f = 0; f < F; f++) buf[(size_t)p * T * F + f] = 1e6f; /* masked: must not count */
        if (dash_acc_add(a, buf, mask, nb, p0, NULL, err, sizeof err)) {
            t_fail(__FILE__, __LINE__, "dash_acc_add: %s", err);
            break;
        }
    }
    dash_feature *r = NULL;
    if (a && dash_acc_finish(a, &r, err, sizeof err)) t_fail(__FILE__, __LINE__, "dash_acc_finish: %s", err);
    for (int f = 0; r && f < F && st->failures < 5; f++) check_feature(&hf[f], T, N, o, &r[f], tol, st);
    dash_features_free(r, F);
    dash_acc_free(a);
    for (int f = 0; f < F; f++) {
        free(hf[f].pos);
        free(hf[f].v);
    }
    free(hf);
    free(cur);
    free(buf);
    free(mask);
}

TEST(dashboard_histogram_every_count_equal_histc)
{
    /* 2048 features over 256 prompts × 128 tokens: up to ~3300 values a feature; those beyond
     * hist_exact_max distinct values (a few dense ones) take the grid, with its bound */
    dash_opts o;
    dash_opts_default(&o);
    o.corr_block = 0;
    hist_stats st = {0};
    run_case(2048, 256, 128, 16, -4, -1, &o, 0.005, &st);
    printf("    %d features fired: %d exact, %d on the grid (worst %.3f%% misplaced of %lld)\n", st.fired, st.exact,
           st.grid, 100 * st.worst_grid, (long long)st.worst_n);
    CHECK(st.fired > 1800);
    CHECK(st.exact > 1800);
}

TEST(dashboard_histogram_grid_bound_dense)
{
    /* 16 dense features over 1024 prompts × 256 tokens (5K to 130K values each): the grid
     * regime, every feature within 0.5% misplaced and within its own reported bound */
    dash_opts o;
    dash_opts_default(&o);
    o.corr_block = 0;
    o.per_interval = 1;
    hist_stats st = {0};
    run_case(16, 1024, 256, 64, -1.7, -0.3, &o, 0.005, &st);
    printf("    %d features fired: %d exact, %d on the grid (worst %.3f%% misplaced of %lld)\n", st.fired, st.exact,
           st.grid, 100 * st.worst_grid, (long long)st.worst_n);
    CHECK(st.grid > 0);
}
