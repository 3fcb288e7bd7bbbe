/* jobs.c: /api/dashboard-jobs and /api/autointerp-jobs: queue a dashboard generation or an
 * AutoInterp run, follow it, list, cancel. Both kinds share the one jobs table. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/jobs.h"
#include "handlers/handlers.h"
#include "server/job_autointerp.h"
#include "server/job_dashboard.h"

/* A job id from the path; 0 when it is not a positive integer. */
static int64_t path_id(http_req *r)
{
    const char *s = http_param(r, "id");
    char *end;
    long long v = strtoll(s, &end, 10);
    return (*end || v <= 0) ? 0 : v;
}

/* Queues payload (its priority, maxAttempts, modelId, saeId) as a job of kind and replies 201
 * with Location prefix/{id}. */
static void enqueue_or_reply(http_req *r, db_conn *c, const char *kind, const char *prefix, json_t *payload)
{
    char *text = json_dumps(payload, JSON_COMPACT);
    int64_t id;
    enum db_kind why;
    if (jobs_enqueue(c, kind, text, (int)json_integer_value(json_object_get(payload, "priority")),
                     (int)json_integer_value(json_object_get(payload, "maxAttempts")),
                     json_string_value(json_object_get(payload, "modelId")), json_string_value(json_object_get(payload, "saeId")),
                     &id, &why)) {
        http_reply_error(r, why == DB_UNAVAILABLE ? 503 : 500, why == DB_UNAVAILABLE ? "database_unavailable" : "internal",
                         "could not queue the job");
    } else {
        char loc[64];
        snprintf(loc, sizeof loc, "%s/%" PRId64, prefix, id);
        http_add_header(r, "Location", loc);
        http_reply_json(r, 201, json_pack("{s:I,s:s}", "id", (json_int_t)id, "state", "available"));
    }
    free(text);
}

void h_jobs_create(http_req *r)
{
    saed_app *app = http_app(r);
    json_t *payload;
    char err[600];
    int forbidden;
    if (job_dashboard_payload(http_json(r), app->cfg->data_roots, app->cfg->n_data_roots, &payload, err, sizeof err,
                              &forbidden)) {
        http_reply_error(r, forbidden ? 403 : 400, forbidden ? "path_forbidden" : "invalid_field", "%s", err);
        return;
    }
    const char *model = json_string_value(json_object_get(payload, "modelId"));
    const char *sae = json_string_value(json_object_get(payload, "saeId"));
    db_conn *c = http_db(r);
    if (!c) {
        json_decref(payload);
        return;
    }
    if (!registry_id_valid(model) || !registry_id_valid(sae)) {
        http_reply_error(r, 404, "not_found", "SAE '%s' of model '%s' not found", sae, model);
        json_decref(payload);
        return;
    }
    PGresult *res = db_exec(c, DB_SAE_GET, (const char *const[]){model, sae});
    if (db_kind(res) != DB_OK) {
        http_reply_db_error(r, res, "reading the SAE");
    } else if (PQntuples(res) == 0) {
        http_reply_error(r, 404, "not_found", "SAE '%s' of model '%s' not found", sae, model);
    } else {
        json_t *row = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
        int d_sae = (int)json_integer_value(json_object_get(row, "dSae"));
        json_decref(row);
        json_t *fr = json_object_get(payload, "featureRange");
        int f0 = fr ? (int)json_integer_value(json_array_get(fr, 0)) : 0;
        if (fr && json_integer_value(json_array_get(fr, 1)) > d_sae) {
            http_reply_error(r, 400, "invalid_field", "featureRange: end %lld is beyond the SAE's %d features",
                             (long long)json_integer_value(json_array_get(fr, 1)), d_sae);
        } else if (job_dashboard_width_ok(f0, fr ? (int)json_integer_value(json_array_get(fr, 1)) : d_sae,
                                          app->cfg->job_max_features, err, sizeof err)) {
            http_reply_error(r, 400, "too_many_features", "%s", err);
        } else {
            enqueue_or_reply(r, c, "dashboard", "/api/dashboard-jobs", payload);
        }
    }
    PQclear(res);
    json_decref(payload);
}

static void get_kind(http_req *r, const char *kind)
{
    int64_t id = path_id(r);
    if (!id) {
        http_reply_error(r, 404, "not_found", "job '%s' not found", http_param(r, "id"));
        return;
    }
    db_conn *c = http_db(r);
    if (!c) return;
    char ids[24];
    snprintf(ids, sizeof ids, "%" PRId64, id);
    PGresult *res = kind ? db_exec(c, DB_JOB_GET_KIND, (const char *const[]){ids, kind})
                         : db_exec(c, DB_JOB_GET, (const char *const[]){ids});
    if (db_kind(res) != DB_OK) http_reply_db_error(r, res, "reading the job");
    else if (PQntuples(res) == 0) http_reply_error(r, 404, "not_found", "job %s not found", ids);
    else reply_json_text(r, 200, PQgetvalue(res, 0, 0));
    PQclear(res);
}

static void list_kind(http_req *r, const char *kind)
{
    const char *state = http_query(r, "state"), *model = http_query(r, "modelId"), *sae = http_query(r, "saeId");
    const char *ls = http_query(r, "limit"), *os = http_query(r, "offset");
    static const char *const states[] = {"available", "running", "completed", "failed", "cancelled"};
    int ok = !state;
    for (size_t i = 0; !ok && i < sizeof states / sizeof states[0]; i++) ok = !strcmp(state, states[i]);
    if (!ok) {
        http_reply_error(r, 400, "invalid_field", "state: expected available, running, completed, failed or cancelled");
        return;
    }
    char *end;
    long limit = ls ? strtol(ls, &end, 10) : 50, offset = os ? strtol(os, &end, 10) : 0;
    if (limit < 1 || limit > 500 || offset < 0 || (ls && !*ls) || (os && !*os)) {
        http_reply_error(r, 400, "invalid_field", "limit must be 1-500 and offset >= 0");
        return;
    }
    char lim[16], off[16];
    snprintf(lim, sizeof lim, "%ld", limit);
    snprintf(off, sizeof off, "%ld", offset);
    db_conn *c = http_db(r);
    if (!c) return;
    PGresult *res = kind ? db_exec(c, DB_JOB_LIST_KIND, (const char *const[]){state, model, sae, lim, off, kind})
                         : db_exec(c, DB_JOB_LIST, (const char *const[]){state, model, sae, lim, off});
    if (db_kind(res) != DB_OK) http_reply_db_error(r, res, "listing jobs");
    else reply_json_text(r, 200, PQgetvalue(res, 0, 0));
    PQclear(res);
}

static void cancel_kind(http_req *r, const char *kind)
{
    int64_t id = path_id(r);
    if (!id) {
        http_reply_error(r, 404, "not_found", "job '%s' not found", http_param(r, "id"));
        return;
    }
    db_conn *c = http_db(r);
    if (!c) return;
    char st[32], ids[24];
    snprintf(ids, sizeof ids, "%" PRId64, id);
    if (kind) {
        PGresult *k = db_exec(c, DB_JOB_GET_KIND, (const char *const[]){ids, kind});
        int ours = db_kind(k) == DB_OK && PQntuples(k) == 1, dberr = db_kind(k) != DB_OK;
        PQclear(k);
        if (!ours) {
            if (dberr) http_reply_error(r, 503, "database_unavailable", "could not cancel the job");
            else http_reply_error(r, 404, "not_found", "job %s not found", ids);
            return;
        }
    }
    int rc = jobs_request_cancel(c, id, st, sizeof st);
    if (rc < 0) {
        http_reply_error(r, 503, "database_unavailable", "could not cancel the job");
    } else if (rc == 0) {
        PGresult *res = db_exec(c, DB_JOB_GET, (const char *const[]){ids});
        int exists = db_kind(res) == DB_OK && PQntuples(res) == 1;
        PQclear(res);
        if (exists) http_reply_error(r, 409, "conflict", "job %" PRId64 " has already finished", id);
        else http_reply_error(r, 404, "not_found", "job %" PRId64 " not found", id);
    } else {
        http_reply_json(r, 200, json_pack("{s:I,s:s,s:b}", "id", (json_int_t)id, "state", st, "cancelRequested", 1));
    }
}

void h_jobs_get(http_req *r) { get_kind(r, NULL); }
void h_jobs_list(http_req *r) { list_kind(r, NULL); }
void h_jobs_cancel(http_req *r) { cancel_kind(r, NULL); }

/* ---- /api/autointerp-jobs ---- */

void h_ai_jobs_create(http_req *r)
{
    saed_app *app = http_app(r);
    json_t *payload;
    char err[600];
    if (job_autointerp_payload(app->cfg, http_json(r), &payload, err, sizeof err)) {
        http_reply_error(r, 400, "invalid_field", "%s", err);
        return;
    }
    const char *model = json_string_value(json_object_get(payload, "modelId"));
    const char *sae = json_string_value(json_object_get(payload, "saeId"));
    db_conn *c = http_db(r);
    if (!c) {
        json_decref(payload);
        return;
    }
    PGresult *res = registry_id_valid(model) && registry_id_valid(sae) ? db_exec(c, DB_SAE_GET, (const char *const[]){model, sae}) : NULL;
    if (res && db_kind(res) != DB_OK) http_reply_db_error(r, res, "reading the SAE");
    else if (!res || PQntuples(res) == 0) http_reply_error(r, 404, "not_found", "SAE '%s' of model '%s' not found", sae, model);
    else enqueue_or_reply(r, c, "autointerp", "/api/autointerp-jobs", payload);
    PQclear(res);
    json_decref(payload);
}

void h_ai_jobs_get(http_req *r) { get_kind(r, "autointerp"); }
void h_ai_jobs_list(http_req *r) { list_kind(r, "autointerp"); }
void h_ai_jobs_cancel(http_req *r) { cancel_kind(r, "autointerp"); }
