/* http.h: the HTTP layer between libmicrohttpd and the handlers. It owns request parsing
 * (route match, body accumulation with a cap, JSON parse, auth), the one error shape, CORS,
 * request ids, the access log and metrics. Handlers see only http_req and these helpers. */
#ifndef SAED_HTTP_H
#define SAED_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "db/db.h"
#include "server/app.h"

typedef struct http_req http_req;
typedef struct http_server http_server;

/* A handler replies exactly once through one of the http_reply_* helpers. */
typedef void (*http_handler)(http_req *r);

enum {
    ROUTE_JSON = 1,   /* body must be JSON (415 for another content type, 400 when malformed) */
    ROUTE_AUTH = 2,   /* write route: x-api-key must match SAED_API_KEYS (when keys are set) */
    ROUTE_SCHEMA = 4, /* needs the database schema at head (503 otherwise) */
    /* Neuronpedia inference-server wire (/v1, /health): errors are {"error": str}, a busy
     * compute pool is 429, and X-SECRET-KEY must match SAED_V1_SECRET when it is set. */
    ROUTE_V1 = 8,
};

typedef struct http_route {
    const char *method;
    const char *pattern;  /* "/api/models/{id}": {name} matches one non-empty segment */
    http_handler fn;
    unsigned flags;
} http_route;

/* The one route table, in handlers/routes.c. */
extern const http_route http_routes[];
extern const int http_n_routes;

#define HTTP_MAX_PARAMS 8

/* Route lookup, exposed for tests. Returns the route index, or -1 with *status 404 or 405 (and
 * allow filled with the methods the path has). Strips one trailing slash. Parameter names and
 * values are malloc'd for the caller to free. */
int http_match(const char *method, const char *path, char **names, char **values,
               int *nvalues, int *status, char *allow, size_t allowlen);

/* Request accessors. */
saed_app *http_app(http_req *r);
const char *http_param(http_req *r, const char *name);
const char *http_query(http_req *r, const char *name);
const char *http_header(http_req *r, const char *name);
json_t *http_json(http_req *r);            /* parsed body of a ROUTE_JSON route (borrowed) */
/* The raw request body (any route; NUL-terminated, NULL when empty), for bodies that are not
 * JSON, such as uploaded files. */
const char *http_body(http_req *r, size_t *len);
const char *http_request_id(http_req *r);
/* A database connection for this request, released after the reply. NULL when none can be
 * had, in which case a 503 has already been sent. */
db_conn *http_db(http_req *r);

/* Replies. The body and headers added by http_add_header go out together. */
void http_add_header(http_req *r, const char *name, const char *value);
void http_reply_json(http_req *r, int status, json_t *body);   /* steals body */
/* A /v1 answer goes out with snake_case keys (the caller's casing; SAED_V1_WIRE_CASE): stream
 * writers rename their frames with wire_snake_keys (server/wire_case.h) when true. */
bool http_v1_snake(const http_req *r);
void http_reply_raw(http_req *r, int status, const char *content_type, const char *body, size_t len);
/* Sends len bytes at data without copying them; done(cls) runs once they are no longer needed
 * (also when the reply cannot be queued). For bodies shared between requests (a cache). */
void http_reply_shared(http_req *r, int status, const char *content_type, const char *data, size_t len,
                       void (*done)(void *cls), void *cls);
/* Streams size bytes from fd (from offset 0); the fd is closed once sent. */
void http_reply_fd(http_req *r, int status, const char *content_type, int fd, size_t size);
void http_reply_error(http_req *r, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Maps a failed database result to 409/503/500 with a message; never exposes SQL text for 500. */
void http_reply_db_error(http_req *r, const PGresult *res, const char *what);

/* Compute routes: runs fn(r, ud) on the app's compute pool while the connection is suspended,
 * so the HTTP thread serves other connections meanwhile. fn replies exactly once, as a handler
 * does (http_db works there too); the reply goes out when fn returns (or, for a streaming
 * reply, as soon as http_reply_stream is called). When every compute slot
 * is taken, replies 503 `busy` with Retry-After and returns -1: ud is then still the caller's.
 * A handler that defers must not reply itself. */
typedef void (*http_task)(http_req *r, void *ud);
int http_defer(http_req *r, http_task fn, void *ud);

/* Streaming replies, from a compute task only (the body is written while the task runs, e.g.
 * server-sent events). Starts a response of unknown length (chunked) with status and
 * content_type and returns the stream the task writes to; from then on the task must not touch
 * r (the request may finish at any time) and must end the stream with http_stream_end. NULL
 * when the response cannot be created (a 500 is then the reply, as usual). */
typedef struct http_stream http_stream;
http_stream *http_reply_stream(http_req *r, int status, const char *content_type);
/* Queues len bytes. supersede: a later superseding write replaces this piece if the client has
 * not started reading it (for cumulative frames, where only the latest matters to a slow
 * client). -1 once the client is gone (or too far behind): the task should stop. */
int http_stream_write(http_stream *s, const char *data, size_t len, bool supersede);
/* Whether the client went away; long tasks check it between steps. */
bool http_stream_closed(http_stream *s);
/* Ends the body (the client sees a complete response unless it is gone) and releases s. */
void http_stream_end(http_stream *s);

http_server *http_start(saed_app *app, char *err, size_t errlen);
/* Stops accepting; in-flight requests continue. */
void http_quiesce(http_server *s);
int http_in_flight(http_server *s);
/* Connections still open, idle keep-alive ones included. */
int http_open_connections(http_server *s);
void http_stop(http_server *s);

#endif
