/* job_pull.c: see job_pull.h. */
#define _GNU_SOURCE
#include "server/job_pull.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/hub_cache.h"
#include "server/hub_pull.h"
#include "server/log.h"
#include "server/registry.h"

void hub_conn_from_config(hub_conn *h, const saed_config *cfg)
{
    *h = (hub_conn){.endpoint = cfg->hf_endpoint, .token = cfg->hf_token, .tries = cfg->hub_tries, .backoff_ms = 250};
}

static int opt_string(json_t *body, const char *k, size_t max, char *err, size_t errlen)
{
    json_t *v = json_object_get(body, k);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_string(v) || !json_string_length(v) || json_string_length(v) > max) {
        snprintf(err, errlen, "%s: expected a non-empty string of at most %zu characters", k, max);
        return -1;
    }
    return 0;
}

int job_pull_payload(json_t *body, const char *target, json_t **payload, char *err, size_t errlen)
{
    *payload = NULL;
    int model = !strcmp(target, "model");
    static const char *const model_keys[] = {"id", "displayName", NULL};
    static const char *const sae_keys[] = {"modelId", "id", "setName", "description", NULL};
    const char *const *keys = model ? model_keys : sae_keys;
    if (opt_string(body, "hfRepoId", 256, err, errlen) || opt_string(body, "revision", 255, err, errlen) ||
        opt_string(body, "path", 1024, err, errlen))
        return -1;
    for (int i = 0; keys[i]; i++)
        if (opt_string(body, keys[i], !strcmp(keys[i], "description") ? 4096 : 256, err, errlen)) return -1;
    const char *repo = json_string_value(json_object_get(body, "hfRepoId"));
    const char *path = json_string_value(json_object_get(body, "path"));
    const char *rev = json_string_value(json_object_get(body, "revision"));
    if (!hub_repo_valid(repo)) {
        snprintf(err, errlen, "hfRepoId: '%s' is not a Hub repo id (name or org/name; letters, digits, '-', '_', '.')", repo);
        return -1;
    }
    if (path && !hub_path_valid(path)) {
        snprintf(err, errlen, "path: '%s' is not a folder of the repo (relative, no '..')", path);
        return -1;
    }
    if (rev && (strstr(rev, "..") || strpbrk(rev, " \t\r\n\\"))) {
        snprintf(err, errlen, "revision: '%s' is not a branch, tag or commit name", rev);
        return -1;
    }
    if (model && !json_object_get(body, "id")) {
        snprintf(err, errlen, "id: required string");
        return -1;
    }
    if (!model && !json_object_get(body, "modelId")) {
        snprintf(err, errlen, "modelId: required string");
        return -1;
    }
    const char *id = json_string_value(json_object_get(body, "id"));
    if (id && !registry_id_valid(id)) {
        snprintf(err, errlen, "id: must be 1-128 characters of letters, digits, '.', '_' or '-', starting with a letter or digit");
        return -1;
    }
    json_t *inc = json_object_get(body, "include");
    if (inc && (!json_is_array(inc) || json_array_size(inc) > 64)) {
        snprintf(err, errlen, "include: expected an array of at most 64 glob strings");
        return -1;
    }
    size_t i;
    json_t *g;
    json_array_foreach(inc, i, g) {
        if (!json_is_string(g) || !json_string_length(g) || json_string_length(g) > 256) {
            snprintf(err, errlen, "include[%zu]: expected a non-empty glob string", i);
            return -1;
        }
    }
    json_t *ma = json_object_get(body, "maxAttempts");
    if (ma && (!json_is_integer(ma) || json_integer_value(ma) < 1 || json_integer_value(ma) > 100)) {
        snprintf(err, errlen, "maxAttempts: expected an integer in [1, 100]");
        return -1;
    }
    json_t *p = json_pack("{s:s,s:s,s:s,s:s*,s:I}", "target", target, "hfRepoId", repo, "revision", rev ? rev : "main",
                          "path", path, "maxAttempts", (json_int_t)(ma ? json_integer_value(ma) : 5));
    for (int k = 0; keys[k]; k++) {
        json_t *v = json_object_get(body, keys[k]);
        if (json_is_string(v)) json_object_set(p, keys[k], v);
    }
    if (inc) json_object_set(p, "include", inc);
    *payload = p;
    return 0;
}

typedef struct pull_prog {
    job_ctx *c;
    int64_t start_done;     /* bytes already cached when the transfer began: not in the rate */
    int started;
} pull_prog;

static int on_progress(void *ud, int64_t done, int64_t total)
{
    pull_prog *pp = ud;
    if (!pp->started) {
        pp->started = 1;
        pp->start_done = done;
    }
    return job_progress_bytes(pp->c, "downloading", done, total, done - pp->start_done);
}

static const char *str(json_t *p, const char *k) { return json_string_value(json_object_get(p, k)); }

/* Registers the snapshot and completes the job in one transaction. 0, or JOB_* with err. */
static int register_and_complete(job_ctx *c, json_t *p, const hub_pulled *got, char *err, size_t errlen)
{
    /* The cache is where pulled files live: a data root for this registration only. */
    char *roots[CFG_MAX_LIST + 1];
    int n = 0;
    for (int i = 0; i < c->cfg->n_data_roots; i++) roots[n++] = c->cfg->data_roots[i];
    char *cache = realpath(c->cfg->hf_cache, NULL);
    if (cache) roots[n++] = cache;
    const char *target = str(p, "target");
    char *json = NULL;
    svc_err e = {0};
    PGresult *r = db_exec(c->db, DB_BEGIN, NULL);
    int rc = db_kind(r) == DB_OK ? 0 : -1;
    PQclear(r);
    if (rc) {
        snprintf(err, errlen, "database unavailable while registering");
        free(cache);
        return JOB_RETRY;
    }
    if (!strcmp(target, "model")) {
        rc = registry_model_create(c->db, roots, n, str(p, "id"), got->dir, str(p, "displayName"), &json, &e);
    } else {
        sae_reg in = {.model_id = str(p, "modelId"), .id = str(p, "id"), .path = got->dir, .set_name = str(p, "setName"),
                      .hf_repo_id = str(p, "hfRepoId"), .hf_folder_id = str(p, "path"), .description = str(p, "description")};
        rc = registry_sae_create(c->db, roots, n, &in, &json, &e);
    }
    free(cache);
    int out = JOB_DONE;
    if (rc) {
        snprintf(err, errlen, "pulled %s@%s, but registering it failed: %s", str(p, "hfRepoId"), got->commit, e.msg);
        out = e.kind == SVC_UNAVAILABLE ? JOB_RETRY : JOB_FATAL;
    } else {
        json_t *row = json_loads(json, 0, NULL);
        json_t *res = json_pack("{s:s,s:s,s:s,s:I,s:I,s:I}", "path", got->dir, "commit", got->commit, "hfRepoId",
                                str(p, "hfRepoId"), "files", (json_int_t)got->nfiles, "bytes", (json_int_t)got->bytes,
                                "bytesDownloaded", (json_int_t)got->downloaded);
        if (!strcmp(target, "model")) {
            json_object_set_new(res, "modelId", json_string(str(p, "id")));
        } else {
            json_object_set_new(res, "modelId", json_string(str(p, "modelId")));
            json_object_set(res, "saeId", json_object_get(row, "id"));
        }
        json_t *prog = json_pack("{s:s,s:I,s:I,s:o}", "phase", "done", "bytesDone", (json_int_t)got->bytes, "bytesTotal",
                                 (json_int_t)got->bytes, "result", res);
        char *pt = json_dumps(prog, JSON_COMPACT);
        int done = jobs_complete(c->db, c->j, pt);
        free(pt);
        json_decref(prog);
        json_decref(row);
        if (done != 1) {
            snprintf(err, errlen, done == 0 ? "lease lost before completion" : "completing the job failed");
            if (done == 0) c->lease_lost = 1;
            out = done == 0 ? JOB_STOPPED : JOB_RETRY;
        }
    }
    free(json);
    if (out == JOB_DONE) {
        r = db_exec(c->db, DB_COMMIT, NULL);
        if (db_kind(r) != DB_OK) {
            snprintf(err, errlen, "committing the registration failed");
            out = JOB_RETRY;
        }
        PQclear(r);
    }
    if (out != JOB_DONE) PQclear(db_exec_script(c->db, "ROLLBACK"));
    return out;
}

int job_pull_run(job_ctx *c, char *err, size_t errlen)
{
    json_t *p = json_loads(c->j->payload, 0, NULL);
    const char *target = str(p, "target");
    if (!target || !str(p, "hfRepoId")) {
        json_decref(p);
        snprintf(err, errlen, "malformed hub_pull payload");
        return JOB_FATAL;
    }
    const char *inc[65] = {0};
    json_t *ia = json_object_get(p, "include");
    for (size_t i = 0; i < json_array_size(ia) && i < 64; i++) inc[i] = json_string_value(json_array_get(ia, i));
    hub_pull_req q = {.repo = str(p, "hfRepoId"), .revision = str(p, "revision"), .subpath = str(p, "path"),
                      .include = inc, .model_files = !strcmp(target, "model")};
    hub_conn h;
    hub_conn_from_config(&h, c->cfg);
    pull_prog pp = {.c = c};
    hub_pulled got;
    hub_err e;
    int rc;
    if (hub_mkdirs(c->cfg->hf_cache)) {
        snprintf(err, errlen, "SAED_HF_CACHE %s cannot be created", c->cfg->hf_cache);
        rc = JOB_FATAL;
    } else if (hub_pull(&h, c->cfg->hf_cache, &q, on_progress, &pp, &got, &e)) {
        snprintf(err, errlen, "%s", e.msg);
        /* Connection trouble and 5xx are worth another attempt later; answers are not. */
        rc = e.kind == HUB_STOPPED ? JOB_STOPPED : e.kind == HUB_UNAVAILABLE ? JOB_RETRY : JOB_FATAL;
    } else {
        log_info("job %lld: pulled %s@%s (%d files, %lld bytes, %lld fetched) into %s", (long long)c->j->id, q.repo,
                 got.commit, got.nfiles, (long long)got.bytes, (long long)got.downloaded, got.dir);
        rc = register_and_complete(c, p, &got, err, errlen);
    }
    json_decref(p);
    return rc;
}
