/* api_device.c: a job worker whose compute device fails (here: SAED_DEVICE names a GPU that
 * does not exist, which fails the same way with or without a GPU) does not crash the service:
 * the job goes back to the queue for another worker, the worker takes no more jobs, and
 * /readyz answers 503 while the rest of the API keeps serving. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/srv.h"
#include "tests/t.h"

TEST(api_failed_device_stops_the_worker_and_readyz_says_so)
{
    char root[] = "/tmp/saed-dev-XXXXXX";
    CHECK(mkdtemp(root) != NULL);
    char corpus[300], roots[600], body[1200], url[512];
    snprintf(corpus, sizeof corpus, "%s/corpus.txt", root);
    tests_write_corpus(corpus, 20, 30, 2);
    snprintf(roots, sizeof roots, "tests/data:%s", root);
    srv s;
    if (srv_fresh(&s, url, sizeof url,
                  (const char *const[]){"--migrate", "--data-roots", roots, "--workers", "1", "--device", "cuda:255", NULL}))
        return;
    resp r;
    http(&s, "GET", "/readyz", NULL, NULL, &r);
    CHECK_INT(r.status, 200); /* nothing has touched the device yet */
    resp_free(&r);
    http(&s, "POST", "/api/models", NULL, "{\"id\":\"tiny-a\",\"path\":\"tests/data/models/tiny-a\"}", &r);
    CHECK_INT(r.status, 201);
    resp_free(&r);
    http(&s, "POST", "/api/saes", NULL, "{\"modelId\":\"tiny-a\",\"path\":\"tests/data/sae/tiny-a-res-standard\",\"setName\":\"std\"}", &r);
    CHECK_INT(r.status, 201);
    resp_free(&r);
    snprintf(body, sizeof body, "{\"modelId\":\"tiny-a\",\"saeId\":\"1-std\",\"dataset\":{\"path\":\"%s\"},\"nPrompts\":8,"
             "\"nTokensInPrompt\":16}", corpus);
    http(&s, "POST", "/api/dashboard-jobs", NULL, body, &r);
    CHECK_INT(r.status, 201);
    json_t *j = resp_json(&r);
    long long id = (long long)json_integer_value(json_object_get(j, "id"));
    json_decref(j);
    resp_free(&r);
    int status = 0;
    for (int i = 0; i < 150 && status != 503; i++) {
        usleep(100000);
        http(&s, "GET", "/readyz", NULL, NULL, &r);
        status = r.status;
        if (status == 503) {
            CHECK_CONTAINS(r.body, "1 of 1 job workers stopped");
            CHECK_CONTAINS(r.body, "compute device failed");
            CHECK(r.retry_after[0] != '\0');
        }
        resp_free(&r);
    }
    CHECK_INT(status, 503);
    /* the job is not failed for good: it waits, available, for a healthy worker */
    char path[64];
    snprintf(path, sizeof path, "/api/dashboard-jobs/%lld", id);
    http(&s, "GET", path, NULL, NULL, &r);
    CHECK_INT(r.status, 200);
    j = resp_json(&r);
    CHECK_STR(json_string_value(json_object_get(j, "state")), "available");
    CHECK_INT(json_integer_value(json_object_get(j, "attempt")), 1);
    const char *last = json_string_value(json_object_get(j, "lastError"));
    CHECK_CONTAINS(last, "compute device cuda:255");
    if (last) CHECK(strstr(last, root) == NULL && strstr(last, "/build/") == NULL);
    json_decref(j);
    resp_free(&r);
    /* a second second: still not claimed again by the stopped worker */
    sleep(2);
    CHECK_INT(tdb_scalar(url, "SELECT attempt FROM jobs"), 1);
    /* the rest of the API serves on */
    http(&s, "GET", "/api/models", NULL, NULL, &r);
    CHECK_INT(r.status, 200);
    resp_free(&r);
    CHECK_INT(srv_stop(&s), 0);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    CHECK_INT(system(cmd), 0);
}
