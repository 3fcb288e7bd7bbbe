/* api_v1.c: Neuronpedia's inference-server wire over real HTTP and PostgreSQL: GET /health,
 * /v1/capabilities, /v1/tokenize and /v1/activation/single. Values are checked against
 * `saed encode`, the X-SECRET-KEY check and the {"error": str} bodies against upstream's rules,
 * and the compute pool's busy answer is 429. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/srv.h"
#include "tests/t.h"

#define TINY "tests/data/models/tiny-a"
#define SAE_JR "tests/data/sae/tiny-a-res-jumprelu"
#define KEY "v1-test-key-0123456789"
#define SECRET "v1-secret-abc"
#define TEXT "The quick brown fox jumps over the lazy dog near the river bank"

static const char *const hdr[] = {"x-api-key: " KEY, "X-SECRET-KEY: " SECRET, NULL};

static json_t *call(srv *s, const char *method, const char *path, const char *body, int want)
{
    resp r;
    http(s, method, path, hdr, body, &r);
    if (r.status != want)
        t_fail(__FILE__, __LINE__, "%s %s %.200s: %d, wanted %d: %.400s", method, path, body ? body : "", r.status,
               want, r.body);
    json_t *j = resp_json(&r);
    resp_free(&r);
    return j;
}

/* The "error" string of a /v1 error reply with status want contains needle. */
static void check_error(srv *s, const char *path, const char *body, int want, const char *needle)
{
    json_t *j = call(s, "POST", path, body, want);
    const char *e = json_string_value(json_object_get(j, "error"));
    CHECK(e && strstr(e, needle));
    if (e && !strstr(e, needle)) t_fail(__FILE__, __LINE__, "%s: error '%s' lacks '%s'", path, e, needle);
    json_decref(j);
}

TEST(api_v1_secret_tokenize_activation_single)
{
    char url[512];
    srv s;
    if (srv_fresh(&s, url, sizeof url,
                  (const char *const[]){"--migrate", "--data-roots", "tests/data", "--workers", "0", "--api-keys", KEY,
                                        "--v1-secret", SECRET, "--max-text-tokens", "40", NULL}))
        return;
    /* The secret: missing or wrong → upstream's 401; right → served. */
    resp r;
    http(&s, "GET", "/health", NULL, NULL, &r);
    CHECK_INT(r.status, 401);
    CHECK_STR(r.body, "{\"error\":\"Invalid or missing X-SECRET-KEY header\"}");
    resp_free(&r);
    http(&s, "POST", "/v1/tokenize", (const char *const[]){"X-SECRET-KEY: wrong", NULL},
         "{\"model\":\"tiny-a\",\"text\":\"a\"}", &r);
    CHECK_INT(r.status, 401);
    resp_free(&r);
    json_t *j = call(&s, "GET", "/health", NULL, 200);
    CHECK_STR(json_string_value(json_object_get(j, "status")), "healthy");
    json_decref(j);
    j = call(&s, "GET", "/v1/capabilities", NULL, 200);
    CHECK(json_is_true(json_object_get(j, "multiModel")));
    /* routes: the /v1 routes of the route table, each once. */
    const char *want_routes[] = {"/v1/tokenize", "/v1/activation/single", "/v1/activation/single-batch",
                                 "/v1/activation/all", "/v1/activation/all-batch", "/v1/activation/source",
                                 "/v1/activation/topk-by-token", "/v1/activation/topk-by-token-batch",
                                 "/v1/util/sae-vector", "/v1/util/sae-topk-by-decoder-cossim", "/v1/capabilities",
                                 "/initialize", "/v1/steer/completion", "/v1/steer/completion-chat", "/v1/steer/health"};
    json_t *rl = json_object_get(j, "routes");
    for (size_t w = 0; w < sizeof want_routes / sizeof *want_routes; w++) {
        int n = 0;
        for (size_t i = 0; i < json_array_size(rl); i++) n += !strcmp(json_string_value(json_array_get(rl, i)), want_routes[w]);
        CHECK_INT(n, 1);
    }
    for (size_t i = 0; i < json_array_size(rl); i++) CHECK(strcmp(json_string_value(json_array_get(rl, i)), "/health"));
    json_decref(j);

    json_decref(call(&s, "POST", "/api/models", "{\"id\":\"tiny-a\",\"path\":\"" TINY "\"}", 201));
    json_decref(call(&s, "POST", "/api/saes", "{\"modelId\":\"tiny-a\",\"path\":\"" SAE_JR "\",\"setName\":\"rs\"}", 201));

    int T;
    float *ref = tests_saed_encode(TINY, SAE_JR, TEXT, 1, 512, &T);
    if (!ref) {
        srv_stop(&s);
        return;
    }
    CHECK(T > 10);

    /* tokenize: the BOS first by default; prependBos false (or prepend_bos) drops only it. */
    json_t *with = call(&s, "POST", "/v1/tokenize", "{\"model\":\"tiny-a\",\"text\":\"" TEXT "\"}", 200);
    json_t *without = call(&s, "POST", "/v1/tokenize", "{\"model\":\"tiny-a\",\"text\":\"" TEXT "\",\"prependBos\":false}", 200);
    json_t *snake = call(&s, "POST", "/v1/tokenize", "{\"model\":\"tiny-a\",\"text\":\"" TEXT "\",\"prepend_bos\":false}", 200);
    json_t *tw = json_object_get(with, "tokens"), *to = json_object_get(without, "tokens");
    CHECK_INT((int)json_array_size(tw), T);
    CHECK_INT((int)json_array_size(to), T - 1);
    CHECK(json_is_true(json_object_get(with, "prependBos")));
    CHECK(json_is_false(json_object_get(without, "prependBos")));
    /* A snake_case request gets a snake_case answer (the npm client's wire), same values. */
    CHECK(json_equal(json_object_get(without, "tokens"), json_object_get(snake, "tokens")));
    CHECK(json_equal(json_object_get(without, "tokenStrings"), json_object_get(snake, "token_strings")));
    CHECK(json_is_false(json_object_get(snake, "prepend_bos")));
    CHECK(!json_object_get(snake, "tokenStrings") && !json_object_get(snake, "prependBos"));
    for (int i = 0; i + 1 < T; i++)
        CHECK_INT((int)json_integer_value(json_array_get(to, i)), (int)json_integer_value(json_array_get(tw, i + 1)));
    CHECK_STR(json_string_value(json_array_get(json_object_get(without, "tokenStrings"), 0)), "The");
    CHECK_INT((int)json_array_size(json_object_get(with, "tokenStrings")), T);
    json_decref(with);
    json_decref(without);
    json_decref(snake);

    /* activation/single: the feature most active on the last token, value for value. */
    int f = 0;
    for (int i = 1; i < 512; i++)
        if (ref[(size_t)(T - 1) * 512 + i] > ref[(size_t)(T - 1) * 512 + f]) f = i;
    CHECK(ref[(size_t)(T - 1) * 512 + f] > 0);
    char body[1024];
    snprintf(body, sizeof body, "{\"model\":\"tiny-a\",\"source\":\"1-rs\",\"index\":\"%d\",\"prompt\":\"" TEXT "\"}", f);
    j = call(&s, "POST", "/v1/activation/single", body, 200);
    json_t *act = json_object_get(j, "activation"), *vals = json_object_get(act, "values");
    CHECK_INT((int)json_array_size(vals), T - 1);
    CHECK_INT((int)json_array_size(json_object_get(j, "tokens")), T - 1);
    CHECK_INT((int)json_array_size(json_object_get(j, "tokensIsSpecial")), T - 1);
    CHECK(json_is_false(json_array_get(json_object_get(j, "tokensIsSpecial"), 0)));
    CHECK_STR(json_string_value(json_array_get(json_object_get(j, "tokens"), 0)), "The");
    double max = -1;
    int argmax = -1;
    for (int i = 0; i + 1 < T; i++) {
        double want = ref[(size_t)(i + 1) * 512 + f], got = json_number_value(json_array_get(vals, i));
        CHECK(fabs(got - want) <= 1e-5 * (1 + fabs(want)));
        if (want > max) max = want, argmax = i;
    }
    CHECK(fabs(json_number_value(json_object_get(act, "maxValue")) - max) <= 1e-5 * (1 + max));
    CHECK_INT((int)json_integer_value(json_object_get(act, "maxValueIndex")), argmax);
    CHECK(!json_object_get(act, "dfaValues")); /* unset optionals are omitted */
    json_decref(j);

    /* topk-by-token: at every token its largest feature, as `saed encode` ranks them; ignoreBos
     * drops the BOS row. */
    json_t *tk = call(&s, "POST", "/v1/activation/topk-by-token",
                      "{\"model\":\"tiny-a\",\"source\":\"1-rs\",\"topK\":3,\"prompt\":\"" TEXT "\"}", 200);
    json_t *tkb = call(&s, "POST", "/v1/activation/topk-by-token",
                       "{\"model\":\"tiny-a\",\"source\":\"1-rs\",\"ignore_bos\":true,\"prompt\":\"" TEXT "\"}", 200);
    json_t *rows = json_object_get(tk, "results");
    CHECK_INT((int)json_array_size(rows), T);
    CHECK_INT((int)json_array_size(json_object_get(tkb, "results")), T - 1);
    CHECK(json_is_true(json_object_get(json_array_get(rows, 0), "isSpecial")));
    int nonzero = 0;
    for (int p = 1; p < T; p++) {
        json_t *row = json_array_get(rows, p), *tf = json_object_get(row, "topFeatures");
        CHECK_INT((int)json_integer_value(json_object_get(row, "tokenPosition")), p);
        CHECK(json_array_size(tf) <= 3);
        CHECK(json_array_size(json_object_get(json_array_get(json_object_get(tkb, "results"), p - 1), "topFeatures")) <= 5);
        int best = 0;
        for (int i = 1; i < 512; i++)
            if (ref[(size_t)p * 512 + i] > ref[(size_t)p * 512 + best]) best = i;
        if (ref[(size_t)p * 512 + best] <= 0) continue;
        nonzero++;
        json_t *top = json_array_get(tf, 0);
        CHECK_INT((int)json_integer_value(json_object_get(top, "featureIndex")), best);
        CHECK(fabs(json_number_value(json_object_get(top, "activationValue")) - ref[(size_t)p * 512 + best]) <=
              1e-5 * (1 + ref[(size_t)p * 512 + best]));
    }
    CHECK(nonzero > 5);
    json_decref(tk);
    json_decref(tkb);
    check_error(&s, "/v1/activation/topk-by-token", "{\"model\":\"tiny-a\",\"source\":\"1-rs\",\"topK\":21,\"prompt\":\"x\"}",
                400, "topK");

    /* util/sae-vector: the decoder row /api/vector/get gives, at the SAE's hook. */
    json_t *vec = call(&s, "POST", "/v1/util/sae-vector", "{\"model\":\"tiny-a\",\"source\":\"1-rs\",\"index\":7}", 200);
    json_t *np = call(&s, "POST", "/api/vector/get", "{\"modelId\":\"tiny-a\",\"source\":\"1-rs\",\"index\":\"7\"}", 200);
    json_t *va = json_object_get(vec, "vector"), *na = json_object_get(json_object_get(np, "vector"), "vector");
    CHECK_STR(json_string_value(json_object_get(vec, "hookName")), "blocks.1.hook_resid_pre");
    CHECK(json_array_size(va) > 8);
    CHECK_INT((int)json_array_size(va), (int)json_array_size(na));
    double norm = 0;
    for (size_t i = 0; i < json_array_size(va); i++) {
        double a = json_number_value(json_array_get(va, i)), b = json_number_value(json_array_get(na, i));
        CHECK(a == b);
        norm += a * a;
    }
    CHECK(norm > 1e-6);
    json_decref(vec);
    json_decref(np);
    check_error(&s, "/v1/util/sae-vector", "{\"model\":\"tiny-a\",\"source\":\"1-rs\",\"index\":512}", 404, "not found");
    check_error(&s, "/v1/util/sae-vector", "{\"model\":\"tiny-a\",\"index\":1}", 400, "source");

    /* Errors: {"error": str} naming the problem. */
    check_error(&s, "/v1/activation/single", "{\"source\":\"1-rs\",\"index\":1,\"prompt\":\"x\"}", 400, "model");
    check_error(&s, "/v1/activation/single", "{\"model\":\"tiny-a\",\"source\":\"9-none\",\"index\":1,\"prompt\":\"x\"}",
                404, "not found");
    check_error(&s, "/v1/activation/single", "{\"model\":\"tiny-a\",\"source\":\"1-rs\",\"index\":512,\"prompt\":\"x\"}",
                404, "not found");
    check_error(&s, "/v1/activation/single",
                "{\"model\":\"tiny-a\",\"vector\":[1,2],\"hook\":\"blocks.1.hook_resid_pre\",\"prompt\":\"x\"}", 400, "vector");
    check_error(&s, "/v1/tokenize", "{\"model\":\"nope\",\"text\":\"x\"}", 404, "nope");
    check_error(&s, "/v1/tokenize", "{\"model\":\"tiny-a\",\"text\":\"x\",\"prependBos\":1}", 400, "prependBos");
    char longtext[2048] = "{\"model\":\"tiny-a\",\"text\":\"";
    for (int i = 0; i < 60; i++) strcat(longtext, "word ");
    strcat(longtext, "\"}");
    check_error(&s, "/v1/tokenize", longtext, 400, "SAED_MAX_TEXT_TOKENS");
    check_error(&s, "/v1/tokenize", "{\"model\":", 400, "malformed JSON");
    free(ref);
    CHECK_INT(srv_stop(&s), 0);
}

/* One compute thread, no queue: a /v1 request that finds it busy gets 429 {"error": str}
 * (upstream's failIfBusy answer) where /api routes get 503. */
TEST(api_v1_busy_is_429)
{
    char url[512];
    srv s;
    if (srv_fresh(&s, url, sizeof url,
                  (const char *const[]){"--migrate", "--data-roots", "tests/data", "--workers", "0", "--api-keys", KEY,
                                        "--compute-threads", "1", "--compute-queue", "0", NULL}))
        return;
    json_decref(call(&s, "POST", "/api/models", "{\"id\":\"tiny-a\",\"path\":\"" TINY "\"}", 201));
    json_decref(call(&s, "POST", "/api/saes", "{\"modelId\":\"tiny-a\",\"path\":\"" SAE_JR "\",\"setName\":\"rs\"}", 201));
    /* A prompt near the context (128 tokens), so requests take long enough to overlap. */
    char *body = malloc(1 << 14);
    int n = snprintf(body, 1 << 14, "{\"model\":\"tiny-a\",\"source\":\"1-rs\",\"index\":3,\"failIfBusy\":true,\"prompt\":\"");
    for (int i = 0; i < 8; i++) n += snprintf(body + n, (1 << 14) - n, TEXT " ");
    snprintf(body + n, (1 << 14) - n, "\"}");
    int busy = 0, ok = 0, other = 0;
    for (int round = 0; round < 10 && !busy; round++) {
        shot shots[8];
        pthread_t th[8];
        for (int i = 0; i < 8; i++) {
            shots[i] = (shot){.port = s.port, .path = "/v1/activation/single", .body = body};
            pthread_create(&th[i], NULL, fire, &shots[i]);
        }
        for (int i = 0; i < 8; i++) pthread_join(th[i], NULL);
        for (int i = 0; i < 8; i++) {
            if (shots[i].status == 429) {
                busy++;
                CHECK_CONTAINS(shots[i].resp, "{\"error\":\"all compute slots are taken");
            } else if (shots[i].status == 200) {
                ok++;
            } else {
                other++;
                t_fail(__FILE__, __LINE__, "status %ld: %.300s", shots[i].status, shots[i].resp ? shots[i].resp : "");
            }
            free(shots[i].resp);
        }
    }
    CHECK(busy > 0);
    CHECK(ok > 0);
    CHECK_INT(other, 0);
    free(body);
    CHECK_INT(srv_stop(&s), 0);
}
