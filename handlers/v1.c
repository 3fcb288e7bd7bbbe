/* v1.c: Neuronpedia's inference-server wire (apps/inference/openapi.json v1.9.0) as thin
 * adapters over the engine calls the /api routes use: GET /health, GET /v1/capabilities,
 * POST /v1/tokenize, /v1/activation/single, /v1/activation/topk-by-token and
 * /v1/util/sae-vector. The route flag ROUTE_V1 gives the wire's
 * error shape ({"error": str}), 429 when busy and the X-SECRET-KEY check (server/http.c).
 * Fields are camelCase with snake_case accepted. One process serves many models: `model` is a
 * registered model id and `source` one of its SAE ids (as GET /api/saes lists them). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/live.h"
#include "engine/sae.h"
#include "engine/tok_prompt.h"
#include "handlers/handlers.h"
#include "handlers/live.h"

/* body[camel], else body[snake] (populate_by_name). */
static json_t *field(json_t *body, const char *camel, const char *snake)
{
    json_t *v = json_object_get(body, camel);
    return v || !snake ? v : json_object_get(body, snake);
}

void h_v1_health(http_req *r) { http_reply_json(r, 200, json_pack("{s:s}", "status", "healthy")); }

void h_v1_capabilities(http_req *r)
{
    http_reply_json(r, 200, json_pack("{s:s,s:b,s:[s,s,s,s,s,s,s,s]}", "version", "1.9.0", "multiModel", 1, "routes",
                                      "/v1/tokenize", "/v1/activation/single", "/v1/util/sae-vector", "/v1/activation/topk-by-token",
                                      "/v1/capabilities", "/v1/steer/completion", "/v1/steer/completion-chat",
                                      "/v1/steer/health"));
}

typedef struct v1_task {
    char *model_path, *sae_path;
    int index, max_tokens, prepend_bos, is_act;
    int topk, ignore_bos;       /* activation/topk-by-token when topk > 0 */
    const char *text;           /* borrowed from the request body */
} v1_task;

static void v1_task_free(v1_task *t)
{
    free(t->model_path);
    free(t->sae_path);
    free(t);
}

static json_t *ids_json(const int32_t *ids, int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(a, json_integer(ids[i]));
    return a;
}

/* topk-by-token: the topK largest positive features at every token (special tokens skipped
 * with ignoreBos), as /api/search-topk-by-token finds them, without the density filter. */
static void v1_topk(http_req *r, const v1_task *t, const eng_ref *mr, const eng_ref *sr, const int32_t *ids, int T,
                    int bos)
{
    const int k = t->topk;
    int32_t *idx = malloc(sizeof(int32_t) * (size_t)T * k);
    float *val = malloc(sizeof(float) * (size_t)T * k);
    int *count = malloc(sizeof(int) * (size_t)T);
    char err[1024];
    if (!idx || !val || !count) {
        http_reply_error(r, 500, "internal", "out of memory");
    } else if (live_topk_by_token(mr->model, sr->sae, ids, T, k, NULL, -1, idx, val, count, err, sizeof err)) {
        live_reply_engine_error(r, "computing activations", err);
    } else {
        json_t *rows = json_array();
        for (int p = 0; p < T; p++) {
            int special = ids[p] == bos || tok_special_id(mr->tok, ids[p]);
            if (special && t->ignore_bos) continue;
            json_t *tf = json_array();
            for (int j = 0; j < count[p]; j++)
                json_array_append_new(tf, json_pack("{s:i,s:f}", "featureIndex", idx[(size_t)p * k + j],
                                                    "activationValue", (double)val[(size_t)p * k + j]));
            json_t *tok = live_token_strings(mr->tok, ids + p, 1);
            json_array_append_new(rows, json_pack("{s:O,s:i,s:b,s:o}", "token", json_array_get(tok, 0), "tokenPosition",
                                                  p, "isSpecial", special, "topFeatures", tf));
            json_decref(tok);
        }
        live_reply(r, json_pack("{s:o,s:o}", "tokens", live_token_strings(mr->tok, ids, T), "results", rows));
    }
    free(idx);
    free(val);
    free(count);
}

static void v1_run(http_req *r, void *ud)
{
    v1_task *t = ud;
    saed_app *app = http_app(r);
    const eng_ref *mr = live_model_or_reply(r, t->model_path);
    const eng_ref *sr = mr && t->is_act ? live_sae_or_reply(r, t->sae_path) : NULL;
    int32_t *ids = NULL;
    int T = 0;
    if (!mr || (t->is_act && !sr)) goto done;
    const char *what = t->is_act ? "prompt" : "text";
    if (!(ids = live_tokens_or_reply(r, mr->tok, t->text, t->max_tokens, what, &T))) goto done;
    const int bos = tok_prompt_bos(mr->tok);
    if (!t->is_act) {
        /* live_tokenize prepends the BOS as the inference server does; prependBos=false drops it. */
        int first = !t->prepend_bos && T > 0 && ids[0] == bos ? 1 : 0;
        live_reply(r, json_pack("{s:o,s:o,s:b}", "tokens", ids_json(ids + first, T - first), "tokenStrings",
                                live_token_strings(mr->tok, ids + first, T - first), "prependBos", t->prepend_bos));
        goto done;
    }
    if (t->topk) {
        v1_topk(r, t, mr, sr, ids, T, bos);
        goto done;
    }
    live_values v;
    char err[1024];
    if (live_feature(mr->model, sr->sae, ids, T, t->index, bos, 0, &v, err, sizeof err)) {
        live_reply_engine_error(r, "computing activations", err);
        goto done;
    }
    json_t *vals = json_array(), *special = json_array();
    for (int i = 0; i < v.n; i++) {
        json_array_append_new(vals, json_real(v.values[i]));
        json_array_append_new(special, json_boolean(tok_special_id(mr->tok, ids[v.first + i])));
    }
    live_reply(r, json_pack("{s:{s:o,s:f,s:i},s:o,s:o}", "activation", "values", vals, "maxValue", (double)v.max,
                            "maxValueIndex", v.argmax < 0 ? 0 : v.argmax, "tokens",
                            live_token_strings(mr->tok, ids + v.first, v.n), "tokensIsSpecial", special));
    live_values_free(&v);
done:
    free(ids);
    engines_put(app->engines, sr);
    engines_put(app->engines, mr);
    v1_task_free(t);
}

/* The request's text and model paths into t; replies and returns -1 on a bad request. */
static int v1_prepare(http_req *r, v1_task *t, const char *text_field)
{
    json_t *body = http_json(r);
    if (!json_is_object(body)) {
        http_reply_error(r, 400, "invalid_body", "request body must be a JSON object");
        return -1;
    }
    const char *model = json_string_value(json_object_get(body, "model"));
    t->text = json_string_value(json_object_get(body, text_field));
    if (!model || !t->text || !*t->text) {
        http_reply_error(r, 400, "invalid_field", "%s: required, a non-empty string", model ? text_field : "model");
        return -1;
    }
    const char *source = NULL;
    if (t->is_act) {
        if (field(body, "vector", NULL) || field(body, "hook", NULL)) {
            http_reply_error(r, 400, "invalid_field", "vector/hook: not supported by saed; send source and index");
            return -1;
        }
        source = json_string_value(json_object_get(body, "source"));
        t->index = t->topk ? 0 : live_index(json_object_get(body, "index"));
        json_t *k = field(body, "topK", "top_k"), *ib = field(body, "ignoreBos", "ignore_bos");
        if (t->topk && k && (!json_is_integer(k) || json_integer_value(k) < 1 ||
                             json_integer_value(k) > LIVE_MAX_TOPK_RESULTS)) {
            http_reply_error(r, 400, "invalid_field", "topK: an integer from 1 to %d", LIVE_MAX_TOPK_RESULTS);
            return -1;
        }
        if (t->topk && k) t->topk = (int)json_integer_value(k);
        t->ignore_bos = json_is_true(ib);
        if (!source || t->index < 0) {
            http_reply_error(r, 400, "invalid_field", "%s: required (source: an SAE id of the model; index: digits)",
                             source ? "index" : "source");
            return -1;
        }
    } else {
        json_t *pb = field(body, "prependBos", "prepend_bos");
        if (pb && !json_is_boolean(pb)) {
            http_reply_error(r, 400, "invalid_field", "prependBos: must be a boolean");
            return -1;
        }
        t->prepend_bos = !pb || json_is_true(pb);
    }
    db_conn *c = http_db(r);
    if (!c) return -1;
    PGresult *res = t->is_act ? db_exec(c, DB_LIVE_SAE, (const char *const[]){model, source})
                              : db_exec(c, DB_MODEL_PATH, (const char *const[]){model});
    int rc = -1;
    if (db_kind(res) != DB_OK) {
        http_reply_db_error(r, res, "looking up the model");
    } else if (PQntuples(res) == 0 || (t->is_act && t->index >= atoi(PQgetvalue(res, 0, 2)))) {
        http_reply_error(r, 404, "not_found", "%s %s not found (registered ids: GET /api/saes)",
                         t->is_act ? "source/index of model" : "model", model);
    } else {
        t->model_path = strdup(PQgetvalue(res, 0, 0));
        if (t->is_act) t->sae_path = strdup(PQgetvalue(res, 0, 1));
        t->max_tokens = live_max_tokens(r, t->is_act ? atoi(PQgetvalue(res, 0, 3)) : 0);
        rc = t->model_path && (!t->is_act || t->sae_path) ? 0 : -1;
        if (rc) http_reply_error(r, 500, "internal", "out of memory");
    }
    PQclear(res);
    return rc;
}

static void v1_start(http_req *r, int is_act, int topk)
{
    v1_task *t = calloc(1, sizeof *t);
    if (!t) {
        http_reply_error(r, 500, "internal", "out of memory");
        return;
    }
    t->is_act = is_act;
    t->topk = topk;
    if (v1_prepare(r, t, is_act ? "prompt" : "text") || http_defer(r, v1_run, t)) v1_task_free(t);
}

void h_v1_tokenize(http_req *r) { v1_start(r, 0, 0); }
void h_v1_activation_single(http_req *r) { v1_start(r, 1, 0); }
/* topK defaults to 5, as upstream's. */
void h_v1_topk_by_token(http_req *r) { v1_start(r, 1, 5); }

/* util/sae-vector: the decoder row steering adds (what /api/vector/get falls back to). */
void h_v1_sae_vector(http_req *r)
{
    json_t *body = http_json(r);
    const char *model = json_string_value(json_object_get(body, "model"));
    const char *source = json_string_value(json_object_get(body, "source"));
    int index = live_index(json_object_get(body, "index"));
    if (!model || !source || index < 0) {
        http_reply_error(r, 400, "invalid_field", "%s: required (model and source strings, index a non-negative integer)",
                         !model ? "model" : !source ? "source" : "index");
        return;
    }
    db_conn *c = http_db(r);
    if (!c) return;
    char idx[16];
    snprintf(idx, sizeof idx, "%d", index);
    PGresult *res = db_exec(c, DB_VECTOR_GET, (const char *const[]){model, source, idx});
    float *row = NULL;
    int n = 0, rc = 1;
    char err[600];
    if (db_kind(res) != DB_OK) {
        http_reply_db_error(r, res, "reading the SAE");
        PQclear(res);
        return;
    }
    if (PQntuples(res) && index < atoll(PQgetvalue(res, 0, 2)))
        rc = sae_file_decoder_row(PQgetvalue(res, 0, 0), index, &row, &n, err, sizeof err);
    if (rc > 0) {
        http_reply_error(r, 404, "not_found", "feature %s/%s/%d not found (registered ids: GET /api/saes)", model, source,
                         index);
    } else if (rc < 0) {
        live_reply_engine_error(r, "reading the SAE's weights", err);
    } else {
        json_t *a = json_array();
        for (int i = 0; i < n; i++) json_array_append_new(a, json_real(row[i]));
        live_reply(r, json_pack("{s:o,s:s}", "vector", a, "hookName", PQgetvalue(res, 0, 1)));
    }
    free(row);
    PQclear(res);
}
