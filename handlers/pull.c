/* pull.c: POST /api/models and /api/saes with hfRepoId: queue a "hub_pull" job (202) that
 * downloads the snapshot and then registers it (server/job_pull.c). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/jobs.h"
#include "handlers/handlers.h"
#include "server/job_pull.h"

int body_is_pull(json_t *body, int sae)
{
    if (!json_object_get(body, "hfRepoId")) return 0;
    /* An SAE with a local path and hfRepoId is a local registration that records its origin;
     * a revision (or no local path) makes it a pull. */
    return !sae || !json_object_get(body, "path") || json_object_get(body, "revision");
}

void reply_pull_job(http_req *r, const char *target)
{
    json_t *body = http_json(r), *owned = NULL;
    int sae = !strcmp(target, "sae");
    /* hfFolderId is the registry's own name for the folder in the repo. */
    if (sae && !json_object_get(body, "path") && json_is_string(json_object_get(body, "hfFolderId"))) {
        body = owned = json_deep_copy(body);
        json_object_set(body, "path", json_object_get(body, "hfFolderId"));
    }
    json_t *payload;
    char err[600];
    int rc = job_pull_payload(body, target, &payload, err, sizeof err);
    json_decref(owned);
    if (rc) {
        http_reply_error(r, 400, "invalid_field", "%s", err);
        return;
    }
    db_conn *c = http_db(r);
    if (!c) {
        json_decref(payload);
        return;
    }
    const char *model = json_string_value(json_object_get(payload, sae ? "modelId" : "id"));
    PGresult *res = db_exec(c, DB_MODEL_GET, (const char *const[]){model});
    int known = db_kind(res) == DB_OK ? PQntuples(res) > 0 : -1;
    if (known < 0) http_reply_db_error(r, res, "reading the model");
    PQclear(res);
    if (known < 0) {
        json_decref(payload);
        return;
    }
    if (sae && !known) {
        http_reply_error(r, 404, "not_found", "model '%s' not found", model);
    } else if (!sae && known) {
        http_reply_error(r, 409, "conflict", "model '%s' already exists", model);
    } else {
        char *text = json_dumps(payload, JSON_COMPACT);
        int64_t id;
        enum db_kind why;
        if (jobs_enqueue(c, JOB_PULL_KIND, text, 0, (int)json_integer_value(json_object_get(payload, "maxAttempts")),
                         sae ? model : NULL, NULL, &id, &why)) {
            http_reply_error(r, why == DB_UNAVAILABLE ? 503 : 500, why == DB_UNAVAILABLE ? "database_unavailable" : "internal",
                             "could not queue the pull");
        } else {
            char loc[64];
            snprintf(loc, sizeof loc, "/api/dashboard-jobs/%" PRId64, id);
            http_add_header(r, "Location", loc);
            http_reply_json(r, 202, json_pack("{s:I,s:s,s:s,s:O,s:O}", "jobId", (json_int_t)id, "kind", JOB_PULL_KIND,
                                              "state", "available", "hfRepoId", json_object_get(payload, "hfRepoId"),
                                              "revision", json_object_get(payload, "revision")));
        }
        free(text);
    }
    json_decref(payload);
}
