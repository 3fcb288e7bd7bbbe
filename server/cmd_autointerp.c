/* cmd_autointerp.c: `saed autointerp --job FILE`: the same job as POST /api/autointerp-jobs,
 * queued in the jobs table (so its explanations, progress and resumption are those of any
 * other) and run on this thread at once. Killed mid-way, the job is taken up again by any
 * worker when its lease expires, without asking again for the features already explained. */
#include "server/cmd_autointerp.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "db/db.h"
#include "db/jobs.h"
#include "db/statements.h"
#include "server/job_autointerp.h"
#include "server/worker.h"

static int commit_failed(db_conn *c)
{
    PGresult *r = db_exec(c, DB_COMMIT, NULL);
    int bad = db_kind(r) != DB_OK;
    PQclear(r);
    return bad;
}

/* Runs claimed job j here and reports how it ended. */
static int run_claimed(const saed_config *cfg, db_conn *c, const char *wid, job *jp)
{
    char err[256] = "";
    job j = *jp;
    int64_t id = j.id;
    worker_pool *p = workers_start(cfg, wid, 0, NULL, err, sizeof err);
    if (!p) {
        job_clear(&j);
        fprintf(stderr, "saed autointerp: out of memory\n");
        return 1;
    }
    workers_run_job(p, c, wid, &j);
    job_clear(&j);
    workers_stop(p);
    char is[24];
    snprintf(is, sizeof is, "%" PRId64, id);
    PGresult *r = db_exec(c, DB_JOB_GET, (const char *const[]){is});
    json_t *row = db_kind(r) == DB_OK && PQntuples(r) == 1 ? json_loads(PQgetvalue(r, 0, 0), 0, NULL) : NULL;
    PQclear(r);
    const char *state = json_string_value(json_object_get(row, "state"));
    int ok = state && !strcmp(state, "completed");
    char *prog = json_dumps(json_object_get(row, "progress"), JSON_COMPACT);
    if (ok) printf("autointerp job %" PRId64 " completed: %s\n", id, prog ? prog : "{}");
    else
        fprintf(stderr, "saed autointerp: job %" PRId64 " %s: %s\n", id, state ? state : "unknown",
                json_string_value(json_object_get(row, "lastError")) ? json_string_value(json_object_get(row, "lastError"))
                                                                      : "(no error recorded)");
    free(prog);
    json_decref(row);
    return ok ? 0 : 1;
}

int cmd_autointerp(const saed_config *cfg, const char *job_file)
{
    if (!job_file) {
        fprintf(stderr, "saed autointerp: --job FILE is required (the JSON body of POST /api/autointerp-jobs; - for stdin)\n");
        return 2;
    }
    json_error_t je;
    json_t *body = !strcmp(job_file, "-") ? json_loadf(stdin, 0, &je) : json_load_file(job_file, 0, &je);
    if (!body) {
        fprintf(stderr, "saed autointerp: %s: line %d: %s\n", job_file, je.line, je.text);
        return 2;
    }
    json_t *payload = NULL;
    char err[600];
    if (job_autointerp_payload(cfg, body, &payload, err, sizeof err)) {
        fprintf(stderr, "saed autointerp: %s: %s\n", job_file, err);
        json_decref(body);
        return 2;
    }
    json_decref(body);
    db_conn *c = db_connect(cfg->database_url, err, sizeof err);
    if (!c) {
        fprintf(stderr, "saed autointerp: cannot connect to the database (DATABASE_URL): %s\n", err);
        json_decref(payload);
        return 1;
    }
    char *text = json_dumps(payload, JSON_COMPACT), host[256], wid[320];
    gethostname(host, sizeof host);
    host[sizeof host - 1] = '\0';
    snprintf(wid, sizeof wid, "%s:%d:cli", host, (int)getpid());
    int64_t id = 0;
    enum db_kind why;
    job j = {0};
    int rc = 1;
    /* queued and claimed in one transaction: no idle worker elsewhere sees it available */
    PQclear(db_exec(c, DB_BEGIN, NULL));
    if (!text || jobs_enqueue(c, "autointerp", text, (int)json_integer_value(json_object_get(payload, "priority")),
                              (int)json_integer_value(json_object_get(payload, "maxAttempts")),
                              json_string_value(json_object_get(payload, "modelId")),
                              json_string_value(json_object_get(payload, "saeId")), &id, &why) ||
        jobs_claim_id(c, wid, cfg->job_lease_s, id, &j) != 1 || commit_failed(c)) {
        PQclear(db_exec_script(c, "ROLLBACK"));
        job_clear(&j);
        fprintf(stderr, "saed autointerp: could not queue the job (is the schema migrated? saed migrate)\n");
    } else {
        printf("autointerp job %" PRId64 " queued; running it here\n", id);
        fflush(stdout);
        rc = run_claimed(cfg, c, wid, &j);
    }
    free(text);
    json_decref(payload);
    db_close(c);
    return rc;
}
