/* api_lifecycle.c: the process around the API: migrations, readiness across a database
 * restart, write routes on an unmigrated database, graceful shutdown with a request in flight,
 * and start-up configuration errors. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/srv.h"
#include "tests/t.h"

#define NEED_DB() do { if (!tdb_available()) { t_skip("no test PostgreSQL (run through tests/run.sh)"); return; } } while (0)

static void copy_file(const char *from, const char *to)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", from, to);
    CHECK_INT(system(cmd), 0);
}

TEST(db_migrate_twice_is_noop_and_checksum_is_checked)
{
    NEED_DB();
    char url[512], out[4096], err[4096];
    CHECK_INT(tdb_create(url, sizeof url), 0);
    char dir[] = "/tmp/saed-mig-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char f1[300], f2[300];
    snprintf(f1, sizeof f1, "%s/0001_core.sql", dir);
    copy_file("migrations/0001_core.sql", f1);
    const char *args[] = {"migrate", "--database-url", url, "--migrations-dir", dir, NULL};
    CHECK_INT(saed_run(args, out, sizeof out, err, sizeof err), 0);
    CHECK_CONTAINS(out, "applied 1 migration(s); schema at version 1");
    CHECK_INT(saed_run(args, out, sizeof out, err, sizeof err), 0);
    CHECK_CONTAINS(out, "applied 0 migration(s); schema at version 1");

    /* A second migration applies on its own; a failing one leaves nothing behind. */
    snprintf(f2, sizeof f2, "%s/0002_extra.sql", dir);
    FILE *f = fopen(f2, "w");
    fputs("CREATE TABLE extra_ok (id int);\nCREATE TABLE extra_bad (id nosuchtype);\n", f);
    fclose(f);
    CHECK_INT(saed_run(args, out, sizeof out, err, sizeof err), 1);
    CHECK_CONTAINS(err, "0002_extra.sql");
    CHECK_CONTAINS(err, "nosuchtype");
    CHECK_INT(tdb_exec(url, "SELECT 1 FROM extra_ok"), -1); /* rolled back */
    f = fopen(f2, "w");
    fputs("CREATE TABLE extra_ok (id int);\n", f);
    fclose(f);
    CHECK_INT(saed_run(args, out, sizeof out, err, sizeof err), 0);
    CHECK_CONTAINS(out, "applied 1 migration(s); schema at version 2");

    /* An edited, already applied migration is refused. */
    f = fopen(f2, "a");
    fputs("-- edited\n", f);
    fclose(f);
    CHECK_INT(saed_run(args, out, sizeof out, err, sizeof err), 1);
    CHECK_CONTAINS(err, "0002_extra.sql was changed after it was applied");
    /* A database ahead of the binary is refused. */
    unlink(f2);
    CHECK_INT(saed_run(args, out, sizeof out, err, sizeof err), 1);
    CHECK_CONTAINS(err, "ahead of this binary's migrations");
    /* Gaps in the numbering are refused before touching the database. */
    snprintf(f2, sizeof f2, "%s/0003_gap.sql", dir);
    f = fopen(f2, "w");
    fputs("SELECT 1;\n", f);
    fclose(f);
    CHECK_INT(saed_run(args, out, sizeof out, err, sizeof err), 1);
    CHECK_CONTAINS(err, "expected migration 0002");
    unlink(f2);
    unlink(f1);
    rmdir(dir);
}

TEST(api_unmigrated_database_refuses_writes)
{
    char url[512], out[1024], err[1024];
    srv s;
    if (srv_fresh(&s, url, sizeof url, (const char *const[]){"--data-roots", "tests/data", NULL})) return;
    resp r;
    http(&s, "GET", "/readyz", NULL, NULL, &r);
    CHECK_INT(r.status, 503);
    CHECK_CONTAINS(r.body, "schema is at version 0");
    CHECK(r.retry_after[0] != '\0');
    resp_free(&r);
    http(&s, "POST", "/api/models", NULL, "{\"id\":\"m\",\"path\":\"tests/data/models/tiny-a\"}", &r);
    CHECK_INT(r.status, 503);
    CHECK_CONTAINS(r.body, "saed migrate");
    resp_free(&r);
    const char *args[] = {"migrate", "--database-url", url, NULL};
    CHECK_INT(saed_run(args, out, sizeof out, err, sizeof err), 0);
    http(&s, "GET", "/readyz", NULL, NULL, &r); /* readyz re-reads the schema version */
    CHECK_INT(r.status, 200);
    resp_free(&r);
    http(&s, "POST", "/api/models", NULL, "{\"id\":\"m\",\"path\":\"tests/data/models/tiny-a\"}", &r);
    CHECK_INT(r.status, 201);
    resp_free(&r);
    CHECK_INT(srv_stop(&s), 0);
}

TEST(api_readyz_follows_database_restart)
{
    char url[512];
    srv s;
    if (srv_fresh(&s, url, sizeof url, (const char *const[]){"--migrate", NULL})) return;
    resp r;
    http(&s, "GET", "/readyz", NULL, NULL, &r);
    CHECK_INT(r.status, 200);
    resp_free(&r);
    CHECK_INT(tdb_pg("stop"), 0);
    http(&s, "GET", "/readyz", NULL, NULL, &r);
    CHECK_INT(r.status, 503);
    CHECK_CONTAINS(r.body, "not_ready");
    CHECK(strstr(r.body, ".s.PGSQL") == NULL); /* no socket paths or hosts for clients */
    resp_free(&r);
    http(&s, "GET", "/api/models", NULL, NULL, &r);
    CHECK_INT(r.status, 503);
    resp_free(&r);
    http(&s, "GET", "/healthz", NULL, NULL, &r); /* the process itself is fine */
    CHECK_INT(r.status, 200);
    resp_free(&r);
    CHECK_INT(tdb_pg("start"), 0);
    int status = 0;
    for (int i = 0; i < 100 && status != 200; i++) {
        http(&s, "GET", "/readyz", NULL, NULL, &r);
        status = r.status;
        resp_free(&r);
        if (status != 200) usleep(100000);
    }
    CHECK_INT(status, 200);
    http(&s, "GET", "/api/models", NULL, NULL, &r);
    CHECK_INT(r.status, 200);
    resp_free(&r);
    CHECK(kill(s.pid, 0) == 0); /* still the same process */
    CHECK_INT(srv_stop(&s), 0);
}

TEST(api_sigterm_lets_in_flight_request_finish)
{
    char url[512];
    srv s;
    if (srv_fresh(&s, url, sizeof url, (const char *const[]){"--migrate", "--data-roots", "tests/data", NULL})) return;
    const char *body = "{\"id\":\"slow\",\"path\":\"tests/data/models/tiny-a\"}";
    char head[512];
    snprintf(head, sizeof head,
             "POST /api/models HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
             "Content-Length: %zu\r\nConnection: close\r\n\r\n", strlen(body));
    int fd = srv_connect(&s);
    CHECK(fd >= 0);
    /* Headers and half the body, then the signal, then the rest. */
    CHECK(send(fd, head, strlen(head), 0) > 0);
    CHECK(send(fd, body, 10, 0) == 10);
    usleep(300000);
    kill(s.pid, SIGTERM);
    usleep(500000);
    int st;
    CHECK(waitpid(s.pid, &st, WNOHANG) == 0); /* still draining */
    CHECK(srv_connect(&s) < 0);              /* but no longer accepting */
    CHECK(send(fd, body + 10, strlen(body) - 10, 0) == (ssize_t)(strlen(body) - 10));
    char buf[4096];
    size_t n = 0;
    ssize_t k;
    while ((k = recv(fd, buf + n, sizeof buf - 1 - n, 0)) > 0) n += (size_t)k;
    buf[n] = '\0';
    close(fd);
    CHECK_CONTAINS(buf, "HTTP/1.1 201");
    CHECK_CONTAINS(buf, "\r\n\r\n{\"id\":\"slow\",");
    int exited = 0;
    for (int i = 0; i < 200 && !exited; i++) {
        if (waitpid(s.pid, &st, WNOHANG) == s.pid) exited = 1;
        else usleep(25000);
    }
    CHECK(exited);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    s.pid = 0;
    CHECK_INT(tdb_exec(url, "SELECT 1 FROM models WHERE id = 'slow'"), 0);
}

TEST(cli_config_errors_stop_startup)
{
    static char out[1 << 16], err[1 << 16];
    CHECK_INT(saed_run((const char *const[]){"serve", "--body-limit", "10X", NULL}, out, sizeof out, err, sizeof err), 2);
    CHECK_CONTAINS(err, "--body-limit");
    CHECK_INT(saed_run((const char *const[]){"serve", "--http-threads", "9999", NULL}, out, sizeof out, err, sizeof err), 2);
    CHECK_CONTAINS(err, "--http-threads: 9999 is out of range [1, 256]");
    CHECK_INT(saed_run((const char *const[]){"serve", "--listen", "0.0.0.0:0", NULL}, out, sizeof out, err, sizeof err), 2);
    CHECK_CONTAINS(err, "no API keys are configured");
    CHECK_INT(saed_run((const char *const[]){"serve", "--frobnicate", NULL}, out, sizeof out, err, sizeof err), 2);
    CHECK_CONTAINS(err, "unknown option '--frobnicate'");
    CHECK_INT(saed_run((const char *const[]){"serve", "--migrations-dir", "/nonexistent", NULL}, out, sizeof out, err, sizeof err), 1);
    CHECK_CONTAINS(err, "SAED_MIGRATIONS_DIR");
    CHECK_INT(saed_run((const char *const[]){"bogus", NULL}, out, sizeof out, err, sizeof err), 2);
    CHECK_CONTAINS(err, "unknown command 'bogus'");
    CHECK_INT(saed_run((const char *const[]){"--help", NULL}, out, sizeof out, err, sizeof err), 0);
    CHECK_CONTAINS(out, "SAED_BODY_LIMIT");
    CHECK_INT(saed_run((const char *const[]){"version", NULL}, out, sizeof out, err, sizeof err), 0);
    CHECK_CONTAINS(out, "backend cpu:");
    CHECK_INT(saed_run((const char *const[]){"migrate", "--database-url", "postgresql://127.0.0.1:1/x", NULL},
                       out, sizeof out, err, sizeof err), 1);
    CHECK_CONTAINS(err, "cannot connect to the database (DATABASE_URL)");
}

TEST(api_shutdown_releases_job_leases)
{
    char url[512];
    srv s;
    if (srv_fresh(&s, url, sizeof url, (const char *const[]){"--migrate", NULL})) return;
    char host[256], sql[1024];
    gethostname(host, sizeof host);
    host[sizeof host - 1] = '\0';
    /* One job leased by this server's worker 0, one by another process. */
    snprintf(sql, sizeof sql,
             "INSERT INTO jobs (kind, state, attempt, worker_id, lease_expires_at, heartbeat_at, started_at) VALUES"
             " ('dashboard', 'running', 1, '%s:%d:0', now() + interval '5 min', now(), now()),"
             " ('dashboard', 'running', 1, '%s:%d:0', now() + interval '5 min', now(), now())",
             host, (int)s.pid, host, (int)s.pid + 1000000);
    CHECK_INT(tdb_exec(url, sql), 0);
    CHECK_INT(srv_stop(&s), 0);
    CHECK_INT(tdb_exec(url, "DO $$ BEGIN IF (SELECT count(*) FROM jobs WHERE state = 'available' AND worker_id IS NULL"
                            " AND lease_expires_at IS NULL) <> 1 OR (SELECT count(*) FROM jobs WHERE state = 'running') <> 1"
                            " THEN RAISE EXCEPTION 'leases not released as expected'; END IF; END $$"), 0);
}
