/* jobs.h: the PostgreSQL job queue (River/graphile pattern). A job moves available → running
 * (claimed with FOR UPDATE SKIP LOCKED, leased to one worker, kept alive by heartbeats) →
 * completed | failed | cancelled, or back to available after a failed attempt (backoff
 * attempt^4 s) or an expired lease (the sweeper). Every transition out of running names the
 * attempt, so a worker that lost its lease can no longer complete or fail the job. Inserts and
 * returns to available NOTIFY channel saed_jobs (trigger in migration 0001). */
#ifndef SAED_DB_JOBS_H
#define SAED_DB_JOBS_H

#include <stdint.h>

#include "db/db.h"

typedef struct job {
    int64_t id;
    char kind[64];
    char *payload;        /* JSON text (owned) */
    int attempt, max_attempts;
} job;

/* 0 with *id, or -1 (result kind in *why). */
int jobs_enqueue(db_conn *c, const char *kind, const char *payload_json, int priority, int max_attempts,
                 const char *model_id, const char *sae_id, int64_t *id, enum db_kind *why);
/* 1 = claimed into *j, 0 = nothing to do, -1 = database error. kinds: NULL-terminated. */
int jobs_claim(db_conn *c, const char *worker_id, int lease_s, const char *const *kinds, job *j);
/* The same for job id only, while it is available. */
int jobs_claim_id(db_conn *c, const char *worker_id, int lease_s, int64_t id, job *j);
void job_clear(job *j);
/* 1 = still ours (*cancel set when cancellation was requested), 0 = lease lost, -1 = error. */
int jobs_heartbeat(db_conn *c, const job *j, const char *worker_id, int lease_s, const char *progress_json, int *cancel);
/* 1 = done, 0 = not ours any more (lease lost), -1 = error. */
int jobs_complete(db_conn *c, const job *j, const char *progress_json);
/* permanent: fail without retry. Sets *final_state ("available" or "failed"). 1/0/-1 as above. */
int jobs_fail(db_conn *c, const job *j, const char *error, int permanent, char *final_state, size_t n);
int jobs_mark_cancelled(db_conn *c, const job *j);
/* Returns expired leases to the queue; the number returned, or -1. */
int jobs_sweep(db_conn *c);
/* 1 = requested (state after in *state: "cancelled" or "running"), 0 = no such job or already
 * finished, -1 = error. */
int jobs_request_cancel(db_conn *c, int64_t id, char *state, size_t n);

#endif
