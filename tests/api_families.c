/* api_families.c: every engine path end to end on each rotary family over real HTTP and
 * PostgreSQL: a random llama (BF16 weights, GQA), qwen2 (q/k/v biases), gemma2 (soft-caps,
 * sliding window, head_dim ≠ C/NH) and gpt_neox (partial rotary, parallel residual) checkpoint
 * with GPT-2's tokenizer files is registered with an SAE at blocks.1.hook_resid_pre; a
 * dashboard job runs; the feature page, live activations (equal to `saed encode`), search,
 * steering and the Neuronpedia export answer. Forward values themselves are held to the
 * float64 reference in unit_families.c. */
#include <jansson.h>  // defines: json_object_get
#include <stdio.h>    // defines: snprintf
#include <stdlib.h>   // defines: mkdtemp, system
#include <string.h>   // defines: strcmp
#include <sys/stat.h> // defines: mkdir

#include "tests/srv.h"
#include "tests/t.h"
#include "tools/fixture.h"

#define SAE_STD "tests/data/sae/tiny-a-res-standard"
#define TEXT "The quick brown fox jumps over the lazy dog near the river bank"

static void fam_post(srv *s, const char *path, const char *body, int want, resp *r)
{
    http(s, "POST", path, NULL, body, r);
    if (r->status != want)
        t_fail(__FILE__, __LINE__, "POST %s %.200s: %d, wanted %d: %.400s", path, body, r->status, want, r->body);
}

/* A steer-chat request: model, DEFAULT's and STEERED's user message, feature model, index,
 * strength, steer_special_tokens, then more fields (",..." or ""). */
#define STEER_CHAT_BODY                                                                                                \
    "{\"modelId\":\"%s\",\"defaultChatMessages\":[{\"role\":\"user\",\"content\":\"%s\"}],"                              \
    "\"steeredChatMessages\":[{\"role\":\"user\",\"content\":\"%s\"}],\"features\":[{\"modelId\":\"%s\","                \
    "\"layer\":\"1-std\",\"index\":%d,\"strength\":%d}],\"temperature\":0,\"n_tokens\":6,\"seed\":16,"                  \
    "\"strength_multiplier\":1,\"steer_special_tokens\":%s%s}"

/* Llama-3's chat format for one user turn with the generation prompt, as Meta documents it. */
#define LLAMA3_CHAT(user)                                                                                              \
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n" user                                               \
    "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"

/* steer-chat on a model with Llama-3's tokenizer and chat template: the conversation rendered
 * in Llama-3's format, each run's raw = that prompt + its generation, chatTemplate = the
 * conversation + the assistant turn; DEFAULT equals /api/steer's DEFAULT on the rendered
 * prompt (the same ids: it starts with the BOS), and with steer_special_tokens true STEERED
 * equals /api/steer's STEERED too (no position left out); stored and answered again. */
static void fam_steer_chat(srv *s, const char *id, int f)
{
    char body[2048];
    resp r;
    snprintf(body, sizeof body, STEER_CHAT_BODY, id, "Hello there", "Hello there", id, f, 80, "true", "");
    fam_post(s, "/api/steer-chat", body, 200, &r);
    json_t *j = resp_json(&r), *sj = json_object_get(j, "STEERED"), *dj = json_object_get(j, "DEFAULT");
    const char *sraw = json_string_value(json_object_get(sj, "raw")), *draw = json_string_value(json_object_get(dj, "raw"));
    const char *want = LLAMA3_CHAT("Hello there");
    CHECK(sraw && draw && !strncmp(sraw, want, strlen(want)) && !strncmp(draw, want, strlen(want)));
    char *sgen = strdup(sraw ? sraw + strlen(want) : ""), *dgen = strdup(draw ? draw + strlen(want) : "");
    json_t *dchat = json_object_get(dj, "chatTemplate");
    CHECK_INT(json_array_size(dchat), 2);
    CHECK_STR(json_string_value(json_object_get(json_array_get(dchat, 1), "role")), "assistant");
    CHECK_STR(json_string_value(json_object_get(json_array_get(dchat, 1), "content")), dgen);
    CHECK(json_is_true(json_object_get(json_object_get(j, "settings"), "steer_special_tokens")));
    char id1[80];
    snprintf(id1, sizeof id1, "%s", json_string_value(json_object_get(j, "id")) ? json_string_value(json_object_get(j, "id")) : "");
    CHECK(id1[0]);
    json_decref(j);
    resp_free(&r);

    /* the same ids through /api/steer: the rendered prompt, newlines escaped for JSON */
    char prompt[512] = "";
    for (const char *p = want, *end = want + strlen(want); p < end; p++) {
        size_t n = strlen(prompt);
        if (*p == '\n') snprintf(prompt + n, sizeof prompt - n, "\\n");
        else snprintf(prompt + n, sizeof prompt - n, "%c", *p);
    }
    snprintf(body, sizeof body,
             "{\"prompt\":\"%s\",\"modelId\":\"%s\",\"features\":[{\"modelId\":\"%s\",\"layer\":\"1-std\",\"index\":%d,"
             "\"strength\":80}],\"temperature\":0,\"n_tokens\":6,\"seed\":16,\"strength_multiplier\":1}",
             prompt, id, id, f);
    fam_post(s, "/api/steer", body, 200, &r);
    j = resp_json(&r);
    CHECK_STR(json_string_value(json_object_get(j, "DEFAULT")), dgen);
    CHECK_STR(json_string_value(json_object_get(j, "STEERED")), sgen);
    json_decref(j);
    resp_free(&r);

    /* answered from the store: the same id; steer_special_tokens false is another request */
    snprintf(body, sizeof body, STEER_CHAT_BODY, id, "Hello there", "Hello there", id, f, 80, "true", "");
    fam_post(s, "/api/steer-chat", body, 200, &r);
    j = resp_json(&r);
    CHECK_STR(json_string_value(json_object_get(j, "id")), id1);
    json_decref(j);
    resp_free(&r);
    snprintf(body, sizeof body, STEER_CHAT_BODY, id, "Hello there", "Hello there", id, f, 80, "false", "");
    fam_post(s, "/api/steer-chat", body, 200, &r);
    j = resp_json(&r);
    const char *id2 = json_string_value(json_object_get(j, "id"));
    if (id2 && !strcmp(id2, id1)) t_fail(__FILE__, __LINE__, "steer_special_tokens false was answered by the true output");
    char dwant[1024];
    snprintf(dwant, sizeof dwant, "%s%s", want, dgen);
    CHECK_STR(json_string_value(json_object_get(json_object_get(j, "DEFAULT"), "raw")), dwant);
    json_decref(j);
    resp_free(&r);

    /* two conversations: each run renders its own */
    snprintf(body, sizeof body, STEER_CHAT_BODY, id, "Hi", "Bye", id, f, 80, "true", "");
    fam_post(s, "/api/steer-chat", body, 200, &r);
    j = resp_json(&r);
    const char *d2 = json_string_value(json_object_get(json_object_get(j, "DEFAULT"), "raw"));
    const char *s2 = json_string_value(json_object_get(json_object_get(j, "STEERED"), "raw"));
    CHECK(d2 && !strncmp(d2, LLAMA3_CHAT("Hi"), strlen(LLAMA3_CHAT("Hi"))));
    CHECK(s2 && !strncmp(s2, LLAMA3_CHAT("Bye"), strlen(LLAMA3_CHAT("Bye"))));
    json_decref(j);
    resp_free(&r);

    /* streamed: events, the last one the full answer */
    snprintf(body, sizeof body, STEER_CHAT_BODY, id, "Stream", "Stream", id, f, 80, "true", ",\"stream\":true");
    fam_post(s, "/api/steer-chat", body, 200, &r);
    CHECK_CONTAINS(r.body, "data: {");
    CHECK_CONTAINS(r.body, "\"chatTemplate\"");
    const char *last = r.body ? strstr(r.body, "\"shareUrl\":\"/api/steer/") : NULL;
    CHECK(last != NULL);
    resp_free(&r);

    /* bad requests name the field */
    snprintf(body, sizeof body, "{\"modelId\":\"%s\",\"defaultChatMessages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
             "\"steeredChatMessages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"features\":[{\"modelId\":\"%s\","
             "\"layer\":\"1-std\",\"index\":%d,\"strength\":1}],\"temperature\":0,\"n_tokens\":6,\"seed\":16,"
             "\"strength_multiplier\":1}", id, id, f);
    fam_post(s, "/api/steer-chat", body, 400, &r);
    CHECK_CONTAINS(r.body, "steer_special_tokens");
    resp_free(&r);
    snprintf(body, sizeof body, "{\"modelId\":\"%s\",\"defaultChatMessages\":[{\"role\":\"robot\",\"content\":\"hi\"}]}", id);
    fam_post(s, "/api/steer-chat", body, 400, &r);
    CHECK_CONTAINS(r.body, "defaultChatMessages[0].role");
    resp_free(&r);
    free(sgen);
    free(dgen);
}

/* tok_dir: a folder with tokenizer.json + tokenizer_config.json to use instead of GPT-2's
 * vocabulary files (NULL: GPT-2's). */
static void fam_end_to_end_tok(const fixture_rotary *fx, const char *tok_dir);
static void fam_end_to_end(const fixture_rotary *fx) { fam_end_to_end_tok(fx, NULL); }

static void fam_end_to_end_tok(const fixture_rotary *fx, const char *tok_dir)
{
    char dir[64], mdir[128], corpus[160], err[512], cmd[512], roots[200], body[2048], path[256];
    snprintf(dir, sizeof dir, "/tmp/saed-fam-XXXXXX");
    if (!mkdtemp(dir)) {
        t_fail(__FILE__, __LINE__, "mkdtemp");
        return;
    }
    snprintf(mdir, sizeof mdir, "%s/%s", dir, fx->model_type);
    mkdir(mdir, 0755);
    if (fixture_rotary_write(mdir, fx, err, sizeof err)) {
        t_fail(__FILE__, __LINE__, "%s: %s", fx->model_type, err);
        return;
    }
    if (tok_dir)
        snprintf(cmd, sizeof cmd, "cp '%s/tokenizer.json' '%s/tokenizer_config.json' '%s/'", tok_dir, tok_dir, mdir);
    else
        snprintf(cmd, sizeof cmd, "cp tests/data/gpt2-tokenizer/encoder.json '%s/vocab.json' && cp tests/data/gpt2-tokenizer/vocab.bpe '%s/merges.txt'",
                 mdir, mdir);
    CHECK_INT(system(cmd), 0);
    snprintf(corpus, sizeof corpus, "%s/corpus.txt", dir);
    tests_write_corpus(corpus, 40, 30, 11);
    snprintf(roots, sizeof roots, "tests/data:%s", dir);
    srv s;
    char url[512];
    if (srv_fresh(&s, url, sizeof url, (const char *const[]){"--migrate", "--data-roots", roots, NULL})) goto out;
    const char *id = fx->model_type;
    resp r;
    snprintf(body, sizeof body, "{\"id\":\"%s\",\"path\":\"%s\"}", id, mdir);
    fam_post(&s, "/api/models", body, 201, &r);
    json_t *j = resp_json(&r);
    CHECK_STR(json_string_value(json_object_get(j, "architecture")), fx->model_type);
    json_decref(j);
    resp_free(&r);
    snprintf(body, sizeof body, "{\"modelId\":\"%s\",\"path\":\"" SAE_STD "\",\"setName\":\"std\"}", id);
    fam_post(&s, "/api/saes", body, 201, &r);
    resp_free(&r);

    /* A dashboard job over the corpus. */
    snprintf(body, sizeof body, "{\"modelId\":\"%s\",\"saeId\":\"1-std\",\"dataset\":{\"path\":\"%s\",\"format\":\"text\"},"
             "\"nPrompts\":24,\"nTokensInPrompt\":16,\"batchPrompts\":8,\"seed\":3}", id, corpus);
    fam_post(&s, "/api/dashboard-jobs", body, 201, &r);
    j = resp_json(&r);
    long long job = (long long)json_integer_value(json_object_get(j, "id"));
    json_decref(j);
    resp_free(&r);
    json_t *done = srv_wait_job(&s, job, 120);
    const char *st = json_string_value(json_object_get(done, "state"));
    if (!st || strcmp(st, "completed")) t_fail(__FILE__, __LINE__, "%s: job ended %s: %s", id, st ? st : "(none)",
                                               done ? json_dumps(done, 0) : "");
    json_decref(done);

    /* The feature that fires most on TEXT's last token: its page, live values, search, steer. */
    int T = 0;
    float *ref = tests_saed_encode(mdir, SAE_STD, TEXT, 1, 512, &T);
    if (!ref) goto stop;
    int f = 0;
    for (int i = 1; i < 512; i++)
        if (ref[(size_t)(T - 1) * 512 + i] > ref[(size_t)(T - 1) * 512 + f]) f = i;
    CHECK(ref[(size_t)(T - 1) * 512 + f] > 0);
    int fired = -1; /* a feature the job saw fire */
    for (int i = 0; i < 64 && fired < 0; i++) {
        snprintf(path, sizeof path, "/api/feature/%s/1-std/%d", id, i);
        http(&s, "GET", path, NULL, NULL, &r);
        CHECK_INT(r.status, 200);
        j = resp_json(&r);
        if (json_array_size(json_object_get(j, "activations")) > 0 && json_number_value(json_object_get(j, "maxActApprox")) > 0)
            fired = i;
        json_decref(j);
        resp_free(&r);
    }
    CHECK(fired >= 0);

    snprintf(body, sizeof body, "{\"feature\":{\"modelId\":\"%s\",\"source\":\"1-std\",\"index\":\"%d\"},\"customText\":\"" TEXT "\"}",
             id, f);
    fam_post(&s, "/api/activation/new", body, 200, &r);
    j = resp_json(&r);
    json_t *vals = json_object_get(j, "values");
    CHECK_INT(json_array_size(vals), T - 1); /* the BOS is not shown */
    for (int t = 1; t < T && (size_t)(t - 1) < json_array_size(vals); t++) {
        float got = (float)json_number_value(json_array_get(vals, (size_t)t - 1)), want = ref[(size_t)t * 512 + f];
        if (got != want) t_fail(__FILE__, __LINE__, "%s feature %d token %d: %.9g != saed encode's %.9g", id, f, t, got, want);
    }
    json_decref(j);
    resp_free(&r);

    if (!tok_dir) {
        /* GPT-2's vocabulary files: no chat template */
        snprintf(body, sizeof body, STEER_CHAT_BODY, id, "hi", "hi", id, f, 80, "false", "");
        fam_post(&s, "/api/steer-chat", body, 400, &r);
        CHECK_CONTAINS(r.body, "no_chat_template");
        resp_free(&r);
    }
    if (tok_dir) {
        fam_steer_chat(&s, id, f);
        /* the model's own BOS first, marked special, and the token strings are the tokenizer's */
        snprintf(body, sizeof body, "{\"modelId\":\"%s\",\"source\":\"1-std\",\"text\":\"" TEXT "\",\"numResults\":2,"
                 "\"ignoreBos\":false}", id);
        fam_post(&s, "/api/search-topk-by-token", body, 200, &r);
        j = resp_json(&r);
        json_t *rows = json_object_get(j, "results"); /* single text: {source, results} */
        CHECK_INT(json_array_size(rows), T);
        CHECK_STR(json_string_value(json_object_get(json_array_get(rows, 0), "token")), "<|begin_of_text|>");
        CHECK(json_is_true(json_object_get(json_array_get(rows, 0), "isSpecial")));
        CHECK(json_is_false(json_object_get(json_array_get(rows, 1), "isSpecial")));
        CHECK_STR(json_string_value(json_object_get(json_array_get(rows, 1), "token")), "The");
        json_decref(j);
        resp_free(&r);
    }
    snprintf(body, sizeof body, "{\"modelId\":\"%s\",\"sourceSet\":\"std\",\"text\":\"" TEXT "\",\"numResults\":3}", id);
    fam_post(&s, "/api/search-all", body, 200, &r);
    j = resp_json(&r);
    CHECK_INT(json_array_size(json_object_get(j, "result")), 3);
    CHECK_INT(json_array_size(json_object_get(j, "tokens")), T);
    json_decref(j);
    resp_free(&r);

    snprintf(body, sizeof body,
             "{\"prompt\":\"The quick brown fox\",\"modelId\":\"%s\",\"features\":[{\"modelId\":\"%s\",\"layer\":\"1-std\","
             "\"index\":%d,\"strength\":80}],\"temperature\":0,\"n_tokens\":8,\"seed\":16,\"strength_multiplier\":1}",
             id, id, f);
    fam_post(&s, "/api/steer", body, 200, &r);
    j = resp_json(&r);
    const char *steered = json_string_value(json_object_get(j, "STEERED")), *def = json_string_value(json_object_get(j, "DEFAULT"));
    CHECK(steered && def && strlen(def) > 0);
    if (steered && def && !strcmp(steered, def)) t_fail(__FILE__, __LINE__, "%s: steering at strength 80 changed nothing", id);
    json_decref(j);
    resp_free(&r);

    snprintf(path, sizeof path, "/api/export/%s/1-std?format=neuronpedia", id);
    http(&s, "GET", path, NULL, NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK(r.len > 100);
    resp_free(&r);
    free(ref);
stop:
    srv_stop(&s);
out:
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) {}
}

TEST(api_families_llama_bf16_end_to_end)
{
    fixture_rotary fx = {.model_type = "llama", .d_model = 64, .n_layer = 2, .n_head = 4, .n_kv_head = 2, .n_ctx = 128,
                         .vocab = 50257, .bf16 = 1, .seed = 21};
    fam_end_to_end(&fx);
}

TEST(api_families_qwen2_end_to_end)
{
    fixture_rotary fx = {.model_type = "qwen2", .d_model = 64, .n_layer = 2, .n_head = 4, .n_kv_head = 1, .n_ctx = 128,
                         .vocab = 50257, .seed = 22};
    fam_end_to_end(&fx);
}

TEST(api_families_gemma2_end_to_end)
{
    fixture_rotary fx = {.model_type = "gemma2", .d_model = 64, .n_layer = 2, .n_head = 4, .n_kv_head = 2, .head_dim = 24,
                         .d_mlp = 96, .n_ctx = 128, .vocab = 50257, .seed = 23};
    fam_end_to_end(&fx);
}

TEST(api_families_gpt_neox_end_to_end)
{
    fixture_rotary fx = {.model_type = "gpt_neox", .d_model = 64, .n_layer = 2, .n_head = 4, .n_ctx = 128, .vocab = 50257,
                         .seed = 24};
    fam_end_to_end(&fx);
}

/* The real Llama-3 tokenizer files (npm, tests/tok/fetch.sh) on a llama checkpoint of their
 * vocabulary: <|begin_of_text|> is the prompts' BOS in the job, the live routes and steering. */
TEST(api_families_llama3_tokenizer_end_to_end)
{
    const char *cache = getenv("SAED_TOKENIZER_CACHE");
    char dir[512];
    snprintf(dir, sizeof dir, "%s/llama3", cache ? cache : "build/npm");
    char path[600];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    struct stat st;
    if (stat(path, &st)) {
        t_skip("no Llama-3 tokenizer files at %s (tests/tok/fetch.sh fetches them with npm)", dir);
        return;
    }
    fixture_rotary fx = {.model_type = "llama", .d_model = 64, .n_layer = 2, .n_head = 4, .n_kv_head = 2, .n_ctx = 128,
                         .vocab = 128256, .seed = 25};
    fam_end_to_end_tok(&fx, dir);
}
