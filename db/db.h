/* db.h: PostgreSQL access for saed. A fixed-size pool of libpq connections (one per HTTP
 * thread / worker, checked out per request), lazy per-connection preparation of the named
 * statements in db/statements.c, reconnect with jittered backoff when the server goes away.
 * Nothing here knows about HTTP; callers map db_kind() to their own errors. */
#ifndef SAED_DB_H
#define SAED_DB_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "db/statements.h"

typedef struct db_conn db_conn;
typedef struct db_pool db_pool;

enum db_acquire_err { DB_ACQ_OK, DB_ACQ_BUSY, DB_ACQ_DOWN };

/* What went wrong with a statement, by SQLSTATE class. */
enum db_kind {
    DB_OK,
    DB_UNIQUE,        /* 23505 */
    DB_FOREIGN_KEY,   /* 23503 */
    DB_INVALID,       /* 22xxx, 23514: data rejected by a type or CHECK */
    DB_UNAVAILABLE,   /* class 08, 57P0x, or no connection at all */
    DB_NOT_MIGRATED,  /* 42P01 undefined table */
    DB_RETRYABLE,     /* 40001, 40P01 */
    DB_OTHER,
};

/* Standalone connection (CLI commands, migrations). NULL with err filled on failure. */
db_conn *db_connect(const char *conninfo, char *err, size_t errlen);
void db_close(db_conn *c);
PGconn *db_pg(db_conn *c);

/* Runs a named statement; params count comes from the table. Never returns NULL.
 * A read-only statement that fails because the connection broke is retried once on a
 * fresh connection. */
PGresult *db_exec(db_conn *c, enum db_stmt id, const char *const *params);
/* Runs a script of several statements (migrations only: DDL cannot be prepared). */
PGresult *db_exec_script(db_conn *c, const char *sql);
enum db_kind db_kind(const PGresult *r);
/* Error text of a failed result, first line only, for logs and messages. */
const char *db_errmsg(const PGresult *r, char *buf, size_t n);

db_pool *db_pool_create(const char *conninfo, int size);
void db_pool_destroy(db_pool *p);
/* Checks a connection out; waits up to wait_ms for a free one (DB_ACQ_BUSY after that) and
 * (re)connects it when needed (DB_ACQ_DOWN while the server cannot be reached). */
db_conn *db_acquire(db_pool *p, int wait_ms, enum db_acquire_err *why, char *err, size_t errlen);
void db_release(db_pool *p, db_conn *c);

typedef struct db_pool_stats {
    int size, in_use, connected;
    unsigned long long acquired, timeouts, connect_failures;
} db_pool_stats;
void db_pool_get_stats(db_pool *p, db_pool_stats *s);

#endif
