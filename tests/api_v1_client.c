/* api_v1_client.c: saed's /v1 routes driven by the npm package neuronpedia-inference-client
 * (1.9.0 and 1.10.1, fetched by tests/tok/fetch.sh), the generated client Neuronpedia's webapp
 * calls its inference server with: tests/npclient/drive.mjs runs each case through it against
 * a real server and checks values this file computes with `saed encode`. That client speaks the
 * pre-rewrite snake_case wire, so the server runs with --v1-wire-case snake (a request whose keys
 * are all one word says nothing of its casing). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/srv.h"
#include "tests/t.h"

#define TINY "tests/data/models/tiny-a"
#define SAE_JR "tests/data/sae/tiny-a-res-jumprelu"
#define KEY "v1-client-key-0123456789"
#define SECRET "v1-client-secret"
/* Every word one GPT-2 token, so the token strings below are known without a tokenizer. */
#define TEXT "The quick brown fox jumps over the lazy dog near the river bank"
#define TEXT2 "A small cat sat on the warm mat"

/* The cases drive.mjs runs; each must pass with both client versions. */
static const char *const cases[] = {"tokenize",      "activationSingle", "activationSingleBatch", "topkByToken",
                                    "topkByTokenBatch", "activationAll", "activationSource",   "utilSaeVector",
                                    "decoderCossim", "steerCompletion", "steerCompletionChat", "errors", NULL};

static json_t *expectations(int *ok)
{
    int T;
    *ok = 0;
    float *ref = tests_saed_encode(TINY, SAE_JR, TEXT, 1, 512, &T);
    if (!ref) return NULL;
    char out[1 << 16], err[2048];
    if (saed_run((const char *const[]){"encode", "--model", TINY, "--sae", SAE_JR, "--text", TEXT, "--prepend-bos", NULL},
                 out, sizeof out, err, sizeof err)) {
        t_fail(__FILE__, __LINE__, "saed encode: %s", err);
        return NULL;
    }
    json_t *enc = json_loads(out, JSON_DISABLE_EOF_CHECK, NULL), *ids = json_object_get(enc, "ids");
    json_t *tokens = json_array();
    json_array_append_new(tokens, json_string("<|endoftext|>"));
    char words[] = TEXT, *save = NULL;
    for (char *w = strtok_r(words, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
        char t[64];
        snprintf(t, sizeof t, "%s%s", json_array_size(tokens) > 1 ? " " : "", w);
        json_array_append_new(tokens, json_string(t));
    }
    CHECK_INT((int)json_array_size(tokens), T);
    CHECK_INT((int)json_array_size(ids), T);
    /* The feature most active on the last token, and its values after the BOS. */
    int f = 0;
    const float *last = ref + (size_t)(T - 1) * 512;
    for (int i = 1; i < 512; i++)
        if (last[i] > last[f]) f = i;
    json_t *vals = json_array();
    for (int p = 1; p < T; p++) json_array_append_new(vals, json_real(ref[(size_t)p * 512 + f]));
    json_t *cl = json_array();
    for (int i = 0; cases[i]; i++) json_array_append_new(cl, json_string(cases[i]));
    json_t *ex = json_pack("{s:s,s:s,s:s,s:s,s:s,s:i,s:O,s:o,s:o,s:[i,f],s:i,s:s,s:o,s:s,s:s}", "model", "tiny-a", "source",
                           "1-rs", "sourceSet", "rs", "prompt", TEXT, "prompt2", TEXT2, "feature", f, "ids", ids,
                           "tokens", tokens, "values", vals, "lastTop", f, (double)last[f], "dIn", 64, "hook",
                           "blocks.1.hook_resid_pre", "cases", cl, "chatModel", "tiny-chat", "chatSource", "1-rs");
    *ok = ex != NULL && last[f] > 0; /* last points into ref */
    json_decref(enc);
    free(ref);
    return ex;
}

TEST(api_v1_npm_inference_client)
{
    const char *cache = getenv("SAED_TOKENIZER_CACHE");
    char dirs[2][600];
    int n = 0;
    for (int v = 0; v < 2; v++) {
        snprintf(dirs[n], sizeof dirs[n], "%s/npclient-%s", cache ? cache : "build/npm", v ? "1.10.1" : "1.9.0");
        char probe[700];
        snprintf(probe, sizeof probe, "%s/dist/index.js", dirs[n]);
        if (access(probe, R_OK) == 0) n++;
    }
    if (system("node --version > /dev/null 2>&1") != 0) {
        t_skip("node not found (the harness installs Debian's nodejs as root)");
        return;
    }
    if (n == 0) {
        t_skip("neuronpedia-inference-client not unpacked under %s (tests/tok/fetch.sh fetches it with npm)",
               cache ? cache : "build/npm");
        return;
    }
    /* A chat model for steer/completion-chat: tiny-a given a chat template. */
    char chat_dir[] = "/tmp/saed-v1client-XXXXXX", roots[128], cmd[2048];
    CHECK(mkdtemp(chat_dir) != NULL);
    CHECK_INT(tests_write_chat_model(chat_dir), 0);
    snprintf(roots, sizeof roots, "tests/data:%s", chat_dir);
    srv s;
    if (srv_fresh(&s, NULL, 0,
                  (const char *const[]){"--migrate", "--data-roots", roots, "--workers", "0", "--api-keys", KEY,
                                        "--v1-secret", SECRET, "--v1-wire-case", "snake", NULL})) {
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", chat_dir);
        if (system(cmd)) {}
        return;
    }
    const char *const hdr[] = {"x-api-key: " KEY, NULL};
    resp r;
    http(&s, "POST", "/api/models", hdr, "{\"id\":\"tiny-a\",\"path\":\"" TINY "\"}", &r);
    CHECK_INT(r.status, 201);
    resp_free(&r);
    http(&s, "POST", "/api/saes", hdr, "{\"modelId\":\"tiny-a\",\"path\":\"" SAE_JR "\",\"setName\":\"rs\"}", &r);
    CHECK_INT(r.status, 201);
    resp_free(&r);
    tests_add_chat_model(&s, hdr, chat_dir, SAE_JR);

    int ok;
    json_t *ex = expectations(&ok);
    char path[160];
    snprintf(path, sizeof path, "%s/expect.json", s.dir);
    if (ok && json_dump_file(ex, path, JSON_COMPACT)) ok = 0, t_fail(__FILE__, __LINE__, "writing %s", path);
    json_decref(ex);
    for (int v = 0; ok && v < n; v++) {
        char out[8192];
        snprintf(cmd, sizeof cmd, "node tests/npclient/drive.mjs '%s' http://127.0.0.1:%d %s '%s' 2>&1", dirs[v], s.port,
                 SECRET, path);
        FILE *p = popen(cmd, "r");
        size_t len = p ? fread(out, 1, sizeof out - 1, p) : 0;
        out[len] = '\0';
        int rc = p ? pclose(p) : -1;
        char want[64];
        int nc = 0;
        while (cases[nc]) nc++;
        snprintf(want, sizeof want, "%d ok, 0 failed", nc);
        if (rc != 0 || !strstr(out, want)) t_fail(__FILE__, __LINE__, "%s: exit %d:\n%s", dirs[v], rc, out);
    }
    srv_stop(&s);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", chat_dir);
    if (system(cmd)) {}
}
