/* v1_init.c: POST /initialize on Neuronpedia's inference-server wire (v1.c has the
 * conventions). Upstream loads its one model and SAE sets again. saed serves every registered
 * model, so it loads (warms) the engines of `model` (every registered model when absent) and
 * of `sources` (its SAE ids; all of them when absent) into the engine cache, which keeps them
 * within its budget like any other use, and reports what it loaded. The body is optional. */
#include <stdlib.h> // defines: calloc, free
#include <string.h> // defines: strcmp, strdup

#include "handlers/handlers.h"
#include "handlers/live.h"

typedef struct init_task {
    int n;              /* rows: (model id, model path, SAE id or NULL, SAE path or NULL) */
    char *(*row)[4];
} init_task;

static void init_task_free(init_task *t)
{
    for (int i = 0; i < t->n; i++)
        for (int j = 0; j < 4; j++) free(t->row[i][j]);
    free(t->row);
    free(t);
}

static void init_run(http_req *r, void *ud)
{
    init_task *t = ud;
    engines *e = http_app(r)->engines;
    json_t *models = json_array(), *cur = NULL;
    for (int i = 0; i < t->n; i++) {
        if (!cur || strcmp(json_string_value(json_object_get(cur, "model")), t->row[i][0])) {
            const eng_ref *mr = live_model_or_reply(r, t->row[i][1]);
            if (!mr) goto fail;
            engines_put(e, mr);
            cur = json_pack("{s:s,s:[]}", "model", t->row[i][0], "sources");
            json_array_append_new(models, cur);
        }
        if (!t->row[i][2]) continue;
        const eng_ref *sr = live_sae_or_reply(r, t->row[i][3]);
        if (!sr) goto fail;
        engines_put(e, sr);
        json_array_append_new(json_object_get(cur, "sources"), json_string(t->row[i][2]));
    }
    live_reply(r, json_pack("{s:s,s:o}", "status", "initialized", "models", models));
    init_task_free(t);
    return;
fail:
    json_decref(models);
    init_task_free(t);
}

/* Whether SAE id is in sources (NULL = every SAE). */
static int init_wanted(json_t *sources, const char *id)
{
    if (!sources) return 1;
    for (size_t i = 0; i < json_array_size(sources); i++)
        if (!strcmp(json_string_value(json_array_get(sources, i)), id)) return 1;
    return 0;
}

void h_v1_initialize(http_req *r)
{
    size_t len = 0;
    const char *raw = http_body(r, &len);
    json_t *body = NULL;
    if (http_query(r, "custom_hf_model_id")) {
        http_reply_error(r, 400, "invalid_field",
                         "custom_hf_model_id: not supported by saed; register the model with POST /api/models");
        return;
    }
    if (raw && len) body = json_loadb(raw, len, 0, NULL); /* not inside json_is_object: a macro */
    if (raw && len && !json_is_object(body)) {
        json_decref(body);
        http_reply_error(r, 400, "invalid_body", "request body must be empty or a JSON object {model?, sources?}");
        return;
    }
    json_t *m = json_object_get(body, "model"), *src = json_object_get(body, "sources");
    const char *model = json_string_value(m);
    size_t ns = json_array_size(src);
    int bad = (m && !json_is_null(m) && !model) || (src && !json_is_null(src) && !json_is_array(src)) || (ns && !model);
    for (size_t i = 0; i < ns; i++) bad |= !json_is_string(json_array_get(src, i));
    if (bad) {
        json_decref(body);
        http_reply_error(r, 400, "invalid_field",
                         "model: a registered model id; sources: an array of its SAE ids (needs model)");
        return;
    }
    db_conn *c = http_db(r);
    PGresult *res = c ? db_exec(c, DB_V1_INIT_SAES, (const char *const[]){model}) : NULL;
    init_task *t = NULL;
    if (!c) goto done;
    if (db_kind(res) != DB_OK) {
        http_reply_db_error(r, res, "listing the models");
        goto done;
    }
    if (model && PQntuples(res) == 0) {
        http_reply_error(r, 404, "not_found", "model %s not found (registered ids: GET /api/models)", model);
        goto done;
    }
    /* Every SAE asked for must be the model's. */
    for (size_t i = 0; i < ns; i++) {
        const char *want = json_string_value(json_array_get(src, i));
        int found = 0;
        for (int k = 0; k < PQntuples(res) && !found; k++)
            found = !PQgetisnull(res, k, 2) && !strcmp(PQgetvalue(res, k, 2), want);
        if (!found) {
            http_reply_error(r, 404, "not_found", "source %s of model %s not found (registered ids: GET /api/saes)",
                             want, model);
            goto done;
        }
    }
    if (!(t = calloc(1, sizeof *t)) || !(t->row = calloc((size_t)PQntuples(res) + 1, sizeof *t->row))) {
        http_reply_error(r, 500, "internal", "out of memory");
        goto done;
    }
    for (int k = 0; k < PQntuples(res); k++) {
        int sae = !PQgetisnull(res, k, 2) && init_wanted(ns ? src : NULL, PQgetvalue(res, k, 2));
        /* A model's first row stays (it loads the model) even when none of its SAEs is wanted. */
        if (!sae && t->n && !strcmp(t->row[t->n - 1][0], PQgetvalue(res, k, 0))) continue;
        for (int j = 0; j < 4; j++)
            t->row[t->n][j] = (j < 2 || sae) ? strdup(PQgetvalue(res, k, j)) : NULL;
        t->n++;
    }
    if (http_defer(r, init_run, t) == 0) t = NULL;
done:
    if (t) init_task_free(t);
    PQclear(res);
    json_decref(body);
}
