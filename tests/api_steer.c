/* api_steer.c: POST /api/steer, GET /api/steer/{id} and POST /api/steer-chat on a real server
 * and PostgreSQL, with tiny-a and its golden SAEs: strength 0 and ORTHOGONAL_DECOMP with coeff
 * 1 leave STEERED equal to DEFAULT, a large strength changes it, seeds repeat and differ, the
 * raw decoder row is the vector, greedy DEFAULT equals the argmax of `saed forward` at every
 * step and its logprobs the log-softmax of those logits, streamed frames are cumulative and end
 * with the non-stream answer, identical requests come from the store, validation answers 400
 * and 404, and a client that hangs up mid-stream stops the generation. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine/live.h"
#include "engine/sample.h"
#include "engine/tokenizer.h"
#include "server/steer.h"
#include "tests/srv.h"
#include "tests/steer_fixture.h"
#include "tests/t.h"
#include "tools/fixture.h"

#define TINY "tests/data/models/tiny-a"

TEST(steer_utf8_text_holds_unfinished_characters)
{
    struct { const char *in; size_t len; bool hold; const char *want; } cases[] = {
        {"abc", 3, false, "abc"},
        {"a\xc3\xa9" "b", 4, true, "a\xc3\xa9" "b"},
        {"a\xc3", 2, true, "a"},
        {"a\xc3", 2, false, "a\xef\xbf\xbd"},
        {"a\xe2\x82", 3, true, "a"},
        {"a\xe2\x82\xac", 4, true, "a\xe2\x82\xac"},
        {"a\xff b", 4, true, "a\xef\xbf\xbd b"},
        {"a\0b", 3, false, "a\xef\xbf\xbd" "b"},
        {"\xed\xa0\x80", 3, false, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* a surrogate */
        {"x\xe0\x80", 3, true, "x\xef\xbf\xbd\xef\xbf\xbd"},               /* an overlong start is not held */
        {"\xf0\x9d\x84", 3, true, ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *t = steer_utf8_text(cases[i].in, cases[i].len, cases[i].hold);
        if (!t || strcmp(t, cases[i].want)) t_fail(__FILE__, __LINE__, "case %zu: \"%s\"", i, t ? t : "(null)");
        free(t);
    }
    /* Every held prefix is a prefix of the next one and of the final text. */
    const char text[] = "h\xc3\xa9llo \xe2\x82\xac \xf0\x9d\x84\x9e ok\xff\xc3";
    char *full = steer_utf8_text(text, sizeof text - 1, false), *prev = strdup("");
    for (size_t k = 1; k < sizeof text; k++) {
        char *t = steer_utf8_text(text, k, true);
        CHECK(t && !strncmp(t, prev, strlen(prev)) && !strncmp(full, t, strlen(t)));
        free(prev);
        prev = t;
    }
    free(prev);
    free(full);
}

/* A steering request on tiny-a; feats is the inside of the features array. */
static void body_for(char *b, size_t n, const char *feats, double temp, int ntok, double seed, double mult,
                     const char *extra)
{
    snprintf(b, n,
             "{\"prompt\":\"The quick brown fox\",\"modelId\":\"tiny-a\",\"features\":[%s],\"temperature\":%g,"
             "\"n_tokens\":%d,\"seed\":%g,\"strength_multiplier\":%g%s%s}",
             feats, temp, ntok, seed, mult, extra ? "," : "", extra ? extra : "");
}

static json_t *steer(srv *s, const char *body, int want)
{
    resp r;
    http(s, "POST", "/api/steer", NULL, body, &r);
    if (r.status != want) t_fail(__FILE__, __LINE__, "POST /api/steer %s: %d, wanted %d: %.300s", body, r.status, want, r.body);
    json_t *j = resp_json(&r);
    resp_free(&r);
    return j;
}

static const char *str(json_t *j, const char *k) { return json_string_value(json_object_get(j, k)); }

static int start(srv *s, char *url, size_t n, char *dir, const char *const *more)
{
    char roots[400];
    snprintf(roots, sizeof roots, "tests/data:%s", dir);
    const char *args[16] = {"--migrate", "--data-roots", roots};
    int k = 3;
    for (int i = 0; more && more[i]; i++) args[k++] = more[i];
    args[k] = NULL;
    if (srv_fresh(s, url, n, args)) return -1;
    resp r;
    char b[600];
    http(s, "POST", "/api/models", NULL, "{\"id\":\"tiny-a\",\"path\":\"" TINY "\"}", &r);
    CHECK_INT(r.status, 201);
    resp_free(&r);
    http(s, "POST", "/api/saes", NULL, "{\"modelId\":\"tiny-a\",\"path\":\"tests/data/sae/tiny-a-res-standard\",\"setName\":\"std\"}", &r);
    CHECK_INT(r.status, 201);
    resp_free(&r);
    snprintf(b, sizeof b, "{\"modelId\":\"tiny-a\",\"path\":\"%s/scaled\",\"setName\":\"scaled\"}", dir);
    http(s, "POST", "/api/saes", NULL, b, &r);
    CHECK_INT(r.status, 201);
    resp_free(&r);
    return 0;
}

static char *scratch_dir(void)
{
    static char dir[64];
    snprintf(dir, sizeof dir, "/tmp/saed-steer-XXXXXX");
    if (!mkdtemp(dir)) return NULL;
    char sae[128];
    snprintf(sae, sizeof sae, "%s/scaled", dir);
    if (steer_fixture_scaled_sae(sae)) return NULL;
    return dir;
}

static void rm_rf(const char *dir)
{
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) {}
}

#define F_STD(idx, strength) "{\"modelId\":\"tiny-a\",\"layer\":\"1-std\",\"index\":" #idx ",\"strength\":" #strength "}"

TEST(api_steer_semantics_and_store)
{
    char *dir = scratch_dir();
    CHECK(dir != NULL);
    if (!dir) return;
    srv s;
    char url[512], b[2048];
    if (start(&s, url, sizeof url, dir, NULL)) return;

    /* strength 0: the same tokens with and without the (zero) steering, at temperature 1. */
    body_for(b, sizeof b, F_STD(7, 0), 1.0, 20, 5, 1, NULL);
    json_t *a = steer(&s, b, 200);
    CHECK(str(a, "STEERED") && strlen(str(a, "STEERED")) > 0);
    CHECK_STR(str(a, "STEERED"), str(a, "DEFAULT"));
    CHECK(json_is_null(json_object_get(a, "steeredLogProbs")) && json_is_null(json_object_get(a, "limit")));
    char share[200];
    snprintf(share, sizeof share, "/api/steer/%s", str(a, "id"));
    CHECK_STR(str(a, "shareUrl"), share);

    /* A leading "<|endoftext|>" in the prompt is the BOS itself, not text. */
    snprintf(b, sizeof b,
             "{\"prompt\":\"<|endoftext|>The quick brown fox\",\"modelId\":\"tiny-a\",\"features\":[" F_STD(7, 0) "],"
             "\"temperature\":1,\"n_tokens\":20,\"seed\":5,\"strength_multiplier\":1}");
    json_t *bos = steer(&s, b, 200);
    CHECK_STR(str(bos, "DEFAULT"), str(a, "DEFAULT"));
    json_decref(bos);

    /* ORTHOGONAL_DECOMP with coeff 1 is the identity. */
    body_for(b, sizeof b, F_STD(7, 2), 1.0, 20, 5, 0.5, "\"steer_method\":\"ORTHOGONAL_DECOMP\"");
    json_t *o = steer(&s, b, 200);
    CHECK_STR(str(o, "STEERED"), str(o, "DEFAULT"));
    CHECK_STR(str(o, "DEFAULT"), str(a, "DEFAULT")); /* DEFAULT does not depend on the steering */

    /* A large strength changes the continuation (greedy, so nothing but the steering differs). */
    body_for(b, sizeof b, F_STD(7, 200), 0, 20, 5, 1, NULL);
    json_t *big = steer(&s, b, 200);
    CHECK(str(big, "STEERED") && strcmp(str(big, "STEERED"), str(big, "DEFAULT")));
    /* "007" names feature 7, as on the other routes (np_index_canon): the same answer. */
    body_for(b, sizeof b, F_STD("007", 200), 0, 20, 5, 1, NULL);
    json_t *zeros = steer(&s, b, 200);
    CHECK_STR(str(zeros, "STEERED"), str(big, "STEERED"));
    json_decref(zeros);
    /* ...and ORTHOGONAL_DECOMP with coeff 0 (ablation) too, at a feature the prompt uses. */

    /* Same seed, same tokens: a shorter run is a prefix of a longer one (one draw per token),
     * and after the store is emptied the same request generates the same again. */
    body_for(b, sizeof b, F_STD(3, 30), 1.0, 10, 5, 1, NULL);
    json_t *short_run = steer(&s, b, 200);
    body_for(b, sizeof b, F_STD(3, 30), 1.0, 20, 5, 1, NULL);
    json_t *long_run = steer(&s, b, 200);
    CHECK(!strncmp(str(long_run, "STEERED"), str(short_run, "STEERED"), strlen(str(short_run, "STEERED"))));
    CHECK(!strncmp(str(long_run, "DEFAULT"), str(short_run, "DEFAULT"), strlen(str(short_run, "DEFAULT"))));
    CHECK_STR(str(long_run, "DEFAULT"), str(a, "DEFAULT"));
    CHECK_INT(tdb_exec(url, "DELETE FROM steer_outputs"), 0);
    json_t *again = steer(&s, b, 200);
    CHECK_STR(str(again, "STEERED"), str(long_run, "STEERED"));
    CHECK_STR(str(again, "DEFAULT"), str(long_run, "DEFAULT"));
    CHECK(strcmp(str(again, "id"), str(long_run, "id"))); /* generated anew */
    /* Different seeds differ at temperature > 0. */
    body_for(b, sizeof b, F_STD(3, 30), 1.0, 20, 6, 1, NULL);
    json_t *other = steer(&s, b, 200);
    CHECK(strcmp(str(other, "DEFAULT"), str(long_run, "DEFAULT")));
    CHECK(strcmp(str(other, "STEERED"), str(long_run, "STEERED")));

    /* An identical request is answered from the store: the same bytes, no new rows. */
    body_for(b, sizeof b, F_STD(3, 30), 1.0, 20, 6, 1, "\"n_logprobs\":2");
    resp r1, r2;
    http(&s, "POST", "/api/steer", NULL, b, &r1);
    long long rows = tdb_scalar(url, "SELECT count(*) FROM steer_outputs");
    long long links = tdb_scalar(url, "SELECT count(*) FROM steer_output_features");
    http(&s, "POST", "/api/steer/", NULL, b, &r2);
    CHECK_INT(r2.status, 200);
    CHECK_STR(r1.body, r2.body);
    CHECK_INT(tdb_scalar(url, "SELECT count(*) FROM steer_outputs"), rows);
    CHECK_INT(tdb_scalar(url, "SELECT count(*) FROM steer_output_features"), links);
    /* DEFAULT is shared by requests that differ only in the steering: one new row (STEERED). */
    body_for(b, sizeof b, F_STD(3, 31), 1.0, 20, 6, 1, "\"n_logprobs\":2");
    json_t *d2 = steer(&s, b, 200);
    CHECK_INT(tdb_scalar(url, "SELECT count(*) FROM steer_outputs"), rows + 1);
    json_t *j1 = resp_json(&r1);
    CHECK_STR(str(d2, "DEFAULT"), str(j1, "DEFAULT"));
    CHECK(json_equal(json_object_get(d2, "defaultLogProbs"), json_object_get(j1, "defaultLogProbs")));

    /* GET /api/steer/{id}: the stored result and its request. */
    char path[200];
    snprintf(path, sizeof path, "/api/steer/%s", str(j1, "id"));
    resp g;
    http(&s, "GET", path, NULL, NULL, &g);
    CHECK_INT(g.status, 200);
    json_t *gj = resp_json(&g);
    CHECK_STR(str(gj, "STEERED"), str(j1, "STEERED"));
    CHECK_STR(str(gj, "DEFAULT"), str(j1, "DEFAULT"));
    CHECK(json_equal(json_object_get(gj, "steeredLogProbs"), json_object_get(j1, "steeredLogProbs")));
    CHECK_STR(str(gj, "prompt"), "The quick brown fox");
    json_t *f0 = json_array_get(json_object_get(gj, "features"), 0);
    CHECK_STR(str(f0, "layer"), "1-std");
    CHECK_STR(str(f0, "index"), "3");
    CHECK_NEAR(json_number_value(json_object_get(f0, "strength")), 30, 0);
    json_t *st = json_object_get(gj, "settings");
    CHECK_INT(json_integer_value(json_object_get(st, "n_tokens")), 20);
    CHECK_INT(json_integer_value(json_object_get(st, "n_logprobs")), 2);
    CHECK_NEAR(json_number_value(json_object_get(st, "seed")), 6, 0);
    CHECK_NEAR(json_number_value(json_object_get(st, "freq_penalty")), 1, 0); /* the default */
    CHECK_STR(str(st, "steer_method"), "SIMPLE_ADDITIVE");
    json_decref(gj);
    resp_free(&g);
    strcat(path, "/");
    http(&s, "GET", path, NULL, NULL, &g);
    CHECK_INT(g.status, 200);
    resp_free(&g);
    http(&s, "GET", "/api/steer/00000000-0000-0000-0000-000000000000", NULL, NULL, &g);
    CHECK_INT(g.status, 404);
    resp_free(&g);
    http(&s, "GET", "/api/steer/not%20an%20id", NULL, NULL, &g);
    CHECK_INT(g.status, 404);
    resp_free(&g);

    /* The vector is the raw decoder row: feature 2 of the scaled SAE is 3× feature 2 of the
     * standard one, so strength 20 there steers like strength 60 here (the engine cache holds
     * both folded to unit rows, which would make them steer alike at equal strengths). */
    body_for(b, sizeof b, "{\"modelId\":\"tiny-a\",\"layer\":\"1-scaled\",\"index\":\"2\",\"strength\":20}", 0, 16, 1, 1, NULL);
    json_t *sc = steer(&s, b, 200);
    body_for(b, sizeof b, F_STD(2, 60), 0, 16, 1, 1, NULL);
    json_t *st60 = steer(&s, b, 200);
    body_for(b, sizeof b, F_STD(2, 20), 0, 16, 1, 1, NULL);
    json_t *st20 = steer(&s, b, 200);
    CHECK_STR(str(sc, "STEERED"), str(st60, "STEERED"));
    CHECK(strcmp(str(st60, "STEERED"), str(st20, "STEERED")));
    /* Two features add up. */
    body_for(b, sizeof b, F_STD(2, 20) ",{\"modelId\":\"tiny-a\",\"layer\":\"1-std\",\"index\":\"2\",\"strength\":40}", 0, 16, 1, 1,
             NULL);
    json_decref(steer(&s, b, 400)); /* the same feature twice */
    body_for(b, sizeof b, F_STD(2, 20) ",{\"modelId\":\"tiny-a\",\"layer\":\"1-scaled\",\"index\":\"2\",\"strength\":40.0}", 0, 16, 1,
             0.5, NULL);
    json_t *two = steer(&s, b, 200); /* 0.5·(20·v + 40·3v) = 70·v */
    body_for(b, sizeof b, F_STD(2, 70), 0, 16, 1, 1, NULL);
    json_t *one = steer(&s, b, 200);
    CHECK_STR(str(two, "STEERED"), str(one, "STEERED"));

    json_decref(a), json_decref(o), json_decref(big), json_decref(short_run), json_decref(long_run);
    json_decref(again), json_decref(other), json_decref(d2), json_decref(j1), json_decref(sc), json_decref(st60);
    json_decref(st20), json_decref(two), json_decref(one);
    resp_free(&r1);
    resp_free(&r2);
    srv_stop(&s);
    rm_rf(dir);
}

/* Greedy DEFAULT against `saed forward` step by step: the token is the argmax of the last
 * position's logits, its logprobs the log-softmax of those logits. */
TEST(api_steer_greedy_equals_saed_forward_argmax)
{
    char *dir = scratch_dir();
    if (!dir) return;
    srv s;
    char url[512], b[2048];
    if (start(&s, url, sizeof url, dir, NULL)) return;
    const int N = 8, K = 3;
    body_for(b, sizeof b, F_STD(5, 0), 0, N, 1, 1, "\"freq_penalty\":0,\"n_logprobs\":3");
    json_t *res = steer(&s, b, 200);
    json_t *lps = json_object_get(res, "defaultLogProbs");
    CHECK_INT(json_array_size(lps), N);
    CHECK(json_equal(lps, json_object_get(res, "steeredLogProbs")));
    static const int32_t prompt[] = {50256, 464, 2068, 7586, 21831}; /* BOS "The quick brown fox" */
    tests_check_greedy(TINY, prompt, 5, N, K, lps, str(res, "DEFAULT"));
    json_decref(res);
    srv_stop(&s);
    rm_rf(dir);
}

/* The prompt is tokenized as activation/new tokenizes it (live_tokenize): an inner
 * "<|endoftext|>" is the BOS id, not text, so the first greedy token is the argmax of
 * `saed forward` on those ids. */
TEST(api_steer_prompt_tokens_equal_activation_new)
{
    char *dir = scratch_dir();
    if (!dir) return;
    srv s;
    char url[512], err[512];
    if (start(&s, url, sizeof url, dir, NULL)) return;
    static const char prompt[] = "The quick<|endoftext|> brown fox<|endoftext|>";
    tokenizer *tok = tok_load_dir(TINY, err, sizeof err);
    CHECK(tok != NULL);
    if (!tok) return;
    int32_t *ids = NULL;
    int T = live_tokenize(tok, prompt, strlen(prompt), 128, &ids, err, sizeof err);
    CHECK_INT(T, 7); /* BOS The quick BOS brown fox BOS */
    CHECK(T == 7 && ids[0] == 50256 && ids[3] == 50256 && ids[6] == 50256);
    /* activation/new's tokens (BOS dropped) are these ids. */
    resp r;
    http(&s, "POST", "/api/activation/new", NULL,
         "{\"feature\":{\"modelId\":\"tiny-a\",\"source\":\"1-std\",\"index\":\"7\"},"
         "\"customText\":\"The quick<|endoftext|> brown fox<|endoftext|>\"}", &r);
    CHECK_INT(r.status, 200);
    json_t *a = resp_json(&r);
    resp_free(&r);
    json_t *toks = json_object_get(a, "tokens");
    CHECK_INT(json_array_size(toks), T - 1);
    for (int i = 1; i < T && (size_t)(i - 1) < json_array_size(toks); i++) {
        char *ts = tok_token_str(tok, ids[i]);
        CHECK_STR(json_string_value(json_array_get(toks, (size_t)i - 1)), ts);
        free(ts);
    }
    json_decref(a);
    /* The steering prompt: the first greedy token and its logprob from those same ids. */
    char b[1024], idarg[256];
    snprintf(b, sizeof b,
             "{\"prompt\":\"%s\",\"modelId\":\"tiny-a\",\"features\":[" F_STD(7, 0) "],\"temperature\":0,"
             "\"n_tokens\":1,\"seed\":1,\"strength_multiplier\":1,\"freq_penalty\":0,\"n_logprobs\":1}", prompt);
    json_t *res = steer(&s, b, 200);
    size_t l = (size_t)snprintf(idarg, sizeof idarg, "[");
    for (int i = 0; i < T; i++) l += (size_t)snprintf(idarg + l, sizeof idarg - l, "%s%d", i ? "," : "", ids[i]);
    snprintf(idarg + l, sizeof idarg - l, "]");
    const int V = 50257;
    char *out = malloc(4 << 20);
    float *lg = malloc(sizeof(float) * V), *lp = malloc(sizeof(float) * V);
    CHECK_INT(saed_run((const char *const[]){"forward", "--model", TINY, "--ids", idarg, NULL}, out, 4 << 20, err, sizeof err), 0);
    json_t *f = json_loads(out, 0, NULL), *ll = json_object_get(f, "logits_last");
    CHECK_INT(json_array_size(ll), V);
    int best = 0;
    for (int i = 0; i < V && json_array_size(ll) == (size_t)V; i++) {
        lg[i] = (float)json_number_value(json_array_get(ll, (size_t)i));
        if (lg[i] > lg[best]) best = i;
    }
    sample_log_softmax(lg, V, lp);
    json_t *e = json_array_get(json_object_get(res, "defaultLogProbs"), 0);
    char *want = tok_token_str(tok, best);
    CHECK_STR(str(e, "token"), want);
    CHECK_NEAR(json_number_value(json_object_get(e, "logprob")), lp[best], 1e-4);
    free(want);
    json_decref(f);
    json_decref(res);
    free(out), free(lg), free(lp), free(ids);
    tok_free(tok);
    srv_stop(&s);
    rm_rf(dir);
}

/* Splits an event-stream body into its data payloads (JSON) and event names. */
static int sse_events(const char *body, json_t **data, char names[][16], int max)
{
    int n = 0;
    const char *p = body;
    while (*p && n < max) {
        const char *end = strstr(p, "\n\n");
        if (!end) break;
        names[n][0] = '\0';
        const char *d = NULL;
        for (const char *line = p; line < end;) {
            const char *nl = memchr(line, '\n', (size_t)(end - line));
            if (!nl) nl = end;
            if (!strncmp(line, "event: ", 7)) snprintf(names[n], 16, "%.*s", (int)(nl - line - 7), line + 7);
            if (!strncmp(line, "data: ", 6)) d = line + 6;
            line = nl + 1;
        }
        data[n++] = d ? json_loadb(d, (size_t)(end - d), 0, NULL) : NULL;
        p = end + 2;
    }
    return n;
}

TEST(api_steer_stream_frames_and_validation)
{
    char *dir = scratch_dir();
    if (!dir) return;
    srv s;
    char url[512], b[4096];
    if (start(&s, url, sizeof url, dir, NULL)) return;
    const int N = 12;
    /* Non-stream first, then the store emptied and the same request streamed: generated again,
     * frame by frame. */
    body_for(b, sizeof b, F_STD(9, 80), 0.8, N, 21, 1, "\"n_logprobs\":1,\"freq_penalty\":0.5");
    json_t *plain = steer(&s, b, 200);
    CHECK_INT(tdb_exec(url, "DELETE FROM steer_outputs"), 0);
    body_for(b, sizeof b, F_STD(9, 80), 0.8, N, 21, 1, "\"n_logprobs\":1,\"freq_penalty\":0.5,\"stream\":true");
    resp r;
    http(&s, "POST", "/api/steer", NULL, b, &r);
    CHECK_INT(r.status, 200);
    CHECK_CONTAINS(r.ctype, "text/event-stream");
    json_t *ev[300];
    char names[300][16];
    int n = sse_events(r.body, ev, names, 300);
    CHECK(n >= 2 && n <= N);
    for (int i = 0; i < n; i++) {
        CHECK(ev[i] != NULL);
        CHECK_STR(names[i], "");
        if (!ev[i] || i == 0) continue;
        /* Cumulative: each text extends the one before. */
        const char *ps = str(ev[i - 1], "STEERED"), *cs = str(ev[i], "STEERED");
        const char *pd = str(ev[i - 1], "DEFAULT"), *cd = str(ev[i], "DEFAULT");
        CHECK(ps && cs && !strncmp(cs, ps, strlen(ps)));
        CHECK(pd && cd && !strncmp(cd, pd, strlen(pd)));
        if (i < n - 1) CHECK(json_is_null(json_object_get(ev[i], "id")));
    }
    json_t *last = n > 0 ? ev[n - 1] : NULL;
    CHECK(last && json_is_string(json_object_get(last, "id")));
    CHECK_STR(str(last, "STEERED"), str(plain, "STEERED"));
    CHECK_STR(str(last, "DEFAULT"), str(plain, "DEFAULT"));
    CHECK(json_equal(json_object_get(last, "steeredLogProbs"), json_object_get(plain, "steeredLogProbs")));
    CHECK(json_equal(json_object_get(last, "defaultLogProbs"), json_object_get(plain, "defaultLogProbs")));
    CHECK_INT(json_array_size(json_object_get(last, "steeredLogProbs")), N);
    /* The non-stream request is now answered from what the stream stored: equal to the last frame. */
    body_for(b, sizeof b, F_STD(9, 80), 0.8, N, 21, 1, "\"n_logprobs\":1,\"freq_penalty\":0.5");
    json_t *stored = steer(&s, b, 200);
    CHECK(json_equal(stored, last));
    for (int i = 0; i < n; i++) json_decref(ev[i]);
    resp_free(&r);
    /* A stored result streams as one event. */
    body_for(b, sizeof b, F_STD(9, 80), 0.8, N, 21, 1, "\"n_logprobs\":1,\"freq_penalty\":0.5,\"stream\":true");
    http(&s, "POST", "/api/steer", NULL, b, &r);
    n = sse_events(r.body, ev, names, 300);
    CHECK_INT(n, 1);
    CHECK(n == 1 && json_equal(ev[0], stored));
    for (int i = 0; i < n; i++) json_decref(ev[i]);
    resp_free(&r);
    json_decref(plain);
    json_decref(stored);

    /* Validation: 400 naming the problem, 404 for what does not exist. */
    char longp[2100];
    memset(longp, 'a', 2049);
    longp[2049] = '\0';
    struct { const char *body, *needle; int status; } bad[] = {
        {"[1]", "JSON object", 400},
        {"{\"modelId\":\"tiny-a\",\"features\":[" F_STD(1, 1) "],\"temperature\":0,\"n_tokens\":5,\"seed\":1,\"strength_multiplier\":1}", "prompt", 400},
        {"{\"prompt\":\"x\",\"modelId\":\"tiny-a\",\"features\":[],\"temperature\":0,\"n_tokens\":5,\"seed\":1,\"strength_multiplier\":1}", "features: required non-empty", 400},
        {"{\"prompt\":\"x\",\"modelId\":\"tiny-a\",\"features\":[{\"modelId\":\"gpt2\",\"layer\":\"1-std\",\"index\":1,\"strength\":1}],\"temperature\":0,\"n_tokens\":5,\"seed\":1,\"strength_multiplier\":1}", "features[0].modelId", 400},
        {"{\"prompt\":\"x\",\"modelId\":\"tiny-a\",\"features\":[" F_STD(1, 1) "],\"temperature\":2.5,\"n_tokens\":5,\"seed\":1,\"strength_multiplier\":1}", "temperature", 400},
        {"{\"prompt\":\"x\",\"modelId\":\"tiny-a\",\"features\":[" F_STD(1, 1) "],\"temperature\":0,\"n_tokens\":0,\"seed\":1,\"strength_multiplier\":1}", "n_tokens", 400},
        {"{\"prompt\":\"x\",\"modelId\":\"tiny-a\",\"features\":[" F_STD(1, 1) "],\"temperature\":0,\"n_tokens\":257,\"seed\":1,\"strength_multiplier\":1}", "n_tokens", 400},
        {"{\"prompt\":\"x\",\"modelId\":\"tiny-a\",\"features\":[" F_STD(1, 1) "],\"temperature\":0,\"n_tokens\":2.5,\"seed\":1,\"strength_multiplier\":1}", "n_tokens: expected an integer", 400},
        {"{\"prompt\":\"x\",\"modelId\":\"tiny-a\",\"features\":[" F_STD(1, 1) "],\"temperature\":0,\"n_tokens\":5,\"seed\":1e9,\"strength_multiplier\":1}", "seed", 400},
        {"{\"prompt\":\"x\",\"modelId\":\"tiny-a\",\"features\":[" F_STD(1, 1) "],\"temperature\":0,\"n_tokens\":5,\"seed\":1,\"strength_multiplier\":11}", "strength_multiplier", 400},
        {"{\"prompt\":\"x\",\"modelId\":\"tiny-a\",\"features\":[" F_STD(1, 1) "],\"temperature\":0,\"n_tokens\":5,\"seed\":1,\"strength_multiplier\":1,\"freq_penalty\":3}", "freq_penalty", 400},
        {"{\"prompt\":\"x\",\"modelId\":\"tiny-a\",\"features\":[" F_STD(1, 1) "],\"temperature\":0,\"n_tokens\":5,\"seed\":1,\"strength_multiplier\":1,\"n_logprobs\":11}", "n_logprobs", 400},
        {"{\"prompt\":\"x\",\"modelId\":\"tiny-a\",\"features\":[" F_STD(1, 1) "],\"temperature\":0,\"n_tokens\":5,\"seed\":1,\"strength_multiplier\":1,\"steer_method\":\"PROJECTION_CAP\"}", "PROJECTION_CAP is not supported", 400},
        {"{\"prompt\":\"x\",\"modelId\":\"tiny-a\",\"features\":[" F_STD(-1, 1) "],\"temperature\":0,\"n_tokens\":5,\"seed\":1,\"strength_multiplier\":1}", "features[0].index", 400},
        {"{\"prompt\":\"x\",\"modelId\":\"tiny-a\",\"features\":[" F_STD("7a", 1) "],\"temperature\":0,\"n_tokens\":5,\"seed\":1,\"strength_multiplier\":1}", "features[0].index", 400},
        {"{\"prompt\":\"x\",\"modelId\":\"tiny-a\",\"features\":[" F_STD(1, 1) "],\"temperature\":0,\"n_tokens\":5,\"seed\":1,\"strength_multiplier\":1,\"stream\":\"yes\"}", "stream", 400},
        {"{\"prompt\":\"x\",\"modelId\":\"tiny-a\",\"features\":[" F_STD(512, 1) "],\"temperature\":0,\"n_tokens\":5,\"seed\":1,\"strength_multiplier\":1}", "tiny-a/1-std/512 not found", 404},
        {"{\"prompt\":\"x\",\"modelId\":\"tiny-a\",\"features\":[{\"modelId\":\"tiny-a\",\"layer\":\"0-none\",\"index\":1,\"strength\":1}],\"temperature\":0,\"n_tokens\":5,\"seed\":1,\"strength_multiplier\":1}", "not found", 404},
        {"{\"prompt\":\"x\",\"modelId\":\"nope\",\"features\":[{\"modelId\":\"nope\",\"layer\":\"1-std\",\"index\":1,\"strength\":1}],\"temperature\":0,\"n_tokens\":5,\"seed\":1,\"strength_multiplier\":1}", "model 'nope' not found", 404},
        /* 5 prompt tokens + 124 > the context of 128 */
        {"{\"prompt\":\"The quick brown fox\",\"modelId\":\"tiny-a\",\"features\":[" F_STD(1, 1) "],\"temperature\":0,\"n_tokens\":124,\"seed\":1,\"strength_multiplier\":1}", "context of 128", 400},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        http(&s, "POST", "/api/steer", NULL, bad[i].body, &r);
        if (r.status != bad[i].status) t_fail(__FILE__, __LINE__, "case %zu: %d, wanted %d: %s", i, r.status, bad[i].status, r.body);
        CHECK_CONTAINS(r.body, bad[i].needle);
        resp_free(&r);
    }
    snprintf(b, sizeof b, "{\"prompt\":\"%s\",\"modelId\":\"tiny-a\",\"features\":[" F_STD(1, 1) "],\"temperature\":0,\"n_tokens\":5,\"seed\":1,\"strength_multiplier\":1}", longp);
    http(&s, "POST", "/api/steer", NULL, b, &r);
    CHECK_INT(r.status, 400);
    CHECK_CONTAINS(r.body, "prompt: 2049 characters, at most 2048");
    resp_free(&r);
    /* 123 new tokens fit exactly. */
    body_for(b, sizeof b, F_STD(1, 1), 0, 123, 1, 1, "\"freq_penalty\":0");
    json_decref(steer(&s, b, 200));
    http(&s, "POST", "/api/steer", (const char *const[]){"Content-Type: text/plain", NULL}, "x", &r);
    CHECK_INT(r.status, 415);
    resp_free(&r);

    /* Chat steering: no chat template for GPT-2 models. */
#define CHAT_BODY(model)                                                                                               \
    "{\"modelId\":\"" model "\",\"defaultChatMessages\":[{\"role\":\"user\",\"content\":\"hi\"}],"                    \
    "\"steeredChatMessages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"features\":[{\"modelId\":\"" model "\","         \
    "\"layer\":\"1-std\",\"index\":1,\"strength\":1}],\"temperature\":0,\"n_tokens\":4,\"seed\":1,"                     \
    "\"strength_multiplier\":1,\"steer_special_tokens\":true}"
    http(&s, "POST", "/api/steer-chat", NULL, CHAT_BODY("tiny-a"), &r);
    CHECK_INT(r.status, 400);
    CHECK_CONTAINS(r.body, "no_chat_template");
    CHECK_CONTAINS(r.body, "model has no chat template");
    resp_free(&r);
    http(&s, "POST", "/api/steer-chat", NULL, CHAT_BODY("nope"), &r);
    CHECK_INT(r.status, 404);
    resp_free(&r);
#undef CHAT_BODY
    http(&s, "POST", "/api/steer-chat/", NULL, "{}", &r);
    CHECK_INT(r.status, 400);
    resp_free(&r);
    srv_stop(&s);
    rm_rf(dir);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int running_tasks(srv *s)
{
    resp r;
    http(s, "GET", "/metrics", NULL, NULL, &r);
    const char *p = r.body ? strstr(r.body, "saed_compute_tasks{state=\"running\"} ") : NULL;
    int n = p ? atoi(p + strlen("saed_compute_tasks{state=\"running\"} ")) : -1;
    resp_free(&r);
    return n;
}

/* A client that hangs up mid-stream: the compute task ends within a token or two, nothing is
 * stored. The model is a random GPT-2 with a 1024-token context (the request would run for
 * seconds), with tiny-a's SAE width. */
TEST(api_steer_client_disconnect_stops_generation)
{
    char *dir = scratch_dir();
    if (!dir) return;
    char mdir[128], err[512];
    snprintf(mdir, sizeof mdir, "%s/slow", dir);
    mkdir(mdir, 0755);
    fixture_gpt2 fx = {.d_model = 64, .n_layer = 12, .n_head = 4, .n_ctx = 1024, .vocab = 50257, .seed = 3, .prefixed = 1};
    CHECK_INT(fixture_gpt2_write(mdir, &fx, err, sizeof err), 0);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "cp " TINY "/vocab.json " TINY "/merges.txt '%s'/", mdir);
    CHECK_INT(system(cmd), 0);
    srv s;
    char url[512], b[4096];
    if (start(&s, url, sizeof url, dir, NULL)) return;
    resp r;
    snprintf(b, sizeof b, "{\"id\":\"slow\",\"path\":\"%s\"}", mdir);
    http(&s, "POST", "/api/models", NULL, b, &r);
    CHECK_INT(r.status, 201);
    resp_free(&r);
    /* tiny-a's SAE reads blocks.1.hook_resid_pre with d_in 64: it fits this model too. */
    http(&s, "POST", "/api/saes", NULL, "{\"modelId\":\"slow\",\"path\":\"tests/data/sae/tiny-a-res-standard\",\"setName\":\"std\"}", &r);
    CHECK_INT(r.status, 201);
    resp_free(&r);
    /* A long prompt makes every step attend over ~800 positions in 12 layers. */
    char prompt[3000] = "";
    for (int i = 0; i < 200; i++) strcat(prompt, "one two ");
    snprintf(b, sizeof b,
             "{\"prompt\":\"%s\",\"modelId\":\"slow\",\"features\":[{\"modelId\":\"slow\",\"layer\":\"1-std\",\"index\":4,\"strength\":5}],"
             "\"temperature\":1,\"n_tokens\":256,\"seed\":2,\"strength_multiplier\":1,\"stream\":true}",
             prompt);
    /* Time the whole request once (with the connection kept) to know how long it runs. */
    double t0 = now_s();
    http(&s, "POST", "/api/steer", NULL, b, &r);
    double full = now_s() - t0;
    CHECK_INT(r.status, 200);
    resp_free(&r);
    CHECK_INT(tdb_exec(url, "DELETE FROM steer_outputs"), 0);

    int fd = srv_connect(&s);
    char req[4500];
    int len = snprintf(req, sizeof req, "POST /api/steer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                        "Content-Length: %zu\r\n\r\n%s", strlen(b), b);
    CHECK(send(fd, req, (size_t)len, 0) == len);
    /* Read until two events have come, then hang up. */
    char buf[65536];
    size_t got = 0;
    int events = 0;
    while (events < 2 && got < sizeof buf - 1) {
        ssize_t k = recv(fd, buf + got, sizeof buf - 1 - got, 0);
        if (k <= 0) break;
        got += (size_t)k;
        buf[got] = '\0';
        events = 0;
        for (const char *p = buf; (p = strstr(p, "data: ")); p++) events++;
    }
    CHECK(events >= 2);
    CHECK_INT(running_tasks(&s), 1);
    t0 = now_s();
    close(fd);
    int running = 1;
    while (running && now_s() - t0 < 5) {
        usleep(20000);
        running = running_tasks(&s);
    }
    double stopped = now_s() - t0;
    CHECK_INT(running, 0);
    /* Well before the generation would have ended, and nothing was stored. */
    CHECK(stopped < full / 3);
    CHECK_INT(tdb_scalar(url, "SELECT count(*) FROM steer_outputs"), 0);
    if (t_failed_now()) fprintf(stdout, "    full request %.2f s, stopped %.3f s after the hang-up\n", full, stopped);
    srv_stop(&s);
    rm_rf(dir);
}
