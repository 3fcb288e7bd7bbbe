/* meta.c: the service describing itself: the OpenAPI document and Prometheus metrics. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers/handlers.h"
#include "server/fcache.h"
#include "server/metrics.h"
#include "server/compute.h"
#include "server/engines.h"
#include "server/worker.h"

void h_openapi(http_req *r)
{
    saed_app *app = http_app(r);
    http_reply_raw(r, 200, "application/yaml", app->openapi, app->openapi_len);
}

void h_metrics(http_req *r)
{
    saed_app *app = http_app(r);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) {
        http_reply_error(r, 500, "internal", "out of memory");
        return;
    }
    metrics_render_http(f);
    db_pool_stats st;
    db_pool_get_stats(app->pool, &st);
    fprintf(f, "# HELP saed_db_pool_connections Database pool connections by state.\n"
               "# TYPE saed_db_pool_connections gauge\n"
               "saed_db_pool_connections{state=\"in_use\"} %d\n"
               "saed_db_pool_connections{state=\"idle\"} %d\n"
               "saed_db_pool_connections{state=\"disconnected\"} %d\n",
            st.in_use, st.size - st.in_use, st.size - st.connected);
    fprintf(f, "# HELP saed_db_pool_size Configured database pool size.\n# TYPE saed_db_pool_size gauge\n"
               "saed_db_pool_size %d\n", st.size);
    fprintf(f, "# HELP saed_db_pool_acquired_total Connections checked out.\n# TYPE saed_db_pool_acquired_total counter\n"
               "saed_db_pool_acquired_total %llu\n", st.acquired);
    fprintf(f, "# HELP saed_db_pool_timeouts_total Check-outs that found every connection busy.\n"
               "# TYPE saed_db_pool_timeouts_total counter\nsaed_db_pool_timeouts_total %llu\n", st.timeouts);
    fprintf(f, "# HELP saed_db_connect_failures_total Failed (re)connections.\n"
               "# TYPE saed_db_connect_failures_total counter\nsaed_db_connect_failures_total %llu\n",
            st.connect_failures);
    fprintf(f, "# HELP saed_schema_version Schema version last seen in the database (-1: unreachable).\n"
               "# TYPE saed_schema_version gauge\nsaed_schema_version %d\n", atomic_load(&app->schema_version));
    fcache_render_metrics(app->fcache, f);
    int busy, total;
    workers_counts(app->workers, &busy, &total);
    fprintf(f, "# HELP saed_workers Job worker threads of this process by state.\n# TYPE saed_workers gauge\n"
               "saed_workers{state=\"busy\"} %d\nsaed_workers{state=\"idle\"} %d\n", busy, total - busy);
    if (app->compute) {
        int running, queued, threads, cap;
        compute_stats(app->compute, &running, &queued, &threads, &cap);
        fprintf(f, "# HELP saed_compute_tasks Compute requests (activations, search, steering) by state.\n"
                   "# TYPE saed_compute_tasks gauge\nsaed_compute_tasks{state=\"running\"} %d\n"
                   "saed_compute_tasks{state=\"queued\"} %d\n"
                   "# HELP saed_compute_capacity Compute threads and queue slots.\n# TYPE saed_compute_capacity gauge\n"
                   "saed_compute_capacity{kind=\"threads\"} %d\nsaed_compute_capacity{kind=\"queue\"} %d\n",
                running, queued, threads, cap);
    }
    if (app->engines) {
        int n;
        size_t bytes;
        long long loads, evictions;
        engines_stats(app->engines, &n, &bytes, &loads, &evictions);
        fprintf(f, "# HELP saed_engine_cache_entries Models and SAEs held in memory.\n# TYPE saed_engine_cache_entries gauge\n"
                   "saed_engine_cache_entries %d\n"
                   "# HELP saed_engine_cache_bytes Bytes held by loaded models and SAEs.\n# TYPE saed_engine_cache_bytes gauge\n"
                   "saed_engine_cache_bytes %zu\n"
                   "# HELP saed_engine_cache_loads_total Models and SAEs loaded from disk.\n# TYPE saed_engine_cache_loads_total counter\n"
                   "saed_engine_cache_loads_total %lld\n"
                   "# HELP saed_engine_cache_evictions_total Entries evicted for the memory budget.\n"
                   "# TYPE saed_engine_cache_evictions_total counter\nsaed_engine_cache_evictions_total %lld\n",
                n, bytes, loads, evictions);
    }
    /* Queue depth by state, from the database (all hosts' jobs). */
    enum db_acquire_err why;
    char err[128];
    db_conn *c = db_acquire(app->pool, 200, &why, err, sizeof err);
    if (c) {
        PGresult *res = db_exec(c, DB_JOB_COUNTS, NULL);
        static const char *const states[] = {"available", "running", "completed", "failed", "cancelled"};
        if (db_kind(res) == DB_OK) {
            fprintf(f, "# HELP saed_jobs Jobs in the queue by state.\n# TYPE saed_jobs gauge\n");
            for (int s = 0; s < 5; s++) {
                long long n = 0;
                for (int i = 0; i < PQntuples(res); i++)
                    if (!strcmp(PQgetvalue(res, i, 0), states[s])) n = atoll(PQgetvalue(res, i, 1));
                fprintf(f, "saed_jobs{state=\"%s\"} %lld\n", states[s], n);
            }
        }
        PQclear(res);
        db_release(app->pool, c);
    }
    fprintf(f, "# HELP process_start_time_seconds Start time of the process since the Unix epoch.\n"
               "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds %lld\n",
            (long long)app->started_at);
    fclose(f);
    http_reply_raw(r, 200, "text/plain; version=0.0.4; charset=utf-8", buf, len);
    free(buf);
}
