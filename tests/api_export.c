/* api_export.c: exports of stored dashboards, end to end on real PostgreSQL: a small dashboard
 * job fills features/activations, then GET /api/export/{modelId}/{saeId} (both formats) and
 * `saed export` are unpacked and checked against the database and against each other. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "tests/srv.h"
#include "tests/t.h"

#define KEY "export-key-0123456789abcdef"



/* Waits for a job to end (srv_wait_job); 1 when it completed. */
static int job_completed(srv *s, long long id, int seconds)
{
    json_t *j = srv_wait_job(s, id, seconds);
    const char *st = json_string_value(json_object_get(j, "state"));
    int ok = st && !strcmp(st, "completed");
    if (!j) t_fail(__FILE__, __LINE__, "job %lld did not finish", id);
    else if (!ok) t_fail(__FILE__, __LINE__, "job %lld ended %s", id, st ? st : "(no state)");
    json_decref(j);
    return ok;
}

/* First line of a psql query's output (unaligned, tuples only). */
static void query(const char *url, const char *sql, char *out, size_t n)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "psql '%s' -qtAc \"%s\"", url, sql);
    out[0] = '\0';
    FILE *p = popen(cmd, "r");
    if (!p) return;
    if (!fgets(out, (int)n, p)) out[0] = '\0';
    pclose(p);
    out[strcspn(out, "\n")] = '\0';
}

/* A whole file, gunzipped when it is gzip (zlib reads plain files as they are). NULL if absent. */
static char *slurp(const char *path)
{
    gzFile g = gzopen(path, "rb");
    if (!g) return NULL;
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap + 1);
    int k;
    while (buf && (k = gzread(g, buf + len, (unsigned)(cap - len))) > 0) {
        len += (size_t)k;
        if (len == cap) {
            char *b = realloc(buf, (cap *= 2) + 1);
            if (!b) free(buf);
            buf = b;
        }
    }
    gzclose(g);
    if (buf) buf[len] = '\0';
    return buf;
}

/* The lines of a JSON-lines buffer, parsed; NULL entries for lines that do not parse. */
static json_t *jsonl(const char *buf)
{
    json_t *a = json_array();
    for (const char *p = buf; p && *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        json_array_append_new(a, json_loadb(p, n, 0, NULL) ?: json_null());
        p = nl ? nl + 1 : p + n;
    }
    return a;
}

static int exists(const char *dir, const char *name)
{
    char p[1024];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return stat(p, &st) == 0;
}

static int same_bytes(const char *a_dir, const char *b_dir, const char *name)
{
    char a[1024], b[1024], cmd[2200];
    snprintf(a, sizeof a, "%s/%s", a_dir, name);
    snprintf(b, sizeof b, "%s/%s", b_dir, name);
    snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", a, b);
    int same = system(cmd) == 0;
    if (!same) t_fail(__FILE__, __LINE__, "%s differs between %s and %s", name, a_dir, b_dir);
    return same;
}

/* GET an export, unpack it into dir; the unpacked {model}-{sae} folder goes to out. */
static int get_export(srv *s, const char *query_s, const char *root, const char *dir, char *out, size_t n)
{
    char path[300], tgz[600], cmd[1400];
    snprintf(path, sizeof path, "/api/export/tiny-a/1-std%s", query_s);
    resp r;
    http(s, "GET", path, NULL, NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK_CONTAINS(r.ctype, "application/gzip");
    int ok = r.status == 200;
    snprintf(tgz, sizeof tgz, "%s/export.tar.gz", root);
    FILE *f = fopen(tgz, "wb");
    if (f) {
        fwrite(r.body, 1, r.len, f);
        fclose(f);
    }
    resp_free(&r);
    snprintf(cmd, sizeof cmd, "mkdir -p %s/%s && tar -xzf %s -C %s/%s", root, dir, tgz, root, dir);
    if (ok) CHECK_INT(system(cmd), 0);
    snprintf(out, n, "%s/%s/tiny-a-1-std", root, dir);
    return ok;
}

static void check_neuronpedia(const char *url, const char *np)
{
    char db[256], p[1024];
    static const char *const one_row[] = {"release.jsonl", "model.jsonl", "sourceset.jsonl", "source.jsonl"};
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", np, one_row[i]);
        char *b = slurp(p);
        json_t *a = jsonl(b);
        CHECK_INT(json_array_size(a), 1);
        CHECK(json_is_object(json_array_get(a, 0)));
        CHECK(b && !strstr(b, "\"path\"")); /* saed's own columns stay home */
        json_decref(a);
        free(b);
    }
    snprintf(p, sizeof p, "%s/source.jsonl", np);
    char *b = slurp(p);
    json_t *a = jsonl(b), *src = json_array_get(a, 0);
    CHECK_STR(json_string_value(json_object_get(src, "id")), "1-std");
    CHECK_STR(json_string_value(json_object_get(src, "setName")), "std");
    CHECK_INT(json_integer_value(json_object_get(src, "num_prompts")), 24);
    CHECK_INT(json_integer_value(json_object_get(src, "num_tokens_in_prompt")), 16);
    CHECK(json_is_true(json_object_get(src, "hasDashboards")));
    json_decref(a);
    free(b);

    /* Neuron rows: 512 of them in index order, index a string, values as stored. */
    snprintf(p, sizeof p, "%s/features/batch-0.jsonl.gz", np);
    b = slurp(p);
    CHECK(b != NULL);
    a = jsonl(b);
    CHECK_INT(json_array_size(a), 512);
    CHECK(b && !strstr(b, "indexInt") && !strstr(b, "jobId"));
    int in_order = 1;
    for (size_t i = 0; i < json_array_size(a); i++) {
        char want[16];
        snprintf(want, sizeof want, "%zu", i);
        const char *idx = json_string_value(json_object_get(json_array_get(a, i), "index"));
        if (!idx || strcmp(idx, want)) in_order = 0;
    }
    CHECK(in_order);
    json_t *f7 = json_array_get(a, 7);
    CHECK(json_is_string(json_object_get(f7, "index")));
    CHECK_STR(json_string_value(json_object_get(f7, "layer")), "1-std");
    CHECK_STR(json_string_value(json_object_get(f7, "modelId")), "tiny-a");
    query(url, "SELECT frac_nonzero FROM features WHERE layer='1-std' AND index='7'", db, sizeof db);
    CHECK(db[0] && strtod(db, NULL) == json_number_value(json_object_get(f7, "frac_nonzero")));
    query(url, "SELECT \\\"maxActApprox\\\" FROM features WHERE layer='1-std' AND index='7'", db, sizeof db);
    CHECK(db[0] && strtod(db, NULL) == json_number_value(json_object_get(f7, "maxActApprox")));
    query(url, "SELECT pos_str[1] FROM features WHERE layer='1-std' AND index='7'", db, sizeof db);
    CHECK_STR(json_string_value(json_array_get(json_object_get(f7, "pos_str"), 0)), db);
    query(url, "SELECT cardinality(freq_hist_data_bar_heights) FROM features WHERE layer='1-std' AND index='7'", db, sizeof db);
    CHECK_INT(json_array_size(json_object_get(f7, "freq_hist_data_bar_heights")), atoi(db));
    CHECK(json_object_get(f7, "createdAt") != NULL);
    json_decref(a);
    free(b);

    /* Activation rows: as many as stored, each a whole window with its BOS. */
    snprintf(p, sizeof p, "%s/activations/batch-0.jsonl.gz", np);
    b = slurp(p);
    a = jsonl(b);
    query(url, "SELECT count(*) FROM activations WHERE layer='1-std'", db, sizeof db);
    CHECK(atoi(db) > 100);
    CHECK_INT(json_array_size(a), atoi(db));
    CHECK(b && !strstr(b, "jobId"));
    int shapes_ok = 1;
    for (size_t i = 0; i < json_array_size(a); i++) {
        json_t *r = json_array_get(a, i);
        if (!json_is_string(json_object_get(r, "index")) ||
            json_array_size(json_object_get(r, "tokens")) != 16 || json_array_size(json_object_get(r, "values")) != 16)
            shapes_ok = 0;
    }
    CHECK(shapes_ok);
    json_decref(a);
    free(b);

    /* Explanations: the one stored, in batch 0. */
    snprintf(p, sizeof p, "%s/explanations/batch-0.jsonl.gz", np);
    b = slurp(p);
    a = jsonl(b);
    CHECK_INT(json_array_size(a), 1);
    CHECK_STR(json_string_value(json_object_get(json_array_get(a, 0), "description")), "river banks");
    CHECK_STR(json_string_value(json_object_get(json_array_get(a, 0), "index")), "5");
    CHECK(b && !strstr(b, "descriptionTsv"));
    json_decref(a);
    free(b);
    CHECK(!exists(np, "features/batch-1.jsonl.gz"));
}

/* SAEDashboard batches against the Neuronpedia rows of the same database. */
static void check_saedashboard(const char *url, const char *sd, const char *np)
{
    char p[1024], db[64];
    snprintf(p, sizeof p, "%s/run_settings.json", sd);
    char *b = slurp(p);
    json_t *rs = b ? json_loads(b, 0, NULL) : NULL;
    free(b);
    CHECK_INT(json_integer_value(json_object_get(rs, "n_prompts_total")), 24);
    CHECK_INT(json_integer_value(json_object_get(rs, "n_tokens_in_prompt")), 16);
    CHECK_INT(json_integer_value(json_object_get(rs, "layer")), 1);
    CHECK_INT(json_integer_value(json_object_get(rs, "n_features_at_a_time")), 128);
    CHECK_INT(json_integer_value(json_object_get(rs, "end_batch")), 4);
    CHECK_INT(json_integer_value(json_object_get(rs, "n_prompts_in_forward_pass")), 8);
    CHECK_STR(json_string_value(json_object_get(rs, "hook_name")), "blocks.1.hook_resid_pre");
    CHECK_STR(json_string_value(json_object_get(rs, "np_set_name")), "std");
    CHECK(json_is_true(json_object_get(rs, "prepend_bos")));
    json_decref(rs);

    snprintf(p, sizeof p, "%s/activations/batch-0.jsonl.gz", np);
    b = slurp(p);
    json_t *np_acts = jsonl(b);
    free(b);
    size_t k = 0, total = 0; /* next Neuronpedia activation row: the same order, BOS kept */
    int order_ok = 1, shape_ok = 1, window_ok = 1;
    for (int batch = 0; batch < 4; batch++) {
        char name[32];
        snprintf(name, sizeof name, "batch-%d.json", batch);
        snprintf(p, sizeof p, "%s/%s", sd, name);
        b = slurp(p);
        json_t *j = b ? json_loads(b, 0, NULL) : NULL;
        free(b);
        CHECK(j != NULL);
        CHECK_STR(json_string_value(json_object_get(j, "model_id")), "tiny-a");
        CHECK_STR(json_string_value(json_object_get(j, "sae_set")), "std");
        CHECK(json_is_null(json_object_get(j, "sae_id_suffix")));
        json_t *fs = json_object_get(j, "features");
        CHECK_INT(json_array_size(fs), 128);
        for (size_t i = 0; i < json_array_size(fs); i++) {
            json_t *f = json_array_get(fs, i);
            if (json_integer_value(json_object_get(f, "feature_index")) != batch * 128 + (json_int_t)i) order_ok = 0;
            if (!json_is_array(json_object_get(f, "vector")) || !json_is_number(json_object_get(f, "frac_nonzero")) ||
                json_integer_value(json_object_get(f, "n_prompts_total")) != 24)
                shape_ok = 0;
            json_t *acts = json_object_get(f, "activations");
            for (size_t e = 0; e < json_array_size(acts); e++, k++, total++) {
                json_t *a = json_array_get(acts, e), *n = json_array_get(np_acts, k);
                json_t *tok = json_object_get(a, "tokens"), *val = json_object_get(a, "values");
                json_t *ntok = json_object_get(n, "tokens"), *nval = json_object_get(n, "values");
                if (json_array_size(tok) != json_array_size(val) || json_array_size(tok) != 15 ||
                    !json_object_get(a, "bin_min") || !json_object_get(a, "bin_max") || !json_object_get(a, "bin_contains"))
                    shape_ok = 0;
                /* the same window without position 0, the BOS */
                if (strcmp(json_string_value(json_array_get(ntok, 0)) ?: "", "<|endoftext|>") ||
                    json_integer_value(json_object_get(a, "qualifying_token_index")) !=
                        json_integer_value(json_object_get(n, "qualifyingTokenIndex")) - 1 ||
                    json_number_value(json_array_get(val, 0)) != json_number_value(json_array_get(nval, 1)) ||
                    json_number_value(json_array_get(val, 14)) != json_number_value(json_array_get(nval, 15)) ||
                    json_number_value(json_object_get(a, "bin_max")) != json_number_value(json_object_get(n, "binMax")) ||
                    strcmp(json_string_value(json_array_get(tok, 0)) ?: "", json_string_value(json_array_get(ntok, 1)) ?: "-"))
                    window_ok = 0;
                if (atoi(json_string_value(json_object_get(n, "index")) ?: "-1") != batch * 128 + (int)i) window_ok = 0;
            }
        }
        json_decref(j);
    }
    CHECK(order_ok);
    CHECK(shape_ok);
    CHECK(window_ok);
    query(url, "SELECT count(*) FROM activations WHERE layer='1-std'", db, sizeof db);
    CHECK_INT(total, atoi(db));
    CHECK(!exists(sd, "batch-4.json"));
    json_decref(np_acts);
}

TEST(api_export_dashboards)
{
    char root[] = "/tmp/saed-export-test-XXXXXX";
    CHECK(mkdtemp(root) != NULL);
    char corpus[300], roots[600], body[1200], url[512];
    snprintf(corpus, sizeof corpus, "%s/corpus.txt", root);
    tests_write_corpus(corpus, 60, 40, 7);
    snprintf(roots, sizeof roots, "tests/data:%s", root);
    srv s;
    if (srv_fresh(&s, url, sizeof url, (const char *const[]){"--migrate", "--data-roots", roots, "--workers", "1", NULL})) return;
    resp r;
    http(&s, "POST", "/api/models", NULL, "{\"id\":\"tiny-a\",\"path\":\"tests/data/models/tiny-a\"}", &r);
    CHECK_INT(r.status, 201);
    resp_free(&r);
    http(&s, "POST", "/api/saes", NULL, "{\"modelId\":\"tiny-a\",\"path\":\"tests/data/sae/tiny-a-res-standard\",\"setName\":\"std\"}", &r);
    CHECK_INT(r.status, 201);
    resp_free(&r);
    http(&s, "POST", "/api/saes", NULL, "{\"modelId\":\"tiny-a\",\"path\":\"tests/data/sae/tiny-a-res-topk\",\"setName\":\"topk\"}", &r);
    CHECK_INT(r.status, 201);
    resp_free(&r);

    /* Before any job: no dashboards to export. Unknown SAEs, bad parameters. */
    http(&s, "GET", "/api/export/tiny-a/1-std", NULL, NULL, &r);
    CHECK_INT(r.status, 409);
    CHECK_CONTAINS(r.body, "no dashboards");
    resp_free(&r);
    http(&s, "GET", "/api/export/tiny-a/9-none", NULL, NULL, &r);
    CHECK_INT(r.status, 404);
    resp_free(&r);
    http(&s, "GET", "/api/export/nope/1-std?format=saedashboard", NULL, NULL, &r);
    CHECK_INT(r.status, 404);
    resp_free(&r);
    http(&s, "GET", "/api/export/tiny-a/1-std?format=csv", NULL, NULL, &r);
    CHECK_INT(r.status, 400);
    CHECK_CONTAINS(r.body, "format");
    resp_free(&r);
    http(&s, "GET", "/api/export/tiny-a/1-std?format=saedashboard&featuresPerBatch=0", NULL, NULL, &r);
    CHECK_INT(r.status, 400);
    CHECK_CONTAINS(r.body, "featuresPerBatch");
    resp_free(&r);

    snprintf(body, sizeof body, "{\"modelId\":\"tiny-a\",\"saeId\":\"1-std\",\"dataset\":{\"path\":\"%s\",\"format\":\"text\"},"
             "\"nPrompts\":24,\"nTokensInPrompt\":16,\"batchPrompts\":8,\"seed\":3}", corpus);
    http(&s, "POST", "/api/dashboard-jobs", NULL, body, &r);
    CHECK_INT(r.status, 201);
    json_t *j = resp_json(&r);
    long long id = (long long)json_integer_value(json_object_get(j, "id"));
    json_decref(j);
    resp_free(&r);
    if (!job_completed(&s, id, 120)) {
        srv_stop(&s);
        return;
    }
    CHECK_INT(tdb_exec(url, "INSERT INTO explanations (id, \"modelId\", layer, index, description, \"createdAt\", \"updatedAt\")"
                            " VALUES ('expl-5', 'tiny-a', '1-std', '5', 'river banks', '2024-05-01Z', '2024-05-01Z')"), 0);
    http(&s, "GET", "/api/export/tiny-a/1-topk", NULL, NULL, &r);
    CHECK_INT(r.status, 409);
    resp_free(&r);

    char np[700], sd[700];
    if (get_export(&s, "?format=neuronpedia", root, "api-np", np, sizeof np)) check_neuronpedia(url, np);
    if (get_export(&s, "?format=saedashboard", root, "api-sd", sd, sizeof sd)) check_saedashboard(url, sd, np);

    /* The CLI writes the same bytes. */
    char cli_np[400], cli_sd[400], cli_sd256[400], out[4096], err[4096];
    snprintf(cli_np, sizeof cli_np, "%s/cli-np", root);
    snprintf(cli_sd, sizeof cli_sd, "%s/cli-sd", root);
    snprintf(cli_sd256, sizeof cli_sd256, "%s/cli-sd256/nested", root);
    CHECK_INT(saed_run((const char *const[]){"export", "--model", "tiny-a", "--sae", "1-std", "--out", cli_np,
                                             "--database-url", url, NULL}, out, sizeof out, err, sizeof err), 0);
    static const char *const np_files[] = {"release.jsonl", "model.jsonl", "sourceset.jsonl", "source.jsonl",
                                           "features/batch-0.jsonl.gz", "activations/batch-0.jsonl.gz",
                                           "explanations/batch-0.jsonl.gz"};
    for (size_t i = 0; i < sizeof np_files / sizeof np_files[0]; i++) same_bytes(np, cli_np, np_files[i]);
    CHECK_INT(saed_run((const char *const[]){"export", "--model", "tiny-a", "--sae", "1-std", "--out", cli_sd, "--format",
                                             "saedashboard", "--database-url", url, NULL}, out, sizeof out, err, sizeof err), 0);
    static const char *const sd_files[] = {"run_settings.json", "batch-0.json", "batch-1.json", "batch-2.json", "batch-3.json"};
    for (size_t i = 0; i < sizeof sd_files / sizeof sd_files[0]; i++) same_bytes(sd, cli_sd, sd_files[i]);
    CHECK_INT(saed_run((const char *const[]){"export", "--model", "tiny-a", "--sae", "1-std", "--out", cli_sd256, "--format",
                                             "saedashboard", "--features-per-batch", "256", "--database-url", url, NULL},
                       out, sizeof out, err, sizeof err), 0);
    CHECK(exists(cli_sd256, "batch-1.json") && !exists(cli_sd256, "batch-2.json"));
    char p[600];
    snprintf(p, sizeof p, "%s/batch-1.json", cli_sd256);
    char *b = slurp(p);
    j = b ? json_loads(b, 0, NULL) : NULL;
    free(b);
    CHECK_INT(json_array_size(json_object_get(j, "features")), 256);
    CHECK_INT(json_integer_value(json_object_get(json_array_get(json_object_get(j, "features"), 0), "feature_index")), 256);
    json_decref(j);
    CHECK_INT(saed_run((const char *const[]){"export", "--model", "tiny-a", "--sae", "1-topk", "--out", cli_np,
                                             "--database-url", url, NULL}, out, sizeof out, err, sizeof err), 1);
    CHECK_CONTAINS(err, "no dashboards");
    CHECK_INT(saed_run((const char *const[]){"export", "--model", "tiny-a", "--sae", "1-std", "--out", cli_np, "--format",
                                             "csv", "--database-url", url, NULL}, out, sizeof out, err, sizeof err), 2);
    CHECK_INT(srv_stop(&s), 0);

    /* With keys configured, the export needs one. */
    if (srv_start(&s, url, (const char *const[]){"--api-keys", KEY, "--workers", "0", NULL})) {
        t_fail(__FILE__, __LINE__, "saed did not restart");
        return;
    }
    http(&s, "GET", "/api/export/tiny-a/1-std", NULL, NULL, &r);
    CHECK_INT(r.status, 401);
    resp_free(&r);
    http(&s, "GET", "/api/export/tiny-a/1-std?format=saedashboard", (const char *const[]){"x-api-key: " KEY, NULL}, NULL, &r);
    CHECK_INT(r.status, 200);
    resp_free(&r);
    CHECK_INT(srv_stop(&s), 0);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    CHECK_INT(system(cmd), 0);
}
