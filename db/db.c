/* db.c: libpq connections and the pool. Statements are prepared lazily per connection (a
 * bitmask remembers which), so a fresh connection to an unmigrated database still works for
 * the statements that do not need the schema. */
#include "db/db.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 2000

struct db_conn {
    PGconn *pg;
    db_pool *pool;                  /* NULL for a standalone connection: it never reconnects */
    const char *conninfo;          /* owned by the pool or by the standalone conn */
    char *conninfo_own;
    uint64_t prepared[(DB_N_STMTS + 63) / 64];
    bool in_use;
    long long next_try_ms;          /* no reconnect attempt before this time */
    int backoff_ms;
};

struct db_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int size, in_use;
    db_conn *conns;
    char *conninfo;
    unsigned long long acquired, timeouts, connect_failures;
    atomic_int connected;
};

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void notice_quiet(void *arg, const PGresult *r)
{
    (void)arg;
    (void)r;
}

/* Opens c->pg; returns 0 or -1 with err filled. */
static int conn_open(db_conn *c, char *err, size_t errlen)
{
    /* client_encoding is fixed so that text (migration files, checksums) reaches the server
     * byte for byte whatever PGCLIENTENCODING says. */
    const char *keys[] = {"dbname", "connect_timeout", "application_name", "client_encoding", NULL};
    const char *vals[] = {c->conninfo, "3", "saed", "UTF8", NULL};
    /* expand_dbname=1: dbname may be a full conninfo string or URI; later keys are defaults
     * that the string can override. An empty conninfo falls back to libpq's PG* variables. */
    c->pg = PQconnectdbParams(keys, vals, 1);
    memset(c->prepared, 0, sizeof c->prepared);
    if (c->pg && PQstatus(c->pg) == CONNECTION_OK) {
        PQsetNoticeReceiver(c->pg, notice_quiet, NULL);
        c->backoff_ms = 0;
        if (c->pool) atomic_fetch_add(&c->pool->connected, 1);
        return 0;
    }
    if (err) {
        const char *m = c->pg ? PQerrorMessage(c->pg) : "out of memory";
        snprintf(err, errlen, "%s", m);
        char *nl = strchr(err, '\n');
        if (nl) *nl = '\0';
    }
    PQfinish(c->pg);
    c->pg = NULL;
    /* Jittered exponential backoff so that many threads do not stampede a recovering server. */
    c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (c->backoff_ms > BACKOFF_MAX_MS) c->backoff_ms = BACKOFF_MAX_MS;
    c->next_try_ms = now_ms() + c->backoff_ms / 2 + rand() % (c->backoff_ms / 2 + 1);
    return -1;
}

static void conn_drop(db_conn *c)
{
    if (c->pg && c->pool) atomic_fetch_sub(&c->pool->connected, 1);
    PQfinish(c->pg);
    c->pg = NULL;
    c->next_try_ms = 0;
}

db_conn *db_connect(const char *conninfo, char *err, size_t errlen)
{
    db_conn *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->conninfo = c->conninfo_own = strdup(conninfo);
    if (!c->conninfo_own || conn_open(c, err, errlen)) {
        free(c->conninfo_own);
        free(c);
        return NULL;
    }
    return c;
}

void db_close(db_conn *c)
{
    if (!c) return;
    PQfinish(c->pg);
    free(c->conninfo_own);
    free(c);
}

PGconn *db_pg(db_conn *c) { return c->pg; }

static PGresult *fatal_result(db_conn *c)
{
    PGresult *r = PQmakeEmptyPGresult(c->pg, PGRES_FATAL_ERROR);
    if (!r) abort(); /* out of memory while reporting an error: nothing sane is left */
    return r;
}

static bool conn_broken(db_conn *c, const PGresult *r)
{
    return !c->pg || PQstatus(c->pg) != CONNECTION_OK || db_kind(r) == DB_UNAVAILABLE;
}

static PGresult *exec_once(db_conn *c, enum db_stmt id, const char *const *params)
{
    const db_statement *s = &db_statements[id];
    if (!c->pg) return fatal_result(c);
    uint64_t bit = 1ULL << (id % 64);
    if (!(c->prepared[id / 64] & bit)) {
        PGresult *p = PQprepare(c->pg, s->name, s->sql, s->nparams, NULL);
        if (!p || PQresultStatus(p) != PGRES_COMMAND_OK) return p ? p : fatal_result(c);
        PQclear(p);
        c->prepared[id / 64] |= bit;
    }
    PGresult *r = PQexecPrepared(c->pg, s->name, s->nparams, params, NULL, NULL, 0);
    return r ? r : fatal_result(c);
}

PGresult *db_exec(db_conn *c, enum db_stmt id, const char *const *params)
{
    if (!c->pg) {
        if (!c->pool || conn_open(c, NULL, 0)) return fatal_result(c);
    }
    /* Only a statement that ran on its own (no transaction open) may be retried on a new
     * connection: inside a transaction the retry would silently run outside it. */
    int idle = PQtransactionStatus(c->pg) == PQTRANS_IDLE;
    PGresult *r = exec_once(c, id, params);
    ExecStatusType st = PQresultStatus(r);
    if ((st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE) && conn_broken(c, r) && c->pool) {
        conn_drop(c);
        if (idle && db_statements[id].readonly && conn_open(c, NULL, 0) == 0) {
            PQclear(r);
            r = exec_once(c, id, params);
        }
    }
    return r;
}

PGresult *db_exec_script(db_conn *c, const char *sql)
{
    if (!c->pg) return fatal_result(c);
    PGresult *r = PQexec(c->pg, sql);
    return r ? r : fatal_result(c);
}

enum db_kind db_kind(const PGresult *r)
{
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY) return DB_OK;
    const char *ss = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    if (!ss || !*ss) return DB_UNAVAILABLE; /* generated locally by libpq: no server answer */
    if (!strcmp(ss, "23505")) return DB_UNIQUE;
    if (!strcmp(ss, "23503")) return DB_FOREIGN_KEY;
    if (!strncmp(ss, "22", 2) || !strcmp(ss, "23514") || !strcmp(ss, "23502")) return DB_INVALID;
    if (!strncmp(ss, "08", 2) || !strncmp(ss, "57P0", 4)) return DB_UNAVAILABLE;
    if (!strcmp(ss, "42P01")) return DB_NOT_MIGRATED;
    if (!strcmp(ss, "40001") || !strcmp(ss, "40P01")) return DB_RETRYABLE;
    return DB_OTHER;
}

const char *db_errmsg(const PGresult *r, char *buf, size_t n)
{
    const char *m = PQresultErrorMessage(r);
    snprintf(buf, n, "%s", (m && *m) ? m : "no answer from the database");
    char *nl = strchr(buf, '\n');
    if (nl) *nl = '\0';
    return buf;
}

db_pool *db_pool_create(const char *conninfo, int size)
{
    db_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->conninfo = strdup(conninfo);
    p->conns = calloc((size_t)size, sizeof *p->conns);
    if (!p->conninfo || !p->conns) {
        free(p->conninfo);
        free(p->conns);
        free(p);
        return NULL;
    }
    p->size = size;
    for (int i = 0; i < size; i++) {
        p->conns[i].conninfo = p->conninfo;
        p->conns[i].pool = p;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    return p;
}

void db_pool_destroy(db_pool *p)
{
    if (!p) return;
    for (int i = 0; i < p->size; i++) conn_drop(&p->conns[i]);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->conns);
    free(p->conninfo);
    free(p);
}

db_conn *db_acquire(db_pool *p, int wait_ms, enum db_acquire_err *why, char *err, size_t errlen)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += wait_ms / 1000;
    deadline.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&p->mu);
    db_conn *c = NULL;
    for (;;) {
        /* Prefer a slot that is already connected. */
        for (int i = 0; i < p->size && !c; i++)
            if (!p->conns[i].in_use && p->conns[i].pg) c = &p->conns[i];
        for (int i = 0; i < p->size && !c; i++)
            if (!p->conns[i].in_use) c = &p->conns[i];
        if (c || pthread_cond_timedwait(&p->cv, &p->mu, &deadline)) break;
    }
    if (!c) {
        p->timeouts++;
        pthread_mutex_unlock(&p->mu);
        *why = DB_ACQ_BUSY;
        snprintf(err, errlen, "all %d database connections are busy", p->size);
        return NULL;
    }
    c->in_use = true;
    p->in_use++;
    p->acquired++;
    pthread_mutex_unlock(&p->mu);

    if (c->pg && PQstatus(c->pg) != CONNECTION_OK) conn_drop(c);
    if (!c->pg) {
        if (now_ms() < c->next_try_ms) {
            snprintf(err, errlen, "database unavailable (reconnecting)");
        } else if (conn_open(c, err, errlen) == 0) {
            *why = DB_ACQ_OK;
            return c;
        }
        pthread_mutex_lock(&p->mu);
        p->connect_failures++;
        pthread_mutex_unlock(&p->mu);
        db_release(p, c);
        *why = DB_ACQ_DOWN;
        return NULL;
    }
    *why = DB_ACQ_OK;
    return c;
}

void db_release(db_pool *p, db_conn *c)
{
    if (!c) return;
    /* A connection left inside a transaction (handler bug or error path) must not leak its
     * state into the next request. */
    if (c->pg && PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
        PGresult *r = PQexec(c->pg, "ROLLBACK");
        PQclear(r);
        if (PQtransactionStatus(c->pg) != PQTRANS_IDLE) conn_drop(c);
    }
    pthread_mutex_lock(&p->mu);
    c->in_use = false;
    p->in_use--;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

void db_pool_get_stats(db_pool *p, db_pool_stats *s)
{
    pthread_mutex_lock(&p->mu);
    s->size = p->size;
    s->in_use = p->in_use;
    s->connected = atomic_load(&p->connected);
    s->acquired = p->acquired;
    s->timeouts = p->timeouts;
    s->connect_failures = p->connect_failures;
    pthread_mutex_unlock(&p->mu);
}
