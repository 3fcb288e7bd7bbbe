/* autointerp.c: scoring and explaining on request. POST /api/explanation/score (saed's, in the
 * shape of Neuronpedia's legacy scorer) and Neuronpedia's autointerp-server routes
 * /v1/explain/default, /v1/score/fuzz-detection and /v1/score/embedding. The LLM requests run
 * on the HTTP thread (they wait on the network, not on a core). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers/handlers.h"
#include "server/autointerp.h"
#include "server/job_autointerp.h"

/* The LLM of a request: {baseUrl, model, apiKeyEnv?} in obj, else SAED_LLM_BASE_URL and
 * SAED_LLM_MODEL; key (when not NULL) is the caller's own. NULL after replying an error. */
static llm_client *client_or_reply(http_req *r, json_t *obj, const char *model_override, const char *key, llm_budget *b)
{
    const saed_config *cfg = http_app(r)->cfg;
    const char *url = json_string_value(json_object_get(obj, "baseUrl"));
    const char *model = model_override ? model_override : json_string_value(json_object_get(obj, "model"));
    if (!url) url = cfg->llm_base_url[0] ? cfg->llm_base_url : NULL;
    if (!model) model = cfg->llm_model[0] ? cfg->llm_model : NULL;
    if (!url || !model) {
        http_reply_error(r, 503, "no_llm", "no LLM configured: give scorer.baseUrl and scorer.model, or set "
                                           "SAED_LLM_BASE_URL and SAED_LLM_MODEL");
        return NULL;
    }
    char k[1024] = "", err[300];
    if (!key && ai_api_key(cfg, json_string_value(json_object_get(obj, "apiKeyEnv")), k, sizeof k, err, sizeof err)) {
        http_reply_error(r, 400, "invalid_field", "%s", err);
        return NULL;
    }
    llm_opts o = {.base_url = url, .model = model, .api_key = key ? key : k, .timeout_s = cfg->llm_timeout_s,
                  .retries = cfg->llm_retries, .budget = b};
    b->max_requests = 1000;   /* one request's scoring never needs more */
    llm_client *c = llm_new(&o);
    memset(k, 0, sizeof k);
    return c;
}

static int records_or_reply(http_req *r, json_t *body, ai_recs *rs)
{
    char err[300];
    if (ai_recs_from_json(json_object_get(body, "activations"), "activations", rs, err, sizeof err)) {
        http_reply_error(r, 400, "invalid_field", "%s", err);
        return -1;
    }
    return 0;
}

static void reply_llm_error(http_req *r, int rc, const char *err)
{
    http_reply_error(r, 502, rc == LLM_BUDGET ? "llm_budget" : "llm_failed", "the LLM request failed: %s", err);
}

void h_explanation_score(http_req *r)
{
    json_t *body = http_json(r);
    const char *expl = json_string_value(json_object_get(body, "explanation"));
    const char *mname = json_string_value(json_object_get(body, "method"));
    enum ai_scorer s = AI_SCORE_SIMULATION;
    const char *tn;
    if (!expl || !*expl) {
        http_reply_error(r, 400, "invalid_field", "explanation: required non-empty string");
        return;
    }
    if (mname && ai_scorer_parse(mname, &s, &tn)) {
        http_reply_error(r, 400, "invalid_field", "method: expected simulation, fuzz, detection or recall_alt");
        return;
    }
    ai_recs rs;
    if (records_or_reply(r, body, &rs)) return;
    llm_budget b = {0};
    llm_client *c = client_or_reply(r, json_object_get(body, "scorer"), NULL, NULL, &b);
    if (c) {
        double score;
        json_t *details;
        char err[1024];
        int rc = ai_score(c, s, expl, rs.r, rs.n, &score, &details, err, sizeof err);
        if (rc != LLM_OK) {
            reply_llm_error(r, rc, err);
            json_decref(details);
        } else {
            json_object_set_new(details, "score", ai_json_score(score));
            http_reply_json(r, 200, details);
        }
        llm_free(c);
    }
    ai_recs_free(&rs);
}

/* Neuronpedia's autointerp server takes camelCase and snake_case. */
static const char *str2(json_t *b, const char *camel, const char *snake)
{
    const char *v = json_string_value(json_object_get(b, camel));
    return v ? v : json_string_value(json_object_get(b, snake));
}

void h_v1_explain_default(http_req *r)
{
    json_t *body = http_json(r);
    const char *key = str2(body, "openrouterKey", "openrouter_key"), *model = json_string_value(json_object_get(body, "model"));
    if (!key || !model) {
        http_reply_error(r, 400, "invalid_field", "%s: required string", key ? "model" : "openrouterKey");
        return;
    }
    ai_recs rs;
    if (records_or_reply(r, body, &rs)) return;
    llm_budget b = {0};
    llm_client *c = client_or_reply(r, NULL, model, key, &b);
    if (c) {
        char out[2048], err[1024];
        int rc = ai_explain(c, AI_EXPLAIN_DELPHI, rs.r, rs.n, NULL, 1.0, out, sizeof out, err, sizeof err);
        if (rc != LLM_OK) reply_llm_error(r, rc, err);
        else http_reply_json(r, 200, json_pack("{s:s}", "explanation", out));
        llm_free(c);
    }
    ai_recs_free(&rs);
}

void h_v1_score_fuzz_detection(http_req *r)
{
    json_t *body = http_json(r);
    const char *key = str2(body, "openrouterKey", "openrouter_key"), *model = json_string_value(json_object_get(body, "model"));
    const char *expl = json_string_value(json_object_get(body, "explanation"));
    const char *type = json_string_value(json_object_get(body, "type"));
    if (!key || !model || !expl) {
        http_reply_error(r, 400, "invalid_field", "%s: required string", !key ? "openrouterKey" : !model ? "model" : "explanation");
        return;
    }
    if (!type || (strcmp(type, "FUZZ") && strcmp(type, "DETECTION"))) {
        http_reply_error(r, 400, "invalid_field", "type: expected FUZZ or DETECTION");
        return;
    }
    ai_recs rs;
    if (records_or_reply(r, body, &rs)) return;
    int pos = 0;
    for (int i = 0; i < rs.n; i++) {
        double s = 0;
        for (int k = 0; k < rs.r[i].n; k++) s += rs.r[i].val[k];
        pos += s > 0;
    }
    if (pos == 0 || pos == rs.n) {
        http_reply_error(r, 400, "invalid_field", "activations: need both activating (sum of values > 0) and non-activating records");
        ai_recs_free(&rs);
        return;
    }
    llm_budget b = {0};
    llm_client *c = client_or_reply(r, NULL, model, key, &b);
    if (c) {
        double score;
        json_t *d;
        char err[1024];
        int rc = ai_score(c, strcmp(type, "FUZZ") ? AI_SCORE_DETECTION : AI_SCORE_FUZZ, expl, rs.r, rs.n, &score, &d, err, sizeof err);
        if (rc != LLM_OK) reply_llm_error(r, rc, err);
        else if (!isfinite(score)) http_reply_error(r, 400, "undefined_score", "no usable predictions: every batch's reply failed to parse");
        else http_reply_json(r, 200, json_pack("{s:f,s:O}", "score", score, "breakdown", json_object_get(d, "breakdown")));
        json_decref(d);
        llm_free(c);
    }
    ai_recs_free(&rs);
}

void h_v1_score_embedding(http_req *r)
{
    http_reply_error(r, 501, "not_implemented",
                     "no embedding model is configured: embedding scoring needs a sentence-embedding model, which saed does not load; use "
                     "/v1/score/fuzz-detection or POST /api/explanation/score");
}
