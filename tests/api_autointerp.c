/* api_autointerp.c: AutoInterp end to end: a real saed and PostgreSQL, and a stand-in
 * OpenAI-compatible server over loopback (tests/llm_standin.c) whose scripted replies include
 * 429 with Retry-After, 500, a hang-up and malformed JSON. Every explainer and scorer runs;
 * the prompts sent are checked for their structure and values, scores against hand-computed
 * numbers, an undefined score is stored as null; a killed job resumes without asking again
 * for finished features, a re-run replaces only autointerp's own rows, cancel stops within a
 * request, the request budget stops a job. Feature rows and examples are written with SQL. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/llm_standin.h"
#include "tests/srv.h"
#include "tests/t.h"

#define KEY "autointerp-key-0123456789"
#define HDR_KEY "x-api-key: " KEY
#define LLM_KEY "sk-standin-secret-42"

typedef struct script {
    int faults;          /* the first requests fail in turn: 429 (Retry-After 1), 500, hang-up, malformed */
    int sim_zero;        /* the simulator predicts 0 everywhere */
    int delay_ms;
    double t[4096];      /* arrival time of each request */
} script;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Replies by what the prompt asks: an explanation, a simulation (10 on " cat", else 0),
 * a classification (all 1), or a recall_alt match (true when any activation is > 0). */
static void reply(void *ud, int n, json_t *req, standin_reply *out)
{
    script *sc = ud;
    if (n < 4096) sc->t[n] = now();
    out->delay_ms = sc->delay_ms;
    if (n < sc->faults) {
        switch (n) {
        case 0: out->status = 429; out->retry_after = 1; return;
        case 1: out->status = 500; return;
        case 2: out->hangup = 1; return;
        default: out->raw = strdup("{\"choices\": [{\"message\": "); return;
        }
    }
    const char *u = standin_last_user(req);
    const char *sys = json_string_value(json_object_get(json_array_get(json_object_get(req, "messages"), 0), "content"));
    if (!u || !sys) {
        out->status = 400;
        return;
    }
    if (!strncmp(u, "{\"to_find\"", 10)) {
        json_t *o = json_loads(u, 0, NULL), *a = json_object_get(o, "activations");
        for (size_t i = 0; i < json_array_size(a); i++) {
            json_t *e = json_array_get(a, i);
            int cat = !strcmp(json_string_value(json_object_get(e, "token")), " cat");
            json_object_set_new(e, "activation", json_integer(cat && !sc->sim_zero ? 10 : 0));
        }
        out->content = json_dumps(o, JSON_COMPACT);
        json_decref(o);
    } else if (!strncmp(u, "Latent explanation:", 19)) {
        int k = 0;
        for (const char *p = u; (p = strstr(p, "\nExample ")); p++) k++;
        char b[64] = "[";
        for (int i = 0; i < k; i++) strcat(b, i ? ",1" : "1");
        out->content = strdup(strcat(b, "]"));
    } else if (!strncmp(u, "{\"activations\"", 14)) {
        json_t *o = json_loads(u, 0, NULL), *a = json_object_get(o, "activations");
        int any = 0;
        for (size_t i = 0; i < json_array_size(a); i++) any |= json_number_value(json_object_get(json_array_get(a, i), "activation")) > 0;
        out->content = strdup(any ? "{\"match\":true,\"reason\":\"fires\"}" : "{\"match\":false,\"reason\":\"silent\"}");
        json_decref(o);
    } else if (strstr(sys, "[EXPLANATION]:")) {
        out->content = strdup("The marked tokens are cats.\n[EXPLANATION]: the word cat");
    } else if (strstr(u, "Neuron 5")) {
        out->content = strdup("Method 1: the same token.\nExplanation: cat.");
    } else {
        out->content = strdup(" the word cat.");
    }
}

static json_t *call(srv *s, const char *method, const char *path, const char *body, int want)
{
    resp r;
    http(s, method, path, (const char *const[]){HDR_KEY, NULL}, body, &r);
    if (r.status != want) t_fail(__FILE__, __LINE__, "%s %s: %d, expected %d: %.400s", method, path, r.status, want, r.body);
    json_t *j = resp_json(&r);
    resp_free(&r);
    return j;
}

static long long start_job(srv *s, const char *body)
{
    json_t *j = call(s, "POST", "/api/autointerp-jobs", body, 201);
    long long id = json_integer_value(json_object_get(j, "id"));
    json_decref(j);
    return id;
}

static json_t *wait_job(srv *s, long long id, int seconds)
{
    char path[64];
    snprintf(path, sizeof path, "/api/autointerp-jobs/%lld", id);
    for (int i = 0; i < seconds * 10; i++) {
        json_t *j = call(s, "GET", path, NULL, 200);
        const char *st = json_string_value(json_object_get(j, "state"));
        if (st && strcmp(st, "available") && strcmp(st, "running")) return j;
        json_decref(j);
        usleep(100000);
    }
    t_fail(__FILE__, __LINE__, "job %lld did not finish in %d s", id, seconds);
    return NULL;
}

/* Features 0..3 of tiny-a/1-std, each with 4 examples [Akj, " cat", " on", " mat"] whose
 * " cat" fires 4, 3, 2, 1 (k = feature, j = rank). */
static void seed_features(const char *url)
{
    CHECK_INT(tdb_exec(url, "INSERT INTO features (\"modelId\", layer, index, pos_str) SELECT 'tiny-a', '1-std', g::text,"
                            " ARRAY['\xe2\x96\x81kitten', 'cats'] FROM generate_series(0, 3) g;"
                            "INSERT INTO activations (\"modelId\", layer, index, tokens, values, \"maxValue\", \"maxValueTokenIndex\","
                            " \"minValue\") SELECT 'tiny-a', '1-std', k::text, ARRAY['A' || k || j, ' cat', ' on', ' mat'],"
                            " ARRAY[0, 4 - j, 0, 0]::float8[], 4 - j, 1, 0 FROM generate_series(0, 3) k, generate_series(0, 3) j"), 0);
}

/* tdb_scalar runs psql in double quotes: quoted identifiers need their quotes escaped. */
static long long scalar(const char *url, const char *sql)
{
    char q[2048];
    size_t n = 0;
    for (const char *p = sql; *p && n + 3 < sizeof q; p++) {
        if (*p == '"') q[n++] = '\\';
        q[n++] = *p;
    }
    q[n] = '\0';
    return tdb_scalar(url, q);
}

static int count_prompts(standin *st, int from, const char *needle)
{
    int n = 0;
    for (int i = from; i < standin_count(st); i++) {
        const char *u = standin_last_user(standin_request(st, i));
        n += u && strstr(u, needle) != NULL;
    }
    return n;
}

static void check_first_job(srv *s, const char *url, standin *st, script *sc, char *body, size_t bn)
{
    /* oai_token-act-pair + simulation, through the scripted faults */
    snprintf(body, bn,
             "{\"modelId\":\"tiny-a\",\"saeId\":\"1-std\",\"method\":\"oai_token-act-pair\",\"featureRange\":[0,4],"
             "\"nNegatives\":2,\"maxConcurrency\":1,\"temperature\":0,\"explainer\":{\"baseUrl\":\"http://127.0.0.1:%d\","
             "\"model\":\"gpt-4o-mini\",\"apiKeyEnv\":\"OPENAI_API_KEY\"},\"scorer\":{\"method\":\"simulation\"}}",
             standin_port(st));
    sc->faults = 4;
    long long id = start_job(s, body);
    json_t *j = wait_job(s, id, 60);
    CHECK_STR(json_string_value(json_object_get(j, "state")), "completed");
    json_t *pg = json_object_get(j, "progress");
    CHECK_INT(json_integer_value(json_object_get(pg, "featuresDone")), 4);
    CHECK_INT(json_integer_value(json_object_get(pg, "featuresTotal")), 4);
    /* 4 faults + 4 explanations + 4 features x 4 scored records (2 held-out + 2 negatives) */
    /* libcurl resends once, by itself, a request whose kept-alive connection was closed
     * unanswered (the hang-up): the stand-in sees it twice, the budget once */
    CHECK_INT(json_integer_value(json_object_get(pg, "requests")), 4 + 4 + 16 - 1);
    CHECK_INT(standin_count(st), 4 + 4 + 16);
    CHECK_INT(json_integer_value(json_object_get(pg, "tokensUsed")), 100 * (4 + 16));
    json_decref(j);
    CHECK(sc->t[1] - sc->t[0] >= 0.95);   /* Retry-After: 1 honoured */
    CHECK_STR(standin_auth(st, 0), "Bearer " LLM_KEY);
    CHECK_INT(scalar(url, "SELECT count(*) FROM jobs WHERE payload::text LIKE '%" LLM_KEY "%'"), 0);
    /* the prompt of feature 0: 3 few-shots, ranks 0 and 2 (4 and 2 -> 10 and 5) */
    json_t *req = NULL;
    for (int i = 0; i < standin_count(st) && !req; i++) {
        const char *u = standin_last_user(standin_request(st, i));
        if (u && strstr(u, "Neuron 4") && strstr(u, "A00")) req = standin_request(st, i);
    }
    CHECK(req != NULL);
    CHECK_INT(json_array_size(json_object_get(req, "messages")), 8);
    CHECK_STR(json_string_value(json_object_get(req, "model")), "gpt-4o-mini");
    CHECK_INT(json_integer_value(json_object_get(req, "max_tokens")), 60);
    CHECK_STR(standin_last_user(req), "\n\nNeuron 4\nActivations:\n<start>\nA00\t0\n cat\t10\n on\t0\n mat\t0\n<end>\n"
                                      "<start>\nA02\t0\n cat\t5\n on\t0\n mat\t0\n<end>\n\nExplanation of neuron 4 behavior: "
                                      "the main thing this neuron does is find");
    /* the simulator asked in JSON mode */
    int sims = 0;
    for (int i = 0; i < standin_count(st); i++) {
        json_t *q = standin_request(st, i);
        if (strncmp(standin_last_user(q) ?: "", "{\"to_find\":\"the word cat\"", 25)) continue;
        sims++;
        CHECK_STR(json_string_value(json_object_get(json_object_get(q, "response_format"), "type")), "json_object");
    }
    CHECK_INT(sims, 16);
    /* x = held-out 3,1 and two negatives (0s); y = 10 on every " cat": r = 0.5773502691896257 */
    CHECK_INT(scalar(url, "SELECT count(*) FROM explanations WHERE \"typeName\" = 'oai_token-act-pair'"
                              " AND description = 'the word cat' AND \"explanationModelName\" = 'gpt-4o-mini'"), 4);
    CHECK_INT(scalar(url, "SELECT count(*) FROM explanations WHERE abs(\"scoreV2\" - 0.5773502691896257) < 1e-9"), 4);
    CHECK_INT(scalar(url, "SELECT count(*) FROM explanation_scores WHERE \"explanationScoreTypeName\" = 'oai_simulation'"
                              " AND abs(value - 0.5773502691896257) < 1e-9"), 4);
    /* visible on the feature page */
    j = call(s, "GET", "/api/feature/tiny-a/1-std/2", NULL, 200);
    json_t *e = json_array_get(json_object_get(j, "explanations"), 0);
    CHECK_STR(json_string_value(json_object_get(e, "description")), "the word cat");
    CHECK_STR(json_string_value(json_object_get(e, "typeName")), "oai_token-act-pair");
    json_decref(j);
}

static void check_other_methods(srv *s, const char *url, standin *st, script *sc, char *body, size_t bn)
{
    /* np_max-act-logits with a simulator that predicts nothing: r undefined -> null */
    sc->faults = 0;
    sc->sim_zero = 1;
    int from = standin_count(st);
    snprintf(body, bn,
             "{\"modelId\":\"tiny-a\",\"saeId\":\"1-std\",\"method\":\"np_max-act-logits\",\"featureRange\":[0,2],\"nNegatives\":0,"
             "\"explainer\":{\"baseUrl\":\"http://127.0.0.1:%d/v1\",\"model\":\"gpt-4.1\"},\"scorer\":{\"method\":\"simulation\"}}",
             standin_port(st));
    json_decref(wait_job(s, start_job(s, body), 60));
    sc->sim_zero = 0;
    CHECK_INT(count_prompts(st, from, "Neuron 5\n\n<MAX_ACTIVATING_TOKENS>\ncat\ncat\n</MAX_ACTIVATING_TOKENS>"), 2);
    CHECK_INT(count_prompts(st, from, "<TOP_POSITIVE_LOGITS>\n kitten\ncats\n</TOP_POSITIVE_LOGITS>"), 2);
    CHECK_INT(scalar(url, "SELECT count(*) FROM explanations WHERE \"typeName\" = 'np_max-act-logits' AND description = 'cat'"
                              " AND \"scoreV2\" IS NULL"), 2);
    CHECK_INT(scalar(url, "SELECT count(*) FROM explanation_scores s JOIN explanations e ON e.id = s.\"explanationId\""
                              " WHERE e.\"typeName\" = 'np_max-act-logits' AND s.value IS NULL"), 2);
    /* Delphi's explainer + fuzz: all answers 1 -> TPR 1, TNR 0 -> balanced accuracy 0.5 */
    from = standin_count(st);
    snprintf(body, bn,
             "{\"modelId\":\"tiny-a\",\"saeId\":\"1-std\",\"method\":\"eleuther_delphi\",\"featureRange\":[3,4],\"nNegatives\":3,"
             "\"explainer\":{\"baseUrl\":\"http://127.0.0.1:%d\",\"model\":\"claude-4-5-haiku\"},\"scorer\":{\"method\":\"fuzz\"}}",
             standin_port(st));
    json_decref(wait_job(s, start_job(s, body), 60));
    CHECK_INT(count_prompts(st, from, "Example 1: A30<< cat>> on mat\nActivations: (\" cat\" : 10)\nExample 2: A32<< cat>>"), 1);
    CHECK_INT(count_prompts(st, from, "Latent explanation: the word cat\n\nText examples:\n\nExample 0:"), 1);
    CHECK_INT(scalar(url, "SELECT count(*) FROM explanations e JOIN explanation_scores s ON s.\"explanationId\" = e.id"
                              " WHERE e.\"typeName\" = 'eleuther_acts_top20' AND e.index = '3' AND s.\"explanationScoreTypeName\""
                              " = 'eleuther_fuzz' AND s.value = 0.5 AND e.\"scoreV2\" IS NULL"), 1);
    /* the scoring routes: recall_alt (2 activating matched, 1 silent not) = 1; detection 0.5 */
    snprintf(body, bn,
             "{\"explanation\":\"cats\",\"method\":\"recall_alt\",\"scorer\":{\"baseUrl\":\"http://127.0.0.1:%d\",\"model\":\"m\"},"
             "\"activations\":[{\"tokens\":[\"a\",\" cat\"],\"values\":[0,2]},{\"tokens\":[\"b\",\" cat\"],\"values\":[0,1]},"
             "{\"tokens\":[\"dog\"],\"values\":[0]}]}", standin_port(st));
    json_t *j = call(s, "POST", "/api/explanation/score", body, 200);
    CHECK_NEAR(json_number_value(json_object_get(j, "score")), 1.0, 1e-12);
    json_decref(j);
    snprintf(body, bn,
             "{\"explanation\":\"cats\",\"scorer\":{\"baseUrl\":\"http://127.0.0.1:%d\",\"model\":\"m\"},"
             "\"activations\":[{\"tokens\":[\"a\",\" cat\",\" on\",\" mat\"],\"values\":[0,3,0,0]},"
             "{\"tokens\":[\"b\",\" cat\",\" on\",\" mat\"],\"values\":[0,1,0,0]}]}", standin_port(st));
    j = call(s, "POST", "/api/explanation/score", body, 200);
    CHECK_NEAR(json_number_value(json_object_get(j, "score")), 0.8660254037844386, 1e-12);
    json_t *sim = json_array_get(json_object_get(j, "simulations"), 0);
    CHECK_NEAR(json_number_value(json_array_get(json_object_get(json_object_get(sim, "simulation"), "expected_activations"), 1)), 10, 0);
    json_decref(j);
    /* Neuronpedia's autointerp-server routes, against SAED_LLM_BASE_URL with the caller's key */
    j = call(s, "POST", "/v1/score/fuzz-detection",
             "{\"explanation\":\"cats\",\"openrouterKey\":\"or-key\",\"model\":\"m\",\"type\":\"DETECTION\",\"activations\":"
             "[{\"tokens\":[\"a\",\" cat\"],\"values\":[0,2]},{\"tokens\":[\"dog\"],\"values\":[0]}]}", 200);
    CHECK_NEAR(json_number_value(json_object_get(j, "score")), 0.5, 1e-12);
    CHECK_INT(json_array_size(json_object_get(j, "breakdown")), 2);
    json_decref(j);
    CHECK_STR(standin_auth(st, standin_count(st) - 1), "Bearer or-key");
    j = call(s, "POST", "/v1/explain/default",
             "{\"openrouterKey\":\"or-key\",\"model\":\"m\",\"activations\":[{\"tokens\":[\"a\",\" cat\"],\"values\":[0,2]}]}", 200);
    CHECK_STR(json_string_value(json_object_get(j, "explanation")), "the word cat");
    json_decref(j);
    json_decref(call(s, "POST", "/v1/score/fuzz-detection",
                     "{\"explanation\":\"c\",\"openrouterKey\":\"k\",\"model\":\"m\",\"type\":\"FUZZ\",\"activations\":"
                     "[{\"tokens\":[\"a\"],\"values\":[1]}]}", 400));
    j = call(s, "POST", "/v1/score/embedding", "{\"explanation\":\"c\",\"activations\":[]}", 501);
    CHECK_CONTAINS(json_string_value(json_object_get(j, "error")), "no embedding model");
    json_decref(j);
}

static void check_validation(srv *s, standin *st)
{
    char body[600];
    json_decref(call(s, "POST", "/api/autointerp-jobs", "{\"modelId\":\"tiny-a\",\"saeId\":\"1-std\",\"method\":\"guess\"}", 400));
    snprintf(body, sizeof body, "{\"modelId\":\"tiny-a\",\"saeId\":\"1-std\",\"method\":\"oai_token-act-pair\","
             "\"explainer\":{\"baseUrl\":\"http://127.0.0.1:%d\",\"model\":\"m\",\"apiKeyEnv\":\"HOME\"}}", standin_port(st));
    json_t *j = call(s, "POST", "/api/autointerp-jobs", body, 400);
    CHECK_CONTAINS(json_string_value(json_object_get(j, "message")), "explainer.apiKeyEnv");
    json_decref(j);
    snprintf(body, sizeof body, "{\"modelId\":\"tiny-a\",\"saeId\":\"9-none\",\"method\":\"oai_token-act-pair\","
             "\"explainer\":{\"baseUrl\":\"http://127.0.0.1:%d\",\"model\":\"m\"}}", standin_port(st));
    json_decref(call(s, "POST", "/api/autointerp-jobs", body, 404));
    json_decref(call(s, "POST", "/api/autointerp-jobs", "{\"modelId\":\"tiny-a\",\"saeId\":\"1-std\",\"method\":\"np_max-act-logits\","
                                                        "\"explainer\":{\"baseUrl\":\"ftp://x\",\"model\":\"m\"}}", 400));
    json_decref(call(s, "POST", "/api/explanation/score", "{\"explanation\":\"x\",\"activations\":[{\"tokens\":[\"a\"],\"values\":[]}]}", 400));
    j = call(s, "GET", "/api/autointerp-jobs?state=completed", NULL, 200);
    CHECK(json_array_size(j) >= 3);
    CHECK_STR(json_string_value(json_object_get(json_array_get(j, 0), "kind")), "autointerp");
    json_decref(j);
    json_decref(call(s, "POST", "/api/autointerp-jobs/1/cancel", NULL, 409));
    json_decref(call(s, "GET", "/api/autointerp-jobs/999999", NULL, 404));
}

/* `saed autointerp --job FILE`: the same job, queued and run in that process; a bad job file is
 * refused naming the field, with exit 2, and queues nothing. */
static void check_cli(const char *url, standin *st)
{
    const char *bin = getenv("SAED_BIN") ? getenv("SAED_BIN") : "build/saed";
    char path[] = "/tmp/saed-ai-job-XXXXXX", cmd[2048];
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0) return;
    FILE *f = fdopen(fd, "w");
    fprintf(f, "{\"modelId\":\"tiny-a\",\"saeId\":\"1-std\",\"method\":\"oai_token-act-pair\",\"featureRange\":[0,2],"
               "\"explainer\":{\"baseUrl\":\"http://127.0.0.1:%d/v1\",\"model\":\"cli-model\"}}", standin_port(st));
    fclose(f);
    long long before = scalar(url, "SELECT count(*) FROM jobs");
    snprintf(cmd, sizeof cmd, "DATABASE_URL='%s' %s autointerp --job %s > /tmp/saed-ai-cli.out 2>&1", url, bin, path);
    CHECK_INT(system(cmd), 0);
    CHECK_INT(scalar(url, "SELECT count(*) FROM explanations WHERE \"explanationModelName\" = 'cli-model'"
                              " AND \"jobId\" IS NOT NULL AND description = 'the word cat'"), 2);
    CHECK_INT(scalar(url, "SELECT count(*) FROM jobs WHERE kind = 'autointerp' AND state = 'completed'"
                              " AND payload->'explainer'->>'model' = 'cli-model'"), 1);
    f = fopen(path, "w");
    fputs("{\"modelId\":\"tiny-a\",\"saeId\":\"1-std\",\"method\":\"guess\"}", f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "DATABASE_URL='%s' %s autointerp --job %s > /tmp/saed-ai-cli.out 2>&1", url, bin, path);
    int rc = system(cmd);
    CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 2);
    CHECK_INT(scalar(url, "SELECT count(*) FROM jobs"), before + 1);
    FILE *o = fopen("/tmp/saed-ai-cli.out", "r");
    char out[1024] = "";
    if (o) {
        size_t n = fread(out, 1, sizeof out - 1, o);
        out[n] = '\0';
        fclose(o);
    }
    CHECK_CONTAINS(out, "method");
    unlink(path);
    unlink("/tmp/saed-ai-cli.out");
}

/* Killed mid-way, resumed by the next server; then a re-run replaces autointerp's rows only;
 * cancel; budget. */
static void check_resume_cancel(srv *s, const char *url, const char *const *args, standin *st, script *sc, char *body, size_t bn)
{
    CHECK_INT(tdb_exec(url, "DELETE FROM explanations"), 0);
    sc->delay_ms = 300;
    snprintf(body, bn,
             "{\"modelId\":\"tiny-a\",\"saeId\":\"1-std\",\"method\":\"oai_token-act-pair\",\"maxConcurrency\":1,"
             "\"explainer\":{\"baseUrl\":\"http://127.0.0.1:%d\",\"model\":\"gpt-4o-mini\"}}", standin_port(st));
    long long id = start_job(s, body);
    for (int i = 0; i < 100 && scalar(url, "SELECT count(*) FROM explanations") < 2; i++) usleep(50000);
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    long long before = scalar(url, "SELECT count(*) FROM explanations");
    CHECK(before >= 2 && before < 4);
    char done_sql[300];
    snprintf(done_sql, sizeof done_sql, "SELECT string_agg(index, ',' ORDER BY index) FROM explanations WHERE \"jobId\" = %lld", id);
    int from = standin_count(st);
    CHECK_INT(srv_start(s, url, args), 0);
    json_t *j = wait_job(s, id, 60);
    CHECK_STR(json_string_value(json_object_get(j, "state")), "completed");
    CHECK_INT(json_integer_value(json_object_get(json_object_get(j, "progress"), "featuresDone")), 4);
    json_decref(j);
    /* no explanation asked again for the features finished before the kill */
    CHECK_INT(count_prompts(st, from, "A00\t0"), 0);
    CHECK_INT(count_prompts(st, from, "A10\t0"), 0);
    CHECK_INT(scalar(url, "SELECT count(*) FROM explanations"), 4);
    /* re-run: a hand-written explanation of the same type and model survives */
    CHECK_INT(tdb_exec(url, "INSERT INTO explanations (\"modelId\", layer, index, description, \"typeName\", \"explanationModelName\")"
                            " VALUES ('tiny-a', '1-std', '0', 'written by hand', 'oai_token-act-pair', 'gpt-4o-mini')"), 0);
    sc->delay_ms = 0;
    long long id2 = start_job(s, body);
    json_decref(wait_job(s, id2, 60));
    char q[200];
    snprintf(q, sizeof q, "SELECT count(*) FROM explanations WHERE \"jobId\" = %lld", id2);
    CHECK_INT(scalar(url, q), 4);
    CHECK_INT(scalar(url, "SELECT count(*) FROM explanations"), 5);
    CHECK_INT(scalar(url, "SELECT count(*) FROM explanations WHERE description = 'written by hand'"), 1);
    /* cancel: one slow request in flight, nothing sent after it */
    sc->delay_ms = 700;
    long long id3 = start_job(s, body);
    int n0 = standin_count(st);
    for (int i = 0; i < 100 && standin_count(st) == n0; i++) usleep(20000);
    char path[80];
    snprintf(path, sizeof path, "/api/autointerp-jobs/%lld/cancel", id3);
    json_decref(call(s, "POST", path, NULL, 200));
    int at_cancel = standin_count(st);
    j = wait_job(s, id3, 30);
    CHECK_STR(json_string_value(json_object_get(j, "state")), "cancelled");
    json_decref(j);
    CHECK(standin_count(st) - at_cancel <= 1);
    /* budget: 2 requests allowed -> 2 features, then the job fails saying why */
    sc->delay_ms = 0;
    CHECK_INT(tdb_exec(url, "DELETE FROM explanations"), 0);
    snprintf(body, bn,
             "{\"modelId\":\"tiny-a\",\"saeId\":\"1-std\",\"method\":\"oai_token-act-pair\",\"maxConcurrency\":1,\"maxRequests\":2,"
             "\"maxAttempts\":1,\"explainer\":{\"baseUrl\":\"http://127.0.0.1:%d\",\"model\":\"gpt-4o-mini\"}}", standin_port(st));
    j = wait_job(s, start_job(s, body), 30);
    CHECK_STR(json_string_value(json_object_get(j, "state")), "failed");
    CHECK_CONTAINS(json_string_value(json_object_get(j, "lastError")), "budget spent: 2 request(s)");
    json_decref(j);
    CHECK_INT(scalar(url, "SELECT count(*) FROM explanations"), 2);
}

TEST(api_autointerp)
{
    static script sc;
    memset(&sc, 0, sizeof sc);
    standin *st = standin_start(reply, &sc);
    CHECK(st != NULL);
    if (!st) return;
    setenv("OPENAI_API_KEY", LLM_KEY, 1);
    char base[64];
    snprintf(base, sizeof base, "http://127.0.0.1:%d", standin_port(st));
    const char *const args[] = {"--data-roots", "tests/data", "--workers", "1", "--api-keys", KEY, "--job-lease", "3", "--llm-retries", "5",
                                "--llm-base-url", base, "--llm-model", "m", NULL};
    const char *const first[] = {"--migrate", "--data-roots", "tests/data", "--workers", "1", "--api-keys", KEY, "--job-lease", "3", "--llm-retries", "5",
                                 "--llm-base-url", base, "--llm-model", "m", NULL};
    char url[512];
    srv s;
    if (srv_fresh(&s, url, sizeof url, first)) {
        standin_stop(st);
        return;
    }
    json_decref(call(&s, "POST", "/api/models", "{\"id\":\"tiny-a\",\"path\":\"tests/data/models/tiny-a\"}", 201));
    json_decref(call(&s, "POST", "/api/saes", "{\"modelId\":\"tiny-a\",\"path\":\"tests/data/sae/tiny-a-res-standard\",\"setName\":\"std\"}", 201));
    seed_features(url);
    char body[2000];
    check_first_job(&s, url, st, &sc, body, sizeof body);
    check_other_methods(&s, url, st, &sc, body, sizeof body);
    check_validation(&s, st);
    check_cli(url, st);
    check_resume_cancel(&s, url, args, st, &sc, body, sizeof body);
    CHECK_INT(srv_stop(&s), 0);
    unsetenv("OPENAI_API_KEY");
    standin_stop(st);
}
