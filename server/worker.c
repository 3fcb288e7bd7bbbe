/* worker.c: see worker.h. Each thread owns a one-connection pool (so it reconnects with
 * backoff like the HTTP threads); thread 0 also runs the lease sweeper. A job's outcome is
 * written only by the thread holding its lease (attempt-scoped statements in db/jobs.c). */
#include "server/worker.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <time.h>

#include "server/job_autointerp.h"
#include "server/job_dashboard.h"
#include "server/job_pull.h"
#include "server/log.h"

#define BEAT_EVERY_S_MAX 5.0
#define POLL_MS 2000
#define SWEEP_EVERY_S 10.0

struct worker_pool {
    const saed_config *cfg;
    struct engines *engines;
    char prefix[300];
    int n;
    pthread_t *threads;
    pthread_t listener;
    int has_listener;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned long wakeups;
    atomic_int stopping, busy, unhealthy;
    char unhealthy_why[512];  /* under mu */
};

typedef struct worker_arg {
    worker_pool *p;
    int index;
} worker_arg;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int job_heartbeat_json(job_ctx *c, const char *progress_json, int force)
{
    if (atomic_load(&c->pool->stopping)) return c->stop = 1;
    double t = now_s(), every = c->cfg->job_lease_s / 3.0;
    if (every > BEAT_EVERY_S_MAX) every = BEAT_EVERY_S_MAX;
    if (!force && t - c->last_beat < every) return 0;
    c->last_beat = t;
    int cancel = 0, rc = jobs_heartbeat(c->db, c->j, c->worker_id, c->cfg->job_lease_s, progress_json, &cancel);
    if (rc == 0) {
        log_warn("job %lld: lease lost (attempt %d); stopping", (long long)c->j->id, c->j->attempt);
        c->lease_lost = 1;
        return c->stop = 1;
    }
    if (cancel) c->stop = 1;
    return cancel; /* a failed heartbeat (-1) is retried at the next call; the lease is 60 s */
}

int job_progress(job_ctx *c, const char *phase, int64_t done, int64_t total, int64_t tokens)
{
    if (atomic_load(&c->pool->stopping)) return c->stop = 1;
    double t = now_s(), every = c->cfg->job_lease_s / 3.0;
    if (every > BEAT_EVERY_S_MAX) every = BEAT_EVERY_S_MAX;
    if (t - c->last_beat < every && done < total) return 0;
    double el = t - c->started, rate = el > 0 ? tokens / el : 0;
    double frac = total > 0 ? (double)done / total : 0, eta = frac > 0 ? el / frac - el : 0;
    char prog[512];
    snprintf(prog, sizeof prog,
             "{\"phase\":\"%s\",\"promptsDone\":%lld,\"promptsTotal\":%lld,\"tokensPerSecond\":%.0f,\"etaSeconds\":%.0f}",
             phase, (long long)done, (long long)total, rate, eta);
    return job_heartbeat_json(c, prog, 1);
}

int job_progress_bytes(job_ctx *c, const char *phase, int64_t done, int64_t total, int64_t fetched)
{
    if (atomic_load(&c->pool->stopping)) return c->stop = 1;
    double t = now_s(), every = c->cfg->job_lease_s / 3.0;
    if (every > BEAT_EVERY_S_MAX) every = BEAT_EVERY_S_MAX;
    if (t - c->last_beat < every && done < total) return 0;
    double el = t - c->started, rate = el > 0 ? fetched / el : 0;
    double eta = rate > 0 ? (double)(total - done) / rate : 0;
    char prog[512];
    snprintf(prog, sizeof prog,
             "{\"phase\":\"%s\",\"bytesDone\":%lld,\"bytesTotal\":%lld,\"bytesPerSecond\":%.0f,\"etaSeconds\":%.0f}",
             phase, (long long)done, (long long)total, rate, eta);
    return job_heartbeat_json(c, prog, 1);
}

/* After the job is handed back (so that /readyz saying so means the job already waits for
 * another worker): counts the worker as stopped when its compute device failed. Returns 1 then. */
static int mark_failed(worker_pool *p, const char *wid, const job_ctx *c, const char *err)
{
    if (!c->device_failed) return 0;
    log_error("worker %s: compute device failed, taking no more jobs: %s", wid, err);
    pthread_mutex_lock(&p->mu);
    if (!p->unhealthy_why[0]) snprintf(p->unhealthy_why, sizeof p->unhealthy_why, "worker %s: %s", wid, err);
    pthread_mutex_unlock(&p->mu);
    atomic_fetch_add(&p->unhealthy, 1);
    return 1;
}

/* Returns 1 when the worker's compute device failed. */
static int run_one(worker_pool *p, db_conn *db, const char *wid, int slot, job *j)
{
    job_ctx c = {.j = j, .db = db, .worker_id = wid, .cfg = p->cfg, .pool = p, .engines = p->engines,
                 .last_beat = now_s(), .started = now_s(), .slot = slot};
    char err[1024] = "";
    log_info("job %lld (%s) attempt %d/%d started by %s", (long long)j->id, j->kind, j->attempt, j->max_attempts, wid);
    int r = !strcmp(j->kind, "dashboard")    ? job_dashboard_run(&c, err, sizeof err)
            : !strcmp(j->kind, "autointerp") ? job_autointerp_run(&c, err, sizeof err)
            : !strcmp(j->kind, JOB_PULL_KIND) ? job_pull_run(&c, err, sizeof err)
                                             : JOB_FATAL;
    if (r == JOB_FATAL && !err[0]) snprintf(err, sizeof err, "no runner for job kind '%s'", j->kind);
    char st[32] = "";
    if (r == JOB_DONE) {
        log_info("job %lld completed", (long long)j->id);
    } else if (r == JOB_STOPPED) {
        if (c.lease_lost) return mark_failed(p, wid, &c, err);
        if (atomic_load(&p->stopping)) {
            /* Shutting down: hand the job back at once rather than waiting for the lease. */
            jobs_fail(db, j, "worker shut down", 0, st, sizeof st);
            log_info("job %lld handed back (%s)", (long long)j->id, st);
        } else {
            jobs_mark_cancelled(db, j);
            log_info("job %lld cancelled", (long long)j->id);
        }
    } else {
        if (jobs_fail(db, j, err, r == JOB_FATAL, st, sizeof st) == 1)
            log_warn("job %lld attempt %d failed (%s): %s", (long long)j->id, j->attempt, st, err);
    }
    return mark_failed(p, wid, &c, err);
}

int workers_run_job(worker_pool *p, db_conn *db, const char *worker_id, job *j) { return run_one(p, db, worker_id, 0, j); }

static void *worker_main(void *arg)
{
    worker_arg *a = arg;
    worker_pool *p = a->p;
    char wid[340];
    snprintf(wid, sizeof wid, "%s:%d", p->prefix, a->index);
    db_pool *pool = db_pool_create(p->cfg->database_url, 1);
    static const char *const kinds[] = {"dashboard", "autointerp", JOB_PULL_KIND, NULL};
    double last_sweep = 0;
    int failed = 0;
    while (pool && !atomic_load(&p->stopping)) {
        enum db_acquire_err why;
        char err[256];
        db_conn *db = db_acquire(pool, 1000, &why, err, sizeof err);
        int got = 0;
        if (db) {
            double sweep_every = p->cfg->job_lease_s < SWEEP_EVERY_S ? p->cfg->job_lease_s : SWEEP_EVERY_S;
            if (a->index == 0 && now_s() - last_sweep > sweep_every) {
                last_sweep = now_s();
                int n = jobs_sweep(db);
                if (n > 0) log_warn("sweeper: %d expired lease(s) returned to the queue", n);
            }
            job j;
            got = failed ? 0 : jobs_claim(db, wid, p->cfg->job_lease_s, kinds, &j);
            if (got == 1) {
                atomic_fetch_add(&p->busy, 1);
                failed = run_one(p, db, wid, a->index, &j);
                atomic_fetch_sub(&p->busy, 1);
                job_clear(&j);
            }
            db_release(pool, db);
        }
        if (got == 1) continue;
        /* Idle: until a NOTIFY relay, the poll interval, or shutdown. */
        pthread_mutex_lock(&p->mu);
        unsigned long seen = p->wakeups;
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_sec += POLL_MS / 1000;
        while (seen == p->wakeups && !atomic_load(&p->stopping))
            if (pthread_cond_timedwait(&p->cv, &p->mu, &dl)) break;
        pthread_mutex_unlock(&p->mu);
    }
    db_pool_destroy(pool);
    free(a);
    return NULL;
}

/* Relays NOTIFY saed_jobs to idle workers; polling in worker_main covers the gaps while this
 * connection is down. */
static void *listener_main(void *arg)
{
    worker_pool *p = arg;
    db_conn *c = NULL;
    int backoff = 100;
    while (!atomic_load(&p->stopping)) {
        char err[256];
        if (!c) {
            c = db_connect(p->cfg->database_url, err, sizeof err);
            PGresult *r = c ? db_exec(c, DB_LISTEN_JOBS, NULL) : NULL;
            if (!c || db_kind(r) != DB_OK) {
                PQclear(r);
                db_close(c);
                c = NULL;
                struct timespec ts = {backoff / 1000, (backoff % 1000) * 1000000L};
                nanosleep(&ts, NULL);
                backoff = backoff < 5000 ? backoff * 2 : 5000;
                continue;
            }
            PQclear(r);
            backoff = 100;
            workers_wake(p); /* anything queued while we were away */
        }
        int fd = PQsocket(db_pg(c));
        fd_set rf;
        FD_ZERO(&rf);
        FD_SET(fd, &rf);
        struct timeval tv = {1, 0};
        int k = select(fd + 1, &rf, NULL, NULL, &tv);
        if (k < 0) continue;
        if (k > 0 && !PQconsumeInput(db_pg(c))) {
            db_close(c);
            c = NULL;
            continue;
        }
        PGnotify *n;
        int any = 0;
        while ((n = PQnotifies(db_pg(c)))) {
            any = 1;
            PQfreemem(n);
        }
        if (any) workers_wake(p);
    }
    db_close(c);
    return NULL;
}

worker_pool *workers_start(const saed_config *cfg, const char *id_prefix, int n, struct engines *eng, char *err,
                           size_t errlen)
{
    worker_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->cfg = cfg;
    p->engines = eng;
    snprintf(p->prefix, sizeof p->prefix, "%s", id_prefix);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->threads = calloc((size_t)(n > 0 ? n : 1), sizeof *p->threads);
    for (int i = 0; i < n; i++) {
        worker_arg *a = malloc(sizeof *a);
        a->p = p;
        a->index = i;
        if (pthread_create(&p->threads[i], NULL, worker_main, a)) {
            snprintf(err, errlen, "cannot start worker thread %d", i);
            free(a);
            break;
        }
        p->n++;
    }
    if (p->n > 0 && pthread_create(&p->listener, NULL, listener_main, p) == 0) p->has_listener = 1;
    return p;
}

void workers_wake(worker_pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->wakeups++;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

void workers_stop(worker_pool *p)
{
    if (!p) return;
    atomic_store(&p->stopping, 1);
    workers_wake(p);
    for (int i = 0; i < p->n; i++) pthread_join(p->threads[i], NULL);
    if (p->has_listener) pthread_join(p->listener, NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->threads);
    free(p);
}

int workers_unhealthy(worker_pool *p, char *why, size_t n)
{
    if (!p) return 0;
    int k = atomic_load(&p->unhealthy);
    if (why && n) {
        pthread_mutex_lock(&p->mu);
        snprintf(why, n, "%s", p->unhealthy_why);
        pthread_mutex_unlock(&p->mu);
    }
    return k;
}

void workers_counts(worker_pool *p, int *busy, int *total)
{
    *busy = p ? atomic_load(&p->busy) : 0;
    *total = p ? p->n : 0;
}
