/* api_feature.c: the Neuronpedia feature reads end to end on real PostgreSQL: a dashboard job
 * fills an SAE, then GET /api/feature, POST /api/features and POST /api/vector/get are checked
 * against the database, against `saed dashboards` run on the same inputs, against the SAE's
 * weights file, and for upstream's compatibility rules (trailing slash, string index, source
 * alias, a wrong x-api-key on a read route); the feature cache follows a write made by another
 * process. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "engine/safetensors.h"
#include "tests/srv.h"
#include "tests/t.h"

#define KEY "feature-key-0123456789abcdef"
#define HDR_KEY "x-api-key: " KEY

static json_t *get_json(srv *s, const char *path, const char *const *headers, int want)
{
    resp r;
    http(s, "GET", path, headers, NULL, &r);
    if (r.status != want) t_fail(__FILE__, __LINE__, "GET %s: %d, expected %d: %.300s", path, r.status, want, r.body);
    json_t *j = resp_json(&r);
    resp_free(&r);
    return j;
}

static json_t *post_json(srv *s, const char *path, const char *body, int want)
{
    resp r;
    http(s, "POST", path, (const char *const[]){HDR_KEY, NULL}, body, &r);
    if (r.status != want) t_fail(__FILE__, __LINE__, "POST %s: %d, expected %d: %.300s", path, r.status, want, r.body);
    json_t *j = resp_json(&r);
    resp_free(&r);
    return j;
}

/* 1 when the job completed within two minutes. */
static int wait_job(srv *s, long long id)
{
    json_t *j = srv_wait_job(s, id, 120);
    const char *st = json_string_value(json_object_get(j, "state"));
    int ok = st && !strcmp(st, "completed");
    json_decref(j);
    return ok;
}

/* The JSON lines of a (gzip'd) file, as an array. */
static json_t *read_jsonl(const char *path)
{
    json_t *a = json_array();
    gzFile g = gzopen(path, "rb");
    static char line[1 << 20];
    while (g && gzgets(g, line, sizeof line)) {
        json_t *j = json_loads(line, 0, NULL);
        if (j) json_array_append_new(a, j);
    }
    if (g) gzclose(g);
    return a;
}

/* JSON equality where numbers compare by value: PostgreSQL writes 0 where the file writer
 * writes 0.0. */
static int same_json(json_t *a, json_t *b)
{
    if (json_is_number(a) && json_is_number(b)) return json_number_value(a) == json_number_value(b);
    if (json_is_array(a) && json_is_array(b)) {
        if (json_array_size(a) != json_array_size(b)) return 0;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!same_json(json_array_get(a, i), json_array_get(b, i))) return 0;
        return 1;
    }
    return json_equal(a, b);
}

/* Numbers equal to 1e-12 relative (the file writer prints 15 digits, the database keeps 17). */
static int near_arrays(json_t *a, json_t *b)
{
    if (json_array_size(a) != json_array_size(b)) return 0;
    for (size_t i = 0; i < json_array_size(a); i++) {
        double x = json_number_value(json_array_get(a, i)), y = json_number_value(json_array_get(b, i));
        if (fabs(x - y) > 1e-12 * (fabs(x) + fabs(y)) + 1e-15) return 0;
    }
    return 1;
}

/* Every statistic the job stored for each feature, as GET /api/feature serves it, equals what
 * `saed dashboards` writes for the same model, SAE, corpus and options. */
static void check_against_cli(srv *s, const char *corpus, const char *root)
{
    char out_dir[400], out[4096], err[8192], p[600];
    snprintf(out_dir, sizeof out_dir, "%s/cli", root);
    CHECK_INT(saed_run((const char *const[]){"dashboards", "--model", "tests/data/models/tiny-a", "--sae",
                                             "tests/data/sae/tiny-a-res-standard", "--dataset", corpus, "--out", out_dir,
                                             "--n-prompts", "24", "--n-tokens-in-prompt", "16", "--batch-prompts", "8", "--seed",
                                             "3", "--model-id", "tiny-a", "--source-id", "1-std", "--set-name", "std", "--export",
                                             "neuronpedia", NULL},
                       out, sizeof out, err, sizeof err),
              0);
    snprintf(p, sizeof p, "%s/neuronpedia/features/batch-0.jsonl.gz", out_dir);
    json_t *feats = read_jsonl(p);
    snprintf(p, sizeof p, "%s/neuronpedia/activations/batch-0.jsonl.gz", out_dir);
    json_t *acts = read_jsonl(p);
    CHECK_INT(json_array_size(feats), 512);
    static const char *const exact[] = {"maxActApprox", "pos_str", "neg_str", "pos_values", "neg_values", "topkCosSimIndices",
                                        "topkCosSimValues", "neuron_alignment_indices", "neuron_alignment_values",
                                        "correlated_neurons_indices", "correlated_features_indices",
                                        "freq_hist_data_bar_heights", "freq_hist_data_bar_values",
                                        "logits_hist_data_bar_heights", "logits_hist_data_bar_values", "hookName",
                                        "sourceSetName"};
    int bad_field = 0, bad_acts = 0, checked = 0;
    size_t k = 0;
    for (size_t i = 0; i < json_array_size(feats); i++) {
        json_t *cf = json_array_get(feats, i);
        const char *idx = json_string_value(json_object_get(cf, "index"));
        char path[128];
        snprintf(path, sizeof path, "/api/feature/tiny-a/1-std/%s", idx);
        json_t *f = get_json(s, path, NULL, 200);
        for (size_t e = 0; e < sizeof exact / sizeof *exact; e++)
            if (!same_json(json_object_get(f, exact[e]), json_object_get(cf, exact[e]))) {
                if (!bad_field++) t_fail(__FILE__, __LINE__, "feature %s: %s differs from saed dashboards'", idx, exact[e]);
            }
        json_t *fz = json_pack("[O]", json_object_get(f, "frac_nonzero")), *cz = json_pack("[O]", json_object_get(cf, "frac_nonzero"));
        if (!near_arrays(fz, cz) && !bad_field++) t_fail(__FILE__, __LINE__, "feature %s: frac_nonzero differs", idx);
        json_decref(fz);
        json_decref(cz);
        /* Activations: the CLI's rows of this feature, as a multiset of (maxValue, tokens). */
        json_t *mine = json_object_get(f, "activations"), *theirs = json_array();
        for (; k < json_array_size(acts) && !strcmp(json_string_value(json_object_get(json_array_get(acts, k), "index")), idx); k++)
            json_array_append(theirs, json_array_get(acts, k));
        size_t n = json_array_size(mine);
        int ok = n == json_array_size(theirs);
        for (size_t a = 0; ok && a < n; a++) {
            json_t *x = json_array_get(mine, a);
            if (a && json_number_value(json_object_get(x, "maxValue")) >
                         json_number_value(json_object_get(json_array_get(mine, a - 1), "maxValue")))
                ok = 0; /* sorted by maxValue, descending */
            int found = 0;
            for (size_t b = 0; !found && b < n; b++) {
                json_t *y = json_array_get(theirs, b);
                found = same_json(json_object_get(x, "tokens"), json_object_get(y, "tokens")) &&
                        same_json(json_object_get(x, "values"), json_object_get(y, "values")) &&
                        json_number_value(json_object_get(x, "maxValue")) == json_number_value(json_object_get(y, "maxValue")) &&
                        same_json(json_object_get(x, "binMin"), json_object_get(y, "binMin"));
            }
            ok = found;
        }
        if (n && json_number_value(json_object_get(json_array_get(mine, 0), "maxValue")) !=
                     json_number_value(json_object_get(f, "maxActApprox")))
            ok = 0;
        if (!ok && !bad_acts++) t_fail(__FILE__, __LINE__, "feature %s: activations differ from saed dashboards' (%zu vs %zu)", idx, n,
                                       json_array_size(theirs));
        json_decref(theirs);
        json_decref(f);
        checked++;
    }
    CHECK_INT(checked, 512);
    CHECK_INT(k, json_array_size(acts)); /* the CLI's rows come in feature order, all consumed */
    json_decref(feats);
    json_decref(acts);
}

static void check_vector(srv *s)
{
    char err[256];
    st_file *f = st_open("tests/data/sae/tiny-a-res-standard/sae_weights.safetensors", err, sizeof err);
    const st_tensor *t = f ? st_find(f, "W_dec") : NULL;
    CHECK(t != NULL);
    if (!t) return;
    float *w = malloc(sizeof(float) * (size_t)t->numel);
    CHECK_INT(st_to_f32(t, w, err, sizeof err), 0);
    const int D = (int)t->shape[1];
    /* source alias, index as a string and as an integer */
    json_t *j = post_json(s, "/api/vector/get", "{\"modelId\":\"tiny-a\",\"source\":\"1-std\",\"index\":\"7\",\"extra\":1}", 200);
    json_t *v = json_object_get(j, "vector");
    CHECK_STR(json_string_value(json_object_get(v, "index")), "7");
    CHECK_STR(json_string_value(json_object_get(v, "layer")), "1-std");
    CHECK_STR(json_string_value(json_object_get(v, "hookName")), "blocks.1.hook_resid_pre");
    CHECK_NEAR(json_number_value(json_object_get(v, "vectorDefaultSteerStrength")), 10, 0);
    json_t *vec = json_object_get(v, "vector");
    CHECK_INT(json_array_size(vec), D);
    int same = 1;
    for (int i = 0; i < D && i < (int)json_array_size(vec); i++)
        if ((float)json_number_value(json_array_get(vec, i)) != w[7 * D + i]) same = 0; /* 9 digits: exact float */
    CHECK(same);
    json_decref(j);
    j = post_json(s, "/api/vector/get", "{\"modelId\":\"tiny-a\",\"layer\":\"1-std\",\"index\":511}", 200);
    vec = json_object_get(json_object_get(j, "vector"), "vector");
    CHECK((float)json_number_value(json_array_get(vec, D - 1)) == w[511 * D + D - 1]);
    json_decref(j);
    json_decref(post_json(s, "/api/vector/get", "{\"modelId\":\"tiny-a\",\"source\":\"1-std\",\"index\":512}", 404));
    json_decref(post_json(s, "/api/vector/get", "{\"modelId\":\"tiny-a\",\"source\":\"9-none\",\"index\":1}", 404));
    json_decref(post_json(s, "/api/vector/get", "{\"modelId\":\"tiny-a\",\"index\":1}", 400));
    json_decref(post_json(s, "/api/vector/get", "{\"modelId\":\"tiny-a\",\"source\":\"1-std\",\"index\":-1}", 400));
    free(w);
    st_close(f);
}

/* An SAE whose cfg has SAELens fold norm_scaling_factor (expected_average_only_in): the
 * vector is the stored row / 4, the one steering adds (sae_decoder_row_raw). */
static void check_vector_norm_scaling(srv *s, const char *root)
{
    char dir[400], body[600], err[256];
    snprintf(dir, sizeof dir, "%s/nsf", root);
    CHECK_INT(mkdir(dir, 0755), 0);
    CHECK_INT(tests_write_nsf_sae(dir), 0);
    snprintf(body, sizeof body, "{\"modelId\":\"tiny-a\",\"path\":\"%s\",\"setName\":\"nsf\"}", dir);
    json_decref(post_json(s, "/api/saes", body, 201));
    st_file *f = st_open("tests/data/sae/tiny-a-res-standard/sae_weights.safetensors", err, sizeof err);
    const st_tensor *t = f ? st_find(f, "W_dec") : NULL;
    CHECK(t != NULL);
    if (!t) return;
    float *w = malloc(sizeof(float) * (size_t)t->numel);
    CHECK_INT(st_to_f32(t, w, err, sizeof err), 0);
    const int D = (int)t->shape[1];
    json_t *j = post_json(s, "/api/vector/get", "{\"modelId\":\"tiny-a\",\"source\":\"1-nsf\",\"index\":7}", 200);
    json_t *vec = json_object_get(json_object_get(j, "vector"), "vector");
    CHECK_INT(json_array_size(vec), D);
    int quarter = 1;
    for (int i = 0; i < D && i < (int)json_array_size(vec); i++)
        if ((float)json_number_value(json_array_get(vec, i)) != w[7 * D + i] / 4.0f) quarter = 0;
    CHECK(quarter);
    json_decref(j);
    free(w);
    st_close(f);
}

/* saed_feature_cache_generation_records from /metrics, -1 when missing. */
static long long cache_gen_records(srv *s)
{
    resp r;
    http(s, "GET", "/metrics", NULL, NULL, &r);
    const char *m = r.body ? strstr(r.body, "\nsaed_feature_cache_generation_records ") : NULL;
    long long n = m ? atoll(m + strlen("\nsaed_feature_cache_generation_records ")) : -1;
    resp_free(&r);
    return n;
}

TEST(api_feature_reads)
{
    char root[] = "/tmp/saed-feature-test-XXXXXX";
    CHECK(mkdtemp(root) != NULL);
    char corpus[300], roots[600], body[1200], url[512];
    snprintf(corpus, sizeof corpus, "%s/corpus.txt", root);
    tests_write_corpus(corpus, 60, 40, 7);
    snprintf(roots, sizeof roots, "tests/data:%s", root);
    srv s;
    if (srv_fresh(&s, url, sizeof url,
                  (const char *const[]){"--migrate", "--data-roots", roots, "--workers", "1", "--api-keys", KEY, NULL}))
        return;
    json_decref(post_json(&s, "/api/models", "{\"id\":\"tiny-a\",\"path\":\"tests/data/models/tiny-a\"}", 201));
    json_decref(post_json(&s, "/api/saes", "{\"modelId\":\"tiny-a\",\"path\":\"tests/data/sae/tiny-a-res-standard\",\"setName\":\"std\"}", 201));

    /* Before the job: no feature rows yet. Upstream's message, one error shape. */
    json_t *j = get_json(&s, "/api/feature/tiny-a/1-std/7", NULL, 404);
    CHECK_CONTAINS(json_string_value(json_object_get(j, "message")), "The model, source, or feature you specified is not available");
    json_decref(j);

    snprintf(body, sizeof body, "{\"modelId\":\"tiny-a\",\"saeId\":\"1-std\",\"dataset\":{\"path\":\"%s\",\"format\":\"text\"},"
             "\"nPrompts\":24,\"nTokensInPrompt\":16,\"batchPrompts\":8,\"seed\":3}", corpus);
    j = post_json(&s, "/api/dashboard-jobs", body, 201);
    long long id = (long long)json_integer_value(json_object_get(j, "id"));
    json_decref(j);
    if (!wait_job(&s, id)) {
        t_fail(__FILE__, __LINE__, "the dashboard job did not complete");
        srv_stop(&s);
        return;
    }

    /* One feature against the rows the job stored. */
    j = get_json(&s, "/api/feature/tiny-a/1-std/7", NULL, 200);
    CHECK_STR(json_string_value(json_object_get(j, "index")), "7");
    CHECK_STR(json_string_value(json_object_get(j, "layer")), "1-std");
    CHECK_STR(json_string_value(json_object_get(j, "modelId")), "tiny-a");
    CHECK_STR(json_string_value(json_object_get(json_object_get(j, "model"), "id")), "tiny-a");
    CHECK_STR(json_string_value(json_object_get(json_object_get(j, "source"), "id")), "1-std");
    CHECK_INT(json_integer_value(json_object_get(json_object_get(j, "source"), "num_prompts")), 24);
    CHECK_STR(json_string_value(json_object_get(json_object_get(j, "sourceSet"), "name")), "std");
    CHECK_INT(json_array_size(json_object_get(j, "lists")), 0);
    CHECK_INT(json_array_size(json_object_get(j, "comments")), 0);
    CHECK_INT(json_array_size(json_object_get(j, "activations")),
              tdb_scalar(url, "SELECT count(*) FROM activations WHERE layer='1-std' AND index='7'"));
    CHECK(json_array_size(json_object_get(j, "activations")) > 0);
    CHECK_INT(tdb_scalar(url, "SELECT round(frac_nonzero * 1e9) FROM features WHERE layer='1-std' AND index='7'"),
              (long long)llround(json_number_value(json_object_get(j, "frac_nonzero")) * 1e9));
    json_t *a0 = json_array_get(json_object_get(j, "activations"), 0);
    CHECK_STR(json_string_value(json_object_get(a0, "index")), "7");
    CHECK(json_is_array(json_object_get(a0, "tokens")) && json_array_size(json_object_get(a0, "tokens")) == 16);
    CHECK(json_object_get(a0, "binMin") && json_object_get(a0, "qualifyingTokenIndex"));
    char *ref = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(j);

    /* Compatibility: trailing slash, leading zeros, a wrong key on a read route (anonymous). */
    static const char *const same_paths[] = {"/api/feature/tiny-a/1-std/7/", "/api/feature/tiny-a/1-std/007"};
    for (int i = 0; i < 2; i++) {
        j = get_json(&s, same_paths[i], NULL, 200);
        char *d = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
        CHECK_STR(d, ref);
        free(d);
        json_decref(j);
    }
    j = get_json(&s, "/api/feature/tiny-a/1-std/7", (const char *const[]){"x-api-key: not-a-valid-key", NULL}, 200);
    char *d = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    CHECK_STR(d, ref);
    free(d);
    json_decref(j);
    json_decref(get_json(&s, "/api/feature/tiny-a/1-std/512", NULL, 404));
    json_decref(get_json(&s, "/api/feature/tiny-a/1-std/abc", NULL, 404));
    json_decref(get_json(&s, "/api/feature/tiny-a/9-none/1", NULL, 404));
    json_decref(get_json(&s, "/api/feature/nope/1-std/1", NULL, 404));

    /* Every feature against `saed dashboards` on the same inputs. */
    check_against_cli(&s, corpus, root);

    /* POST /api/features: request order, aliases, unknown ones left out, maxActsToReturn. */
    j = post_json(&s, "/api/features",
                  "[{\"modelId\":\"tiny-a\",\"layer\":\"1-std\",\"index\":7,\"maxActsToReturn\":2},"
                  "{\"modelId\":\"tiny-a\",\"source\":\"1-std\",\"index\":\"3\",\"ignored\":true},"
                  "{\"modelId\":\"tiny-a\",\"layer\":\"1-std\",\"index\":\"99999\"},"
                  "{\"modelId\":\"tiny-a\",\"layer\":\"1-std\",\"index\":0}]", 200);
    CHECK_INT(json_array_size(j), 3);
    CHECK_STR(json_string_value(json_object_get(json_array_get(j, 0), "index")), "7");
    CHECK_STR(json_string_value(json_object_get(json_array_get(j, 1), "index")), "3");
    CHECK_STR(json_string_value(json_object_get(json_array_get(j, 2), "index")), "0");
    CHECK_INT(json_array_size(json_object_get(json_array_get(j, 0), "activations")), 2);
    CHECK_INT(json_array_size(json_object_get(json_array_get(j, 2), "activations")),
              tdb_scalar(url, "SELECT count(*) FROM activations WHERE layer='1-std' AND index='0'"));
    json_decref(j);
    json_decref(post_json(&s, "/api/features", "[]", 200));
    /* A wrong key on a read route is ignored here too (anonymous, as upstream). */
    resp wr;
    http(&s, "POST", "/api/features", (const char *const[]){"x-api-key: not-a-valid-key", NULL},
         "[{\"modelId\":\"tiny-a\",\"layer\":\"1-std\",\"index\":7}]", &wr);
    CHECK_INT(wr.status, 200);
    resp_free(&wr);
    http(&s, "HEAD", "/api/feature/tiny-a/1-std/7", NULL, NULL, &wr);
    CHECK_INT(wr.status, 200);
    resp_free(&wr);
    char *many = malloc(300 * 64);
    strcpy(many, "[");
    for (int i = 0; i < 257; i++) strcat(many, i ? ",{\"modelId\":\"m\",\"layer\":\"l\",\"index\":1}" : "{\"modelId\":\"m\",\"layer\":\"l\",\"index\":1}");
    strcat(many, "]");
    j = post_json(&s, "/api/features", many, 400);
    CHECK_CONTAINS(json_string_value(json_object_get(j, "message")), "at most 256");
    json_decref(j);
    free(many);
    j = post_json(&s, "/api/features", "{\"modelId\":\"tiny-a\"}", 400);
    json_decref(j);
    j = post_json(&s, "/api/features", "[{\"layer\":\"1-std\",\"index\":1}]", 400);
    CHECK_CONTAINS(json_string_value(json_object_get(j, "message")), "[0].modelId");
    json_decref(j);
    j = post_json(&s, "/api/features", "[{\"modelId\":\"tiny-a\",\"layer\":\"1-std\",\"index\":1,\"maxActsToReturn\":-3}]", 400);
    CHECK_CONTAINS(json_string_value(json_object_get(j, "message")), "maxActsToReturn");
    json_decref(j);
    json_decref(post_json(&s, "/api/features", "[{\"modelId\":", 400));

    check_vector(&s);
    check_vector_norm_scaling(&s, root);

    /* The cache follows a write by another process (psql here), told by NOTIFY. */
    json_decref(get_json(&s, "/api/feature/tiny-a/1-std/9", NULL, 200));
    j = get_json(&s, "/api/feature/tiny-a/1-std/9", NULL, 200);
    CHECK_INT(json_array_size(json_object_get(j, "explanations")), 0);
    json_decref(j);
    CHECK_INT(tdb_exec(url, "INSERT INTO explanations (\"modelId\", layer, index, description) VALUES ('tiny-a', '1-std', '9', 'added elsewhere')"), 0);
    int seen = 0;
    for (int i = 0; i < 50 && !seen; i++) {
        j = get_json(&s, "/api/feature/tiny-a/1-std/9", NULL, 200);
        seen = !strcmp(json_string_value(json_object_get(json_array_get(json_object_get(j, "explanations"), 0), "description")) ?: "",
                       "added elsewhere");
        json_decref(j);
        if (!seen) usleep(100000);
    }
    CHECK(seen);
    /* Requests for features that do not exist leave nothing in the cache: its generation
     * records are one per model and SAE served, however many unknown ids were asked for. */
    resp r;
    long long recs0 = cache_gen_records(&s);
    CHECK_INT(recs0, 2); /* "tiny-a/" and "tiny-a/1-std" */
    for (int i = 0; i < 120; i++) {
        char p[96];
        snprintf(p, sizeof p, i % 2 ? "/api/feature/tiny-a/%d-none/1" : "/api/feature/m%d/1-std/1", i);
        json_decref(get_json(&s, p, NULL, 404));
    }
    CHECK_INT(cache_gen_records(&s), recs0);
    http(&s, "GET", "/metrics", NULL, NULL, &r);
    CHECK_CONTAINS(r.body, "saed_feature_cache_listening 1");
    CHECK(!strstr(r.body, "saed_feature_cache_requests_total{result=\"hit\"} 0\n"));
    resp_free(&r);
    free(ref);
    CHECK_INT(srv_stop(&s), 0);

    /* Without the cache the same answers come straight from the database. */
    if (srv_start(&s, url, (const char *const[]){"--feature-cache", "0", "--workers", "0", NULL}) == 0) {
        j = get_json(&s, "/api/feature/tiny-a/1-std/9", NULL, 200);
        CHECK_STR(json_string_value(json_object_get(json_array_get(json_object_get(j, "explanations"), 0), "description")),
                  "added elsewhere");
        json_decref(j);
        http(&s, "GET", "/metrics", NULL, NULL, &r);
        CHECK(!strstr(r.body, "saed_feature_cache"));
        resp_free(&r);
        CHECK_INT(srv_stop(&s), 0);
    } else {
        t_fail(__FILE__, __LINE__, "saed did not restart");
    }
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    if (!t_failed_now()) CHECK_INT(system(cmd), 0); /* kept for a look when something failed */
}
