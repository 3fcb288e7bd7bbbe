/* api_v1_spec.c: every inference-server route saed serves, over real HTTP and PostgreSQL,
 * against upstream's own spec (tests/data/neuronpedia/inference-openapi.json, v1.9.0, vendored):
 * each response is validated with tests/oas.c against that spec where it documents the status
 * (besides saed's openapi.yaml, which every response of the suite meets), and errors it does
 * not document must have upstream's {"error": str} shape; a request built from the spec's
 * required fields is accepted by every route; the operations left unexercised must be exactly
 * the ones saed does not serve. Values come from independent references: `saed encode` for
 * activations, cosines computed here from the SAE's safetensors, and each batch equals its
 * single requests.
 *
 * The steering routes are called from spec_steer(), on tiny-a and on a copy of it given a chat
 * template. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/oas.h"
#include "tests/srv.h"
#include "tests/t.h"

#define TINY "tests/data/models/tiny-a"
#define SAE_JR "tests/data/sae/tiny-a-res-jumprelu"
#define SAE_STD "tests/data/sae/tiny-a-res-standard"
#define UPSTREAM "tests/data/neuronpedia/inference-openapi.json"
#define SECRET "spec-secret-1"
#define KEY "spec-key-0123456789"
#define TEXT "The quick brown fox jumps over the lazy dog near the river bank"
#define TEXT2 "A second prompt about rivers and foxes"
#define D 512 /* d_sae of the tiny SAEs */

static const char *const hdr[] = {"x-api-key: " KEY, "X-SECRET-KEY: " SECRET, NULL};

/* Upstream's operations saed does not serve (README "Neuronpedia inference-server wire"). */
static const char *const not_served[] = {
    "POST /v1/activation/attention", "POST /v1/activation/raw", "POST /v1/apply-chat-template",
    "POST /v1/lens/prompt", "POST /v1/util/similarity-matrix-pred",
};

static oas *up;        /* upstream's spec for oas_check */
static json_t *updoc;  /* the same, for its request schemas */

/* method path body → status want; the body checked against upstream's spec (or, for a status
 * it does not document, upstream's {"error": str}). The parsed body (owned). */
static json_t *v1_call(srv *s, const char *method, const char *path, const char *body, int want)
{
    resp r;
    char err[2048];
    http(s, method, path, hdr, body, &r);
    if (r.status != want)
        t_fail(__FILE__, __LINE__, "%s %s %.300s: %d, wanted %d: %.400s", method, path, body ? body : "", r.status,
               want, r.body);
    /* A snake_case answer (to a snake_case request) is checked as its camelCase form. */
    json_t *cj = resp_json(&r);
    char *camel = NULL;
    if (cj) tests_camelize(cj), camel = json_dumps(cj, JSON_COMPACT);
    json_decref(cj);
    int bad = oas_check(up, method, path, r.status, r.ctype, camel ? camel : r.body, camel ? strlen(camel) : r.len, err,
                        sizeof err);
    free(camel);
    if (bad) {
        if (!strstr(err, "not documented")) {
            t_fail(__FILE__, __LINE__, "upstream spec: %s", err);
        } else {
            json_t *j = resp_json(&r);
            if (!json_is_string(json_object_get(j, "error")) || json_object_size(j) != 1)
                t_fail(__FILE__, __LINE__, "%s %s -> %d: not upstream's {\"error\": str}: %.300s", method, path,
                       r.status, r.body);
            json_decref(j);
        }
    }
    json_t *j = resp_json(&r);
    resp_free(&r);
    return j;
}

static json_t *post(srv *s, const char *path, const char *body, int want)
{
    return v1_call(s, "POST", path, body, want);
}

/* A 4xx whose "error" contains needle. */
static void post_error(srv *s, const char *path, const char *body, int want, const char *needle)
{
    json_t *j = post(s, path, body, want);
    const char *e = json_string_value(json_object_get(j, "error"));
    if (!e || !strstr(e, needle)) t_fail(__FILE__, __LINE__, "%s %s: error '%s' lacks '%s'", path, body, e, needle);
    json_decref(j);
}

/* A request body for path built from the required fields of upstream's request schema, each
 * from samples, then extras (may be NULL) merged over it. Fails the test for a required field
 * without a sample, so the spec's requirements stay covered. Owned text. */
static char *spec_request(const char *path, const char *extras)
{
    json_t *samples = json_pack("{s:s,s:[s,s],s:s,s:s,s:s,s:[],s:[],s:b,s:s,s:i,s:i,s:[s,s],s:s,s:b,s:i,s:f,s:f,s:f,s:i,s:b}",
                                "prompt", TEXT, "prompts", TEXT, TEXT2, "model", "tiny-a", "source", "1-rs", "sourceSet",
                                "rs", "selectedSources", "sortByTokenIndexes", "ignoreBos", 1, "text", TEXT, "index", 3,
                                "numResults", 5, "types", "STEERED", "DEFAULT", "steerMethod", "SIMPLE_ADDITIVE",
                                "normalizeSteering", 0, "nCompletionTokens", 4, "temperature", 0.0, "strengthMultiplier",
                                1.0, "freqPenalty", 0.0, "seed", 16, "steerSpecialTokens", 0);
    const char *ref = json_string_value(json_object_get(
        json_object_get(json_object_get(json_object_get(json_object_get(json_object_get(
                                                            json_object_get(json_object_get(updoc, "paths"), path), "post"),
                                                        "requestBody"),
                                        "content"),
                        "application/json"),
                        "schema"),
        "$ref"));
    json_t *body = json_object();
    if (!ref || strncmp(ref, "#/components/schemas/", 21)) {
        t_fail(__FILE__, __LINE__, "%s: no request schema in upstream's spec", path);
    } else {
        json_t *req = json_object_get(
            json_object_get(json_object_get(json_object_get(updoc, "components"), "schemas"), ref + 21), "required");
        CHECK(json_array_size(req) > 0);
        for (size_t i = 0; i < json_array_size(req); i++) {
            const char *f = json_string_value(json_array_get(req, i));
            json_t *v = json_object_get(samples, f);
            if (!v) t_fail(__FILE__, __LINE__, "%s: no sample for required field %s", path, f);
            else json_object_set(body, f, v);
        }
    }
    if (extras) {
        json_t *x = json_loads(extras, 0, NULL);
        CHECK(x != NULL);
        json_object_update(body, x);
        json_decref(x);
    }
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    json_decref(samples);
    return text;
}

static double num(json_t *a, size_t i) { return json_number_value(json_array_get(a, i)); }
static int near(double a, double b) { return fabs(a - b) <= 1e-5 * (1 + fabs(b)); }

/* oas_unexercised callback: an operation never called must be one saed does not serve. */
static void check_not_served(const char *method, const char *tpl, void *ud)
{
    (void)ud;
    char op[256];
    snprintf(op, sizeof op, "%s %s", method, tpl);
    for (size_t i = 0; i < sizeof not_served / sizeof *not_served; i++)
        if (!strcmp(op, not_served[i])) return;
    t_fail(__FILE__, __LINE__, "upstream's %s was never called", op);
}

/* The steering routes against upstream's schemas: a completion built from the spec's required
 * fields (STEERED at strength 0 equals DEFAULT), its chat variant on a copy of tiny-a given a
 * chat template (chat_dir, registered as tiny-chat) and the health route. Stream frames are
 * not in upstream's spec; tests/api_v1_steer.c checks them against saed's. */
static void spec_steer(srv *s)
{
    const char *feat = "\"features\":[{\"model\":\"tiny-a\",\"source\":\"1-rs\",\"index\":3,\"strength\":0}]";
    char extras[512];
    snprintf(extras, sizeof extras, "{%s}", feat);
    char *body = spec_request("/v1/steer/completion", extras);
    json_t *j = post(s, "/v1/steer/completion", body, 200);
    free(body);
    json_t *o = json_object_get(j, "outputs");
    CHECK_INT((int)json_array_size(o), 2);
    CHECK_STR(json_string_value(json_object_get(json_array_get(o, 0), "type")), "STEERED");
    const char *st = json_string_value(json_object_get(json_array_get(o, 0), "output"));
    const char *df = json_string_value(json_object_get(json_array_get(o, 1), "output"));
    CHECK(st && df && *st && !strcmp(st, df));
    json_decref(j);

    snprintf(extras, sizeof extras,
             "{\"model\":\"tiny-chat\",\"prompt\":[{\"role\":\"user\",\"content\":\"Hello there\"}],"
             "\"features\":[{\"model\":\"tiny-chat\",\"source\":\"1-rs\",\"index\":3,\"strength\":0}]}");
    body = spec_request("/v1/steer/completion-chat", extras);
    j = post(s, "/v1/steer/completion-chat", body, 200);
    free(body);
    o = json_object_get(j, "outputs");
    CHECK_INT((int)json_array_size(o), 2);
    /* The template below, rendered with the generation prompt. */
    CHECK_STR(json_string_value(json_object_get(json_object_get(j, "input"), "raw")),
              "<|endoftext|>user: Hello there\nassistant:");
    const char *raw = json_string_value(json_object_get(json_array_get(o, 0), "raw"));
    CHECK(raw && !strncmp(raw, "<|endoftext|>user: Hello there\nassistant:", 41));
    json_decref(j);
    json_decref(v1_call(s, "GET", "/v1/steer/health", NULL, 200));
}

static void rm_dir(const char *dir)
{
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) {}
}


/* W_dec (D, d_in) of an SAE folder, read from its safetensors here (F32 only), or NULL. */
static float *read_w_dec(const char *dir, int *d_in)
{
    char path[512];
    snprintf(path, sizeof path, "%s/sae_weights.safetensors", dir);
    FILE *f = fopen(path, "rb");
    uint64_t n = 0;
    float *w = NULL;
    if (!f || fread(&n, 8, 1, f) != 1 || n > 1 << 20) goto done;
    char *h = calloc(1, n + 1);
    if (!h || fread(h, 1, n, f) != n) {
        free(h);
        goto done;
    }
    json_t *j = json_loads(h, 0, NULL), *t = json_object_get(j, "W_dec");
    free(h);
    json_t *shape = json_object_get(t, "shape"), *off = json_object_get(t, "data_offsets");
    if (strcmp(json_string_value(json_object_get(t, "dtype")) ?: "", "F32") ||
        json_integer_value(json_array_get(shape, 0)) != D) {
        json_decref(j);
        goto done;
    }
    *d_in = (int)json_integer_value(json_array_get(shape, 1));
    size_t bytes = (size_t)D * *d_in * 4;
    w = malloc(bytes);
    if (fseek(f, (long)(8 + n + json_integer_value(json_array_get(off, 0))), SEEK_SET) || fread(w, 1, bytes, f) != bytes) {
        free(w);
        w = NULL;
    }
    json_decref(j);
done:
    if (f) fclose(f);
    if (!w) t_fail(__FILE__, __LINE__, "could not read W_dec of %s", dir);
    return w;
}

/* The k features closest in cosine to q (ties: lower index), computed in double here. */
static void cos_ref(const float *w, int d_in, const double *q, int k, int *idx, double *val)
{
    double qn = 0;
    for (int j = 0; j < d_in; j++) qn += q[j] * q[j];
    double c[D];
    for (int i = 0; i < D; i++) {
        double dot = 0, n = 0;
        for (int j = 0; j < d_in; j++) {
            dot += w[(size_t)i * d_in + j] * q[j];
            n += (double)w[(size_t)i * d_in + j] * w[(size_t)i * d_in + j];
        }
        c[i] = dot / sqrt(n * qn);
    }
    for (int r = 0; r < k; r++) {
        int b = -1;
        for (int i = 0; i < D; i++) {
            int used = 0;
            for (int p = 0; p < r && !used; p++) used = idx[p] == i;
            if (!used && (b < 0 || c[i] > c[b])) b = i;
        }
        idx[r] = b;
        val[r] = c[b];
    }
}

/* activation/all over both SAEs of set rs, ignoreBos: the ranking `saed encode` gives. */
static void check_all(srv *s, const float *ref[2], int T)
{
    const char *ids[2] = {"1-rs", "1-rs-std"};
    json_t *j = post(s, "/v1/activation/all",
                     "{\"model\":\"tiny-a\",\"prompt\":\"" TEXT "\",\"sourceSet\":\"rs\",\"selectedSources\":[],"
                     "\"sortByTokenIndexes\":[],\"ignoreBos\":true,\"numResults\":10}",
                     200);
    json_t *acts = json_object_get(j, "activations");
    CHECK_INT((int)json_array_size(acts), 10);
    CHECK_INT((int)json_array_size(json_object_get(j, "tokens")), T);
    CHECK(!json_object_get(j, "counts"));
    /* Expected: key = max over positions >= 1 (position 0 counts as 0), SAE order then index. */
    int used[2][D] = {{0}};
    for (size_t k = 0; k < json_array_size(acts); k++) {
        int bs = -1, bf = -1;
        double bk = -1;
        for (int a = 0; a < 2; a++)
            for (int f = 0; f < D; f++) {
                if (used[a][f]) continue;
                double key = 0;
                for (int p = 1; p < T; p++) key = fmax(key, ref[a][(size_t)p * D + f]);
                if (key > bk) bk = key, bs = a, bf = f;
            }
        used[bs][bf] = 1;
        json_t *e = json_array_get(acts, k), *vals = json_object_get(e, "values");
        CHECK_STR(json_string_value(json_object_get(e, "source")), ids[bs]);
        CHECK_INT((int)json_integer_value(json_object_get(e, "index")), bf);
        CHECK(near(json_number_value(json_object_get(e, "maxValue")), bk));
        CHECK(json_number_value(json_object_get(e, "sumValues")) == 0);
        CHECK_INT((int)json_array_size(vals), T);
        CHECK(num(vals, 0) == 0);
        int am = 0;
        for (int p = 1; p < T; p++) {
            CHECK(near(num(vals, p), ref[bs][(size_t)p * D + bf]));
            if (ref[bs][(size_t)p * D + bf] > ref[bs][(size_t)am * D + bf] || am == 0) am = p;
        }
        CHECK_INT((int)json_integer_value(json_object_get(e, "maxValueIndex")), am);
        if (k == 0) {
            /* The same feature through /v1/activation/single: its values without the BOS. */
            char body[512];
            snprintf(body, sizeof body, "{\"model\":\"tiny-a\",\"source\":\"%s\",\"index\":\"%d\",\"prompt\":\"" TEXT "\"}",
                     ids[bs], bf);
            json_t *one = post(s, "/v1/activation/single", body, 200);
            json_t *sv = json_object_get(json_object_get(one, "activation"), "values");
            CHECK_INT((int)json_array_size(sv), T - 1);
            for (int p = 1; p < T; p++) CHECK(num(sv, p - 1) == num(vals, p));
            json_decref(one);
        }
    }
    /* snake_case input gives the same answer. */
    json_t *sn = post(s, "/v1/activation/all",
                      "{\"model\":\"tiny-a\",\"prompt\":\"" TEXT "\",\"source_set\":\"rs\",\"selected_sources\":[],"
                      "\"sort_by_token_indexes\":[],\"ignore_bos\":true,\"num_results\":10}",
                      200);
    CHECK(json_is_number(json_object_get(json_array_get(json_object_get(sn, "activations"), 0), "max_value")));
    tests_camelize(sn);
    CHECK(json_equal(j, sn));
    json_decref(sn);
    json_decref(j);

    /* Sorted by the sum at positions 3, 5, 5 (the repeat counts twice), one SAE selected,
     * BOS kept; numResults past the width: every feature, zeros last in index order. */
    j = post(s, "/v1/activation/all",
             "{\"model\":\"tiny-a\",\"prompt\":\"" TEXT "\",\"sourceSet\":\"rs\",\"selectedSources\":[\"1-rs\"],"
             "\"sortByTokenIndexes\":[5,3,5],\"ignoreBos\":false,\"numResults\":5000}",
             200);
    acts = json_object_get(j, "activations");
    CHECK_INT((int)json_array_size(acts), D);
    double prev = INFINITY;
    int prev_zero = -1, seen[D] = {0};
    for (size_t k = 0; k < json_array_size(acts); k++) {
        json_t *e = json_array_get(acts, k);
        int f = (int)json_integer_value(json_object_get(e, "index"));
        CHECK(f >= 0 && f < D);
        if (f < 0 || f >= D) break;
        seen[f]++;
        double want = ref[0][3 * D + f] + 2.0 * ref[0][5 * D + f], got = json_number_value(json_object_get(e, "sumValues"));
        CHECK(near(got, want));
        CHECK(got <= prev);
        prev = got;
        CHECK_STR(json_string_value(json_object_get(e, "source")), "1-rs");
        if (want == 0) {
            CHECK(f > prev_zero);
            prev_zero = f;
        }
        if (k == 0) {
            int best = 0;
            for (int g = 1; g < D; g++)
                if (ref[0][3 * D + g] + 2.0 * ref[0][5 * D + g] > ref[0][3 * D + best] + 2.0 * ref[0][5 * D + best]) best = g;
            CHECK_INT(f, best);
            CHECK(near(num(json_object_get(e, "values"), 0), ref[0][f])); /* the BOS position kept */
        }
    }
    for (int f = 0; f < D; f++) CHECK_INT(seen[f], 1);
    CHECK(prev_zero >= 0);
    json_decref(j);
}

/* activation/source: every non-zero value after the BOS, rounded to 3 decimals. */
static void check_source(srv *s, const float *ref, int T)
{
    json_t *j = post(s, "/v1/activation/source", "{\"model\":\"tiny-a\",\"source\":\"1-rs\",\"prompts\":[\"" TEXT "\"]}", 200);
    json_t *r0 = json_array_get(json_object_get(j, "results"), 0), *af = json_object_get(r0, "activeFeatures");
    CHECK_INT((int)json_array_size(json_object_get(j, "results")), 1);
    CHECK_INT((int)json_array_size(json_object_get(r0, "tokens")), T);
    int want = 0, got = 0;
    for (int p = 1; p < T; p++)
        for (int f = 0; f < D; f++) want += ref[(size_t)p * D + f] != 0;
    const char *key;
    json_t *list;
    json_object_foreach(af, key, list) {
        int f = atoi(key), last = 0;
        for (size_t i = 0; i < json_array_size(list); i++) {
            json_t *pair = json_array_get(list, i);
            int p = (int)json_integer_value(json_array_get(pair, 0));
            CHECK(p > last && p < T);
            if (p <= last || p >= T) break;
            last = p;
            CHECK(fabs(num(pair, 1) - ref[(size_t)p * D + f]) <= 5e-4 + 1e-6);
            CHECK(ref[(size_t)p * D + f] != 0);
            got++;
        }
    }
    CHECK(want > 20);
    CHECK_INT(got, want);
    json_decref(j);
}

/* util/sae-topk-by-decoder-cossim against cosines computed here from the safetensors. */
static void check_cossim(srv *s)
{
    int d_in = 0;
    float *w = read_w_dec(SAE_JR, &d_in);
    if (!w) return;
    double q[1024];
    int idx[16];
    double val[16];
    for (int j = 0; j < d_in; j++) q[j] = w[(size_t)7 * d_in + j];
    cos_ref(w, d_in, q, 10, idx, val);
    json_t *r = post(s, "/v1/util/sae-topk-by-decoder-cossim",
                     "{\"model\":\"tiny-a\",\"source\":\"1-rs\",\"numResults\":10,"
                     "\"feature\":{\"model\":\"tiny-a\",\"source\":\"1-rs\",\"index\":7}}",
                     200);
    json_t *top = json_object_get(r, "topkDecoderCossimFeatures");
    CHECK_INT((int)json_array_size(top), 10);
    CHECK_INT(idx[0], 7);
    CHECK_INT((int)json_integer_value(json_object_get(json_object_get(r, "feature"), "index")), 7);
    for (int i = 0; i < 10 && i < (int)json_array_size(top); i++) {
        json_t *e = json_array_get(top, i), *f = json_object_get(e, "feature");
        CHECK_INT((int)json_integer_value(json_object_get(f, "index")), idx[i]);
        CHECK_STR(json_string_value(json_object_get(f, "source")), "1-rs");
        CHECK_STR(json_string_value(json_object_get(f, "model")), "tiny-a");
        CHECK(fabs(json_number_value(json_object_get(e, "cosineSimilarity")) - val[i]) <= 1e-5);
    }
    json_decref(r);
    /* A vector of our own; no "feature" echoed. */
    char body[16384];
    int n = snprintf(body, sizeof body, "{\"model\":\"tiny-a\",\"source\":\"1-rs\",\"num_results\":5,\"vector\":[");
    for (int j = 0; j < d_in; j++) {
        q[j] = sin(0.7 * j + 1);
        n += snprintf(body + n, sizeof body - n, "%s%.17g", j ? "," : "", q[j]);
    }
    snprintf(body + n, sizeof body - n, "]}");
    cos_ref(w, d_in, q, 5, idx, val);
    r = post(s, "/v1/util/sae-topk-by-decoder-cossim", body, 200);
    CHECK(json_is_array(json_object_get(r, "topk_decoder_cossim_features"))); /* snake_case asked */
    tests_camelize(r);
    top = json_object_get(r, "topkDecoderCossimFeatures");
    CHECK(!json_object_get(r, "feature"));
    CHECK_INT((int)json_array_size(top), 5);
    for (int i = 0; i < 5 && i < (int)json_array_size(top); i++) {
        json_t *e = json_array_get(top, i);
        CHECK_INT((int)json_integer_value(json_object_get(json_object_get(e, "feature"), "index")), idx[i]);
        CHECK(fabs(json_number_value(json_object_get(e, "cosineSimilarity")) - val[i]) <= 1e-5);
    }
    json_decref(r);
    /* numResults is clamped to 128. */
    r = post(s, "/v1/util/sae-topk-by-decoder-cossim",
             "{\"model\":\"tiny-a\",\"source\":\"1-rs\",\"numResults\":100000,\"feature\":{\"model\":\"tiny-a\","
             "\"source\":\"1-rs\",\"index\":0}}",
             200);
    CHECK_INT((int)json_array_size(json_object_get(r, "topkDecoderCossimFeatures")), 128);
    json_decref(r);
    const char *f7 = "\"feature\":{\"model\":\"tiny-a\",\"source\":\"1-rs\",\"index\":7}";
    snprintf(body, sizeof body, "{\"model\":\"tiny-a\",\"source\":\"1-rs\",\"numResults\":3,%s,\"vector\":[1]}", f7);
    post_error(s, "/v1/util/sae-topk-by-decoder-cossim", body, 400, "exactly one of feature or vector");
    post_error(s, "/v1/util/sae-topk-by-decoder-cossim", "{\"model\":\"tiny-a\",\"source\":\"1-rs\",\"numResults\":3}", 400,
               "exactly one of feature or vector");
    post_error(s, "/v1/util/sae-topk-by-decoder-cossim",
               "{\"model\":\"tiny-a\",\"source\":\"1-rs\",\"numResults\":3,\"vector\":[1,2,3]}", 400, "vector");
    post_error(s, "/v1/util/sae-topk-by-decoder-cossim",
               "{\"model\":\"tiny-a\",\"source\":\"1-rs\",\"numResults\":3,\"feature\":{\"model\":\"tiny-a\","
               "\"source\":\"1-rs\",\"index\":512}}",
               400, "out of range");
    post_error(s, "/v1/util/sae-topk-by-decoder-cossim",
               "{\"model\":\"tiny-a\",\"source\":\"9-x\",\"numResults\":3,\"vector\":[1]}", 404, "not found");
    free(w);
}

/* A batch answers each prompt as its single request does. */
static void check_batch(srv *s, const char *single_path, const char *batch_path, const char *fields)
{
    char body[1024];
    snprintf(body, sizeof body, "{%s,\"prompts\":[\"" TEXT "\",\"" TEXT2 "\"]}", fields);
    json_t *b = post(s, batch_path, body, 200), *res = json_object_get(b, "results");
    CHECK_INT((int)json_array_size(res), 2);
    const char *texts[2] = {TEXT, TEXT2};
    for (int i = 0; i < 2; i++) {
        snprintf(body, sizeof body, "{%s,\"prompt\":\"%s\"}", fields, texts[i]);
        json_t *one = post(s, single_path, body, 200);
        CHECK(json_equal(one, json_array_get(res, i)));
        json_decref(one);
    }
    json_decref(b);
    snprintf(body, sizeof body, "{%s,\"prompts\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}", fields);
    post_error(s, batch_path, body, 400, "Batch size 5 exceeds maximum of 4");
    snprintf(body, sizeof body, "{%s,\"prompts\":[]}", fields);
    post_error(s, batch_path, body, 400, "At least one prompt is required");
}

static void check_initialize(srv *s)
{
    json_t *j = v1_call(s, "POST", "/initialize", NULL, 200);
    json_t *m = json_array_get(json_object_get(j, "models"), 0), *src = json_object_get(m, "sources");
    CHECK_STR(json_string_value(json_object_get(j, "status")), "initialized");
    CHECK_INT((int)json_array_size(json_object_get(j, "models")), 1);
    CHECK_STR(json_string_value(json_object_get(m, "model")), "tiny-a");
    CHECK_INT((int)json_array_size(src), 2);
    CHECK_STR(json_string_value(json_array_get(src, 0)), "1-rs");
    CHECK_STR(json_string_value(json_array_get(src, 1)), "1-rs-std");
    json_decref(j);
    j = post(s, "/initialize", "{\"model\":\"tiny-a\",\"sources\":[\"1-rs-std\"]}", 200);
    src = json_object_get(json_array_get(json_object_get(j, "models"), 0), "sources");
    CHECK_INT((int)json_array_size(src), 1);
    CHECK_STR(json_string_value(json_array_get(src, 0)), "1-rs-std");
    json_decref(j);
    post_error(s, "/initialize", "{\"model\":\"nope\"}", 404, "nope");
    post_error(s, "/initialize", "{\"model\":\"tiny-a\",\"sources\":[\"9-x\"]}", 404, "9-x");
    post_error(s, "/initialize", "{\"sources\":[\"1-rs\"]}", 400, "needs model");
    post_error(s, "/initialize?custom_hf_model_id=gpt2", NULL, 400, "custom_hf_model_id");
}

TEST(api_v1_spec_every_route_against_upstream)
{
    char url[512], err[1024];
    srv s;
    if (!(up = oas_load(UPSTREAM, err, sizeof err))) {
        t_fail(__FILE__, __LINE__, "%s", err);
        return;
    }
    updoc = json_load_file(UPSTREAM, 0, NULL);
    CHECK_STR(json_string_value(json_object_get(json_object_get(updoc, "info"), "version")), "1.9.0");
    char chat_dir[] = "/tmp/saed-v1spec-XXXXXX", roots[128];
    CHECK(mkdtemp(chat_dir) != NULL);
    CHECK_INT(tests_write_chat_model(chat_dir), 0);
    snprintf(roots, sizeof roots, "tests/data:%s", chat_dir);
    if (srv_fresh(&s, url, sizeof url,
                  (const char *const[]){"--migrate", "--data-roots", roots, "--workers", "0", "--api-keys", KEY,
                                        "--v1-secret", SECRET, "--max-text-tokens", "40", NULL})) {
        oas_free(up);
        json_decref(updoc);
        rm_dir(chat_dir);
        return;
    }
    resp r;
    http(&s, "POST", "/api/models", hdr, "{\"id\":\"tiny-a\",\"path\":\"" TINY "\"}", &r);
    CHECK_INT(r.status, 201);
    resp_free(&r);
    http(&s, "POST", "/api/saes", hdr, "{\"modelId\":\"tiny-a\",\"path\":\"" SAE_JR "\",\"setName\":\"rs\"}", &r);
    CHECK_INT(r.status, 201);
    resp_free(&r);
    http(&s, "POST", "/api/saes", hdr,
         "{\"modelId\":\"tiny-a\",\"id\":\"1-rs-std\",\"path\":\"" SAE_STD "\",\"setName\":\"rs\"}", &r);
    CHECK_INT(r.status, 201);
    resp_free(&r);

    /* Every route with a request built from upstream's required fields (plus what saed needs
     * beyond them: source and index where upstream also takes vector/hook; feature or vector
     * for the cosines, of which upstream needs one too). */
    struct {
        const char *path, *extras;
    } routes[] = {
        {"/v1/tokenize", NULL},
        {"/v1/activation/single", "{\"source\":\"1-rs\",\"index\":\"3\"}"},
        {"/v1/activation/single-batch", "{\"source\":\"1-rs\",\"index\":\"3\"}"},
        {"/v1/activation/topk-by-token", NULL},
        {"/v1/activation/topk-by-token-batch", NULL},
        {"/v1/activation/all", NULL},
        {"/v1/activation/all-batch", NULL},
        {"/v1/activation/source", NULL},
        {"/v1/util/sae-vector", NULL},
        {"/v1/util/sae-topk-by-decoder-cossim", "{\"feature\":{\"model\":\"tiny-a\",\"source\":\"1-rs\",\"index\":3}}"},
    };
    for (size_t i = 0; i < sizeof routes / sizeof *routes; i++) {
        char *body = spec_request(routes[i].path, routes[i].extras);
        json_decref(post(&s, routes[i].path, body, 200));
        free(body);
    }
    json_t *h = v1_call(&s, "GET", "/health", NULL, 200);
    CHECK_STR(json_string_value(json_object_get(h, "status")), "healthy");
    json_decref(h);
    json_decref(v1_call(&s, "GET", "/v1/capabilities", NULL, 200));
    /* Upstream's example requests (snake_case ignore_bos among them) are accepted as well. */
    json_decref(post(&s, "/v1/activation/topk-by-token-batch",
                     "{\"ignore_bos\":true,\"model\":\"tiny-a\",\"prompts\":[\"" TEXT "\",\"" TEXT2 "\"],\"source\":\"1-rs\"}",
                     200));

    int T = 0, T2 = 0;
    float *ref_jr = tests_saed_encode(TINY, SAE_JR, TEXT, 1, D, &T);
    float *ref_std = tests_saed_encode(TINY, SAE_STD, TEXT, 1, D, &T2);
    if (ref_jr && ref_std) {
        CHECK(T > 10);
        CHECK_INT(T2, T);
        const float *refs[2] = {ref_jr, ref_std};
        check_all(&s, refs, T);
        check_source(&s, ref_jr, T);
    }
    free(ref_jr);
    free(ref_std);
    check_batch(&s, "/v1/activation/single", "/v1/activation/single-batch",
                "\"model\":\"tiny-a\",\"source\":\"1-rs-std\",\"index\":11");
    check_batch(&s, "/v1/activation/topk-by-token", "/v1/activation/topk-by-token-batch",
                "\"model\":\"tiny-a\",\"source\":\"1-rs\",\"topK\":4,\"ignoreBos\":true");
    check_batch(&s, "/v1/activation/all", "/v1/activation/all-batch",
                "\"model\":\"tiny-a\",\"sourceSet\":\"rs\",\"selectedSources\":[\"1-rs-std\",\"1-rs\"],"
                "\"sortByTokenIndexes\":[2],\"ignoreBos\":true,\"numResults\":7");
    check_cossim(&s);
    check_initialize(&s);
    tests_add_chat_model(&s, hdr, chat_dir, SAE_JR);
    spec_steer(&s);

    /* Errors, each {"error": str} naming the problem. */
    post_error(&s, "/v1/activation/all",
               "{\"model\":\"tiny-a\",\"prompt\":\"x\",\"sourceSet\":\"nope\",\"selectedSources\":[],"
               "\"sortByTokenIndexes\":[],\"ignoreBos\":true}",
               400, "Invalid source set");
    post_error(&s, "/v1/activation/all",
               "{\"model\":\"tiny-a\",\"prompt\":\"x y\",\"sourceSet\":\"rs\",\"sortByTokenIndexes\":[30],\"ignoreBos\":true}",
               400, "out of range");
    post_error(&s, "/v1/activation/all",
               "{\"model\":\"tiny-a\",\"prompt\":\"x\",\"sourceSet\":\"rs\",\"selectedSources\":[\"1-xx\"]}", 400,
               "not an SAE of source set");
    post_error(&s, "/v1/activation/all", "{\"model\":\"tiny-a\",\"prompt\":\"x\",\"sourceSet\":\"rs\",\"numResults\":-1}",
               400, "numResults");
    post_error(&s, "/v1/activation/source", "{\"model\":\"tiny-a\",\"source\":\"9-x\",\"prompts\":[\"x\"]}", 404,
               "not found");
    post_error(&s, "/v1/activation/source", "{\"model\":\"tiny-a\",\"source\":\"1-rs\",\"prompts\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}",
               400, "Batch size 5 exceeds maximum of 4");

    /* What was not exercised is exactly what saed does not serve. */
    int unexercised = oas_unexercised(up, check_not_served, NULL);
    CHECK_INT(unexercised, (int)(sizeof not_served / sizeof *not_served));
    oas_free(up);
    json_decref(updoc);
    CHECK_INT(srv_stop(&s), 0);
    rm_dir(chat_dir);
}
