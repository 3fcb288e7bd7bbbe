/* dashboard.c: the streaming per-feature accumulator of dashboard.h (dash_acc_*), plus the
 * torch-compatible formulas shared with dash_weights.c. It keeps, per feature, only bounded
 * state (heaps, interval survivors, a value distribution of fixed size) and never any
 * prompt × position × feature data; what it stores and how exact each result is, is written in
 * dashboard.h. It does not compute the weight-derived quantities (dash_weights.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/dashboard.h" // defines: dash_acc API, dash_feature, options
#include "gpu/par.h"          // defines: par_for

#define UNIT_FEATURES 2048    /* features per work unit when correlated features are off */
#define SKY_MARGIN 1e-4       /* relative slack on the interval width (float edges, see sky_needed) */
#define DASH_CHUNK 16384      /* non-zeros gathered per feature-major pass (flush_chunk) */

/* ---- torch formulas and sampling keys ---- */

void dash_linspace(float a, float b, int n, float *out)
{
    if (n <= 0) return;
    if (n == 1) {
        out[0] = a;
        return;
    }
    /* torch's CPU kernel: start + step·i for the first half, end − step·(n−1−i) for the
     * rest, in float. volatile keeps a compiler from fusing the products into FMAs. */
    float step = (b - a) / (float)(n - 1);
    int half = n / 2;
    for (int i = 0; i < n; i++) {
        volatile float t = step * (float)(i < half ? i : n - 1 - i);
        out[i] = i < half ? a + t : b - t;
    }
}

int dash_histc_bin(float v, float lo, float hi, int bins)
{
    /* torch.histc (LINEAR_INTERPOLATION): (elt − lo)·bins / (hi − lo) in the input's float
     * type, truncated; the last bin holds its right edge. */
    float t = (v - lo) * (float)bins, q = t / (hi - lo);
    if (!(q > 0)) return 0;               /* also NaN */
    return q >= (float)bins ? bins - 1 : (int)q;
}

static inline uint64_t mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* The key is h(prompt, pos) + g(feature) mod 2^64: uniform per feature, and separable, so a
 * batch's positions sorted by h once serve every feature's walk in key order (zero sampling). */
static inline uint64_t pos_hash(uint64_t seed, int64_t prompt, int pos)
{
    return mix64(mix64((uint64_t)prompt ^ mix64(seed)) + (uint64_t)(uint32_t)pos);
}

static inline uint64_t feat_hash(uint64_t seed, int feature)
{
    return mix64(mix64(seed + 0x632be59bd9b4e019ULL) ^ (uint64_t)(uint32_t)feature);
}

uint64_t dash_sample_key(uint64_t seed, int64_t prompt, int pos, int feature)
{
    return pos_hash(seed, prompt, pos) + feat_hash(seed, feature);
}

/* ---- options ---- */

void dash_opts_default(dash_opts *o)
{
    memset(o, 0, sizeof *o);
    o->top_k = 20;
    o->n_intervals = 5;
    o->per_interval = 5;
    o->hist_bins = 50;
    o->hist_sub = 16;
    o->interval_zeros = 1;
    o->interval_cap = 1024;
    o->corr_block = 2048;
    o->seed = 0;
}

/* ---- state ---- */

typedef struct top_ent {
    float v;
    int32_t pos;
    int64_t prompt;
} top_ent;

typedef struct key_ent {
    uint64_t key;
    int64_t prompt;
    int32_t pos;
    float v;
} key_ent;

typedef struct val_cnt {
    float v;
    uint32_t c;
} val_cnt;

typedef struct fstate {
    uint64_t g;               /* feat_hash of this feature */
    int64_t n_nz;
    double s1, s2;            /* Σf, Σf² over unmasked positions */
    float max, min_nz;
    int n_top, n_zero;
    int n_sky, cap_sky, next_prune, sky_lossy, sky_dirty;
    key_ent *sky;             /* interval survivors, sorted by (v, key, prompt, pos) */
    int ncell;                /* reject filter (sky_cells): cells of width cw over [0, max] */
    double cw;
    int dmode, dn;            /* distribution: 0 = dn sorted (value, count); 1 = grid */
    double gA, gu;            /* grid bucket j covers [gA + j·gu, gA + (j+1)·gu) */
} fstate;

typedef struct nzent {
    int32_t p, j;             /* position in the batch, local feature */
    float v;
} nzent;

typedef struct unit {
    int lo, hi;               /* local feature range [lo, hi) */
    double *pairs;            /* corr: packed upper triangle Σ f_i·f_j, i < j, or NULL */
    nzent *buf, *sorted;      /* scratch: a chunk of non-zeros, as found and by feature */
    int *cnt;                 /* (nb + 1) counting sort */
    float *L, *R;             /* scratch for sky_needed (interval_cap each) */
    uint64_t *kk;             /* scratch for sky_cells (per_interval) */
    uint8_t *keep;
    val_cnt *conv;            /* scratch for the exact → grid conversion */
} unit;

typedef struct zpos {
    uint64_t h;
    int32_t p;                /* position index within the batch */
} zpos;

struct dash_acc {
    dash_opts o;
    int f0, F, T, d_in;
    int G, D;                 /* grid buckets, exact (value, count) capacity */
    int64_t n_positions, n_unmasked, next_prompt;
    fstate *fs;
    top_ent *top;             /* (F, top_k) */
    key_ent *zero;            /* (F, per_interval) */
    uint64_t *tau;            /* (F, 2·n_intervals + 3) per-cell k-th smallest survivor key */
    void *dist;               /* (F, G·4 bytes) */
    double *cn;               /* (F, d_in) Σ f·x_j, or NULL */
    double *sx, *sx2;         /* (d_in) */
    int n_units;
    unit *units;
    size_t fixed_bytes;
    /* per batch */
    const float *acts;
    const uint8_t *mask;
    const float *x;
    int N;
    int64_t prompt0;
    uint64_t *hp;             /* (N) pos_hash */
    zpos *zo;                 /* unmasked positions sorted by hash */
    int n_zo, cap_batch;
};

static inline val_cnt *dist_exact(dash_acc *a, int j) { return (val_cnt *)((char *)a->dist + (size_t)j * a->G * 4); }
static inline uint32_t *dist_grid(dash_acc *a, int j) { return (uint32_t *)((char *)a->dist + (size_t)j * a->G * 4); }

/* ---- orderings ---- */

static inline int top_better(const top_ent *x, const top_ent *y)
{
    if (x->v != y->v) return x->v > y->v;
    if (x->prompt != y->prompt) return x->prompt < y->prompt;
    return x->pos < y->pos;
}

static inline int key_less(const key_ent *x, const key_ent *y)
{
    if (x->key != y->key) return x->key < y->key;
    if (x->prompt != y->prompt) return x->prompt < y->prompt;
    return x->pos < y->pos;
}

/* Interval survivors are ordered by value, then key order. */
static inline int sky_before(const key_ent *x, const key_ent *y)
{
    if (x->v != y->v) return x->v < y->v;
    return key_less(x, y);
}

/* ---- bounded heaps: the root is the element that leaves first ---- */

static void top_push(top_ent *h, int *n, int cap, const top_ent *e)
{
    if (cap <= 0) return;
    int i;
    if (*n < cap) {
        for (i = (*n)++; i > 0; ) {
            int p = (i - 1) / 2;
            if (!top_better(&h[p], e)) break;
            h[i] = h[p];
            i = p;
        }
        h[i] = *e;
        return;
    }
    if (!top_better(e, &h[0])) return;
    for (i = 0;;) {
        int l = 2 * i + 1, c = l;
        if (l >= *n) break;
        if (l + 1 < *n && top_better(&h[l], &h[l + 1])) c = l + 1;
        if (!top_better(e, &h[c])) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = *e;
}

static void key_push(key_ent *h, int *n, int cap, const key_ent *e)
{
    if (cap <= 0) return;
    int i;
    if (*n < cap) {
        for (i = (*n)++; i > 0; ) {
            int p = (i - 1) / 2;
            if (!key_less(&h[p], e)) break;
            h[i] = h[p];
            i = p;
        }
        h[i] = *e;
        return;
    }
    if (!key_less(e, &h[0])) return;
    for (i = 0;;) {
        int l = 2 * i + 1, c = l;
        if (l >= *n) break;
        if (l + 1 < *n && key_less(&h[l], &h[l + 1])) c = l + 1;
        if (!key_less(e, &h[c])) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = *e;
}

/* ---- value distribution: exact (value, count) pairs, then a doubling grid ---- */

static void grid_add(dash_acc *a, fstate *s, uint32_t *cnt, double v, uint32_t c)
{
    int G = a->G, H = G / 2;
    for (;;) {
        double R = G * s->gu;
        if (v < s->gA) {
            /* new range [A − R, A + R): old buckets pair up into the upper half; descending
             * so nothing is overwritten before it is read */
            for (int i = G - 1; i >= H; i--) cnt[i] = cnt[2 * (i - H)] + cnt[2 * (i - H) + 1];
            memset(cnt, 0, (size_t)H * sizeof *cnt);
            s->gA -= R;
            s->gu *= 2;
        } else if (v >= s->gA + R) {
            for (int i = 0; i < H; i++) cnt[i] = cnt[2 * i] + cnt[2 * i + 1];
            memset(cnt + H, 0, (size_t)(G - H) * sizeof *cnt);
            s->gu *= 2;
        } else {
            break;
        }
    }
    long j = (long)((v - s->gA) / s->gu);
    if (j < 0) j = 0;
    if (j >= G) j = G - 1;
    cnt[j] += c;
}

static void dist_add(dash_acc *a, int j, fstate *s, float v, val_cnt *conv)
{
    if (s->dmode == 1) {
        grid_add(a, s, dist_grid(a, j), v, 1);
        return;
    }
    val_cnt *e = dist_exact(a, j);
    int lo = 0, hi = s->dn;
    while (lo < hi) {
        int m = (lo + hi) / 2;
        if (e[m].v < v) lo = m + 1;
        else hi = m;
    }
    if (lo < s->dn && e[lo].v == v) {
        e[lo].c++;
        return;
    }
    if (s->dn < a->D) {
        memmove(e + lo + 1, e + lo, (size_t)(s->dn - lo) * sizeof *e);
        e[lo].v = v;
        e[lo].c = 1;
        s->dn++;
        return;
    }
    /* Too many distinct values: a grid of G buckets fitted to the values seen so far. */
    memcpy(conv, e, (size_t)s->dn * sizeof *e);
    uint32_t *cnt = dist_grid(a, j);
    memset(cnt, 0, (size_t)a->G * sizeof *cnt);
    s->dmode = 1;
    s->gA = conv[0].v;
    s->gu = ((double)conv[s->dn - 1].v - conv[0].v) / (a->G - 1);
    for (int i = 0; i < s->dn; i++) grid_add(a, s, cnt, conv[i].v, conv[i].c);
    grid_add(a, s, cnt, v, 1);
}

/* Visits the distribution as (lowest, highest value, count) items; exact items have lo = hi. */
typedef void (*dist_fn)(void *ctx, double lo, double hi, double c);

static void dist_visit(dash_acc *a, int j, const fstate *s, dist_fn fn, void *ctx)
{
    if (s->dmode == 0) {
        const val_cnt *e = dist_exact(a, j);
        for (int i = 0; i < s->dn; i++) fn(ctx, e[i].v, e[i].v, e[i].c);
        return;
    }
    const uint32_t *cnt = dist_grid(a, j);
    for (int i = 0; i < a->G; i++)
        if (cnt[i]) fn(ctx, s->gA + i * s->gu, s->gA + (i + 1) * s->gu, cnt[i]);
}

typedef struct hist_ctx {
    float lo, hi;             /* histc range (already widened when lo = hi) */
    int bins;
    double *h;
} hist_ctx;

static void hist_item(void *ctx, double a, double b, double c)
{
    hist_ctx *h = ctx;
    if (a == b) {
        h->h[dash_histc_bin((float)a, h->lo, h->hi, h->bins)] += c;
        return;
    }
    /* A grid bucket: clip to the data range, then split by overlap when it is cut. */
    if (a < h->lo) a = h->lo;
    if (b > h->hi) b = h->hi;
    if (b <= a) {
        h->h[dash_histc_bin((float)a, h->lo, h->hi, h->bins)] += c;
        return;
    }
    int ba = dash_histc_bin((float)a, h->lo, h->hi, h->bins), bb = dash_histc_bin((float)b, h->lo, h->hi, h->bins);
    if (ba == bb) {
        h->h[ba] += c;
        return;
    }
    double w = ((double)h->hi - h->lo) / h->bins;
    for (int i = ba; i <= bb; i++) {
        double el = h->lo + i * w, er = el + w;
        double ol = a > el ? a : el, orr = b < er ? b : er;
        if (orr > ol) h->h[i] += c * (orr - ol) / (b - a);
    }
}

typedef struct range_ctx {
    double lo, hi, sum;
} range_ctx;

static void range_item(void *ctx, double a, double b, double c)
{
    range_ctx *r = ctx;
    if (a == b) {
        if (a >= r->lo && a <= r->hi) r->sum += c;
        return;
    }
    double ol = a > r->lo ? a : r->lo, orr = b < r->hi ? b : r->hi;
    if (orr > ol) r->sum += c * (orr - ol) / (b - a);
}

/* ---- interval survivors ---- */

/* Whether x must be kept: some window [t, t+w] with max(0, v−w) ≤ t ≤ v (every final interval
 * containing v contains one, see dashboard.h) holds fewer than k survivors with smaller keys.
 * Neighbours on a window's border are not counted, which can only keep more. L, R: scratch. */
static int sky_needed(const key_ent *s, int n, const key_ent *x, int self, double w, int k, float *L, float *R)
{
    double v = x->v, tmin = v - w > 0 ? v - w : 0;
    int lo = 0, hi = n;
    while (lo < hi) {
        int m = (lo + hi) / 2;
        if ((double)s[m].v <= tmin) lo = m + 1;
        else hi = m;
    }
    int nl = 0, nr = 0, eq = 0;
    for (int i = lo; i < n && (double)s[i].v < v + w; i++) {
        if (i == self || !key_less(&s[i], x)) continue;
        if (s[i].v < x->v) L[nl++] = s[i].v;
        else if (s[i].v == x->v) eq++;
        else R[nr++] = s[i].v;
    }
    if (eq >= k) return 0;
    /* count(t) = eq + #{l > t} + #{r < t + w}: left falls, right rises with t, so the
     * minimum is at t = tmin, at some t = l, or at t = v. */
    int j = 0;
    while (j < nr && (double)R[j] < tmin + w) j++;
    int best = nl + j;
    for (int t = 0; t < nl && best > 0; t++) {
        while (j < nr && (double)R[j] < (double)L[t] + w) j++;
        int c = nl - t - 1 + j;
        if (c < best) best = c;
    }
    if (nr < best) best = nr;
    return eq + best < k;
}

static double sky_width(const dash_acc *a, const fstate *s)
{
    return (double)s->max / a->o.n_intervals * (1.0 - SKY_MARGIN);
}

/* The reject filter. Cells of width a bit under w/2 (the slack absorbs rounding in the cell
 * index): a window [t, t+w] that contains v fully contains v's cell (t in the cell left of
 * v's), the one left of it (t further left) or the one right of it (t inside v's cell). So
 * when each of the three holds k elements with keys below x's, x is dominated. tau[c] is the k-th smallest survivor key in cell c (UINT64_MAX with fewer);
 * computed from elements really seen, so it stays valid as survivors are pruned and as w
 * grows (wider windows contain more); it only gets less sharp until the next rebuild. */
static inline int cells_dominate(const dash_acc *a, const fstate *s, const key_ent *e, int j)
{
    if (!s->ncell) return 0;
    double r = e->v / s->cw;
    if (!(r < s->ncell - 1)) return 0;
    long c = (long)r;
    const uint64_t *tau = a->tau + (size_t)j * (2 * (size_t)a->o.n_intervals + 3);
    uint64_t t = tau[c] > tau[c + 1] ? tau[c] : tau[c + 1];
    if (c > 0 && tau[c - 1] > t) t = tau[c - 1];
    return e->key > t;
}

static void sky_cells(dash_acc *a, fstate *s, int j, unit *u)
{
    int k = a->o.per_interval, nmax = 2 * a->o.n_intervals + 3;
    uint64_t *tau = a->tau + (size_t)j * nmax;
    s->cw = sky_width(a, s) / 2 * (1 - 1e-3);
    long nc = (long)(s->max / s->cw) + 1;
    s->ncell = nc < nmax ? (int)nc : nmax;
    s->sky_dirty = 0;
    for (int c = 0; c < s->ncell; c++) tau[c] = UINT64_MAX;
    for (int i = 0; i < s->n_sky;) {
        long c = (long)(s->sky[i].v / s->cw);
        int m = 0, i0 = i;
        while (i < s->n_sky && (long)(s->sky[i].v / s->cw) == c) {
            /* k smallest keys of the cell, ascending, by insertion */
            uint64_t key = s->sky[i++].key;
            if (m == k && key >= u->kk[k - 1]) continue;
            int p = m < k ? m++ : k - 1;
            while (p > 0 && u->kk[p - 1] > key) {
                u->kk[p] = u->kk[p - 1];
                p--;
            }
            u->kk[p] = key;
        }
        if (c < s->ncell && i - i0 >= k) tau[c] = u->kk[k - 1];
    }
}

static void sky_prune(dash_acc *a, fstate *s, unit *u)
{
    double w = sky_width(a, s);
    int n = s->n_sky, m = 0;
    for (int i = 0; i < n; i++) u->keep[i] = (uint8_t)sky_needed(s->sky, n, &s->sky[i], i, w, a->o.per_interval, u->L, u->R);
    for (int i = 0; i < n; i++)
        if (u->keep[i]) s->sky[m++] = s->sky[i];
    s->n_sky = m;
    s->next_prune = 2 * m > 64 ? 2 * m : 64;
    /* the first batches, with a small max, leave a big array behind: give it back */
    int want = 2 * m > 16 ? 2 * m : 16;
    if (s->cap_sky > 2 * want && want < a->o.interval_cap) {
        key_ent *p = realloc(s->sky, (size_t)want * sizeof *p);
        if (p) {
            s->sky = p;
            s->cap_sky = want;
        }
    }
}

/* 0, or -1 when out of memory. */
static int sky_add(dash_acc *a, fstate *s, int j, const key_ent *e, unit *u)
{
    int k = a->o.per_interval;
    if (cells_dominate(a, s, e, j)) return 0;
    if (!sky_needed(s->sky, s->n_sky, e, -1, sky_width(a, s), k, u->L, u->R)) return 0;
    if (s->n_sky == s->cap_sky) {
        if (s->cap_sky < a->o.interval_cap) {
            int nc = s->cap_sky ? 2 * s->cap_sky : 16;
            if (nc > a->o.interval_cap) nc = a->o.interval_cap;
            key_ent *p = realloc(s->sky, (size_t)nc * sizeof *p);
            if (!p) return -1;
            s->sky = p;
            s->cap_sky = nc;
        } else {
            sky_prune(a, s, u);
            if (s->n_sky == s->cap_sky) {
                /* Hard cap: drop the largest key, the survivor least likely to be drawn. */
                int worst = 0;
                for (int i = 1; i < s->n_sky; i++)
                    if (key_less(&s->sky[worst], &s->sky[i])) worst = i;
                if (key_less(&s->sky[worst], e)) {
                    s->sky_lossy = 1;
                    return 0;
                }
                memmove(s->sky + worst, s->sky + worst + 1, (size_t)(s->n_sky - worst - 1) * sizeof *s->sky);
                s->n_sky--;
                s->sky_lossy = 1;
            }
        }
    }
    int lo = 0, hi = s->n_sky;
    while (lo < hi) {
        int m = (lo + hi) / 2;
        if (sky_before(&s->sky[m], e)) lo = m + 1;
        else hi = m;
    }
    memmove(s->sky + lo + 1, s->sky + lo, (size_t)(s->n_sky - lo) * sizeof *s->sky);
    s->sky[lo] = *e;
    s->n_sky++;
    s->sky_dirty = 1;
    return 0;
}

/* ---- construction ---- */

static int set_err(char *err, size_t errlen, const char *msg)
{
    if (err && errlen) snprintf(err, errlen, "%s", msg);
    return -1;
}

dash_acc *dash_acc_new(const dash_opts *o, int f0, int f1, int T, int d_in, char *err, size_t errlen)
{
    dash_opts d;
    if (!o) {
        dash_opts_default(&d);
        o = &d;
    }
    const char *bad = NULL;
    if (f0 < 0 || f1 <= f0) bad = "feature range [f0, f1) is empty or negative";
    else if (T < 1 || T > (1 << 24)) bad = "T must be in 1..16777216";
    else if (d_in < 0) bad = "d_in must be >= 0";
    else if (o->top_k < 0 || o->top_k > 100000) bad = "top_k must be in 0..100000";
    else if (o->n_intervals < 1 || o->n_intervals > 100) bad = "n_intervals must be in 1..100";
    else if (o->per_interval < 0 || o->per_interval > 100000) bad = "per_interval must be in 0..100000";
    else if (o->hist_bins < 1 || o->hist_bins > 100000) bad = "hist_bins must be in 1..100000";
    else if (o->hist_sub < 2 || o->hist_sub % 2 || (long)o->hist_bins * o->hist_sub < 4 ||
             (long)o->hist_bins * o->hist_sub > (1L << 24))
        bad = "hist_sub must be even, >= 2, with hist_bins*hist_sub in 4..16777216";
    else if (o->interval_cap < 2 * o->per_interval + 16) bad = "interval_cap must be >= 2*per_interval+16";
    else if (o->corr_block < 0) bad = "corr_block must be >= 0";
    if (bad) {
        set_err(err, errlen, bad);
        return NULL;
    }
    dash_acc *a = calloc(1, sizeof *a);
    if (!a) goto oom;
    a->o = *o;
    a->f0 = f0;
    a->F = f1 - f0;
    a->T = T;
    a->d_in = d_in;
    a->G = o->hist_bins * o->hist_sub;
    a->D = a->G / 2;
    a->next_prompt = INT64_MIN;
    int F = a->F;
    size_t bytes = sizeof *a;
    a->fs = calloc((size_t)F, sizeof *a->fs);
    a->top = malloc((size_t)F * (o->top_k ? o->top_k : 1) * sizeof *a->top);
    a->zero = malloc((size_t)F * (o->per_interval ? o->per_interval : 1) * sizeof *a->zero);
    a->dist = calloc((size_t)F, (size_t)a->G * 4);
    a->tau = malloc((size_t)F * (2 * (size_t)o->n_intervals + 3) * sizeof *a->tau);
    if (!a->fs || !a->top || !a->zero || !a->dist || !a->tau) goto oom;
    bytes += (size_t)F * (sizeof *a->fs + (size_t)o->top_k * sizeof *a->top +
                          (size_t)o->per_interval * sizeof *a->zero + (size_t)a->G * 4 +
                          (2 * (size_t)o->n_intervals + 3) * sizeof *a->tau);
    for (int j = 0; j < F; j++) {
        a->fs[j].g = feat_hash(o->seed, f0 + j);
        a->fs[j].next_prune = 64;
    }
    if (d_in > 0) {
        a->cn = calloc((size_t)F * d_in, sizeof *a->cn);
        a->sx = calloc((size_t)d_in, sizeof *a->sx);
        a->sx2 = calloc((size_t)d_in, sizeof *a->sx2);
        if (!a->cn || !a->sx || !a->sx2) goto oom;
        bytes += ((size_t)F + 2) * d_in * sizeof(double);
    }
    /* Work units: correlated-feature blocks aligned to absolute indices, else fixed chunks. */
    int cb = o->corr_block, nu = 0;
    for (int lo = 0; lo < F; nu++) {
        int hi = cb ? (int)(((long)(f0 + lo) / cb + 1) * cb - f0) : lo + UNIT_FEATURES;
        lo = hi < F ? hi : F;
    }
    a->units = calloc((size_t)nu, sizeof *a->units);
    if (!a->units) goto oom;
    a->n_units = nu;
    for (int lo = 0, i = 0; lo < F; i++) {
        int hi = cb ? (int)(((long)(f0 + lo) / cb + 1) * cb - f0) : lo + UNIT_FEATURES;
        if (hi > F) hi = F;
        unit *u = &a->units[i];
        u->lo = lo;
        u->hi = hi;
        size_t nb = (size_t)(hi - lo);
        u->buf = malloc((DASH_CHUNK + nb) * sizeof *u->buf);
        u->sorted = malloc((DASH_CHUNK + nb) * sizeof *u->sorted);
        u->cnt = malloc((nb + 1) * sizeof *u->cnt);
        u->L = malloc((size_t)o->interval_cap * sizeof *u->L);
        u->R = malloc((size_t)o->interval_cap * sizeof *u->R);
        u->keep = malloc((size_t)o->interval_cap);
        u->kk = malloc(((size_t)o->per_interval + 1) * sizeof *u->kk);
        u->conv = malloc((size_t)a->D * sizeof *u->conv);
        if (!u->buf || !u->sorted || !u->cnt || !u->L || !u->R || !u->keep || !u->kk || !u->conv) goto oom;
        bytes += (DASH_CHUNK + nb) * 2 * sizeof *u->buf + (nb + 1) * sizeof *u->cnt + (size_t)o->interval_cap * 9 + (size_t)a->D * sizeof *u->conv +
                 ((size_t)o->per_interval + 1) * sizeof *u->kk;
        if (cb && nb > 1) {
            u->pairs = calloc(nb * (nb - 1) / 2, sizeof *u->pairs);
            if (!u->pairs) goto oom;
            bytes += nb * (nb - 1) / 2 * sizeof *u->pairs;
        }
        lo = hi;
    }
    bytes += (size_t)nu * sizeof *a->units;
    a->fixed_bytes = bytes;
    return a;
oom:
    dash_acc_free(a);
    set_err(err, errlen, "out of memory creating the dashboard accumulator");
    return NULL;
}

void dash_acc_free(dash_acc *a)
{
    if (!a) return;
    if (a->fs)
        for (int j = 0; j < a->F; j++) free(a->fs[j].sky);
    for (int i = 0; i < a->n_units; i++) {
        unit *u = &a->units[i];
        free(u->pairs);
        free(u->buf);
        free(u->sorted);
        free(u->cnt);
        free(u->L);
        free(u->R);
        free(u->keep);
        free(u->kk);
        free(u->conv);
    }
    free(a->units);
    free(a->fs);
    free(a->top);
    free(a->zero);
    free(a->dist);
    free(a->tau);
    free(a->cn);
    free(a->sx);
    free(a->sx2);
    free(a->hp);
    free(a->zo);
    free(a);
}

size_t dash_acc_bytes(const dash_acc *a)
{
    size_t b = a->fixed_bytes + (size_t)a->cap_batch * (sizeof *a->hp + sizeof *a->zo);
    for (int j = 0; j < a->F; j++) b += (size_t)a->fs[j].cap_sky * sizeof(key_ent);
    return b;
}

/* ---- one batch ---- */

typedef struct scan_job {
    dash_acc *a;
    int oom;
} scan_job;

static void feat_update(dash_acc *a, unit *u, int j, float v, int64_t prompt, int pos, uint64_t h, int *oom)
{
    fstate *s = &a->fs[j];
    s->n_nz++;
    s->s1 += v;
    s->s2 += (double)v * v;
    if (s->n_nz == 1 || v < s->min_nz) s->min_nz = v;
    if (v > s->max) s->max = v;
    top_ent t = {v, pos, prompt};
    top_push(a->top + (size_t)j * a->o.top_k, &s->n_top, a->o.top_k, &t);
    dist_add(a, j, s, v, u->conv);
    if (a->o.per_interval) {
        key_ent e = {h + s->g, prompt, pos, v};
        if (sky_add(a, s, j, &e, u)) *oom = 1;
    }
}

/* Zeros of unmasked positions, walked in increasing key order for this feature: the batch's
 * positions sorted by h, starting at h = −g (keys h + g wrap around there). */
static void zero_walk(dash_acc *a, int j)
{
    fstate *s = &a->fs[j];
    int n = a->n_zo, k = a->o.per_interval, F = a->F, T = a->T;
    key_ent *heap = a->zero + (size_t)j * k;
    uint64_t start = (uint64_t)0 - s->g;
    int lo = 0, hi = n;
    while (lo < hi) {
        int m = (lo + hi) / 2;
        if (a->zo[m].h < start) lo = m + 1;
        else hi = m;
    }
    for (int c = 0; c < n; c++) {
        const zpos *z = &a->zo[(lo + c) % n];
        uint64_t key = z->h + s->g;
        if (s->n_zero == k && key > heap[0].key) break;
        if (a->acts[(size_t)z->p * F + j] > 0) continue;
        key_ent e = {key, a->prompt0 + z->p / T, z->p % T, 0.0f};
        key_push(heap, &s->n_zero, k, &e);
    }
}

/* c += v·x in double. axpy4 applies four positions in one pass over c, adding them in the
 * same order as four axpy1 calls would (bit-identical), with a quarter of the row traffic. */
typedef double v2d __attribute__((vector_size(16))); /* GCC vector extension: SSE2/NEON or emulated */

static inline v2d ld2(const float *x) { return (v2d){x[0], x[1]}; }

static void axpy1(double *restrict c, const float *restrict x, double v, int n)
{
    for (int k = 0; k < n; k++) c[k] += v * x[k];
}

static void axpy4(double *restrict c, const float *restrict x0, const float *restrict x1, const float *restrict x2,
                  const float *restrict x3, double v0, double v1, double v2, double v3, int n)
{
    int k = 0;
    v2d w0 = {v0, v0}, w1 = {v1, v1}, w2 = {v2, v2}, w3 = {v3, v3};
    for (; k + 2 <= n; k += 2) {
        v2d cc;
        memcpy(&cc, c + k, sizeof cc);
        cc = cc + w0 * ld2(x0 + k);
        cc = cc + w1 * ld2(x1 + k);
        cc = cc + w2 * ld2(x2 + k);
        cc = cc + w3 * ld2(x3 + k);
        memcpy(c + k, &cc, sizeof cc);
    }
    for (; k < n; k++) c[k] = c[k] + v0 * x0[k] + v1 * x1[k] + v2 * x2[k] + v3 * x3[k];
}

/* The unit's non-zeros of a chunk of positions, regrouped by feature (a stable counting
 * sort, so each feature still sees them in position order: results stay bit-identical to a
 * position-major pass) and applied one feature at a time, which keeps that feature's state
 * and its Σ f·x row in cache instead of touching a random 6 KB row per non-zero. */
static void flush_chunk(dash_acc *a, unit *u, int n, int *oom)
{
    int nb = u->hi - u->lo, d_in = a->d_in, T = a->T;
    int *cnt = u->cnt;
    memset(cnt, 0, ((size_t)nb + 1) * sizeof *cnt);
    for (int i = 0; i < n; i++) cnt[u->buf[i].j - u->lo + 1]++;
    for (int b = 0; b < nb; b++) cnt[b + 1] += cnt[b];
    for (int i = 0; i < n; i++) u->sorted[cnt[u->buf[i].j - u->lo]++] = u->buf[i];
    for (int i = 0; i < n;) {
        int j = u->sorted[i].j, e = i;
        while (e < n && u->sorted[e].j == j) e++;
        for (int q = i; q < e; q++) {
            const nzent *z = &u->sorted[q];
            feat_update(a, u, j, z->v, a->prompt0 + z->p / T, z->p % T, a->hp[z->p], oom);
        }
        if (a->x) {
            double *c = a->cn + (size_t)j * d_in;
            int q = i;
            for (; q + 4 <= e; q += 4) {
                const nzent *z = &u->sorted[q];
                axpy4(c, a->x + (size_t)z[0].p * d_in, a->x + (size_t)z[1].p * d_in, a->x + (size_t)z[2].p * d_in,
                      a->x + (size_t)z[3].p * d_in, z[0].v, z[1].v, z[2].v, z[3].v, d_in);
            }
            for (; q < e; q++) axpy1(c, a->x + (size_t)u->sorted[q].p * d_in, u->sorted[q].v, d_in);
        }
        i = e;
    }
}

static void scan_units(void *ctx, size_t begin, size_t end)
{
    scan_job *job = ctx;
    dash_acc *a = job->a;
    int F = a->F, oom = 0;
    for (size_t ui = begin; ui < end; ui++) {
        unit *u = &a->units[ui];
        int nb = u->hi - u->lo, lo = u->lo, hi = u->hi, n = 0;
        nzent *buf = u->buf;
        for (int p = 0; p < a->N; p++) {
            if (a->mask && !a->mask[p]) continue;
            const float *row = a->acts + (size_t)p * F;
            int n0 = n, j = lo;
            /* SAE activations are sparse: test 8 at a time (vectorizes), then pick */
            for (; j + 8 <= hi; j += 8) {
                int any = 0;
                for (int q = 0; q < 8; q++) any |= row[j + q] > 0;
                if (!any) continue;
                for (int q = j; q < j + 8; q++)
                    if (row[q] > 0) buf[n++] = (nzent){p, q, row[q]};
            }
            for (; j < hi; j++)
                if (row[j] > 0) buf[n++] = (nzent){p, j, row[j]};
            if (u->pairs)
                for (int i = n0; i < n; i++) {
                    /* pair (li, lq), li < lq, sits at li·(2nb − li − 1)/2 + lq − li − 1 */
                    size_t li = (size_t)(buf[i].j - lo);
                    double *row_i = u->pairs + li * (2 * (size_t)nb - li - 1) / 2;
                    double vi = buf[i].v;
                    for (int q = i + 1; q < n; q++) row_i[(size_t)(buf[q].j - lo) - li - 1] += vi * buf[q].v;
                }
            if (n >= DASH_CHUNK) {
                flush_chunk(a, u, n, &oom);
                n = 0;
            }
        }
        if (n) flush_chunk(a, u, n, &oom);
        for (int j = u->lo; j < u->hi; j++) {
            fstate *s = &a->fs[j];
            if (a->o.interval_zeros && a->o.per_interval) zero_walk(a, j);
            if (s->n_sky >= s->next_prune) sky_prune(a, s, u);
            if (s->sky_dirty && a->o.per_interval) sky_cells(a, s, j, u);
        }
    }
    if (oom) job->oom = 1;
}

static int zpos_cmp(const void *x, const void *y)
{
    const zpos *a = x, *b = y;
    if (a->h != b->h) return a->h < b->h ? -1 : 1;
    return (a->p > b->p) - (a->p < b->p);
}

int dash_acc_add(dash_acc *a, const float *acts, const uint8_t *mask, int B, int64_t prompt0, const float *x,
                 char *err, size_t errlen)
{
    if (B < 0 || (B > 0 && !acts)) return set_err(err, errlen, "dash_acc_add: no activations");
    if (a->d_in > 0 && B > 0 && !x) return set_err(err, errlen, "dash_acc_add: x is required when d_in > 0");
    if (prompt0 < 0 || prompt0 < a->next_prompt)
        return set_err(err, errlen, "dash_acc_add: prompts must be fed in increasing order");
    if (B == 0) return 0;
    long long N = (long long)B * a->T;
    if (N > INT32_MAX / 2 || a->n_positions + N > (long long)UINT32_MAX)
        return set_err(err, errlen, "dash_acc_add: too many positions (per-value counts are 32-bit)");
    if (N > a->cap_batch) {
        uint64_t *hp = realloc(a->hp, (size_t)N * sizeof *hp);
        if (hp) a->hp = hp;
        zpos *zo = realloc(a->zo, (size_t)N * sizeof *zo);
        if (zo) a->zo = zo;
        if (!hp || !zo) return set_err(err, errlen, "dash_acc_add: out of memory");
        a->cap_batch = (int)N;
    }
    a->acts = acts;
    a->mask = mask;
    a->x = a->d_in > 0 ? x : NULL;
    a->N = (int)N;
    a->prompt0 = prompt0;
    a->n_zo = 0;
    for (int p = 0; p < a->N; p++) {
        a->hp[p] = pos_hash(a->o.seed, prompt0 + p / a->T, p % a->T);
        if (mask && !mask[p]) continue;
        a->zo[a->n_zo].h = a->hp[p];
        a->zo[a->n_zo++].p = p;
        if (a->x) {
            const float *xr = a->x + (size_t)p * a->d_in;
            for (int k = 0; k < a->d_in; k++) {
                a->sx[k] += xr[k];
                a->sx2[k] += (double)xr[k] * xr[k];
            }
        }
    }
    if (a->o.interval_zeros && a->o.per_interval) qsort(a->zo, (size_t)a->n_zo, sizeof *a->zo, zpos_cmp);
    scan_job job = {a, 0};
    par_for((size_t)a->n_units, 1, scan_units, &job);
    a->n_positions += N;
    a->n_unmasked += a->n_zo;
    a->next_prompt = prompt0 + B;
    a->acts = NULL;
    a->mask = NULL;
    a->x = NULL;
    if (job.oom) return set_err(err, errlen, "dash_acc_add: out of memory (interval survivors)");
    return 0;
}

/* ---- results ---- */

dash_feature *dash_features_new(int f0, int n)
{
    dash_feature *r = calloc(n > 0 ? (size_t)n : 1, sizeof *r);
    if (r)
        for (int i = 0; i < n; i++) r[i].index = f0 + i;
    return r;
}

void dash_features_free(dash_feature *r, int n)
{
    if (!r) return;
    for (int i = 0; i < n; i++) {
        dash_feature *f = &r[i];
        free(f->examples);
        free(f->intervals);
        free(f->hist_values);
        free(f->hist_heights);
        free(f->pos_ids);
        free(f->neg_ids);
        free(f->pos_values);
        free(f->neg_values);
        free(f->logit_hist_values);
        free(f->logit_hist_heights);
        free(f->cos_idx);
        free(f->cos_values);
    }
    free(r);
}

/* Keeps the best 3 (value desc, index asc) in idx/val/aux. */
static void top3_offer(int *n, int32_t *idx, float *val, float *aux, double v, int i, double x)
{
    int m = *n;
    if (m == DASH_TOP3 && !(v > val[m - 1] || (v == val[m - 1] && i < idx[m - 1]))) return;
    if (m < DASH_TOP3) m++;
    int p = m - 1;
    while (p > 0 && (v > val[p - 1] || (v == val[p - 1] && i < idx[p - 1]))) {
        idx[p] = idx[p - 1];
        val[p] = val[p - 1];
        aux[p] = aux[p - 1];
        p--;
    }
    idx[p] = i;
    val[p] = (float)v;
    aux[p] = (float)x;
    *n = m;
}

static int key_cmp(const void *x, const void *y)
{
    const key_ent *a = x, *b = y;
    return key_less(a, b) ? -1 : key_less(b, a) ? 1 : 0;
}

static int ex_cmp(const void *x, const void *y)
{
    const dash_example *a = x, *b = y;
    if (a->value != b->value) return a->value > b->value ? -1 : 1;
    if (a->prompt != b->prompt) return a->prompt < b->prompt ? -1 : 1;
    return (a->pos > b->pos) - (a->pos < b->pos);
}

/* A variance that is zero up to rounding (constant feature or dimension) gives no Pearson. */
static int has_var(double var, double n, double s2) { return var > 1e-10 * n * s2 && var > 0; }

typedef struct fin_job {
    dash_acc *a;
    dash_feature *out;
    int oom;
} fin_job;

static int finish_one(dash_acc *a, int j, dash_feature *f, key_ent *cand, double *hb)
{
    const dash_opts *o = &a->o;
    fstate *s = &a->fs[j];
    int n = o->n_intervals, k = o->per_interval;
    f->n_positions = a->n_positions;
    f->n_nonzero = s->n_nz;
    f->frac_nonzero = a->n_positions ? (double)s->n_nz / (double)a->n_positions : 0;
    f->max_value = s->n_nz ? s->max : 0;
    f->min_nonzero = s->n_nz ? s->min_nz : 0;
    f->hist_exact = s->dmode == 0;
    f->examples_exact = !s->sky_lossy;
    if (s->n_nz) {
        /* examples: top group, then intervals from the highest */
        f->examples = calloc((size_t)s->n_top + (size_t)n * k + 1, sizeof *f->examples); /* zeroed padding: memcmp-able */
        f->intervals = calloc((size_t)n, sizeof *f->intervals);
        if (!f->examples || !f->intervals) return -1;
        /* the heap stays a heap (more batches may follow): sort a copy */
        const top_ent *top = a->top + (size_t)j * o->top_k;
        int ne = 0;
        for (int i = 0; i < s->n_top; i++)
            f->examples[ne++] = (dash_example){top[i].prompt, top[i].pos, -1, top[i].v};
        qsort(f->examples, (size_t)ne, sizeof *f->examples, ex_cmp);
        float e[101];
        dash_linspace(0.0f, s->max, n + 1, e);
        f->n_intervals = n;
        for (int q = n - 1; q >= 0; q--) {
            dash_interval *iv = &f->intervals[q];
            iv->lo = e[q];
            iv->hi = e[q + 1];
            int nc = 0;
            for (int i = 0; i < s->n_sky; i++)
                if (s->sky[i].v >= iv->lo && s->sky[i].v <= iv->hi) cand[nc++] = s->sky[i];
            if (q == 0 && o->interval_zeros)
                for (int i = 0; i < s->n_zero; i++) cand[nc++] = a->zero[(size_t)j * k + i];
            qsort(cand, (size_t)nc, sizeof *cand, key_cmp);
            if (nc > k) nc = k;
            iv->n_examples = nc;
            for (int i = 0; i < nc; i++)
                f->examples[ne + i] = (dash_example){cand[i].prompt, cand[i].pos, q, cand[i].v};
            qsort(f->examples + ne, (size_t)nc, sizeof *f->examples, ex_cmp);
            ne += nc;
            range_ctx rc = {iv->lo, iv->hi, 0};
            dist_visit(a, j, s, range_item, &rc);
            if (q == 0 && o->interval_zeros) rc.sum += (double)(a->n_positions - s->n_nz);
            iv->contains = a->n_positions ? rc.sum / (double)a->n_positions : 0;
        }
        f->n_examples = ne;
        /* histogram of the non-zero values */
        int nb = o->hist_bins;
        hist_ctx hc = {s->min_nz, s->max, nb, hb};
        if (s->min_nz == s->max) {
            hc.lo = (float)((double)s->min_nz - 1);
            hc.hi = (float)((double)s->max + 1);
        }
        memset(hb, 0, (size_t)nb * sizeof *hb);
        dist_visit(a, j, s, hist_item, &hc);
        f->hist_values = malloc((size_t)nb * sizeof *f->hist_values);
        f->hist_heights = malloc((size_t)nb * sizeof *f->hist_heights);
        float *edges = malloc(((size_t)nb + 1) * sizeof *edges);
        if (!f->hist_values || !f->hist_heights || !edges) {
            free(edges);
            return -1;
        }
        dash_linspace(hc.lo, hc.hi, nb + 1, edges);
        /* cumulative rounding keeps the heights integral and their sum exact */
        double cum = 0;
        long long prev = 0;
        for (int i = 0; i < nb; i++) {
            cum += hb[i];
            long long r = llround(cum);
            f->hist_heights[i] = r - prev;
            prev = r;
            f->hist_values[i] = (edges[i] + edges[i + 1]) / 2;
        }
        free(edges);
        f->n_hist = nb;
    }
    /* correlations over the unmasked positions */
    double N = (double)a->n_unmasked, vf = N * s->s2 - s->s1 * s->s1;
    if (a->cn && s->n_nz && has_var(vf, N, s->s2)) {
        const double *c = a->cn + (size_t)j * a->d_in;
        for (int q = 0; q < a->d_in; q++) {
            double vx = N * a->sx2[q] - a->sx[q] * a->sx[q];
            if (!has_var(vx, N, a->sx2[q])) continue;
            double r = (N * c[q] - s->s1 * a->sx[q]) / sqrt(vf * vx);
            double cs = c[q] / sqrt(s->s2 * a->sx2[q]);
            top3_offer(&f->n_corr_neurons, f->corr_neuron_idx, f->corr_neuron_pearson, f->corr_neuron_cos, r, q, cs);
        }
    }
    if (o->corr_block && s->n_nz && has_var(vf, N, s->s2)) {
        const unit *u = NULL;
        for (int i = 0; i < a->n_units; i++)
            if (j >= a->units[i].lo && j < a->units[i].hi) u = &a->units[i];
        size_t nb = (size_t)(u->hi - u->lo), lj = (size_t)(j - u->lo);
        for (int b = u->lo; b < u->hi; b++) {
            const fstate *t = &a->fs[b];
            if (b == j || !t->n_nz) continue;
            double vb = N * t->s2 - t->s1 * t->s1;
            if (!has_var(vb, N, t->s2)) continue;
            size_t x = lj, y = (size_t)(b - u->lo);
            if (x > y) {
                size_t z = x;
                x = y;
                y = z;
            }
            double sab = u->pairs[x * (2 * nb - x - 1) / 2 + (y - x - 1)];
            double r = (N * sab - s->s1 * t->s1) / sqrt(vf * vb);
            double cs = sab / sqrt(s->s2 * t->s2);
            top3_offer(&f->n_corr_features, f->corr_feature_idx, f->corr_feature_pearson, f->corr_feature_cos, r,
                       a->f0 + b, cs);
        }
    }
    return 0;
}

static void finish_range(void *ctx, size_t begin, size_t end)
{
    fin_job *job = ctx;
    dash_acc *a = job->a;
    int k = a->o.per_interval;
    key_ent *cand = malloc(((size_t)a->o.interval_cap + (size_t)k + 1) * sizeof *cand);
    double *hb = malloc((size_t)a->o.hist_bins * sizeof *hb);
    if (!cand || !hb) job->oom = 1;
    for (size_t j = begin; j < end && cand && hb; j++)
        if (finish_one(a, (int)j, &job->out[j], cand, hb)) job->oom = 1;
    free(cand);
    free(hb);
}

int dash_acc_finish(dash_acc *a, dash_feature **out, char *err, size_t errlen)
{
    *out = NULL;
    dash_feature *r = dash_features_new(a->f0, a->F);
    if (!r) return set_err(err, errlen, "dash_acc_finish: out of memory");
    fin_job job = {a, r, 0};
    par_for((size_t)a->F, 16, finish_range, &job);
    if (job.oom) {
        dash_features_free(r, a->F);
        return set_err(err, errlen, "dash_acc_finish: out of memory");
    }
    *out = r;
    return 0;
}
