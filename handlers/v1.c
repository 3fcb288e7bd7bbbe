/* v1.c: Neuronpedia's inference-server wire (apps/inference/openapi.json v1.9.0) as thin
 * adapters over the engine calls the /api routes use: GET /health, GET /v1/capabilities,
 * POST /v1/tokenize, /v1/activation/single[-batch], /v1/activation/topk-by-token[-batch],
 * /v1/activation/source and /v1/util/sae-vector (activation/all and all-batch: v1_all.c;
 * the cosine neighbours: v1_util.c; /initialize: v1_init.c). The route flag ROUTE_V1 gives
 * the wire's error shape ({"error": str}), 429 when busy and the X-SECRET-KEY check
 * (server/http.c). Fields are camelCase with snake_case accepted; unset optionals are left
 * out of replies. One process
 * serves many models: `model` is a registered model id and `source` one of its SAE ids (as
 * GET /api/saes lists them). A batch is 1..4 prompts, each answered as its single request. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/live.h"
#include "engine/sae.h"
#include "engine/tok_prompt.h"
#include "handlers/handlers.h"
#include "handlers/live.h"
#include "handlers/v1.h"

json_t *v1_field(json_t *body, const char *camel, const char *snake)
{
    json_t *v = json_object_get(body, camel);
    return v || !snake ? v : json_object_get(body, snake);
}

json_t *v1_body_or_reply(http_req *r)
{
    json_t *body = http_json(r);
    if (!json_is_object(body)) http_reply_error(r, 400, "invalid_body", "request body must be a JSON object");
    return json_is_object(body) ? body : NULL;
}

const char *v1_prompt_field(int batch, int i, char buf[32])
{
    snprintf(buf, 32, batch ? "prompts[%d]" : "prompt", i);
    return buf;
}

int v1_prompts_or_reply(http_req *r, json_t *body, int batch, const char **texts)
{
    json_t *v = json_object_get(body, batch ? "prompts" : "prompt");
    if (!batch) {
        texts[0] = json_string_value(v);
        if (texts[0] && *texts[0]) return 1;
        http_reply_error(r, 400, "invalid_field", "prompt: required, a non-empty string");
        return -1;
    }
    if (!json_is_array(v)) {
        http_reply_error(r, 400, "invalid_field", "prompts: required, an array of strings");
        return -1;
    }
    const size_t n = json_array_size(v);
    if (n == 0) {
        http_reply_error(r, 400, "invalid_field", "At least one prompt is required");
        return -1;
    }
    if (n > V1_MAX_BATCH) {
        http_reply_error(r, 400, "limit_exceeded", "Batch size %zu exceeds maximum of %d", n, V1_MAX_BATCH);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        texts[i] = json_string_value(json_array_get(v, i));
        if (!texts[i] || !*texts[i]) {
            http_reply_error(r, 400, "invalid_field", "prompts[%zu]: must be a non-empty string", i);
            return -1;
        }
    }
    return (int)n;
}

int v1_sae_or_reply(http_req *r, const char *model, const char *source, char **model_path, char **sae_path, int *d_sae,
                    int *max_tokens)
{
    db_conn *c = http_db(r);
    if (!c) return -1;
    PGresult *res = db_exec(c, DB_LIVE_SAE, (const char *const[]){model, source});
    int rc = -1;
    if (db_kind(res) != DB_OK) {
        http_reply_db_error(r, res, "looking up the SAE");
    } else if (PQntuples(res) == 0) {
        http_reply_error(r, 404, "not_found", "source %s of model %s not found (registered ids: GET /api/saes)", source,
                         model);
    } else {
        *model_path = strdup(PQgetvalue(res, 0, 0));
        *sae_path = strdup(PQgetvalue(res, 0, 1));
        *d_sae = atoi(PQgetvalue(res, 0, 2));
        *max_tokens = live_max_tokens(r, atoi(PQgetvalue(res, 0, 3)));
        if (*model_path && *sae_path) rc = 0;
        else http_reply_error(r, 500, "internal", "out of memory");
    }
    PQclear(res);
    return rc;
}

void v1_reply_results(http_req *r, int batch, json_t *results)
{
    if (batch) live_reply(r, json_pack("{s:o}", "results", results));
    else {
        live_reply(r, json_incref(json_array_get(results, 0)));
        json_decref(results);
    }
}

void h_v1_health(http_req *r) { http_reply_json(r, 200, json_pack("{s:s}", "status", "healthy")); }

/* The routes list is every ROUTE_V1 path of the route table (the steering ones included once
 * they are registered), so it cannot drift from what is served. */
void h_v1_capabilities(http_req *r)
{
    json_t *routes = json_array();
    for (int i = 0; i < http_n_routes; i++)
        if (http_routes[i].flags & ROUTE_V1 && strcmp(http_routes[i].pattern, "/health"))
            json_array_append_new(routes, json_string(http_routes[i].pattern));
    http_reply_json(r, 200, json_pack("{s:s,s:b,s:o}", "version", "1.9.0", "multiModel", 1, "routes", routes));
}

typedef struct v1_task {
    char *model_path, *sae_path;
    int index, max_tokens, prepend_bos, is_act, batch;
    int topk, ignore_bos;       /* activation/topk-by-token when topk > 0 */
    int source;                 /* activation/source */
    int n_texts;
    const char *texts[V1_MAX_BATCH]; /* borrowed from the request body */
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
 * with ignoreBos), as /api/search-topk-by-token finds them, without the density filter.
 * The prompt's result, or NULL after a reply. */
static json_t *v1_topk(http_req *r, const v1_task *t, const eng_ref *mr, const eng_ref *sr, const int32_t *ids, int T,
                       int bos)
{
    const int k = t->topk;
    int32_t *idx = malloc(sizeof(int32_t) * (size_t)T * k);
    float *val = malloc(sizeof(float) * (size_t)T * k);
    int *count = malloc(sizeof(int) * (size_t)T);
    char err[1024];
    json_t *out = NULL;
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
        out = json_pack("{s:o,s:o}", "tokens", live_token_strings(mr->tok, ids, T), "results", rows);
    }
    free(idx);
    free(val);
    free(count);
    return out;
}

/* activation/single: the feature's values without the leading BOS, as /api/activation/new
 * computes them. The prompt's result, or NULL after a reply. */
static json_t *v1_single(http_req *r, const v1_task *t, const eng_ref *mr, const eng_ref *sr, const int32_t *ids, int T,
                         int bos)
{
    live_values v;
    char err[1024];
    if (live_feature(mr->model, sr->sae, ids, T, t->index, bos, 0, &v, err, sizeof err)) {
        live_reply_engine_error(r, "computing activations", err);
        return NULL;
    }
    json_t *vals = json_array(), *special = json_array();
    for (int i = 0; i < v.n; i++) {
        json_array_append_new(vals, json_real(v.values[i]));
        json_array_append_new(special, json_boolean(tok_special_id(mr->tok, ids[v.first + i])));
    }
    json_t *out = json_pack("{s:{s:o,s:f,s:i},s:o,s:o}", "activation", "values", vals, "maxValue", (double)v.max,
                            "maxValueIndex", v.argmax < 0 ? 0 : v.argmax, "tokens",
                            live_token_strings(mr->tok, ids + v.first, v.n), "tokensIsSpecial", special);
    live_values_free(&v);
    return out;
}

/* activation/source: every non-zero activation after the BOS, {"<index>": [[token, value
 * rounded to 3 decimals], ...]} in token order, as upstream. The prompt's result, or NULL
 * after a reply. */
static json_t *v1_source(http_req *r, const eng_ref *mr, const eng_ref *sr, const int32_t *ids, int T)
{
    sae_sparse sp;
    char err[1024];
    if (live_sparse(mr->model, sr->sae, ids, T, &sp, err, sizeof err)) {
        live_reply_engine_error(r, "computing activations", err);
        return NULL;
    }
    json_t *m = json_object();
    for (int p = 1; p < sp.N; p++)
        for (int j = 0; j < sp.count[p]; j++) {
            char key[16];
            snprintf(key, sizeof key, "%d", sp.idx[sp.offset[p] + j]);
            json_t *list = json_object_get(m, key);
            if (!list) json_object_set_new(m, key, list = json_array());
            json_array_append_new(list, json_pack("[i,f]", p, round((double)sp.val[sp.offset[p] + j] * 1000) / 1000));
        }
    sae_sparse_free(&sp);
    return json_pack("{s:o,s:o}", "tokens", live_token_strings(mr->tok, ids, T), "activeFeatures", m);
}

static void v1_run(http_req *r, void *ud)
{
    v1_task *t = ud;
    saed_app *app = http_app(r);
    const eng_ref *mr = live_model_or_reply(r, t->model_path);
    const eng_ref *sr = mr && t->is_act ? live_sae_or_reply(r, t->sae_path) : NULL;
    json_t *results = json_array();
    if (!mr || (t->is_act && !sr)) goto done;
    const int bos = tok_prompt_bos(mr->tok);
    for (int i = 0; i < t->n_texts; i++) {
        char f[32];
        int T = 0;
        int32_t *ids = live_tokens_or_reply(r, mr->tok, t->texts[i], t->max_tokens,
                                            t->is_act ? v1_prompt_field(t->batch, i, f) : "text", &T);
        if (!ids) goto done;
        json_t *one;
        if (!t->is_act) {
            /* live_tokenize prepends the BOS as the inference server does; prependBos=false drops it. */
            int first = !t->prepend_bos && T > 0 && ids[0] == bos ? 1 : 0;
            one = json_pack("{s:o,s:o,s:b}", "tokens", ids_json(ids + first, T - first), "tokenStrings",
                            live_token_strings(mr->tok, ids + first, T - first), "prependBos", t->prepend_bos);
        } else {
            one = t->source ? v1_source(r, mr, sr, ids, T)
                  : t->topk ? v1_topk(r, t, mr, sr, ids, T, bos) : v1_single(r, t, mr, sr, ids, T, bos);
        }
        free(ids);
        if (!one) goto done;
        json_array_append_new(results, one);
    }
    v1_reply_results(r, t->batch, results);
    results = NULL;
done:
    json_decref(results);
    engines_put(app->engines, sr);
    engines_put(app->engines, mr);
    v1_task_free(t);
}

/* The request's texts and model paths into t; replies and returns -1 on a bad request. */
static int v1_prepare(http_req *r, v1_task *t)
{
    json_t *body = v1_body_or_reply(r);
    if (!body) return -1;
    const char *model = json_string_value(json_object_get(body, "model"));
    if (!model) {
        http_reply_error(r, 400, "invalid_field", "model: required, a registered model id (GET /api/models)");
        return -1;
    }
    if (!t->is_act) {
        t->texts[0] = json_string_value(json_object_get(body, "text"));
        if (!t->texts[0] || !*t->texts[0]) {
            http_reply_error(r, 400, "invalid_field", "text: required, a non-empty string");
            return -1;
        }
        t->n_texts = 1;
    } else if ((t->n_texts = v1_prompts_or_reply(r, body, t->batch, t->texts)) < 0) {
        return -1;
    }
    const char *source = NULL;
    if (t->is_act) {
        if (v1_field(body, "vector", NULL) || v1_field(body, "hook", NULL)) {
            http_reply_error(r, 400, "invalid_field", "vector/hook: not supported by saed; send source and index");
            return -1;
        }
        source = json_string_value(json_object_get(body, "source"));
        t->index = t->topk || t->source ? 0 : live_index(json_object_get(body, "index"));
        json_t *k = v1_field(body, "topK", "top_k"), *ib = v1_field(body, "ignoreBos", "ignore_bos");
        if (t->topk && k && !json_is_null(k) &&
            (!json_is_integer(k) || json_integer_value(k) < 1 || json_integer_value(k) > LIVE_MAX_TOPK_RESULTS)) {
            http_reply_error(r, 400, "invalid_field", "topK: an integer from 1 to %d", LIVE_MAX_TOPK_RESULTS);
            return -1;
        }
        if (t->topk && json_is_integer(k)) t->topk = (int)json_integer_value(k);
        t->ignore_bos = json_is_true(ib);
        if (!source || t->index < 0) {
            http_reply_error(r, 400, "invalid_field", "%s: required (source: an SAE id of the model; index: digits)",
                             source ? "index" : "source");
            return -1;
        }
    } else {
        json_t *pb = v1_field(body, "prependBos", "prepend_bos");
        if (pb && !json_is_null(pb) && !json_is_boolean(pb)) {
            http_reply_error(r, 400, "invalid_field", "prependBos: must be a boolean");
            return -1;
        }
        t->prepend_bos = !json_is_false(pb);
    }
    if (t->is_act) {
        int d_sae;
        if (v1_sae_or_reply(r, model, source, &t->model_path, &t->sae_path, &d_sae, &t->max_tokens)) return -1;
        if (t->index >= d_sae) {
            http_reply_error(r, 404, "not_found", "feature %s/%s/%d not found (the SAE has %d features)", model, source,
                             t->index, d_sae);
            return -1;
        }
        return 0;
    }
    db_conn *c = http_db(r);
    if (!c) return -1;
    PGresult *res = db_exec(c, DB_MODEL_PATH, (const char *const[]){model});
    int rc = -1;
    if (db_kind(res) != DB_OK) {
        http_reply_db_error(r, res, "looking up the model");
    } else if (PQntuples(res) == 0) {
        http_reply_error(r, 404, "not_found", "model %s not found (registered ids: GET /api/models)", model);
    } else if (!(t->model_path = strdup(PQgetvalue(res, 0, 0)))) {
        http_reply_error(r, 500, "internal", "out of memory");
    } else {
        t->max_tokens = live_max_tokens(r, 0);
        rc = 0;
    }
    PQclear(res);
    return rc;
}

static void v1_start(http_req *r, int is_act, int topk, int batch, int source)
{
    v1_task *t = calloc(1, sizeof *t);
    if (!t) {
        http_reply_error(r, 500, "internal", "out of memory");
        return;
    }
    t->is_act = is_act;
    t->topk = topk;
    t->batch = batch;
    t->source = source;
    if (v1_prepare(r, t) || http_defer(r, v1_run, t)) v1_task_free(t);
}

void h_v1_tokenize(http_req *r) { v1_start(r, 0, 0, 0, 0); }
void h_v1_activation_single(http_req *r) { v1_start(r, 1, 0, 0, 0); }
void h_v1_activation_single_batch(http_req *r) { v1_start(r, 1, 0, 1, 0); }
/* topK defaults to 5, as upstream's. */
void h_v1_topk_by_token(http_req *r) { v1_start(r, 1, 5, 0, 0); }
void h_v1_topk_by_token_batch(http_req *r) { v1_start(r, 1, 5, 1, 0); }
void h_v1_activation_source(http_req *r) { v1_start(r, 1, 0, 1, 1); }

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
