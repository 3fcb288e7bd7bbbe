/* unit_dashboard.c: the dashboard statistics engine (engine/dashboard.h) against a brute force
 * that holds every activation in memory: a structured random dataset (features that never
 * fire, fire everywhere, rarely, with tied quantized values, constant values, correlated with
 * an input dimension; masked BOS/pad positions holding garbage; negative and NaN values),
 * every streaming statistic, determinism across batch sizes, feature-range splits, the memory
 * bound, and the weight-derived quantities. The brute force re-implements torch's linspace
 * and histc formulas independently of the library. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/dash_kernels.h"
#include "engine/dashboard.h"
#include "tests/t.h"

/* ---- dataset ---- */

typedef struct ds {
    int P, T, F, D;
    float *acts;      /* (P,T,F) */
    uint8_t *mask;    /* (P,T) */
    float *x;         /* (P,T,D) */
} ds;

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
static double rng_u(uint64_t *s) { return (double)(rng_next(s) >> 11) / 9007199254740992.0; }

/* Prompt p's data depends only on p, so a larger P continues the same stream. */
static ds ds_make(int P)
{
    ds d = {P, 16, 48, 8, NULL, NULL, NULL};
    d.acts = calloc((size_t)P * d.T * d.F, sizeof(float));
    d.mask = calloc((size_t)P * d.T, 1);
    d.x = calloc((size_t)P * d.T * d.D, sizeof(float));
    for (int p = 0; p < P; p++) {
        uint64_t s = 1000003ULL * (uint64_t)p + 17;
        for (int t = 0; t < d.T; t++) {
            size_t pt = (size_t)p * d.T + t;
            int masked = t == 0 || (p % 5 == 4 && t >= d.T - 3);
            d.mask[pt] = (uint8_t)!masked;
            float *x = d.x + pt * d.D;
            for (int k = 0; k < d.D; k++) x[k] = (float)(rng_u(&s) * 2 - 1 + (k == 3 ? 0.5 : 0));
            float *a = d.acts + pt * d.F;
            for (int f = 0; f < d.F; f++) {
                double u = rng_u(&s), v = 0;
                switch (f % 8) {
                case 0: v = u < 0.01 ? -1.0 : 0; break;                         /* never fires */
                case 1: v = 0.1 + 3 * rng_u(&s); break;                         /* everywhere */
                case 2: v = u < 0.1 ? -log(rng_u(&s) + 1e-9) : (u < 0.12 ? -0.5 : 0); break;
                case 3: v = u < 0.3 ? 0.25 * (1 + (int)(rng_u(&s) * 16)) : 0; break; /* ties */
                case 4: v = u < 0.004 * (1 + f / 8) ? 1 + rng_u(&s) : 0; break;   /* rare */
                case 5: v = x[f % d.D] * 1.5 + 0.3 * (rng_u(&s) - 0.5); break;   /* ~ x dim */
                case 6: v = u < 0.2 ? 2.0 : 0; break;                           /* one value */
                case 7: v = f == 7 ? 1.0 : (u < 0.5 ? 0.5 + rng_u(&s) : 0); break;
                }
                if (f == 10 && p == 3 && t == 5) v = NAN;
                if (masked && (f % 8 != 0)) v = 5 + rng_u(&s); /* garbage the mask must hide */
                a[f] = (float)v;
            }
        }
    }
    return d;
}

static void ds_free(ds *d)
{
    free(d->acts);
    free(d->mask);
    free(d->x);
}

static dash_acc *feed(const ds *d, const dash_opts *o, int f0, int f1, int batch, int with_x)
{
    char err[256];
    dash_acc *a = dash_acc_new(o, f0, f1, d->T, with_x ? d->D : 0, err, sizeof err);
    if (!a) {
        t_fail(__FILE__, __LINE__, "dash_acc_new: %s", err);
        return NULL;
    }
    int F = f1 - f0;
    float *buf = malloc((size_t)batch * d->T * F * sizeof *buf);
    for (int p0 = 0; p0 < d->P; p0 += batch) {
        int B = d->P - p0 < batch ? d->P - p0 : batch;
        for (int i = 0; i < B * d->T; i++)
            memcpy(buf + (size_t)i * F, d->acts + ((size_t)p0 * d->T + i) * d->F + f0, (size_t)F * sizeof *buf);
        if (dash_acc_add(a, buf, d->mask + (size_t)p0 * d->T, B, p0, with_x ? d->x + (size_t)p0 * d->T * d->D : NULL,
                         err, sizeof err)) {
            t_fail(__FILE__, __LINE__, "dash_acc_add: %s", err);
            break;
        }
    }
    free(buf);
    return a;
}

static dash_feature *finish(dash_acc *a)
{
    dash_feature *r = NULL;
    char err[256];
    if (dash_acc_finish(a, &r, err, sizeof err)) t_fail(__FILE__, __LINE__, "dash_acc_finish: %s", err);
    return r;
}

/* ---- brute force ---- */

/* torch.linspace / torch.histc, written out again here so the test does not trust the library. */
static void ref_linspace(float a, float b, int n, float *out)
{
    float step = (b - a) / (float)(n - 1);
    for (int i = 0; i < n; i++) {
        volatile float t = step * (float)(i < n / 2 ? i : n - 1 - i);
        out[i] = i < n / 2 ? a + t : b - t;
    }
}

static int ref_bin(float v, float lo, float hi, int bins)
{
    volatile float t = (v - lo) * (float)bins;
    long b = (long)(t / (hi - lo));
    return (int)(b >= bins ? bins - 1 : b);
}

typedef struct pv {
    int64_t prompt;
    int pos;
    float v;
    uint64_t key;
} pv;

static int pv_by_value(const void *x, const void *y)
{
    const pv *a = x, *b = y;
    if (a->v != b->v) return a->v > b->v ? -1 : 1;
    if (a->prompt != b->prompt) return a->prompt < b->prompt ? -1 : 1;
    return (a->pos > b->pos) - (a->pos < b->pos);
}

static int pv_by_key(const void *x, const void *y)
{
    const pv *a = x, *b = y;
    if (a->key != b->key) return a->key < b->key ? -1 : 1;
    if (a->prompt != b->prompt) return a->prompt < b->prompt ? -1 : 1;
    return (a->pos > b->pos) - (a->pos < b->pos);
}

/* The value the statistics see at (position i, feature f): 0 unless unmasked and > 0. */
static float val(const ds *d, size_t i, int f)
{
    float v = d->acts[i * d->F + f];
    return d->mask[i] && v > 0 ? v : 0;
}

/* Pearson and cosine over unmasked positions of feature f against column g of `other`
 * (feature or x dimension). Two-pass. 0 = no variance. */
static int ref_corr(const ds *d, int f, int g, int is_x, double *r, double *cs)
{
    double n = 0, ma = 0, mb = 0;
    size_t N = (size_t)d->P * d->T;
    for (size_t i = 0; i < N; i++)
        if (d->mask[i]) {
            n++;
            ma += val(d, i, f);
            mb += is_x ? d->x[i * d->D + g] : val(d, i, g);
        }
    ma /= n;
    mb /= n;
    double sab = 0, saa = 0, sbb = 0, dab = 0, daa = 0, dbb = 0;
    for (size_t i = 0; i < N; i++)
        if (d->mask[i]) {
            double a = val(d, i, f), b = is_x ? d->x[i * d->D + g] : val(d, i, g);
            sab += (a - ma) * (b - mb);
            saa += (a - ma) * (a - ma);
            sbb += (b - mb) * (b - mb);
            dab += a * b;
            daa += a * a;
            dbb += b * b;
        }
    if (saa <= 1e-12 * (daa + 1e-300) || sbb <= 1e-12 * (dbb + 1e-300)) return 0;
    *r = sab / sqrt(saa * sbb);
    *cs = dab / sqrt(daa * dbb);
    return 1;
}

typedef struct top3 {
    int n, idx[3];
    double v[3], c[3];
} top3;

static void top3_add(top3 *t, int i, double v, double c)
{
    int m = t->n < 3 ? t->n + 1 : 3;
    if (t->n == 3 && !(v > t->v[2])) return;
    int p = m - 1;
    while (p > 0 && v > t->v[p - 1]) {
        t->idx[p] = t->idx[p - 1];
        t->v[p] = t->v[p - 1];
        t->c[p] = t->c[p - 1];
        p--;
    }
    t->idx[p] = i;
    t->v[p] = v;
    t->c[p] = c;
    t->n = m;
}

/* Values at each rank within tol; indices equal unless the reference has a near-tie there. */
static void check_top3(const char *what, int feat, const top3 *ref, int n, const int32_t *idx, const float *v,
                       const float *c)
{
    if (n != ref->n) {
        t_fail(__FILE__, __LINE__, "%s of feature %d: %d entries, expected %d", what, feat, n, ref->n);
        return;
    }
    for (int i = 0; i < n; i++) {
        int near_tie = (i > 0 && ref->v[i - 1] - ref->v[i] < 1e-5) || (i + 1 < ref->n && ref->v[i] - ref->v[i + 1] < 1e-5);
        if (!near_tie && idx[i] != ref->idx[i])
            t_fail(__FILE__, __LINE__, "%s of feature %d rank %d: index %d, expected %d", what, feat, i, idx[i],
                   ref->idx[i]);
        if (fabs(v[i] - ref->v[i]) > 1e-5)
            t_fail(__FILE__, __LINE__, "%s of feature %d rank %d: %.8f, expected %.8f", what, feat, i, v[i], ref->v[i]);
        if (!near_tie && fabs(c[i] - ref->c[i]) > 1e-5)
            t_fail(__FILE__, __LINE__, "%s cosine of feature %d rank %d: %.8f, expected %.8f", what, feat, i, c[i],
                   ref->c[i]);
    }
}

/* Every statistic of result r (features [f0, f0+n)) against the brute force. */
static void check_all(const ds *d, const dash_opts *o, int f0, int n, const dash_feature *res, int with_x)
{
    size_t N = (size_t)d->P * d->T;
    pv *all = malloc(N * sizeof *all), *pop = malloc(N * sizeof *pop);
    float *edges = malloc(((size_t)o->hist_bins + 1) * sizeof *edges);
    int64_t *hh = malloc((size_t)o->hist_bins * sizeof *hh);
    for (int i = 0; i < n && !t_failed_now(); i++) {
        int f = f0 + i;
        const dash_feature *r = &res[i];
        CHECK_INT(r->index, f);
        /* scalars */
        int64_t nnz = 0;
        float mx = 0, mn = 0;
        int na = 0;
        for (size_t q = 0; q < N; q++) {
            float v = val(d, q, f);
            if (v > 0) {
                if (!nnz || v < mn) mn = v;
                if (v > mx) mx = v;
                nnz++;
                all[na++] = (pv){(int64_t)(q / d->T), (int)(q % d->T), v, 0};
            }
        }
        CHECK_INT(r->n_positions, (int64_t)N);
        CHECK_INT(r->n_nonzero, nnz);
        CHECK(r->max_value == mx);
        CHECK(r->min_nonzero == mn);
        CHECK(r->frac_nonzero == (double)nnz / (double)N);
        /* only a survivor cap below the default may cost exactness, and then the flag says so */
        int lossy = !r->examples_exact;
        if (o->interval_cap >= 1024) CHECK(!lossy);
        if (!nnz) {
            CHECK_INT(r->n_examples, 0);
            CHECK_INT(r->n_hist, 0);
            CHECK_INT(r->n_intervals, 0);
            CHECK_INT(r->n_corr_neurons, 0);
            CHECK_INT(r->n_corr_features, 0);
            continue;
        }
        /* top-K */
        qsort(all, (size_t)na, sizeof *all, pv_by_value);
        int nt = na < o->top_k ? na : o->top_k, e = 0;
        for (int k = 0; k < nt; k++, e++) {
            const dash_example *x = &r->examples[e];
            if (x->group != -1 || x->prompt != all[k].prompt || x->pos != all[k].pos || x->value != all[k].v) {
                t_fail(__FILE__, __LINE__, "feature %d top %d: (%lld,%d)=%g group %d, expected (%lld,%d)=%g", f, k,
                       (long long)x->prompt, x->pos, x->value, x->group, (long long)all[k].prompt, all[k].pos, all[k].v);
                break;
            }
        }
        /* intervals, from the highest */
        float iv[102];
        ref_linspace(0, mx, o->n_intervals + 1, iv);
        CHECK_INT(r->n_intervals, o->n_intervals);
        for (int q = o->n_intervals - 1; q >= 0 && e <= r->n_examples; q--) {
            float lo = iv[q], hi = iv[q + 1];
            CHECK(r->intervals[q].lo == lo && r->intervals[q].hi == hi);
            int np = 0;
            int64_t inside = 0;
            for (size_t p = 0; p < N; p++) {
                float v = val(d, p, f);
                int in = v >= lo && v <= hi && (v > 0 || o->interval_zeros);
                if (in && d->mask[p])
                    pop[np++] = (pv){(int64_t)(p / d->T), (int)(p % d->T), v,
                                     dash_sample_key(o->seed, (int64_t)(p / d->T), (int)(p % d->T), f)};
                inside += in;
            }
            double contains = (double)inside / (double)N;
            if (r->hist_exact) {
                if (r->intervals[q].contains != contains)
                    t_fail(__FILE__, __LINE__, "feature %d interval %d contains %.12g, expected %.12g", f, q,
                           r->intervals[q].contains, contains);
            } else if (fabs(r->intervals[q].contains - contains) > 0.02 * contains + 3.0 / N) {
                t_fail(__FILE__, __LINE__, "feature %d interval %d contains %.6g, expected ~%.6g", f, q,
                       r->intervals[q].contains, contains);
            }
            qsort(pop, (size_t)np, sizeof *pop, pv_by_key);
            int take = np < o->per_interval ? np : o->per_interval;
            if (!lossy) CHECK_INT(r->intervals[q].n_examples, take);
            if (lossy) { /* evicted survivors: fewer or other draws possible */
                CHECK(r->intervals[q].n_examples <= take);
                e += r->intervals[q].n_examples;
                continue;
            }
            qsort(pop, (size_t)take, sizeof *pop, pv_by_value);
            for (int k = 0; k < take && e < r->n_examples; k++, e++) {
                const dash_example *x = &r->examples[e];
                if (x->group != q || x->prompt != pop[k].prompt || x->pos != pop[k].pos || x->value != pop[k].v) {
                    t_fail(__FILE__, __LINE__, "feature %d interval %d draw %d: (%lld,%d)=%g, expected (%lld,%d)=%g", f,
                           q, k, (long long)x->prompt, x->pos, x->value, (long long)pop[k].prompt, pop[k].pos,
                           pop[k].v);
                    break;
                }
                if (!(x->value >= lo && x->value <= hi)) t_fail(__FILE__, __LINE__, "example outside its interval");
            }
        }
        CHECK_INT(r->n_examples, e);
        /* histogram */
        float hlo = mn, hhi = mx;
        if (hlo == hhi) {
            hlo = (float)((double)hlo - 1);
            hhi = (float)((double)hhi + 1);
        }
        int nb = o->hist_bins;
        memset(hh, 0, (size_t)nb * sizeof *hh);
        for (int k = 0; k < na; k++) hh[ref_bin(all[k].v, hlo, hhi, nb)]++;
        ref_linspace(hlo, hhi, nb + 1, edges);
        CHECK_INT(r->n_hist, nb);
        int64_t sum = 0;
        for (int b = 0; b < nb && b < r->n_hist; b++) {
            sum += r->hist_heights[b];
            if (r->hist_values[b] != (edges[b] + edges[b + 1]) / 2) t_fail(__FILE__, __LINE__, "feature %d bin %d centre", f, b);
            if (r->hist_exact) {
                if (r->hist_heights[b] != hh[b])
                    t_fail(__FILE__, __LINE__, "feature %d bin %d: %lld, expected %lld", f, b,
                           (long long)r->hist_heights[b], (long long)hh[b]);
            } else {
                /* grid mode: off by at most the values within a grid bucket of the bin's edges */
                double bw = ((double)hhi - hlo) / nb, u = 2 * bw * 2 / o->hist_sub;
                int64_t near = 0;
                for (int k = 0; k < na; k++)
                    if (fabs(all[k].v - edges[b]) <= u || fabs(all[k].v - edges[b + 1]) <= u) near++;
                if (llabs(r->hist_heights[b] - hh[b]) > near)
                    t_fail(__FILE__, __LINE__, "feature %d bin %d: %lld vs %lld beyond the grid bound %lld", f, b,
                           (long long)r->hist_heights[b], (long long)hh[b], (long long)near);
            }
        }
        CHECK_INT(sum, nnz);
        /* correlated neurons */
        top3 tn = {0};
        for (int k = 0; with_x && k < d->D; k++) {
            double rr, cs;
            if (ref_corr(d, f, k, 1, &rr, &cs)) top3_add(&tn, k, rr, cs);
        }
        check_top3("correlated neurons", f, &tn, r->n_corr_neurons, r->corr_neuron_idx, r->corr_neuron_pearson,
                   r->corr_neuron_cos);
        /* correlated features: within the feature's block of the range */
        top3 tf = {0};
        int cb = o->corr_block;
        if (cb) {
            int blo = f / cb * cb, bhi = blo + cb;
            if (blo < f0) blo = f0;
            if (bhi > f0 + n) bhi = f0 + n;
            for (int g = blo; g < bhi; g++) {
                double rr, cs;
                if (g != f && ref_corr(d, f, g, 0, &rr, &cs)) top3_add(&tf, g, rr, cs);
            }
        }
        check_top3("correlated features", f, &tf, r->n_corr_features, r->corr_feature_idx, r->corr_feature_pearson,
                   r->corr_feature_cos);
    }
    free(all);
    free(pop);
    free(edges);
    free(hh);
}

static dash_opts test_opts(void)
{
    dash_opts o;
    dash_opts_default(&o);
    o.corr_block = 16;
    o.seed = 42;
    o.hist_exact_max = 400; /* features with more distinct values exercise the grid */
    return o;
}

TEST(dashboard_stats_equal_brute_force)
{
    ds d = ds_make(64);
    dash_opts o = test_opts();
    dash_acc *a = feed(&d, &o, 0, d.F, 8, 1);
    dash_feature *r = a ? finish(a) : NULL;
    if (r) {
        check_all(&d, &o, 0, d.F, r, 1);
        int grid = 0, exact = 0;
        for (int i = 0; i < d.F; i++) r[i].hist_exact ? exact++ : grid++;
        CHECK(grid > 0 && exact > 0); /* both distribution modes exercised */
    }
    dash_features_free(r, d.F);
    dash_acc_free(a);
    ds_free(&d);
}

TEST(dashboard_exact_histogram_all_features)
{
    /* 1024 distinct values per feature fit, as many as the positions */
    ds d = ds_make(64);
    dash_opts o = test_opts();
    o.hist_exact_max = 1024;
    o.corr_block = 64; /* one block: every pair of features compared */
    o.top_k = 7;
    o.per_interval = 3;
    o.n_intervals = 4;
    dash_acc *a = feed(&d, &o, 0, d.F, 5, 1);
    dash_feature *r = a ? finish(a) : NULL;
    if (r) {
        for (int i = 0; i < d.F; i++) CHECK(r[i].hist_exact);
        check_all(&d, &o, 0, d.F, r, 1);
    }
    dash_features_free(r, d.F);
    dash_acc_free(a);
    ds_free(&d);
}

TEST(dashboard_interval_variants)
{
    ds d = ds_make(64);
    /* zeros left out of the lowest interval; another seed; no correlations at all */
    dash_opts o = test_opts();
    o.interval_zeros = 0;
    o.seed = 7;
    o.corr_block = 0;
    dash_acc *a = feed(&d, &o, 0, d.F, 16, 0);
    dash_feature *r = a ? finish(a) : NULL;
    if (r) check_all(&d, &o, 0, d.F, r, 0);
    dash_features_free(r, d.F);
    dash_acc_free(a);
    /* a tiny survivor cap: features that hit it say so; the others stay exact */
    o = test_opts();
    o.interval_cap = 2 * o.per_interval + 16;
    a = feed(&d, &o, 0, d.F, 8, 1);
    r = a ? finish(a) : NULL;
    int lossy = 0;
    for (int i = 0; r && i < d.F; i++) lossy += !r[i].examples_exact;
    printf("    interval_cap %d: %d of %d features lost exactness\n", o.interval_cap, lossy, d.F);
    CHECK(lossy > 0 && lossy < d.F);
    if (r) check_all(&d, &o, 0, d.F, r, 1);
    dash_features_free(r, d.F);
    dash_acc_free(a);
    ds_free(&d);
}

static int same_examples(const dash_feature *a, const dash_feature *b)
{
    for (int i = 0; i < a->n_examples; i++) {
        const dash_example *x = &a->examples[i], *y = &b->examples[i];
        if (x->prompt != y->prompt || x->pos != y->pos || x->group != y->group || memcmp(&x->value, &y->value, 4))
            return 0;
    }
    for (int i = 0; i < a->n_intervals; i++) {
        const dash_interval *x = &a->intervals[i], *y = &b->intervals[i];
        if (memcmp(&x->lo, &y->lo, 4) || memcmp(&x->hi, &y->hi, 4) || memcmp(&x->contains, &y->contains, 8) ||
            x->n_examples != y->n_examples)
            return 0;
    }
    return 1;
}

/* Bit-for-bit equality of everything the accumulator produces. */
static int same_feature(const dash_feature *a, const dash_feature *b)
{
#define SAME(x) (a->x == b->x)
#define SAMEARR(p, n) (!(n) || !memcmp(a->p, b->p, (size_t)(n) * sizeof *a->p))
    return SAME(n_positions) && SAME(n_nonzero) && SAME(frac_nonzero) && SAME(max_value) && SAME(min_nonzero) &&
           SAME(n_examples) && SAME(n_intervals) && same_examples(a, b) && SAME(n_hist) && SAMEARR(hist_values, a->n_hist) &&
           SAMEARR(hist_heights, a->n_hist) && SAME(hist_exact) && SAME(examples_exact) && SAME(n_corr_neurons) &&
           !memcmp(a->corr_neuron_idx, b->corr_neuron_idx, sizeof a->corr_neuron_idx) &&
           !memcmp(a->corr_neuron_pearson, b->corr_neuron_pearson, sizeof a->corr_neuron_pearson) &&
           !memcmp(a->corr_neuron_cos, b->corr_neuron_cos, sizeof a->corr_neuron_cos) && SAME(n_corr_features) &&
           !memcmp(a->corr_feature_idx, b->corr_feature_idx, sizeof a->corr_feature_idx) &&
           !memcmp(a->corr_feature_pearson, b->corr_feature_pearson, sizeof a->corr_feature_pearson) &&
           !memcmp(a->corr_feature_cos, b->corr_feature_cos, sizeof a->corr_feature_cos);
#undef SAME
#undef SAMEARR
}

TEST(dashboard_deterministic_across_batch_sizes)
{
    ds d = ds_make(64);
    dash_opts o = test_opts();
    dash_feature *ref = NULL;
    int sizes[] = {1, 3, 8, 64};
    for (int s = 0; s < 4; s++) {
        dash_acc *a = feed(&d, &o, 0, d.F, sizes[s], 1);
        dash_feature *r = a ? finish(a) : NULL;
        /* finishing twice gives the same answer (finish leaves the accumulator intact) */
        dash_feature *r2 = a ? finish(a) : NULL;
        for (int i = 0; r && r2 && i < d.F; i++)
            if (!same_feature(&r[i], &r2[i])) t_fail(__FILE__, __LINE__, "second finish differs, feature %d", i);
        dash_features_free(r2, d.F);
        if (!ref) ref = r;
        else {
            for (int i = 0; r && i < d.F; i++)
                if (!same_feature(&ref[i], &r[i]))
                    t_fail(__FILE__, __LINE__, "batch size %d differs from batch size 1 at feature %d", sizes[s], i);
            dash_features_free(r, d.F);
        }
        dash_acc_free(a);
    }
    dash_features_free(ref, d.F);
    ds_free(&d);
}

/* dk_set_bits against a bit-by-bit loop, and against dk_nonzeros on the row the bits describe,
 * for every start bit in [0, 130) and lengths across word boundaries, at three densities. */
TEST(dash_kernels_set_bits_match_brute_force)
{
    enum { W = 5 };
    uint64_t words[W], s = 7;
    int32_t got[W * 64], ref[W * 64], nz[W * 64];
    float row[W * 64];
    int bad = 0, total = 0;
    for (int dens = 0; dens < 3; dens++) {
        for (int w = 0; w < W; w++) {
            uint64_t a = rng_next(&s), b = rng_next(&s);
            words[w] = dens == 0 ? a & b & rng_next(&s) : dens == 1 ? a : ~(a & b);
        }
        for (int bit0 = 0; bit0 < 130; bit0++)
            for (int n = 0; bit0 + n <= W * 64; n += 1 + n / 3) {
                int k = dk_set_bits(words, bit0, n, got), m = 0;
                for (int i = 0; i < n; i++) {
                    int on = (int)(words[(bit0 + i) / 64] >> ((bit0 + i) % 64) & 1);
                    if (on) ref[m++] = i;
                    row[i] = on ? 1.0f + (float)i : 0.0f;
                }
                bad += k != m || memcmp(got, ref, (size_t)m * sizeof *got) != 0;
                bad += dk_nonzeros(row, n, nz) != m || memcmp(nz, ref, (size_t)m * sizeof *nz) != 0;
                total += m;
            }
    }
    CHECK_INT(bad, 0);
    CHECK(total > 100000);
}

/* dash_acc_add_map finds the non-zeros in a bitmap instead of scanning acts: same results, bit
 * for bit. The map is 40 bits to the right of the range (as dash_run's is by f0), so the
 * range's bits straddle two words. */
TEST(dashboard_nonzero_map_gives_the_same_results)
{
    ds d = ds_make(24);
    dash_opts o = test_opts();
    o.capture_values = 1;
    const int bit0 = 40, words = (bit0 + d.F + 63) / 64, batch = 5;
    char err[256];
    dash_acc *ref = feed(&d, &o, 0, d.F, batch, 1), *a = dash_acc_new(&o, 0, d.F, d.T, d.D, err, sizeof err);
    uint64_t *map = calloc((size_t)batch * d.T * words, sizeof *map);
    CHECK(a != NULL);
    for (int p0 = 0; a && p0 < d.P; p0 += batch) {
        int B = d.P - p0 < batch ? d.P - p0 : batch;
        const float *acts = d.acts + (size_t)p0 * d.T * d.F;
        memset(map, 0, (size_t)batch * d.T * words * sizeof *map);
        for (int i = 0; i < B * d.T; i++)
            for (int f = 0; f < d.F; f++) {
                uint32_t bits;
                memcpy(&bits, acts + (size_t)i * d.F + f, sizeof bits);
                if (bits) map[(size_t)i * words + (bit0 + f) / 64] |= (uint64_t)1 << ((bit0 + f) % 64);
            }
        dash_nzmap nz = {map, (size_t)words, bit0};
        if (dash_acc_add_map(a, acts, (size_t)d.F, &nz, d.mask + (size_t)p0 * d.T, B, p0,
                             d.x + (size_t)p0 * d.T * d.D, err, sizeof err))
            t_fail(__FILE__, __LINE__, "dash_acc_add_map: %s", err);
    }
    dash_feature *rr = ref ? finish(ref) : NULL, *rm = a ? finish(a) : NULL;
    int same = 0;
    for (int i = 0; rr && rm && i < d.F; i++) same += same_feature(&rr[i], &rm[i]);
    CHECK_INT(same, d.F);
    /* a map too narrow for the range is refused */
    dash_nzmap narrow = {map, 1, 40};
    CHECK_INT(dash_acc_add_map(a, d.acts, (size_t)d.F, &narrow, NULL, 1, d.P, d.x, err, sizeof err), -1);
    CHECK(strstr(err, "map") != NULL);
    dash_features_free(rr, d.F);
    dash_features_free(rm, d.F);
    dash_acc_free(ref);
    dash_acc_free(a);
    free(map);
    ds_free(&d);
}

TEST(dashboard_feature_range_matches_full_run)
{
    ds d = ds_make(64);
    dash_opts o = test_opts(); /* corr_block 16: split at 16 and 32 */
    dash_acc *full = feed(&d, &o, 0, d.F, 8, 1), *part = feed(&d, &o, 16, 32, 4, 1);
    dash_feature *rf = full ? finish(full) : NULL, *rp = part ? finish(part) : NULL;
    for (int i = 0; rf && rp && i < 16; i++) {
        CHECK_INT(rp[i].index, 16 + i);
        if (!same_feature(&rf[16 + i], &rp[i])) t_fail(__FILE__, __LINE__, "feature %d differs in the range run", 16 + i);
    }
    if (rp) check_all(&d, &o, 16, 16, rp, 1);
    dash_features_free(rf, d.F);
    dash_features_free(rp, 16);
    dash_acc_free(full);
    dash_acc_free(part);
    ds_free(&d);
}

TEST(dashboard_memory_flat_in_prompts)
{
    ds small = ds_make(1000), big = ds_make(2000);
    dash_opts o = test_opts();
    /* the exact value store grows with a feature's distinct values up to hist_exact_max, then
     * the fixed grid takes over: a small limit puts every feature at its bound early */
    o.hist_exact_max = 16;
    dash_acc *a = feed(&small, &o, 0, small.F, 10, 1), *b = feed(&big, &o, 0, big.F, 10, 1);
    if (a && b) {
        size_t sa = dash_acc_bytes(a), sb = dash_acc_bytes(b);
        printf("    accumulator bytes: %zu at 1000 prompts, %zu at 2000\n", sa, sb);
        CHECK(sb <= sa + sa / 10);
        dash_feature *r = finish(a);
        if (r) check_all(&small, &o, 0, small.F, r, 1); /* still exact at 16000 positions */
        dash_features_free(r, small.F);
    }
    dash_acc_free(a);
    dash_acc_free(b);
    ds_free(&small);
    ds_free(&big);
}

TEST(dashboard_captured_values_equal_inputs)
{
    /* Each example's row is the feature's raw input over the example's prompt, bit for bit
     * (masked positions, negatives and NaN included), whatever the batching; capturing
     * changes none of the statistics; and its memory stays flat in the number of prompts. */
    ds d = ds_make(64);
    dash_opts o = test_opts();
    dash_acc *plain = feed(&d, &o, 0, d.F, 8, 1);
    dash_feature *rp = plain ? finish(plain) : NULL;
    o.capture_values = 1;
    int sizes[] = {1, 5, 64};
    dash_feature *ref = NULL;
    for (int si = 0; si < 3; si++) {
        dash_acc *a = feed(&d, &o, 0, d.F, sizes[si], 1);
        dash_feature *r = a ? finish(a) : NULL;
        int rows = 0;
        for (int f = 0; r && rp && f < d.F; f++) {
            if (!same_feature(&r[f], &rp[f])) t_fail(__FILE__, __LINE__, "capture changed feature %d", f);
            CHECK(r[f].n_examples == 0 || r[f].example_values != NULL);
            for (int e = 0; e < r[f].n_examples; e++, rows++)
                for (int t = 0; t < d.T; t++) {
                    const float *want = &d.acts[((size_t)r[f].examples[e].prompt * d.T + t) * d.F + f];
                    const float *got = &r[f].example_values[(size_t)e * d.T + t];
                    if (memcmp(want, got, sizeof *got)) {
                        t_fail(__FILE__, __LINE__, "feature %d example %d pos %d: %g, fed %g", f, e, t, *got, *want);
                        break;
                    }
                }
            if (ref && ref[f].n_examples == r[f].n_examples && r[f].n_examples &&
                memcmp(ref[f].example_values, r[f].example_values, sizeof(float) * d.T * r[f].n_examples))
                t_fail(__FILE__, __LINE__, "feature %d: values differ with batch size %d", f, sizes[si]);
        }
        CHECK(rows > 1000);
        dash_acc_free(a);
        if (!ref) ref = r;
        else dash_features_free(r, d.F);
    }
    dash_features_free(ref, d.F);
    dash_features_free(rp, d.F);
    dash_acc_free(plain);
    ds_free(&d);

    /* The candidates (and so the records) grow like the interval survivors, about k·ln(N) per
     * feature (dashboard.h): from 2000 to 4000 prompts the bytes must stay within 10%. */
    ds small = ds_make(2000), big = ds_make(4000);
    dash_acc *a = feed(&small, &o, 0, small.F, 10, 1), *b = feed(&big, &o, 0, big.F, 10, 1);
    if (a && b) {
        size_t sa = dash_acc_bytes(a), sb = dash_acc_bytes(b);
        printf("    accumulator bytes with captured values: %zu at 2000 prompts, %zu at 4000\n", sa, sb);
        CHECK(sb <= sa + sa / 10);
    }
    dash_acc_free(a);
    dash_acc_free(b);
    ds_free(&small);
    ds_free(&big);
}

TEST(dashboard_rejects_bad_input)
{
    char err[256];
    dash_opts o;
    dash_opts_default(&o);
    o.n_intervals = 0;
    CHECK(dash_acc_new(&o, 0, 4, 8, 0, err, sizeof err) == NULL);
    CHECK_CONTAINS(err, "n_intervals");
    dash_opts_default(&o);
    o.hist_sub = 3;
    CHECK(dash_acc_new(&o, 0, 4, 8, 0, err, sizeof err) == NULL);
    CHECK_CONTAINS(err, "hist_sub");
    dash_opts_default(&o);
    o.hist_exact_max = 1;
    CHECK(dash_acc_new(&o, 0, 4, 8, 0, err, sizeof err) == NULL);
    CHECK_CONTAINS(err, "hist_exact_max");
    CHECK(dash_acc_new(NULL, 4, 4, 8, 0, err, sizeof err) == NULL);
    dash_acc *a = dash_acc_new(NULL, 0, 4, 2, 3, err, sizeof err);
    float acts[16] = {0}, x[12] = {0};
    CHECK_INT(dash_acc_add(a, acts, NULL, 2, 10, NULL, err, sizeof err), -1);
    CHECK_CONTAINS(err, "x is required");
    CHECK_INT(dash_acc_add(a, acts, NULL, 2, 10, x, err, sizeof err), 0);
    CHECK_INT(dash_acc_add(a, acts, NULL, 1, 11, x, err, sizeof err), -1);
    CHECK_CONTAINS(err, "increasing order");
    CHECK_INT(dash_acc_add(a, acts, NULL, 1, 12, x, err, sizeof err), 0);
    dash_feature *r = finish(a);
    if (r) {
        CHECK_INT(r[0].n_positions, 6);
        CHECK_INT(r[0].n_nonzero, 0);
        CHECK_INT(r[0].n_examples, 0);
    }
    dash_features_free(r, 4);
    dash_acc_free(a);
}

/* ---- weights ---- */

TEST(dashboard_weights_equal_brute_force)
{
    /* Quarter-integer weights make every logit exact in float whatever the summation order,
     * so top/bottom ties and histogram bins can be compared exactly. */
    enum { DS = 40, DI = 12, V = 301 };
    float *W = malloc(DS * DI * sizeof *W), *wte = malloc((size_t)V * DI * sizeof *wte), *WU = malloc((size_t)V * DI * sizeof *WU);
    uint64_t s = 99;
    for (int i = 0; i < DS * DI; i++) W[i] = (float)((int)(rng_u(&s) * 17) - 8) * 0.25f;
    for (int i = 0; i < DI; i++) W[5 * DI + i] = 0; /* a dead decoder row */
    for (int i = 0; i < DI; i++) W[6 * DI + i] = 2 * W[7 * DI + i]; /* parallel rows: cosine 1 */
    for (int i = 0; i < DI; i++) W[12 * DI + i] = 4 * W[7 * DI + i]; /* and equal cosines to any other row */
    for (int i = 0; i < V * DI; i++) wte[i] = (float)((int)(rng_u(&s) * 9) - 4) * 0.25f;
    for (int v = 0; v < V; v++)
        for (int i = 0; i < DI; i++) WU[(size_t)i * V + v] = wte[(size_t)v * DI + i];
    dash_wopts o;
    dash_wopts_default(&o);
    char err[256];
    for (int layout = 0; layout < 2; layout++) {
        int f0 = layout ? 3 : 0, f1 = layout ? 29 : DS, n = f1 - f0;
        dash_feature *r = dash_features_new(f0, n);
        int rc = dash_weights(&o, W, DS, DI, layout ? wte : WU, V, layout, f0, f1, r, err, sizeof err);
        CHECK_INT(rc, 0);
        for (int q = 0; rc == 0 && q < n && !t_failed_now(); q++) {
            int f = f0 + q;
            const float *w = W + (size_t)f * DI;
            double lg[V];
            for (int v = 0; v < V; v++) {
                lg[v] = 0;
                for (int i = 0; i < DI; i++) lg[v] += (double)w[i] * wte[(size_t)v * DI + i];
            }
            /* top/bottom 10, ties lower id first */
            CHECK_INT(r[q].n_logits, 10);
            uint8_t used_p[V] = {0}, used_n[V] = {0};
            for (int k = 0; k < 10; k++) {
                int bp = -1, bn = -1;
                for (int v = 0; v < V; v++) {
                    if (!used_p[v] && (bp < 0 || lg[v] > lg[bp])) bp = v;
                    if (!used_n[v] && (bn < 0 || lg[v] < lg[bn])) bn = v;
                }
                used_p[bp] = used_n[bn] = 1;
                CHECK_INT(r[q].pos_ids[k], bp);
                CHECK(r[q].pos_values[k] == (float)lg[bp]);
                CHECK_INT(r[q].neg_ids[k], bn);
                CHECK(r[q].neg_values[k] == (float)lg[bn]);
            }
            /* histogram of all logits */
            float lo = (float)lg[0], hi = (float)lg[0];
            for (int v = 1; v < V; v++) {
                if (lg[v] < lo) lo = (float)lg[v];
                if (lg[v] > hi) hi = (float)lg[v];
            }
            if (lo == hi) {
                lo -= 1;
                hi += 1;
            }
            int64_t h[50] = {0};
            for (int v = 0; v < V; v++) h[ref_bin((float)lg[v], lo, hi, 50)]++;
            float e[51];
            ref_linspace(lo, hi, 51, e);
            CHECK_INT(r[q].n_logit_hist, 50);
            for (int b = 0; b < 50; b++) {
                CHECK_INT(r[q].logit_hist_heights[b], h[b]);
                CHECK(r[q].logit_hist_values[b] == (e[b] + e[b + 1]) / 2);
            }
            /* neuron alignment */
            double l1 = 0;
            for (int i = 0; i < DI; i++) l1 += fabs(w[i]);
            uint8_t used[DI] = {0};
            CHECK_INT(r[q].n_align, 3);
            for (int k = 0; k < 3; k++) {
                int b = -1;
                for (int i = 0; i < DI; i++)
                    if (!used[i] && (b < 0 || w[i] > w[b])) b = i;
                used[b] = 1;
                CHECK_INT(r[q].align_idx[k], b);
                CHECK(r[q].align_values[k] == w[b]);
                CHECK_NEAR(r[q].align_l1[k], l1 > 0 ? fabs(w[b]) / l1 : 0, 1e-7);
            }
            /* decoder cosine similarity against all features, self excluded */
            double cs[DS];
            double ni = 0;
            for (int i = 0; i < DI; i++) ni += (double)w[i] * w[i];
            for (int g = 0; g < DS; g++) {
                double dot = 0, ng = 0;
                for (int i = 0; i < DI; i++) {
                    dot += (double)w[i] * W[g * DI + i];
                    ng += (double)W[g * DI + i] * W[g * DI + i];
                }
                cs[g] = ni > 0 && ng > 0 ? dot / sqrt(ni * ng) : 0;
            }
            CHECK_INT(r[q].n_cos, 10);
            uint8_t usedc[DS] = {0};
            usedc[f] = 1;
            for (int k = 0; k < 10; k++) {
                int b = -1;
                for (int g = 0; g < DS; g++)
                    if (!usedc[g] && (b < 0 || cs[g] > cs[b] + 1e-9)) b = g;
                usedc[b] = 1;
                CHECK_NEAR(r[q].cos_values[k], cs[b], 1e-5);
                /* indices must match unless the reference has a near-tie at this rank */
                int tie = 0;
                for (int g = 0; g < DS; g++)
                    if (g != b && g != f && fabs(cs[g] - cs[b]) < 1e-5) tie = 1;
                if (!tie) CHECK_INT(r[q].cos_idx[k], b);
            }
            if (f == 6) CHECK(r[q].cos_idx[0] == 7 && fabs(r[q].cos_values[0] - 1) < 1e-6);
        }
        dash_features_free(r, n);
    }
    /* Each pair inside a range is computed once and offered both ways, in an order that
     * depends on the range (dash_weights.c); every range must list the same neighbours, the
     * exact ties among 6, 7 and 12 included, bit for bit. */
    dash_wopts all = o;
    all.cos_k = DS - 1;
    dash_feature *full = dash_features_new(0, DS);
    CHECK_INT(dash_weights(&all, W, DS, DI, NULL, 0, 0, 0, DS, full, err, sizeof err), 0);
    CHECK(full[25].cos_values[0] == full[25].cos_values[0]); /* filled */
    int cuts[] = {0, 9, 10, DS};
    for (int c = 0; c < 3; c++) {
        int n = cuts[c + 1] - cuts[c];
        dash_feature *p = dash_features_new(cuts[c], n);
        CHECK_INT(dash_weights(&all, W, DS, DI, NULL, 0, 0, cuts[c], cuts[c + 1], p, err, sizeof err), 0);
        for (int i = 0; i < n; i++) {
            const dash_feature *a = &full[cuts[c] + i], *b = &p[i];
            CHECK_INT(b->n_cos, DS - 1);
            CHECK(!memcmp(a->cos_idx, b->cos_idx, sizeof *a->cos_idx * (size_t)(DS - 1)));
            CHECK(!memcmp(a->cos_values, b->cos_values, sizeof *a->cos_values * (size_t)(DS - 1)));
        }
        dash_features_free(p, n);
    }
    /* the ties themselves: equal cosines, listed by increasing index */
    int at6 = -1;
    for (int k = 0; k < DS - 1; k++)
        if (full[25].cos_idx[k] == 6) at6 = k;
    CHECK(at6 >= 0 && at6 + 2 < DS - 1);
    if (at6 >= 0 && at6 + 2 < DS - 1) {
        CHECK(full[25].cos_idx[at6 + 1] == 7 && full[25].cos_idx[at6 + 2] == 12);
        CHECK(full[25].cos_values[at6] == full[25].cos_values[at6 + 2]);
    }
    dash_features_free(full, DS);
    free(W);
    free(wte);
    free(WU);
}
