/* worker.h: the job worker pool: dedicated threads (not libuv's shared pool) that claim jobs
 * from PostgreSQL, run them, keep their leases alive and record the outcome. Used by
 * `saed serve` (SAED_WORKERS threads) and `saed worker` (workers only, on any host that reaches
 * the database). Idle workers sleep until woken (NOTIFY saed_jobs, relayed by the caller) or
 * until the poll interval passes. */
#ifndef SAED_WORKER_H
#define SAED_WORKER_H

#include <stdint.h>

#include "db/jobs.h"
#include "server/config.h"

typedef struct worker_pool worker_pool;
struct engines;

/* What a job kind's runner gets: the job, its database connection, and a progress call that
 * heartbeats (rate-limited) and says whether to stop. */
typedef struct job_ctx {
    const job *j;
    db_conn *db;
    const char *worker_id;
    const saed_config *cfg;
    worker_pool *pool;
    struct engines *engines;   /* loaded models and SAEs shared with the process, or NULL */
    double last_beat, started;
    int lease_lost;
    int stop;       /* job_progress said stop (cancel, shutdown or lost lease) */
    int slot;       /* the worker's index in its pool: picks its GPU (device.h) */
    int device_failed; /* the runner's compute device failed (err says how): the worker stops */
} job_ctx;

/* Returns 0 to go on, 1 when the job was cancelled or its lease was lost (the runner stops). */
int job_progress(job_ctx *c, const char *phase, int64_t done, int64_t total, int64_t tokens);

/* Heartbeats with a runner's own progress JSON: at most every lease/3 (5 s at most) unless
 * force. 0 to go on, 1 to stop, as job_progress. */
int job_heartbeat_json(job_ctx *c, const char *progress_json, int force);
/* The same for a transfer: bytes done of total, and the rate (bytes/s over this attempt's
 * fetched bytes, those not already cached) with the ETA it gives. */
int job_progress_bytes(job_ctx *c, const char *phase, int64_t done, int64_t total, int64_t fetched);

/* Runner results. */
enum { JOB_DONE = 0, JOB_STOPPED = 1, JOB_RETRY = -1, JOB_FATAL = -2 };

/* eng (may be NULL: each job loads its own) is the process's engine cache, which jobs then
 * share with the compute routes; it must outlive the pool. */
worker_pool *workers_start(const saed_config *cfg, const char *id_prefix, int n, struct engines *eng, char *err,
                           size_t errlen);
/* Runs claimed job j on the calling thread as a worker of p would (n may be 0) and records
 * its outcome; 1 when the compute device failed. */
int workers_run_job(worker_pool *p, db_conn *db, const char *worker_id, job *j);
void workers_wake(worker_pool *p);
/* Stops claiming, lets running jobs notice at their next progress call, joins the threads. */
void workers_stop(worker_pool *p);
void workers_counts(worker_pool *p, int *busy, int *total);
/* Workers stopped because their compute device failed (0 when none; NULL pool: 0), and the
 * first failure's message. Such a worker keeps its thread (and the sweeper) but takes no more
 * jobs until the process restarts: a failed CUDA context does not recover. */
int workers_unhealthy(worker_pool *p, char *why, size_t n);

#endif
