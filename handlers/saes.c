/* saes.c: /api/saes, the registry of SAELens SAEs (Neuronpedia "sources"), and their export
 * back to SAELens layout as a .tar.gz. */
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "handlers/handlers.h"

void h_saes_list(http_req *r)
{
    const char *model = http_query(r, "modelId");
    db_conn *c = http_db(r);
    if (!c) return;
    PGresult *res = model ? db_exec(c, DB_SAE_LIST_MODEL, (const char *const[]){model}) : db_exec(c, DB_SAE_LIST, NULL);
    if (db_kind(res) != DB_OK) http_reply_db_error(r, res, "listing SAEs");
    else reply_json_text(r, 200, PQgetvalue(res, 0, 0));
    PQclear(res);
}

static void sae_create_task(http_req *r, void *ud);

void h_saes_create(http_req *r)
{
    json_t *body = http_json(r);
    json_error_t je;
    sae_reg in = {0};
    if (!json_is_object(body)) {
        http_reply_error(r, 400, "invalid_body", "request body must be a JSON object");
        return;
    }
    if (body_is_pull(body, 1)) {
        reply_pull_job(r, "sae");
        return;
    }
    if (json_unpack_ex(body, &je, 0, "{s?s,s?s,s?s,s?s,s?s,s?s,s?s}", "modelId", &in.model_id, "id", &in.id, "path",
                       &in.path, "setName", &in.set_name, "hfRepoId", &in.hf_repo_id, "hfFolderId", &in.hf_folder_id,
                       "description", &in.description)) {
        http_reply_error(r, 400, "invalid_field", "%s", je.text);
        return;
    }
    if (!in.model_id) {
        http_reply_error(r, 400, "invalid_field", "modelId: required string");
        return;
    }
    if (!in.path) {
        http_reply_error(r, 400, "invalid_field", "path: required string (or hfRepoId to pull from the Hub)");
        return;
    }
    /* Registration loads and checks every weight: a compute task. The strings point into the
     * request body, which lives as long as the request. */
    sae_reg *task = malloc(sizeof *task);
    if (!task) {
        http_reply_error(r, 500, "internal", "out of memory");
        return;
    }
    *task = in;
    if (http_defer(r, sae_create_task, task)) free(task);
}

static void sae_create_task(http_req *r, void *ud)
{
    sae_reg in = *(sae_reg *)ud;
    free(ud);
    db_conn *c = http_db(r);
    if (!c) return;
    saed_app *app = http_app(r);
    char *json = NULL;
    svc_err e;
    if (registry_sae_create(c, app->cfg->data_roots, app->cfg->n_data_roots, &in, &json, &e)) {
        reply_svc(r, &e);
        return;
    }
    json_t *j = json_loads(json, 0, NULL);
    char loc[400];
    snprintf(loc, sizeof loc, "/api/saes/%s/%s", in.model_id, json_string_value(json_object_get(j, "id")));
    json_decref(j);
    http_add_header(r, "Location", loc);
    reply_json_text(r, 201, json);
    free(json);
}

/* 404 for ids that cannot exist, before asking the database. */
static int bad_ids(http_req *r, const char *model, const char *id)
{
    if (registry_id_valid(model) && registry_id_valid(id)) return 0;
    http_reply_error(r, 404, "not_found", "SAE '%s' of model '%s' not found", id, model);
    return 1;
}

void h_saes_get(http_req *r)
{
    const char *model = http_param(r, "modelId"), *id = http_param(r, "id");
    if (bad_ids(r, model, id)) return;
    db_conn *c = http_db(r);
    if (!c) return;
    PGresult *res = db_exec(c, DB_SAE_GET, (const char *const[]){model, id});
    if (db_kind(res) != DB_OK) http_reply_db_error(r, res, "reading the SAE");
    else if (PQntuples(res) == 0) http_reply_error(r, 404, "not_found", "SAE '%s' of model '%s' not found", id, model);
    else reply_json_text(r, 200, PQgetvalue(res, 0, 0));
    PQclear(res);
}

void h_saes_delete(http_req *r)
{
    const char *model = http_param(r, "modelId"), *id = http_param(r, "id");
    if (bad_ids(r, model, id)) return;
    db_conn *c = http_db(r);
    if (!c) return;
    PGresult *res = db_exec(c, DB_SAE_DELETE, (const char *const[]){model, id});
    if (db_kind(res) == DB_FOREIGN_KEY)
        http_reply_error(r, 409, "conflict", "SAE '%s' is still referenced by jobs; cancel or delete them first", id);
    else if (db_kind(res) != DB_OK) http_reply_db_error(r, res, "deleting the SAE");
    else if (strcmp(PQcmdTuples(res), "0") == 0) http_reply_error(r, 404, "not_found", "SAE '%s' of model '%s' not found", id, model);
    else http_reply_raw(r, 204, NULL, "", 0);
    PQclear(res);
}

static void rm_dir(const char *dir)
{
    char cmdless[4200];
    const char *files[] = {"cfg.json", "sae_weights.safetensors", "sparsity.safetensors", "pretrained_saes.yaml"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(cmdless, sizeof cmdless, "%s/%s", dir, files[i]);
        unlink(cmdless);
    }
    rmdir(dir);
}

static void sae_export_task(http_req *r, void *ud);

void h_saes_export(http_req *r)
{
    const char *model = http_param(r, "modelId"), *id = http_param(r, "id"), *fmt = http_query(r, "format");
    int format;
    if (!fmt || !strcmp(fmt, "saelens-v6")) format = 6;
    else if (!strcmp(fmt, "saelens-v5")) format = 5;
    else {
        http_reply_error(r, 400, "invalid_field", "format: expected saelens-v6 or saelens-v5, got '%s'", fmt);
        return;
    }
    if (bad_ids(r, model, id)) return;
    /* Reads, converts and compresses the whole SAE: a compute task, not an HTTP thread's job. */
    http_defer(r, sae_export_task, (void *)(intptr_t)format);
}

static void sae_export_task(http_req *r, void *ud)
{
    const char *model = http_param(r, "modelId"), *id = http_param(r, "id");
    int format = (int)(intptr_t)ud;
    db_conn *c = http_db(r);
    if (!c) return;
    char dir[] = "/tmp/saed-export-XXXXXX";
    if (!mkdtemp(dir)) {
        http_reply_error(r, 500, "internal", "cannot create a temporary directory");
        return;
    }
    svc_err e;
    if (registry_sae_export(c, model, id, format, dir, &e)) {
        rm_dir(dir);
        reply_svc(r, &e);
        return;
    }
    char prefix[300];
    snprintf(prefix, sizeof prefix, "%s-%s", model, id);
    reply_targz_dir(r, dir, prefix);
    rm_dir(dir);
}
