/* v1_steer.c: Neuronpedia's inference-server steering routes (apps/inference, v1.9.0):
 * POST /v1/steer/completion, POST /v1/steer/completion-chat and GET /v1/steer/health, as
 * adapters over the engine /api/steer uses (server/steer.c). What the wire does differently
 * from /api/steer is converted here: `types` picks and orders the runs, `vectors` steer with
 * raw vectors at a named hook, `normalizeSteering` unit-normalizes each vector, freqPenalty is
 * accepted and ignored (upstream's current backend ignores it: temperature-only sampling), the
 * seed is truncated to an integer as upstream's int(seed), and nothing is stored. With
 * "stream": true the answer is server-sent events framed as upstream frames them:
 * `data: <response JSON>\n\n` after every token with the texts so far (cumulative), the last
 * frame equal to the non-stream answer, no terminator. Not here: PROJECTION_CAP and the
 * assistant axis (refused with 400). */
#include <math.h>     // defines: isfinite, trunc
#include <stdio.h>    // defines: snprintf
#include <stdlib.h>   // defines: calloc, free
#include <string.h>   // defines: strcmp

#include "handlers/handlers.h"
#include "server/compute.h" // defines: compute_stats
#include "server/log.h"
#include "server/steer.h"
#include "server/wire_case.h" // defines: wire_snake_keys

#define V1S_MAX_TYPES 16
#define V1S_MAX_TOKENS 100000 /* the model's context bounds it first */

typedef struct v1s_task {
    steer_req q;
    char *prompt;                          /* completion: the prompt */
    json_t *chat;                          /* chat: the messages [{role, content}] as given */
    steer_vec vec[STEER_MAX_FEATURES];
    float *vals;                           /* every vector's values, one after another */
    int types[V1S_MAX_TYPES], ntypes;      /* STEER_STEERED / STEER_DEFAULT in request order */
    bool stream;
} v1s_task;

static void task_free(v1s_task *t)
{
    if (!t) return;
    free(t->prompt);
    json_decref(t->chat);
    free(t->vals);
    free(t);
}

/* ---- request ---- */

/* body[camel], else body[snake]; JSON null counts as absent (pydantic's Optional). */
static json_t *get(json_t *obj, const char *camel, const char *snake)
{
    json_t *v = json_object_get(obj, camel);
    if ((!v || json_is_null(v)) && snake) v = json_object_get(obj, snake);
    return v && !json_is_null(v) ? v : NULL;
}

/* A finite number ≥ lo (lo = -INFINITY: any); required unless def is given (has_def). */
static int num(json_t *body, const char *camel, const char *snake, double lo, bool has_def, double def, double *out,
               char *msg, size_t n)
{
    json_t *v = get(body, camel, snake);
    if (!v) {
        if (has_def) return *out = def, 0;
        return snprintf(msg, n, "%s: required number", camel), -1;
    }
    double x = json_number_value(v);
    if (!json_is_number(v) || !isfinite(x)) return snprintf(msg, n, "%s: expected a finite number", camel), -1;
    if (x < lo) return snprintf(msg, n, "%s: %g is below %g", camel, x, lo), -1;
    *out = x;
    return 0;
}

static int integer(json_t *body, const char *camel, const char *snake, int lo, int hi, bool has_def, int def, int *out,
                   char *msg, size_t n)
{
    double x;
    if (num(body, camel, snake, -INFINITY, has_def, def, &x, msg, n)) return -1;
    if (x != trunc(x) || x < lo || x > hi) return snprintf(msg, n, "%s: expected an integer from %d to %d", camel, lo, hi), -1;
    *out = (int)x;
    return 0;
}

static int boolean(json_t *body, const char *camel, const char *snake, bool required, bool *out, char *msg, size_t n)
{
    json_t *v = get(body, camel, snake);
    if (!v && !required) return *out = false, 0;
    if (!json_is_boolean(v)) return snprintf(msg, n, "%s: %s boolean", camel, v ? "expected a" : "required"), -1;
    *out = json_is_true(v);
    return 0;
}

static int parse_types(json_t *body, v1s_task *t, char *msg, size_t n)
{
    json_t *a = get(body, "types", NULL), *v;
    size_t i;
    if (!json_is_array(a) || json_array_size(a) == 0 || json_array_size(a) > V1S_MAX_TYPES)
        return snprintf(msg, n, "types: required array of 1 to %d of STEERED, DEFAULT", V1S_MAX_TYPES), -1;
    t->q.skip_run[STEER_STEERED] = t->q.skip_run[STEER_DEFAULT] = true;
    json_array_foreach(a, i, v) {
        const char *s = json_string_value(v);
        int k = s && !strcmp(s, "STEERED") ? STEER_STEERED : s && !strcmp(s, "DEFAULT") ? STEER_DEFAULT : -1;
        if (k < 0) return snprintf(msg, n, "types[%zu]: expected STEERED or DEFAULT", i), -1;
        t->types[t->ntypes++] = k;
        t->q.skip_run[k] = false;
    }
    return 0;
}

/* features: [{model, source, index, strength, steeringVector?}]; the vector is always the
 * SAE's decoder row (upstream overwrites a given steeringVector with it). */
static int parse_features(json_t *a, v1s_task *t, char *msg, size_t n)
{
    size_t i;
    json_t *f;
    json_array_foreach(a, i, f) {
        steer_feature *sf = &t->q.features[i];
        const char *model = json_string_value(json_object_get(f, "model"));
        const char *source = json_string_value(json_object_get(f, "source"));
        json_t *strength = json_object_get(f, "strength");
        if (!model || !source || !json_is_number(strength) || !isfinite(json_number_value(strength)))
            return snprintf(msg, n, "features[%zu]: expected {model: string, source: string, index, strength: number}", i), -1;
        if (strcmp(model, t->q.model_id))
            return snprintf(msg, n, "features[%zu].model: '%s' is not the request's model '%s'", i, model, t->q.model_id), -1;
        if (strlen(source) >= sizeof sf->layer)
            return snprintf(msg, n, "features[%zu].source: longer than %zu characters", i, sizeof sf->layer - 1), -1;
        char idx[16];
        if (np_index_canon(json_object_get(f, "index"), idx))
            return snprintf(msg, n, "features[%zu].index: expected a non-negative integer (or a string of one)", i), -1;
        snprintf(sf->index, sizeof sf->index, "%s", idx);
        snprintf(sf->layer, sizeof sf->layer, "%s", source);
        sf->strength = json_number_value(strength);
        t->q.nfeatures++;
    }
    return 0;
}

/* vectors: [{steeringVector: number[], strength, hook}]. */
static int parse_vectors(json_t *a, v1s_task *t, char *msg, size_t n)
{
    size_t i, total = 0;
    json_t *v;
    json_array_foreach(a, i, v) total += json_array_size(get(v, "steeringVector", "steering_vector"));
    if (!(t->vals = malloc(sizeof(float) * (total ? total : 1)))) return snprintf(msg, n, "out of memory"), -1;
    float *w = t->vals;
    json_array_foreach(a, i, v) {
        steer_vec *sv = &t->vec[i];
        json_t *vec = get(v, "steeringVector", "steering_vector"), *strength = json_object_get(v, "strength"), *x;
        const char *hook = json_string_value(json_object_get(v, "hook"));
        if (!json_is_array(vec) || json_array_size(vec) == 0 || !hook || !json_is_number(strength) ||
            !isfinite(json_number_value(strength)))
            return snprintf(msg, n, "vectors[%zu]: expected {steeringVector: non-empty number array, strength: number, "
                                    "hook: string}", i), -1;
        if (strlen(hook) >= sizeof sv->hook)
            return snprintf(msg, n, "vectors[%zu].hook: longer than %zu characters", i, sizeof sv->hook - 1), -1;
        size_t j;
        sv->v = w;
        json_array_foreach(vec, j, x) {
            double d = json_number_value(x);
            if (!json_is_number(x) || !isfinite(d) || fabs(d) > 3.4e38)
                return snprintf(msg, n, "vectors[%zu].steeringVector[%zu]: expected a finite number", i, j), -1;
            *w++ = (float)d;
        }
        sv->n = (int)json_array_size(vec);
        sv->strength = json_number_value(strength);
        snprintf(sv->hook, sizeof sv->hook, "%s", hook);
    }
    t->q.vectors = t->vec;
    t->q.nvectors = (int)json_array_size(a);
    return 0;
}

/* What both routes share: model, types, features | vectors, the method and the numbers. */
static int parse_common(json_t *body, v1s_task *t, char *msg, size_t n)
{
    steer_req *q = &t->q;
    const char *model = json_string_value(json_object_get(body, "model"));
    if (!model || !*model) return snprintf(msg, n, "model: required string"), -1;
    if (strlen(model) >= sizeof q->model_id)
        return snprintf(msg, n, "model: longer than %zu characters", sizeof q->model_id - 1), -1;
    snprintf(q->model_id, sizeof q->model_id, "%s", model);
    if (parse_types(body, t, msg, n)) return -1;
    json_t *fs = get(body, "features", NULL), *vs = get(body, "vectors", NULL);
    if (!fs == !vs) return snprintf(msg, n, "Invalid request data: exactly one of features or vectors must be provided"), -1;
    json_t *a = fs ? fs : vs;
    if (!json_is_array(a) || json_array_size(a) > STEER_MAX_FEATURES)
        return snprintf(msg, n, "%s: expected an array of at most %d", fs ? "features" : "vectors", STEER_MAX_FEATURES), -1;
    const char *m = json_string_value(get(body, "steerMethod", "steer_method"));
    if (!m || steer_method_parse(m) < 0)
        return snprintf(msg, n, "steerMethod: required, SIMPLE_ADDITIVE or ORTHOGONAL_DECOMP%s",
                        m && !strcmp(m, "PROJECTION_CAP") ? " (PROJECTION_CAP is not supported by saed)" : ""), -1;
    q->method = (steer_method)steer_method_parse(m);
    double seed;
    if (boolean(body, "normalizeSteering", "normalize_steering", true, &q->normalize, msg, n) ||
        integer(body, "nCompletionTokens", "n_completion_tokens", 1, V1S_MAX_TOKENS, false, 0, &q->n_tokens, msg, n) ||
        num(body, "temperature", NULL, 0, false, 0, &q->temperature, msg, n) ||
        num(body, "strengthMultiplier", "strength_multiplier", -INFINITY, false, 0, &q->strength_multiplier, msg, n) ||
        num(body, "freqPenalty", "freq_penalty", -INFINITY, false, 0, &q->freq_penalty, msg, n) ||
        num(body, "seed", NULL, -INFINITY, false, 0, &seed, msg, n) ||
        boolean(body, "stream", NULL, false, &t->stream, msg, n) ||
        integer(body, "nLogprobs", "n_logprobs", 0, 10, true, 0, &q->n_logprobs, msg, n))
        return -1;
    if (fabs(seed) > 9007199254740992.0) return snprintf(msg, n, "seed: outside ±2^53"), -1;
    q->seed = trunc(seed);
    q->freq_penalty = 0; /* accepted, ignored: see the top of this file */
    q->ephemeral = true;
    return fs ? parse_features(fs, t, msg, n) : parse_vectors(vs, t, msg, n);
}

static v1s_task *parse(json_t *body, bool chat, char *msg, size_t n)
{
    v1s_task *t = calloc(1, sizeof *t);
    if (!t) return snprintf(msg, n, "out of memory"), NULL;
    if (!json_is_object(body)) {
        snprintf(msg, n, "request body must be a JSON object");
        goto bad;
    }
    json_t *p = json_object_get(body, "prompt");
    if (!chat) {
        if (!json_is_string(p) || !json_string_length(p)) {
            snprintf(msg, n, "prompt: required non-empty string");
            goto bad;
        }
        if (!(t->prompt = strdup(json_string_value(p)))) goto oom;
        t->q.prompt = t->prompt;
    } else {
        size_t i;
        json_t *m;
        if (!json_is_array(p) || json_array_size(p) == 0) {
            snprintf(msg, n, "prompt: required non-empty array of {role, content}");
            goto bad;
        }
        if (!(t->chat = json_array())) goto oom;
        json_array_foreach(p, i, m) {
            const char *role = json_string_value(json_object_get(m, "role"));
            const char *content = json_string_value(json_object_get(m, "content"));
            if (!role || !*role || !content) {
                snprintf(msg, n, "prompt[%zu]: expected {role: string, content: string}", i);
                goto bad;
            }
            if (json_array_append_new(t->chat, json_pack("{s:s,s:s}", "role", role, "content", content))) goto oom;
        }
        bool axis;
        if (boolean(body, "steerSpecialTokens", "steer_special_tokens", true, &t->q.steer_special, msg, n) ||
            boolean(body, "isAssistantAxis", "is_assistant_axis", false, &axis, msg, n))
            goto bad;
        if (axis) {
            snprintf(msg, n, "isAssistantAxis: the assistant axis is not supported by saed");
            goto bad;
        }
        t->q.chat[STEER_STEERED] = t->q.chat[STEER_DEFAULT] = t->chat;
        t->q.prompt = "";
    }
    if (parse_common(body, t, msg, n)) goto bad;
    return t;
oom:
    snprintf(msg, n, "out of memory");
bad:
    task_free(t);
    return NULL;
}

/* ---- response ---- */

typedef struct v1s_run {
    const v1s_task *t;
    char *prompt_text;   /* chat: the prompt ids decoded */
    http_stream *st;
    bool snake;          /* frames in snake_case, as http_reply_json answers such a caller */
} v1s_run;

/* One run's chat answer {raw, chatTemplate}: raw = the decoded prompt + the generation;
 * chatTemplate = the messages + the generated assistant turn (none while nothing is generated). */
static json_t *chat_result(const v1s_run *x, const char *text)
{
    json_t *msgs = json_deep_copy(x->t->chat);
    if (msgs && *text) json_array_append_new(msgs, json_pack("{s:s,s:s}", "role", "assistant", "content", text));
    return msgs ? json_pack("{s:s+,s:o}", "raw", x->prompt_text, text, "chatTemplate", msgs) : NULL;
}

/* The response for texts[k] (and logprobs lp[k] when not NULL), outputs in `types` order;
 * unset optionals omitted, as upstream's exclude_none. */
static json_t *response(const v1s_run *x, char *const texts[2], json_t *const lp[2])
{
    const v1s_task *t = x->t;
    json_t *outs = json_array(), *j = json_object();
    for (int i = 0; outs && i < t->ntypes; i++) {
        int k = t->types[i];
        json_t *o = t->chat ? chat_result(x, texts[k]) : json_pack("{s:s}", "output", texts[k]);
        if (!o) continue;
        json_object_set_new(o, "type", json_string(k == STEER_STEERED ? "STEERED" : "DEFAULT"));
        if (lp && lp[k]) json_object_set(o, "logprobs", lp[k]);
        json_array_append_new(outs, o);
    }
    if (!outs || !j || json_array_size(outs) != (size_t)t->ntypes) {
        json_decref(outs);
        json_decref(j);
        return NULL;
    }
    json_object_set_new(j, "outputs", outs);
    if (t->chat)
        json_object_set_new(j, "input", json_pack("{s:s,s:O}", "raw", x->prompt_text, "chatTemplate", t->chat));
    return j;
}

/* One `data:` frame of j (stolen) in the caller's casing; -1 when it cannot go out. */
static int send_frame(const v1s_run *x, json_t *j, bool supersede)
{
    if (j && x->snake && !wire_snake_keys(j)) {
        json_decref(j);
        j = NULL;
    }
    return j ? sse_send(x->st, NULL, j, supersede) : -1;
}

static int on_progress(void *ud, const char *steered, const char *deflt)
{
    v1s_run *x = ud;
    if (http_stream_closed(x->st)) return 1;
    char *texts[2] = {(char *)steered, (char *)deflt};
    return send_frame(x, response(x, texts, NULL), true) ? 1 : 0;
}

static void run(http_req *r, void *ud)
{
    v1s_task *t = ud;
    saed_app *app = http_app(r);
    svc_err e;
    db_conn *c = http_db(r);
    steer_plan *p = c ? steer_prepare(app, c, &t->q, &e) : NULL;
    v1s_run x = {.t = t, .snake = http_v1_snake(r)};
    steer_out out = {0};
    if (c && !p) {
        reply_svc(r, &e);
        goto done;
    }
    if (!p) goto done;
    if (t->chat && !(x.prompt_text = steer_plan_prompt_text(p, STEER_STEERED))) {
        http_reply_error(r, 500, "internal", "out of memory");
        goto done;
    }
    if (!t->stream) {
        json_t *j = NULL;
        if (steer_generate(p, NULL, NULL, &out, &e)) reply_svc(r, &e);
        else if (!(j = response(&x, out.text, out.logprobs))) http_reply_error(r, 500, "internal", "out of memory");
        else http_reply_json(r, 200, j);
        goto done;
    }
    if (!(x.st = http_reply_stream(r, 200, "text/event-stream"))) goto done;
    /* r is MHD's from here on. */
    if (steer_generate(p, on_progress, &x, &out, &e)) {
        if (strcmp(e.code, "cancelled")) sse_send(x.st, "error", json_pack("{s:s}", "error", e.msg), false);
        else log_info("v1 steering stream: client went away; generation stopped");
    } else {
        if (send_frame(&x, response(&x, out.text, out.logprobs), false) && !http_stream_closed(x.st))
            sse_send(x.st, "error", json_pack("{s:s}", "error", "out of memory"), false);
    }
    http_stream_end(x.st);
done:
    steer_out_free(&out);
    free(x.prompt_text);
    steer_plan_free(p);
    task_free(t);
}

static void start(http_req *r, bool chat)
{
    char msg[600];
    v1s_task *t = parse(http_json(r), chat, msg, sizeof msg);
    if (!t) {
        http_reply_error(r, 400, "invalid_field", "%s", msg);
        return;
    }
    if (http_defer(r, run, t)) task_free(t);
}

void h_v1_steer_completion(http_req *r) { start(r, false); }
void h_v1_steer_completion_chat(http_req *r) { start(r, true); }

/* Upstream reports its engine monitor's {stats, summary}; saed's engine is the compute pool. */
void h_v1_steer_health(http_req *r)
{
    compute_pool *pool = http_app(r)->compute;
    if (!pool) {
        http_reply_error(r, 503, "unavailable", "this process runs no compute pool");
        return;
    }
    int running, queued, threads, cap;
    compute_stats(pool, &running, &queued, &threads, &cap);
    char summary[160];
    snprintf(summary, sizeof summary, "compute pool: %d running, %d queued; %d threads, queue of %d", running, queued,
             threads, cap);
    http_reply_json(r, 200, json_pack("{s:{s:i,s:i,s:i,s:i},s:s}", "stats", "running", running, "queued", queued,
                                      "threads", threads, "queueCapacity", cap, "summary", summary));
}
