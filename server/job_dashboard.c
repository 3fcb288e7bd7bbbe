/* job_dashboard.c: see job_dashboard.h. The results of a job replace the SAE's rows in its
 * feature range inside one transaction that also completes the job (attempt-scoped), so a
 * retried or resumed job never duplicates rows and a worker that lost its lease writes nothing. */
#include "engine/tok_prompt.h"
#include "server/job_dashboard.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/dash_export.h"
#include "engine/dash_fit.h"
#include "engine/dash_run.h"
#include "engine/dataset.h"
#include "server/device.h"
#include "server/engines.h"
#include "server/log.h"
#include "server/paths.h"

typedef struct num_field {
    const char *name;
    int def, lo, hi;
} num_field;

static const num_field nums[] = {
    {"nPrompts", 24576, 1, 1 << 22}, {"nTokensInPrompt", 128, 2, 8192}, {"seed", 0, 0, 0x7fffffff},
    {"topK", 20, 1, 1000},           {"nIntervals", 5, 1, 100},         {"perInterval", 5, 0, 1000},
    {"histogramBins", 50, 1, 10000}, {"logitK", 10, 1, 1000},           {"batchPrompts", 32, 1, 4096},
    {"priority", 0, -100, 100},      {"maxAttempts", 5, 1, 100},
};

int job_dashboard_payload(json_t *body, char *const *roots, int nroots, json_t **payload, char *err, size_t errlen,
                          int *forbidden)
{
    *payload = NULL;
    *forbidden = 0;
    if (!json_is_object(body)) {
        snprintf(err, errlen, "request body must be a JSON object");
        return -1;
    }
    const char *model = json_string_value(json_object_get(body, "modelId"));
    const char *saeid = json_string_value(json_object_get(body, "saeId"));
    if (!model || !saeid) {
        snprintf(err, errlen, "%s: required string", model ? "saeId" : "modelId");
        return -1;
    }
    json_t *ds = json_object_get(body, "dataset");
    const char *path = json_string_value(json_object_get(ds, "path"));
    const char *fmt = json_string_value(json_object_get(ds, "format"));
    const char *field = json_string_value(json_object_get(ds, "textField"));
    dataset_format df;
    if (!json_is_object(ds) || !path) {
        snprintf(err, errlen, "dataset.path: required string");
        return -1;
    }
    if (json_object_get(ds, "format") && (!fmt || dataset_format_parse(fmt, &df))) {
        snprintf(err, errlen, "dataset.format: expected text, jsonl or tokens");
        return -1;
    }
    char real[4096];
    if (nroots == 0 || paths_confine(roots, nroots, path, real, sizeof real)) {
        *forbidden = 1;
        snprintf(err, errlen, "dataset.path: '%s' is not an existing path under SAED_DATA_ROOTS", path);
        return -1;
    }
    json_t *p = json_pack("{s:s,s:s,s:{s:s,s:s,s:s*}}", "modelId", model, "saeId", saeid, "dataset", "path", real, "format",
                          fmt ? fmt : "text", "textField", field);
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        json_t *v = json_object_get(body, nums[i].name);
        long long x = nums[i].def;
        if (v) {
            if (!json_is_integer(v) || json_integer_value(v) < nums[i].lo || json_integer_value(v) > nums[i].hi) {
                snprintf(err, errlen, "%s: expected an integer in [%d, %d]", nums[i].name, nums[i].lo, nums[i].hi);
                json_decref(p);
                return -1;
            }
            x = json_integer_value(v);
        }
        json_object_set_new(p, nums[i].name, json_integer(x));
    }
    /* Booleans: prependBos absent = the SAE cfg's prepend_bos at run time; pack = concatenate
     * short documents into windows instead of skipping them; failOnMalformed = the first
     * malformed dataset line fails the job instead of being skipped and reported. */
    static const char *const bools[] = {"prependBos", "pack", "failOnMalformed"};
    for (size_t i = 0; i < sizeof bools / sizeof bools[0]; i++) {
        json_t *b = json_object_get(body, bools[i]);
        if (b && !json_is_boolean(b)) {
            snprintf(err, errlen, "%s: expected a boolean", bools[i]);
            json_decref(p);
            return -1;
        }
        if (b) json_object_set(p, bools[i], b);
    }
    json_t *fr = json_object_get(body, "featureRange");
    if (fr) {
        if (!json_is_array(fr) || json_array_size(fr) != 2 || !json_is_integer(json_array_get(fr, 0)) ||
            !json_is_integer(json_array_get(fr, 1)) || json_integer_value(json_array_get(fr, 0)) < 0 ||
            json_integer_value(json_array_get(fr, 1)) <= json_integer_value(json_array_get(fr, 0))) {
            snprintf(err, errlen, "featureRange: expected [start, end] with 0 <= start < end");
            json_decref(p);
            return -1;
        }
        json_object_set(p, "featureRange", fr);
    }
    *payload = p;
    return 0;
}

int job_dashboard_width_ok(int f0, int f1, int max, char *err, size_t errlen)
{
    if (f1 - f0 <= max) return 0;
    snprintf(err, errlen,
             "featureRange: %d features in one job is more than SAED_JOB_MAX_FEATURES (%d): split the SAE into ranges "
             "of at most %d features, one job each (featureRange [%d, %d], [%d, %d], ...)",
             f1 - f0, max, max, f0, f0 + max, f0 + max, f0 + 2 * max < f1 ? f0 + 2 * max : f1);
    return -1;
}

static int geti(json_t *p, const char *k) { return (int)json_integer_value(json_object_get(p, k)); }

typedef struct prog {
    job_ctx *c;
    int64_t tokens_per_prompt, base;
} prog;

static int on_progress(void *ud, const char *phase, int64_t done, int64_t total)
{
    prog *pg = ud;
    return job_progress(pg->c, phase, done, total, done * pg->tokens_per_prompt);
}

static int on_dataset(void *ud, int pass, uint64_t done, uint64_t total)
{
    prog *pg = ud;
    return job_progress(pg->c, pass == 1 ? "dataset" : "prompts", (int64_t)done, (int64_t)total, 0);
}

/* NOT NULL array columns a row may lack. */
static void fill_arrays(json_t *row, const char *const *keys)
{
    for (int i = 0; keys[i]; i++)
        if (!json_is_array(json_object_get(row, keys[i]))) json_object_set_new(row, keys[i], json_array());
}

static int flush(db_conn *db, enum db_stmt st, json_t *rows, char *err, size_t errlen)
{
    if (json_array_size(rows) == 0) return 0;
    char *text = json_dumps(rows, JSON_COMPACT);
    PGresult *r = db_exec(db, st, (const char *const[]){text});
    free(text);
    int rc = db_kind(r) == DB_OK ? 0 : -1;
    if (rc) db_errmsg(r, err, errlen);
    PQclear(r);
    json_array_clear(rows);
    return rc;
}

static int persist(job_ctx *c, const dash_export_meta *meta, const dash_run_result *res, char *err, size_t errlen)
{
    static const char *const farr[] = {"vector", "topkCosSimIndices", "topkCosSimValues", "neuron_alignment_indices",
        "neuron_alignment_values", "neuron_alignment_l1", "correlated_neurons_indices", "correlated_neurons_pearson",
        "correlated_neurons_l1", "correlated_features_indices", "correlated_features_pearson", "correlated_features_l1",
        "pos_str", "pos_values", "neg_str", "neg_values", "freq_hist_data_bar_heights", "freq_hist_data_bar_values",
        "logits_hist_data_bar_heights", "logits_hist_data_bar_values", "decoder_weights_dist", NULL};
    static const char *const aarr[] = {"dfaValues", "lossValues", NULL};
    db_conn *db = c->db;
    char f0[16], f1[16], jid[24];
    snprintf(f0, sizeof f0, "%d", res->f0);
    snprintf(f1, sizeof f1, "%d", res->f1);
    snprintf(jid, sizeof jid, "%" PRId64, c->j->id);
    PGresult *r = db_exec(db, DB_BEGIN, NULL);
    int rc = db_kind(r) == DB_OK ? 0 : -1;
    PQclear(r);
    if (rc == 0) {
        r = db_exec(db, DB_ACTIVATIONS_DELETE_RANGE, (const char *const[]){meta->model_id, meta->source_id, f0, f1});
        rc = db_kind(r) == DB_OK ? 0 : -1;
        if (rc) db_errmsg(r, err, errlen);
        PQclear(r);
    }
    json_t *frows = json_array(), *arows = json_array();
    for (int fi = 0; rc == 0 && fi < res->f1 - res->f0; fi++) {
        json_t *n = dash_export_neuron(meta, res, fi, err, errlen);
        if (!n) {
            rc = -1;
            break;
        }
        fill_arrays(n, farr);
        json_array_append_new(frows, n);
        if (json_array_size(frows) >= 256 && flush(db, DB_FEATURES_INSERT, frows, err, errlen)) rc = -1;
    }
    if (rc == 0 && flush(db, DB_FEATURES_INSERT, frows, err, errlen)) rc = -1;
    for (int fi = 0; rc == 0 && fi < res->f1 - res->f0; fi++) {
        for (int e = 0; rc == 0 && e < res->features[fi].n_examples; e++) {
            json_t *a = dash_export_example(meta, res, fi, e, DASH_EXPORT_NEURONPEDIA, err, errlen);
            if (!a) {
                rc = -1;
                break;
            }
            fill_arrays(a, aarr);
            json_object_set_new(a, "jobId", json_string(jid));
            json_array_append_new(arows, a);
            if (json_array_size(arows) >= 512 && flush(db, DB_ACTIVATIONS_INSERT, arows, err, errlen)) rc = -1;
        }
        if (rc == 0 && (fi % 64) == 63 && job_progress(c, "saving", fi + 1, res->f1 - res->f0, 0)) {
            snprintf(err, errlen, "stopped while saving");
            rc = 1;
        }
    }
    if (rc == 0 && flush(db, DB_ACTIVATIONS_INSERT, arows, err, errlen)) rc = -1;
    json_decref(frows);
    json_decref(arows);
    if (rc == 0) {
        char np[16], nt[16];
        snprintf(np, sizeof np, "%d", meta->n_prompts);
        snprintf(nt, sizeof nt, "%d", meta->n_tokens_in_prompt);
        r = db_exec(db, DB_SAE_MARK_DASHBOARDS, (const char *const[]){meta->model_id, meta->source_id, np, nt, meta->dataset});
        rc = db_kind(r) == DB_OK ? 0 : -1;
        PQclear(r);
    }
    /* Completion in the same transaction: results and "completed" land together or not at all. */
    if (rc == 0) {
        int done = jobs_complete(db, c->j, NULL);
        if (done != 1) {
            snprintf(err, errlen, done == 0 ? "lease lost before completion" : "completing the job failed");
            rc = done == 0 ? 1 : -1;
            if (done == 0) c->lease_lost = 1;
        }
    }
    if (rc == 0) {
        r = db_exec(db, DB_COMMIT, NULL);
        rc = db_kind(r) == DB_OK ? 0 : -1;
        if (rc) db_errmsg(r, err, errlen);
        PQclear(r);
    }
    if (rc) PQclear(db_exec_script(db, "ROLLBACK"));
    return rc;
}

int job_dashboard_run(job_ctx *c, char *err, size_t errlen)
{
    json_t *p = json_loads(c->j->payload, 0, NULL);
    const char *model_id = json_string_value(json_object_get(p, "modelId"));
    const char *sae_id = json_string_value(json_object_get(p, "saeId"));
    json_t *ds = json_object_get(p, "dataset");
    if (!p || !model_id || !sae_id || !json_is_object(ds)) {
        snprintf(err, errlen, "malformed payload");
        json_decref(p);
        return JOB_FATAL;
    }
    PGresult *r = db_exec(c->db, DB_SAE_PATHS, (const char *const[]){model_id, sae_id});
    if (db_kind(r) != DB_OK || PQntuples(r) != 1) {
        snprintf(err, errlen, db_kind(r) == DB_OK ? "SAE %s/%s is not registered" : "database error reading the SAE",
                 model_id, sae_id);
        int fatal = db_kind(r) == DB_OK;
        PQclear(r);
        json_decref(p);
        return fatal ? JOB_FATAL : JOB_RETRY;
    }
    char mdir[4096], sdir[4096], set[160];
    snprintf(mdir, sizeof mdir, "%s", PQgetvalue(r, 0, 0));
    snprintf(sdir, sizeof sdir, "%s", PQgetvalue(r, 0, 1));
    snprintf(set, sizeof set, "%s", PQgetvalue(r, 0, 2));
    int layer = atoi(PQgetvalue(r, 0, 4));
    PQclear(r);

    int rc = JOB_FATAL;
    /* A device that cannot be opened is the worker's fault, not the job's: retry elsewhere. */
    saed_backend *be = device_open(c->cfg->device, c->cfg->gpu_precision, c->slot, err, errlen);
    if (!be) {
        c->device_failed = 1;
        json_decref(p);
        return JOB_RETRY;
    }
    log_info("job %lld runs on %s", (long long)c->j->id, be->device);
    /* On the CPU the model and SAE come from the process's engine cache (shared with the compute
     * routes and the other workers; same load options). A GPU worker loads them onto its device
     * for the job: the cache holds host-backend entries only. */
    const eng_ref *mref = NULL, *sref = NULL;
    tokenizer *tok = NULL;
    model *m = NULL;
    sae *s = NULL;
    dataset_result dr = {0};
    dash_run_result res = {0};
    prog pg = {.c = c};
    int cached = c->engines && be->host_memory;
    if (cached) {
        if (!(mref = engines_model(c->engines, mdir, err, errlen)) || !(sref = engines_sae(c->engines, sdir, err, errlen)))
            goto out;
        tok = mref->tok;
        m = mref->model;
        s = sref->sae;
    } else {
        if (!(tok = tok_load_dir(mdir, err, errlen)) || !(m = model_load(mdir, be, err, errlen))) goto out;
        sae_cfg sc;
        if (sae_cfg_load(sdir, &sc, err, errlen)) goto out;
        sae_load_opts lo = sae_dashboard_load_opts(&sc);
        sae_cfg_free(&sc);
        if (!(s = sae_load(sdir, be, &lo, err, errlen))) goto out;
    }
    const int sae_prepend = sae_config(s)->prepend_bos;
    dataset_opts dopt;
    dataset_opts_default(&dopt);
    dataset_format_parse(json_string_value(json_object_get(ds, "format")), &dopt.format);
    dopt.path = json_string_value(json_object_get(ds, "path"));
    dopt.text_field = json_string_value(json_object_get(ds, "textField"));
    dopt.T = geti(p, "nTokensInPrompt");
    json_t *pb = json_object_get(p, "prependBos");
    dopt.prepend_bos = pb ? json_is_true(pb) : sae_prepend;
    dopt.n_prompts = geti(p, "nPrompts");
    dopt.pack = json_is_true(json_object_get(p, "pack"));
    dopt.strict = json_is_true(json_object_get(p, "failOnMalformed"));
    dopt.seed = (uint64_t)geti(p, "seed");
    dopt.vocab_size = model_config(m)->vocab_size;
    dopt.progress = on_dataset;
    dopt.progress_ctx = &pg;
    if (dataset_prompts(&dopt, tok, &dr, err, errlen)) {
        rc = c->lease_lost ? JOB_STOPPED : JOB_FATAL;
        goto out;
    }
    if (dr.n == 0) {
        snprintf(err, errlen, "the dataset gave no window of %d tokens", dopt.T);
        goto out;
    }
    dash_run_opts ro;
    dash_run_opts_default(&ro);
    ro.stats.top_k = geti(p, "topK");
    ro.stats.n_intervals = geti(p, "nIntervals");
    ro.stats.per_interval = geti(p, "perInterval");
    ro.stats.hist_bins = geti(p, "histogramBins");
    ro.stats.seed = (uint64_t)geti(p, "seed");
    ro.weights.logit_k = geti(p, "logitK");
    ro.batch_prompts = geti(p, "batchPrompts");
    ro.bos_id = dopt.prepend_bos ? tok_prompt_bos(tok) : -1;
    /* SAEDashboard masks the tokenizer's pad, BOS and EOS wherever they stand */
    int32_t special[3];
    int nspecial = tok_mask_ids(tok, special);
    for (int i = 0; i < nspecial; i++) ro.mask_ids[i] = special[i];
    json_t *fr = json_object_get(p, "featureRange");
    if (fr) {
        ro.f0 = (int)json_integer_value(json_array_get(fr, 0));
        ro.f1 = (int)json_integer_value(json_array_get(fr, 1));
    }
    /* a job queued by hand (or before the limit was lowered) is refused here too */
    if (job_dashboard_width_ok(ro.f0, ro.f1 > 0 ? ro.f1 : sae_config(s)->d_sae, c->cfg->job_max_features, err, errlen)) {
        rc = JOB_FATAL;
        goto out;
    }
    ro.progress = on_progress;
    ro.ud = &pg;
    pg.tokens_per_prompt = dopt.T;
    int used = ro.batch_prompts, d = dash_run_fit(m, s, dr.ids, dr.n, dopt.T, &ro, &res, &used, err, errlen);
    if (used != ro.batch_prompts)
        log_info("job %lld: batches of %d prompts instead of %d to fit %s's memory", (long long)c->j->id, used,
                 ro.batch_prompts, be->device);
    if (d) {
        rc = d > 0 ? JOB_STOPPED : JOB_FATAL;
        goto out;
    }
    const sae_cfg *cfg = sae_config(s);
    dash_export_meta meta = {
        .model_id = model_id, .source_id = sae_id, .set_name = set, .layer = layer, .hook_name = cfg->hook_name,
        .dataset = dopt.path, .n_prompts = dr.n, .n_tokens_in_prompt = dopt.T, .prepend_bos = dopt.prepend_bos,
        .bos_id = ro.bos_id, .d_sae = cfg->d_sae, .creator_name = "saed", .release_id = sae_id,
        .release_title = "saed dashboards", .prompts = dr.ids, .tok = tok, .run = &ro,
    };
    int pr = persist(c, &meta, &res, err, errlen);
    rc = pr == 0 ? JOB_DONE : pr > 0 ? JOB_STOPPED : JOB_RETRY;
out:
    if (rc != JOB_DONE && be->healthy && be->healthy(be)) {
        /* The device failed under the job (a sticky CUDA error): its context is lost. */
        snprintf(err, errlen, "compute device %s failed: %s", be->device, backend_error(be));
        c->device_failed = 1;
        rc = JOB_RETRY;
    }
    if (rc != JOB_DONE && c->stop) rc = JOB_STOPPED;
    dash_run_result_free(&res);
    dataset_result_free(&dr);
    if (cached) {
        engines_put(c->engines, sref);
        engines_put(c->engines, mref);
    } else {
        sae_free(s);
        model_free(m);
        tok_free(tok);
    }
    backend_close(be);
    json_decref(p);
    return rc;
}
