/* live.c: see live.h. */
#include "handlers/live.h"

#include <math.h>     // defines: NAN, pow
#include <stdio.h>    // defines: snprintf, open_memstream
#include <stdlib.h>   // defines: malloc, free, strtol
#include <string.h>   // defines: strlen, strspn

#include "engine/live.h"
#include "handlers/handlers.h"
#include "server/log.h"
#include "server/wire_case.h"

void live_reply_not_found(http_req *r)
{
    http_reply_error(r, 404, "not_found",
                     "The model, source, or feature you specified is not available. Check the model id, the source "
                     "(SAE id) and the index against GET /api/saes.");
}

int live_index(json_t *v)
{
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        return i >= 0 && i <= 999999999 ? (int)i : -1;
    }
    if (!json_is_string(v)) return -1;
    const char *s = json_string_value(v);
    size_t n = strlen(s);
    if (n == 0 || n > 9 || strspn(s, "0123456789") != n) return -1;
    return (int)strtol(s, NULL, 10);
}

int live_texts_or_reply(http_req *r, json_t *v, const char *field, const char **texts, int *is_array)
{
    *is_array = json_is_array(v);
    if (json_is_string(v)) {
        if (json_string_length(v) == 0) {
            http_reply_error(r, 400, "invalid_field", "%s: must not be empty", field);
            return -1;
        }
        texts[0] = json_string_value(v);
        return 1;
    }
    if (!*is_array) {
        http_reply_error(r, 400, "invalid_field", "%s: required, a string or an array of strings", field);
        return -1;
    }
    size_t n = json_array_size(v);
    if (n == 0) {
        http_reply_error(r, 400, "invalid_field", "%s: the array is empty", field);
        return -1;
    }
    if (n > LIVE_MAX_TEXTS) {
        http_reply_error(r, 400, "limit_exceeded", "%s: %zu texts, more than the limit of %d per request", field, n,
                         LIVE_MAX_TEXTS);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *t = json_array_get(v, i);
        if (!json_is_string(t) || json_string_length(t) == 0) {
            http_reply_error(r, 400, "invalid_field", "%s[%zu]: must be a non-empty string", field, i);
            return -1;
        }
        texts[i] = json_string_value(t);
    }
    return (int)n;
}

int live_max_tokens(http_req *r, int context_size)
{
    int lim = http_app(r)->cfg->max_text_tokens;
    return context_size > 0 && context_size < lim ? context_size : lim;
}

const eng_ref *live_model_or_reply(http_req *r, const char *path)
{
    char err[1024];
    const eng_ref *e = engines_model(http_app(r)->engines, path, err, sizeof err);
    if (!e) {
        log_error("loading model %s: %s [%s]", path, err, http_request_id(r));
        http_reply_error(r, 500, "model_unreadable", "the registered model's files no longer load (request id %s)",
                         http_request_id(r));
    }
    return e;
}

const eng_ref *live_sae_or_reply(http_req *r, const char *path)
{
    char err[1024];
    const eng_ref *e = engines_sae(http_app(r)->engines, path, err, sizeof err);
    if (!e) {
        log_error("loading SAE %s: %s [%s]", path, err, http_request_id(r));
        http_reply_error(r, 500, "sae_unreadable", "the registered SAE's files no longer load (request id %s)",
                         http_request_id(r));
    }
    return e;
}

int32_t *live_tokens_or_reply(http_req *r, const tokenizer *t, const char *text, int max_tokens, const char *field,
                              int *T)
{
    char err[512];
    int32_t *ids = NULL;
    int n = live_tokenize(t, text, strlen(text), max_tokens, &ids, err, sizeof err);
    if (n == -2) {
        http_reply_error(r, 400, "limit_exceeded",
                         "%s: more than %d tokens (BOS included); the limit is SAED_MAX_TEXT_TOKENS or the model's "
                         "context, whichever is smaller",
                         field, max_tokens);
        return NULL;
    }
    if (n < 0) {
        live_reply_engine_error(r, "tokenizing", err);
        return NULL;
    }
    *T = n;
    return ids;
}

json_t *live_token_strings(const tokenizer *t, const int32_t *ids, int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++) {
        char *s = tok_token_str(t, ids[i]);
        json_array_append_new(a, json_string(s ? s : ""));
        free(s);
    }
    return a;
}

float *live_density_or_reply(http_req *r, const char *model_id, const char *sae_id, const sae *s)
{
    const int S = sae_config(s)->d_sae;
    float *d = malloc(sizeof(float) * (size_t)S);
    if (!d) {
        http_reply_error(r, 500, "internal", "out of memory");
        return NULL;
    }
    for (int i = 0; i < S; i++) d[i] = NAN;
    db_conn *c = http_db(r);
    if (!c) {
        free(d);
        return NULL;
    }
    PGresult *res = db_exec(c, DB_LIVE_DENSITY, (const char *const[]){model_id, sae_id});
    if (db_kind(res) != DB_OK) {
        http_reply_db_error(r, res, "reading feature densities");
        PQclear(res);
        free(d);
        return NULL;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        long ix = strtol(PQgetvalue(res, i, 0), NULL, 10);
        if (ix >= 0 && ix < S) d[ix] = strtof(PQgetvalue(res, i, 1), NULL);
    }
    PQclear(res);
    const float *ls = sae_log_sparsity(s);
    if (ls)
        for (int i = 0; i < S; i++)
            if (isnan(d[i])) d[i] = (float)pow(10.0, ls[i]);
    return d;
}

void live_reply(http_req *r, json_t *body)
{
    char *s = http_v1_snake(r) && !wire_snake_keys(body)
                  ? NULL
                  : json_dumps(body, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(9));
    json_decref(body);
    if (!s) {
        http_reply_error(r, 500, "internal", "could not encode the response");
        return;
    }
    reply_json_text(r, 200, s);
    free(s);
}

void live_reply_engine_error(http_req *r, const char *what, const char *err)
{
    log_error("%s: %s [%s]", what, err, http_request_id(r));
    http_reply_error(r, 500, "internal", "internal error while %s (request id %s)", what, http_request_id(r));
}

char *live_pg_array(const char *const *items, int n)
{
    size_t len = 3;
    for (int i = 0; i < n; i++) len += strlen(items[i]) + 3;
    char *s = malloc(len), *p = s;
    if (!s) return NULL;
    *p++ = '{';
    for (int i = 0; i < n; i++) p += sprintf(p, "%s\"%s\"", i ? "," : "", items[i]);
    *p++ = '}';
    *p = '\0';
    return s;
}
