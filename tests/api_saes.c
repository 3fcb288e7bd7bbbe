/* api_saes.c: the SAE registry and export through the API and the CLI, on real PostgreSQL. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/safetensors.h"
#include "tests/srv.h"
#include "tests/t.h"

#define SAEDIR "tests/data/sae/tiny-a-res-jumprelu"

static void post(srv *s, const char *path, const char *body, int want, resp *r)
{
    http(s, "POST", path, NULL, body, r);
    if (r->status != want) t_fail(__FILE__, __LINE__, "POST %s %s: %d, wanted %d: %.300s", path, body, r->status, want, r->body);
}

/* Bytes of one tensor in a safetensors file, for bit-identity checks. */
static int same_tensor(const char *a, const char *b, const char *name)
{
    char err[512];
    st_file *fa = st_open(a, err, sizeof err), *fb = st_open(b, err, sizeof err);
    const st_tensor *ta = fa ? st_find(fa, name) : NULL, *tb = fb ? st_find(fb, name) : NULL;
    int same = ta && tb && ta->nbytes == tb->nbytes && ta->dtype == tb->dtype && !memcmp(ta->data, tb->data, ta->nbytes);
    st_close(fa);
    st_close(fb);
    return same;
}

TEST(api_saes_registry_and_export)
{
    char root[] = "/tmp/saed-root-XXXXXX";
    CHECK(mkdtemp(root) != NULL);
    char roots[600], link_out[400], cmd[1200];
    snprintf(roots, sizeof roots, "tests/data:%s", root);
    snprintf(link_out, sizeof link_out, "%s/escape", root);
    CHECK_INT(symlink("/etc", link_out), 0);
    /* An SAE whose d_in does not fit the model. */
    snprintf(cmd, sizeof cmd, "mkdir -p %s/bad && cp " SAEDIR "/sae_weights.safetensors %s/bad/ && "
             "sed 's/\"d_in\": 64/\"d_in\": 32/' " SAEDIR "/cfg.json > %s/bad/cfg.json", root, root, root);
    CHECK_INT(system(cmd), 0);

    char url[512];
    srv s;
    if (srv_fresh(&s, url, sizeof url, (const char *const[]){"--migrate", "--data-roots", roots, NULL})) return;
    resp r;
    post(&s, "/api/models", "{\"id\":\"tiny-a\",\"path\":\"tests/data/models/tiny-a\"}", 201, &r);
    resp_free(&r);

    post(&s, "/api/saes", "{\"modelId\":\"tiny-a\",\"path\":\"" SAEDIR "\",\"hfRepoId\":\"me/saes\",\"description\":\"golden\"}", 201, &r);
    json_t *j = resp_json(&r);
    CHECK_STR(json_string_value(json_object_get(j, "id")), "1-res");
    CHECK_STR(json_string_value(json_object_get(j, "setName")), "res");
    CHECK_STR(json_string_value(json_object_get(j, "hookName")), "blocks.1.hook_resid_pre");
    CHECK_STR(json_string_value(json_object_get(j, "architecture")), "jumprelu");
    CHECK_INT(json_integer_value(json_object_get(j, "layer")), 1);
    CHECK_INT(json_integer_value(json_object_get(j, "dIn")), 64);
    CHECK_INT(json_integer_value(json_object_get(j, "dSae")), 512);
    CHECK_STR(json_string_value(json_object_get(j, "description")), "golden");
    CHECK(json_is_object(json_object_get(j, "saelensConfig")));
    CHECK_STR(r.location, "/api/saes/tiny-a/1-res");
    json_decref(j);
    resp_free(&r);
    post(&s, "/api/saes", "{\"modelId\":\"tiny-a\",\"path\":\"tests/data/sae/tiny-a-res-topk\",\"setName\":\"topk\"}", 201, &r);
    CHECK_CONTAINS(r.body, "\"id\":\"1-topk\"");
    resp_free(&r);
    post(&s, "/api/saes", "{\"modelId\":\"tiny-a\",\"path\":\"" SAEDIR "\"}", 409, &r);
    resp_free(&r);
    post(&s, "/api/saes", "{\"modelId\":\"nope\",\"path\":\"" SAEDIR "\"}", 404, &r);
    resp_free(&r);
    post(&s, "/api/saes", "{\"path\":\"" SAEDIR "\"}", 400, &r);
    CHECK_CONTAINS(r.body, "modelId: required");
    resp_free(&r);
    /* Confinement: ../, a symlink leading out, a nonexistent path: all 403 alike. */
    post(&s, "/api/saes", "{\"modelId\":\"tiny-a\",\"path\":\"tests/data/../../etc\"}", 403, &r);
    resp_free(&r);
    char body[800];
    snprintf(body, sizeof body, "{\"modelId\":\"tiny-a\",\"path\":\"%s\"}", link_out);
    post(&s, "/api/saes", body, 403, &r);
    resp_free(&r);
    post(&s, "/api/saes", "{\"modelId\":\"tiny-a\",\"path\":\"tests/data/sae/nonexistent\"}", 403, &r);
    CHECK_CONTAINS(r.body, "path_forbidden");
    resp_free(&r);
    /* A confined directory whose cfg.json is a symlink leading out of the roots. */
    snprintf(cmd, sizeof cmd, "mkdir -p %s/sly && cp " SAEDIR "/sae_weights.safetensors %s/sly/ && "
             "cp " SAEDIR "/cfg.json /tmp/saed-outside-cfg.json && ln -s /tmp/saed-outside-cfg.json %s/sly/cfg.json",
             root, root, root);
    CHECK_INT(system(cmd), 0);
    snprintf(body, sizeof body, "{\"modelId\":\"tiny-a\",\"path\":\"%s/sly\"}", root);
    post(&s, "/api/saes", body, 403, &r);
    CHECK_CONTAINS(r.body, "cfg.json must be a regular file under SAED_DATA_ROOTS");
    resp_free(&r);
    unlink("/tmp/saed-outside-cfg.json");
    snprintf(body, sizeof body, "{\"modelId\":\"tiny-a\",\"path\":\"%s/bad\"}", root);
    post(&s, "/api/saes", body, 400, &r);
    CHECK_CONTAINS(r.body, "d_in");
    resp_free(&r);

    http(&s, "GET", "/api/saes?modelId=tiny-a", NULL, NULL, &r);
    CHECK_INT(r.status, 200);
    j = resp_json(&r);
    CHECK_INT(json_array_size(j), 2);
    json_decref(j);
    resp_free(&r);
    http(&s, "GET", "/api/saes?modelId=other", NULL, NULL, &r);
    CHECK_STR(r.body, "[]");
    resp_free(&r);
    http(&s, "GET", "/api/saes", NULL, NULL, &r);
    CHECK_INT(r.status, 200);
    resp_free(&r);
    http(&s, "GET", "/api/saes/tiny-a/1-topk", NULL, NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK_CONTAINS(r.body, "\"architecture\":\"topk\"");
    resp_free(&r);
    http(&s, "GET", "/api/saes/tiny-a/9-none", NULL, NULL, &r);
    CHECK_INT(r.status, 404);
    resp_free(&r);

    /* Export over HTTP, unpack, import the result again: bit-identical tensors. */
    http(&s, "GET", "/api/saes/tiny-a/1-res/export?format=saelens-v7", NULL, NULL, &r);
    CHECK_INT(r.status, 400);
    resp_free(&r);
    http(&s, "GET", "/api/saes/tiny-a/1-res/export", NULL, NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK_CONTAINS(r.ctype, "application/gzip");
    char tgz[500];
    snprintf(tgz, sizeof tgz, "%s/export.tar.gz", root);
    FILE *f = fopen(tgz, "wb");
    if (f) {
        fwrite(r.body, 1, r.len, f);
        fclose(f);
    }
    resp_free(&r);
    snprintf(cmd, sizeof cmd, "tar -xzf %s -C %s", tgz, root);
    CHECK_INT(system(cmd), 0);
    char exp_dir[500], a[600], b[600];
    snprintf(exp_dir, sizeof exp_dir, "%s/tiny-a-1-res", root);
    snprintf(a, sizeof a, "%s/sae_weights.safetensors", exp_dir);
    snprintf(b, sizeof b, "%s/sae_weights.safetensors", SAEDIR);
    CHECK(same_tensor(a, b, "W_enc") && same_tensor(a, b, "W_dec") && same_tensor(a, b, "threshold"));
    snprintf(a, sizeof a, "%s/pretrained_saes.yaml", exp_dir);
    f = fopen(a, "r");
    char yaml[2048] = "";
    if (f) {
        size_t n = fread(yaml, 1, sizeof yaml - 1, f);
        yaml[n] = '\0';
        fclose(f);
    }
    CHECK_CONTAINS(yaml, "repo_id: \"me/saes\"");
    CHECK_CONTAINS(yaml, "conversion_func: null");
    CHECK_CONTAINS(yaml, "id: \"blocks.1.hook_resid_pre\"");
    CHECK_CONTAINS(yaml, "neuronpedia: \"tiny-a/1-res\"");
    CHECK_CONTAINS(yaml, "l0: 0\n");
    snprintf(body, sizeof body, "{\"modelId\":\"tiny-a\",\"path\":\"%s\",\"id\":\"1-again\"}", exp_dir);
    post(&s, "/api/saes", body, 201, &r);
    CHECK_CONTAINS(r.body, "\"architecture\":\"jumprelu\"");
    resp_free(&r);

    /* Delete refused while a job references the SAE; model delete refused while SAEs exist. */
    CHECK_INT(tdb_exec(url, "INSERT INTO jobs (kind, \"modelId\", \"saeId\") VALUES ('dashboard', 'tiny-a', '1-res')"), 0);
    http(&s, "DELETE", "/api/saes/tiny-a/1-res", NULL, NULL, &r);
    CHECK_INT(r.status, 409);
    resp_free(&r);
    http(&s, "DELETE", "/api/models/tiny-a", NULL, NULL, &r);
    CHECK_INT(r.status, 409);
    resp_free(&r);
    CHECK_INT(tdb_exec(url, "DELETE FROM jobs"), 0);
    http(&s, "DELETE", "/api/saes/tiny-a/1-res", NULL, NULL, &r);
    CHECK_INT(r.status, 204);
    resp_free(&r);
    http(&s, "DELETE", "/api/saes/tiny-a/1-res", NULL, NULL, &r);
    CHECK_INT(r.status, 404);
    resp_free(&r);
    CHECK_INT(srv_stop(&s), 0);

    /* CLI: import-sae and export-sae (v5) through the same code. */
    char out[1 << 16], err[4096], v5[500];
    snprintf(v5, sizeof v5, "%s/v5", root);
    CHECK_INT(saed_run((const char *const[]){"import-sae", "--model", "tiny-a", "--path", "tests/data/sae/tiny-a-res-standard",
                                             "--set-name", "std", "--database-url", url, "--data-roots", roots, NULL},
                       out, sizeof out, err, sizeof err), 0);
    CHECK_CONTAINS(out, "\"id\":\"1-std\"");
    CHECK_INT(saed_run((const char *const[]){"import-sae", "--model", "tiny-a", "--path", "tests/data/sae/tiny-a-res-standard",
                                             "--set-name", "std", "--database-url", url, "--data-roots", roots, NULL},
                       out, sizeof out, err, sizeof err), 3);
    CHECK_INT(saed_run((const char *const[]){"export-sae", "--model", "tiny-a", "--sae", "1-std", "--out", v5, "--format",
                                             "saelens-v5", "--database-url", url, NULL},
                       out, sizeof out, err, sizeof err), 0);
    snprintf(a, sizeof a, "%s/cfg.json", v5);
    f = fopen(a, "r");
    char cfg[8192] = "";
    if (f) {
        size_t n = fread(cfg, 1, sizeof cfg - 1, f);
        cfg[n] = '\0';
        fclose(f);
    }
    CHECK_CONTAINS(cfg, "activation_fn_str");
    CHECK_CONTAINS(cfg, "blocks.1.hook_resid_pre");
    CHECK_INT(saed_run((const char *const[]){"export-sae", "--model", "tiny-a", "--sae", "1-none", "--out", v5,
                                             "--database-url", url, NULL}, out, sizeof out, err, sizeof err), 1);
    CHECK_CONTAINS(err, "not found");
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    CHECK_INT(system(cmd), 0);
}
