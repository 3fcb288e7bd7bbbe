/* api_hub_ghpr.c: a push's pretrained_saes.yaml entry proposed to SAELens as a GitHub pull
 * request: a real saed and PostgreSQL against the stand-in Hub (tests/hubd.h) and the stand-in
 * GitHub (tests/ghd.h) over loopback. The committed file is checked byte for byte against the
 * original with exactly the new lines added; a fork behind its upstream, a file over GitHub's
 * 1 MB contents limit, the branch and the PR reused for the release's next SAE, retried 5xx,
 * and the failures (bad token, no push rights, missing fork, no token) with the Hub's result
 * still reported. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/ghd.h"
#include "tests/hubd.h"
#include "tests/srv.h"
#include "tests/t.h"

#define BASE "decoderesearch/SAELens"
#define FORK "me/SAELens"
#define FILE_PATH "sae_lens/pretrained_saes.yaml"
#define TOKEN "ghp_good_token_0123456789"
#define HF "hf_write_token_abcdef"

/* Where two texts first differ, as a failure (1 MB texts do not print). */
static void same_text(const char *got, const char *want, int line)
{
    if (got && want && !strcmp(got, want)) return;
    size_t i = 0;
    while (got && want && got[i] && got[i] == want[i]) i++;
    t_fail(__FILE__, line, "texts differ at byte %zu (lengths %zu, %zu): got \"%.120s\", want \"%.120s\"", i, got ? strlen(got) : 0,
           want ? strlen(want) : 0, got ? got + i : "(null)", want ? want + i : "(null)");
}

/* A hand-edited file in SAELens' layouts, over 1 MB: head (releases) and tail (a closing comment). */
static char *saelens_head(int releases)
{
    char *s = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&s, &n);
    fprintf(f, "# Pretrained SAEs, edited by hand: comments, flow entries and key order are kept.\n"
               "gpt2-small-res-jb:\n"
               "  conversion_func: null   # plain loader\n"
               "  links:\n"
               "    model: https://huggingface.co/gpt2\n"
               "  model: gpt2-small\n"
               "  repo_id: jbloom/GPT2-Small-SAEs-Reformatted\n"
               "  saes:\n"
               "    - {id: blocks.0.hook_resid_pre,  l0: 10.0, neuronpedia: gpt2-small/0-res-jb}\n"
               "    - {id: blocks.1.hook_resid_pre,  l0: 10.0, neuronpedia: gpt2-small/1-res-jb}\n\n");
    for (int r = 0; r < releases; r++) {
        fprintf(f, "gemma-scope-like-%d:\n  conversion_func: gemma_3\n  model: google/gemma-3-4b-pt\n  repo_id: google/gemma-scope-%d\n"
                   "  saes:\n", r, r);
        for (int k = 0; k < 20; k++)
            fprintf(f, "  - id: layer_%d_width_16k_l0_big\n    path: transcoder_all/layer_%d_width_16k_l0_big\n    l0: %d\n", k, k, 60 + k);
    }
    fclose(f);
    return s;
}

#define TAIL "\n# Add new releases above this line.\n"
#define REL "tiny-saes:\n  repo_id: me/tiny-saes\n  model: tiny-a\n  conversion_func: null\n  saes:\n"
#define ITEM(path, np) "  - id: blocks.1.hook_resid_pre\n    path: " path "\n    l0: 0\n    neuronpedia: tiny-a/" np "\n"

static char *cat3(const char *a, const char *b, const char *c)
{
    char *s = NULL;
    if (asprintf(&s, "%s%s%s", a, b, c) < 0) s = NULL;
    return s;
}

TEST(api_hub_ghpr_saelens_pull_request)
{
    hubd *h = hubd_start();
    ghd *g = ghd_start();
    CHECK(h != NULL && g != NULL);
    if (!h || !g) {
        hubd_stop(h);
        ghd_stop(g);
        return;
    }
    hubd_write_token(h, HF);
    ghd_token(g, TOKEN, "me");
    ghd_token(g, "ghp_someone_else_99999", "someone");
    char *head = saelens_head(550), *orig = cat3(head, "", TAIL);
    CHECK(strlen(orig) > (1 << 20)); /* GitHub's contents API answers without content past 1 MB */
    /* The fork was made when upstream's file was older: the branch must start at upstream's. */
    ghd_repo(g, BASE, NULL, FILE_PATH, "# an older file\n");
    ghd_repo(g, FORK, BASE, NULL, NULL);
    ghd_repo(g, "two/SAELens", BASE, NULL, NULL);
    ghd_isolate(g, "two/SAELens");
    ghd_token(g, "ghp_two_token_0123456789", "two");
    ghd_commit(g, BASE, "main", FILE_PATH, orig);
    char cache[] = "/tmp/saed-hfcache-XXXXXX", url[512];
    CHECK(mkdtemp(cache) != NULL);
    srv s;
    if (srv_fresh(&s, url, sizeof url, (const char *const[]){"--migrate", "--data-roots", "tests/data", "--workers", "0",
                                                             "--hf-endpoint", hubd_endpoint(h), "--hf-cache", cache, "--hf-token",
                                                             HF, "--github-api", ghd_endpoint(g), "--github-token", TOKEN,
                                                             "--hub-tries", "3", NULL})) {
        hubd_stop(h);
        ghd_stop(g);
        free(head);
        free(orig);
        return;
    }
    resp r;
    static const char *const saes[] = {"tests/data/sae/tiny-a-res-jumprelu", "tests/data/sae/tiny-a-res-topk",
                                       "tests/data/sae/tiny-a-res-standard"};
    static const char *const sets[] = {"jr", "topk", "std"};
    http(&s, "POST", "/api/models", NULL, "{\"id\":\"tiny-a\",\"path\":\"tests/data/models/tiny-a\"}", &r);
    CHECK_INT(r.status, 201);
    resp_free(&r);
    for (int i = 0; i < 3; i++) {
        char b[300];
        snprintf(b, sizeof b, "{\"modelId\":\"tiny-a\",\"path\":\"%s\",\"setName\":\"%s\"}", saes[i], sets[i]);
        http(&s, "POST", "/api/saes", NULL, b, &r);
        CHECK_INT(r.status, 201);
        resp_free(&r);
    }

    /* The first SAE: a branch per release on the fork, the file committed there, a PR upstream. */
    http(&s, "POST", "/api/saes/tiny-a/1-jr/push", NULL,
         "{\"repo\":\"me/tiny-saes\",\"path\":\"blocks.1/jr\",\"saelensPr\":{\"fork\":\"" FORK "\",\"base\":\"" BASE "\"}}", &r);
    CHECK_INT(r.status, 200);
    json_t *j = resp_json(&r), *pr = json_object_get(j, "saelensPr");
    char want_url[300];
    snprintf(want_url, sizeof want_url, "%s/" BASE "/pull/1", ghd_endpoint(g));
    CHECK_STR(json_string_value(json_object_get(j, "saelensPullRequestUrl")), want_url);
    CHECK_STR(json_string_value(json_object_get(j, "release")), "tiny-saes");
    CHECK_STR(json_string_value(json_object_get(pr, "branch")), "saed/tiny-saes");
    CHECK_STR(json_string_value(json_object_get(pr, "base")), BASE);
    CHECK_STR(json_string_value(json_object_get(pr, "baseBranch")), "main");
    CHECK_STR(json_string_value(json_object_get(pr, "path")), FILE_PATH);
    CHECK(json_is_false(json_object_get(pr, "existingPullRequest")));
    CHECK_INT(json_integer_value(json_object_get(pr, "pullRequestNumber")), 1);
    CHECK_INT(strlen(json_string_value(json_object_get(pr, "commitSha")) ?: ""), 40);
    json_decref(j);
    resp_free(&r);
    char *want = cat3(head, REL ITEM("blocks.1/jr", "1-jr"), TAIL);
    char *got = ghd_file(g, FORK, "saed/tiny-saes", FILE_PATH);
    same_text(got, want, __LINE__);
    free(got);
    free(want);
    got = ghd_file(g, BASE, "main", FILE_PATH);
    same_text(got, orig, __LINE__); /* upstream untouched until the PR is merged */
    free(got);
    char ph[512], title[512], body[512], state[512];
    CHECK(ghd_pr(g, BASE, 1, ph, title, body, state));
    CHECK_STR(ph, "me:saed/tiny-saes");
    CHECK_STR(state, "open");
    CHECK_CONTAINS(title, "tiny-saes");
    CHECK_CONTAINS(body, "`blocks.1/jr`");
    CHECK_CONTAINS(body, "/me/tiny-saes");
    /* The big file came through the raw media type. */
    CHECK_INT(ghd_count(g, "GET /repos/" FORK "/contents/" FILE_PATH), 2);
    CHECK_INT(ghd_bad_headers(g), 0);

    /* The release's next SAE, from the CLI with two 503s retried: same branch, same PR, the
     * entry appended to the release's list. */
    ghd_fail(g, 2);
    char out[8192], err[4096];
    int rc = saed_run((const char *const[]){"push-sae", "--model", "tiny-a", "--sae", "1-topk", "--repo", "me/tiny-saes", "--path",
                                            "blocks.1/topk", "--saelens-pr", FORK, "--saelens-base", BASE, "--database-url", url,
                                            "--hf-endpoint", hubd_endpoint(h), "--hf-token", HF, "--github-api", ghd_endpoint(g),
                                            "--github-token", TOKEN, NULL},
                      out, sizeof out, err, sizeof err);
    CHECK_INT(rc, 0);
    CHECK_CONTAINS(out, "\"existingPullRequest\":true");
    CHECK_CONTAINS(out, want_url);
    want = cat3(head, REL ITEM("blocks.1/jr", "1-jr") ITEM("blocks.1/topk", "1-topk"), TAIL);
    got = ghd_file(g, FORK, "saed/tiny-saes", FILE_PATH);
    same_text(got, want, __LINE__);
    free(got);
    CHECK(!ghd_pr(g, BASE, 2, ph, title, body, state));
    /* Pushed again unchanged: nothing committed, the open PR reported. */
    int puts = ghd_count(g, "PUT ");
    http(&s, "POST", "/api/saes/tiny-a/1-jr/push", NULL,
         "{\"repo\":\"me/tiny-saes\",\"path\":\"blocks.1/jr\",\"saelensPr\":{\"fork\":\"" FORK "\",\"base\":\"" BASE "\"}}", &r);
    CHECK_INT(r.status, 200);
    CHECK_CONTAINS(r.body, want_url);
    CHECK_CONTAINS(r.body, "\"commitSha\":null");
    resp_free(&r);
    CHECK_INT(ghd_count(g, "PUT "), puts);

    /* Merged upstream; the third SAE updates the release there through a new PR. */
    ghd_merge(g, BASE, 1);
    got = ghd_file(g, BASE, "main", FILE_PATH);
    same_text(got, want, __LINE__);
    free(got);
    free(want);
    /* ... while someone edits the file between saed's read and write: 409, read again, merged. */
    ghd_race(g, FORK, "saed/tiny-saes", FILE_PATH, "# a concurrent edit\n");
    puts = ghd_count(g, "PUT ");
    http(&s, "POST", "/api/saes/tiny-a/1-std/push", NULL,
         "{\"repo\":\"me/tiny-saes\",\"path\":\"blocks.1/std\",\"saelensPr\":{\"fork\":\"" FORK "\",\"base\":\"" BASE "\"}}", &r);
    CHECK_INT(r.status, 200);
    snprintf(want_url, sizeof want_url, "%s/" BASE "/pull/2", ghd_endpoint(g));
    CHECK_CONTAINS(r.body, want_url);
    resp_free(&r);
    want = cat3(head, REL ITEM("blocks.1/jr", "1-jr") ITEM("blocks.1/topk", "1-topk") ITEM("blocks.1/std", "1-std"),
                TAIL "# a concurrent edit\n");
    got = ghd_file(g, FORK, "saed/tiny-saes", FILE_PATH);
    same_text(got, want, __LINE__);
    CHECK_INT(ghd_count(g, "PUT ") - puts, 2);
    free(got);
    free(want);

    /* A fork that cannot see upstream's newest commit: the branch starts at its own main. */
    rc = saed_run((const char *const[]){"push-sae", "--model", "tiny-a", "--sae", "1-jr", "--repo", "me/tiny-saes", "--path",
                                        "blocks.1/jr", "--saelens-pr", "two/SAELens", "--saelens-base", BASE, "--database-url", url,
                                        "--hf-endpoint", hubd_endpoint(h), "--hf-token", HF, "--github-api", ghd_endpoint(g),
                                        "--github-token", "ghp_two_token_0123456789", NULL},
                  out, sizeof out, err, sizeof err);
    CHECK_INT(rc, 0);
    snprintf(want_url, sizeof want_url, "%s/" BASE "/pull/3", ghd_endpoint(g));
    CHECK_CONTAINS(out, want_url);
    got = ghd_file(g, "two/SAELens", "saed/tiny-saes", FILE_PATH);
    CHECK_STR(got, "# an older file\n" REL ITEM("blocks.1/jr", "1-jr"));
    free(got);
    CHECK(ghd_pr(g, BASE, 3, ph, title, body, state));
    CHECK_STR(ph, "two:saed/tiny-saes");

    /* A fork that does not exist: 502 naming GitHub and the step, with the Hub's result. */
    http(&s, "POST", "/api/saes/tiny-a/1-jr/push", NULL,
         "{\"repo\":\"me/tiny-saes\",\"path\":\"blocks.1/jr\",\"saelensPr\":{\"fork\":\"me/Nope\",\"base\":\"" BASE "\"}}", &r);
    CHECK_INT(r.status, 502);
    j = resp_json(&r);
    CHECK_STR(json_string_value(json_object_get(json_object_get(j, "error"), "code")), "github_not_found");
    CHECK_CONTAINS(json_string_value(json_object_get(j, "message")), "GitHub, creating branch saed/tiny-saes on the fork me/Nope: 404");
    CHECK_CONTAINS(json_string_value(json_object_get(j, "message")), "the SAE was pushed to the Hub");
    CHECK_STR(json_string_value(json_object_get(json_object_get(j, "hubPush"), "repoId")), "me/tiny-saes");
    CHECK_INT(strlen(json_string_value(json_object_get(json_object_get(j, "hubPush"), "commitOid")) ?: ""), 40);
    json_decref(j);
    resp_free(&r);
    /* Refused at the door: a fork that is no owner/name, a field saed does not know. */
    http(&s, "POST", "/api/saes/tiny-a/1-jr/push", NULL, "{\"repo\":\"me/tiny-saes\",\"saelensPr\":{\"fork\":\"nope\"}}", &r);
    CHECK_INT(r.status, 400);
    CHECK_CONTAINS(r.body, "saelensPr.fork");
    resp_free(&r);
    http(&s, "POST", "/api/saes/tiny-a/1-jr/push", NULL, "{\"repo\":\"me/tiny-saes\",\"saelensPr\":{\"fork\":\"" FORK "\",\"bse\":\"x/y\"}}", &r);
    CHECK_INT(r.status, 400);
    resp_free(&r);
    CHECK_INT(srv_stop(&s), 0);

    /* The CLI's failures: a bad token (401), a token without push rights on the fork (403),
     * no token at all (nothing pushed anywhere). */
    const char *const base_args[] = {"push-sae", "--model", "tiny-a", "--sae", "1-jr", "--repo", "me/tiny-saes", "--path", "blocks.1/jr",
                                     "--saelens-pr", FORK, "--saelens-base", BASE, "--database-url", url, "--hf-endpoint",
                                     hubd_endpoint(h), "--hf-token", HF, "--github-api", ghd_endpoint(g)};
    const char *args[40];
    size_t nb = sizeof base_args / sizeof base_args[0];
    static const struct {
        const char *token, *stderr_has;
        int rc, pushed;
    } cases[] = {
        {"ghp_bad_token_000000000", "GitHub, reading branch main of " BASE ": 401, GITHUB_TOKEN was not accepted", 1, 1},
        {"ghp_someone_else_99999", "GitHub, creating branch saed/tiny-saes on the fork " FORK ": 403, GITHUB_TOKEN lacks the rights", 1, 1},
        {"", "needs GITHUB_TOKEN", 1, 0},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        memcpy(args, base_args, sizeof base_args);
        size_t n = nb;
        args[n++] = "--github-token";
        args[n++] = cases[c].token;
        args[n] = NULL;
        int commits = hubd_count(h, "POST /api/models/me/tiny-saes/commit/");
        rc = saed_run(args, out, sizeof out, err, sizeof err);
        CHECK_INT(rc, cases[c].rc);
        CHECK_CONTAINS(err, cases[c].stderr_has);
        CHECK_INT(hubd_count(h, "POST /api/models/me/tiny-saes/commit/") - commits, cases[c].pushed);
        /* The Hub's result still comes out when only the PR failed. */
        if (cases[c].pushed) CHECK_CONTAINS(out, "\"repoId\":\"me/tiny-saes\"");
        CHECK(!strstr(err, TOKEN) && !strstr(out, TOKEN));
    }
    hubd_stop(h);
    ghd_stop(g);
    free(head);
    free(orig);
    char p[700];
    snprintf(p, sizeof p, "rm -rf '%s'", cache);
    if (system(p)) {}
}
