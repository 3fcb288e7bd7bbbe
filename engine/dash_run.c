/* dash_run.c: see dash_run.h. Batches: prompts [p, p+B) → model forward stopping at the hook
 * (the SAE's processing applied) → the SAE's columns of the hook → dense encode on the backend
 * → (device backends: copied to host) → dash_acc_add_rows over the feature range, in place.
 * The accumulator captures each example's values as it goes (dashboard.h, capture_values), so
 * no prompt is run twice. */
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
    for (int i = 0; i < 4; i++) o->mask_ids[i] = -1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The SAE input (host) and the dense features (backend, (B·T, d_sae)) of B prompts. */
typedef struct pipe {
    model *m;
    sae *s;
    hook_point hp;
    int proc, col0, D, d_sae, T, Bmax;
    float *x_host;   /* (Bmax,T,D) */
    float *x_dev;    /* backend (Bmax·T, D); x_host itself on host-memory backends */
    float *f_dev;    /* backend (Bmax·T, d_sae) */
    float *f_host;   /* (Bmax·T, d_sae); f_dev itself on host-memory backends */
    dash_fetch *fetch; /* device backends: f_dev → f_host (only the non-zeros cross) */
    uint64_t *map;   /* host-memory backends: f's non-zeros, map_words per row */
    size_t map_words; /* ⌈d_sae/64⌉ */
    int mapped;      /* the last batch's encode filled map */
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
    p->f_dev = be->alloc(be, sizeof(float) * rows * p->d_sae);
    if (be->host_memory) {
        p->x_dev = p->x_host;
        p->f_host = p->f_dev;
        /* the encode marks the non-zeros as it writes them: the statistics then find them
         * without reading the dense (B·T, d_sae) block once more (no map: they scan it) */
        p->map_words = ((size_t)p->d_sae + 63) / 64;
        if (be->bias_masked_relu_map) p->map = malloc(sizeof(uint64_t) * rows * p->map_words);
    } else {
        p->f_host = malloc(sizeof(float) * rows * p->d_sae);
        p->x_dev = be->alloc(be, sizeof(float) * rows * p->D);
        p->fetch = dash_fetch_new(be, rows, p->d_sae);
    }
    if (!p->x_host || !p->f_host || !p->x_dev || !p->f_dev || (!be->host_memory && !p->fetch)) {
        snprintf(err, errlen, "out of memory for a batch of %d prompts × %d tokens × %d features", Bmax, T, p->d_sae);
        return -1;
    }
    return 0;
}

static void pipe_free(pipe *p)
{
    saed_backend *be = p->m ? model_backend(p->m) : NULL;
    if (be && !be->host_memory) {
        free(p->f_host);
        if (p->x_dev) be->release(be, p->x_dev);
    }
    free(p->x_host);
    free(p->map);
    if (be && p->f_dev) be->release(be, p->f_dev);
    dash_fetch_free(p->fetch);
}

/* Runs B prompts (ids B×T) through model and SAE; features land in p->f_host. Adds the time
 * of the two halves to secs[0] (forward) and secs[1] (encode and fetch). */
static int pipe_batch(pipe *p, const int32_t *ids, int B, double *secs, char *err, size_t errlen)
{
    double t0 = now_s();
    saed_backend *be = model_backend(p->m);
    hook_copy hc = {p->x_host, p->col0, p->D};
    hook_req req = {p->hp, hook_copy_cols, &hc, 0};
    fwd_opts o = {.processing = p->proc, .hooks = &req, .nhooks = 1};
    if (model_forward(p->m, ids, B, p->T, &o, err, errlen)) return -1;
    double t1 = now_s();
    secs[0] += t1 - t0;
    size_t rows = (size_t)B * p->T;
    int host = be->host_memory;
    if (!host && be->upload(be, p->x_dev, p->x_host, sizeof(float) * rows * p->D)) p->mapped = -1;
    else p->mapped = sae_encode_map(p->s, p->x_dev, (int)rows, p->f_dev, p->map, err, errlen);
    if (p->mapped < 0 || (!host && dash_fetch_run(p->fetch, p->f_dev, rows, p->f_host, err, errlen))) {
        if (!*err) snprintf(err, errlen, "encode: %s", backend_error(be));
        return -1;
    }
    secs[1] += now_s() - t1;
    return 0;
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
    uint8_t *mask = NULL;
    dash_opts so = o->stats;
    so.capture_values = 1;
    if (pipe_init(&p, m, s, T, Bmax, err, errlen)) goto out;
    acc = dash_acc_new(&so, f0, f1, T, p.D, err, errlen);
    mask = malloc((size_t)Bmax * T);
    res->example_values = calloc((size_t)F, sizeof *res->example_values);
    if (!acc || !mask || !res->example_values) {
        if (!*err) snprintf(err, errlen, "out of memory");
        goto out;
    }
    double t0 = now_s();
    for (int b0 = 0; b0 < n; b0 += Bmax) {
        int B = n - b0 < Bmax ? n - b0 : Bmax;
        const int32_t *ids = prompts + (size_t)b0 * T;
        double secs[2] = {0, 0};
        if (pipe_batch(&p, ids, B, secs, err, errlen)) goto out;
        res->seconds_forward += secs[0];
        res->seconds_encode += secs[1];
        double ta = now_s();
        for (size_t i = 0; i < (size_t)B * T; i++)
            mask[i] = ids[i] != o->bos_id && ids[i] != o->mask_ids[0] && ids[i] != o->mask_ids[1] &&
                      ids[i] != o->mask_ids[2] && ids[i] != o->mask_ids[3];
        dash_nzmap nz = {p.map, p.map_words, f0};
        if (dash_acc_add_map(acc, p.f_host + f0, (size_t)p.d_sae, p.mapped > 0 ? &nz : NULL, mask, B, b0, p.x_host, err,
                             errlen))
            goto out;
        res->seconds_accumulate += now_s() - ta;
        res->tokens += (int64_t)B * T;
        if (o->progress && o->progress(o->ud, "statistics", b0 + B, n)) {
            rc = 1;
            goto out;
        }
    }
    if (dash_acc_finish(acc, &res->features, err, errlen)) goto out;
    for (int f = 0; f < F; f++) {
        res->example_values[f] = res->features[f].example_values;
        res->features[f].example_values = NULL;
    }
    res->seconds_stats = now_s() - t0;
    /* the batch buffers and the accumulator are done: give their memory back first */
    dash_acc_free(acc);
    acc = NULL;
    pipe_free(&p);
    memset(&p, 0, sizeof p);

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
    rc = 0;
out:
    free(mask);
    dash_acc_free(acc);
    pipe_free(&p);
    if (rc != 0) dash_run_result_free(res);
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
