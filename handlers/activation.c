/* activation.c: POST /api/activation/new, Neuronpedia's live test of one feature on custom text.
 * The request is validated and the SAE looked up here on the HTTP thread; the forward and the
 * encode run as a compute task (http_defer) on the cached model and SAE. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/tok_prompt.h"
#include "engine/live.h"
#include "handlers/handlers.h"
#include "handlers/live.h"

typedef struct act_task {
    const char *model_id, *layer;   /* borrowed from the request body */
    char index_str[16];
    int index, max_tokens, ignore_bos, n, is_array;
    const char *texts[LIVE_MAX_TEXTS];
    char *model_path, *sae_path;
} act_task;

static void act_task_free(act_task *t)
{
    free(t->model_path);
    free(t->sae_path);
    free(t);
}

static void now_iso(char *buf, size_t n)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    size_t l = strftime(buf, n, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + l, n - l, ".%03ldZ", ts.tv_nsec / 1000000);
}

/* One text's result with the keys of Neuronpedia's getActivationForFeature. */
static json_t *activation_json(const act_task *t, const tokenizer *tok, const int32_t *ids, const live_values *v,
                               const char *created)
{
    json_t *vals = json_array();
    for (int i = 0; i < v->n; i++) json_array_append_new(vals, json_real(v->values[i]));
    return json_pack("{s:o,s:o,s:f,s:f,s:i,s:s,s:s,s:s,s:s,s:n,s:s,s:s}", "tokens",
                     live_token_strings(tok, ids + v->first, v->n), "values", vals, "maxValue", (double)v->max,
                     "minValue", (double)v->min, "maxValueTokenIndex", v->argmax, "modelId", t->model_id, "layer",
                     t->layer, "index", t->index_str, "creatorId", "", "dataIndex", "dataSource", "saed", "createdAt",
                     created);
}

static void act_run(http_req *r, void *ud)
{
    act_task *t = ud;
    saed_app *app = http_app(r);
    const eng_ref *mr = live_model_or_reply(r, t->model_path);
    const eng_ref *sr = mr ? live_sae_or_reply(r, t->sae_path) : NULL;
    int32_t *ids[LIVE_MAX_TEXTS] = {0};
    int T[LIVE_MAX_TEXTS];
    json_t *out = NULL;
    if (!sr) goto done;
    /* Every text within the limit before any compute. */
    for (int i = 0; i < t->n; i++) {
        char field[32];
        snprintf(field, sizeof field, t->is_array ? "customText[%d]" : "customText", i);
        if (!(ids[i] = live_tokens_or_reply(r, mr->tok, t->texts[i], t->max_tokens, field, &T[i]))) goto done;
    }
    char created[40];
    now_iso(created, sizeof created);
    out = json_array();
    const int bos = tok_prompt_bos(mr->tok);
    for (int i = 0; i < t->n; i++) {
        live_values v;
        char err[1024];
        if (live_feature(mr->model, sr->sae, ids[i], T[i], t->index, bos, t->ignore_bos, &v, err, sizeof err)) {
            live_reply_engine_error(r, "computing activations", err);
            goto done;
        }
        json_array_append_new(out, activation_json(t, mr->tok, ids[i], &v, created));
        live_values_free(&v);
    }
    if (t->is_array) {
        live_reply(r, out);
    } else {
        live_reply(r, json_incref(json_array_get(out, 0)));
        json_decref(out);
    }
    out = NULL;
done:
    json_decref(out);
    for (int i = 0; i < t->n; i++) free(ids[i]);
    engines_put(app->engines, sr);
    engines_put(app->engines, mr);
    act_task_free(t);
}

void h_activation_new(http_req *r)
{
    json_t *body = http_json(r);
    if (!json_is_object(body)) {
        http_reply_error(r, 400, "invalid_body", "request body must be a JSON object");
        return;
    }
    /* `neuron` or `feature`; `layer` or `source`. */
    json_t *f = json_object_get(body, "neuron");
    if (!json_is_object(f)) f = json_object_get(body, "feature");
    if (!json_is_object(f)) {
        http_reply_error(r, 400, "invalid_field", "feature: required, an object with modelId, source (or layer) and index");
        return;
    }
    json_t *layer = json_object_get(f, "layer");
    if (!json_is_string(layer)) layer = json_object_get(f, "source");
    const char *model_id = json_string_value(json_object_get(f, "modelId"));
    if (!model_id || !json_is_string(layer)) {
        http_reply_error(r, 400, "invalid_field", "feature.%s: required string", model_id ? "source" : "modelId");
        return;
    }
    int index = live_index(json_object_get(f, "index"));
    if (index < 0) {
        http_reply_error(r, 400, "invalid_field", "feature.index: required, a non-negative integer or a string of digits");
        return;
    }
    act_task *t = calloc(1, sizeof *t);
    if (!t) {
        http_reply_error(r, 500, "internal", "out of memory");
        return;
    }
    t->model_id = model_id;
    t->layer = json_string_value(layer);
    t->index = index;
    snprintf(t->index_str, sizeof t->index_str, "%d", index);
    t->ignore_bos = json_is_true(json_object_get(body, "ignoreBos"));
    if ((t->n = live_texts_or_reply(r, json_object_get(body, "customText"), "customText", t->texts, &t->is_array)) < 0) {
        act_task_free(t);
        return;
    }
    db_conn *c = http_db(r);
    if (!c) {
        act_task_free(t);
        return;
    }
    PGresult *res = db_exec(c, DB_LIVE_SAE, (const char *const[]){t->model_id, t->layer});
    if (db_kind(res) != DB_OK) {
        http_reply_db_error(r, res, "looking up the SAE");
    } else if (PQntuples(res) == 0 || index >= atoi(PQgetvalue(res, 0, 2))) {
        live_reply_not_found(r);
    } else {
        t->model_path = strdup(PQgetvalue(res, 0, 0));
        t->sae_path = strdup(PQgetvalue(res, 0, 1));
        t->max_tokens = live_max_tokens(r, atoi(PQgetvalue(res, 0, 3)));
    }
    PQclear(res);
    if (!t->model_path || !t->sae_path) {
        if (t->max_tokens) http_reply_error(r, 500, "internal", "out of memory");
        act_task_free(t);
        return;
    }
    if (http_defer(r, act_run, t)) act_task_free(t);
}
