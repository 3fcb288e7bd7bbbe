/* models.c: /api/models, the registry of transformer checkpoints. Thin: parse, call the
 * registry service or one statement, shape the reply. */
#include <stdlib.h>
#include <string.h>

#include "handlers/handlers.h"
#include "server/registry.h"

void h_models_list(http_req *r)
{
    db_conn *c = http_db(r);
    if (!c) return;
    PGresult *res = db_exec(c, DB_MODEL_LIST, NULL);
    if (db_kind(res) != DB_OK) http_reply_db_error(r, res, "listing models");
    else reply_json_text(r, 200, PQgetvalue(res, 0, 0));
    PQclear(res);
}

void h_models_create(http_req *r)
{
    json_t *body = http_json(r);
    json_error_t je;
    const char *id = NULL, *path = NULL, *display = NULL;
    if (!json_is_object(body)) {
        http_reply_error(r, 400, "invalid_body", "request body must be a JSON object");
        return;
    }
    if (body_is_pull(body, 0)) {
        reply_pull_job(r, "model");
        return;
    }
    if (json_unpack_ex(body, &je, 0, "{s?s,s?s,s?s}", "id", &id, "path", &path, "displayName", &display)) {
        http_reply_error(r, 400, "invalid_field", "%s", je.text);
        return;
    }
    if (!id) {
        http_reply_error(r, 400, "invalid_field", "id: required string");
        return;
    }
    if (!path) {
        http_reply_error(r, 400, "invalid_field", "path: required string (or hfRepoId to pull from the Hub)");
        return;
    }
    db_conn *c = http_db(r);
    if (!c) return;
    saed_app *app = http_app(r);
    char *json = NULL;
    svc_err e;
    if (registry_model_create(c, app->cfg->data_roots, app->cfg->n_data_roots, id, path, display, &json, &e)) {
        reply_svc(r, &e);
        return;
    }
    char loc[300];
    snprintf(loc, sizeof loc, "/api/models/%s", id);
    http_add_header(r, "Location", loc);
    reply_json_text(r, 201, json);
    free(json);
}

/* An id that cannot exist is answered without asking the database (which would also reject
 * bytes that are not UTF-8). */
static int reply_if_bad_id(http_req *r, const char *id)
{
    if (registry_id_valid(id)) return 0;
    http_reply_error(r, 404, "not_found", "model '%s' not found", id);
    return 1;
}

void h_models_get(http_req *r)
{
    const char *id = http_param(r, "id");
    if (reply_if_bad_id(r, id)) return;
    db_conn *c = http_db(r);
    if (!c) return;
    PGresult *res = db_exec(c, DB_MODEL_GET, (const char *const[]){id});
    if (db_kind(res) != DB_OK) http_reply_db_error(r, res, "reading the model");
    else if (PQntuples(res) == 0) http_reply_error(r, 404, "not_found", "model '%s' not found", id);
    else reply_json_text(r, 200, PQgetvalue(res, 0, 0));
    PQclear(res);
}

void h_models_delete(http_req *r)
{
    const char *id = http_param(r, "id");
    if (reply_if_bad_id(r, id)) return;
    db_conn *c = http_db(r);
    if (!c) return;
    PGresult *res = db_exec(c, DB_MODEL_DELETE, (const char *const[]){id});
    if (db_kind(res) == DB_FOREIGN_KEY)
        http_reply_error(r, 409, "conflict", "model '%s' is still referenced by SAEs or jobs; delete those first", id);
    else if (db_kind(res) != DB_OK) http_reply_db_error(r, res, "deleting the model");
    else if (strcmp(PQcmdTuples(res), "0") == 0) http_reply_error(r, 404, "not_found", "model '%s' not found", id);
    else http_reply_raw(r, 204, NULL, "", 0);
    PQclear(res);
}
