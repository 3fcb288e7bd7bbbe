/* steer.c: Neuronpedia's steering routes. POST /api/steer validates the request here and runs
 * it on the compute pool (http_defer); the work itself is server/steer.c. With "stream": true
 * the reply is text/event-stream: one `data: <SteerResult>` event per generated token with the
 * texts so far, the last one equal to the non-stream reply. GET /api/steer/{id} returns a stored
 * result. POST /api/steer-chat is the same over two conversations (DEFAULT's and STEERED's),
 * rendered with the model's chat template, in Neuronpedia's chat result shape. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers/handlers.h"
#include "server/log.h"
#include "server/steer.h"

#define STEER_MAX_PROMPT_CHARS 2048
#define STEER_MAX_TOKENS 256

typedef struct steer_task {
    steer_req q;
    char *prompt;
    json_t *chat[2];     /* steer-chat: the conversations (q.chat borrows them) */
    bool stream;
} steer_task;

static void task_free(steer_task *t)
{
    if (!t) return;
    free(t->prompt);
    json_decref(t->chat[0]);
    json_decref(t->chat[1]);
    free(t);
}

/* ---- request parsing ---- */

static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

/* A number field within [lo, hi]; absent → def (when has_def) or an error. 0, or -1 with msg. */
static int num_field(json_t *body, const char *name, double lo, double hi, bool has_def, double def, double *out,
                     char *msg, size_t n)
{
    json_t *v = json_object_get(body, name);
    if (!v || json_is_null(v)) {
        if (has_def) {
            *out = def;
            return 0;
        }
        snprintf(msg, n, "%s: required number", name);
        return -1;
    }
    if (!json_is_number(v)) {
        snprintf(msg, n, "%s: expected a number", name);
        return -1;
    }
    double x = json_number_value(v);
    if (!(x >= lo && x <= hi)) {
        snprintf(msg, n, "%s: %g is outside %g…%g", name, x, lo, hi);
        return -1;
    }
    *out = x;
    return 0;
}

static int int_field(json_t *body, const char *name, int lo, int hi, bool has_def, int def, int *out, char *msg, size_t n)
{
    double x;
    if (num_field(body, name, lo, hi, has_def, def, &x, msg, n)) return -1;
    if (x != floor(x)) {
        snprintf(msg, n, "%s: expected an integer, got %g", name, x);
        return -1;
    }
    *out = (int)x;
    return 0;
}

static int parse_features(json_t *arr, steer_req *q, char *msg, size_t n)
{
    if (!json_is_array(arr) || json_array_size(arr) == 0) {
        snprintf(msg, n, "features: required non-empty array of {modelId, layer, index, strength}");
        return -1;
    }
    if (json_array_size(arr) > STEER_MAX_FEATURES) {
        snprintf(msg, n, "features: at most %d, got %zu", STEER_MAX_FEATURES, json_array_size(arr));
        return -1;
    }
    size_t i;
    json_t *f;
    json_array_foreach(arr, i, f) {
        steer_feature *sf = &q->features[i];
        const char *model = json_string_value(json_object_get(f, "modelId"));
        const char *layer = json_string_value(json_object_get(f, "layer"));
        json_t *strength = json_object_get(f, "strength");
        if (!json_is_object(f) || !model || !layer || !json_is_number(strength)) {
            snprintf(msg, n, "features[%zu]: expected {modelId: string, layer: string, index, strength: number}", i);
            return -1;
        }
        if (strcmp(model, q->model_id)) {
            snprintf(msg, n, "features[%zu].modelId: '%s' is not the request's modelId '%s' (steer one model at a time)", i,
                     model, q->model_id);
            return -1;
        }
        char idx[16];
        if (np_index_canon(json_object_get(f, "index"), idx)) {
            snprintf(msg, n, "features[%zu].index: expected a non-negative integer (or a string of one)", i);
            return -1;
        }
        snprintf(sf->index, sizeof sf->index, "%s", idx); /* at most 9 digits */
        if (strlen(layer) >= sizeof sf->layer) {
            snprintf(msg, n, "features[%zu].layer: longer than %zu characters", i, sizeof sf->layer - 1);
            return -1;
        }
        snprintf(sf->layer, sizeof sf->layer, "%s", layer);
        sf->strength = json_number_value(strength);
        if (!isfinite(sf->strength * q->strength_multiplier)) {
            snprintf(msg, n, "features[%zu].strength: %g × strength_multiplier is not a finite number", i, sf->strength);
            return -1;
        }
        for (size_t j = 0; j < i; j++)
            if (!strcmp(q->features[j].layer, sf->layer) && !strcmp(q->features[j].index, sf->index)) {
                snprintf(msg, n, "features[%zu]: %s/%s is already features[%zu]", i, sf->layer, sf->index, j);
                return -1;
            }
        q->nfeatures++;
    }
    return 0;
}

/* The fields /api/steer and /api/steer-chat share: modelId, features, the numbers,
 * steer_method and stream. 0, or -1 with msg. */
static int parse_common(json_t *body, steer_task *t, char *msg, size_t n)
{
    steer_req *q = &t->q;
    const char *model = json_string_value(json_object_get(body, "modelId"));
    json_t *method = json_object_get(body, "steer_method"), *stream = json_object_get(body, "stream");
    if (!model || !*model) snprintf(msg, n, "modelId: required string");
    else if (strlen(model) >= sizeof q->model_id) snprintf(msg, n, "modelId: longer than %zu characters", sizeof q->model_id - 1);
    else if (method && !json_is_null(method) && (!json_is_string(method) || steer_method_parse(json_string_value(method)) < 0))
        snprintf(msg, n, "steer_method: expected SIMPLE_ADDITIVE or ORTHOGONAL_DECOMP%s",
                 json_is_string(method) && !strcmp(json_string_value(method), "PROJECTION_CAP")
                     ? " (PROJECTION_CAP is not supported)" : "");
    else if (stream && !json_is_null(stream) && !json_is_boolean(stream)) snprintf(msg, n, "stream: expected a boolean");
    else msg[0] = '\0';
    if (msg[0]) return -1;
    snprintf(q->model_id, sizeof q->model_id, "%s", model);
    q->method = method && json_is_string(method) ? (steer_method)steer_method_parse(json_string_value(method)) : STEER_ADDITIVE;
    t->stream = json_is_true(stream);
    if (num_field(body, "temperature", 0, 2, false, 0, &q->temperature, msg, n) ||
        int_field(body, "n_tokens", 1, STEER_MAX_TOKENS, false, 0, &q->n_tokens, msg, n) ||
        num_field(body, "seed", -1e8, 1e8, false, 0, &q->seed, msg, n) ||
        num_field(body, "strength_multiplier", 0, 10, false, 0, &q->strength_multiplier, msg, n) ||
        num_field(body, "freq_penalty", -2, 2, true, 1, &q->freq_penalty, msg, n) ||
        int_field(body, "n_logprobs", 0, 10, true, 0, &q->n_logprobs, msg, n) ||
        parse_features(json_object_get(body, "features"), q, msg, n))
        return -1;
    return 0;
}

static steer_task *parse_steer(json_t *body, char *msg, size_t n)
{
    steer_task *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(msg, n, "out of memory");
        return NULL;
    }
    const char *prompt = json_string_value(json_object_get(body, "prompt"));
    if (!json_is_object(body)) snprintf(msg, n, "request body must be a JSON object");
    else if (!prompt || !*prompt) snprintf(msg, n, "prompt: required non-empty string");
    else if (utf8_chars(prompt) > STEER_MAX_PROMPT_CHARS)
        snprintf(msg, n, "prompt: %zu characters, at most %d", utf8_chars(prompt), STEER_MAX_PROMPT_CHARS);
    else msg[0] = '\0';
    if (msg[0] || parse_common(body, t, msg, n)) goto bad;
    if (!(t->prompt = strdup(prompt))) {
        snprintf(msg, n, "out of memory");
        goto bad;
    }
    t->q.prompt = t->prompt;
    return t;
bad:
    task_free(t);
    return NULL;
}

/* A conversation: a non-empty array of {role, content} with Neuronpedia's roles, at most
 * STEER_MAX_PROMPT_CHARS characters of content in all. A copy of just those fields, or NULL
 * with msg. */
static json_t *parse_messages(json_t *body, const char *name, char *msg, size_t n)
{
    static const char *const roles[] = {"user", "assistant", "system", "model", "developer"};
    json_t *arr = json_object_get(body, name), *out = json_array(), *m;
    size_t i, chars = 0;
    if (!json_is_array(arr) || json_array_size(arr) == 0) {
        snprintf(msg, n, "%s: required non-empty array of {role, content}", name);
        goto bad;
    }
    json_array_foreach(arr, i, m) {
        const char *role = json_string_value(json_object_get(m, "role"));
        const char *content = json_string_value(json_object_get(m, "content"));
        if (!role || !content) {
            snprintf(msg, n, "%s[%zu]: expected {role: string, content: string}", name, i);
            goto bad;
        }
        size_t r = 0;
        while (r < 5 && strcmp(role, roles[r])) r++;
        if (r == 5) {
            snprintf(msg, n, "%s[%zu].role: '%s' is not one of user, assistant, system, model, developer", name, i, role);
            goto bad;
        }
        chars += utf8_chars(content);
        json_array_append_new(out, json_pack("{s:s,s:s}", "role", role, "content", content));
    }
    if (chars > STEER_MAX_PROMPT_CHARS) {
        snprintf(msg, n, "%s: %zu characters of content, at most %d", name, chars, STEER_MAX_PROMPT_CHARS);
        goto bad;
    }
    if (json_array_size(out) == json_array_size(arr)) return out;
    snprintf(msg, n, "out of memory");
bad:
    json_decref(out);
    return NULL;
}

static steer_task *parse_steer_chat(json_t *body, char *msg, size_t n)
{
    steer_task *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(msg, n, "out of memory");
        return NULL;
    }
    json_t *special = json_object_get(body, "steer_special_tokens");
    if (!json_is_object(body)) {
        snprintf(msg, n, "request body must be a JSON object");
        goto bad;
    }
    if (!(t->chat[STEER_DEFAULT] = parse_messages(body, "defaultChatMessages", msg, n)) ||
        !(t->chat[STEER_STEERED] = parse_messages(body, "steeredChatMessages", msg, n)))
        goto bad;
    if (!json_is_boolean(special)) {
        snprintf(msg, n, "steer_special_tokens: required boolean");
        goto bad;
    }
    if (parse_common(body, t, msg, n)) goto bad;
    t->q.chat[0] = t->chat[0];
    t->q.chat[1] = t->chat[1];
    t->q.steer_special = json_is_true(special);
    t->q.prompt = "";
    return t;
bad:
    task_free(t);
    return NULL;
}

/* ---- replies ---- */

/* Neuronpedia's SteerResult; id and shareUrl are null until the outputs are stored. */
static json_t *result_json(const char *steered, const char *deflt, json_t *slp, json_t *dlp, const char *id)
{
    char share[128];
    if (id) snprintf(share, sizeof share, "/api/steer/%s", id);
    return json_pack("{s:s,s:s,s:O?,s:O?,s:s?,s:s?,s:n}", "STEERED", steered, "DEFAULT", deflt, "steeredLogProbs", slp,
                     "defaultLogProbs", dlp, "id", id, "shareUrl", id ? share : NULL, "limit");
}

/* steer-chat's result for one run: raw = the rendered prompt and the generation, chatTemplate =
 * the conversation with the generated assistant turn. */
static json_t *chat_run_json(json_t *msgs, const char *prompt, const char *text, json_t *lp)
{
    size_t a = strlen(prompt), b = strlen(text);
    char *raw = malloc(a + b + 1);
    json_t *chat = json_deep_copy(msgs);
    if (!raw || !chat) {
        free(raw);
        json_decref(chat);
        return NULL;
    }
    memcpy(raw, prompt, a);
    memcpy(raw + a, text, b + 1);
    json_array_append_new(chat, json_pack("{s:s,s:s}", "role", "assistant", "content", text));
    json_t *j = json_pack("{s:s,s:o,s:O?}", "raw", raw, "chatTemplate", chat, "logprobs", lp ? lp : json_null());
    free(raw);
    return j;
}

/* The answer to a task: SteerResult for /api/steer, the chat shape for /api/steer-chat. */
static json_t *reply_json(const steer_task *t, const steer_plan *p, const char *steered, const char *deflt, json_t *slp,
                          json_t *dlp, const char *id)
{
    if (!t->chat[0]) return result_json(steered, deflt, slp, dlp, id);
    const steer_req *q = &t->q;
    char share[128];
    if (id) snprintf(share, sizeof share, "/api/steer/%s", id);
    json_t *s = chat_run_json(t->chat[STEER_STEERED], steer_plan_rendered(p, STEER_STEERED), steered, slp);
    json_t *d = chat_run_json(t->chat[STEER_DEFAULT], steer_plan_rendered(p, STEER_DEFAULT), deflt, dlp);
    return json_pack("{s:o?,s:o?,s:s?,s:s?,s:n,s:{s:f,s:i,s:f,s:f,s:f,s:b,s:s}}", "STEERED", s, "DEFAULT", d, "id", id,
                     "shareUrl", id ? share : NULL, "limit", "settings", "temperature", q->temperature, "n_tokens",
                     q->n_tokens, "freq_penalty", q->freq_penalty, "seed", q->seed, "strength_multiplier",
                     q->strength_multiplier, "steer_special_tokens", q->steer_special, "steer_method",
                     steer_method_name(q->method));
}

int sse_send(http_stream *st, const char *event, json_t *j, bool supersede)
{
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(j);
    if (!s) return -1;
    size_t len = strlen(s), cap = len + 64;
    char *buf = malloc(cap);
    int rc = -1;
    if (buf) {
        int k = snprintf(buf, cap, "%s%s%sdata: %s\n\n", event ? "event: " : "", event ? event : "", event ? "\n" : "", s);
        rc = http_stream_write(st, buf, (size_t)k, supersede);
    }
    free(buf);
    free(s);
    return rc;
}

typedef struct stream_ctx {
    http_stream *st;
    const steer_task *t;
    const steer_plan *p;
} stream_ctx;

static int on_progress(void *ud, const char *steered, const char *deflt)
{
    stream_ctx *x = ud;
    if (http_stream_closed(x->st)) return 1;
    return sse_send(x->st, NULL, reply_json(x->t, x->p, steered, deflt, NULL, NULL, NULL), true) ? 1 : 0;
}

static void stream_error(http_stream *st, const svc_err *e)
{
    json_t *j = json_pack("{s:{s:s,s:s},s:s}", "error", "code", e->code, "message", e->msg, "message", e->msg);
    if (j) sse_send(st, "error", j, false);
}

static void run_stream(saed_app *app, http_req *r, const steer_task *t, steer_plan *p)
{
    http_stream *st = http_reply_stream(r, 200, "text/event-stream");
    if (!st) return;
    /* r is MHD's from here on: the store takes its own database connection. */
    steer_out out;
    svc_err e;
    stream_ctx x = {st, t, p};
    if (steer_generate(p, on_progress, &x, &out, &e)) {
        if (strcmp(e.code, "cancelled")) stream_error(st, &e);
        else log_info("steering stream: client went away; generation stopped");
        http_stream_end(st);
        return;
    }
    enum db_acquire_err why;
    char err[256];
    db_conn *c = db_acquire(app->pool, app->cfg->db_wait_ms, &why, err, sizeof err);
    if (!c) {
        e.kind = SVC_UNAVAILABLE;
        snprintf(e.code, sizeof e.code, "database_unavailable");
        snprintf(e.msg, sizeof e.msg, "database unavailable while storing the outputs");
        stream_error(st, &e);
    } else if (steer_store(c, p, &out, &e)) {
        stream_error(st, &e);
    } else {
        sse_send(st, NULL,
                   reply_json(t, p, out.text[STEER_STEERED], out.text[STEER_DEFAULT], out.logprobs[STEER_STEERED],
                              out.logprobs[STEER_DEFAULT], out.id),
                   false);
    }
    if (c) db_release(app->pool, c);
    steer_out_free(&out);
    http_stream_end(st);
}

static void run_steer(http_req *r, void *ud)
{
    steer_task *t = ud;
    saed_app *app = http_app(r);
    svc_err e;
    db_conn *c = http_db(r);
    steer_plan *p = c ? steer_prepare(app, c, &t->q, &e) : NULL;
    if (c && !p) reply_svc(r, &e);
    if (p && t->stream) {
        run_stream(app, r, t, p);
    } else if (p) {
        steer_out out;
        if (steer_generate(p, NULL, NULL, &out, &e)) {
            reply_svc(r, &e);
        } else {
            json_t *j = NULL;
            if (steer_store(c, p, &out, &e)) reply_svc(r, &e);
            else if (!(j = reply_json(t, p, out.text[STEER_STEERED], out.text[STEER_DEFAULT], out.logprobs[STEER_STEERED],
                                      out.logprobs[STEER_DEFAULT], out.id)))
                http_reply_error(r, 500, "internal", "out of memory");
            else http_reply_json(r, 200, j);
            steer_out_free(&out);
        }
    }
    steer_plan_free(p);
    task_free(t);
}

void h_steer(http_req *r)
{
    char msg[600];
    steer_task *t = parse_steer(http_json(r), msg, sizeof msg);
    if (!t) {
        http_reply_error(r, 400, "invalid_field", "%s", msg);
        return;
    }
    if (http_defer(r, run_steer, t)) task_free(t);
}

void h_steer_get(http_req *r)
{
    const char *id = http_param(r, "id");
    if (strlen(id) > 64 || strspn(id, "0123456789abcdefABCDEF-") != strlen(id)) {
        http_reply_error(r, 404, "not_found", "steering result '%s' not found", id);
        return;
    }
    db_conn *c = http_db(r);
    if (!c) return;
    PGresult *res = db_exec(c, DB_STEER_GET, (const char *const[]){id});
    if (db_kind(res) != DB_OK) http_reply_db_error(r, res, "reading the steering result");
    else if (PQntuples(res) == 0) http_reply_error(r, 404, "not_found", "steering result '%s' not found", id);
    else reply_json_text(r, 200, PQgetvalue(res, 0, 0));
    PQclear(res);
}

void h_steer_chat(http_req *r)
{
    char msg[600];
    steer_task *t = parse_steer_chat(http_json(r), msg, sizeof msg);
    if (!t) {
        http_reply_error(r, 400, "invalid_field", "%s", msg);
        return;
    }
    if (http_defer(r, run_steer, t)) task_free(t);
}
