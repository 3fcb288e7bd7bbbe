/* dashboard.c: the streaming per-feature accumulator of dashboard.h (dash_acc_*), plus the
 * torch-compatible formulas shared with dash_weights.c. It keeps, per feature, only bounded
 * state (heaps, interval survivors, a value distribution of fixed size) and never any
 * prompt × position × feature data; what it stores and how exact each result is, is written in
 * dashboard.h. It does not compute the weight-derived quantities (dash_weights.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#include "engine/dash_kernels.h" // defines: dk_nonzeros, dk_set_bits, dk_accum_rows, dk_pv
#include "engine/dashboard.h"    // defines: dash_acc API, dash_feature, options
#include "gpu/mem.h"             // defines: mem_zalloc
#include "gpu/par.h"             // defines: par_for

#define UNIT_FEATURES 2048    /* features per work unit when correlated features are off */
#define SKY_MARGIN 1e-4       /* relative slack on the interval width (float edges, see sky_needed) */
#define PAIR_BAND 128         /* pair sums are accumulated in tiles of PAIR_BAND² (128 KB of doubles) */

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
    o->hist_sub = 96;
    o->hist_exact_max = 2048;
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
    /* value distribution: dmode 0 = exact: ex holds dn sorted distinct (value, count) pairs,
     * then dt values appended since as (v, 1) in arrival order, capacity dcap; dmode 1 = grid:
     * G counts, bucket j covers [gA + j·gu, gA + (j+1)·gu) */
    int dmode, dn, dt, dcap;
    struct val_cnt *ex;
    uint32_t *grid;
    double gA, gu;
    /* captured example values (capture_values): one record per (feature, prompt) that some
     * candidate entry refers to, sorted by prompt, its non-zero values in `it` */
    struct vrec *rec;
    struct vitem *it;
    int n_rec, cap_rec;
    size_t n_it, cap_it;      /* < 2^32: at most (2·n_cand + 32)·T items */
} fstate;

typedef struct vrec {
    int64_t prompt;
    uint32_t off;             /* first item in fstate.it */
    uint32_t n;               /* items (non-zero values of the feature in that prompt) */
} vrec;

typedef struct vitem {
    uint32_t pos;             /* position in the prompt */
    float v;                  /* the raw value as fed (any bit pattern other than +0.0) */
} vitem;

typedef struct unit {
    int lo, hi;               /* local feature range [lo, hi) */
    double *pairs;            /* corr: packed upper triangle Σ f_i·f_j, i < j, or NULL */
    int64_t *pp;              /* scratch: prompts of candidate entries (capture) */
    struct dash_scratch *scr; /* batch scratch of the thread whose range of units starts here */
    float *L, *R;             /* scratch for sky_needed (interval_cap each) */
    uint64_t *kk;             /* scratch for sky_cells (per_interval) */
    uint8_t *keep;
    val_cnt *tmp;             /* scratch for dist_compact (Ecap pairs) */
} unit;

typedef struct dash_scratch dash_scratch;

typedef struct zpos {
    uint64_t h;
    int32_t p;                /* position index within the batch */
} zpos;

struct dash_acc {
    dash_opts o;
    int f0, F, T, d_in;
    int n_cand;               /* most candidate entries per feature: top_k + interval_cap + per_interval */
    int G;                    /* grid buckets */
    int E, Ecap;              /* most distinct values kept exactly; their store's capacity */
    int64_t n_positions, n_unmasked, next_prompt;
    fstate *fs;
    top_ent *top;             /* (F, top_k) */
    key_ent *zero;            /* (F, per_interval) */
    uint64_t *tau;            /* (F, 2·n_intervals + 3) per-cell k-th smallest survivor key */
    double *cn;               /* (F, d_in) Σ f·x_j, or NULL */
    double *sx, *sx2;         /* (d_in) */
    int n_units;
    unit *units;
    size_t fixed_bytes;
    /* per batch */
    size_t ld;                /* floats between consecutive positions' rows of acts */
    const float *acts;
    const dash_nzmap *map;    /* where acts' non-zeros are, or NULL */
    const uint8_t *mask;
    const float *x;
    int N;
    int64_t prompt0;
    uint64_t *hp;             /* (N) pos_hash */
    zpos *zo;                 /* unmasked positions sorted by hash */
    int n_zo, cap_batch;
};


/* ---- batch scratch ---- */

/* Per-thread scratch for one unit's batch: the unit's counted non-zeros position-major (pm,
 * with per-position band offsets for the pair tiles) and feature-major (fm), and the
 * non-zeros that count for nothing but the captured values (masked positions, values ≤ 0),
 * by feature (xs). Sized by the batch, reused across batches; it belongs to the first unit of
 * the range a par_for call hands a thread, so the same units always grow the same scratch
 * (par_for's split is fixed) and dash_acc_bytes does not depend on thread timing. */
typedef struct pm_ent {
    int32_t j;                /* local feature within the unit */
    float v;
} pm_ent;

typedef struct x_ent {
    int32_t p, j;
    float v;
} x_ent;

struct dash_scratch {
    int32_t *nz;              /* (nb) dk_nonzeros of one row */
    pm_ent *pm;               /* counted non-zeros, position-major */
    dk_pv *fm;                /* the same by feature */
    x_ent *xm, *xs;           /* the other non-zeros, position-major / by feature */
    size_t *pstart;           /* (N + 1) start of each position in pm */
    size_t *boff;             /* (nband + 1, N) start of band b of position p in pm, band-major */
    size_t *fstart, *xstart;  /* (nb + 1) start of each feature in fm / xs */
    size_t c_nz, c_pm, c_fm, c_xm, c_xs, c_ps, c_bo, c_fs, c_xst;
};

/* Makes *pp hold at least need elements of elem bytes. It grows by a quarter over the need, not
 * by doubling, so that scratch sized by the largest batch so far stays within a few percent of
 * what the batches need. -1 out of memory. */
static int grow_to(void *pp, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return 0;
    size_t nc = need + need / 4 + 64;
    void *p = realloc(*(void **)pp, nc * elem);
    if (!p) return -1;
    *(void **)pp = p;
    *cap = nc;
    return 0;
}

static size_t scratch_bytes(const dash_scratch *sc)
{
    return sc->c_nz * sizeof *sc->nz + sc->c_pm * sizeof *sc->pm + sc->c_fm * sizeof *sc->fm +
           (sc->c_xm + sc->c_xs) * sizeof *sc->xm + (sc->c_ps + sc->c_bo + sc->c_fs + sc->c_xst) * sizeof(size_t);
}

static void scratch_free(dash_scratch *sc)
{
    free(sc->nz);
    free(sc->pm);
    free(sc->fm);
    free(sc->xm);
    free(sc->xs);
    free(sc->pstart);
    free(sc->boff);
    free(sc->fstart);
    free(sc->xstart);
    free(sc);
}

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

static int vc_cmp(const void *x, const void *y)
{
    float a = ((const val_cnt *)x)->v, b = ((const val_cnt *)y)->v;
    return (a > b) - (a < b);
}

/* The (E+1)-th distinct value arrived somewhere in the tail: replays the tail in arrival order
 * into the sorted pairs up to that value, then moves to the grid fitted to the E values kept
 * and feeds it the rest in order, so the grid is the one that adding values one at a time
 * would give, whenever the compaction ran. -1 out of memory. */
static int dist_overflow(dash_acc *a, fstate *s, val_cnt *tmp)
{
    int t = s->dt, i;
    val_cnt *e = s->ex;
    memcpy(tmp, e + s->dn, (size_t)t * sizeof *tmp);
    s->dt = 0;
    for (i = 0; i < t; i++) {
        float v = tmp[i].v;
        int lo = 0, hi = s->dn;
        while (lo < hi) {
            int m = (lo + hi) / 2;
            if (e[m].v < v) lo = m + 1;
            else hi = m;
        }
        if (lo < s->dn && e[lo].v == v) {
            e[lo].c++;
            continue;
        }
        if (s->dn == a->E) break;
        memmove(e + lo + 1, e + lo, (size_t)(s->dn - lo) * sizeof *e);
        e[lo] = (val_cnt){v, 1};
        s->dn++;
    }
    uint32_t *g = calloc((size_t)a->G, sizeof *g);
    if (!g) return -1;
    s->grid = g;
    s->dmode = 1;
    s->gA = e[0].v;
    s->gu = ((double)e[s->dn - 1].v - e[0].v) / (a->G - 1); /* E ≥ 2 distinct values: > 0 */
    for (int k = 0; k < s->dn; k++) grid_add(a, s, g, e[k].v, e[k].c);
    for (; i < t; i++) grid_add(a, s, g, tmp[i].v, 1);
    free(s->ex);
    s->ex = NULL;
    s->dn = s->dcap = 0;
    return 0;
}

/* Sorts the tail into the distinct pairs (amortized: the store at least doubles or keeps a
 * quarter free, so each value is moved O(1) times), grows the store, or hands over to
 * dist_overflow. -1 out of memory. */
static int dist_compact(dash_acc *a, fstate *s, val_cnt *tmp)
{
    int n = s->dn, t = s->dt;
    val_cnt *e = s->ex;
    if (t) {
        memcpy(tmp, e + n, (size_t)t * sizeof *tmp);
        qsort(tmp, (size_t)t, sizeof *tmp, vc_cmp);
        int d = n;
        for (int i = 0, k = 0; k < t; k++) {
            if (k && tmp[k].v == tmp[k - 1].v) continue;
            while (i < n && e[i].v < tmp[k].v) i++;
            if (i == n || e[i].v != tmp[k].v) d++;
        }
        if (d > a->E) return dist_overflow(a, s, tmp);
        /* merge from the back: the write index stays above the unread pairs */
        int w = n + t, i = n - 1, k = t - 1;
        while (i >= 0 || k >= 0) {
            val_cnt x = k < 0 || (i >= 0 && e[i].v > tmp[k].v) ? e[i--] : tmp[k--];
            if (w < n + t && e[w].v == x.v) e[w].c += x.c;
            else e[--w] = x;
        }
        s->dn = n + t - w;
        s->dt = 0;
        memmove(e, e + w, (size_t)s->dn * sizeof *e);
    }
    if (s->dcap < a->Ecap && s->dn >= s->dcap / 2) {
        int nc = s->dcap ? 2 * s->dcap : 16;
        if (nc > a->Ecap) nc = a->Ecap;
        val_cnt *ne = realloc(s->ex, (size_t)nc * sizeof *ne);
        if (!ne) return -1;
        s->ex = ne;
        s->dcap = nc;
    }
    return 0;
}

/* -1 out of memory. */
static int dist_add(dash_acc *a, fstate *s, float v, val_cnt *tmp)
{
    if (s->dmode == 0 && s->dn + s->dt == s->dcap && dist_compact(a, s, tmp)) return -1;
    if (s->dmode == 1) grid_add(a, s, s->grid, v, 1);
    else s->ex[s->dn + s->dt++] = (val_cnt){v, 1};
    return 0;
}

/* Visits the distribution as (lowest, highest value, count) items; exact items have lo = hi. */
typedef void (*dist_fn)(void *ctx, double lo, double hi, double c);

/* The tail must have been compacted (dt = 0). */
static void dist_visit(const dash_acc *a, const fstate *s, dist_fn fn, void *ctx)
{
    if (s->dmode == 0) {
        for (int i = 0; i < s->dn; i++) fn(ctx, s->ex[i].v, s->ex[i].v, s->ex[i].c);
        return;
    }
    for (int i = 0; i < a->G; i++)
        if (s->grid[i]) fn(ctx, s->gA + i * s->gu, s->gA + (i + 1) * s->gu, s->grid[i]);
}

typedef struct hist_ctx {
    float lo, hi;             /* histc range (already widened when lo = hi) */
    int bins;
    double *h;
    double cut;               /* counts of grid buckets that straddle a bin edge */
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
    h->cut += c;
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

/* The reject filter. Cells C_i = [i·cw, (i+1)·cw) of width cw a bit under w/2 (the slack
 * absorbs rounding in the cell index); windows start at t ≥ 0 (the intervals cover [0, max]).
 * A window [t, t+w] that contains v, in cell c, fully contains C_c−1 if t ≤ (c−1)·cw (it
 * reaches v ≥ c·cw), C_c if t lies in C_c−1, and C_c+1 if t lies in C_c. Near 0 fewer are
 * needed: for c = 1 the only window starting at or before (c−1)·cw = 0 is [0, w], which also
 * holds C_1; for c = 0 every window (0 ≤ t ≤ v < cw) holds C_1. So when each needed cell holds
 * k elements with keys below x's, x is dominated. tau[c] is the k-th smallest survivor key in
 * cell c (UINT64_MAX with fewer); computed from elements really seen, so it stays valid as
 * survivors are pruned and as w grows (wider windows contain more); it only gets less sharp
 * until the next rebuild. (The lowest cells often hold fewer than k survivors: the k smallest
 * keys of [0, w] may all lie above cw. Leaving them out of the test there rejects most of the
 * positions near 0, which are the bulk of an SAE feature's values.) */
static inline int cells_dominate(const dash_acc *a, const fstate *s, const key_ent *e, int j)
{
    if (!s->ncell) return 0;
    double r = e->v / s->cw;
    if (!(r < s->ncell - 1)) return 0;
    long c = (long)r;
    const uint64_t *tau = a->tau + (size_t)j * (2 * (size_t)a->o.n_intervals + 3);
    uint64_t t = tau[c + 1];
    if (c >= 1 && tau[c] > t) t = tau[c];
    if (c >= 2 && tau[c - 1] > t) t = tau[c - 1];
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
    else if (o->hist_exact_max < 2 || o->hist_exact_max > (1 << 24)) bad = "hist_exact_max must be in 2..16777216";
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
    a->E = o->hist_exact_max;
    a->Ecap = a->E + a->E / 4 + 8;
    a->n_cand = o->top_k + o->interval_cap + o->per_interval;
    a->next_prompt = INT64_MIN;
    int F = a->F;
    size_t bytes = sizeof *a;
    a->fs = calloc((size_t)F, sizeof *a->fs);
    a->top = malloc((size_t)F * (o->top_k ? o->top_k : 1) * sizeof *a->top);
    a->zero = malloc((size_t)F * (o->per_interval ? o->per_interval : 1) * sizeof *a->zero);
    a->tau = malloc((size_t)F * (2 * (size_t)o->n_intervals + 3) * sizeof *a->tau);
    if (!a->fs || !a->top || !a->zero || !a->tau) goto oom;
    bytes += (size_t)F * (sizeof *a->fs + (size_t)o->top_k * sizeof *a->top +
                          (size_t)o->per_interval * sizeof *a->zero +
                          (2 * (size_t)o->n_intervals + 3) * sizeof *a->tau);
    for (int j = 0; j < F; j++) {
        a->fs[j].g = feat_hash(o->seed, f0 + j);
        a->fs[j].next_prune = 64;
    }
    if (d_in > 0) {
        a->cn = mem_zalloc((size_t)F * d_in, sizeof *a->cn);
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
        u->pp = malloc(((size_t)a->n_cand + 1) * sizeof *u->pp);
        u->L = malloc((size_t)o->interval_cap * sizeof *u->L);
        u->R = malloc((size_t)o->interval_cap * sizeof *u->R);
        u->keep = malloc((size_t)o->interval_cap);
        u->kk = malloc(((size_t)o->per_interval + 1) * sizeof *u->kk);
        u->tmp = malloc((size_t)a->Ecap * sizeof *u->tmp);
        if (!u->pp || !u->L || !u->R || !u->keep || !u->kk || !u->tmp) goto oom;
        bytes += ((size_t)a->n_cand + 1) * sizeof *u->pp + (size_t)o->interval_cap * 9 + (size_t)a->Ecap * sizeof *u->tmp +
                 ((size_t)o->per_interval + 1) * sizeof *u->kk;
        if (cb && nb > 1) {
            u->pairs = mem_zalloc(nb * (nb - 1) / 2, sizeof *u->pairs);
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
        for (int j = 0; j < a->F; j++) {
            free(a->fs[j].sky);
            free(a->fs[j].rec);
            free(a->fs[j].it);
            free(a->fs[j].ex);
            free(a->fs[j].grid);
        }
    for (int i = 0; i < a->n_units; i++) {
        unit *u = &a->units[i];
        free(u->pairs);
        free(u->pp);
        if (u->scr) scratch_free(u->scr);
        free(u->L);
        free(u->R);
        free(u->keep);
        free(u->kk);
        free(u->tmp);
    }
    free(a->units);
    free(a->fs);
    free(a->top);
    free(a->zero);
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
    for (int j = 0; j < a->F; j++) {
        const fstate *s = &a->fs[j];
        b += (size_t)s->cap_sky * sizeof(key_ent) + (size_t)s->cap_rec * sizeof(vrec) + s->cap_it * sizeof(vitem) +
             (size_t)s->dcap * sizeof(val_cnt) + (s->grid ? (size_t)a->G * sizeof *s->grid : 0);
    }
    for (int i = 0; i < a->n_units; i++)
        if (a->units[i].scr) b += sizeof(dash_scratch) + scratch_bytes(a->units[i].scr);
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
    if (dist_add(a, s, v, u->tmp)) *oom = 1;
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
    int n = a->n_zo, k = a->o.per_interval, T = a->T;
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
        if (a->acts[(size_t)z->p * a->ld + j] > 0) continue;
        key_ent e = {key, a->prompt0 + z->p / T, z->p % T, 0.0f};
        key_push(heap, &s->n_zero, k, &e);
    }
}

/* ---- captured example values ----
 * An example is a (prompt, position) of some feature, and the dashboard shows that feature's
 * values over the whole prompt. Only candidates can become examples: the top-K heap, the
 * interval survivors and the zero heap, at most n_cand = top_k + interval_cap + per_interval
 * per feature, all bounded independently of the number of prompts. So after each batch every
 * feature keeps, for each prompt one of its candidates sits in, that prompt's non-zero values
 * of the feature (a record; taken from the batch's non-zeros while they are at hand). Records
 * whose prompt no candidate refers to any more are dropped once they outnumber the candidates
 * by an eighth: at most 9/8·n_cand + 16 records (+ one batch's new ones) of at most T values
 * each per feature, typically a few values each (an SAE feature is mostly zero), independent
 * of the prompts seen. The alternative, keeping the candidate prompts' hook inputs and
 * re-encoding them at the end, would hold up to every prompt (45 examples × 24576 features
 * cover all of them), so its memory would grow with the prompts. */

static int cmp_i64(const void *x, const void *y)
{
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return (a > b) - (a < b);
}

/* Sorted distinct prompts of the feature's candidates with prompt ≥ from, into pp. */
static int cand_prompts(const dash_acc *a, int j, int64_t from, int64_t *pp)
{
    const fstate *s = &a->fs[j];
    const top_ent *top = a->top + (size_t)j * a->o.top_k;
    const key_ent *zero = a->zero + (size_t)j * a->o.per_interval;
    int n = 0;
    for (int i = 0; i < s->n_top; i++)
        if (top[i].prompt >= from) pp[n++] = top[i].prompt;
    for (int i = 0; i < s->n_sky; i++)
        if (s->sky[i].prompt >= from) pp[n++] = s->sky[i].prompt;
    for (int i = 0; i < s->n_zero; i++)
        if (zero[i].prompt >= from) pp[n++] = zero[i].prompt;
    if (n > 1) qsort(pp, (size_t)n, sizeof *pp, cmp_i64);
    int m = 0;
    for (int i = 0; i < n; i++)
        if (!m || pp[i] != pp[m - 1]) pp[m++] = pp[i];
    return m;
}

/* First index in e[0..n) with position ≥ p. */
static size_t lower_pv(const dk_pv *e, size_t n, int32_t p)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t m = (lo + hi) / 2;
        if (e[m].p < p) lo = m + 1;
        else hi = m;
    }
    return lo;
}

static size_t lower_x(const x_ent *e, size_t n, int32_t p)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t m = (lo + hi) / 2;
        if (e[m].p < p) lo = m + 1;
        else hi = m;
    }
    return lo;
}

/* Drops the records no candidate refers to, keeping order, and gives back spare capacity. */
static void rec_gc(dash_acc *a, unit *u, int j)
{
    fstate *s = &a->fs[j];
    int np = cand_prompts(a, j, INT64_MIN, u->pp), m = 0;
    uint32_t off = 0;
    for (int i = 0, q = 0; i < s->n_rec; i++) {
        while (q < np && u->pp[q] < s->rec[i].prompt) q++;
        if (q == np || u->pp[q] != s->rec[i].prompt) continue;
        vrec r = s->rec[i];
        if (r.n) memmove(s->it + off, s->it + r.off, r.n * sizeof *s->it);
        r.off = off;
        off += r.n;
        s->rec[m++] = r;
    }
    s->n_rec = m;
    s->n_it = off;
    if (s->cap_it > 4 * off + 64) {
        vitem *p = realloc(s->it, (2 * off + 32) * sizeof *p);
        if (p) {
            s->it = p;
            s->cap_it = 2 * off + 32;
        }
    }
    if (s->cap_rec > 4 * m + 64) {
        vrec *p = realloc(s->rec, ((size_t)2 * m + 32) * sizeof *p);
        if (p) {
            s->rec = p;
            s->cap_rec = 2 * m + 32;
        }
    }
}

/* Records for the prompts of this batch that candidates of feature j now sit in. fm, nf: the
 * feature's counted non-zeros; xs, nx: its other non-zeros; both in position order. */
static int capture_batch(dash_acc *a, unit *u, int j, const dk_pv *fm, size_t nf, const x_ent *xs, size_t nx)
{
    fstate *s = &a->fs[j];
    int np = cand_prompts(a, j, a->prompt0, u->pp), T = a->T;
    for (int i = 0; i < np; i++) {
        int32_t base = (int32_t)((u->pp[i] - a->prompt0) * T);
        size_t c0 = lower_pv(fm, nf, base), c1 = lower_pv(fm, nf, base + T);
        size_t x0 = lower_x(xs, nx, base), x1 = lower_x(xs, nx, base + T);
        size_t n = c1 - c0 + x1 - x0;
        if (s->n_rec == s->cap_rec) {
            size_t cap = (size_t)s->cap_rec;
            if (grow_to(&s->rec, &cap, cap + 1, sizeof *s->rec)) return -1;
            s->cap_rec = (int)cap;
        }
        if (grow_to(&s->it, &s->cap_it, s->n_it + n, sizeof *s->it)) return -1;
        for (vitem *out = n ? s->it + s->n_it : NULL; c0 < c1 || x0 < x1;) {
            if (x0 == x1 || (c0 < c1 && fm[c0].p < xs[x0].p)) {
                *out++ = (vitem){(uint32_t)(fm[c0].p - base), fm[c0].v};
                c0++;
            } else {
                *out++ = (vitem){(uint32_t)(xs[x0].p - base), xs[x0].v};
                x0++;
            }
        }
        s->rec[s->n_rec++] = (vrec){u->pp[i], (uint32_t)s->n_it, (uint32_t)n};
        s->n_it += n;
    }
    int live = s->n_top + s->n_sky + s->n_zero;
    if (s->n_rec > live + live / 8 + 16) rec_gc(a, u, j);
    return 0;
}

/* The values of feature j over prompt `prompt` into row (T floats); -1 when no record. */
static int rec_values(const dash_acc *a, int j, int64_t prompt, float *row)
{
    const fstate *s = &a->fs[j];
    int lo = 0, hi = s->n_rec;
    while (lo < hi) {
        int m = (lo + hi) / 2;
        if (s->rec[m].prompt < prompt) lo = m + 1;
        else hi = m;
    }
    if (lo == s->n_rec || s->rec[lo].prompt != prompt) return -1;
    memset(row, 0, (size_t)a->T * sizeof *row);
    for (uint32_t i = 0; i < s->rec[lo].n; i++) {
        const vitem *e = &s->it[s->rec[lo].off + i];
        row[e->pos] = e->v;
    }
    return 0;
}

/* ---- a unit's batch ---- */

/* Finds the unit's non-zeros position by position. Counted ones (unmasked, > 0) go to pm with
 * per-position band offsets; with capture on, the rest (masked positions, values ≤ 0 or NaN)
 * go to xm, as they only matter to captured values. Then both are regrouped by feature with
 * stable counting sorts, so each feature sees its non-zeros in position order, as a
 * position-major pass would. -1 when out of memory. */
static int unit_scan(dash_acc *a, unit *u, dash_scratch *sc, int nband)
{
    const int lo = u->lo, nb = u->hi - u->lo, N = a->N, cap = a->o.capture_values;
    const size_t nbo = (size_t)nband + 1;
    if (grow_to(&sc->nz, &sc->c_nz, (size_t)nb, sizeof *sc->nz) ||
        grow_to(&sc->fstart, &sc->c_fs, (size_t)nb + 1, sizeof *sc->fstart) ||
        grow_to(&sc->xstart, &sc->c_xst, (size_t)nb + 1, sizeof *sc->xstart) ||
        grow_to(&sc->pstart, &sc->c_ps, (size_t)N + 1, sizeof *sc->pstart) ||
        (nband && grow_to(&sc->boff, &sc->c_bo, (size_t)N * nbo, sizeof *sc->boff)))
        return -1;
    size_t *fc = sc->fstart, *xc = sc->xstart, n = 0, nx = 0;
    memset(fc, 0, ((size_t)nb + 1) * sizeof *fc);
    memset(xc, 0, ((size_t)nb + 1) * sizeof *xc);
    sc->pstart[0] = 0;
    for (int p = 0; p < N; p++) {
        int counted = !a->mask || a->mask[p];
        size_t p0 = n;
        if (counted || cap) {
            if (grow_to(&sc->pm, &sc->c_pm, n + (size_t)nb, sizeof *sc->pm) ||
                (cap && grow_to(&sc->xm, &sc->c_xm, nx + (size_t)nb, sizeof *sc->xm)))
                return -1;
            const float *row = a->acts + (size_t)p * a->ld + lo;
            int k = a->map ? dk_set_bits(a->map->bits + (size_t)p * a->map->words, a->map->bit0 + lo, nb, sc->nz)
                           : dk_nonzeros(row, nb, sc->nz);
            for (int i = 0; i < k; i++) {
                int q = sc->nz[i];
                float v = row[q];
                if (counted && v > 0) {
                    sc->pm[n++] = (pm_ent){q, v};
                    fc[q + 1]++;
                } else if (cap) {
                    sc->xm[nx++] = (x_ent){p, q, v};
                    xc[q + 1]++;
                }
            }
        }
        sc->pstart[p + 1] = n;
        if (nband) {
            size_t *bo = sc->boff + p;
            int b = 0;
            bo[0] = p0;
            for (size_t i = p0; i < n; i++)
                while (sc->pm[i].j >= (b + 1) * PAIR_BAND) bo[(size_t)++b * N] = i;
            while (b < nband) bo[(size_t)++b * N] = n;
        }
    }
    if (grow_to(&sc->fm, &sc->c_fm, n + 1, sizeof *sc->fm) || (cap && grow_to(&sc->xs, &sc->c_xs, nx + 1, sizeof *sc->xs)))
        return -1;
    for (int b = 0; b < nb; b++) {
        fc[b + 1] += fc[b];
        xc[b + 1] += xc[b];
    }
    /* fc[b] / xc[b] now start feature b; advance copies while placing, then shift back */
    for (int p = 0; p < N; p++)
        for (size_t i = sc->pstart[p]; i < sc->pstart[p + 1]; i++) sc->fm[fc[sc->pm[i].j]++] = (dk_pv){p, sc->pm[i].v};
    for (size_t i = 0; i < nx; i++) sc->xs[xc[sc->xm[i].j]++] = sc->xm[i];
    for (int b = nb; b > 0; b--) {
        fc[b] = fc[b - 1];
        xc[b] = xc[b - 1];
    }
    fc[0] = xc[0] = 0;
    return 0;
}

/* Pair sums Σ f_i·f_j over co-firing pairs, tile by tile (a tile: rows of one band of
 * PAIR_BAND features, columns of another, 128 KB of sums, so it stays in cache while every
 * position of the batch is applied to it). Each pair still adds its products in position
 * order, so the sums are bit-identical to a position-major pass. */
static void unit_pairs(const dash_acc *a, unit *u, const dash_scratch *sc, int nband)
{
    const size_t nb = (size_t)(u->hi - u->lo), N = (size_t)a->N;
    for (int A = 0; A < nband; A++)
        for (int B = A; B < nband; B++) {
            /* band-major offsets: the sweep over positions reads four sequential streams */
            const size_t *as = sc->boff + (size_t)A * N, *ae = as + N, *bs = sc->boff + (size_t)B * N, *be = bs + N;
            for (size_t p = 0; p < N; p++) {
                size_t a0 = as[p], a1 = ae[p], b0 = bs[p], b1 = be[p];
                if (a0 == a1 || b0 == b1) continue;
                for (size_t i = a0; i < a1; i++) {
                    /* pair (li, lq), li < lq, sits at li·(2nb − li − 1)/2 + lq − li − 1 */
                    size_t li = (size_t)sc->pm[i].j;
                    double *row_i = u->pairs + li * (2 * nb - li - 1) / 2;
                    double vi = sc->pm[i].v;
                    for (size_t q = A == B ? i + 1 : b0; q < b1; q++) row_i[(size_t)sc->pm[q].j - li - 1] += vi * sc->pm[q].v;
                }
            }
        }
}

static void scan_units(void *ctx, size_t begin, size_t end)
{
    scan_job *job = ctx;
    dash_acc *a = job->a;
    int oom = 0;
    dash_scratch *sc = a->units[begin].scr;
    if (!sc) sc = a->units[begin].scr = calloc(1, sizeof *sc);
    for (size_t ui = begin; ui < end && sc && !oom; ui++) {
        unit *u = &a->units[ui];
        int nb = u->hi - u->lo, nband = u->pairs ? (nb + PAIR_BAND - 1) / PAIR_BAND : 0;
        if (unit_scan(a, u, sc, nband)) {
            oom = 1;
            break;
        }
        if (nband) unit_pairs(a, u, sc, nband);
        for (int jj = 0; jj < nb; jj++) {
            int j = u->lo + jj;
            fstate *s = &a->fs[j];
            const dk_pv *e = sc->fm + sc->fstart[jj];
            size_t m = sc->fstart[jj + 1] - sc->fstart[jj];
            for (size_t i = 0; i < m; i++)
                feat_update(a, u, j, e[i].v, a->prompt0 + e[i].p / a->T, e[i].p % a->T, a->hp[e[i].p], &oom);
            if (a->x && m) dk_accum_rows(a->cn + (size_t)j * a->d_in, a->x, a->d_in, e, (int)m);
            if (a->o.interval_zeros && a->o.per_interval) zero_walk(a, j);
            if (s->n_sky >= s->next_prune) sky_prune(a, s, u);
            if (s->sky_dirty && a->o.per_interval) sky_cells(a, s, j, u);
            if (a->o.capture_values &&
                capture_batch(a, u, j, e, m, sc->xs + sc->xstart[jj], sc->xstart[jj + 1] - sc->xstart[jj]))
                oom = 1;
        }
    }
    if (oom || !sc) job->oom = 1;
}

/* Σx and Σx² of every input dimension over the batch's counted positions (zo, in position
 * order), dimensions split over the pool: each sum still runs in position order. */
static void sum_x(void *ctx, size_t k0, size_t k1)
{
    dash_acc *a = ctx;
    for (int i = 0; i < a->n_zo; i++) {
        const float *xr = a->x + (size_t)a->zo[i].p * a->d_in;
        for (size_t k = k0; k < k1; k++) {
            a->sx[k] += xr[k];
            a->sx2[k] += (double)xr[k] * xr[k];
        }
    }
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
    return dash_acc_add_rows(a, acts, (size_t)a->F, mask, B, prompt0, x, err, errlen);
}

int dash_acc_add_rows(dash_acc *a, const float *acts, size_t ld, const uint8_t *mask, int B, int64_t prompt0,
                      const float *x, char *err, size_t errlen)
{
    return dash_acc_add_map(a, acts, ld, NULL, mask, B, prompt0, x, err, errlen);
}

int dash_acc_add_map(dash_acc *a, const float *acts, size_t ld, const dash_nzmap *map, const uint8_t *mask, int B,
                     int64_t prompt0, const float *x, char *err, size_t errlen)
{
    if (B < 0 || (B > 0 && !acts)) return set_err(err, errlen, "dash_acc_add: no activations");
    if (ld < (size_t)a->F) return set_err(err, errlen, "dash_acc_add: row stride below the feature count");
    if (map && (!map->bits || map->bit0 < 0 || (size_t)map->bit0 + (size_t)a->F > map->words * 64))
        return set_err(err, errlen, "dash_acc_add: the non-zero map does not cover the feature range");
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
    a->ld = ld;
    a->map = map;
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
    }
    if (a->x) par_for((size_t)a->d_in, 64, sum_x, a);
    if (a->o.interval_zeros && a->o.per_interval) qsort(a->zo, (size_t)a->n_zo, sizeof *a->zo, zpos_cmp);
    scan_job job = {a, 0};
    par_for((size_t)a->n_units, 1, scan_units, &job);
    a->n_positions += N;
    a->n_unmasked += a->n_zo;
    a->next_prompt = prompt0 + B;
    a->acts = NULL;
    a->map = NULL;
    a->mask = NULL;
    a->x = NULL;
    if (job.oom) return set_err(err, errlen, "dash_acc_add: out of memory");
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
        free(f->example_values);
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
    int oom, lost;
} fin_job;

/* 0, -1 out of memory, -2 an example without captured values (a bug). */
static int finish_one(dash_acc *a, int j, dash_feature *f, key_ent *cand, double *hb, val_cnt *tmp)
{
    const dash_opts *o = &a->o;
    fstate *s = &a->fs[j];
    int n = o->n_intervals, k = o->per_interval;
    /* the multiset is unchanged, so more batches may follow */
    if (s->dmode == 0 && s->dt && dist_compact(a, s, tmp)) return -1;
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
            dist_visit(a, s, range_item, &rc);
            if (q == 0 && o->interval_zeros) rc.sum += (double)(a->n_positions - s->n_nz);
            iv->contains = a->n_positions ? rc.sum / (double)a->n_positions : 0;
        }
        f->n_examples = ne;
        if (o->capture_values && ne) {
            f->example_values = malloc((size_t)ne * a->T * sizeof *f->example_values);
            if (!f->example_values) return -1;
            for (int i = 0; i < ne; i++)
                if (rec_values(a, j, f->examples[i].prompt, f->example_values + (size_t)i * a->T)) return -2;
        }
        /* histogram of the non-zero values */
        int nb = o->hist_bins;
        hist_ctx hc = {s->min_nz, s->max, nb, hb, 0};
        if (s->min_nz == s->max) {
            hc.lo = (float)((double)s->min_nz - 1);
            hc.hi = (float)((double)s->max + 1);
        }
        memset(hb, 0, (size_t)nb * sizeof *hb);
        dist_visit(a, s, hist_item, &hc);
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
        f->hist_err_max = (int64_t)ceil(hc.cut);
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
    val_cnt *tmp = malloc((size_t)a->Ecap * sizeof *tmp);
    if (!cand || !hb || !tmp) job->oom = 1;
    for (size_t j = begin; j < end && cand && hb && tmp; j++) {
        int rc = finish_one(a, (int)j, &job->out[j], cand, hb, tmp);
        if (rc == -1) job->oom = 1;
        if (rc == -2) job->lost = 1;
    }
    free(cand);
    free(hb);
    free(tmp);
}

int dash_acc_finish(dash_acc *a, dash_feature **out, char *err, size_t errlen)
{
    *out = NULL;
    dash_feature *r = dash_features_new(a->f0, a->F);
    if (!r) return set_err(err, errlen, "dash_acc_finish: out of memory");
    fin_job job = {a, r, 0, 0};
    par_for((size_t)a->F, 16, finish_range, &job);
    if (job.oom || job.lost) {
        dash_features_free(r, a->F);
        return set_err(err, errlen, job.oom ? "dash_acc_finish: out of memory"
                                            : "dash_acc_finish: an example's captured values are missing (internal error)");
    }
    *out = r;
    return 0;
}
