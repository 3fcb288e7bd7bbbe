/* live.c: see live.h. Every route runs the same pipeline — ids → model pass with one read hook
 * per SAE (columns copied to host) → encoder in row blocks on the backend → a per-block
 * reduction — so memory is bounded by one block of dense activations, not by T × d_sae. */
#include "engine/live.h"

#include "engine/dashboard.h" // defines: dash_decoder_nearest

#include <math.h>     // defines: isnan, isfinite
#include <stdio.h>    // defines: snprintf
#include <stdlib.h>   // defines: malloc, calloc, free, qsort
#include <string.h>   // defines: memcpy, memcmp, memset

#define BOS_TEXT "<|endoftext|>"
/* No real token is longer than this many bytes: a text longer than max_tokens times it cannot
 * fit, and is refused before the tokenizer spends time (and memory) on it. */
#define MAX_TOKEN_BYTES 1024

/* ---- tokens ---- */

static int push_ids(int32_t **ids, int *n, int *cap, const int32_t *src, int k)
{
    if (*n + k > *cap) {
        int nc = *cap ? *cap : 64;
        while (nc < *n + k) nc *= 2;
        int32_t *b = realloc(*ids, sizeof(int32_t) * (size_t)nc);
        if (!b) return -1;
        *ids = b;
        *cap = nc;
    }
    memcpy(*ids + *n, src, sizeof(int32_t) * (size_t)k);
    *n += k;
    return 0;
}

int live_tokenize(const tokenizer *t, const char *text, size_t len, int max_tokens, int32_t **ids, char *err,
                  size_t errlen)
{
    *ids = NULL;
    if (max_tokens < 1 || len / MAX_TOKEN_BYTES >= (size_t)max_tokens) return -2;
    if (tok_bos_id(t) >= 0) {
        /* tokenizer.json models: its added tokens (BOS, chat markers) are matched in the text,
         * as HF tokenizes, and the BOS goes first unless the text starts with it */
        const int b = tok_bos_id(t);
        int32_t *seg = NULL;
        int k = tok_encode_special(t, text, len, &seg, err, errlen);
        if (k < 0) return -1;
        int lead = k == 0 || seg[0] != b;
        if (k + lead > max_tokens) {
            free(seg);
            return -2;
        }
        int32_t *out = malloc(sizeof(int32_t) * (size_t)(k + lead + 1));
        if (!out) {
            free(seg);
            snprintf(err, errlen, "out of memory tokenizing %zu bytes", len);
            return -1;
        }
        out[0] = b;
        if (k) memcpy(out + lead, seg, sizeof(int32_t) * (size_t)k);
        free(seg);
        *ids = out;
        return k + lead;
    }
    /* GPT-2's vocabulary files have no added tokens: "<|endoftext|>" is found here */
    const int bos = tok_eos_id(t);
    const size_t bl = sizeof BOS_TEXT - 1;
    int32_t *out = NULL;
    int n = 0, cap = 0;
    if (bos >= 0 && (len < bl || memcmp(text, BOS_TEXT, bl)) && push_ids(&out, &n, &cap, (const int32_t[]){bos}, 1))
        goto oom;
    /* Segments between occurrences of the BOS string; each occurrence is the BOS id. */
    size_t i = 0;
    while (i <= len) {
        size_t j = i;
        if (bos >= 0)
            while (j + bl <= len && memcmp(text + j, BOS_TEXT, bl)) j++;
        int special = bos >= 0 && j + bl <= len;
        if (!special) j = len;
        if (j > i) {
            int32_t *seg = NULL;
            int k = tok_encode(t, text + i, j - i, &seg, err, errlen);
            if (k < 0) {
                free(out);
                return -1;
            }
            int rc = push_ids(&out, &n, &cap, seg, k);
            free(seg);
            if (rc) goto oom;
        }
        if (!special) break;
        if (push_ids(&out, &n, &cap, (const int32_t[]){bos}, 1)) goto oom;
        i = j + bl;
        if (n > max_tokens) break;
    }
    if (n > max_tokens) {
        free(out);
        return -2;
    }
    *ids = out;
    return n;
oom:
    free(out);
    snprintf(err, errlen, "out of memory tokenizing %zu bytes", len);
    return -1;
}

/* ---- SAE inputs ---- */

int live_inputs(model *m, sae *const *s, int n, const int32_t *ids, int T, float **x, char *err, size_t errlen)
{
    hook_req *reqs = calloc((size_t)(n ? n : 1), sizeof *reqs);
    hook_copy *hc = calloc((size_t)(n ? n : 1), sizeof *hc);
    int *proc = calloc((size_t)(n ? n : 1), sizeof *proc), *done = calloc((size_t)(n ? n : 1), sizeof *done);
    int rc = -1;
    for (int i = 0; i < n; i++) x[i] = NULL;
    if (!reqs || !hc || !proc || !done) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    for (int i = 0; i < n; i++) {
        const sae_cfg *c = sae_config(s[i]);
        hook_point hp;
        int ncols;
        if (sae_cfg_check_model(c, model_config(m), &hp, err, errlen)) goto out;
        sae_cfg_hook_columns(c, model_config(m), &hc[i].col0, &ncols);
        hc[i].D = c->d_in;
        proc[i] = sae_cfg_processing(c);
        if (!(hc[i].x = x[i] = malloc(sizeof(float) * (size_t)T * c->d_in))) {
            snprintf(err, errlen, "out of memory for %d tokens × %d inputs", T, c->d_in);
            goto out;
        }
        reqs[i] = (hook_req){hp, hook_copy_cols, &hc[i], 0};
    }
    /* One pass per processing: SAEs of a set almost always share one, so usually one pass. */
    for (int i = 0; i < n; i++) {
        if (done[i]) continue;
        int ng = 0;
        hook_req tmp[64], *g = n - i <= 64 ? tmp : malloc(sizeof *g * (size_t)(n - i));
        if (!g) {
            snprintf(err, errlen, "out of memory");
            goto out;
        }
        for (int j = i; j < n; j++)
            if (!done[j] && proc[j] == proc[i]) {
                g[ng++] = reqs[j];
                done[j] = 1;
            }
        fwd_opts o = {.processing = proc[i], .hooks = g, .nhooks = ng};
        int frc = model_forward(m, ids, 1, T, &o, err, errlen);
        if (g != tmp) free(g);
        if (frc) goto out;
    }
    rc = 0;
out:
    if (rc)
        for (int i = 0; i < n; i++) {
            free(x[i]);
            x[i] = NULL;
        }
    free(reqs);
    free(hc);
    free(proc);
    free(done);
    return rc;
}

/* ---- encoding in blocks ---- */

int live_encode_blocks(sae *s, const float *x, int T, live_block_fn fn, void *ud, char *err, size_t errlen)
{
    const sae_cfg *c = sae_config(s);
    saed_backend *be = sae_backend(s);
    const int D = c->d_in, S = c->d_sae;
    /* Rows per block as sae_encode_sparse picks them (same products, same sums). */
    size_t wide = (size_t)(S > D ? S : D);
    int R = (int)((16u << 20) / wide);
    if (R < 1) R = 1;
    if (R > T) R = T > 0 ? T : 1;
    float *dx = be->alloc(be, sizeof(float) * (size_t)R * D), *df = be->alloc(be, sizeof(float) * (size_t)R * S);
    float *hf = be->host_memory ? NULL : malloc(sizeof(float) * (size_t)R * S);
    int rc = -1;
    if (!dx || !df || (!be->host_memory && !hf)) {
        snprintf(err, errlen, "out of memory for %d × %d activations", R, S);
        goto out;
    }
    for (int r0 = 0; r0 < T; r0 += R) {
        int rows = T - r0 < R ? T - r0 : R;
        if (be->upload(be, dx, x + (size_t)r0 * D, sizeof(float) * (size_t)rows * D)) {
            snprintf(err, errlen, "encode: %s", backend_error(be));
            goto out;
        }
        if (sae_encode(s, dx, rows, df, err, errlen)) goto out;
        const float *f = df;
        if (hf) {
            if (be->download(be, hf, df, sizeof(float) * (size_t)rows * S)) {
                snprintf(err, errlen, "encode: %s", backend_error(be));
                goto out;
            }
            f = hf;
        }
        int k = fn(ud, r0, rows, f);
        if (k) {
            rc = k;
            goto out;
        }
    }
    rc = 0;
out:
    if (dx) be->release(be, dx);
    if (df) be->release(be, df);
    free(hf);
    return rc;
}

/* ---- one feature ---- */

typedef struct col_ctx {
    int index, S;
    float *v;
} col_ctx;

static int take_col(void *ud, int r0, int rows, const float *f)
{
    col_ctx *c = ud;
    for (int r = 0; r < rows; r++) c->v[r0 + r] = f[(size_t)r * c->S + c->index];
    return 0;
}

int live_feature(model *m, sae *s, const int32_t *ids, int T, int index, int bos_id, int drop_special,
                 live_values *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    const sae_cfg *c = sae_config(s);
    if (index < 0 || index >= c->d_sae) {
        snprintf(err, errlen, "feature %d is outside the SAE's %d features", index, c->d_sae);
        return -1;
    }
    float *x = NULL, *v = malloc(sizeof(float) * (size_t)(T ? T : 1));
    if (!v) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    col_ctx cc = {index, c->d_sae, v};
    if (live_inputs(m, &s, 1, ids, T, &x, err, errlen) || live_encode_blocks(s, x, T, take_col, &cc, err, errlen)) {
        free(x);
        free(v);
        return -1;
    }
    free(x);
    int first = 0;
    for (int t = 0; t < T; t++)
        if (ids[t] == bos_id) v[t] = 0.0f;
    if (T > 0 && ids[0] == bos_id) first = 1;
    if (drop_special && first < T && ids[first] == bos_id) first++;
    out->first = first;
    out->n = T - first;
    memmove(v, v + first, sizeof(float) * (size_t)out->n);
    out->values = v;
    out->argmax = -1; /* no values: like Neuronpedia's indexOf of an empty maximum */
    for (int t = 0; t < out->n; t++) {
        if (t == 0 || v[t] > out->max) {
            out->max = v[t];
            out->argmax = t;
        }
        if (t == 0 || v[t] < out->min) out->min = v[t];
    }
    return 0;
}

void live_values_free(live_values *v)
{
    free(v->values);
    memset(v, 0, sizeof *v);
}

/* ---- top features per token ---- */

static int density_ok(const float *density, double max_density, int i)
{
    return !density || max_density < 0 || isnan(density[i]) || density[i] <= max_density;
}

/* Ranks (value desc, index asc). */
static int better(float va, int ia, float vb, int ib) { return va > vb || (va == vb && ia < ib); }

typedef struct topk_ctx {
    int k, S;
    const float *density;
    double max_density;
    int32_t *idx;
    float *val;
    int *count;
} topk_ctx;

static int topk_rows(void *ud, int r0, int rows, const float *f)
{
    topk_ctx *c = ud;
    for (int r = 0; r < rows; r++) {
        const float *row = f + (size_t)r * c->S;
        int32_t *ix = c->idx + (size_t)(r0 + r) * c->k;
        float *vx = c->val + (size_t)(r0 + r) * c->k;
        int n = 0;
        /* Insertion into a sorted list of at most k: k is small (≤ 20 from the API). */
        for (int i = 0; i < c->S; i++) {
            float v = row[i];
            if (!(v > 0.0f) || (n == c->k && !better(v, i, vx[n - 1], ix[n - 1])) ||
                !density_ok(c->density, c->max_density, i))
                continue;
            int p = n < c->k ? n++ : c->k - 1;
            while (p > 0 && better(v, i, vx[p - 1], ix[p - 1])) {
                vx[p] = vx[p - 1];
                ix[p] = ix[p - 1];
                p--;
            }
            vx[p] = v;
            ix[p] = i;
        }
        c->count[r0 + r] = n;
    }
    return 0;
}

int live_topk_by_token(model *m, sae *s, const int32_t *ids, int T, int k, const float *density,
                       double max_density, int32_t *idx, float *val, int *count, char *err, size_t errlen)
{
    if (k < 1) {
        snprintf(err, errlen, "k must be at least 1");
        return -1;
    }
    float *x = NULL;
    topk_ctx tc = {k, sae_config(s)->d_sae, density, max_density, idx, val, count};
    int rc = live_inputs(m, &s, 1, ids, T, &x, err, errlen);
    if (!rc) rc = live_encode_blocks(s, x, T, topk_rows, &tc, err, errlen);
    free(x);
    return rc ? -1 : 0;
}

/* ---- top features over the text ---- */

typedef struct key_ctx {
    int S, zero_first;
    const live_search_opts *o;
    float *max, *sum;   /* (S) */
    int *argmax;        /* (S) */
} key_ctx;

static int key_rows(void *ud, int r0, int rows, const float *f)
{
    key_ctx *c = ud;
    for (int r = 0; r < rows; r++) {
        const int t = r0 + r;
        const float *row = f + (size_t)r * c->S;
        int mult = 0;
        for (int j = 0; j < c->o->n_sort; j++) mult += c->o->sort_pos[j] == t;
        for (int i = 0; i < c->S; i++) {
            float v = t == 0 && c->zero_first ? 0.0f : row[i];
            if (t == 0 || v > c->max[i]) {
                c->max[i] = v;
                c->argmax[i] = t;
            }
            if (mult) c->sum[i] += (float)mult * v;
        }
    }
    return 0;
}

typedef struct gather_ctx {
    int S, zero_first, T;
    live_hit *hits;
    int nhits, sae;
} gather_ctx;

static int gather_rows(void *ud, int r0, int rows, const float *f)
{
    gather_ctx *c = ud;
    for (int h = 0; h < c->nhits; h++) {
        if (c->hits[h].sae != c->sae) continue;
        for (int r = 0; r < rows; r++) {
            int t = r0 + r;
            c->hits[h].values[t] = t == 0 && c->zero_first ? 0.0f : f[(size_t)r * c->S + c->hits[h].index];
        }
    }
    return 0;
}

/* Hit order: key desc, then SAE order, then index. */
static int hit_cmp(const void *a, const void *b)
{
    const live_hit *x = a, *y = b;
    if (x->key != y->key) return x->key > y->key ? -1 : 1;
    if (x->sae != y->sae) return x->sae - y->sae;
    return x->index - y->index;
}

void live_hits_free(live_hit *h, int n)
{
    if (!h) return;
    for (int i = 0; i < n; i++) free(h[i].values);
    free(h);
}

int live_search(model *m, sae *const *s, int n, const int32_t *ids, int T, const live_search_opts *o,
                live_hit **hits, int *nhits, char *err, size_t errlen)
{
    *hits = NULL;
    *nhits = 0;
    const int K = o->n_results;
    if (K < 1 || n < 1 || T < 1) {
        snprintf(err, errlen, "nothing to search (%d SAEs, %d tokens, %d results)", n, T, K);
        return -1;
    }
    for (int j = 0; j < o->n_sort; j++)
        if (o->sort_pos[j] < 0 || o->sort_pos[j] >= T) {
            snprintf(err, errlen, "sort position %d is outside the %d tokens", o->sort_pos[j], T);
            return -1;
        }
    float **x = calloc((size_t)n, sizeof *x);
    /* Candidates: at most K per SAE survive the merge, so each SAE contributes its best K. */
    live_hit *cand = calloc((size_t)n * K, sizeof *cand);
    int ncand = 0, rc = -1;
    key_ctx kc = {0};
    if (!x || !cand) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    if (live_inputs(m, s, n, ids, T, x, err, errlen)) goto out;
    for (int i = 0; i < n; i++) {
        const int S = sae_config(s[i])->d_sae;
        const float *dens = o->density ? o->density[i] : NULL;
        kc = (key_ctx){S, o->zero_first, o, malloc(sizeof(float) * S), calloc((size_t)S, sizeof(float)),
                       malloc(sizeof(int) * S)};
        if (!kc.max || !kc.sum || !kc.argmax) {
            snprintf(err, errlen, "out of memory");
            goto out;
        }
        if (live_encode_blocks(s[i], x[i], T, key_rows, &kc, err, errlen)) goto out;
        /* This SAE's best K by (key desc, index asc): a sorted insertion list. */
        live_hit *best = cand + ncand;
        int nb = 0;
        for (int f = 0; f < S; f++) {
            float key = o->n_sort ? kc.sum[f] : kc.max[f];
            if ((!o->keep_all && !(key > 0.0f)) || !density_ok(dens, o->max_density, f)) continue;
            if (nb == K && !better(key, f, best[nb - 1].key, best[nb - 1].index)) continue;
            int p = nb < K ? nb++ : K - 1;
            while (p > 0 && better(key, f, best[p - 1].key, best[p - 1].index)) {
                best[p] = best[p - 1];
                p--;
            }
            best[p] = (live_hit){.sae = i, .index = f, .key = key, .max = kc.max[f], .argmax = kc.argmax[f]};
        }
        ncand += nb;
        free(kc.max);
        free(kc.sum);
        free(kc.argmax);
        kc = (key_ctx){0};
    }
    qsort(cand, (size_t)ncand, sizeof *cand, hit_cmp);
    int nh = ncand < K ? ncand : K;
    for (int h = 0; h < nh; h++)
        if (!(cand[h].values = malloc(sizeof(float) * (size_t)T))) {
            snprintf(err, errlen, "out of memory");
            goto out;
        }
    /* Second pass over the SAEs that hold hits, for the hits' values at every position. */
    for (int i = 0; i < n; i++) {
        int any = 0;
        for (int h = 0; h < nh && !any; h++) any = cand[h].sae == i;
        if (!any) continue;
        gather_ctx gc = {sae_config(s[i])->d_sae, o->zero_first, T, cand, nh, i};
        if (live_encode_blocks(s[i], x[i], T, gather_rows, &gc, err, errlen)) goto out;
    }
    *hits = cand;
    *nhits = nh;
    cand = NULL;
    rc = 0;
out:
    free(kc.max);
    free(kc.sum);
    free(kc.argmax);
    if (cand) live_hits_free(cand, ncand);
    if (x)
        for (int i = 0; i < n; i++) free(x[i]);
    free(x);
    return rc;
}

int live_sparse(model *m, sae *s, const int32_t *ids, int T, sae_sparse *out, char *err, size_t errlen)
{
    float *x = NULL;
    memset(out, 0, sizeof *out);
    int rc = live_inputs(m, &s, 1, ids, T, &x, err, errlen);
    if (!rc) rc = sae_encode_sparse(s, x, T, out, err, errlen);
    free(x);
    return rc ? -1 : 0;
}

int live_decoder_nearest(sae *s, const float *q, int k, int32_t *idx, float *val, char *err, size_t errlen)
{
    enum { BLOCK = 4096 }; /* rows fetched at a time: memory O(block), not the whole decoder */
    const sae_cfg *c = sae_config(s);
    k = k < 1 ? 1 : k > c->d_sae ? c->d_sae : k;
    float *w = malloc(sizeof(float) * (size_t)BLOCK * c->d_out);
    if (!w) {
        snprintf(err, errlen, "out of memory for %d decoder rows", BLOCK);
        return -1;
    }
    int n = 0;
    for (int r0 = 0; r0 < c->d_sae; r0 += BLOCK) {
        const int rows = c->d_sae - r0 < BLOCK ? c->d_sae - r0 : BLOCK;
        for (int i = 0; i < rows; i++)
            if (sae_decoder_row(s, r0 + i, w + (size_t)i * c->d_out, err, errlen)) {
                free(w);
                return -1;
            }
        n = dash_decoder_nearest(w, rows, c->d_out, r0, q, k, idx, val, n);
    }
    free(w);
    for (int i = 0; i < n; i++) /* upstream answers 0 for a non-finite cosine */
        if (!isfinite(val[i])) val[i] = 0;
    return n;
}
