/* api_hub.c: pulling models and SAEs from the Hugging Face Hub end to end: a real saed and
 * PostgreSQL against the stand-in Hub (tests/hubd.h) over loopback. Pull jobs, the cache
 * layout, resume after a cut connection, sha256 verification, sharded checkpoints, gated
 * repos with and without HF_TOKEN, 404s, 5xx retries, revisions pinned to the commit, and no
 * registration after any failure; pushing SAEs (repo create, preupload, LFS, NDJSON commit,
 * model card, pretrained_saes.yaml, pull requests). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/sha256.h"
#include "server/yaml_json.h"
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

/* Count of needle in hay. */
static int count_of(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; p && (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

TEST(api_hub_push_sae)
{
    hubd *h = hubd_start();
    CHECK(h != NULL);
    if (!h) return;
    hubd_write_token(h, "hf_write_token_abcdef");
    char cache[] = "/tmp/saed-hfcache-XXXXXX", url[512];
    CHECK(mkdtemp(cache) != NULL);
    srv s;
    if (srv_fresh(&s, url, sizeof url, (const char *const[]){"--migrate", "--data-roots", "tests/data", "--workers", "0",
                                                             "--hf-endpoint", hubd_endpoint(h), "--hf-cache", cache,
                                                             "--hf-token", "hf_write_token_abcdef", NULL})) {
        hubd_stop(h);
        return;
    }
    resp r;
    http(&s, "POST", "/api/models", NULL, "{\"id\":\"tiny-a\",\"path\":\"tests/data/models/tiny-a\"}", &r);
    CHECK_INT(r.status, 201);
    resp_free(&r);
    http(&s, "POST", "/api/saes", NULL, "{\"modelId\":\"tiny-a\",\"path\":\"tests/data/sae/tiny-a-res-jumprelu\",\"setName\":\"jr\"}", &r);
    CHECK_INT(r.status, 201);
    resp_free(&r);
    http(&s, "POST", "/api/saes", NULL, "{\"modelId\":\"tiny-a\",\"path\":\"tests/data/sae/tiny-a-res-topk\",\"setName\":\"topk\"}", &r);
    CHECK_INT(r.status, 201);
    resp_free(&r);

    /* The first SAE: the repo is created, weights go through LFS, the rest inline. */
    http(&s, "POST", "/api/saes/tiny-a/1-jr/push", NULL,
         "{\"repo\":\"me/tiny-saes\",\"path\":\"blocks.1/jr\",\"dashboardUrl\":\"https://np.example/tiny\"}", &r);
    CHECK_INT(r.status, 200);
    json_t *j = resp_json(&r);
    CHECK_STR(json_string_value(json_object_get(j, "repoId")), "me/tiny-saes");
    CHECK_STR(json_string_value(json_object_get(j, "release")), "tiny-saes");
    CHECK(json_is_null(json_object_get(j, "pullRequestUrl")));
    CHECK_INT(strlen(json_string_value(json_object_get(j, "commitOid")) ?: ""), 40);
    json_t *files = json_object_get(j, "files");
    CHECK_INT(json_array_size(files), 4); /* cfg.json, weights, README.md, pretrained_saes.yaml (no density yet) */
    json_decref(j);
    resp_free(&r);
    int lfs = -1;
    size_t size = 0;
    char *w = hubd_text(h, "me/tiny-saes", "blocks.1/jr/sae_weights.safetensors", &lfs, &size);
    CHECK(w != NULL);
    CHECK_INT(lfs, 1);
    CHECK(size > 200000);
    free(w);
    char *cfg = hubd_text(h, "me/tiny-saes", "blocks.1/jr/cfg.json", &lfs, NULL);
    CHECK_INT(lfs, 0);
    CHECK_CONTAINS(cfg, "\"architecture\": \"jumprelu\"");
    free(cfg);
    CHECK_INT(hubd_uploads_with_auth(h), 0);
    CHECK_CONTAINS(hubd_last_summary(h), "Upload SAE blocks.1/jr (tiny-a/1-jr)");
    char *card = hubd_text(h, "me/tiny-saes", "README.md", NULL, NULL);
    CHECK_CONTAINS(card, "library_name: saelens");
    CHECK_CONTAINS(card, "| hook | `blocks.1.hook_resid_pre` |");
    CHECK_CONTAINS(card, "| architecture | jumprelu |");
    CHECK_CONTAINS(card, "| d_sae | 512 |");
    CHECK_CONTAINS(card, "| L0 | 0 |");
    CHECK_CONTAINS(card, "[tiny-a/1-jr](https://np.example/tiny/tiny-a/1-jr)");
    free(card);

    /* The second SAE of the release, from the CLI: same repo, same card, same release. */
    char out[4096], err[4096];
    const char *ep = hubd_endpoint(h);
    int rc = saed_run((const char *const[]){"push-sae", "--model", "tiny-a", "--sae", "1-topk", "--repo", "me/tiny-saes", "--path",
                                            "blocks.1/topk", "--database-url", url, "--hf-endpoint", ep, "--hf-token",
                                            "hf_write_token_abcdef", NULL},
                      out, sizeof out, err, sizeof err);
    CHECK_INT(rc, 0);
    CHECK_CONTAINS(out, "\"path\":\"blocks.1/topk\"");
    /* Pushed again: its section and entry are replaced, not repeated. */
    http(&s, "POST", "/api/saes/tiny-a/1-jr/push", NULL, "{\"repo\":\"me/tiny-saes\",\"path\":\"blocks.1/jr\"}", &r);
    CHECK_INT(r.status, 200);
    resp_free(&r);
    card = hubd_text(h, "me/tiny-saes", "README.md", NULL, NULL);
    CHECK_INT(count_of(card, "<!-- saed:sae blocks.1/jr -->"), 1);
    CHECK_INT(count_of(card, "<!-- saed:sae blocks.1/topk -->"), 1);
    CHECK_INT(count_of(card, "library_name: saelens"), 1);
    CHECK_CONTAINS(card, "| architecture | topk |");
    free(card);
    char *y = hubd_text(h, "me/tiny-saes", "pretrained_saes.yaml", NULL, NULL);
    char yerr[200];
    json_t *doc = y ? yaml_to_json(y, strlen(y), yerr, sizeof yerr) : NULL;
    json_t *rel = json_object_get(doc, "tiny-saes");
    CHECK_INT(json_object_size(doc), 1);
    CHECK_STR(json_string_value(json_object_get(rel, "repo_id")), "me/tiny-saes");
    CHECK(json_is_null(json_object_get(rel, "conversion_func")));
    json_t *saes = json_object_get(rel, "saes");
    CHECK_INT(json_array_size(saes), 2);
    CHECK_STR(json_string_value(json_object_get(json_array_get(saes, 0), "path")), "blocks.1/jr");
    CHECK_STR(json_string_value(json_object_get(json_array_get(saes, 0), "id")), "blocks.1.hook_resid_pre");
    CHECK_STR(json_string_value(json_object_get(json_array_get(saes, 0), "neuronpedia")), "tiny-a/1-jr");
    CHECK(json_is_number(json_object_get(json_array_get(saes, 0), "l0")));
    CHECK_STR(json_string_value(json_object_get(json_array_get(saes, 1), "path")), "blocks.1/topk");
    json_decref(doc);
    free(y);

    /* As a pull request: main keeps its two entries, the PR has three. */
    http(&s, "POST", "/api/saes", NULL, "{\"modelId\":\"tiny-a\",\"path\":\"tests/data/sae/tiny-a-res-standard\",\"setName\":\"std\"}", &r);
    resp_free(&r);
    http(&s, "POST", "/api/saes/tiny-a/1-std/push", NULL, "{\"repo\":\"me/tiny-saes\",\"path\":\"blocks.1/std\",\"createPr\":true}", &r);
    CHECK_INT(r.status, 200);
    CHECK_CONTAINS(r.body, "/me/tiny-saes/discussions/1\"");
    resp_free(&r);
    y = hubd_text(h, "me/tiny-saes", "pretrained_saes.yaml", NULL, NULL);
    CHECK_INT(count_of(y, "path:"), 2);
    free(y);
    y = hubd_text(h, "me/tiny-saes@pr/1", "pretrained_saes.yaml", NULL, NULL);
    CHECK_INT(count_of(y, "path:"), 3);
    CHECK_CONTAINS(y, "    path: blocks.1/std\n");
    free(y);

    /* Refusals: unknown SAE, bad repo id, and a token without write access (the Hub's 403). */
    http(&s, "POST", "/api/saes/tiny-a/9-none/push", NULL, "{\"repo\":\"me/tiny-saes\"}", &r);
    CHECK_INT(r.status, 404);
    resp_free(&r);
    http(&s, "POST", "/api/saes/tiny-a/1-jr/push", NULL, "{\"repo\":\"me/../x\"}", &r);
    CHECK_INT(r.status, 400);
    resp_free(&r);
    http(&s, "POST", "/api/saes/tiny-a/1-jr/push", NULL, "{\"path\":\"x\"}", &r);
    CHECK_INT(r.status, 400);
    CHECK_CONTAINS(r.body, "repo: required");
    resp_free(&r);
    rc = saed_run((const char *const[]){"push-sae", "--model", "tiny-a", "--sae", "1-jr", "--repo", "me/other", "--database-url", url,
                                        "--hf-endpoint", ep, "--hf-token", "hf_read_only_token_1", NULL},
                  out, sizeof out, err, sizeof err);
    CHECK_INT(rc, 1);
    CHECK_CONTAINS(err, "creating repo me/other: forbidden");
    rc = saed_run((const char *const[]){"push-sae", "--model", "tiny-a", "--sae", "1-jr", "--repo", "me/other", "--database-url", url,
                                        "--hf-endpoint", ep, NULL},
                  out, sizeof out, err, sizeof err);
    CHECK_INT(rc, 1);
    CHECK_CONTAINS(err, "needs HF_TOKEN");
    CHECK(hubd_text(h, "me/other", "README.md", NULL, NULL) == NULL);
    CHECK_INT(srv_stop(&s), 0);
    hubd_stop(h);
    char p[700];
    snprintf(p, sizeof p, "rm -rf '%s'", cache);
    if (system(p)) {}
}
