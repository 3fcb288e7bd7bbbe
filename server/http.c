/* http.c: libmicrohttpd wiring. One http_req lives from the first access-handler call (headers
 * read) to the completion callback, which writes the access log line, records metrics, gives
 * the database connection back and frees the request. */
#include "server/http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "server/compute.h"
#include "server/http_stream.h"
#include "server/log.h"
#include "server/metrics.h"
#include "server/wire_case.h"

#define CORS_METHODS "GET, POST, DELETE, OPTIONS"
#define CORS_HEADERS "Content-Type, x-api-key, X-Request-Id"
/* Bytes of a refused body read and thrown away before the connection is simply closed. */
#define DISCARD_MAX ((size_t)16 << 20)
#define MAX_EXTRA_HEADERS 8

struct http_server {
    struct MHD_Daemon *d;
    saed_app *app;
    atomic_int in_flight;
    atomic_int draining;        /* shutting down: answers carry Connection: close */
};

struct http_req {
    http_server *srv;
    struct MHD_Connection *conn;
    const char *method;
    char *path;                 /* copy of the URL path */
    int route;                  /* index into http_routes or -1 */
    int early_status;           /* 404/405 decided on headers */
    char allow[96];
    char *pnames[HTTP_MAX_PARAMS];
    char *pvalues[HTTP_MAX_PARAMS];
    int nparams;
    char *body;
    size_t body_len, body_cap;
    bool too_large;
    bool queue_failed;
    size_t discarded;
    json_t *json;
    bool v1_snake;              /* a ROUTE_V1 answer with snake_case keys (server/wire_case.h) */
    db_conn *db;
    char request_id[65];
    struct timespec t0;
    bool replied;
    int status;
    size_t bytes;
    char *xh_name[MAX_EXTRA_HEADERS], *xh_value[MAX_EXTRA_HEADERS];
    int n_xh;
    /* http_defer: while the task runs the connection is suspended, and the reply is held here
     * until MHD calls on_request again after the resume (only the access handler may queue). */
    bool deferred;
    http_task task_fn;
    void *task_ud;
    struct MHD_Response *held;
    int held_status;
    /* http_reply_stream: the stream (the request's reference), and the running task's flag that
     * it no longer owns r. */
    http_stream *stream;
    bool *task_detached;
};

/* ---- route matching ---- */

int http_match(const char *method, const char *path, char **names, char **values,
               int *nvalues, int *status, char *allow, size_t allowlen)
{
    char p[2048];
    size_t pl = strlen(path);
    if (pl >= sizeof p) {
        *status = 404;
        return -1;
    }
    memcpy(p, path, pl + 1);
    if (pl > 1 && p[pl - 1] == '/') p[--pl] = '\0';
    bool path_known = false;
    if (allow && allowlen) allow[0] = '\0';
    int found = -1;
    for (int i = 0; i < http_n_routes; i++) {
        const char *pat = http_routes[i].pattern, *s = p;
        int n = 0;
        bool ok = true;
        while (*pat && ok) {
            if (*pat == '{') {
                const char *close = strchr(pat, '}');
                const char *seg_end = strchr(s, '/');
                size_t sl = seg_end ? (size_t)(seg_end - s) : strlen(s);
                if (sl == 0 || n == HTTP_MAX_PARAMS) { ok = false; break; }
                n++;
                s += sl;
                pat = close + 1;
            } else if (*pat == *s) {
                pat++;
                s++;
            } else {
                ok = false;
            }
        }
        if (!ok || *s) continue;
        path_known = true;
        const char *m = http_routes[i].method;
        bool same = !strcmp(m, method) || (!strcmp(m, "GET") && !strcmp(method, "HEAD"));
        if (allow && allowlen && !strstr(allow, m)) {
            size_t al = strlen(allow);
            snprintf(allow + al, allowlen - al, "%s%s%s", al ? ", " : "", m, strcmp(m, "GET") ? "" : ", HEAD");
        }
        if (same && found < 0) found = i;
    }
    if (found < 0) {
        *status = path_known ? 405 : 404;
        if (path_known && allow && allowlen) {
            size_t al = strlen(allow);
            snprintf(allow + al, allowlen - al, ", OPTIONS");
        }
        return -1;
    }
    /* Extract parameters of the winning route. */
    int n = 0;
    const char *pat = http_routes[found].pattern, *s = p;
    while (*pat) {
        if (*pat == '{') {
            const char *close = strchr(pat, '}');
            const char *seg_end = strchr(s, '/');
            size_t sl = seg_end ? (size_t)(seg_end - s) : strlen(s);
            if (names && values) {
                names[n] = strndup(pat + 1, (size_t)(close - pat - 1));
                values[n] = strndup(s, sl);
            }
            n++;
            s += sl;
            pat = close + 1;
        } else {
            pat++;
            s++;
        }
    }
    if (nvalues) *nvalues = n;
    *status = 200;
    return found;
}

/* ---- accessors ---- */

saed_app *http_app(http_req *r) { return r->srv->app; }
json_t *http_json(http_req *r) { return r->json; }

const char *http_body(http_req *r, size_t *len)
{
    *len = r->body_len;
    return r->body_len ? r->body : NULL;
}
const char *http_request_id(http_req *r) { return r->request_id; }

const char *http_param(http_req *r, const char *name)
{
    for (int i = 0; i < r->nparams; i++)
        if (!strcmp(r->pnames[i], name)) return r->pvalues[i];
    return NULL;
}

const char *http_query(http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *http_header(http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

db_conn *http_db(http_req *r)
{
    if (r->db) return r->db;
    enum db_acquire_err why;
    char err[256];
    saed_app *app = r->srv->app;
    r->db = db_acquire(app->pool, app->cfg->db_wait_ms, &why, err, sizeof err);
    if (!r->db) {
        if (why == DB_ACQ_DOWN) {
            atomic_store(&app->schema_version, -1);
            log_warn("database unavailable: %s [%s]", err, r->request_id);
        }
        http_add_header(r, "Retry-After", why == DB_ACQ_BUSY ? "1" : "5");
        if (why == DB_ACQ_BUSY) http_reply_error(r, 503, "saturated", "all database connections are busy; retry");
        else http_reply_error(r, 503, "database_unavailable", "database unavailable");
    }
    return r->db;
}

/* ---- replies ---- */

void http_add_header(http_req *r, const char *name, const char *value)
{
    if (r->n_xh == MAX_EXTRA_HEADERS) return;
    char *n = strdup(name), *v = strdup(value);
    if (!n || !v) {
        free(n);
        free(v);
        return;
    }
    r->xh_name[r->n_xh] = n;
    r->xh_value[r->n_xh] = v;
    r->n_xh++;
}

static void send_response(http_req *r, int status, const char *content_type, struct MHD_Response *resp);

void http_reply_raw(http_req *r, int status, const char *content_type, const char *body, size_t len)
{
    if (r->replied) {
        log_error("handler replied twice to %s %s", r->method, r->path);
        return;
    }
    r->replied = true;
    r->status = status;
    r->bytes = len;
    send_response(r, status, content_type, MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY));
}

void http_reply_shared(http_req *r, int status, const char *content_type, const char *data, size_t len,
                       void (*done)(void *cls), void *cls)
{
    if (r->replied) {
        log_error("handler replied twice to %s %s", r->method, r->path);
        done(cls);
        return;
    }
    r->replied = true;
    r->status = status;
    r->bytes = len;
    struct MHD_Response *resp = MHD_create_response_from_buffer_with_free_callback_cls(len, (void *)data, done, cls);
    if (!resp) done(cls);
    send_response(r, status, content_type, resp);
}

void http_reply_fd(http_req *r, int status, const char *content_type, int fd, size_t size)
{
    if (r->replied) {
        log_error("handler replied twice to %s %s", r->method, r->path);
        close(fd);
        return;
    }
    r->replied = true;
    r->status = status;
    r->bytes = size;
    struct MHD_Response *resp = MHD_create_response_from_fd64(size, fd);
    if (!resp) close(fd);
    send_response(r, status, content_type, resp);
}

static void send_response(http_req *r, int status, const char *content_type, struct MHD_Response *resp)
{
    if (!resp) {
        r->queue_failed = true;
        return;
    }
    if (content_type) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(resp, "X-Request-Id", r->request_id);
    MHD_add_response_header(resp, "Access-Control-Allow-Origin", "*");
    MHD_add_response_header(resp, "Access-Control-Allow-Methods", CORS_METHODS);
    MHD_add_response_header(resp, "Access-Control-Allow-Headers", CORS_HEADERS);
    MHD_add_response_header(resp, "Access-Control-Expose-Headers", "X-Request-Id, Retry-After");
    for (int i = 0; i < r->n_xh; i++) MHD_add_response_header(resp, r->xh_name[i], r->xh_value[i]);
    if (atomic_load(&r->srv->draining)) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    if (r->deferred) {
        r->held = resp;
        r->held_status = status;
        return;
    }
    if (MHD_queue_response(r->conn, (unsigned)status, resp) != MHD_YES) r->queue_failed = true;
    MHD_destroy_response(resp);
}

/* ---- compute routes ---- */

/* One deferred request on its way through the compute pool. Owned by the pool's callbacks,
 * not by the request: after a stream detaches the request belongs to MHD and may be freed. */
typedef struct deferred {
    http_req *r;
    bool detached;
} deferred;

static void run_task(void *arg)
{
    deferred *d = arg;
    http_req *r = d->r;
    r->task_detached = &d->detached;
    r->task_fn(r, r->task_ud);
    if (d->detached) return; /* it streamed: r was handed to MHD then */
    r->task_detached = NULL;
    if (r->db) {
        db_release(r->srv->app->pool, r->db);
        r->db = NULL;
    }
    if (!r->replied) {
        log_error("compute task for %s %s did not reply", r->method, r->path);
        http_reply_error(r, 500, "internal", "internal error (request id %s)", r->request_id);
    }
}

/* After the compute slot is free: the reply may go out. The request must not be touched after
 * the resume: MHD may complete and free it. A stream resumed it already. */
static void resume_task(void *arg)
{
    deferred *d = arg;
    if (!d->detached) MHD_resume_connection(d->r->conn);
    free(d);
}

int http_defer(http_req *r, http_task fn, void *ud)
{
    compute_pool *p = r->srv->app->compute;
    deferred *d = calloc(1, sizeof *d);
    if (!d) {
        http_reply_error(r, 500, "internal", "out of memory (request id %s)", r->request_id);
        return -1;
    }
    if (!p || compute_reserve(p)) {
        free(d);
        http_add_header(r, "Retry-After", "1");
        http_reply_error(r, 503, "busy", "all compute slots are taken (SAED_COMPUTE_THREADS + SAED_COMPUTE_QUEUE); retry");
        return -1;
    }
    d->r = r;
    if (r->db) {
        db_release(r->srv->app->pool, r->db);
        r->db = NULL;
    }
    r->deferred = true;
    r->task_fn = fn;
    r->task_ud = ud;
    MHD_suspend_connection(r->conn);
    compute_submit(p, run_task, resume_task, d);
    return 0;
}

http_stream *http_reply_stream(http_req *r, int status, const char *content_type)
{
    if (r->replied || !r->deferred || !r->task_detached) {
        log_error("http_reply_stream outside a compute task, or after a reply, for %s %s", r->method, r->path);
        if (!r->replied) http_reply_error(r, 500, "internal", "internal error (request id %s)", r->request_id);
        return NULL;
    }
    struct MHD_Response *resp;
    http_stream *st = hstream_new(r->conn, &resp);
    if (!st) {
        http_reply_error(r, 500, "internal", "out of memory (request id %s)", r->request_id);
        return NULL;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    r->replied = true;
    r->status = status;
    r->stream = st;
    send_response(r, status, content_type, resp); /* held until on_request runs after the resume */
    if (r->db) {
        db_release(r->srv->app->pool, r->db);
        r->db = NULL;
    }
    *r->task_detached = true;
    MHD_resume_connection(r->conn); /* r belongs to MHD from here on */
    return st;
}

bool http_v1_snake(const http_req *r) { return r->v1_snake; }

void http_reply_json(http_req *r, int status, json_t *body)
{
    char *s = r->v1_snake && !wire_snake_keys(body) ? NULL : json_dumps(body, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(body);
    if (!s) {
        static const char fallback[] = "{\"error\":{\"code\":\"internal\",\"message\":\"could not encode the response\"},"
                                       "\"message\":\"could not encode the response\"}";
        http_reply_raw(r, 500, "application/json", fallback, sizeof fallback - 1);
        return;
    }
    http_reply_raw(r, status, "application/json", s, strlen(s));
    free(s);
}

void http_reply_error(http_req *r, int status, const char *code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    log_utf8_sanitize(msg); /* messages quote client input; JSON needs valid UTF-8 */
    if (status >= 500) log_warn("%s %s -> %d %s: %s [%s]", r->method, r->path, status, code, msg, r->request_id);
    if (r->route >= 0 && (http_routes[r->route].flags & ROUTE_V1)) {
        /* The inference server's shape; its busy answer is 429 (the pool never queues past
         * SAED_COMPUTE_QUEUE, so failIfBusy or not, a full pool refuses). */
        http_reply_json(r, status == 503 && !strcmp(code, "busy") ? 429 : status, json_pack("{s:s}", "error", msg));
        return;
    }
    http_reply_json(r, status, json_pack("{s:{s:s,s:s},s:s}", "error", "code", code, "message", msg,
                                         "message", msg));
}

void http_reply_db_error(http_req *r, const PGresult *res, const char *what)
{
    char m[512];
    db_errmsg(res, m, sizeof m);
    switch (db_kind(res)) {
    case DB_INVALID:
        http_reply_error(r, 400, "invalid_value", "the database rejected a value while %s", what);
        return;
    case DB_UNIQUE:
        http_reply_error(r, 409, "conflict", "already exists (%s)", what);
        return;
    case DB_FOREIGN_KEY:
        http_reply_error(r, 409, "conflict", "still referenced, or refers to something missing (%s)", what);
        return;
    case DB_UNAVAILABLE:
        log_warn("database unavailable while %s: %s [%s]", what, m, r->request_id);
        atomic_store(&r->srv->app->schema_version, -1);
        http_add_header(r, "Retry-After", "5");
        http_reply_error(r, 503, "database_unavailable", "database unavailable while %s", what);
        return;
    case DB_NOT_MIGRATED:
        http_reply_error(r, 503, "not_migrated", "database schema is missing; run `saed migrate`");
        return;
    case DB_RETRYABLE:
        http_add_header(r, "Retry-After", "1");
        http_reply_error(r, 503, "conflict_retry", "concurrent update while %s; retry", what);
        return;
    default:
        log_error("database error while %s: %s [%s]", what, m, r->request_id);
        http_reply_error(r, 500, "internal", "internal error while %s (request id %s)", what, r->request_id);
    }
}

/* ---- request lifecycle ---- */

static void new_request_id(http_req *r)
{
    const char *given = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "X-Request-Id");
    if (given) {
        size_t l = strlen(given);
        bool ok = l > 0 && l < sizeof r->request_id;
        for (size_t i = 0; ok && i < l; i++)
            ok = (given[i] >= '0' && given[i] <= '9') || (given[i] >= 'a' && given[i] <= 'z') ||
                 (given[i] >= 'A' && given[i] <= 'Z') || given[i] == '-' || given[i] == '_' || given[i] == '.';
        if (ok) {
            memcpy(r->request_id, given, l + 1);
            return;
        }
    }
    unsigned char b[12];
    if (getrandom(b, sizeof b, GRND_NONBLOCK) != (ssize_t)sizeof b) {
        unsigned long long x = (unsigned long long)r->t0.tv_nsec ^ ((unsigned long long)(uintptr_t)r << 17);
        for (size_t i = 0; i < sizeof b; i++) b[i] = (unsigned char)(x >> (i % 8 * 8)) ^ (unsigned char)i;
    }
    for (size_t i = 0; i < sizeof b; i++) snprintf(r->request_id + 2 * i, 3, "%02x", b[i]);
}

static bool is_json_type(const char *ct)
{
    if (!ct) return true; /* clients that omit it are given the benefit of the doubt */
    while (*ct == ' ') ct++;
    size_t n = strcspn(ct, ";");
    while (n && ct[n - 1] == ' ') n--;
    if (n == 16 && !strncasecmp(ct, "application/json", 16)) return true;
    /* application/<anything>+json, e.g. problem+json */
    return n > 17 && !strncasecmp(ct, "application/", 12) && !strncasecmp(ct + n - 5, "+json", 5);
}

/* Constant-time comparison against every key: the time taken does not depend on where a
 * guess first differs, nor on which key matched. */
static bool key_ok(const saed_config *cfg, const char *given)
{
    if (cfg->n_api_keys == 0) return true;
    if (!given) return false;
    size_t gl = strlen(given);
    unsigned match = 0;
    for (int k = 0; k < cfg->n_api_keys; k++) {
        const char *key = cfg->api_keys[k];
        size_t kl = strlen(key);
        unsigned diff = (unsigned)(kl ^ gl);
        for (size_t i = 0; i < kl; i++) diff |= (unsigned char)key[i] ^ (unsigned char)(i < gl ? given[i] : 0);
        match |= (diff == 0);
    }
    return match != 0;
}

/* SAED_V1_SECRET, compared in constant time like the API keys. */
static bool v1_secret_ok(const saed_config *cfg, const char *given)
{
    if (!cfg->v1_secret[0]) return true;
    if (!given) return false;
    size_t kl = strlen(cfg->v1_secret), gl = strlen(given);
    unsigned diff = (unsigned)(kl ^ gl);
    for (size_t i = 0; i < kl; i++) diff |= (unsigned char)cfg->v1_secret[i] ^ (unsigned char)(i < gl ? given[i] : 0);
    return diff == 0;
}

static void dispatch(http_req *r)
{
    saed_app *app = r->srv->app;
    if (r->early_status == 404) {
        http_reply_error(r, 404, "route_not_found", "no route for %s", r->path);
        return;
    }
    if (r->early_status == 405) {
        http_add_header(r, "Allow", r->allow);
        http_reply_error(r, 405, "method_not_allowed", "%s is not allowed on %s (allowed: %s)", r->method, r->path, r->allow);
        return;
    }
    if (r->too_large) {
        http_reply_error(r, 413, "body_too_large", "request body exceeds the limit of %lld bytes (SAED_BODY_LIMIT)",
                         app->cfg->body_limit);
        return;
    }
    const http_route *rt = &http_routes[r->route];
    if (r->early_status == 401 && (rt->flags & ROUTE_V1)) {
        http_reply_error(r, 401, "unauthorized", "Invalid or missing X-SECRET-KEY header");
        return;
    }
    if (r->early_status == 401) {
        http_reply_error(r, 401, "unauthorized",
                         "this route requires an API key in the x-api-key header (one of SAED_API_KEYS)");
        return;
    }
    if ((rt->flags & ROUTE_SCHEMA) && !app_schema_ok(app)) {
        http_add_header(r, "Retry-After", "5");
        if (atomic_load(&app->schema_version) < 0)
            http_reply_error(r, 503, "database_unavailable", "database unavailable");
        else
            http_reply_error(r, 503, "not_migrated",
                             "database schema is at version %d, this saed needs %d: run `saed migrate` or start with --migrate",
                             atomic_load(&app->schema_version), migrate_head(&app->migrations));
        return;
    }
    if (r->early_status == 415) {
        http_reply_error(r, 415, "unsupported_media_type", "Content-Type must be application/json, got '%s'",
                         http_header(r, MHD_HTTP_HEADER_CONTENT_TYPE));
        return;
    }
    if (rt->flags & ROUTE_JSON) {
        if (r->body_len == 0) {
            http_reply_error(r, 400, "invalid_json", "request body is empty; expected a JSON object");
            return;
        }
        json_error_t je;
        r->json = json_loadb(r->body, r->body_len, JSON_DISABLE_EOF_CHECK * 0, &je);
        if (!r->json) {
            http_reply_error(r, 400, "invalid_json", "malformed JSON at line %d column %d: %s", je.line, je.column, je.text);
            return;
        }
    }
    if (rt->flags & ROUTE_V1) {
        /* Answer in the caller's casing; a body whose keys are all one word says nothing. */
        wire_case wc = r->json ? wire_case_of(r->json) : WIRE_UNKNOWN;
        r->v1_snake = wc == WIRE_SNAKE || (wc == WIRE_UNKNOWN && app->cfg->v1_snake);
    }
    rt->fn(r);
    if (r->deferred) return; /* the compute task owns the request now */
    /* The response body is already copied: the connection can serve the next request while a
     * slow client reads. */
    if (r->db) {
        db_release(app->pool, r->db);
        r->db = NULL;
    }
    if (!r->replied) {
        log_error("handler for %s %s did not reply", rt->method, rt->pattern);
        http_reply_error(r, 500, "internal", "internal error (request id %s)", r->request_id);
    }
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_size, void **con_cls)
{
    (void)version;
    http_server *srv = cls;
    http_req *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r) return MHD_NO;
        *con_cls = r;
        atomic_fetch_add(&srv->in_flight, 1);
        clock_gettime(CLOCK_MONOTONIC, &r->t0);
        r->srv = srv;
        r->conn = conn;
        r->method = method;
        r->path = strdup(url);
        r->route = -1;
        if (!r->path) return MHD_NO;
        new_request_id(r);
        if (!strcmp(method, "OPTIONS")) {
            /* CORS preflight: answered for any path, like upstream's middleware. */
            r->early_status = 204;
            return MHD_YES;
        }
        r->route = http_match(method, url, r->pnames, r->pvalues, &r->nparams, &r->early_status, r->allow, sizeof r->allow);
        if (r->early_status == 200) r->early_status = 0;
        for (int i = 0; i < r->nparams; i++)
            if (!r->pnames[i] || !r->pvalues[i]) return MHD_NO;
        /* Refusals that need only the headers are decided now, so the body of a request that
         * will be refused is never held in memory. */
        if (r->route >= 0) {
            unsigned fl = http_routes[r->route].flags;
            if ((fl & ROUTE_AUTH) && !key_ok(srv->app->cfg, http_header(r, "x-api-key"))) r->early_status = 401;
            else if ((fl & ROUTE_V1) && !v1_secret_ok(srv->app->cfg, http_header(r, "x-secret-key"))) r->early_status = 401;
            else if ((fl & ROUTE_JSON) && !is_json_type(http_header(r, MHD_HTTP_HEADER_CONTENT_TYPE))) r->early_status = 415;
        }
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoll(cl, NULL, 10) > srv->app->cfg->body_limit) {
            r->too_large = true;
            r->early_status = 0;
            /* A client that asked for 100-continue has not sent the body: answer now. Others
             * are already sending; answering before reading makes MHD reset the connection and
             * many clients then never see the answer, so the body is read and discarded (up to
             * DISCARD_MAX) and the 413 goes out at the end. */
            const char *ex = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
            if (ex && !strcasecmp(ex, "100-continue"))
                http_reply_error(r, 413, "body_too_large", "request body of %s bytes exceeds the limit of %lld bytes (SAED_BODY_LIMIT)",
                                 cl, srv->app->cfg->body_limit);
        }
        return r->queue_failed ? MHD_NO : MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (r->replied || r->too_large || r->early_status) {
            r->discarded += n;
            return r->discarded > DISCARD_MAX ? MHD_NO : MHD_YES;
        }
        if (r->body_len + n > (size_t)srv->app->cfg->body_limit) {
            r->too_large = true;
            r->discarded = r->body_len + n;
            free(r->body);
            r->body = NULL;
            r->body_len = r->body_cap = 0;
            return MHD_YES;
        }
        if (r->body_len + n + 1 > r->body_cap) {
            size_t cap = (r->body_len + n + 1) * 2;
            if (cap > (size_t)srv->app->cfg->body_limit + 1) cap = (size_t)srv->app->cfg->body_limit + 1;
            char *nb = realloc(r->body, cap);
            if (!nb) return MHD_NO;
            r->body = nb;
            r->body_cap = cap;
        }
        memcpy(r->body + r->body_len, upload_data, n);
        r->body_len += n;
        r->body[r->body_len] = '\0';
        return MHD_YES;
    }
    if (r->deferred) {
        /* Called again after the task's resume: queue what it held. Nothing held means the
         * task's response could not be built (out of memory): close rather than leave the
         * connection waiting for an answer that will not come. */
        if (!r->held) return MHD_NO;
        r->deferred = false;
        struct MHD_Response *resp = r->held;
        r->held = NULL;
        if (MHD_queue_response(r->conn, (unsigned)r->held_status, resp) != MHD_YES) r->queue_failed = true;
        MHD_destroy_response(resp);
        return r->queue_failed ? MHD_NO : MHD_YES;
    }
    if (r->replied) return r->queue_failed ? MHD_NO : MHD_YES;
    if (r->early_status == 204) {
        http_add_header(r, "Access-Control-Max-Age", "86400");
        http_reply_raw(r, 204, NULL, "", 0);
    } else {
        dispatch(r);
        /* A deferred request belongs to its compute task until the resume: not even
         * queue_failed may be read here, the task may be writing it. */
        if (r->deferred) return MHD_YES;
    }
    return r->queue_failed ? MHD_NO : MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void)conn;
    http_server *srv = cls;
    http_req *r = *con_cls;
    if (!r) return;
    *con_cls = NULL;
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - r->t0.tv_sec) + (double)(t1.tv_nsec - r->t0.tv_nsec) / 1e9;
    int status = r->replied ? r->status : 499; /* client went away before an answer */
    if (r->stream) r->bytes = hstream_request_done(r->stream, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK);
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK) log_debug("request %s %s ended early (code %d)", r->method, r->path, (int)toe);
    log_access(r->method, r->path, status, r->bytes, secs * 1e3, r->request_id);
    metrics_observe(r->route, status, secs);
    if (r->db) db_release(srv->app->pool, r->db);
    if (r->held) MHD_destroy_response(r->held);
    json_decref(r->json);
    for (int i = 0; i < r->nparams; i++) {
        free(r->pnames[i]);
        free(r->pvalues[i]);
    }
    for (int i = 0; i < r->n_xh; i++) {
        free(r->xh_name[i]);
        free(r->xh_value[i]);
    }
    free(r->body);
    free(r->path);
    free(r);
    atomic_fetch_sub(&srv->in_flight, 1);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char m[512];
    vsnprintf(m, sizeof m, fmt, ap);
    size_t l = strlen(m);
    while (l && m[l - 1] == '\n') m[--l] = '\0';
    log_warn("libmicrohttpd: %s", m);
}

http_server *http_start(saed_app *app, char *err, size_t errlen)
{
    const saed_config *cfg = app->cfg;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai;
    char port[16];
    snprintf(port, sizeof port, "%d", cfg->listen_port);
    int gai = getaddrinfo(cfg->listen_host, port, &hints, &ai);
    if (gai) {
        snprintf(err, errlen, "SAED_LISTEN: cannot resolve '%s': %s", cfg->listen_host, gai_strerror(gai));
        return NULL;
    }
    http_server *s = calloc(1, sizeof *s);
    s->app = app;
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ITC | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    s->d = MHD_start_daemon(flags, (uint16_t)cfg->listen_port, NULL, NULL, on_request, s,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
                            MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                            MHD_OPTION_THREAD_POOL_SIZE, (unsigned)cfg->http_threads,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->max_connections,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                            MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!s->d) {
        snprintf(err, errlen, "SAED_LISTEN: cannot listen on %s (address in use or not permitted)", cfg->listen);
        free(s);
        return NULL;
    }
    return s;
}

void http_quiesce(http_server *s)
{
    atomic_store(&s->draining, 1);
    MHD_socket fd = MHD_quiesce_daemon(s->d);
    if (fd != MHD_INVALID_SOCKET) close(fd);
}

int http_in_flight(http_server *s) { return atomic_load(&s->in_flight); }

int http_open_connections(http_server *s)
{
    const union MHD_DaemonInfo *i = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
    return i ? (int)i->num_connections : 0;
}

void http_stop(http_server *s)
{
    if (!s) return;
    MHD_stop_daemon(s->d);
    free(s);
}
