/* app.h: the process-wide state of a running saed, shared by the HTTP layer, the handlers and
 * the background tasks. Built by serve.c; handlers reach it through http_app(). */
#ifndef SAED_APP_H
#define SAED_APP_H

#include <stdatomic.h>
#include <time.h>

#include "db/db.h"
#include "db/migrate.h"
#include "server/config.h"

typedef struct saed_app {
    saed_config *cfg;
    db_pool *pool;
    migration_set migrations;
    atomic_int schema_version;  /* last seen; -1 = database unreachable */
    time_t started_at;
    char worker_prefix[300];    /* "host:pid", prefix of this process's job worker ids */
    struct worker_pool *workers;/* job workers of this process (NULL when SAED_WORKERS is 0) */
    struct compute_pool *compute;/* runs compute routes off the HTTP threads (http_defer) */
    struct engines *engines;    /* loaded models and SAEs, shared by compute routes and workers */
    struct fcache *fcache;      /* GET /api/feature responses (NULL when SAED_FEATURE_CACHE is 0) */
    char *openapi;              /* the spec served at /openapi.yaml */
    size_t openapi_len;
} saed_app;

static inline int app_schema_ok(saed_app *a)
{
    return atomic_load(&a->schema_version) == migrate_head(&a->migrations);
}

#endif
