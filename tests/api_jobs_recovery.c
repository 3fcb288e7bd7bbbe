/* api_jobs_recovery.c: a worker killed with SIGKILL mid-job, and PostgreSQL restarted
 * mid-job: the job still completes exactly once, with no duplicate and no missing rows. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/srv.h"
#include "tests/t.h"



/* Waits until the job reaches one of the states (comma list inside quotes for SQL IN). */
static int wait_state(const char *url, const char *in_list, int seconds)
{
    char sql[300];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM jobs WHERE state IN (%s)", in_list);
    for (int i = 0; i < seconds * 5; i++) {
        if (tdb_scalar(url, sql) > 0) return 1;
        usleep(200000);
    }
    return 0;
}

static void rm_root(const char *root)
{
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    CHECK_INT(system(cmd), 0);
}

/* A fresh root with a corpus, a server with one worker and a short lease, the model and SAE
 * registered, and a job long enough to interrupt, already running. */
static int setup(srv *s, char *url, size_t n, char *root, const char *const *extra)
{
    char roots[600], path[300];
    if (!mkdtemp(root)) return -1;
    snprintf(path, sizeof path, "%s/corpus.txt", root);
    tests_write_corpus(path, 2000, 90, 9);
    snprintf(roots, sizeof roots, "tests/data:%s", root);
    const char *args[16] = {"--migrate", "--data-roots", roots, "--workers", "1", "--job-lease", "3"};
    int k = 7;
    for (int i = 0; extra && extra[i]; i++) args[k++] = extra[i];
    args[k] = NULL;
    if (srv_fresh(s, url, n, args)) return -1;
    resp r;
    http(s, "POST", "/api/models", NULL, "{\"id\":\"tiny-a\",\"path\":\"tests/data/models/tiny-a\"}", &r);
    resp_free(&r);
    http(s, "POST", "/api/saes", NULL, "{\"modelId\":\"tiny-a\",\"path\":\"tests/data/sae/tiny-a-res-topk\",\"setName\":\"tk\"}", &r);
    resp_free(&r);
    char body[800];
    snprintf(body, sizeof body, "{\"modelId\":\"tiny-a\",\"saeId\":\"1-tk\",\"dataset\":{\"path\":\"%s/corpus.txt\"},"
             "\"nPrompts\":1600,\"nTokensInPrompt\":64,\"batchPrompts\":16}", root);
    http(s, "POST", "/api/dashboard-jobs", NULL, body, &r);
    int ok = r.status == 201;
    resp_free(&r);
    if (!ok || !wait_state(url, "'running'", 30)) {
        t_fail(__FILE__, __LINE__, "the job did not start");
        return -1;
    }
    return 0;
}

static void check_rows(const char *url)
{
    CHECK_INT(tdb_scalar(url, "SELECT count(*) FROM features WHERE layer = '1-tk'"), 512);
    CHECK_INT(tdb_scalar(url, "SELECT count(*) - count(DISTINCT id) FROM activations"), 0);
    CHECK(tdb_scalar(url, "SELECT count(*) FROM activations") > 512);
    /* Every example row belongs to the job attempt that completed. */
    CHECK_INT(tdb_scalar(url, "SELECT count(DISTINCT \\\"jobId\\\") FROM activations"), 1);
}

TEST(api_jobs_survive_a_killed_worker)
{
    char root[] = "/tmp/saed-rec-XXXXXX", url[512];
    srv a;
    if (setup(&a, url, sizeof url, root, NULL)) return;
    usleep(1500000); /* well into the statistics pass */
    kill(a.pid, SIGKILL);
    waitpid(a.pid, NULL, 0);
    a.pid = 0;
    CHECK_INT(tdb_scalar(url, "SELECT count(*) FROM jobs WHERE state = 'running'"), 1);
    char roots[600];
    snprintf(roots, sizeof roots, "tests/data:%s", root);
    srv b;
    if (srv_start(&b, url, (const char *const[]){"--data-roots", roots, "--workers", "1", "--job-lease", "3", NULL})) {
        t_fail(__FILE__, __LINE__, "second saed did not start");
        return;
    }
    CHECK(wait_state(url, "'completed','failed'", 120));
    CHECK_INT(tdb_scalar(url, "SELECT count(*) FROM jobs WHERE state = 'completed' AND attempt = 2"), 1);
    CHECK_INT(tdb_scalar(url, "SELECT count(*) FROM jobs WHERE errors::text LIKE '%lease expired%'"), 1);
    check_rows(url);
    CHECK_INT(srv_stop(&b), 0);
    rm_root(root);
}

TEST(api_jobs_survive_a_database_restart)
{
    char root[] = "/tmp/saed-rec-XXXXXX", url[512];
    srv a;
    if (setup(&a, url, sizeof url, root, NULL)) return;
    usleep(800000);
    CHECK_INT(tdb_pg("stop"), 0);
    usleep(1000000);
    CHECK_INT(tdb_pg("start"), 0);
    CHECK(wait_state(url, "'completed','failed'", 120));
    CHECK_INT(tdb_scalar(url, "SELECT count(*) FROM jobs WHERE state = 'completed'"), 1);
    check_rows(url);
    CHECK_INT(srv_stop(&a), 0);
    rm_root(root);
}

TEST(api_jobs_cancel_a_running_job)
{
    char root[] = "/tmp/saed-rec-XXXXXX", url[512];
    srv a;
    if (setup(&a, url, sizeof url, root, NULL)) return;
    resp r;
    http(&a, "POST", "/api/dashboard-jobs/1/cancel", NULL, NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK_CONTAINS(r.body, "\"state\":\"running\"");
    resp_free(&r);
    CHECK(wait_state(url, "'cancelled'", 30));
    CHECK_INT(tdb_scalar(url, "SELECT count(*) FROM features"), 0); /* nothing half-written */
    CHECK_INT(srv_stop(&a), 0);
    rm_root(root);
}
