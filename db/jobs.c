/* jobs.c: see jobs.h. Thin wrappers that turn the statements' results into return codes. */
#include "db/jobs.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int jobs_enqueue(db_conn *c, const char *kind, const char *payload_json, int priority, int max_attempts,
                 const char *model_id, const char *sae_id, int64_t *id, enum db_kind *why)
{
    char pr[16], ma[16];
    snprintf(pr, sizeof pr, "%d", priority);
    snprintf(ma, sizeof ma, "%d", max_attempts);
    PGresult *r = db_exec(c, DB_JOB_ENQUEUE, (const char *const[]){kind, payload_json, pr, ma, model_id, sae_id});
    *why = db_kind(r);
    int rc = *why == DB_OK ? 0 : -1;
    if (rc == 0) *id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return rc;
}

/* kinds as a PostgreSQL text[] literal; kind names are [a-z_] so no quoting is needed, but
 * anything else is refused rather than escaped. */
static int kinds_literal(const char *const *kinds, char *buf, size_t n)
{
    size_t len = 0;
    buf[len++] = '{';
    for (int i = 0; kinds[i]; i++) {
        for (const char *p = kinds[i]; *p; p++)
            if (!((*p >= 'a' && *p <= 'z') || *p == '_')) return -1;
        int k = snprintf(buf + len, n - len, "%s%s", i ? "," : "", kinds[i]);
        if (k < 0 || (size_t)k >= n - len - 2) return -1;
        len += (size_t)k;
    }
    buf[len++] = '}';
    buf[len] = '\0';
    return 0;
}

static int claimed(PGresult *r, job *j)
{
    int rc = db_kind(r) != DB_OK ? -1 : PQntuples(r) == 1;
    if (rc == 1) {
        j->id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        snprintf(j->kind, sizeof j->kind, "%s", PQgetvalue(r, 0, 1));
        j->payload = strdup(PQgetvalue(r, 0, 2));
        j->attempt = atoi(PQgetvalue(r, 0, 3));
        j->max_attempts = atoi(PQgetvalue(r, 0, 4));
        if (!j->payload) rc = -1;
    }
    PQclear(r);
    return rc;
}

int jobs_claim(db_conn *c, const char *worker_id, int lease_s, const char *const *kinds, job *j)
{
    char ls[16], kl[512];
    memset(j, 0, sizeof *j);
    if (kinds_literal(kinds, kl, sizeof kl)) return -1;
    snprintf(ls, sizeof ls, "%d", lease_s);
    return claimed(db_exec(c, DB_JOB_CLAIM, (const char *const[]){worker_id, ls, kl}), j);
}

int jobs_claim_id(db_conn *c, const char *worker_id, int lease_s, int64_t id, job *j)
{
    char ls[16], is[24];
    memset(j, 0, sizeof *j);
    snprintf(ls, sizeof ls, "%d", lease_s);
    snprintf(is, sizeof is, "%lld", (long long)id);
    return claimed(db_exec(c, DB_JOB_CLAIM_ID, (const char *const[]){worker_id, ls, is}), j);
}

void job_clear(job *j)
{
    free(j->payload);
    memset(j, 0, sizeof *j);
}

static void ids(const job *j, char *id, char *att)
{
    snprintf(id, 24, "%" PRId64, j->id);
    snprintf(att, 16, "%d", j->attempt);
}

int jobs_heartbeat(db_conn *c, const job *j, const char *worker_id, int lease_s, const char *progress_json, int *cancel)
{
    char id[24], att[16], ls[16];
    ids(j, id, att);
    snprintf(ls, sizeof ls, "%d", lease_s);
    PGresult *r = db_exec(c, DB_JOB_HEARTBEAT, (const char *const[]){id, att, worker_id, ls, progress_json});
    int rc = db_kind(r) != DB_OK ? -1 : PQntuples(r) == 1;
    if (rc == 1 && cancel) *cancel = !strcmp(PQgetvalue(r, 0, 0), "t");
    PQclear(r);
    return rc;
}

int jobs_complete(db_conn *c, const job *j, const char *progress_json)
{
    char id[24], att[16];
    ids(j, id, att);
    PGresult *r = db_exec(c, DB_JOB_COMPLETE, (const char *const[]){id, att, progress_json});
    int rc = db_kind(r) != DB_OK ? -1 : PQntuples(r) == 1;
    PQclear(r);
    return rc;
}

int jobs_fail(db_conn *c, const job *j, const char *error, int permanent, char *final_state, size_t n)
{
    char id[24], att[16];
    ids(j, id, att);
    PGresult *r = db_exec(c, DB_JOB_RETRY_OR_FAIL, (const char *const[]){id, att, error, permanent ? "true" : "false"});
    int rc = db_kind(r) != DB_OK ? -1 : PQntuples(r) == 1;
    if (rc == 1 && final_state) snprintf(final_state, n, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return rc;
}

int jobs_mark_cancelled(db_conn *c, const job *j)
{
    char id[24], att[16];
    ids(j, id, att);
    PGresult *r = db_exec(c, DB_JOB_CANCELLED, (const char *const[]){id, att});
    int rc = db_kind(r) != DB_OK ? -1 : PQntuples(r) == 1;
    PQclear(r);
    return rc;
}

int jobs_sweep(db_conn *c)
{
    PGresult *r = db_exec(c, DB_JOB_SWEEP, NULL);
    int rc = db_kind(r) != DB_OK ? -1 : PQntuples(r);
    PQclear(r);
    return rc;
}

int jobs_request_cancel(db_conn *c, int64_t id, char *state, size_t n)
{
    char ids_[24];
    snprintf(ids_, sizeof ids_, "%" PRId64, id);
    PGresult *r = db_exec(c, DB_JOB_REQUEST_CANCEL, (const char *const[]){ids_});
    int rc = db_kind(r) != DB_OK ? -1 : PQntuples(r) == 1;
    if (rc == 1 && state) snprintf(state, n, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return rc;
}
