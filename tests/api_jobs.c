/* api_jobs.c: dashboard jobs end to end: queue over HTTP, a worker of `saed serve` runs it,
 * features and activations land in PostgreSQL; validation, listing, cancellation, and a
 * re-run that replaces rows instead of duplicating them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/srv.h"
#include "tests/t.h"





/* Registers tests/data's tiny-a model and its standard SAE (1-std). */
static void register_tiny_a(srv *s)
{
    resp r;
    http(s, "POST", "/api/models", NULL, "{\"id\":\"tiny-a\",\"path\":\"tests/data/models/tiny-a\"}", &r);
    CHECK_INT(r.status, 201);
    resp_free(&r);
    http(s, "POST", "/api/saes", NULL, "{\"modelId\":\"tiny-a\",\"path\":\"tests/data/sae/tiny-a-res-standard\",\"setName\":\"std\"}", &r);
    CHECK_INT(r.status, 201);
    resp_free(&r);
}

/* SAED_JOB_MAX_FEATURES: a job wider than it is refused with how to split the SAE; a range
 * within it is queued. */
TEST(api_dashboard_job_width_limit)
{
    char root[] = "/tmp/saed-jobw-XXXXXX";
    CHECK(mkdtemp(root) != NULL);
    char corpus[300], roots[600], body[1200];
    snprintf(corpus, sizeof corpus, "%s/corpus.txt", root);
    tests_write_corpus(corpus, 4, 10, 1);
    snprintf(roots, sizeof roots, "tests/data:%s", root);
    char url[512];
    srv s;
    if (srv_fresh(&s, url, sizeof url,
                  (const char *const[]){"--migrate", "--data-roots", roots, "--workers", "0", "--job-max-features", "16", NULL}))
        return;
    resp r;
    register_tiny_a(&s);
    snprintf(body, sizeof body, "{\"modelId\":\"tiny-a\",\"saeId\":\"1-std\",\"dataset\":{\"path\":\"%s\"}}", corpus);
    http(&s, "POST", "/api/dashboard-jobs", NULL, body, &r);
    CHECK_INT(r.status, 400);
    CHECK_CONTAINS(r.body, "too_many_features");
    CHECK_CONTAINS(r.body, "more than SAED_JOB_MAX_FEATURES (16)");
    CHECK_CONTAINS(r.body, "[0, 16], [16, 32]");
    resp_free(&r);
    snprintf(body, sizeof body, "{\"modelId\":\"tiny-a\",\"saeId\":\"1-std\",\"dataset\":{\"path\":\"%s\"},\"featureRange\":[8,25]}", corpus);
    http(&s, "POST", "/api/dashboard-jobs", NULL, body, &r);
    CHECK_INT(r.status, 400);
    CHECK_CONTAINS(r.body, "17 features in one job");
    resp_free(&r);
    snprintf(body, sizeof body, "{\"modelId\":\"tiny-a\",\"saeId\":\"1-std\",\"dataset\":{\"path\":\"%s\"},\"featureRange\":[16,32]}", corpus);
    http(&s, "POST", "/api/dashboard-jobs", NULL, body, &r);
    CHECK_INT(r.status, 201);
    resp_free(&r);
    CHECK_INT(srv_stop(&s), 0);
    snprintf(body, sizeof body, "rm -rf '%s'", root);
    if (system(body)) {}
}

TEST(api_dashboard_jobs_end_to_end)
{
    char root[] = "/tmp/saed-jobs-XXXXXX";
    CHECK(mkdtemp(root) != NULL);
    char corpus[300], roots[600], body[1200];
    snprintf(corpus, sizeof corpus, "%s/corpus.txt", root);
    tests_write_corpus(corpus, 60, 40, 1);
    snprintf(roots, sizeof roots, "tests/data:%s", root);
    char url[512];
    srv s;
    if (srv_fresh(&s, url, sizeof url, (const char *const[]){"--migrate", "--data-roots", roots, "--workers", "1", NULL})) return;
    resp r;
    register_tiny_a(&s);

    /* Validation. */
    http(&s, "POST", "/api/dashboard-jobs", NULL, "{\"modelId\":\"tiny-a\",\"saeId\":\"1-std\"}", &r);
    CHECK_INT(r.status, 400);
    CHECK_CONTAINS(r.body, "dataset.path");
    resp_free(&r);
    http(&s, "POST", "/api/dashboard-jobs", NULL, "{\"modelId\":\"tiny-a\",\"saeId\":\"1-std\",\"dataset\":{\"path\":\"/etc/passwd\"}}", &r);
    CHECK_INT(r.status, 403);
    resp_free(&r);
    snprintf(body, sizeof body, "{\"modelId\":\"tiny-a\",\"saeId\":\"9-none\",\"dataset\":{\"path\":\"%s\"}}", corpus);
    http(&s, "POST", "/api/dashboard-jobs", NULL, body, &r);
    CHECK_INT(r.status, 404);
    resp_free(&r);
    snprintf(body, sizeof body, "{\"modelId\":\"tiny-a\",\"saeId\":\"1-std\",\"dataset\":{\"path\":\"%s\"},\"featureRange\":[0,9999]}", corpus);
    http(&s, "POST", "/api/dashboard-jobs", NULL, body, &r);
    CHECK_INT(r.status, 400);
    CHECK_CONTAINS(r.body, "featureRange");
    resp_free(&r);
    snprintf(body, sizeof body, "{\"modelId\":\"tiny-a\",\"saeId\":\"1-std\",\"dataset\":{\"path\":\"%s\"},\"nPrompts\":\"many\"}", corpus);
    http(&s, "POST", "/api/dashboard-jobs", NULL, body, &r);
    CHECK_INT(r.status, 400);
    CHECK_CONTAINS(r.body, "nPrompts");
    resp_free(&r);

    /* A small real job. */
    snprintf(body, sizeof body, "{\"modelId\":\"tiny-a\",\"saeId\":\"1-std\",\"dataset\":{\"path\":\"%s\",\"format\":\"text\"},"
             "\"nPrompts\":24,\"nTokensInPrompt\":16,\"batchPrompts\":8,\"seed\":3}", corpus);
    http(&s, "POST", "/api/dashboard-jobs", NULL, body, &r);
    CHECK_INT(r.status, 201);
    json_t *j = resp_json(&r);
    long long id = (long long)json_integer_value(json_object_get(j, "id"));
    json_decref(j);
    resp_free(&r);
    j = srv_wait_job(&s, id, 120);
    CHECK(j != NULL);
    CHECK_STR(json_string_value(json_object_get(j, "state")), "completed");
    if (j && strcmp(json_string_value(json_object_get(j, "state")), "completed"))
        t_fail(__FILE__, __LINE__, "job: %s", json_dumps(j, 0));
    json_decref(j);
    CHECK_INT(tdb_scalar(url, "SELECT count(*) FROM features WHERE \\\"modelId\\\"='tiny-a' AND layer='1-std'"), 512);
    long long acts = tdb_scalar(url, "SELECT count(*) FROM activations WHERE layer='1-std'");
    CHECK(acts > 100);
    CHECK_INT(tdb_scalar(url, "SELECT count(*) FROM saes WHERE id='1-std' AND \\\"hasDashboards\\\" AND num_prompts=24"), 1);
    /* Every top example's maxValue is its feature's maximum activation. */
    CHECK_INT(tdb_scalar(url, "SELECT count(*) FROM features f WHERE f.\\\"maxActApprox\\\" > 0 AND abs(f.\\\"maxActApprox\\\" -"
                         " (SELECT max(a.\\\"maxValue\\\") FROM activations a WHERE a.layer = f.layer AND a.index = f.index)) > 1e-4"), 0);
    long long fp1 = tdb_scalar(url, "SELECT sum(hashtext(index || ':' || round(frac_nonzero::numeric, 9)::text || ':' ||"
                               " round(\\\"maxActApprox\\\"::numeric, 5)::text)) FROM features");

    /* An explanation written between the runs must survive the re-run (rows are updated in
     * place, not deleted and re-inserted, which would cascade to it). */
    http(&s, "POST", "/api/explanation/new", NULL,
         "{\"modelId\":\"tiny-a\",\"layer\":\"1-std\",\"index\":3,\"description\":\"kept across re-runs\"}", &r);
    CHECK_INT(r.status, 201);
    resp_free(&r);

    /* Same job again: same results, rows replaced, not duplicated. */
    http(&s, "POST", "/api/dashboard-jobs", NULL, body, &r);
    CHECK_INT(r.status, 201);
    j = resp_json(&r);
    long long id2 = (long long)json_integer_value(json_object_get(j, "id"));
    json_decref(j);
    resp_free(&r);
    j = srv_wait_job(&s, id2, 120);
    CHECK_STR(j ? json_string_value(json_object_get(j, "state")) : NULL, "completed");
    json_decref(j);
    CHECK_INT(tdb_scalar(url, "SELECT count(*) FROM features"), 512);
    CHECK_INT(tdb_scalar(url, "SELECT count(*) FROM activations"), acts);
    CHECK_INT(tdb_scalar(url, "SELECT count(*) FROM explanations WHERE layer = '1-std' AND index = '3'"
                         " AND description = 'kept across re-runs'"), 1);
    CHECK(tdb_scalar(url, "SELECT sum(hashtext(index || ':' || round(frac_nonzero::numeric, 9)::text || ':' ||"
                     " round(\\\"maxActApprox\\\"::numeric, 5)::text)) FROM features") == fp1);

    char path[96];
    snprintf(path, sizeof path, "/api/dashboard-jobs/%lld", id2);
    http(&s, "GET", path, NULL, NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK_CONTAINS(r.body, "\"phase\":");
    CHECK_CONTAINS(r.body, "\"attempt\":1");
    resp_free(&r);
    http(&s, "GET", "/api/dashboard-jobs?state=completed&modelId=tiny-a&saeId=1-std&limit=1", NULL, NULL, &r);
    CHECK_INT(r.status, 200);
    j = resp_json(&r);
    CHECK_INT(json_array_size(j), 1);
    json_decref(j);
    resp_free(&r);
    http(&s, "GET", "/api/dashboard-jobs?state=bogus", NULL, NULL, &r);
    CHECK_INT(r.status, 400);
    resp_free(&r);
    snprintf(path, sizeof path, "/api/dashboard-jobs/%lld/cancel", id2);
    http(&s, "POST", path, NULL, NULL, &r);
    CHECK_INT(r.status, 409);
    resp_free(&r);
    http(&s, "GET", "/api/dashboard-jobs/999999", NULL, NULL, &r);
    CHECK_INT(r.status, 404);
    resp_free(&r);
    http(&s, "POST", "/api/dashboard-jobs/999999/cancel", NULL, NULL, &r);
    CHECK_INT(r.status, 404);
    resp_free(&r);
    http(&s, "GET", "/metrics", NULL, NULL, &r);
    CHECK_CONTAINS(r.body, "saed_jobs{state=\"completed\"} 2");
    CHECK_CONTAINS(r.body, "saed_workers{state=\"idle\"} 1");
    /* Two jobs on the same model and SAE: each loaded once, kept in the engine cache. */
    CHECK_CONTAINS(r.body, "saed_engine_cache_loads_total 2\n");
    CHECK_CONTAINS(r.body, "saed_engine_cache_entries 2\n");
    resp_free(&r);
    CHECK_INT(srv_stop(&s), 0);

    /* Without workers a queued job waits; cancelling it ends it at once. */
    if (srv_start(&s, url, (const char *const[]){"--data-roots", roots, "--workers", "0", NULL})) {
        t_fail(__FILE__, __LINE__, "saed did not restart");
        return;
    }
    http(&s, "POST", "/api/dashboard-jobs", NULL, body, &r);
    CHECK_INT(r.status, 201);
    j = resp_json(&r);
    long long id3 = (long long)json_integer_value(json_object_get(j, "id"));
    json_decref(j);
    resp_free(&r);
    snprintf(path, sizeof path, "/api/dashboard-jobs/%lld/cancel", id3);
    http(&s, "POST", path, NULL, NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK_CONTAINS(r.body, "\"state\":\"cancelled\"");
    resp_free(&r);
    CHECK_INT(srv_stop(&s), 0);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    CHECK_INT(system(cmd), 0);
}
