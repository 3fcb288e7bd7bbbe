/* api_live.c: the compute routes over real HTTP and PostgreSQL: POST /api/activation/new,
 * /api/search-all and /api/search-topk-by-token. Values are checked against `saed encode` (the
 * same SAE folded as dashboards fold it), results against stored dashboards after a real
 * dashboard job, Neuronpedia's request quirks, the input limits, the compute pool's 503 when
 * saturated and the engine cache loading each model and SAE once. */
#include <curl/curl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/safetensors.h"
#include "tests/oas.h"
#include "tests/srv.h"
#include "tests/t.h"

oas *tests_spec(void);

#define TINY "tests/data/models/tiny-a"
#define SAE_JR "tests/data/sae/tiny-a-res-jumprelu"
#define SAE_STD "tests/data/sae/tiny-a-res-standard"
#define SAE_TK "tests/data/sae/tiny-a-res-topk"
#define KEY "live-test-key-0123456789"
#define TEXT "The quick brown fox jumps over the lazy dog near the river bank"

static const char *const key_hdr[] = {"x-api-key: " KEY, NULL};

static void post(srv *s, const char *path, const char *body, int want, resp *r)
{
    http(s, "POST", path, key_hdr, body, r);
    if (r->status != want)
        t_fail(__FILE__, __LINE__, "POST %s %.200s: %d, wanted %d: %.400s", path, body, r->status, want, r->body);
}

/* Registers tiny-a and the SAEs every test uses: set "rs" = 1-rs (jumprelu) and 1-rs__std
 * (standard), set "tk" = 1-tk (topk without rescale), all at blocks.1.hook_resid_pre. */
static void register_all(srv *s)
{
    resp r;
    post(s, "/api/models", "{\"id\":\"tiny-a\",\"path\":\"" TINY "\"}", 201, &r);
    resp_free(&r);
    post(s, "/api/saes", "{\"modelId\":\"tiny-a\",\"path\":\"" SAE_JR "\",\"setName\":\"rs\"}", 201, &r);
    resp_free(&r);
    post(s, "/api/saes", "{\"modelId\":\"tiny-a\",\"id\":\"1-rs__std\",\"path\":\"" SAE_STD "\",\"setName\":\"rs\"}", 201, &r);
    resp_free(&r);
    post(s, "/api/saes", "{\"modelId\":\"tiny-a\",\"path\":\"" SAE_TK "\",\"setName\":\"tk\"}", 201, &r);
    resp_free(&r);
}

/* `saed encode --prepend-bos --fold-dec-norm` on text: dense (T, 512) values (owned), T out.
 * The topk SAE without rescale_acts_by_decoder_norm has no fold (dashboards do not fold it;
 * SAELens does not define it), so it runs without --fold-dec-norm. */
static float *encode(const char *sae_dir, const char *text, int *T)
{
    return tests_saed_encode(TINY, sae_dir, text, strcmp(sae_dir, SAE_TK) != 0, 512, T);
}

static float num(json_t *j) { return (float)json_number_value(j); }

/* Checks one activation/new result against the encoded values of feature f (BOS dropped). */
static void check_activation(json_t *a, const float *ref, int T, int f, const char *layer)
{
    json_t *vals = json_object_get(a, "values"), *toks = json_object_get(a, "tokens");
    CHECK_INT(json_array_size(vals), T - 1);
    CHECK_INT(json_array_size(toks), T - 1);
    float mx = -1, mn = 1e30f;
    int am = -1;
    for (int t = 1; t < T && (size_t)(t - 1) < json_array_size(vals); t++) {
        float got = num(json_array_get(vals, (size_t)t - 1)), want = ref[(size_t)t * 512 + f];
        if (got != want) t_fail(__FILE__, __LINE__, "feature %d token %d: %.9g != saed encode's %.9g", f, t, got, want);
        if (want > mx) {
            mx = want;
            am = t - 1;
        }
        if (want < mn) mn = want;
    }
    CHECK(num(json_object_get(a, "maxValue")) == mx);
    CHECK(num(json_object_get(a, "minValue")) == mn);
    CHECK_INT(json_integer_value(json_object_get(a, "maxValueTokenIndex")), am);
    CHECK_STR(json_string_value(json_object_get(a, "layer")), layer);
    CHECK_STR(json_string_value(json_object_get(a, "dataSource")), "saed");
    CHECK(json_is_string(json_object_get(a, "index")));
}

TEST(api_live_activation_new_equals_saed_encode)
{
    char url[512];
    srv s;
    if (srv_fresh(&s, url, sizeof url,
                  (const char *const[]){"--migrate", "--data-roots", "tests/data", "--workers", "0", "--api-keys", KEY,
                                        "--max-text-tokens", "40", NULL}))
        return;
    register_all(&s);
    int T;
    float *ref = encode(SAE_JR, TEXT, &T);
    if (!ref) {
        srv_stop(&s);
        return;
    }
    CHECK(T > 10);
    /* The feature most active on the last token. */
    int f = 0;
    for (int i = 1; i < 512; i++)
        if (ref[(size_t)(T - 1) * 512 + i] > ref[(size_t)(T - 1) * 512 + f]) f = i;
    CHECK(ref[(size_t)(T - 1) * 512 + f] > 0);
    char body[4096], want_index[16];
    snprintf(want_index, sizeof want_index, "%d", f);
    resp r;
    snprintf(body, sizeof body, "{\"feature\":{\"modelId\":\"tiny-a\",\"source\":\"1-rs\",\"index\":\"%d\"},\"customText\":\"" TEXT "\"}", f);
    post(&s, "/api/activation/new", body, 200, &r);
    json_t *a = resp_json(&r);
    check_activation(a, ref, T, f, "1-rs");
    CHECK_STR(json_string_value(json_object_get(a, "index")), want_index);
    CHECK_STR(json_string_value(json_array_get(json_object_get(a, "tokens"), 0)), "The");
    CHECK(json_is_null(json_object_get(a, "dataIndex")));
    json_decref(a);
    char first[1 << 16];
    snprintf(first, sizeof first, "%s", r.body);
    resp_free(&r);

    /* Neuronpedia's spellings: trailing slash, integer index, `neuron` with `layer`, an invalid
     * key (anonymous: these routes need none), the BOS already in the text, ignoreBos. Same
     * values every time. */
    const char *variants[] = {
        "{\"feature\":{\"modelId\":\"tiny-a\",\"source\":\"1-rs\",\"index\":%d},\"customText\":\"" TEXT "\"}",
        "{\"neuron\":{\"modelId\":\"tiny-a\",\"layer\":\"1-rs\",\"index\":\"%d\"},\"customText\":\"" TEXT "\",\"extra\":1}",
        "{\"feature\":{\"modelId\":\"tiny-a\",\"source\":\"1-rs\",\"index\":\"%d\"},\"customText\":\"<|endoftext|>" TEXT "\"}",
        "{\"feature\":{\"modelId\":\"tiny-a\",\"source\":\"1-rs\",\"index\":\"%d\"},\"customText\":\"" TEXT "\",\"ignoreBos\":true}",
    };
    for (int v = 0; v < 4; v++) {
        snprintf(body, sizeof body, variants[v], f);
        const char *const bad_key[] = {"x-api-key: not-a-valid-key", NULL};
        http(&s, "POST", v == 0 ? "/api/activation/new/" : "/api/activation/new", v == 1 ? bad_key : NULL, body, &r);
        CHECK_INT(r.status, 200);
        a = resp_json(&r);
        check_activation(a, ref, T, f, "1-rs");
        json_decref(a);
        resp_free(&r);
    }
    /* An array of texts: an array of results, each as the text alone gives it. */
    snprintf(body, sizeof body, "{\"feature\":{\"modelId\":\"tiny-a\",\"source\":\"1-rs\",\"index\":\"%d\"},"
             "\"customText\":[\"" TEXT "\",\"river bank\"]}", f);
    post(&s, "/api/activation/new", body, 200, &r);
    a = resp_json(&r);
    CHECK(json_is_array(a) && json_array_size(a) == 2);
    check_activation(json_array_get(a, 0), ref, T, f, "1-rs");
    int T2;
    float *ref2 = encode(SAE_JR, "river bank", &T2);
    if (ref2) check_activation(json_array_get(a, 1), ref2, T2, f, "1-rs");
    free(ref2);
    json_decref(a);
    resp_free(&r);
    /* The standard SAE of the same set answers with its own values. */
    float *ref_std = encode(SAE_STD, TEXT, &T);
    snprintf(body, sizeof body, "{\"feature\":{\"modelId\":\"tiny-a\",\"source\":\"1-rs__std\",\"index\":\"%d\"},\"customText\":\"" TEXT "\"}", f);
    post(&s, "/api/activation/new", body, 200, &r);
    a = resp_json(&r);
    if (ref_std) check_activation(a, ref_std, T, f, "1-rs__std");
    json_decref(a);
    resp_free(&r);
    free(ref_std);
    /* topk: a feature it keeps at the last token. */
    float *ref_tk = encode(SAE_TK, TEXT, &T);
    int ftk = 0;
    for (int i = 1; ref_tk && i < 512; i++)
        if (ref_tk[(size_t)(T - 1) * 512 + i] > ref_tk[(size_t)(T - 1) * 512 + ftk]) ftk = i;
    CHECK(ref_tk && ref_tk[(size_t)(T - 1) * 512 + ftk] > 0);
    snprintf(body, sizeof body, "{\"feature\":{\"modelId\":\"tiny-a\",\"source\":\"1-tk\",\"index\":\"%d\"},\"customText\":\"" TEXT "\"}", ftk);
    post(&s, "/api/activation/new", body, 200, &r);
    a = resp_json(&r);
    if (ref_tk) check_activation(a, ref_tk, T, ftk, "1-tk");
    json_decref(a);
    resp_free(&r);
    free(ref_tk);

    /* Nothing but the BOS: nothing left once it is dropped. */
    post(&s, "/api/activation/new", "{\"feature\":{\"modelId\":\"tiny-a\",\"source\":\"1-rs\",\"index\":\"1\"},\"customText\":\"<|endoftext|>\"}", 200, &r);
    a = resp_json(&r);
    CHECK_INT(json_array_size(json_object_get(a, "tokens")), 0);
    CHECK_INT(json_integer_value(json_object_get(a, "maxValueTokenIndex")), -1);
    json_decref(a);
    resp_free(&r);

    /* Errors: JSON bodies naming the field or the limit. */
    struct { const char *body; int status; const char *needle; } bad[] = {
        {"{\"customText\":\"hi\"}", 400, "feature"},
        {"{\"feature\":{\"modelId\":\"tiny-a\",\"source\":\"1-rs\",\"index\":\"x1\"},\"customText\":\"hi\"}", 400, "feature.index"},
        {"{\"feature\":{\"modelId\":\"tiny-a\",\"index\":\"1\"},\"customText\":\"hi\"}", 400, "feature.source"},
        {"{\"feature\":{\"modelId\":\"tiny-a\",\"source\":\"1-rs\",\"index\":\"1\"}}", 400, "customText"},
        {"{\"feature\":{\"modelId\":\"tiny-a\",\"source\":\"1-rs\",\"index\":\"1\"},\"customText\":[]}", 400, "customText"},
        {"{\"feature\":{\"modelId\":\"tiny-a\",\"source\":\"1-rs\",\"index\":\"1\"},\"customText\":\"\"}", 400, "customText"},
        {"{\"feature\":{\"modelId\":\"tiny-a\",\"source\":\"9-nope\",\"index\":\"1\"},\"customText\":\"hi\"}", 404, "not available"},
        {"{\"feature\":{\"modelId\":\"tiny-a\",\"source\":\"1-rs\",\"index\":\"512\"},\"customText\":\"hi\"}", 404, "not available"},
        {"{\"feature\":{\"modelId\":\"nope\",\"source\":\"1-rs\",\"index\":\"1\"},\"customText\":\"hi\"}", 404, "not available"},
        /* 48 tokens with the BOS: over --max-text-tokens 40. */
        {"{\"feature\":{\"modelId\":\"tiny-a\",\"source\":\"1-rs\",\"index\":\"1\"},\"customText\":[\"hi\",\"" TEXT " " TEXT " " TEXT " " TEXT "\"]}",
         400, "customText[1]: more than 40 tokens"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        http(&s, "POST", "/api/activation/new", NULL, bad[i].body, &r);
        if (r.status != bad[i].status) t_fail(__FILE__, __LINE__, "case %zu: %d %.300s", i, r.status, r.body);
        CHECK_CONTAINS(r.body, bad[i].needle);
        resp_free(&r);
    }
    /* 33 texts: over the per-request limit. */
    char *big = malloc(1 << 14);
    int n = snprintf(big, 1 << 14, "{\"feature\":{\"modelId\":\"tiny-a\",\"source\":\"1-rs\",\"index\":\"1\"},\"customText\":[");
    for (int i = 0; i < 33; i++) n += snprintf(big + n, (1 << 14) - n, "%s\"t%d\"", i ? "," : "", i);
    snprintf(big + n, (1 << 14) - n, "]}");
    http(&s, "POST", "/api/activation/new", NULL, big, &r);
    CHECK_INT(r.status, 400);
    CHECK_CONTAINS(r.body, "limit_exceeded");
    CHECK_CONTAINS(r.body, "limit of 32");
    resp_free(&r);
    free(big);
    http(&s, "POST", "/api/activation/new", (const char *const[]){"Content-Type: text/plain", NULL}, "x", &r);
    CHECK_INT(r.status, 415);
    resp_free(&r);
    free(ref);
    CHECK_INT(srv_stop(&s), 0);
}

/* ---- searches ---- */

/* A value from /metrics (the line starting with name). */
static long long metric(srv *s, const char *name)
{
    resp r;
    http(s, "GET", "/metrics", NULL, NULL, &r);
    const char *p = r.body ? strstr(r.body, name) : NULL;
    while (p && p > r.body && p[-1] != '\n') p = strstr(p + 1, name);
    long long v = p ? atoll(p + strlen(name) + 1) : -1;
    resp_free(&r);
    return v;
}



/* An SAE folder (copy of the standard one) with a sparsity.safetensors: odd features are rare
 * (1e-5), even ones dense (0.1). */
static int sparse_copy(const char *dir)
{
    char cmd[1024], path[512], err[256];
    snprintf(cmd, sizeof cmd, "mkdir -p %s && cp " SAE_STD "/cfg.json " SAE_STD "/sae_weights.safetensors %s/", dir, dir);
    if (system(cmd)) return -1;
    float ls[512];
    for (int i = 0; i < 512; i++) ls[i] = i % 2 ? -5.0f : -1.0f;
    int64_t shape[1] = {512};
    st_wtensor t = {"sparsity", ST_F32, 1, shape, ls};
    snprintf(path, sizeof path, "%s/sparsity.safetensors", dir);
    return st_write(path, &t, 1, NULL, err, sizeof err);
}

/* Index of the best (value desc, index asc) of the 512 values at stride 1. */
static int argmax512(const float *v)
{
    int b = 0;
    for (int i = 1; i < 512; i++)
        if (v[i] > v[b]) b = i;
    return b;
}

TEST(api_live_search_all_and_topk_by_token)
{
    char root[] = "/tmp/saed-live-XXXXXX";
    CHECK(mkdtemp(root) != NULL);
    char corpus[300], roots[600], sp[400], body[4096];
    snprintf(corpus, sizeof corpus, "%s/corpus.txt", root);
    tests_write_corpus(corpus, 60, 40, 1);
    snprintf(sp, sizeof sp, "%s/sparse", root);
    CHECK_INT(sparse_copy(sp), 0);
    snprintf(roots, sizeof roots, "tests/data:%s", root);
    char url[512];
    srv s;
    if (srv_fresh(&s, url, sizeof url,
                  (const char *const[]){"--migrate", "--data-roots", roots, "--workers", "1", "--api-keys", KEY, NULL}))
        return;
    register_all(&s);
    resp r;
    snprintf(body, sizeof body, "{\"modelId\":\"tiny-a\",\"id\":\"1-sp\",\"path\":\"%s\",\"setName\":\"sp\"}", sp);
    post(&s, "/api/saes", body, 201, &r);
    resp_free(&r);

    int T, T2;
    float *jr = encode(SAE_JR, TEXT, &T), *st = encode(SAE_STD, TEXT, &T2);
    if (!jr || !st) {
        free(jr);
        free(st);
        srv_stop(&s);
        return;
    }
    CHECK_INT(T, T2);
    /* The best feature of the set over the text (BOS ignored): max over both SAEs. */
    int best_sae = -1, best_f = -1, best_t = -1;
    float best = 0;
    for (int k = 0; k < 2; k++)
        for (int t = 1; t < T; t++)
            for (int i = 0; i < 512; i++) {
                float v = (k ? st : jr)[(size_t)t * 512 + i];
                if (v > best) {
                    best = v;
                    best_sae = k;
                    best_f = i;
                    best_t = t;
                }
            }
    CHECK(best > 0);

    /* sortIndexes missing (tolerated), ignoreBos default. */
    post(&s, "/api/search-all", "{\"modelId\":\"tiny-a\",\"sourceSet\":\"rs\",\"text\":\"" TEXT "\",\"numResults\":5}", 200, &r);
    json_t *j = resp_json(&r), *res = json_object_get(j, "result"), *top = json_array_get(res, 0);
    CHECK_INT(json_array_size(res), 5);
    CHECK_INT(json_array_size(json_object_get(j, "tokens")), T);
    CHECK_STR(json_string_value(json_array_get(json_object_get(j, "tokens"), 0)), "<|endoftext|>");
    CHECK_INT(json_array_size(json_object_get(j, "sortIndexes")), 0);
    char want_index[16];
    snprintf(want_index, sizeof want_index, "%d", best_f);
    CHECK_STR(json_string_value(json_object_get(top, "layer")), best_sae ? "1-rs__std" : "1-rs");
    CHECK_STR(json_string_value(json_object_get(top, "index")), want_index);
    CHECK(num(json_object_get(top, "maxValue")) == best);
    CHECK_INT(json_integer_value(json_object_get(top, "maxValueIndex")), best_t);
    CHECK(json_is_null(json_object_get(top, "neuron"))); /* no dashboards yet */
    CHECK_INT(json_array_size(json_object_get(top, "values")), T);
    CHECK(num(json_array_get(json_object_get(top, "values"), 0)) == 0.0f);
    /* Descending maxima. */
    for (size_t i = 1; i < json_array_size(res); i++)
        CHECK(num(json_object_get(json_array_get(res, i - 1), "maxValue")) >= num(json_object_get(json_array_get(res, i), "maxValue")));
    json_decref(j);
    resp_free(&r);

    /* sortIndexes: ranked by the value at those positions, echoed sorted; one SAE selected. */
    const int p1 = 2, p2 = 4;
    int want_f = -1;
    float want_key = 0;
    for (int i = 0; i < 512; i++) {
        float key = st[(size_t)p1 * 512 + i] + st[(size_t)p2 * 512 + i];
        if (key > want_key) {
            want_key = key;
            want_f = i;
        }
    }
    snprintf(body, sizeof body, "{\"modelId\":\"tiny-a\",\"sourceSet\":\"rs\",\"text\":\"" TEXT "\",\"selectedLayers\":[\"1-rs__std\"],"
             "\"sortIndexes\":[%d,%d],\"ignoreBos\":true,\"densityThreshold\":-1,\"numResults\":10}", p2, p1);
    post(&s, "/api/search-all/", body, 200, &r);
    j = resp_json(&r);
    res = json_object_get(j, "result");
    CHECK(json_array_size(res) > 0);
    for (size_t i = 0; i < json_array_size(res); i++)
        CHECK_STR(json_string_value(json_object_get(json_array_get(res, i), "layer")), "1-rs__std");
    snprintf(want_index, sizeof want_index, "%d", want_f);
    CHECK_STR(json_string_value(json_object_get(json_array_get(res, 0), "index")), want_index);
    CHECK_INT(json_integer_value(json_array_get(json_object_get(j, "sortIndexes"), 0)), p1);
    CHECK_INT(json_integer_value(json_array_get(json_object_get(j, "sortIndexes"), 1)), p2);
    json_decref(j);
    resp_free(&r);

    /* An array of texts: {results: [...]} without neuron. */
    post(&s, "/api/search-all", "{\"modelId\":\"tiny-a\",\"sourceSet\":\"rs\",\"text\":[\"" TEXT "\",\"dog\"],\"sortIndexes\":[],\"numResults\":3}", 200, &r);
    j = resp_json(&r);
    CHECK_INT(json_array_size(json_object_get(j, "results")), 2);
    json_t *r0 = json_array_get(json_object_get(j, "results"), 0);
    json_t *f0 = json_array_get(json_object_get(r0, "result"), 0);
    CHECK(num(json_object_get(f0, "maxValue")) == best);
    CHECK(f0 && !json_object_get(f0, "neuron"));
    json_decref(j);
    resp_free(&r);

    /* Errors. */
    struct { const char *body; int status; const char *needle; } bad[] = {
        {"{\"modelId\":\"tiny-a\",\"sourceSet\":\"nope\",\"text\":\"hi\"}", 404, "not available"},
        {"{\"modelId\":\"tiny-a\",\"sourceSet\":\"rs\"}", 400, "text"},
        {"{\"modelId\":\"tiny-a\",\"sourceSet\":\"rs\",\"text\":\"hi\",\"numResults\":101}", 400, "limit of 100"},
        {"{\"modelId\":\"tiny-a\",\"sourceSet\":\"rs\",\"text\":\"hi\",\"densityThreshold\":2}", 400, "densityThreshold"},
        {"{\"modelId\":\"tiny-a\",\"sourceSet\":\"rs\",\"text\":\"hi\",\"sortIndexes\":[5]}", 400, "sortIndexes: 5 is out of range"},
        /* Numbers no int holds: range-checked before any conversion (UBSan-clean). */
        {"{\"modelId\":\"tiny-a\",\"sourceSet\":\"rs\",\"text\":\"hi\",\"sortIndexes\":[1,1e10]}", 400, "sortIndexes[1]: 1e+10 is more than the limit of"},
        {"{\"modelId\":\"tiny-a\",\"sourceSet\":\"rs\",\"text\":\"hi\",\"sortIndexes\":[2.5]}", 400, "sortIndexes[0]: must be a token position"},
        {"{\"modelId\":\"tiny-a\",\"sourceSet\":\"rs\",\"text\":\"hi\",\"sortIndexes\":[-1e300]}", 400, "sortIndexes[0]: must be a token position"},
        {"{\"modelId\":\"tiny-a\",\"sourceSet\":\"rs\",\"text\":\"hi\",\"numResults\":1e300}", 400, "1e+300 is more than the limit of 100"},
        {"{\"modelId\":\"tiny-a\",\"sourceSet\":\"rs\",\"text\":\"hi\",\"numResults\":2.5}", 400, "numResults: must be an integer from 1 to 100"},
        {"{\"modelId\":\"tiny-a\",\"source\":\"1-rs\",\"text\":\"hi\",\"numResults\":-1e300}", -400, "numResults: must be an integer from 1 to 20"},
        {"{\"modelId\":\"tiny-a\",\"sourceSet\":\"rs\",\"text\":\"hi\",\"selectedLayers\":[\"1-sp\"]}", 400, "not an SAE of source set"},
        {"{\"modelId\":\"tiny-a\",\"sourceSet\":\"rs\",\"text\":\"" TEXT " " TEXT " " TEXT " " TEXT " " TEXT " " TEXT " " TEXT " " TEXT " " TEXT " " TEXT "\"}",
         400, "more than 128 tokens"},  /* the model's context caps SAED_MAX_TEXT_TOKENS */
        {"{\"modelId\":\"tiny-a\",\"source\":\"9-x\",\"text\":\"hi\"}", -404, "not available"},
        {"{\"modelId\":\"tiny-a\",\"source\":\"1-rs\",\"text\":\"hi\",\"numResults\":21}", -400, "limit of 20"},
        {"{\"modelId\":\"tiny-a\",\"text\":\"hi\"}", -400, "source"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int st_want = bad[i].status < 0 ? -bad[i].status : bad[i].status;
        http(&s, "POST", bad[i].status < 0 ? "/api/search-topk-by-token" : "/api/search-all", NULL, bad[i].body, &r);
        if (r.status != st_want) t_fail(__FILE__, __LINE__, "case %zu: %d %.300s", i, r.status, r.body);
        CHECK_CONTAINS(r.body, bad[i].needle);
        resp_free(&r);
    }

    /* topk-by-token against saed encode: the 3 best per token, BOS left out (ignoreBos). */
    post(&s, "/api/search-topk-by-token", "{\"modelId\":\"tiny-a\",\"source\":\"1-rs\",\"text\":\"" TEXT "\",\"numResults\":3,\"densityThreshold\":-1}", 200, &r);
    j = resp_json(&r);
    CHECK_STR(json_string_value(json_object_get(j, "source")), "1-rs");
    json_t *rows = json_object_get(j, "results");
    CHECK_INT(json_array_size(rows), T - 1);
    for (size_t k = 0; k < json_array_size(rows); k++) {
        json_t *row = json_array_get(rows, k), *tf = json_object_get(row, "topFeatures");
        int p = (int)json_integer_value(json_object_get(row, "position"));
        CHECK_INT(p, (int)k + 1);
        CHECK(json_is_false(json_object_get(row, "isSpecial")));
        float v[512];
        memcpy(v, jr + (size_t)p * 512, sizeof v);
        for (size_t q = 0; q < json_array_size(tf); q++) {
            int b = argmax512(v);
            json_t *e = json_array_get(tf, q);
            CHECK_INT(json_integer_value(json_object_get(e, "featureIndex")), b);
            CHECK(num(json_object_get(e, "activationValue")) == v[b]);
            CHECK(json_is_null(json_object_get(e, "feature")));
            v[b] = -1;
        }
        CHECK_INT(json_array_size(tf), 3);
    }
    json_decref(j);
    resp_free(&r);
    /* ignoreBos false: the BOS position is there, marked special. */
    post(&s, "/api/search-topk-by-token", "{\"modelId\":\"tiny-a\",\"source\":\"1-rs\",\"text\":\"dog\",\"ignoreBos\":false,\"densityThreshold\":0}", 200, &r);
    j = resp_json(&r);
    rows = json_object_get(j, "results");
    CHECK_INT(json_array_size(rows), 2);
    CHECK_INT(json_integer_value(json_object_get(json_array_get(rows, 0), "position")), 0);
    CHECK(json_is_true(json_object_get(json_array_get(rows, 0), "isSpecial")));
    CHECK_STR(json_string_value(json_object_get(json_array_get(rows, 0), "token")), "<|endoftext|>");
    json_decref(j);
    resp_free(&r);
    /* Density from sparsity.safetensors (no dashboards): only the rare (odd) features pass the
     * default threshold of 0.01. */
    post(&s, "/api/search-topk-by-token", "{\"modelId\":\"tiny-a\",\"source\":\"1-sp\",\"text\":\"" TEXT "\",\"numResults\":5}", 200, &r);
    j = resp_json(&r);
    rows = json_object_get(j, "results");
    int seen = 0;
    for (size_t k = 0; k < json_array_size(rows); k++) {
        json_t *tf = json_object_get(json_array_get(rows, k), "topFeatures");
        for (size_t q = 0; q < json_array_size(tf); q++, seen++)
            CHECK(json_integer_value(json_object_get(json_array_get(tf, q), "featureIndex")) % 2 == 1);
    }
    CHECK(seen > 10);
    json_decref(j);
    resp_free(&r);
    /* An array of texts: {results: [{source, results}]} without feature. */
    post(&s, "/api/search-topk-by-token", "{\"modelId\":\"tiny-a\",\"source\":\"1-rs\",\"text\":[\"dog\",\"cat sat\"],\"densityThreshold\":-1}", 200, &r);
    j = resp_json(&r);
    CHECK_INT(json_array_size(json_object_get(j, "results")), 2);
    json_t *b1 = json_array_get(json_object_get(j, "results"), 1);
    CHECK_INT(json_array_size(json_object_get(b1, "results")), 2);
    CHECK(!json_object_get(json_array_get(json_object_get(json_array_get(json_object_get(b1, "results"), 0), "topFeatures"), 0), "feature"));
    json_decref(j);
    resp_free(&r);

    /* Dashboards for 1-rs: results now carry the stored rows, and the density filter uses
     * their frac_nonzero. */
    snprintf(body, sizeof body, "{\"modelId\":\"tiny-a\",\"saeId\":\"1-rs\",\"dataset\":{\"path\":\"%s\"},"
             "\"nPrompts\":24,\"nTokensInPrompt\":16,\"batchPrompts\":8,\"seed\":3}", corpus);
    post(&s, "/api/dashboard-jobs", body, 201, &r);
    j = resp_json(&r);
    long long id = (long long)json_integer_value(json_object_get(j, "id"));
    json_decref(j);
    resp_free(&r);
    j = srv_wait_job(&s, id, 120);
    CHECK_STR(j ? json_string_value(json_object_get(j, "state")) : NULL, "completed");
    json_decref(j);
    post(&s, "/api/search-all", "{\"modelId\":\"tiny-a\",\"sourceSet\":\"rs\",\"text\":\"" TEXT "\",\"selectedLayers\":[\"1-rs\"],\"numResults\":8}", 200, &r);
    j = resp_json(&r);
    res = json_object_get(j, "result");
    CHECK_INT(json_array_size(res), 8);
    json_t *n0 = json_object_get(json_array_get(res, 0), "neuron");
    CHECK(json_is_object(n0));
    CHECK_STR(json_string_value(json_object_get(n0, "layer")), "1-rs");
    CHECK_STR(json_string_value(json_object_get(json_object_get(n0, "model"), "id")), "tiny-a");
    CHECK(json_is_array(json_object_get(n0, "explanations")));
    CHECK(json_array_size(json_object_get(n0, "activations")) <= 1);
    CHECK(!json_object_get(n0, "indexInt"));
    /* The row is the one stored for that feature. */
    char q[512];
    snprintf(q, sizeof q, "SELECT round(frac_nonzero::numeric * 1e9) FROM features WHERE layer='1-rs' AND index='%s'",
             json_string_value(json_object_get(json_array_get(res, 0), "index")));
    CHECK_INT(tdb_scalar(url, q), (long long)llround(json_number_value(json_object_get(n0, "frac_nonzero")) * 1e9));
    /* A threshold just under the densest result's density removes it (and everything denser). */
    double dmax = 0;
    for (size_t i = 0; i < json_array_size(res); i++) {
        double d = json_number_value(json_object_get(json_object_get(json_array_get(res, i), "neuron"), "frac_nonzero"));
        if (d > dmax) dmax = d;
    }
    CHECK(dmax > 0 && dmax < 1);
    json_decref(j);
    resp_free(&r);
    snprintf(body, sizeof body, "{\"modelId\":\"tiny-a\",\"sourceSet\":\"rs\",\"text\":\"" TEXT "\",\"selectedLayers\":[\"1-rs\"],"
             "\"numResults\":8,\"densityThreshold\":%.9g}", dmax * 0.999);
    post(&s, "/api/search-all", body, 200, &r);
    j = resp_json(&r);
    res = json_object_get(j, "result");
    CHECK(json_array_size(res) > 0);
    for (size_t i = 0; i < json_array_size(res); i++)
        CHECK(json_number_value(json_object_get(json_object_get(json_array_get(res, i), "neuron"), "frac_nonzero")) <= dmax * 0.999);
    json_decref(j);
    resp_free(&r);
    post(&s, "/api/search-topk-by-token", "{\"modelId\":\"tiny-a\",\"source\":\"1-rs\",\"text\":\"" TEXT "\",\"numResults\":4}", 200, &r);
    j = resp_json(&r);
    rows = json_object_get(j, "results");
    seen = 0;
    for (size_t k = 0; k < json_array_size(rows); k++) {
        json_t *tf = json_object_get(json_array_get(rows, k), "topFeatures");
        for (size_t i = 0; i < json_array_size(tf); i++, seen++) {
            json_t *feat = json_object_get(json_array_get(tf, i), "feature");
            CHECK(json_is_object(feat));
            CHECK(json_number_value(json_object_get(feat, "frac_nonzero")) <= 0.01);
            CHECK(json_is_array(json_object_get(feat, "explanations")));
        }
    }
    json_decref(j);
    resp_free(&r);
    /* The dashboard job took the model and 1-rs from the engine cache the searches filled:
     * four loads in all (tiny-a, 1-rs, 1-rs__std, 1-sp). */
    CHECK_INT(metric(&s, "saed_engine_cache_loads_total"), 4);
    free(jr);
    free(st);
    CHECK_INT(srv_stop(&s), 0);
    snprintf(body, sizeof body, "rm -rf %s", root);
    CHECK_INT(system(body), 0);
}

/* ---- the compute pool and the engine cache ---- */

TEST(api_live_compute_pool_busy_and_engine_cache_shared)
{
    char url[512];
    srv s;
    if (srv_fresh(&s, url, sizeof url,
                  (const char *const[]){"--migrate", "--data-roots", "tests/data", "--workers", "0", "--api-keys", KEY,
                                        "--compute-threads", "1", "--compute-queue", "0", NULL}))
        return;
    register_all(&s);
    CHECK_INT(metric(&s, "saed_engine_cache_loads_total"), 0);
    resp r;
    /* Several requests on one model and SAE, through both kinds of route: one load each. */
    for (int i = 0; i < 3; i++) {
        post(&s, "/api/activation/new", "{\"feature\":{\"modelId\":\"tiny-a\",\"source\":\"1-rs\",\"index\":\"3\"},\"customText\":\"" TEXT "\"}", 200, &r);
        resp_free(&r);
    }
    post(&s, "/api/search-topk-by-token", "{\"modelId\":\"tiny-a\",\"source\":\"1-rs\",\"text\":\"dog\"}", 200, &r);
    resp_free(&r);
    CHECK_INT(metric(&s, "saed_engine_cache_loads_total"), 2);
    CHECK_INT(metric(&s, "saed_engine_cache_entries"), 2);

    /* One thread, no queue: of requests arriving together, those that find the thread busy
     * get 503 busy with Retry-After at once. Each takes tens of milliseconds (32 texts), so a
     * burst of 8 always overlaps; a few rounds in case a round happens to serialize. */
    char *body = malloc(1 << 15);
    int n = snprintf(body, 1 << 15, "{\"feature\":{\"modelId\":\"tiny-a\",\"source\":\"1-rs\",\"index\":\"3\"},\"customText\":[");
    for (int i = 0; i < 32; i++) n += snprintf(body + n, (1 << 15) - n, "%s\"" TEXT " " TEXT "\"", i ? "," : "");
    snprintf(body + n, (1 << 15) - n, "]}");
    int busy = 0, ok = 0, other = 0;
    for (int round = 0; round < 5 && !busy; round++) {
        shot shots[8];
        pthread_t th[8];
        for (int i = 0; i < 8; i++) {
            shots[i] = (shot){.port = s.port, .path = "/api/activation/new", .body = body};
            pthread_create(&th[i], NULL, fire, &shots[i]);
        }
        for (int i = 0; i < 8; i++) pthread_join(th[i], NULL);
        for (int i = 0; i < 8; i++) {
            if (shots[i].status == 503) {
                busy++;
                CHECK_STR(shots[i].retry_after, "1");
                CHECK_CONTAINS(shots[i].resp, "\"code\":\"busy\"");
                CHECK_CONTAINS(shots[i].resp, "SAED_COMPUTE_THREADS");
            } else if (shots[i].status == 200) {
                ok++;
            } else {
                other++;
            }
            char err[1024];
            if (tests_spec() && oas_check(tests_spec(), "POST", "/api/activation/new", (int)shots[i].status, shots[i].ctype,
                                          shots[i].resp, shots[i].len, err, sizeof err))
                t_fail(__FILE__, __LINE__, "openapi: %s", err);
            free(shots[i].resp);
        }
    }
    CHECK(busy > 0);
    CHECK(ok > 0);
    CHECK_INT(other, 0);
    free(body);
    /* Still one load each; nothing left running or queued. */
    CHECK_INT(metric(&s, "saed_engine_cache_loads_total"), 2);
    CHECK_INT(metric(&s, "saed_compute_tasks{state=\"running\"}"), 0);
    CHECK_INT(metric(&s, "saed_compute_tasks{state=\"queued\"}"), 0);
    CHECK_INT(srv_stop(&s), 0);
}
