/* unit_read_api.c: the pieces of the read API that need no server: the feature cache
 * (generations, the ticket that keeps a racing read out, LRU budget, notification payloads),
 * the decoder-row reader against a loaded SAE, and feature index canonicalisation. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/sae.h"
#include "server/explanations.h"
#include "server/fcache.h"
#include "tests/srv.h"
#include "tests/t.h"

/* The body cached under key, as a string ("" when missing). */
static const char *got(fcache *c, const char *key)
{
    static char buf[256];
    const fcache_body *b = fcache_get(c, key);
    snprintf(buf, sizeof buf, "%s", b ? fcache_data(b) : "");
    if (b) fcache_release(b);
    return buf;
}

static void put(fcache *c, const char *model, const char *sae, const char *key, const char *body)
{
    fcache_ticket t;
    fcache_begin(c, model, sae, &t);
    fcache_put(c, &t, key, body, strlen(body));
}

TEST(fcache_generations)
{
    fcache *c = fcache_create(1 << 20, NULL);
    CHECK(c != NULL);
    CHECK(fcache_listening(c));
    put(c, "m", "1-a", "m/1-a/1", "one");
    put(c, "m", "1-a", "m/1-a/2", "two");
    put(c, "m", "2-b", "m/2-b/1", "three");
    put(c, "n", "1-a", "n/1-a/1", "four");
    CHECK_STR(got(c, "m/1-a/1"), "one");
    CHECK_STR(got(c, "m/1-a/9"), "");
    /* One SAE: only its entries go. */
    fcache_notify(c, "m/1-a");
    CHECK_STR(got(c, "m/1-a/1"), "");
    CHECK_STR(got(c, "m/1-a/2"), "");
    CHECK_STR(got(c, "m/2-b/1"), "three");
    CHECK_STR(got(c, "n/1-a/1"), "four");
    /* A model: every SAE of it. */
    put(c, "m", "1-a", "m/1-a/1", "one again");
    fcache_notify(c, "m/");
    CHECK_STR(got(c, "m/1-a/1"), "");
    CHECK_STR(got(c, "m/2-b/1"), "");
    CHECK_STR(got(c, "n/1-a/1"), "four");
    /* Everything; a payload it cannot parse counts as everything. */
    fcache_notify(c, "garbage-without-slash");
    CHECK_STR(got(c, "n/1-a/1"), "");
    put(c, "n", "1-a", "n/1-a/1", "five");
    fcache_invalidate(c, NULL, NULL);
    CHECK_STR(got(c, "n/1-a/1"), "");
    /* An invalidation of an SAE never looked at is harmless. */
    fcache_invalidate(c, "zz", "9-z");
    /* A read that began before an invalidation does not get stored. */
    fcache_ticket t;
    fcache_begin(c, "m", "1-a", &t);
    fcache_invalidate(c, "m", "1-a");
    fcache_put(c, &t, "m/1-a/1", "stale", 5);
    CHECK_STR(got(c, "m/1-a/1"), "");
    fcache_begin(c, "m", "1-a", &t);
    fcache_invalidate(c, "m", "2-b"); /* another SAE: no effect */
    fcache_put(c, &t, "m/1-a/1", "fresh", 5);
    CHECK_STR(got(c, "m/1-a/1"), "fresh");
    /* A hit stays usable after its entry is replaced or dropped. */
    const fcache_body *b = fcache_get(c, "m/1-a/1");
    put(c, "m", "1-a", "m/1-a/1", "newer");
    fcache_invalidate(c, NULL, NULL);
    CHECK(b && !strcmp(fcache_data(b), "fresh") && fcache_len(b) == 5);
    fcache_release(b);
    fcache_destroy(c);
    CHECK(fcache_create(0, NULL) == NULL);
    /* A NULL cache (SAED_FEATURE_CACHE=0) is a no-op everywhere. */
    fcache_begin(NULL, "m", "1-a", &t);
    CHECK_INT(t.ok, 0);
    fcache_put(NULL, &t, "m/1-a/1", "x", 1);
    CHECK(fcache_get(NULL, "m/1-a/1") == NULL);
    fcache_invalidate(NULL, "m", NULL);
}

TEST(fcache_unknown_ids_make_no_records)
{
    fcache *c = fcache_create(1 << 20, NULL);
    char model[32], sae[32];
    fcache_ticket t;
    /* Reads of ids that turn out not to exist (404: no fcache_put) allocate nothing. */
    for (int i = 0; i < 5000; i++) {
        snprintf(model, sizeof model, "m%d", i % 50);
        snprintf(sae, sizeof sae, "%d-x", i);
        fcache_begin(c, model, sae, &t);
        CHECK_INT(t.ok, 1);
    }
    CHECK_INT((long long)fcache_gen_records(c), 0);
    /* A stored response makes the model's and the SAE's records, once. */
    put(c, "m", "1-a", "m/1-a/1", "one");
    put(c, "m", "1-a", "m/1-a/2", "two");
    put(c, "m", "2-b", "m/2-b/1", "three");
    CHECK_INT((long long)fcache_gen_records(c), 3);
    CHECK_STR(got(c, "m/1-a/2"), "two");
    /* Invalidations of unknown keys between begin and put still keep a racing read out,
     * whether the record is missing at put time or another put made it meanwhile. */
    fcache_begin(c, "n", "1-a", &t);
    fcache_invalidate(c, "n", "1-a");
    fcache_put(c, &t, "n/1-a/1", "stale", 5);
    CHECK_STR(got(c, "n/1-a/1"), "");
    fcache_begin(c, "n", "1-a", &t);
    fcache_invalidate(c, "n", NULL);
    fcache_put(c, &t, "n/1-a/1", "stale", 5);
    CHECK_STR(got(c, "n/1-a/1"), "");
    fcache_ticket t2;
    fcache_begin(c, "n", "1-a", &t);
    fcache_begin(c, "n", "1-a", &t2);
    fcache_put(c, &t2, "n/1-a/2", "first", 5); /* creates the records */
    fcache_invalidate(c, "n", "1-a");         /* bumps the new record */
    fcache_put(c, &t, "n/1-a/1", "stale", 5);
    CHECK_STR(got(c, "n/1-a/1"), "");
    CHECK_STR(got(c, "n/1-a/2"), "");
    /* An unrelated unknown key's invalidation is conservative (no store), never wrong. */
    fcache_begin(c, "p", "1-a", &t);
    fcache_invalidate(c, "q", "1-a");
    fcache_put(c, &t, "p/1-a/1", "early", 5);
    CHECK_STR(got(c, "p/1-a/1"), "");
    fcache_begin(c, "p", "1-a", &t);
    fcache_put(c, &t, "p/1-a/1", "fresh", 5);
    CHECK_STR(got(c, "p/1-a/1"), "fresh");
    char metrics[4096] = "";
    FILE *f = fmemopen(metrics, sizeof metrics - 1, "w");
    fcache_render_metrics(c, f);
    fclose(f);
    CHECK_CONTAINS(metrics, "saed_feature_cache_generation_records 7\n");
    fcache_destroy(c);
}

TEST(fcache_budget)
{
    /* 64 KiB: bodies of 1 KiB fit about 60 at a time; larger than budget/8 never. */
    fcache *c = fcache_create(64 << 10, NULL);
    char body[1024], key[32];
    memset(body, 'x', sizeof body - 1);
    body[sizeof body - 1] = '\0';
    for (int i = 0; i < 200; i++) {
        snprintf(key, sizeof key, "m/1-a/%d", i);
        put(c, "m", "1-a", key, body);
        if (i == 100) CHECK(fcache_get(c, "m/1-a/0") == NULL); /* evicted long ago */
        if (i >= 150) { /* keep 150 in use: least recently used goes first, not it */
            const fcache_body *b = fcache_get(c, "m/1-a/150");
            CHECK(b != NULL);
            if (b) fcache_release(b);
        }
    }
    const fcache_body *last = fcache_get(c, "m/1-a/199"), *kept = fcache_get(c, "m/1-a/150");
    CHECK(last != NULL && kept != NULL);
    if (last) fcache_release(last);
    if (kept) fcache_release(kept);
    int held = 0;
    for (int i = 0; i < 200; i++) {
        snprintf(key, sizeof key, "m/1-a/%d", i);
        const fcache_body *b = fcache_get(c, key);
        if (b) {
            held++;
            fcache_release(b);
        }
    }
    CHECK(held > 40 && held < 64);
    char *huge = malloc(9 << 10);
    memset(huge, 'y', (9 << 10) - 1);
    huge[(9 << 10) - 1] = '\0';
    put(c, "m", "1-a", "m/1-a/huge", huge);
    CHECK(fcache_get(c, "m/1-a/huge") == NULL);
    free(huge);
    char metrics[4096] = "";
    FILE *f = fmemopen(metrics, sizeof metrics - 1, "w");
    fcache_render_metrics(c, f);
    fclose(f);
    CHECK_CONTAINS(metrics, "saed_feature_cache_listening 1");
    CHECK_CONTAINS(metrics, "saed_feature_cache_requests_total{result=\"hit\"}");
    fcache_destroy(c);
}

TEST(sae_file_decoder_row_is_the_steering_row_with_norm_scaling_factor)
{
    char dir[] = "/tmp/saed-nsf-XXXXXX", err[512];
    CHECK(mkdtemp(dir) != NULL);
    CHECK_INT(tests_write_nsf_sae(dir), 0);
    saed_backend *be = backend_cpu_open();
    sae *plain = sae_load("tests/data/sae/tiny-a-res-standard", be, &(sae_load_opts){0}, err, sizeof err);
    sae_cfg cfg;
    CHECK_INT(sae_cfg_load(dir, &cfg, err, sizeof err), 0);
    sae_load_opts lo = sae_dashboard_load_opts(&cfg); /* as the engines (steering) load it */
    sae *nsf = sae_load(dir, be, &lo, err, sizeof err);
    CHECK(plain && nsf);
    CHECK_NEAR(sae_cfg_row_divisor(&cfg), 4, 0);
    sae_cfg_free(&cfg);
    if (plain && nsf) {
        const int D = sae_config(nsf)->d_out;
        float *stored = malloc(sizeof(float) * D), *steer = malloc(sizeof(float) * D);
        int same = 1, quarter = 1;
        for (int i = 0; i < sae_config(nsf)->d_sae; i += 41) {
            float *row = NULL;
            int n = 0;
            CHECK_INT(sae_file_decoder_row(dir, i, &row, &n, err, sizeof err), 0);
            CHECK_INT(n, D);
            CHECK_INT(sae_decoder_row_raw(nsf, i, steer, err, sizeof err), 0);
            CHECK_INT(sae_decoder_row(plain, i, stored, err, sizeof err), 0);
            for (int j = 0; row && j < D; j++) {
                if (row[j] != steer[j]) same = 0;
                if (row[j] != stored[j] / 4.0f) quarter = 0;
            }
            free(row);
        }
        CHECK(same);
        CHECK(quarter);
        free(stored);
        free(steer);
    }
    sae_free(plain);
    sae_free(nsf);
    backend_close(be);
    char cmd[100];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK_INT(system(cmd), 0);
}

TEST(sae_file_decoder_row_matches_loaded_sae)
{
    static const char *const dirs[] = {"tests/data/sae/tiny-a-res-standard", "tests/data/sae/tiny-a-res-topk",
                                       "tests/data/sae/tiny-a-res-jumprelu"};
    saed_backend *be = backend_cpu_open();
    for (size_t d = 0; d < sizeof dirs / sizeof *dirs; d++) {
        char err[512];
        sae_load_opts lo = {0}; /* no fold: the file's rows */
        sae *s = sae_load(dirs[d], be, &lo, err, sizeof err);
        CHECK(s != NULL);
        if (!s) continue;
        const sae_cfg *cfg = sae_config(s);
        float *want = malloc(sizeof(float) * (size_t)cfg->d_out);
        int same = 1;
        for (int i = 0; i < cfg->d_sae; i += 37) {
            float *row = NULL;
            int n = 0;
            CHECK_INT(sae_file_decoder_row(dirs[d], i, &row, &n, err, sizeof err), 0);
            CHECK_INT(n, cfg->d_out);
            CHECK_INT(sae_decoder_row(s, i, want, err, sizeof err), 0);
            if (!row || memcmp(row, want, sizeof(float) * (size_t)cfg->d_out)) same = 0;
            free(row);
        }
        CHECK(same);
        float *row = NULL;
        int n = 0;
        CHECK_INT(sae_file_decoder_row(dirs[d], cfg->d_sae, &row, &n, err, sizeof err), 1);
        CHECK_CONTAINS(err, "outside");
        CHECK_INT(sae_file_decoder_row(dirs[d], -1, &row, &n, err, sizeof err), 1);
        CHECK(row == NULL);
        free(want);
        sae_free(s);
    }
    float *row = NULL;
    int n = 0;
    char err[512];
    CHECK_INT(sae_file_decoder_row("tests/data/models/tiny-a", 0, &row, &n, err, sizeof err), -1);
    CHECK_INT(sae_file_decoder_row("/nonexistent", 0, &row, &n, err, sizeof err), -1);
    CHECK_CONTAINS(err, "/nonexistent");
    backend_close(be);
}

TEST(explanation_index_canon)
{
    char out[16];
    CHECK_INT(expl_index_canon("7", out), 0);
    CHECK_STR(out, "7");
    CHECK_INT(expl_index_canon("007", out), 0);
    CHECK_STR(out, "7");
    CHECK_INT(expl_index_canon("0", out), 0);
    CHECK_STR(out, "0");
    CHECK_INT(expl_index_canon("000", out), 0);
    CHECK_STR(out, "0");
    CHECK_INT(expl_index_canon("999999999", out), 0);
    CHECK_INT(expl_index_canon("0000999999999", out), 0);
    CHECK_STR(out, "999999999");
    CHECK_INT(expl_index_canon("1000000000", out), -1);
    CHECK_INT(expl_index_canon("", out), -1);
    CHECK_INT(expl_index_canon("-1", out), -1);
    CHECK_INT(expl_index_canon("1.0", out), -1);
    CHECK_INT(expl_index_canon(" 1", out), -1);
    CHECK_INT(expl_index_canon(NULL, out), -1);
}
