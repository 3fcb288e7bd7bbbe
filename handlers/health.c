/* health.c: liveness and readiness. readyz asks the database itself, so it also refreshes the
 * schema state that guards the write routes, and reports job workers stopped by a failed
 * compute device. */
#include <stdatomic.h>

#include "handlers/handlers.h"
#include "server/log.h"
#include "server/worker.h"

void h_healthz(http_req *r)
{
    http_reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

void h_readyz(http_req *r)
{
    saed_app *app = http_app(r);
    enum db_acquire_err why;
    char err[512];
    db_conn *c = db_acquire(app->pool, app->cfg->db_wait_ms, &why, err, sizeof err);
    if (!c) {
        /* The reason (host, socket path, user) goes to the log, not to the client. */
        if (why == DB_ACQ_DOWN) {
            atomic_store(&app->schema_version, -1);
            log_warn("readyz: database unavailable: %s", err);
        }
        http_add_header(r, "Retry-After", "5");
        http_reply_error(r, 503, "not_ready", why == DB_ACQ_BUSY ? "all database connections are busy" : "database unavailable");
        return;
    }
    int v = migrate_current(c, err, sizeof err);
    db_release(app->pool, c);
    atomic_store(&app->schema_version, v);
    int head = migrate_head(&app->migrations), bad;
    if (v < 0) {
        log_warn("readyz: %s", err);
        http_add_header(r, "Retry-After", "5");
        http_reply_error(r, 503, "not_ready", "database unavailable");
    } else if (v == head && (bad = workers_unhealthy(app->workers, NULL, 0)) > 0) {
        /* A worker whose GPU failed takes no more jobs and a failed CUDA context does not
         * recover: restarting the process is the cure. The reason (device, paths) is logged. */
        http_add_header(r, "Retry-After", "5");
        http_reply_error(r, 503, "not_ready", "%d of %d job workers stopped: their compute device failed", bad,
                         app->cfg->workers);
    } else if (v != head) {
        http_add_header(r, "Retry-After", "5");
        http_reply_error(r, 503, "not_ready", "database schema is at version %d, this saed needs %d: run `saed migrate`", v, head);
    } else {
        http_reply_json(r, 200, json_pack("{s:s,s:s,s:i}", "status", "ready", "database", "ok", "schemaVersion", v));
    }
}
