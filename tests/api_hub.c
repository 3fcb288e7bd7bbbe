/* api_hub.c: pulling models and SAEs from the Hugging Face Hub end to end: a real saed and
 * PostgreSQL against the stand-in Hub (tests/hubd.h) over loopback. Pull jobs, the cache
 * layout, resume after a cut connection, sha256 verification, sharded checkpoints, gated
 * repos with and without HF_TOKEN, 404s, 5xx retries, revisions pinned to the commit, and no
 * registration after any failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/sha256.h"
#include "tests/hubd.h"
#include "tests/srv.h"
#include "tests/t.h"

#define C1 "1111111111111111111111111111111111111111"
#define C2 "2222222222222222222222222222222222222222"
#define C3 "3333333333333333333333333333333333333333"
#define C4 "4444444444444444444444444444444444444444"
#define C5 "5555555555555555555555555555555555555555"
#define FAM "tests/data/families/llama3-rope/"

static void add_repos(hubd *h)
{
    hubd_repo(h, "acme/tiny-a", C1, 0, NULL);
    hubd_file(h, "acme/tiny-a", "config.json", "tests/data/models/tiny-a/config.json", 0);
    hubd_file(h, "acme/tiny-a", "model.safetensors", "tests/data/models/tiny-a/model.safetensors", 1);
    hubd_file(h, "acme/tiny-a", "vocab.json", "tests/data/models/tiny-a/vocab.json", 0);
    hubd_file(h, "acme/tiny-a", "merges.txt", "tests/data/models/tiny-a/merges.txt", 0);
    /* Another framework's weights: a model pull leaves them out. */
    hubd_file(h, "acme/tiny-a", "pytorch_model.bin", "tests/data/models/tiny-a/model.safetensors.sha256", 0);
    hubd_file(h, "acme/tiny-a", "saes/1-jr/cfg.json", "tests/data/sae/tiny-a-res-jumprelu/cfg.json", 0);
    hubd_file(h, "acme/tiny-a", "saes/1-jr/sae_weights.safetensors", "tests/data/sae/tiny-a-res-jumprelu/sae_weights.safetensors", 1);
    hubd_repo(h, "acme/llama3", C2, 0, NULL);
    hubd_file(h, "acme/llama3", "config.json", FAM "config.json", 0);
    hubd_file(h, "acme/llama3", "model.safetensors.index.json", FAM "model.safetensors.index.json", 0);
    hubd_file(h, "acme/llama3", "model-00001-of-00002.safetensors", FAM "model-00001-of-00002.safetensors", 1);
    hubd_file(h, "acme/llama3", "model-00002-of-00002.safetensors", FAM "model-00002-of-00002.safetensors", 1);
    /* The index names a shard this repo lacks. */
    hubd_repo(h, "acme/llama3-broken", C3, 0, NULL);
    hubd_file(h, "acme/llama3-broken", "config.json", FAM "config.json", 0);
    hubd_file(h, "acme/llama3-broken", "model.safetensors.index.json", FAM "model.safetensors.index.json", 0);
    hubd_file(h, "acme/llama3-broken", "model-00001-of-00002.safetensors", FAM "model-00001-of-00002.safetensors", 1);
    hubd_repo(h, "acme/gated", C4, 1, "hf_granted_token_1234");
    hubd_file(h, "acme/gated", "config.json", "tests/data/models/tiny-a/config.json", 0);
    hubd_file(h, "acme/gated", "model.safetensors", "tests/data/models/tiny-a/model.safetensors", 1);
    hubd_repo(h, "acme/corrupt", C5, 0, NULL);
    hubd_file(h, "acme/corrupt", "config.json", "tests/data/models/tiny-a/config.json", 0);
    hubd_file(h, "acme/corrupt", "model.safetensors", "tests/data/models/tiny-a/model.safetensors", 1);
    hubd_corrupt_sha(h, "acme/corrupt", "model.safetensors");
}

/* POSTs a pull, waits for its job; the final job JSON (owned) or NULL. */
static json_t *pull(srv *s, const char *route, const char *body)
{
    resp r;
    http(s, "POST", route, NULL, body, &r);
    if (r.status != 202) {
        t_fail(__FILE__, __LINE__, "POST %s %s: %d %s", route, body, r.status, r.body);
        resp_free(&r);
        return NULL;
    }
    CHECK_CONTAINS(r.location, "/api/dashboard-jobs/");
    json_t *j = resp_json(&r);
    long long id = (long long)json_integer_value(json_object_get(j, "jobId"));
    CHECK_STR(json_string_value(json_object_get(j, "kind")), "hub_pull");
    json_decref(j);
    resp_free(&r);
    return srv_wait_job(s, id, 60);
}

static const char *state(json_t *job) { return json_string_value(json_object_get(job, "state")); }
static const char *last_error(json_t *job) { return json_string_value(json_object_get(job, "lastError")); }
static json_t *result(json_t *job) { return json_object_get(json_object_get(job, "progress"), "result"); }

static int status_of(srv *s, const char *path)
{
    resp r;
    http(s, "GET", path, NULL, NULL, &r);
    int st = r.status;
    resp_free(&r);
    return st;
}

static int exists(const char *p)
{
    struct stat st;
    return lstat(p, &st) == 0;
}

TEST(api_hub_pull_model_and_sae)
{
    hubd *h = hubd_start();
    CHECK(h != NULL);
    if (!h) return;
    add_repos(h);
    char cache[] = "/tmp/saed-hfcache-XXXXXX";
    CHECK(mkdtemp(cache) != NULL);
    srv s;
    if (srv_fresh(&s, NULL, 0, (const char *const[]){"--migrate", "--data-roots", "tests/data", "--workers", "1",
                                                     "--hf-endpoint", hubd_endpoint(h), "--hf-cache", cache, NULL})) {
        hubd_stop(h);
        return;
    }
    /* Two 503s on the model info (retried), and the first download of each LFS blob cut at 1 MiB. */
    hubd_fail_info(h, 2);
    hubd_cut_first_lfs(h, 1 << 20);
    json_t *j = pull(&s, "/api/models", "{\"id\":\"tiny-hub\",\"hfRepoId\":\"acme/tiny-a\",\"displayName\":\"Tiny from the Hub\"}");
    CHECK_STR(state(j), "completed");
    json_t *res = result(j);
    CHECK_STR(json_string_value(json_object_get(res, "commit")), C1);
    CHECK_STR(json_string_value(json_object_get(res, "modelId")), "tiny-hub");
    char snap[600], p[800];
    snprintf(snap, sizeof snap, "%s/models--acme--tiny-a/snapshots/" C1, cache);
    CHECK_STR(json_string_value(json_object_get(res, "path")), snap);
    /* A model pull takes *.json, *.safetensors and *.txt at any depth (the SAE folder's two
     * files too), not pytorch_model.bin: the exact byte count of those six files. */
    long long want_total = 0;
    static const char *const taken[] = {"tests/data/models/tiny-a/config.json", "tests/data/models/tiny-a/model.safetensors",
                                        "tests/data/models/tiny-a/vocab.json", "tests/data/models/tiny-a/merges.txt",
                                        "tests/data/sae/tiny-a-res-jumprelu/cfg.json",
                                        "tests/data/sae/tiny-a-res-jumprelu/sae_weights.safetensors"};
    for (size_t i = 0; i < 6; i++) {
        struct stat st;
        if (stat(taken[i], &st) == 0) want_total += (long long)st.st_size;
    }
    CHECK_INT(json_integer_value(json_object_get(res, "bytes")), want_total);
    CHECK_INT(json_integer_value(json_object_get(res, "files")), 6);
    CHECK_INT(json_integer_value(json_object_get(json_object_get(j, "progress"), "bytesTotal")),
              json_integer_value(json_object_get(res, "bytes")));
    json_decref(j);
    CHECK_INT(hubd_count(h, "GET /api/models/acme/tiny-a/revision/main"), 3);
    /* Resumed from where the cut left it, and every file fetched at the pinned commit. */
    CHECK(hubd_saw_range(h, "bytes=1048576-") >= 1);
    CHECK_INT(hubd_count(h, "GET /acme/tiny-a/resolve/main/"), 0);
    CHECK(hubd_count(h, "GET /acme/tiny-a/resolve/" C1 "/model.safetensors") >= 1);
    CHECK_INT(hubd_count(h, "GET /acme/tiny-a/resolve/" C1 "/pytorch_model.bin"), 0);
    /* The cache in the Hub's layout: verified blob, relative link, refs/main, nothing left incomplete. */
    char want[65], got[65];
    CHECK_INT(sha256_file("tests/data/models/tiny-a/model.safetensors", want), 0);
    snprintf(p, sizeof p, "%s/model.safetensors", snap);
    CHECK_INT(sha256_file(p, got), 0);
    CHECK_STR(got, want);
    char link[300] = "";
    ssize_t ln = readlink(p, link, sizeof link - 1);
    if (ln > 0) link[ln] = '\0';
    snprintf(p, sizeof p, "../../blobs/%s", want);
    CHECK_STR(link, p);
    snprintf(p, sizeof p, "%s/models--acme--tiny-a/blobs/%s.incomplete", cache, want);
    CHECK(!exists(p));
    snprintf(p, sizeof p, "%s/pytorch_model.bin", snap);
    CHECK(!exists(p));
    snprintf(p, sizeof p, "%s/models--acme--tiny-a/refs/main", cache);
    FILE *f = fopen(p, "r");
    char ref[64] = "";
    if (f) {
        if (!fgets(ref, sizeof ref, f)) ref[0] = '\0';
        fclose(f);
    }
    CHECK_STR(ref, C1);
    resp r;
    http(&s, "GET", "/api/models/tiny-hub", NULL, NULL, &r);
    CHECK_INT(r.status, 200);
    j = resp_json(&r);
    CHECK_STR(json_string_value(json_object_get(j, "displayName")), "Tiny from the Hub");
    CHECK_INT(json_integer_value(json_object_get(j, "layers")), 2);
    json_decref(j);
    resp_free(&r);

    /* The SAE from a folder of the same repo; hfFolderId names the folder. */
    j = pull(&s, "/api/saes", "{\"modelId\":\"tiny-hub\",\"hfRepoId\":\"acme/tiny-a\",\"hfFolderId\":\"saes/1-jr\",\"setName\":\"jr\"}");
    CHECK_STR(state(j), "completed");
    CHECK_STR(json_string_value(json_object_get(result(j), "saeId")), "1-jr");
    /* Cached already by the model pull (its *.json and *.safetensors): nothing fetched again. */
    CHECK_INT(json_integer_value(json_object_get(result(j), "bytesDownloaded")), 0);
    json_decref(j);
    http(&s, "GET", "/api/saes/tiny-hub/1-jr", NULL, NULL, &r);
    CHECK_INT(r.status, 200);
    j = resp_json(&r);
    CHECK_STR(json_string_value(json_object_get(j, "hfRepoId")), "acme/tiny-a");
    CHECK_STR(json_string_value(json_object_get(j, "hfFolderId")), "saes/1-jr");
    CHECK_STR(json_string_value(json_object_get(j, "architecture")), "jumprelu");
    CHECK_INT(json_integer_value(json_object_get(j, "dSae")), 512);
    json_decref(j);
    resp_free(&r);
    /* Pinned to a commit given as the revision: no ref written for it. */
    j = pull(&s, "/api/saes", "{\"modelId\":\"tiny-hub\",\"id\":\"1-jr-pinned\",\"hfRepoId\":\"acme/tiny-a\",\"revision\":\"" C1
                              "\",\"path\":\"saes/1-jr\"}");
    CHECK_STR(state(j), "completed");
    CHECK_STR(json_string_value(json_object_get(result(j), "commit")), C1);
    json_decref(j);
    snprintf(p, sizeof p, "%s/models--acme--tiny-a/refs/" C1, cache);
    CHECK(!exists(p));

    /* Refusals at the door. */
    http(&s, "POST", "/api/models", NULL, "{\"id\":\"tiny-hub\",\"hfRepoId\":\"acme/tiny-a\"}", &r);
    CHECK_INT(r.status, 409);
    resp_free(&r);
    http(&s, "POST", "/api/models", NULL, "{\"id\":\"x\",\"hfRepoId\":\"acme/../etc\"}", &r);
    CHECK_INT(r.status, 400);
    CHECK_CONTAINS(r.body, "hfRepoId");
    resp_free(&r);
    http(&s, "POST", "/api/saes", NULL, "{\"modelId\":\"tiny-hub\",\"hfRepoId\":\"acme/tiny-a\",\"hfFolderId\":\"../x\"}", &r);
    CHECK_INT(r.status, 400);
    CHECK_CONTAINS(r.body, "path:");
    resp_free(&r);
    http(&s, "POST", "/api/saes", NULL, "{\"modelId\":\"nope\",\"hfRepoId\":\"acme/tiny-a\"}", &r);
    CHECK_INT(r.status, 404);
    resp_free(&r);
    http(&s, "POST", "/api/models", NULL, "{\"hfRepoId\":\"acme/tiny-a\"}", &r);
    CHECK_INT(r.status, 400);
    CHECK_CONTAINS(r.body, "id: required");
    resp_free(&r);
    CHECK_INT(srv_stop(&s), 0);
    hubd_stop(h);
    snprintf(p, sizeof p, "rm -rf '%s'", cache);
    if (system(p)) {}
}

TEST(api_hub_pull_failures_register_nothing)
{
    hubd *h = hubd_start();
    CHECK(h != NULL);
    if (!h) return;
    add_repos(h);
    char cache[] = "/tmp/saed-hfcache-XXXXXX", url[512], p[900];
    CHECK(mkdtemp(cache) != NULL);
    srv s;
    if (srv_fresh(&s, url, sizeof url, (const char *const[]){"--migrate", "--data-roots", "tests/data", "--workers", "1",
                                                             "--hf-endpoint", hubd_endpoint(h), "--hf-cache", cache,
                                                             "--hub-tries", "3", NULL})) {
        hubd_stop(h);
        return;
    }
    /* A sharded checkpoint: the index brings its two shards. */
    json_t *j = pull(&s, "/api/models", "{\"id\":\"llama3\",\"hfRepoId\":\"acme/llama3\"}");
    CHECK_STR(state(j), "completed");
    CHECK_INT(json_integer_value(json_object_get(result(j), "files")), 4);
    json_decref(j);
    CHECK_INT(status_of(&s, "/api/models/llama3"), 200);
    snprintf(p, sizeof p, "%s/models--acme--llama3/snapshots/" C2 "/model-00002-of-00002.safetensors", cache);
    CHECK(exists(p));

    static const struct {
        const char *body, *error;
    } cases[] = {
        {"{\"id\":\"m1\",\"hfRepoId\":\"acme/llama3-broken\"}", "names shard 'model-00002-of-00002.safetensors'"},
        {"{\"id\":\"m2\",\"hfRepoId\":\"acme/gated\"}", "gated repo"},
        {"{\"id\":\"m3\",\"hfRepoId\":\"acme/missing\"}", "repository not found, or private: set HF_TOKEN"},
        {"{\"id\":\"m4\",\"hfRepoId\":\"acme/tiny-a\",\"revision\":\"v9\"}", "revision not found"},
        {"{\"id\":\"m5\",\"hfRepoId\":\"acme/corrupt\"}", "does not match the Hub's"},
        {"{\"id\":\"m6\",\"hfRepoId\":\"acme/tiny-a\",\"include\":[\"*.gguf\"]}", "no file matches"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        j = pull(&s, "/api/models", cases[i].body);
        CHECK_STR(state(j), "failed");
        CHECK_CONTAINS(last_error(j), cases[i].error);
        /* Answers are final: one attempt, not five. */
        CHECK_INT(json_integer_value(json_object_get(j, "attempt")), 1);
        json_decref(j);
    }
    /* The sha mismatch left neither a blob nor a partial download. */
    char want[65];
    sha256_file("tests/data/models/tiny-a/model.safetensors", want);
    snprintf(p, sizeof p, "%s/models--acme--corrupt/blobs/%s", cache, want);
    CHECK(!exists(p));
    strcat(p, ".incomplete");
    CHECK(!exists(p));
    /* A Hub that keeps failing: every try, then the job's one attempt fails. */
    hubd_fail_info(h, 1000);
    j = pull(&s, "/api/models", "{\"id\":\"m7\",\"hfRepoId\":\"acme/tiny-a\",\"maxAttempts\":1}");
    CHECK_STR(state(j), "failed");
    CHECK_CONTAINS(last_error(j), "answered 503 after every retry");
    json_decref(j);
    hubd_fail_info(h, 0);
    /* No registration after any failure. */
    CHECK_INT(tdb_scalar(url, "SELECT count(*) FROM models"), 1);
    CHECK_INT(status_of(&s, "/api/models/m2"), 404);
    CHECK_INT(srv_stop(&s), 0);

    /* The CLI, with and without HF_TOKEN for the gated repo. */
    char out[4096], err[4096];
    const char *ep = hubd_endpoint(h);
    int rc = saed_run((const char *const[]){"pull", "--repo", "acme/gated", "--hf-endpoint", ep, "--hf-cache", cache, NULL}, out,
                      sizeof out, err, sizeof err);
    CHECK_INT(rc, 1);
    CHECK_CONTAINS(err, "No HF_TOKEN is set");
    rc = saed_run((const char *const[]){"pull", "--repo", "acme/gated", "--hf-endpoint", ep, "--hf-cache", cache, "--hf-token",
                                        "hf_someone_else_5678", NULL},
                  out, sizeof out, err, sizeof err);
    CHECK_INT(rc, 1);
    CHECK_CONTAINS(err, "This HF_TOKEN's account has not been granted access");
    rc = saed_run((const char *const[]){"pull", "--repo", "acme/gated", "--hf-endpoint", ep, "--hf-cache", cache, "--hf-token",
                                        "hf_granted_token_1234", "--include", "*.json", NULL},
                  out, sizeof out, err, sizeof err);
    CHECK_INT(rc, 0);
    CHECK_CONTAINS(out, "\"commit\":\"" C4 "\"");
    CHECK_CONTAINS(out, "\"files\":1,");
    rc = saed_run((const char *const[]){"pull", "--hf-endpoint", ep, NULL}, out, sizeof out, err, sizeof err);
    CHECK_INT(rc, 2);
    hubd_stop(h);
    snprintf(p, sizeof p, "rm -rf '%s'", cache);
    if (system(p)) {}
}
