/* dash_run.c: see dash_run.h. Batches: prompts [p, p+B) → model forward stopping at the hook
 * (the SAE's processing applied) → the SAE's columns of the hook → dense encode on the backend
 * → the feature range copied to host → dash_acc_add. The example pass re-runs only the prompts
 * that hold examples, in prompt order, and copies each example's row of values. */
#include "engine/dash_run.h"
#include "engine/dash_fetch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void dash_run_opts_default(dash_run_opts *o)
{
    memset(o, 0, sizeof *o);
    dash_opts_default(&o->stats);
    dash_wopts_default(&o->weights);
    o->batch_prompts = 32;
    o->bos_id = -1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

typedef struct hook_copy {
    float *x;       /* (B,T,D): the SAE's columns */
    int col0, D;
} hook_copy;

static int copy_cols(void *ud, hook_point hp, float *act, int B, int T, int width)
{
    (void)hp;
    hook_copy *h = ud;
    for (size_t r = 0; r < (size_t)B * T; r++) memcpy(h->x + r * h->D, act + r * width + h->col0, sizeof(float) * h->D);
    return 0;
}

/* The SAE input (host) and the dense features (backend, (B·T, d_sae)) of B prompts. */
typedef struct pipe {
    model *m;
    sae *s;
    hook_point hp;
    int proc, col0, D, d_sae, T, Bmax;
    float *x_host;   /* (Bmax,T,D) */
    float *x_dev;    /* backend (Bmax·T, D) */
    float *f_dev;    /* backend (Bmax·T, d_sae) */
    float *f_host;   /* (Bmax·T, d_sae) */
    dash_fetch *fetch; /* f_dev → f_host (only the non-zeros cross from a device) */
} pipe;

static int pipe_init(pipe *p, model *m, sae *s, int T, int Bmax, char *err, size_t errlen)
{
    memset(p, 0, sizeof *p);
    p->m = m;
    p->s = s;
    p->T = T;
    p->Bmax = Bmax;
    const sae_cfg *c = sae_config(s);
    int ncols;
    if (sae_cfg_check_model(c, model_config(m), &p->hp, err, errlen)) return -1;
    sae_cfg_hook_columns(c, model_config(m), &p->col0, &ncols);
    p->D = c->d_in;
    p->d_sae = c->d_sae;
    p->proc = sae_cfg_processing(c);
    saed_backend *be = model_backend(m);
    size_t rows = (size_t)Bmax * T;
    p->x_host = malloc(sizeof(float) * rows * p->D);
    p->f_host = malloc(sizeof(float) * rows * p->d_sae);
    p->x_dev = be->alloc(be, sizeof(float) * rows * p->D);
    p->f_dev = be->alloc(be, sizeof(float) * rows * p->d_sae);
    p->fetch = dash_fetch_new(be, rows, p->d_sae);
    if (!p->x_host || !p->f_host || !p->x_dev || !p->f_dev || !p->fetch) {
        snprintf(err, errlen, "out of memory for a batch of %d prompts × %d tokens × %d features", Bmax, T, p->d_sae);
        return -1;
    }
    return 0;
}

static void pipe_free(pipe *p)
{
    saed_backend *be = p->m ? model_backend(p->m) : NULL;
    free(p->x_host);
    free(p->f_host);
    if (be && p->x_dev) be->release(be, p->x_dev);
    if (be && p->f_dev) be->release(be, p->f_dev);
    dash_fetch_free(p->fetch);
}

/* Runs B prompts (ids B×T) through model and SAE; features land in p->f_host. */
static int pipe_batch(pipe *p, const int32_t *ids, int B, char *err, size_t errlen)
{
    saed_backend *be = model_backend(p->m);
    hook_copy hc = {p->x_host, p->col0, p->D};
    hook_req req = {p->hp, copy_cols, &hc, 0};
    fwd_opts o = {.processing = p->proc, .hooks = &req, .nhooks = 1};
    if (model_forward(p->m, ids, B, p->T, &o, err, errlen)) return -1;
    size_t rows = (size_t)B * p->T;
    if (be->upload(be, p->x_dev, p->x_host, sizeof(float) * rows * p->D) ||
        sae_encode(p->s, p->x_dev, (int)rows, p->f_dev, err, errlen) ||
        dash_fetch_run(p->fetch, p->f_dev, rows, p->f_host, err, errlen)) {
        if (!*err) snprintf(err, errlen, "encode: %s", backend_error(be));
        return -1;
    }
    return 0;
}

/* Copies columns [f0, f1) of rows (rows, d_sae) into out (rows, F). */
static void slice_cols(const float *f, size_t rows, int d_sae, int f0, int f1, float *out)
{
    int F = f1 - f0;
    for (size_t r = 0; r < rows; r++) memcpy(out + r * F, f + r * d_sae + f0, sizeof(float) * F);
}

static int example_pass(pipe *p, const int32_t *prompts, int n, dash_run_result *res, const dash_run_opts *o, char *err,
                        size_t errlen)
{
    const int F = res->f1 - res->f0, T = res->T;
    /* Which prompts hold examples, in order. */
    char *need = calloc((size_t)n, 1);
    res->example_values = calloc((size_t)F, sizeof *res->example_values);
    if (!need || !res->example_values) {
        free(need);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int64_t total = 0;
    for (int f = 0; f < F; f++) {
        dash_feature *df = &res->features[f];
        for (int e = 0; e < df->n_examples; e++) need[df->examples[e].prompt] = 1;
        if (df->n_examples && !(res->example_values[f] = malloc(sizeof(float) * (size_t)df->n_examples * T))) {
            free(need);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    int *list = malloc(sizeof(int) * (size_t)n), nl = 0;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)p->Bmax * T);
    /* prompt → (list slot) for the batch being processed */
    int *slot = malloc(sizeof(int) * (size_t)n);
    if (!list || !ids || !slot) {
        free(need);
        free(list);
        free(ids);
        free(slot);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (int i = 0; i < n; i++)
        if (need[i]) list[nl++] = i;
    total = nl;
    int rc = 0;
    for (int b0 = 0; b0 < nl && rc == 0; b0 += p->Bmax) {
        int B = nl - b0 < p->Bmax ? nl - b0 : p->Bmax;
        for (int i = 0; i < B; i++) {
            memcpy(ids + (size_t)i * T, prompts + (size_t)list[b0 + i] * T, sizeof(int32_t) * T);
            slot[list[b0 + i]] = i;
        }
        if (pipe_batch(p, ids, B, err, errlen)) {
            rc = -1;
            break;
        }
        int lo = list[b0], hi = list[b0 + B - 1];
        for (int f = 0; f < F; f++) {
            dash_feature *df = &res->features[f];
            for (int e = 0; e < df->n_examples; e++) {
                int pr = (int)df->examples[e].prompt;
                if (pr < lo || pr > hi || !need[pr]) continue;
                /* need[] is 1 for every listed prompt; the slot tells whether it is in this batch */
                int s = slot[pr];
                if (s < 0 || s >= B || list[b0 + s] != pr) continue;
                float *dst = res->example_values[f] + (size_t)e * T;
                for (int t = 0; t < T; t++) dst[t] = p->f_host[((size_t)s * T + t) * p->d_sae + df->index];
            }
        }
        if (o->progress && o->progress(o->ud, "examples", b0 + B, total)) rc = 1;
    }
    free(need);
    free(list);
    free(ids);
    free(slot);
    return rc;
}

int dash_run(model *m, sae *s, const int32_t *prompts, int n, int T, const dash_run_opts *o, dash_run_result *res,
             char *err, size_t errlen)
{
    memset(res, 0, sizeof *res);
    err[0] = '\0';
    const sae_cfg *c = sae_config(s);
    int f0 = o->f0, f1 = o->f1 > 0 ? o->f1 : c->d_sae;
    if (f0 < 0 || f1 > c->d_sae || f0 >= f1) {
        snprintf(err, errlen, "featureRange [%d, %d) is outside the SAE's %d features", f0, f1, c->d_sae);
        return -1;
    }
    if (n < 1 || T < 1) {
        snprintf(err, errlen, "no prompts");
        return -1;
    }
    const int F = f1 - f0, Bmax = o->batch_prompts > 0 ? o->batch_prompts : 32;
    res->f0 = f0;
    res->f1 = f1;
    res->T = T;
    res->n_prompts = n;
    pipe p;
    int rc = -1;
    dash_acc *acc = NULL;
    float *acts = NULL;
    uint8_t *mask = NULL;
    if (pipe_init(&p, m, s, T, Bmax, err, errlen)) goto out;
    acc = dash_acc_new(&o->stats, f0, f1, T, p.D, err, errlen);
    acts = malloc(sizeof(float) * (size_t)Bmax * T * F);
    mask = malloc((size_t)Bmax * T);
    if (!acc || !acts || !mask) {
        if (!*err) snprintf(err, errlen, "out of memory");
        goto out;
    }
    double t0 = now_s();
    for (int b0 = 0; b0 < n; b0 += Bmax) {
        int B = n - b0 < Bmax ? n - b0 : Bmax;
        const int32_t *ids = prompts + (size_t)b0 * T;
        if (pipe_batch(&p, ids, B, err, errlen)) goto out;
        slice_cols(p.f_host, (size_t)B * T, p.d_sae, f0, f1, acts);
        for (size_t i = 0; i < (size_t)B * T; i++) mask[i] = ids[i] != o->bos_id;
        if (dash_acc_add(acc, acts, mask, B, b0, p.x_host, err, errlen)) goto out;
        res->tokens += (int64_t)B * T;
        if (o->progress && o->progress(o->ud, "statistics", b0 + B, n)) {
            rc = 1;
            goto out;
        }
    }
    if (dash_acc_finish(acc, &res->features, err, errlen)) goto out;
    res->seconds_stats = now_s() - t0;

    /* Weight-derived fields: decoder rows and the unembedding on the host. */
    t0 = now_s();
    {
        const hf_config *mc = model_config(m);
        float *wdec = malloc(sizeof(float) * (size_t)c->d_sae * c->d_out);
        float *wu = malloc(sizeof(float) * (size_t)mc->vocab_size * mc->d_model);
        int ok = wdec && wu;
        for (int i = 0; ok && i < c->d_sae; i++) ok = sae_decoder_row(s, i, wdec + (size_t)i * c->d_out, err, errlen) == 0;
        /* The logit lens applies to decoders that write the residual stream (d_out = d_model). */
        if (ok && c->d_out == mc->d_model) ok = model_unembed_host(m, wu, err, errlen) == 0;
        if (ok)
            ok = dash_weights(&o->weights, wdec, c->d_sae, c->d_out, c->d_out == mc->d_model ? wu : NULL,
                              c->d_out == mc->d_model ? mc->vocab_size : 0, 1, f0, f1, res->features, err, errlen) == 0;
        free(wdec);
        free(wu);
        if (!ok) {
            if (!*err) snprintf(err, errlen, "out of memory for the weight-derived fields");
            goto out;
        }
    }
    res->seconds_weights = now_s() - t0;
    t0 = now_s();
    rc = example_pass(&p, prompts, n, res, o, err, errlen);
    res->seconds_examples = now_s() - t0;
out:
    free(acts);
    free(mask);
    dash_acc_free(acc);
    pipe_free(&p);
    if (rc != 0 && res->features) {
        dash_run_result_free(res);
    }
    return rc;
}

void dash_run_result_free(dash_run_result *r)
{
    int F = r->f1 - r->f0;
    if (r->example_values)
        for (int f = 0; f < F; f++) free(r->example_values[f]);
    free(r->example_values);
    if (r->features) dash_features_free(r->features, F);
    r->example_values = NULL;
    r->features = NULL;
}
