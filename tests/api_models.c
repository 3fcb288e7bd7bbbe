/* api_models.c: the model registry through the API and the CLI (same code path). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/srv.h"
#include "tests/t.h"

TEST(api_models_registry)
{
    char url[512];
    srv s;
    if (srv_fresh(&s, url, sizeof url, (const char *const[]){"--migrate", "--data-roots", "tests/data", NULL})) return;
    resp r;
    http(&s, "POST", "/api/models", NULL, "{\"id\":\"tiny-a\",\"path\":\"tests/data/models/tiny-a\",\"displayName\":\"Tiny A\"}", &r);
    CHECK_INT(r.status, 201);
    json_t *j = resp_json(&r);
    CHECK_STR(json_string_value(json_object_get(j, "id")), "tiny-a");
    CHECK_STR(json_string_value(json_object_get(j, "displayName")), "Tiny A");
    CHECK_STR(json_string_value(json_object_get(j, "architecture")), "gpt2");
    CHECK_INT(json_integer_value(json_object_get(j, "layers")), 2);
    CHECK_INT(json_integer_value(json_object_get(j, "dimension")), 64);
    CHECK_INT(json_integer_value(json_object_get(j, "neuronsPerLayer")), 256);
    CHECK_INT(json_integer_value(json_object_get(j, "contextSize")), 128);
    CHECK_INT(json_integer_value(json_object_get(j, "vocabSize")), 50257);
    CHECK(json_string_value(json_object_get(j, "path"))[0] == '/');
    json_decref(j);
    resp_free(&r);

    http(&s, "POST", "/api/models", NULL, "{\"id\":\"tiny-a\",\"path\":\"tests/data/models/tiny-a\"}", &r);
    CHECK_INT(r.status, 409);
    CHECK_CONTAINS(r.body, "already exists");
    resp_free(&r);
    http(&s, "POST", "/api/models", NULL, "{\"id\":\"../x\",\"path\":\"tests/data/models/tiny-a\"}", &r);
    CHECK_INT(r.status, 400);
    CHECK_CONTAINS(r.body, "id: must be");
    resp_free(&r);
    /* Outside the data roots and nonexistent look the same. */
    http(&s, "POST", "/api/models", NULL, "{\"id\":\"etc\",\"path\":\"/etc\"}", &r);
    CHECK_INT(r.status, 403);
    char *outside = strdup(r.body);
    resp_free(&r);
    http(&s, "POST", "/api/models", NULL, "{\"id\":\"etc\",\"path\":\"tests/data/../../etc\"}", &r);
    CHECK_INT(r.status, 403);
    resp_free(&r);
    http(&s, "POST", "/api/models", NULL, "{\"id\":\"etc\",\"path\":\"tests/data/nonexistent\"}", &r);
    CHECK_INT(r.status, 403);
    CHECK_CONTAINS(outside, "\"code\":\"path_forbidden\"");
    CHECK_CONTAINS(r.body, "\"code\":\"path_forbidden\"");
    free(outside);
    resp_free(&r);
    /* Inside the roots but not a model directory: the message names the file. */
    http(&s, "POST", "/api/models", NULL, "{\"id\":\"bad\",\"path\":\"tests/data/models\"}", &r);
    CHECK_INT(r.status, 400);
    CHECK_CONTAINS(r.body, "config.json: not found");
    resp_free(&r);

    http(&s, "GET", "/api/models", NULL, NULL, &r);
    CHECK_INT(r.status, 200);
    j = resp_json(&r);
    CHECK_INT(json_array_size(j), 1);
    json_decref(j);
    resp_free(&r);

    /* Delete refused while something references the model. */
    CHECK_INT(tdb_exec(url, "INSERT INTO source_sets (\"modelId\", name, description, \"creatorName\") VALUES ('tiny-a', 'res', '', 'test')"), 0);
    http(&s, "DELETE", "/api/models/tiny-a", NULL, NULL, &r);
    CHECK_INT(r.status, 409);
    resp_free(&r);
    CHECK_INT(tdb_exec(url, "DELETE FROM source_sets"), 0);
    http(&s, "DELETE", "/api/models/tiny-a", NULL, NULL, &r);
    CHECK_INT(r.status, 204);
    resp_free(&r);
    http(&s, "DELETE", "/api/models/tiny-a", NULL, NULL, &r);
    CHECK_INT(r.status, 404);
    resp_free(&r);
    http(&s, "GET", "/api/models/tiny-a", NULL, NULL, &r);
    CHECK_INT(r.status, 404);
    CHECK_CONTAINS(r.body, "model 'tiny-a' not found");
    resp_free(&r);
    CHECK_INT(srv_stop(&s), 0);

    /* The CLI writes through the same service. */
    char out[4096], err[4096];
    const char *base[] = {"import-model", "--id", "cli-model", "--path", "tests/data/models/tiny-a",
                          "--database-url", url, "--data-roots", "tests/data", NULL};
    CHECK_INT(saed_run(base, out, sizeof out, err, sizeof err), 0);
    CHECK_CONTAINS(out, "\"id\":\"cli-model\"");
    CHECK_INT(saed_run(base, out, sizeof out, err, sizeof err), 3);
    CHECK_CONTAINS(err, "already exists");
    const char *bad[] = {"import-model", "--id", "x", "--path", "/etc", "--database-url", url, "--data-roots", "tests/data", NULL};
    CHECK_INT(saed_run(bad, out, sizeof out, err, sizeof err), 1);
    CHECK_CONTAINS(err, "SAED_DATA_ROOTS");
}
