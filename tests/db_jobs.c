/* db_jobs.c: the job queue's guarantees against real PostgreSQL: priority order, one claimer
 * per job under contention, completion only by the lease holder, retries with backoff, the
 * sweeper returning expired leases, cancellation, and the NOTIFY that wakes workers. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db/jobs.h"
#include "tests/srv.h"
#include "tests/t.h"

static const char *const KINDS[] = {"dashboard", NULL};

static db_conn *fresh_migrated(char *url, size_t n)
{
    char err[512], out[256];
    if (tdb_create(url, n)) return NULL;
    if (saed_run((const char *const[]){"migrate", "--database-url", url, NULL}, out, sizeof out, err, sizeof err)) return NULL;
    return db_connect(url, err, sizeof err);
}

TEST(db_jobs_lifecycle)
{
    if (!tdb_available()) {
        t_skip("no test PostgreSQL (run through tests/run.sh)");
        return;
    }
    char url[512];
    db_conn *c = fresh_migrated(url, sizeof url);
    CHECK(c != NULL);
    if (!c) return;
    /* A listener sees the enqueue. */
    db_conn *l = db_connect(url, (char[256]){0}, 256);
    PQclear(PQexec(db_pg(l), "LISTEN saed_jobs"));
    int64_t a, b, hi;
    enum db_kind why;
    CHECK_INT(jobs_enqueue(c, "dashboard", "{\"n\":1}", 0, 2, NULL, NULL, &a, &why), 0);
    CHECK_INT(jobs_enqueue(c, "dashboard", "{\"n\":2}", 0, 2, NULL, NULL, &b, &why), 0);
    CHECK_INT(jobs_enqueue(c, "dashboard", "{\"n\":3}", 5, 2, NULL, NULL, &hi, &why), 0);
    CHECK_INT(jobs_enqueue(c, "dashboard", "not json", 0, 2, NULL, NULL, &a, &why), -1);
    CHECK_INT(why, DB_INVALID);
    PQconsumeInput(db_pg(l));
    PGnotify *nt = PQnotifies(db_pg(l));
    CHECK(nt != NULL);
    if (nt) CHECK_STR(nt->extra, "dashboard");
    PQfreemem(nt);
    db_close(l);

    job j;
    CHECK_INT(jobs_claim(c, "w1", 60, KINDS, &j), 1);
    CHECK(j.id == hi); /* priority first */
    CHECK_INT(j.attempt, 1);
    CHECK_CONTAINS(j.payload, "\"n\": 3");
    int cancel = -1;
    CHECK_INT(jobs_heartbeat(c, &j, "w1", 60, "{\"phase\":\"forward\"}", &cancel), 1);
    CHECK_INT(cancel, 0);
    CHECK_INT(jobs_heartbeat(c, &j, "w2", 60, NULL, &cancel), 0); /* not w2's */
    /* Cancellation of a running job is a flag the heartbeat reports. */
    char st[32];
    CHECK_INT(jobs_request_cancel(c, j.id, st, sizeof st), 1);
    CHECK_STR(st, "running");
    CHECK_INT(jobs_heartbeat(c, &j, "w1", 60, NULL, &cancel), 1);
    CHECK_INT(cancel, 1);
    CHECK_INT(jobs_mark_cancelled(c, &j), 1);
    CHECK_INT(jobs_request_cancel(c, j.id, st, sizeof st), 0); /* already finished */
    job_clear(&j);

    /* Oldest next; a failed attempt goes back with backoff, then fails for good. */
    CHECK_INT(jobs_claim(c, "w1", 60, KINDS, &j), 1);
    CHECK_CONTAINS(j.payload, "\"n\": 1");
    CHECK_INT(jobs_fail(c, &j, "boom", 0, st, sizeof st), 1);
    CHECK_STR(st, "available");
    CHECK_INT(tdb_exec(url, "DO $$ BEGIN IF (SELECT run_after > now() FROM jobs WHERE payload->>'n' = '1') IS NOT TRUE"
                            " THEN RAISE EXCEPTION 'no backoff'; END IF; END $$"), 0);
    /* Skip the wait (and put it ahead of job 2, which is older than now). */
    CHECK_INT(tdb_exec(url, "UPDATE jobs SET run_after = now() - interval '1 hour' WHERE payload->>'n' = '1'"), 0);
    job_clear(&j);
    job j2;
    CHECK_INT(jobs_claim(c, "w1", 60, KINDS, &j2), 1);
    CHECK_CONTAINS(j2.payload, "\"n\": 1");
    CHECK_INT(j2.attempt, 2);
    CHECK_INT(jobs_fail(c, &j2, "boom again", 0, st, sizeof st), 1);
    CHECK_STR(st, "failed");
    job_clear(&j2);

    /* An expired lease: the sweeper returns it; the old holder can no longer complete it. */
    CHECK_INT(jobs_claim(c, "dead-worker", 60, KINDS, &j), 1);
    CHECK_CONTAINS(j.payload, "\"n\": 2");
    CHECK_INT(tdb_exec(url, "UPDATE jobs SET lease_expires_at = now() - interval '1 s' WHERE payload->>'n' = '2'"), 0);
    CHECK_INT(jobs_sweep(c), 1);
    CHECK_INT(jobs_sweep(c), 0);
    CHECK_INT(jobs_claim(c, "w2", 60, KINDS, &j2), 1);
    CHECK(j2.id == j.id);
    CHECK_INT(j2.attempt, 2);
    CHECK_INT(jobs_complete(c, &j, NULL), 0);  /* stale attempt */
    CHECK_INT(jobs_complete(c, &j2, "{\"phase\":\"done\"}"), 1);
    job_clear(&j);
    CHECK_INT(jobs_claim(c, "w2", 60, KINDS, &j), 0); /* queue empty */
    CHECK_INT(tdb_exec(url, "DO $$ BEGIN IF (SELECT errors->0->>'error' FROM jobs WHERE payload->>'n' = '2')"
                            " NOT LIKE 'lease expired%' THEN RAISE EXCEPTION 'no sweep error'; END IF; END $$"), 0);
    job_clear(&j);
    job_clear(&j2);
    /* Cancelling a queued job ends it at once. */
    CHECK_INT(jobs_enqueue(c, "dashboard", "{}", 0, 1, NULL, NULL, &a, &why), 0);
    CHECK_INT(jobs_request_cancel(c, a, st, sizeof st), 1);
    CHECK_STR(st, "cancelled");
    db_close(c);
}

typedef struct claimer {
    const char *url;
    int64_t got[64];
    int n;
} claimer;

static void *claim_all(void *arg)
{
    claimer *cl = arg;
    char err[256], wid[32];
    snprintf(wid, sizeof wid, "w-%p", (void *)cl);
    db_conn *c = db_connect(cl->url, err, sizeof err);
    job j;
    while (c && cl->n < 64 && jobs_claim(c, wid, 60, KINDS, &j) == 1) {
        cl->got[cl->n++] = j.id;
        jobs_complete(c, &j, NULL);
        job_clear(&j);
    }
    db_close(c);
    return NULL;
}

TEST(db_jobs_two_workers_never_share_a_job)
{
    if (!tdb_available()) {
        t_skip("no test PostgreSQL (run through tests/run.sh)");
        return;
    }
    char url[512];
    db_conn *c = fresh_migrated(url, sizeof url);
    CHECK(c != NULL);
    if (!c) return;
    enum db_kind why;
    int64_t id;
    for (int i = 0; i < 40; i++) CHECK_INT(jobs_enqueue(c, "dashboard", "{}", 0, 1, NULL, NULL, &id, &why), 0);
    claimer a = {.url = url}, b = {.url = url};
    pthread_t ta, tb;
    pthread_create(&ta, NULL, claim_all, &a);
    pthread_create(&tb, NULL, claim_all, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    CHECK_INT(a.n + b.n, 40);
    for (int i = 0; i < a.n; i++)
        for (int k = 0; k < b.n; k++) CHECK(a.got[i] != b.got[k]);
    CHECK_INT(tdb_exec(url, "DO $$ BEGIN IF (SELECT count(*) FROM jobs WHERE state = 'completed' AND attempt = 1) <> 40"
                            " THEN RAISE EXCEPTION 'not all completed once'; END IF; END $$"), 0);
    db_close(c);
}
