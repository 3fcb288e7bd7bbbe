/* db_pool.c: the connection pool against real PostgreSQL: checkout/return, saturation
 * (DB_ACQ_BUSY after the wait), and statements prepared lazily per connection. */
#include <stdlib.h>

#include "db/db.h"
#include "tests/srv.h"
#include "tests/t.h"

TEST(db_pool_saturation_and_reuse)
{
    if (!tdb_available()) {
        t_skip("no test PostgreSQL (run through tests/run.sh)");
        return;
    }
    char url[512], err[256];
    CHECK_INT(tdb_create(url, sizeof url), 0);
    db_pool *p = db_pool_create(url, 1);
    enum db_acquire_err why;
    db_conn *a = db_acquire(p, 100, &why, err, sizeof err);
    CHECK(a != NULL);
    CHECK_INT(why, DB_ACQ_OK);
    PGresult *r = db_exec(a, DB_PING, NULL);
    CHECK_INT(db_kind(r), DB_OK);
    CHECK_STR(PQgetvalue(r, 0, 0), "1");
    PQclear(r);
    /* The only connection is out: the next check-out gives up after its wait. */
    db_conn *b = db_acquire(p, 50, &why, err, sizeof err);
    CHECK(b == NULL);
    CHECK_INT(why, DB_ACQ_BUSY);
    CHECK_CONTAINS(err, "busy");
    db_pool_stats st;
    db_pool_get_stats(p, &st);
    CHECK_INT(st.in_use, 1);
    CHECK_INT(st.timeouts, 1);
    db_release(p, a);
    b = db_acquire(p, 50, &why, err, sizeof err);
    CHECK(b == a); /* the same, still connected, connection */
    /* A statement that needs the schema reports "not migrated", and the connection survives. */
    r = db_exec(b, DB_MODEL_LIST, NULL);
    CHECK_INT(db_kind(r), DB_NOT_MIGRATED);
    PQclear(r);
    r = db_exec(b, DB_PING, NULL);
    CHECK_INT(db_kind(r), DB_OK);
    PQclear(r);
    db_release(p, b);
    db_pool_destroy(p);

    /* An unreachable server: DB_ACQ_DOWN with libpq's reason, not a hang. */
    p = db_pool_create("postgresql:///x?host=/nonexistent-socket-dir&connect_timeout=1", 1);
    CHECK(db_acquire(p, 50, &why, err, sizeof err) == NULL);
    CHECK_INT(why, DB_ACQ_DOWN);
    CHECK_CONTAINS(err, "nonexistent-socket-dir");
    db_pool_destroy(p);
}
