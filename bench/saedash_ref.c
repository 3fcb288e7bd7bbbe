/* saedash_ref.c: see saedash_ref.h. A straightforward C port of SAEDashboard's structure, not
 * of its Python: one forward with every activation cached in memory, then per 128-feature batch
 * a column-slice encode over all tokens and two passes over the resulting (tokens × 128)
 * tensor. Where SAEDashboard is needlessly slow (per-interval torch.nonzero scans, quantiles,
 * per-call b_dec subtraction) this does the cheaper equivalent, so the ratio against saed is
 * conservative. Features of a batch are split across the par_for pool; each feature has its
 * own RNG, so results do not depend on the thread count. */
#include "bench/saedash_ref.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/dashboard.h"
#include "engine/safetensors.h"
#include "engine/sae.h"
#include "gpu/par.h"
#include "gpu/blas.h"

void saedash_ref_opts_default(saedash_ref_opts *o)
{
    memset(o, 0, sizeof *o);
    o->batch_features = 128;
    o->batch_prompts = 32;
    o->top_k = 20;
    o->n_intervals = 5;
    o->per_interval = 5;
    o->hist_bins = 50;
    o->bos_id = -1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t mix(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

typedef struct ex {
    float v;
    int64_t idx;   /* prompt·T + pos */
} ex;

/* a ranks below b: smaller value, or equal value at a later position. */
static int worse(ex a, ex b)
{
    return a.v < b.v || (a.v == b.v && a.idx > b.idx);
}

/* Min-heap on "worse" holding the best k seen; the root is the first to go. */
static void heap_push(ex *h, int *n, int k, ex e)
{
    if (*n < k) {
        int i = (*n)++;
        while (i > 0 && worse(e, h[(i - 1) / 2])) {
            h[i] = h[(i - 1) / 2];
            i = (i - 1) / 2;
        }
        h[i] = e;
        return;
    }
    if (!worse(h[0], e)) return;
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= k) break;
        if (c + 1 < k && worse(h[c + 1], h[c])) c++;
        if (!worse(h[c], e)) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = e;
}

static int ex_desc(const void *a, const void *b)
{
    const ex *x = a, *y = b;
    return worse(*y, *x) ? -1 : worse(*x, *y) ? 1 : 0;
}

/* One feature batch: acts (N, F) plus the per-feature state, shared by the pool's workers. */
typedef struct fbatch {
    const saedash_ref_opts *o;
    const float *acts;
    const uint8_t *mask;
    int64_t N;
    int F, f0, T;
    /* per feature */
    float *max, *minnz;
    int64_t *nnz;
    ex *top;          /* F × top_k */
    int *ntop;
    int64_t *hist;    /* F × hist_bins */
    int64_t *contains;/* F × n_intervals */
    ex *samp;         /* F × n_intervals × per_interval reservoirs */
    int64_t *seen;    /* F × n_intervals */
    float *edges, *lo, *hi, *w;  /* interval edges (F × (n+1)), histogram range, interval width */
    uint64_t *rng;
    double *sum;      /* per-feature checksum */
    float *exbuf;     /* F × (top_k + n·k) × T example values */
    uint64_t batch_seed;
} fbatch;

/* Pass 1: max, min non-zero, count, top-K over all positions. */
static void pass1(void *ctx, size_t fb, size_t fe)
{
    fbatch *b = ctx;
    const int F = b->F, K = b->o->top_k;
    for (size_t f = fb; f < fe; f++) {
        b->max[f] = 0;
        b->minnz[f] = INFINITY;
        b->nnz[f] = 0;
        b->ntop[f] = 0;
    }
    for (int64_t r = 0; r < b->N; r++) {
        const float *row = b->acts + r * F;
        for (size_t f = fb; f < fe; f++) {
            float v = row[f];
            if (!(v > 0)) continue;
            b->nnz[f]++;
            if (v > b->max[f]) b->max[f] = v;
            if (v < b->minnz[f]) b->minnz[f] = v;
            heap_push(b->top + f * K, &b->ntop[f], K, (ex){v, r});
        }
    }
}

/* Pass 2: histogram of non-zeros over [min, max], interval populations and reservoirs, row by
 * row like pass 1 (the tensor is (tokens, F) row-major) with each feature's edges precomputed. */
static void pass2(void *ctx, size_t fb, size_t fe)
{
    fbatch *b = ctx;
    const saedash_ref_opts *o = b->o;
    const int F = b->F, NI = o->n_intervals, PI = o->per_interval, HB = o->hist_bins;
    for (size_t f = fb; f < fe; f++) {
        memset(b->hist + f * HB, 0, sizeof(int64_t) * HB);
        memset(b->contains + f * NI, 0, sizeof(int64_t) * NI);
        memset(b->seen + f * NI, 0, sizeof(int64_t) * NI);
        float mx = b->max[f], *e = b->edges + f * (NI + 1);
        b->lo[f] = b->minnz[f];
        b->hi[f] = mx;
        if (b->lo[f] == b->hi[f]) {   /* torch.histc widens an empty range */
            b->lo[f] -= 1;
            b->hi[f] += 1;
        }
        dash_linspace(0, mx, NI + 1, e);
        b->w[f] = mx / (float)NI;
        b->rng[f] = mix(b->batch_seed ^ mix((uint64_t)(b->f0 + (int64_t)f)));
    }
    for (int64_t r = 0; r < b->N; r++) {
        const float *row = b->acts + r * F;
        const int counted = b->mask[r];
        for (size_t f = fb; f < fe; f++) {
            if (!(b->max[f] > 0)) continue;   /* never fires: no histogram, no intervals */
            float v = row[f];
            int64_t *cont = b->contains + f * NI, *seen = b->seen + f * NI;
            ex *samp = b->samp + f * NI * PI;
            int jlo = 0, jhi = 0;
            if (v > 0) {
                b->hist[f * HB + dash_histc_bin(v, b->lo[f], b->hi[f], HB)]++;
                int j0 = (int)(v / b->w[f]);
                jlo = j0 - 1;
                jhi = j0 + 1;
            } else {
                v = 0;   /* zeros (and masked positions) belong to the lowest interval only */
            }
            const float *e = b->edges + f * (NI + 1);
            for (int j = jlo; j <= jhi; j++) {
                if (j < 0 || j >= NI || v < e[j] || v > e[j + 1]) continue;
                cont[j]++;
                if (!counted) continue;  /* masked positions count, but are never examples */
                int64_t c = seen[j]++;
                if (c < PI) {
                    samp[j * PI + c] = (ex){v, r};
                } else {   /* reservoir sampling: uniform without replacement */
                    uint64_t x = b->rng[f] = b->rng[f] * 6364136223846793005ULL + 1442695040888963407ULL;
                    uint64_t pick = ((x >> 32) * (uint64_t)(c + 1)) >> 32;
                    if (pick < (uint64_t)PI) samp[j * PI + pick] = (ex){v, r};
                }
            }
        }
    }
}

/* Examples in output order, each with its prompt's row of values (the JSON's "values"). */
static void gather(void *ctx, size_t fb, size_t fe)
{
    fbatch *b = ctx;
    const saedash_ref_opts *o = b->o;
    const int F = b->F, T = b->T, K = o->top_k, NI = o->n_intervals, PI = o->per_interval, HB = o->hist_bins;
    const int per = K + NI * PI;
    for (size_t f = fb; f < fe; f++) {
        double s = b->max[f] + (double)b->nnz[f] / (double)b->N;
        ex *top = b->top + f * K;
        qsort(top, (size_t)b->ntop[f], sizeof *top, ex_desc);
        ex list[per];
        int n = 0;
        for (int i = 0; i < b->ntop[f]; i++) list[n++] = top[i];
        if (b->max[f] > 0) {
            for (int j = NI - 1; j >= 0; j--) {
                int m = b->seen[f * NI + j] < PI ? (int)b->seen[f * NI + j] : PI;
                ex *sj = b->samp + (f * NI + j) * PI;
                qsort(sj, (size_t)m, sizeof *sj, ex_desc);
                for (int i = 0; i < m; i++) list[n++] = sj[i];
                s += (double)b->contains[f * NI + j] / (double)b->N;
            }
            for (int i = 0; i < HB; i++) s += (double)b->hist[f * HB + i] * (i + 1);
        }
        float *dst = b->exbuf + f * (size_t)per * T;
        for (int e = 0; e < n; e++) {
            int64_t p0 = list[e].idx / T * T;
            for (int t = 0; t < T; t++) dst[(size_t)e * T + t] = b->acts[(p0 + t) * F + f];
            for (int t = 0; t < T; t++) s += dst[(size_t)e * T + t];
        }
        b->sum[f] = s;
    }
}

typedef struct cache_hook {
    float *dst;
    int col0, D;
} cache_hook;

static int cache_cols(void *ud, hook_point hp, float *act, int B, int T, int width)
{
    (void)hp;
    cache_hook *h = ud;
    for (size_t r = 0; r < (size_t)B * T; r++) memcpy(h->dst + r * h->D, act + r * width + h->col0, sizeof(float) * h->D);
    h->dst += (size_t)B * T * h->D;
    return 0;
}

typedef struct bias_relu_ctx {
    float *acts;
    const float *b, *thr;
    const uint8_t *mask;
    int F;
} bias_relu_ctx;

static void bias_relu(void *ctx, size_t r0, size_t r1)
{
    bias_relu_ctx *c = ctx;
    for (size_t r = r0; r < r1; r++) {
        float *row = c->acts + r * c->F;
        if (!c->mask[r]) {
            memset(row, 0, sizeof(float) * c->F);
            continue;
        }
        for (int f = 0; f < c->F; f++) {
            float h = row[f] + c->b[f];
            row[f] = c->thr ? (h > c->thr[f] ? h : 0.0f) : (h > 0 ? h : 0.0f);
        }
    }
}

int saedash_ref_run(model *m, const char *sae_dir, const int32_t *prompts, int n, int T, const saedash_ref_opts *o,
                    saedash_ref_result *r, char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    sae_cfg c;
    memset(&c, 0, sizeof c);
    st_file *sf = NULL;
    float *W_enc = NULL, *b_enc = NULL, *b_dec = NULL, *thr = NULL, *cache = NULL, *acts = NULL;
    uint8_t *mask = NULL;
    fbatch b;
    memset(&b, 0, sizeof b);
    int rc = -1;
    if (sae_cfg_load(sae_dir, &c, err, errlen)) return -1;
    hook_point hp;
    int col0, ncols;
    if (sae_cfg_check_model(&c, model_config(m), &hp, err, errlen)) goto out;
    sae_cfg_hook_columns(&c, model_config(m), &col0, &ncols);
    if ((c.arch != SAE_STANDARD && c.arch != SAE_JUMPRELU) || c.norm != SAE_NORM_NONE) {
        snprintf(err, errlen, "reference: only standard/jumprelu SAEs without normalization");
        goto out;
    }
    const int D = c.d_in, S = c.d_sae;
    char path[1024];
    snprintf(path, sizeof path, "%s/sae_weights.safetensors", sae_dir);
    if (!(sf = st_open(path, err, errlen))) goto out;
    const int64_t se[2] = {D, S}, sd[2] = {S, D}, s1[1] = {S}, sdin[1] = {D};
    if (!(W_enc = st_load_f32(sf, "W_enc", 2, se, err, errlen)) || !(b_enc = st_load_f32(sf, "b_enc", 1, s1, err, errlen)) ||
        !(b_dec = st_load_f32(sf, "b_dec", 1, sdin, err, errlen)))
        goto out;
    if (c.arch == SAE_JUMPRELU && !(thr = st_load_f32(sf, "threshold", 1, s1, err, errlen))) goto out;
    {
        /* fold_W_dec_norm, as SAEDashboard does before running: W_enc columns, b_enc and the
         * threshold scale by ‖W_dec[i]‖. */
        float *W_dec = st_load_f32(sf, "W_dec", 2, sd, err, errlen);
        if (!W_dec) goto out;
        for (int i = 0; i < S; i++) {
            double s2 = 0;
            for (int d = 0; d < D; d++) s2 += (double)W_dec[(size_t)i * D + d] * W_dec[(size_t)i * D + d];
            float nrm = (float)sqrt(s2);
            b_enc[i] *= nrm;
            if (thr) thr[i] *= nrm;
            for (int d = 0; d < D; d++) W_enc[(size_t)d * S + i] *= nrm;
        }
        free(W_dec);
    }
    st_close(sf);
    sf = NULL;

    /* Forward once, caching every activation (SAEDashboard: model_activations_{i}.pt). */
    const int64_t N = (int64_t)n * T;
    r->cache_bytes = sizeof(float) * (size_t)N * D;
    cache = malloc(r->cache_bytes);
    mask = malloc((size_t)N);
    if (!cache || !mask) {
        snprintf(err, errlen, "reference: out of memory for %.1f GB of cached activations", r->cache_bytes / 1e9);
        goto out;
    }
    for (int64_t i = 0; i < N; i++) mask[i] = prompts[i] != o->bos_id;
    const int layers = hp.kind == HOOK_RESID_PRE ? hp.layer : hp.layer + 1;
    double t0 = now_s();
    cache_hook ch = {cache, col0, D};
    hook_req req = {hp, cache_cols, &ch, 0};
    fwd_opts fo = {.processing = sae_cfg_processing(&c), .hooks = &req, .nhooks = 1};
    for (int p = 0; p < n; p += o->batch_prompts) {
        int B = n - p < o->batch_prompts ? n - p : o->batch_prompts;
        if (model_forward(m, prompts + (size_t)p * T, B, T, &fo, err, errlen)) goto out;
        r->flops_forward += model_forward_flops(m, B, T, layers, 0);
    }
    /* SAELens subtracts b_dec inside every encode call; once here is the cheaper equivalent. */
    if (c.apply_b_dec_to_input)
        for (int64_t i = 0; i < N; i++)
            for (int d = 0; d < D; d++) cache[i * D + d] -= b_dec[d];
    r->seconds_forward = now_s() - t0;

    /* Feature batches. */
    const int BF = o->batch_features, K = o->top_k, NI = o->n_intervals, PI = o->per_interval;
    if (NI < 1 || NI > 100) {
        snprintf(err, errlen, "reference: n_intervals %d outside 1..100", NI);
        goto out;
    }
    r->d_sae = S;
    r->batches_total = (S + BF - 1) / BF;
    int nrun = o->max_batches > 0 && o->max_batches < r->batches_total ? o->max_batches : r->batches_total;
    r->nnz = malloc(sizeof(int64_t) * S);
    r->max = calloc((size_t)S, sizeof(float));
    r->top1 = malloc(sizeof(int64_t) * S);
    acts = malloc(sizeof(float) * (size_t)N * BF);
    b = (fbatch){.o = o, .acts = acts, .mask = mask, .N = N, .T = T};
    b.max = malloc(sizeof(float) * BF);
    b.minnz = malloc(sizeof(float) * BF);
    b.nnz = malloc(sizeof(int64_t) * BF);
    b.top = malloc(sizeof(ex) * BF * K);
    b.ntop = malloc(sizeof(int) * BF);
    b.hist = malloc(sizeof(int64_t) * BF * o->hist_bins);
    b.contains = malloc(sizeof(int64_t) * BF * NI);
    b.samp = malloc(sizeof(ex) * BF * NI * PI);
    b.seen = malloc(sizeof(int64_t) * BF * NI);
    b.sum = malloc(sizeof(double) * BF);
    b.edges = malloc(sizeof(float) * BF * (NI + 1));
    b.lo = malloc(sizeof(float) * BF);
    b.hi = malloc(sizeof(float) * BF);
    b.w = malloc(sizeof(float) * BF);
    b.rng = malloc(sizeof(uint64_t) * BF);
    b.exbuf = malloc(sizeof(float) * (size_t)BF * (K + NI * PI) * T);
    if (!r->nnz || !r->max || !r->top1 || !acts || !b.max || !b.minnz || !b.nnz || !b.top || !b.ntop || !b.hist ||
        !b.contains || !b.samp || !b.seen || !b.sum || !b.exbuf || !b.edges || !b.lo || !b.hi || !b.w || !b.rng) {
        snprintf(err, errlen, "reference: out of memory");
        goto out;
    }
    for (int i = 0; i < S; i++) r->nnz[i] = r->top1[i] = -1;
    for (int k = 0; k < nrun; k++) {
        int fbi = (int)((int64_t)k * r->batches_total / nrun);
        int f0 = fbi * BF, F = S - f0 < BF ? S - f0 : BF;
        double tb = now_s();
        /* Encode only this batch's features (FeatureMaskingContext slices W_enc[:, F]). */
        blas_sgemm(0, 0, (int)N, F, D, 1.0f, cache, D, W_enc + f0, S, 0.0f, acts, F);
        bias_relu_ctx bc = {acts, b_enc + f0, thr ? thr + f0 : NULL, mask, F};
        par_for((size_t)N, 4096, bias_relu, &bc);
        r->seconds_encode += now_s() - tb;
        r->flops_encode += 2.0 * (double)N * D * F;
        b.F = F;
        b.f0 = f0;
        b.batch_seed = mix(o->seed ^ (uint64_t)fbi);   /* SAEDashboard reseeds every batch */
        par_for((size_t)F, 1, pass1, &b);
        par_for((size_t)F, 1, pass2, &b);
        par_for((size_t)F, 1, gather, &b);
        for (int f = 0; f < F; f++) {
            r->nnz[f0 + f] = b.nnz[f];
            r->max[f0 + f] = b.max[f];
            r->top1[f0 + f] = b.ntop[f] ? b.top[(size_t)f * K].idx : -1;
            r->checksum += b.sum[f];
        }
        r->seconds_batches += now_s() - tb;
        r->batches_run++;
    }
    rc = 0;
out:
    if (rc) saedash_ref_result_free(r);
    if (sf) st_close(sf);
    sae_cfg_free(&c);
    free(W_enc);
    free(b_enc);
    free(b_dec);
    free(thr);
    free(cache);
    free(mask);
    free(acts);
    free(b.max);
    free(b.minnz);
    free(b.nnz);
    free(b.top);
    free(b.ntop);
    free(b.hist);
    free(b.contains);
    free(b.samp);
    free(b.seen);
    free(b.sum);
    free(b.exbuf);
    free(b.edges);
    free(b.lo);
    free(b.hi);
    free(b.w);
    free(b.rng);
    return rc;
}

void saedash_ref_result_free(saedash_ref_result *r)
{
    free(r->nnz);
    free(r->max);
    free(r->top1);
    r->nnz = r->top1 = NULL;
    r->max = NULL;
}
