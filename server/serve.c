/* serve.c: `saed serve`. The main thread runs a libuv loop that owns signals and timers; HTTP
 * requests run on libmicrohttpd's epoll thread pool. Shutdown order on SIGTERM/SIGINT: stop
 * accepting, let in-flight requests finish (bounded by SAED_SHUTDOWN_TIMEOUT), stop the HTTP
 * threads, hand this process's job leases back, close the pool, exit 0. */
#include "server/serve.h"

#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <unistd.h>
#include <uv.h>

#include "db/migrate.h"
#include "server/compute.h"
#include "server/engines.h"
#include "server/fcache.h"
#include "server/http.h"
#include "server/log.h"
#include "server/worker.h"

typedef struct serve_state {
    saed_app *app;
    http_server *http;
    uv_loop_t *loop;
    uv_signal_t sigint, sigterm;
    uv_timer_t drain, schema;
    uv_work_t schema_work;
    bool schema_busy;
    bool stopping;
    uint64_t drain_deadline;
    uint64_t idle_since;        /* when in-flight requests first reached 0 */
} serve_state;

/* True when every address the host resolves to is loopback. */
static bool host_is_loopback(const char *host)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai, *p;
    if (getaddrinfo(host, NULL, &hints, &ai)) return false;
    bool all = true;
    for (p = ai; p; p = p->ai_next) {
        if (p->ai_family == AF_INET) {
            uint32_t a = ntohl(((struct sockaddr_in *)p->ai_addr)->sin_addr.s_addr);
            all &= (a >> 24) == 127;
        } else if (p->ai_family == AF_INET6) {
            all &= IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)p->ai_addr)->sin6_addr) != 0;
        } else {
            all = false;
        }
    }
    freeaddrinfo(ai);
    return all;
}

static char *slurp(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "SAED_OPENAPI_FILE: %s: %s", path, strerror(errno));
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        snprintf(err, errlen, "SAED_OPENAPI_FILE: %s: read error", path);
        free(buf);
        fclose(f);
        return NULL;
    }
    fclose(f);
    buf[n] = '\0';
    *len = (size_t)n;
    return buf;
}

/* Schema state refresh runs on libuv's thread pool so a slow or dead database never delays
 * signal handling on the loop thread. */
static void schema_check_work(uv_work_t *w)
{
    serve_state *s = w->data;
    enum db_acquire_err why;
    char err[256];
    db_conn *c = db_acquire(s->app->pool, 1000, &why, err, sizeof err);
    if (!c) {
        if (why == DB_ACQ_DOWN) atomic_store(&s->app->schema_version, -1);
        return;
    }
    int v = migrate_current(c, err, sizeof err);
    db_release(s->app->pool, c);
    int old = atomic_exchange(&s->app->schema_version, v);
    if (old != v) log_info("database schema version %d (binary head %d)", v, migrate_head(&s->app->migrations));
}

static void schema_check_done(uv_work_t *w, int status)
{
    (void)status;
    ((serve_state *)w->data)->schema_busy = false;
}

static void on_schema_timer(uv_timer_t *t)
{
    serve_state *s = t->data;
    if (s->schema_busy || s->stopping) return;
    s->schema_busy = true;
    s->schema_work.data = s;
    uv_queue_work(s->loop, &s->schema_work, schema_check_work, schema_check_done);
}

static void on_drain_timer(uv_timer_t *t)
{
    serve_state *s = t->data;
    int n = http_in_flight(s->http);
    uint64_t now = uv_now(s->loop);
    if (n > 0 && now < s->drain_deadline) return;
    /* A finished request's connection may still be flushing its last bytes: stopping the
     * daemon now would reset it and the client would lose the end of the response. Give open
     * connections a moment to close by themselves (idle keep-alive ones will not). */
    if (n > 0) {
        s->idle_since = 0;
    } else if (http_open_connections(s->http) > 0 && now < s->drain_deadline) {
        if (!s->idle_since) s->idle_since = now;
        if (now - s->idle_since < 500) return;
    }
    if (n > 0) log_warn("shutdown timeout: abandoning %d in-flight request(s)", n);
    uv_timer_stop(&s->drain);
    uv_close((uv_handle_t *)&s->drain, NULL);
    uv_close((uv_handle_t *)&s->schema, NULL);
    uv_close((uv_handle_t *)&s->sigint, NULL);
    uv_close((uv_handle_t *)&s->sigterm, NULL);
}

static void on_signal(uv_signal_t *h, int signum)
{
    serve_state *s = h->data;
    if (s->stopping) {
        log_warn("second signal %d: stopping now", signum);
        s->drain_deadline = 0;
        return;
    }
    s->stopping = true;
    log_info("signal %d: stopping (in-flight requests get %d s)", signum, s->app->cfg->shutdown_timeout_s);
    http_quiesce(s->http);
    uv_timer_stop(&s->schema);
    s->drain_deadline = uv_now(s->loop) + (uint64_t)s->app->cfg->shutdown_timeout_s * 1000;
    uv_timer_init(s->loop, &s->drain);
    s->drain.data = s;
    uv_timer_start(&s->drain, on_drain_timer, 0, 20);
}

static void release_leases(saed_app *app)
{
    enum db_acquire_err why;
    char err[256];
    db_conn *c = db_acquire(app->pool, 1000, &why, err, sizeof err);
    if (!c) {
        log_warn("could not release job leases (%s); they expire on their own", err);
        return;
    }
    char prefix[320];
    snprintf(prefix, sizeof prefix, "%s:", app->worker_prefix);
    PGresult *r = db_exec(c, DB_JOBS_RELEASE_WORKER, (const char *const[]){prefix});
    if (db_kind(r) == DB_OK && strcmp(PQcmdTuples(r), "0")) log_info("released %s job lease(s)", PQcmdTuples(r));
    PQclear(r);
    db_release(app->pool, c);
}

int serve_main(saed_config *cfg)
{
    char err[1024];
    if (cfg->n_api_keys == 0 && !cfg->insecure && !host_is_loopback(cfg->listen_host)) {
        fprintf(stderr,
                "saed: refusing to listen on %s: no API keys are configured, so write routes would be open to the "
                "network. Set SAED_API_KEYS (--api-keys), or pass --insecure to accept that.\n",
                cfg->listen);
        return 2;
    }
    saed_app app = {.cfg = cfg, .started_at = time(NULL)};
    char host[256];
    gethostname(host, sizeof host);
    host[sizeof host - 1] = '\0';
    snprintf(app.worker_prefix, sizeof app.worker_prefix, "%s:%d", host, (int)getpid());
    if (migrate_load(cfg->migrations_dir, &app.migrations, err, sizeof err)) {
        fprintf(stderr, "saed: SAED_MIGRATIONS_DIR: %s\n", err);
        return 1;
    }
    if (!(app.openapi = slurp(cfg->openapi_file, &app.openapi_len, err, sizeof err))) {
        fprintf(stderr, "saed: %s\n", err);
        migrate_free(&app.migrations);
        return 1;
    }
    atomic_store(&app.schema_version, -1);
    if (cfg->migrate) {
        db_conn *c = db_connect(cfg->database_url, err, sizeof err);
        int applied = 0;
        if (!c || migrate_apply(c, &app.migrations, &applied, err, sizeof err)) {
            fprintf(stderr, "saed: --migrate: %s\n", err);
            db_close(c);
            free(app.openapi);
            migrate_free(&app.migrations);
            return 1;
        }
        db_close(c);
        log_info("applied %d migration(s); schema at version %d", applied, migrate_head(&app.migrations));
    }
    /* One connection per HTTP thread, compute thread and worker, one for the loop's checks. */
    app.pool = db_pool_create(cfg->database_url, cfg->http_threads + cfg->compute_threads + cfg->workers + 1);
    saed_backend *be = backend_cpu_open();
    app.engines = be ? engines_new(be, (size_t)cfg->engine_cache) : NULL;
    app.compute = compute_start(cfg->compute_threads, cfg->compute_queue, err, sizeof err);
    if (!app.pool || !app.engines || !app.compute) {
        fprintf(stderr, "saed: %s\n", app.compute ? "out of memory" : err);
        compute_stop(app.compute);
        engines_free(app.engines);
        backend_close(be);
        db_pool_destroy(app.pool);
        free(app.openapi);
        migrate_free(&app.migrations);
        return 1;
    }
    if (cfg->feature_cache > 0 && !(app.fcache = fcache_create((size_t)cfg->feature_cache, cfg->database_url)))
        log_warn("feature cache: could not start; serving every feature from the database");
    serve_state s = {.app = &app};
    uv_work_t first = {.data = &s};
    schema_check_work(&first);
    if (!app_schema_ok(&app))
        log_warn("database schema is not at version %d (seen %d): write routes answer 503 until `saed migrate` runs",
                 migrate_head(&app.migrations), atomic_load(&app.schema_version));

    signal(SIGPIPE, SIG_IGN);
    s.http = http_start(&app, err, sizeof err);
    if (!s.http) {
        fprintf(stderr, "saed: %s\n", err);
        compute_stop(app.compute);
        engines_free(app.engines);
        backend_close(be);
        fcache_destroy(app.fcache);
        db_pool_destroy(app.pool);
        free(app.openapi);
        migrate_free(&app.migrations);
        return 1;
    }
    log_info("listening on http://%s (%d HTTP threads, %d API key(s), %d data root(s))", cfg->listen,
             cfg->http_threads, cfg->n_api_keys, cfg->n_data_roots);

    if (cfg->workers > 0) {
        app.workers = workers_start(cfg, app.worker_prefix, cfg->workers, app.engines, err, sizeof err);
        if (!app.workers) log_error("job workers: %s", err);
        else log_info("%d job worker(s) started", cfg->workers);
    }
    s.loop = uv_default_loop();
    uv_signal_init(s.loop, &s.sigint);
    uv_signal_init(s.loop, &s.sigterm);
    s.sigint.data = s.sigterm.data = &s;
    uv_signal_start(&s.sigint, on_signal, SIGINT);
    uv_signal_start(&s.sigterm, on_signal, SIGTERM);
    uv_timer_init(s.loop, &s.schema);
    s.schema.data = &s;
    uv_timer_start(&s.schema, on_schema_timer, 5000, 5000);
    uv_run(s.loop, UV_RUN_DEFAULT);

    /* Compute tasks finish (long ones see compute_stopping) and resume their connections before
     * the daemon stops: MHD must not be stopped with suspended connections. The pool is freed
     * only after the daemon: until then HTTP threads may still reach it (refused with 503). */
    compute_drain(app.compute);
    http_stop(s.http);
    compute_stop(app.compute);
    /* Running jobs notice at their next progress call and are handed back to the queue. */
    workers_stop(app.workers);
    release_leases(&app);
    engines_free(app.engines);
    backend_close(be);
    fcache_destroy(app.fcache);
    uv_loop_close(s.loop);
    db_pool_destroy(app.pool);
    free(app.openapi);
    migrate_free(&app.migrations);
    log_info("stopped");
    return 0;
}
