/* api_http.c: the HTTP layer over real loopback HTTP against a real saed and PostgreSQL:
 * routing answers, body limits, JSON and content-type errors, auth, CORS, request ids, the
 * OpenAPI document and metrics. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "db/migrate.h"
#include "tests/srv.h"
#include "tests/t.h"

/* The schema version a migrated database reports: the newest file in migrations/. */
static int head_version(void)
{
    migration_set m;
    char err[256];
    if (migrate_load("migrations", &m, err, sizeof err)) return -1;
    int h = migrate_head(&m);
    migrate_free(&m);
    return h;
}

#define KEY "test-key-0123456789abcdef"

/* A migrated server on a fresh database, with extra args. */
static int start(srv *s, const char *const *extra)
{
    const char *args[16] = {"--migrate", "--data-roots", "tests/data"};
    int n = 3;
    for (int i = 0; extra && extra[i] && n < 15; i++) args[n++] = extra[i];
    return srv_fresh(s, NULL, 0, args);
}

TEST(api_health_ready_openapi)
{
    srv s;
    if (start(&s, NULL)) return;
    resp r;
    http(&s, "GET", "/healthz", NULL, NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK_STR(r.body, "{\"status\":\"ok\"}");
    resp_free(&r);
    http(&s, "GET", "/readyz", NULL, NULL, &r);
    CHECK_INT(r.status, 200);
    char want[64];
    snprintf(want, sizeof want, "\"schemaVersion\":%d", head_version());
    CHECK_CONTAINS(r.body, want);
    resp_free(&r);
    http(&s, "GET", "/openapi.yaml", NULL, NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK_CONTAINS(r.ctype, "application/yaml");
    CHECK_CONTAINS(r.body, "openapi: 3.1");
    resp_free(&r);
    CHECK_INT(srv_stop(&s), 0);
}

TEST(api_404_405_trailing_slash)
{
    srv s;
    if (start(&s, NULL)) return;
    resp r;
    http(&s, "GET", "/no/such/route", NULL, NULL, &r);
    CHECK_INT(r.status, 404);
    CHECK_CONTAINS(r.body, "route_not_found");
    resp_free(&r);
    http(&s, "PUT", "/api/models", NULL, "{}", &r);
    CHECK_INT(r.status, 405);
    CHECK_STR(r.allow, "GET, HEAD, POST, OPTIONS");
    resp_free(&r);
    http(&s, "DELETE", "/healthz", NULL, NULL, &r);
    CHECK_INT(r.status, 405);
    CHECK_STR(r.allow, "GET, HEAD, OPTIONS");
    resp_free(&r);
    http(&s, "GET", "/healthz/", NULL, NULL, &r);
    CHECK_INT(r.status, 200);
    resp_free(&r);
    http(&s, "GET", "/api/models/", NULL, NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK_STR(r.body, "[]");
    resp_free(&r);
    http(&s, "GET", "/api/models/nope/", NULL, NULL, &r);
    CHECK_INT(r.status, 404);
    CHECK_CONTAINS(r.body, "\"code\":\"not_found\"");
    resp_free(&r);
    /* Bytes that are not UTF-8 in the path still get a valid JSON error. */
    http(&s, "GET", "/%FF", NULL, NULL, &r);
    CHECK_INT(r.status, 404);
    CHECK_CONTAINS(r.body, "no route for /?");
    resp_free(&r);
    http(&s, "GET", "/api/models/%E9t%E9", NULL, NULL, &r);
    CHECK_INT(r.status, 404);
    resp_free(&r);
    CHECK_INT(srv_stop(&s), 0);
}

/* Reads a hand-sent request's answer until the server closes (or n - 1 bytes), NUL-terminated,
 * and closes fd. */
static void recv_close(int fd, char *buf, size_t n)
{
    size_t got = 0;
    ssize_t k;
    while (got < n - 1 && (k = recv(fd, buf + got, n - 1 - got, 0)) > 0) got += (size_t)k;
    buf[got] = '\0';
    close(fd);
}

TEST(api_413_body_limit)
{
    srv s;
    if (start(&s, (const char *const[]){"--body-limit", "4K", NULL})) return;
    char *big = malloc(8192);
    memset(big, ' ', 8191);
    big[0] = '{';
    big[8190] = '}';
    big[8191] = '\0';
    resp r;
    http(&s, "POST", "/api/models", NULL, big, &r);
    CHECK_INT(r.status, 413);
    CHECK_CONTAINS(r.body, "4096 bytes");
    resp_free(&r);
    /* Chunked upload: no Content-Length, the cap applies while reading. */
    http(&s, "POST", "/api/models", (const char *const[]){"Content-Type: application/json", "Transfer-Encoding: chunked", NULL}, big, &r);
    CHECK_INT(r.status, 413);
    resp_free(&r);
    /* A client that sends the whole body before reading still receives the 413. */
    int fd = srv_connect(&s);
    char head[256];
    snprintf(head, sizeof head, "POST /api/models HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                "Content-Length: %zu\r\nConnection: close\r\n\r\n", strlen(big));
    CHECK(send(fd, head, strlen(head), 0) > 0);
    CHECK(send(fd, big, strlen(big), 0) == (ssize_t)strlen(big));
    char buf[2048];
    recv_close(fd, buf, sizeof buf);
    CHECK_CONTAINS(buf, "HTTP/1.1 413");
    CHECK_CONTAINS(buf, "body_too_large");
    big[4000] = '\0';
    big[3999] = '}';
    http(&s, "POST", "/api/models", NULL, big, &r); /* under the cap: reaches validation */
    CHECK_INT(r.status, 400);
    CHECK_CONTAINS(r.body, "id: required");
    resp_free(&r);
    free(big);
    CHECK_INT(srv_stop(&s), 0);
}

/* Malformed chunked encoding is refused by libmicrohttpd before saed sees the request (README:
 * its own body, a 400): the status is right, the connection closes, and the server stays up. */
TEST(api_malformed_chunked_is_400_and_the_server_stays_up)
{
    srv s;
    if (start(&s, NULL)) return;
    static const char *const bad[] = {"zz\r\n{}\r\n0\r\n\r\n", "-1\r\n{}\r\n0\r\n\r\n", "2\r\n{}XX0\r\n\r\n"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int fd = srv_connect(&s);
        struct timeval tv = {.tv_sec = 10};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        char req[512];
        snprintf(req, sizeof req, "POST /api/models HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                  "Transfer-Encoding: chunked\r\n\r\n%s", bad[i]);
        CHECK(send(fd, req, strlen(req), 0) > 0);
        char buf[2048];
        recv_close(fd, buf, sizeof buf);
        if (strncmp(buf, "HTTP/1.1 400", 12)) t_fail(__FILE__, __LINE__, "chunks %zu: %.200s", i, buf);
    }
    resp r;
    http(&s, "GET", "/healthz", NULL, NULL, &r);
    CHECK_INT(r.status, 200);
    resp_free(&r);
    CHECK_INT(srv_stop(&s), 0);
}

TEST(api_400_malformed_json_and_415)
{
    srv s;
    if (start(&s, NULL)) return;
    resp r;
    http(&s, "POST", "/api/models", NULL, "{\"id\": \"x\", ", &r);
    CHECK_INT(r.status, 400);
    CHECK_CONTAINS(r.body, "\"code\":\"invalid_json\"");
    CHECK_CONTAINS(r.body, "malformed JSON at line 1");
    resp_free(&r);
    http(&s, "POST", "/api/models", NULL, "[1,2]", &r);
    CHECK_INT(r.status, 400);
    CHECK_CONTAINS(r.body, "JSON object");
    resp_free(&r);
    http(&s, "POST", "/api/models", NULL, "{\"id\": 5, \"path\": \"x\"}", &r);
    CHECK_INT(r.status, 400);
    CHECK_CONTAINS(r.body, "invalid_field");
    resp_free(&r);
    http(&s, "POST", "/api/models", (const char *const[]){"Content-Type: text/plain", NULL}, "{}", &r);
    CHECK_INT(r.status, 415);
    CHECK_CONTAINS(r.body, "text/plain");
    resp_free(&r);
    http(&s, "POST", "/api/models", (const char *const[]){"Content-Type: application/json; charset=utf-8", NULL},
         "{\"id\":\"m1\",\"path\":\"tests/data/models/tiny-a\"}", &r);
    CHECK_INT(r.status, 201);
    resp_free(&r);
    CHECK_INT(srv_stop(&s), 0);
}

TEST(api_auth_401_then_ok)
{
    srv s;
    if (start(&s, (const char *const[]){"--api-keys", "another-key-aaaaaaaaaaaa," KEY, NULL})) return;
    const char *body = "{\"id\":\"tiny\",\"path\":\"tests/data/models/tiny-a\"}";
    resp r;
    http(&s, "POST", "/api/models", NULL, body, &r);
    CHECK_INT(r.status, 401);
    CHECK_CONTAINS(r.body, "x-api-key");
    resp_free(&r);
    http(&s, "POST", "/api/models", (const char *const[]){"Content-Type: application/json", "x-api-key: " KEY "x", NULL}, body, &r);
    CHECK_INT(r.status, 401);
    resp_free(&r);
    http(&s, "POST", "/api/models", (const char *const[]){"Content-Type: application/json", "x-api-key: test-key-0123456789abcdeX", NULL}, body, &r);
    CHECK_INT(r.status, 401);
    resp_free(&r);
    http(&s, "DELETE", "/api/models/tiny", NULL, NULL, &r);
    CHECK_INT(r.status, 401);
    resp_free(&r);
    http(&s, "POST", "/api/models", (const char *const[]){"Content-Type: application/json", "x-api-key: " KEY, NULL}, body, &r);
    CHECK_INT(r.status, 201);
    CHECK_STR(r.location, "/api/models/tiny");
    resp_free(&r);
    /* Read routes stay public. */
    http(&s, "GET", "/api/models/tiny", NULL, NULL, &r);
    CHECK_INT(r.status, 200);
    resp_free(&r);
    http(&s, "DELETE", "/api/models/tiny", (const char *const[]){"x-api-key: " KEY, NULL}, NULL, &r);
    CHECK_INT(r.status, 204);
    resp_free(&r);
    CHECK_INT(srv_stop(&s), 0);
}

TEST(api_cors_preflight_and_request_id)
{
    srv s;
    if (start(&s, NULL)) return;
    resp r;
    http(&s, "OPTIONS", "/api/models", (const char *const[]){"Origin: http://example.test",
         "Access-Control-Request-Method: POST", "Access-Control-Request-Headers: x-api-key", NULL}, NULL, &r);
    CHECK_INT(r.status, 204);
    CHECK_STR(r.acao, "*");
    resp_free(&r);
    http(&s, "GET", "/healthz", (const char *const[]){"X-Request-Id: my-trace.42", NULL}, NULL, &r);
    CHECK_STR(r.request_id, "my-trace.42");
    resp_free(&r);
    http(&s, "GET", "/healthz", (const char *const[]){"X-Request-Id: bad id with spaces", NULL}, NULL, &r);
    CHECK_INT((int)strlen(r.request_id), 24);
    resp_free(&r);
    CHECK_INT(srv_stop(&s), 0);
    /* The access log has one JSON line per request with the request id. */
    char path[300], buf[65536] = "";
    snprintf(path, sizeof path, "%s/stdout", s.dir);
    FILE *f = fopen(path, "r");
    if (f) {
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        buf[n] = '\0';
        fclose(f);
    }
    CHECK_CONTAINS(buf, "\"type\":\"access\",\"method\":\"GET\",\"path\":\"/healthz\",\"status\":200");
    CHECK_CONTAINS(buf, "\"request_id\":\"my-trace.42\"");
    CHECK_CONTAINS(buf, "\"method\":\"OPTIONS\",\"path\":\"/api/models\",\"status\":204");
}

TEST(api_metrics_counts_requests)
{
    srv s;
    if (start(&s, NULL)) return;
    resp r;
    for (int i = 0; i < 3; i++) {
        http(&s, "GET", "/healthz", NULL, NULL, &r);
        resp_free(&r);
    }
    http(&s, "GET", "/nope", NULL, NULL, &r);
    resp_free(&r);
    http(&s, "GET", "/metrics", NULL, NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK_CONTAINS(r.ctype, "text/plain");
    CHECK_CONTAINS(r.body, "saed_http_requests_total{route=\"GET /healthz\",status=\"200\"} 3\n");
    CHECK_CONTAINS(r.body, "saed_http_requests_total{route=\"unmatched\",status=\"404\"} 1\n");
    CHECK_CONTAINS(r.body, "saed_http_request_duration_seconds_count{route=\"GET /healthz\"} 3\n");
    CHECK_CONTAINS(r.body, "saed_db_pool_size 6\n");
    CHECK_CONTAINS(r.body, "saed_compute_capacity{kind=\"threads\"} 2\n");
    CHECK_CONTAINS(r.body, "saed_compute_tasks{state=\"running\"} 0\n");
    CHECK_CONTAINS(r.body, "saed_engine_cache_entries 0\n");
    char want[64];
    snprintf(want, sizeof want, "saed_schema_version %d\n", head_version());
    CHECK_CONTAINS(r.body, want);
    CHECK_CONTAINS(r.body, "process_start_time_seconds 1");
    resp_free(&r);
    CHECK_INT(srv_stop(&s), 0);
}
