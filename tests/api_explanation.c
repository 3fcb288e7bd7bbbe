/* api_explanation.c: the explanation routes end to end on real PostgreSQL: storing one (auth,
 * validation, visible at once in GET /api/feature), full-text search (an exact description
 * first, then the phrase, then all words; pages of 20), the JSON array export (index order
 * across several ranges, scores included), and the import of Neuronpedia explanation batch
 * files over HTTP and with `saed import-explanations` (errors naming FILE:LINE, one
 * transaction, re-import changes nothing, a `saed export` file imports as unchanged). Feature
 * rows are written with SQL: no dashboard job is needed here. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "tests/srv.h"
#include "tests/t.h"

#define KEY "explain-key-0123456789abcdef"
#define HDR_KEY "x-api-key: " KEY

static json_t *call(srv *s, const char *method, const char *path, const char *const *headers, const char *body, int want)
{
    resp r;
    http(s, method, path, headers, body, &r);
    if (r.status != want) t_fail(__FILE__, __LINE__, "%s %s: %d, expected %d: %.300s", method, path, r.status, want, r.body);
    json_t *j = resp_json(&r);
    resp_free(&r);
    return j;
}

static json_t *post(srv *s, const char *path, const char *body, int want)
{
    return call(s, "POST", path, (const char *const[]){HDR_KEY, NULL}, body, want);
}

static const char *msg(json_t *j) { return json_string_value(json_object_get(j, "message")); }

static void write_file(const char *path, const char *text, int gz)
{
    if (gz) {
        gzFile g = gzopen(path, "wb");
        gzputs(g, text);
        gzclose(g);
    } else {
        FILE *f = fopen(path, "w");
        fputs(text, f);
        fclose(f);
    }
}

/* The indices of a search's results, comma-separated. */
static void result_indices(json_t *j, char *out, size_t n)
{
    out[0] = '\0';
    json_t *a = json_object_get(j, "results");
    for (size_t i = 0; i < json_array_size(a); i++) {
        size_t l = strlen(out);
        snprintf(out + l, n - l, "%s%s", i ? "," : "", json_string_value(json_object_get(json_array_get(a, i), "index")));
    }
}

static void check_new(srv *s, const char *url)
{
    static const char good[] =
        "{\"modelId\":\"tiny-a\",\"layer\":\"1-std\",\"index\":\"30\",\"description\":\"labrador dogs\",\"typeName\":\"np_max-act\","
        "\"explanationModelName\":\"gpt-4o-mini\",\"scoreV1\":0.4,\"unknownKey\":[1],\"scores\":[{\"value\":0.8,"
        "\"explanationScoreTypeName\":\"eleuther_fuzz\",\"explanationScoreModelName\":\"gpt-4o-mini\",\"jsonDetails\":{\"a\":1}}]}";
    /* Cached before the write: the write drops it, so the next read shows the explanation. */
    json_t *j = call(s, "GET", "/api/feature/tiny-a/1-std/30", NULL, NULL, 200);
    CHECK_INT(json_array_size(json_object_get(j, "explanations")), 0);
    json_decref(j);
    json_decref(call(s, "POST", "/api/explanation/new", NULL, good, 401));
    json_decref(call(s, "POST", "/api/explanation/new", (const char *const[]){"x-api-key: wrong-key-0123456789", NULL}, good, 401));
    j = post(s, "/api/explanation/new", good, 201);
    json_t *e = json_object_get(j, "explanation");
    CHECK_STR(json_string_value(json_object_get(e, "index")), "30");
    CHECK_STR(json_string_value(json_object_get(e, "description")), "labrador dogs");
    CHECK_STR(json_string_value(json_object_get(e, "typeName")), "np_max-act");
    CHECK_NEAR(json_number_value(json_object_get(e, "scoreV1")), 0.4, 1e-12);
    json_t *sc = json_array_get(json_object_get(e, "scores"), 0);
    CHECK_NEAR(json_number_value(json_object_get(sc, "value")), 0.8, 1e-12);
    CHECK_STR(json_string_value(json_object_get(sc, "jsonDetails")), "{\"a\":1}");
    char id[128];
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(e, "id")));
    json_decref(j);
    j = call(s, "GET", "/api/feature/tiny-a/1-std/30", NULL, NULL, 200);
    e = json_array_get(json_object_get(j, "explanations"), 0);
    CHECK_STR(json_string_value(json_object_get(e, "id")), id);
    CHECK_INT(json_array_size(json_object_get(e, "scores")), 1);
    json_decref(j);
    /* source alias and an integer index */
    json_decref(post(s, "/api/explanation/new", "{\"modelId\":\"tiny-a\",\"source\":\"1-std\",\"index\":31,\"description\":\"cats\"}", 201));
    CHECK_INT(tdb_scalar(url, "SELECT count(*) FROM explanations WHERE index IN ('30','31')"), 2);
    j = post(s, "/api/explanation/new", "{\"modelId\":\"tiny-a\",\"layer\":\"1-std\",\"index\":600,\"description\":\"x\"}", 404);
    CHECK_CONTAINS(msg(j), "not available");
    json_decref(j);
    j = post(s, "/api/explanation/new", "{\"modelId\":\"tiny-a\",\"layer\":\"1-std\",\"index\":3}", 400);
    CHECK_CONTAINS(msg(j), "description");
    json_decref(j);
    j = post(s, "/api/explanation/new", "{\"modelId\":\"tiny-a\",\"layer\":\"1-std\",\"index\":3,\"description\":\"x\",\"scores\":[{\"value\":\"high\"}]}", 400);
    CHECK_CONTAINS(msg(j), "scores[0]");
    json_decref(j);
    j = post(s, "/api/explanation/new", "{\"modelId\":\"tiny-a\",\"layer\":\"1-std\",\"index\":3,\"description\":\"x\",\"typeName\":5}", 400);
    CHECK_CONTAINS(msg(j), "typeName");
    json_decref(j);
    char *big = malloc(10200);
    int l = snprintf(big, 10200, "{\"modelId\":\"tiny-a\",\"layer\":\"1-std\",\"index\":3,\"description\":\"");
    memset(big + l, 'a', 10001);
    strcpy(big + l + 10001, "\"}");
    j = post(s, "/api/explanation/new", big, 400);
    CHECK_CONTAINS(msg(j), "10000");
    json_decref(j);
    free(big);
}

static void check_search(srv *s, const char *url)
{
    CHECK_INT(tdb_exec(url, "INSERT INTO explanations (\"modelId\", layer, index, description) VALUES"
                            " ('tiny-a','1-std','43','golden gate bridge'), ('tiny-a','1-std','42','retriever that is golden'),"
                            " ('tiny-a','1-std','41','dogs like the golden retriever breed'), ('tiny-a','1-std','40','Golden Retriever'),"
                            " ('tiny-a','1-std','50','bank of the river'), ('tiny-a','1-std','51','money at the bank near a river'),"
                            " ('tiny-a','1-std','52','the river bank')"), 0);
    char got[512];
    json_t *j = post(s, "/api/explanation/search", "{\"modelId\":\"tiny-a\",\"layers\":[\"1-std\"],\"query\":\"golden retriever\"}", 200);
    result_indices(j, got, sizeof got);
    CHECK_STR(got, "40,41,42,43"); /* exact, phrase, all words, any word */
    CHECK_INT(json_integer_value(json_object_get(j, "resultsCount")), 4);
    CHECK(json_is_false(json_object_get(j, "hasMore")));
    CHECK(!json_object_get(j, "nextOffset"));
    CHECK_STR(json_string_value(json_object_get(json_object_get(j, "request"), "query")), "golden retriever");
    json_t *r0 = json_array_get(json_object_get(j, "results"), 0);
    double c0 = json_number_value(json_object_get(r0, "cosine_similarity"));
    CHECK(c0 > json_number_value(json_object_get(json_array_get(json_object_get(j, "results"), 1), "cosine_similarity")));
    CHECK(c0 < 1.0 && c0 > 0.8);
    CHECK_STR(json_string_value(json_object_get(json_object_get(r0, "neuron"), "index")), "40");
    CHECK_STR(json_string_value(json_object_get(json_array_get(json_object_get(json_object_get(r0, "neuron"), "explanations"), 0),
                                                "description")), "Golden Retriever");
    json_decref(j);
    j = post(s, "/api/explanation/search-model", "{\"modelId\":\"tiny-a\",\"query\":\"river bank\"}", 200);
    result_indices(j, got, sizeof got);
    CHECK_STR(got, "52,50,51"); /* the phrase first, then the shorter description of the two with both words */
    json_decref(j);
    j = call(s, "POST", "/api/explanation/search-all", (const char *const[]){"x-api-key: wrong-key-0123456789", NULL},
             "{\"query\":\"retriever\",\"offset\":0,\"extra\":true}", 200); /* a wrong key is ignored on reads */
    CHECK_INT(json_integer_value(json_object_get(j, "resultsCount")), 3);
    json_decref(j);
    j = post(s, "/api/explanation/search-model", "{\"modelId\":\"other-model\",\"query\":\"retriever\"}", 200);
    CHECK_INT(json_integer_value(json_object_get(j, "resultsCount")), 0);
    json_decref(j);
    /* Pages of 20 over the 1429 "feature number N" explanations of 0-big. */
    j = post(s, "/api/explanation/search", "{\"modelId\":\"tiny-a\",\"layers\":[\"0-big\"],\"query\":\"feature number\"}", 200);
    CHECK_INT(json_integer_value(json_object_get(j, "resultsCount")), 20);
    CHECK(json_is_true(json_object_get(j, "hasMore")));
    CHECK_INT(json_integer_value(json_object_get(j, "nextOffset")), 20);
    json_decref(j);
    j = post(s, "/api/explanation/search", "{\"modelId\":\"tiny-a\",\"layers\":[\"0-big\",\"1-std\"],\"query\":\"feature number\",\"offset\":1420}", 200);
    CHECK_INT(json_integer_value(json_object_get(j, "resultsCount")), 9);
    CHECK(json_is_false(json_object_get(j, "hasMore")));
    json_decref(j);
    static const char *const bad[][2] = {
        {"/api/explanation/search", "{\"modelId\":\"tiny-a\",\"layers\":[\"1-std\"],\"query\":\"ab\"}"},
        {"/api/explanation/search", "{\"modelId\":\"tiny-a\",\"query\":\"golden\"}"},
        {"/api/explanation/search", "{\"modelId\":\"tiny-a\",\"layers\":[],\"query\":\"golden\"}"},
        {"/api/explanation/search", "{\"modelId\":\"tiny-a\",\"layers\":[\"1-std\"],\"query\":\"golden\",\"offset\":-1}"},
        {"/api/explanation/search-model", "{\"query\":\"golden\"}"},
        {"/api/explanation/search-all", "{\"query\":\"golden\",\"offset\":\"x\"}"},
        {"/api/explanation/search-all", "[\"golden\"]"},
    };
    static const char *const names[] = {"query", "layers", "layers", "offset", "modelId", "offset", "JSON object"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        j = post(s, bad[i][0], bad[i][1], 400);
        CHECK_CONTAINS(msg(j), names[i]);
        json_decref(j);
    }
}

static void check_export(srv *s)
{
    json_t *j = call(s, "GET", "/api/explanation/export?modelId=tiny-a&saeId=0-big", NULL, NULL, 200);
    CHECK_INT(json_array_size(j), 1429);
    int ordered = 1;
    for (size_t i = 0; i < json_array_size(j); i++) {
        char want[16];
        snprintf(want, sizeof want, "%zu", 7 * i); /* numeric order across the 4096-feature ranges */
        if (strcmp(json_string_value(json_object_get(json_array_get(j, i), "index")) ?: "", want)) ordered = 0;
    }
    CHECK(ordered);
    json_t *last = json_array_get(j, 1428);
    CHECK_STR(json_string_value(json_object_get(last, "description")), "feature number 9996");
    CHECK_STR(json_string_value(json_object_get(last, "layer")), "0-big");
    json_decref(j);
    j = call(s, "GET", "/api/explanation/export?modelId=tiny-a&saeId=1-std", NULL, NULL, 200);
    int found = 0;
    for (size_t i = 0; i < json_array_size(j); i++) {
        json_t *e = json_array_get(j, i);
        if (!strcmp(json_string_value(json_object_get(e, "index")), "30")) {
            found = 1;
            CHECK_STR(json_string_value(json_object_get(e, "explanationModelName")), "gpt-4o-mini");
            CHECK_INT(json_array_size(json_object_get(e, "scores")), 1);
        }
    }
    CHECK(found);
    json_decref(j);
    json_decref(call(s, "GET", "/api/explanation/export?modelId=tiny-a&saeId=9-none", NULL, NULL, 404));
    json_t *e = call(s, "GET", "/api/explanation/export?modelId=tiny-a", NULL, NULL, 400);
    CHECK_CONTAINS(msg(e), "saeId");
    json_decref(e);
}

static void check_import_http(srv *s, const char *url, const char *root)
{
    static const char file1[] =
        "{\"id\":\"imp-1\",\"modelId\":\"tiny-a\",\"layer\":\"1-std\",\"index\":\"20\",\"description\":\"imported one\","
        "\"typeName\":\"np_max-act\",\"explanationModelName\":\"gpt-4o-mini\",\"embedding\":[0.1,0.2],"
        "\"createdAt\":\"2024-05-01T00:00:00.000Z\",\"umap_x\":0}\n"
        "\n"
        "{\"modelId\":\"tiny-a\",\"source\":\"1-std\",\"index\":21,\"description\":\"imported two\",\"scores\":[{\"value\":0.7,"
        "\"explanationScoreTypeName\":\"eleuther_fuzz\",\"explanationScoreModelName\":\"gpt-4o-mini\",\"jsonDetails\":{\"k\":1}}]}\n";
    const char *nd[] = {"Content-Type: application/x-ndjson", HDR_KEY, NULL};
    json_t *j = call(s, "POST", "/api/explanation/import?name=up.jsonl", nd, file1, 200);
    CHECK_STR(json_string_value(json_object_get(j, "file")), "up.jsonl");
    CHECK_INT(json_integer_value(json_object_get(j, "lines")), 3);
    CHECK_INT(json_integer_value(json_object_get(j, "explanations")), 2);
    CHECK_INT(json_integer_value(json_object_get(j, "inserted")), 2);
    json_decref(j);
    CHECK_INT(tdb_scalar(url, "SELECT count(*) FROM explanations WHERE id = 'imp-1' AND \\\"createdAt\\\" = '2024-05-01Z'"), 1);
    /* Again: nothing changes, nothing is duplicated (the line without an id included). */
    const char *score_sum = "SELECT sum(hashtext(s.id)) FROM explanation_scores s JOIN explanations e ON e.id = s.\\\"explanationId\\\""
                            " WHERE e.index = '21'";
    long long score_ids = tdb_scalar(url, score_sum);
    j = call(s, "POST", "/api/explanation/import?name=up.jsonl", nd, file1, 200);
    CHECK_INT(json_integer_value(json_object_get(j, "inserted")), 0);
    CHECK_INT(json_integer_value(json_object_get(j, "updated")), 0);
    CHECK_INT(json_integer_value(json_object_get(j, "unchanged")), 2);
    json_decref(j);
    CHECK_INT(tdb_scalar(url, "SELECT count(*) FROM explanations WHERE layer = '1-std' AND index IN ('20', '21')"), 2);
    CHECK_INT(tdb_scalar(url, "SELECT count(*) FROM explanation_scores s JOIN explanations e ON e.id = s.\\\"explanationId\\\""
                              " WHERE e.index = '21'"), 1);
    CHECK(tdb_scalar(url, score_sum) == score_ids); /* the same score rows, not replaced ones */
    /* Other scores for the same line: the explanation counts as updated, its scores replaced. */
    j = call(s, "POST", "/api/explanation/import", nd,
             "{\"modelId\":\"tiny-a\",\"source\":\"1-std\",\"index\":21,\"description\":\"imported two\",\"scores\":["
             "{\"value\":0.9,\"explanationScoreTypeName\":\"eleuther_fuzz\",\"explanationScoreModelName\":\"gpt-4o-mini\"},"
             "{\"value\":0.1,\"explanationScoreTypeName\":\"eleuther_detection\",\"explanationScoreModelName\":\"gpt-4o-mini\"}]}\n", 200);
    CHECK_INT(json_integer_value(json_object_get(j, "updated")), 1);
    CHECK_INT(json_integer_value(json_object_get(j, "inserted")), 0);
    json_decref(j);
    CHECK_INT(tdb_scalar(url, "SELECT round(sum(s.value) * 10) FROM explanation_scores s JOIN explanations e ON e.id = s.\\\"explanationId\\\""
                              " WHERE e.index = '21'"), 10);
    /* A changed row is an update of the same explanation. */
    j = call(s, "POST", "/api/explanation/import", nd,
             "{\"id\":\"imp-1\",\"modelId\":\"tiny-a\",\"layer\":\"1-std\",\"index\":\"20\",\"description\":\"imported one, edited\"}\n", 200);
    CHECK_INT(json_integer_value(json_object_get(j, "updated")), 1);
    json_decref(j);
    j = call(s, "GET", "/api/feature/tiny-a/1-std/20", NULL, NULL, 200);
    CHECK_STR(json_string_value(json_object_get(json_array_get(json_object_get(j, "explanations"), 0), "description")),
              "imported one, edited");
    json_decref(j);
    /* A bad line rejects the whole file, naming it. */
    long long before = tdb_scalar(url, "SELECT count(*) FROM explanations");
    j = call(s, "POST", "/api/explanation/import?name=bad.jsonl", nd,
             "{\"id\":\"imp-9\",\"modelId\":\"tiny-a\",\"layer\":\"1-std\",\"index\":\"22\",\"description\":\"fine\"}\n"
             "{\"modelId\":\"tiny-a\",\"layer\":\"1-std\" \"index\":1}\n", 400);
    CHECK_CONTAINS(msg(j), "bad.jsonl:2:");
    json_decref(j);
    j = call(s, "POST", "/api/explanation/import?name=bad.jsonl", nd,
             "{\"id\":\"imp-9\",\"modelId\":\"tiny-a\",\"layer\":\"1-std\",\"index\":\"22\",\"description\":\"fine\"}\n\n"
             "{\"modelId\":\"tiny-a\",\"layer\":\"1-std\",\"index\":\"777\",\"description\":\"no such feature\"}\n", 400);
    CHECK_CONTAINS(msg(j), "bad.jsonl:3: feature tiny-a/1-std/777 does not exist");
    json_decref(j);
    j = call(s, "POST", "/api/explanation/import", nd, "{\"modelId\":\"tiny-a\",\"layer\":\"1-std\",\"index\":\"x1\",\"description\":\"d\"}", 400);
    CHECK_CONTAINS(msg(j), "body:1: index");
    json_decref(j);
    j = call(s, "POST", "/api/explanation/import", nd, "{\"modelId\":\"tiny-a\",\"layer\":\"1-std\",\"index\":1}", 400);
    CHECK_CONTAINS(msg(j), "body:1: description");
    json_decref(j);
    CHECK_INT(tdb_scalar(url, "SELECT count(*) FROM explanations"), before);
    json_decref(call(s, "POST", "/api/explanation/import", (const char *const[]){"Content-Type: application/x-ndjson", NULL}, file1, 401));
    json_decref(call(s, "POST", "/api/explanation/import", (const char *const[]){"Content-Type: text/html", HDR_KEY, NULL}, file1, 415));
    json_decref(call(s, "POST", "/api/explanation/import", (const char *const[]){"Content-Type: application/x-ndjson", HDR_KEY, NULL}, "", 400));
    /* A file on the server, under SAED_DATA_ROOTS. */
    char p[400], body[600];
    snprintf(p, sizeof p, "%s/server-side.jsonl", root);
    write_file(p, "{\"modelId\":\"tiny-a\",\"layer\":\"1-std\",\"index\":\"23\",\"description\":\"from a path\"}\n", 0);
    snprintf(body, sizeof body, "{\"path\":\"%s\"}", p);
    j = post(s, "/api/explanation/import", body, 200);
    CHECK_INT(json_integer_value(json_object_get(j, "inserted")), 1);
    CHECK_STR(json_string_value(json_object_get(j, "file")), p);
    json_decref(j);
    json_decref(post(s, "/api/explanation/import", "{\"path\":\"/etc/hostname\"}", 403));
}

static void check_import_cli(const char *url, const char *root)
{
    char p[400], out[4096], err[4096];
    snprintf(p, sizeof p, "%s/batch-0.jsonl.gz", root);
    write_file(p,
               "{\"id\":\"cli-1\",\"modelId\":\"tiny-a\",\"layer\":\"1-std\",\"index\":\"24\",\"description\":\"from the cli\"}\n"
               "{\"modelId\":\"tiny-a\",\"layer\":\"1-std\",\"index\":\"25\",\"description\":\"from the cli, no id\"}\n", 1);
    CHECK_INT(saed_run((const char *const[]){"import-explanations", p, "--database-url", url, NULL}, out, sizeof out, err, sizeof err), 0);
    CHECK_CONTAINS(out, "2 new, 0 updated, 0 unchanged");
    CHECK_INT(saed_run((const char *const[]){"import-explanations", p, "--database-url", url, NULL}, out, sizeof out, err, sizeof err), 0);
    CHECK_CONTAINS(out, "0 new, 0 updated, 2 unchanged");
    CHECK_INT(tdb_scalar(url, "SELECT count(*) FROM explanations WHERE index IN ('24','25')"), 2);
    snprintf(p, sizeof p, "%s/bad.jsonl.gz", root);
    write_file(p, "{\"modelId\":\"tiny-a\",\"layer\":\"1-std\",\"index\":\"26\",\"description\":\"ok\"}\n[1,2]\n", 1);
    CHECK_INT(saed_run((const char *const[]){"import-explanations", p, "--database-url", url, NULL}, out, sizeof out, err, sizeof err), 1);
    char want[450];
    snprintf(want, sizeof want, "%s:2: expected a JSON object", p);
    CHECK_CONTAINS(err, want);
    CHECK_INT(tdb_scalar(url, "SELECT count(*) FROM explanations WHERE index = '26'"), 0);
    CHECK_INT(saed_run((const char *const[]){"import-explanations", "/nonexistent/x.jsonl", "--database-url", url, NULL}, out,
                       sizeof out, err, sizeof err), 1);
    CHECK_CONTAINS(err, "/nonexistent/x.jsonl");
    CHECK_INT(saed_run((const char *const[]){"import-explanations", "--database-url", url, NULL}, out, sizeof out, err, sizeof err), 2);
    /* Neuronpedia's layout as `saed export` writes it imports as it is: every row unchanged. */
    CHECK_INT(tdb_exec(url, "UPDATE saes SET \"hasDashboards\" = true WHERE id = '1-std'"), 0);
    char dir[400];
    snprintf(dir, sizeof dir, "%s/np", root);
    CHECK_INT(saed_run((const char *const[]){"export", "--model", "tiny-a", "--sae", "1-std", "--out", dir, "--database-url", url, NULL},
                       out, sizeof out, err, sizeof err), 0);
    snprintf(p, sizeof p, "%s/explanations/batch-0.jsonl.gz", dir);
    long long n = tdb_scalar(url, "SELECT count(*) FROM explanations WHERE layer = '1-std'");
    CHECK(n > 10);
    CHECK_INT(saed_run((const char *const[]){"import-explanations", p, "--database-url", url, NULL}, out, sizeof out, err, sizeof err), 0);
    char line[200];
    snprintf(line, sizeof line, "%lld explanation(s) on %lld line(s): 0 new, 0 updated, %lld unchanged", n, n, n);
    CHECK_CONTAINS(out, line);
    CHECK_INT(tdb_scalar(url, "SELECT count(*) FROM explanations WHERE layer = '1-std'"), n);
}

TEST(api_explanations)
{
    char root[] = "/tmp/saed-explain-test-XXXXXX";
    CHECK(mkdtemp(root) != NULL);
    char roots[600], url[512];
    snprintf(roots, sizeof roots, "tests/data:%s", root);
    srv s;
    if (srv_fresh(&s, url, sizeof url,
                  (const char *const[]){"--migrate", "--data-roots", roots, "--workers", "0", "--api-keys", KEY, NULL}))
        return;
    json_decref(post(&s, "/api/models", "{\"id\":\"tiny-a\",\"path\":\"tests/data/models/tiny-a\"}", 201));
    json_decref(post(&s, "/api/saes", "{\"modelId\":\"tiny-a\",\"path\":\"tests/data/sae/tiny-a-res-standard\",\"setName\":\"std\"}", 201));
    /* Feature rows as a job would leave them (statistics do not matter here), and a second,
     * larger SAE whose explanations span several export ranges. */
    CHECK_INT(tdb_exec(url, "INSERT INTO features (\"modelId\", layer, index) SELECT 'tiny-a', '1-std', g::text FROM generate_series(0, 511) g;"
                            "INSERT INTO saes (\"modelId\", id, \"setName\", path, \"hookName\", architecture, \"dIn\", \"dSae\", layer)"
                            " VALUES ('tiny-a', '0-big', 'std', '/nonexistent', 'blocks.0.hook_resid_pre', 'standard', 64, 10000, 0);"
                            "INSERT INTO features (\"modelId\", layer, index) SELECT 'tiny-a', '0-big', g::text FROM generate_series(0, 9999) g;"
                            "INSERT INTO explanations (\"modelId\", layer, index, description)"
                            " SELECT 'tiny-a', '0-big', g::text, 'feature number ' || g FROM generate_series(0, 9999, 7) g"), 0);
    check_new(&s, url);
    check_search(&s, url);
    check_export(&s);
    check_import_http(&s, url, root);
    check_import_cli(url, root);
    CHECK_INT(srv_stop(&s), 0);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    if (!t_failed_now()) CHECK_INT(system(cmd), 0);
}
