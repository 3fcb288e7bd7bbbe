/* unit_families.c: the rotary families (Llama, Mistral, Qwen2, Gemma-2, GPT-NeoX) on the CPU
 * backend against tests/data/families/: tiny random checkpoints in HF layout and an
 * independent float64 numpy forward written from HF's modeling code with TransformerLens' hook
 * definitions (tests/ref/families.py). Every hook of every layer and the logits at every
 * position, raw and with TransformerLens processing; SAE encodes on three of the hooks; the
 * KV cache against a full forward; config errors that name their field. */
#include <dirent.h>   // defines: opendir, readdir
#include <jansson.h>  // defines: json_loads, json_object_foreach
#include <math.h>     // defines: fabs
#include <stdio.h>    // defines: fopen, getline
#include <stdlib.h>   // defines: malloc, free
#include <string.h>   // defines: memcpy, strcmp
#include <sys/stat.h> // defines: mkdir

#include "engine/model.h"
#include "engine/safetensors.h"
#include "engine/sae.h"
#include "tests/t.h"

#define FAM_DIR "tests/data/families"
/* fp32 against float64: the reference's values are O(1), so 1e-4 absolute with a relative
 * term for the few logits and pre-activations above 10. */
#define FAM_ATOL 1e-4
#define FAM_RTOL 1e-4

typedef struct fam_cap {
    char name[96];
    hook_point hp;
    float *data;
    int rows, width;
} fam_cap;

static int fam_cap_fn(void *ud, hook_point hp, float *act, int B, int T, int width)
{
    (void)hp;
    fam_cap *c = ud;
    size_t n = (size_t)B * T * width;
    free(c->data);
    c->data = malloc(sizeof(float) * n);
    memcpy(c->data, act, sizeof(float) * n);
    c->rows = B * T;
    c->width = width;
    return 0;
}

/* Worst (|x − ref| − atol − rtol·|ref|) over a capture of rows × width against JSON
 * [rows][width]; > 0 means out of tolerance. *at gets the worst element's index. */
static double fam_excess(const float *x, int rows, int width, json_t *ref, double *absdiff, size_t *at)
{
    double worst = -1e30;
    *absdiff = 0;
    if (!json_is_array(ref) || (int)json_array_size(ref) != rows) return 1e30;
    for (int r = 0; r < rows; r++) {
        json_t *row = json_array_get(ref, (size_t)r);
        if ((int)json_array_size(row) != width) return 1e30;
        for (int i = 0; i < width; i++) {
            double want = json_number_value(json_array_get(row, (size_t)i));
            double d = fabs(x[(size_t)r * width + i] - want);
            double e = d - FAM_ATOL - FAM_RTOL * fabs(want);
            if (d > *absdiff) *absdiff = d;
            if (e > worst) {
                worst = e;
                *at = (size_t)r * width + i;
            }
        }
    }
    return worst;
}

static int32_t *fam_ids(json_t *line, int *T)
{
    json_t *j = json_object_get(line, "ids");
    *T = (int)json_array_size(j);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(*T ? *T : 1));
    for (int t = 0; t < *T; t++) ids[t] = (int32_t)json_integer_value(json_array_get(j, (size_t)t));
    return ids;
}

/* One forward.jsonl line: every listed hook and (raw lines) the logits. Returns the number of
 * values compared. */
static long fam_check_line(model *m, const char *dir, json_t *line)
{
    char err[512];
    const char *proc_s = json_string_value(json_object_get(line, "processing"));
    int proc = proc_s && !strcmp(proc_s, "tl") ? model_processing_parse("tl") : PROC_NONE;
    const char *case_name = json_string_value(json_object_get(line, "name"));
    int T;
    int32_t *ids = fam_ids(line, &T);
    json_t *hooks = json_object_get(line, "hooks");
    size_t nh = json_object_size(hooks);
    fam_cap *caps = calloc(nh ? nh : 1, sizeof *caps);
    hook_req *reqs = calloc(nh ? nh : 1, sizeof *reqs);
    const char *key;
    json_t *val;
    size_t i = 0;
    json_object_foreach(hooks, key, val)
    {
        snprintf(caps[i].name, sizeof caps[i].name, "%s", key);
        if (hook_parse(key, model_config(m)->n_layer, &caps[i].hp, err, sizeof err)) {
            t_fail(__FILE__, __LINE__, "%s: hook %s: %s", dir, key, err);
            continue;
        }
        reqs[i] = (hook_req){caps[i].hp, fam_cap_fn, &caps[i], 0};
        i++;
    }
    const int V = model_config(m)->vocab_size;
    json_t *jlog = json_object_get(line, "logits");
    float *logits = jlog ? malloc(sizeof(float) * (size_t)T * V) : NULL;
    fwd_opts o = {.processing = proc, .hooks = reqs, .nhooks = (int)i, .logits = logits};
    long compared = 0;
    if (model_forward(m, ids, 1, T, &o, err, sizeof err)) {
        t_fail(__FILE__, __LINE__, "%s %s: forward: %s", dir, case_name, err);
    } else {
        for (size_t h = 0; h < i; h++) {
            double d;
            size_t at = 0;
            json_t *ref = json_object_get(hooks, caps[h].name);
            int rows = caps[h].rows, width = caps[h].width;
            if (caps[h].hp.kind == HOOK_PATTERN) {
                /* saed: (NH, T, T); the reference: T rows of NH·T (head-major per query) */
                int NH = model_config(m)->n_head;
                float *p = malloc(sizeof(float) * (size_t)T * NH * T);
                for (int hh = 0; hh < NH; hh++)
                    for (int q = 0; q < T; q++)
                        memcpy(p + ((size_t)q * NH + hh) * T, caps[h].data + ((size_t)hh * T + q) * T, sizeof(float) * T);
                free(caps[h].data);
                caps[h].data = p;
                rows = T;
                width = NH * T;
            }
            if (!caps[h].data) {
                t_fail(__FILE__, __LINE__, "%s %s: hook %s was never called", dir, case_name, caps[h].name);
                continue;
            }
            double e = fam_excess(caps[h].data, rows, width, ref, &d, &at);
            if (e > 0)
                t_fail(__FILE__, __LINE__, "%s %s (%s): %s differs by %.3g at element %zu (%d×%d)", dir, case_name,
                       proc_s ? proc_s : "none", caps[h].name, d, at, rows, width);
            compared += (long)rows * width;
        }
        if (jlog) {
            double d;
            size_t at = 0;
            if (fam_excess(logits, T, V, jlog, &d, &at) > 0)
                t_fail(__FILE__, __LINE__, "%s %s: logits differ by %.3g at element %zu", dir, case_name, d, at);
            compared += (long)T * V;
        }
    }
    for (size_t h = 0; h < nh; h++) free(caps[h].data);
    free(caps);
    free(reqs);
    free(logits);
    free(ids);
    return compared;
}

static json_t *fam_next_line(FILE *f)
{
    char *buf = NULL;
    size_t cap = 0;
    json_t *j = NULL;
    while (!j && getline(&buf, &cap, f) > 0) {
        if (buf[0] == '\n') continue;
        json_error_t je;
        j = json_loads(buf, 0, &je);
        if (!j) t_fail(__FILE__, __LINE__, "bad JSON line: %s", je.text);
    }
    free(buf);
    return j;
}

/* The SAE encodes of one sae-* folder against its sae_cases.jsonl. */
static void fam_check_sae(model *m, const char *mdir, const char *sdir, long *compared)
{
    char err[512], path[1024];
    saed_backend *be = model_backend(m);
    sae_load_opts lo = {0};
    sae *s = sae_load(sdir, be, &lo, err, sizeof err);
    if (!s) {
        t_fail(__FILE__, __LINE__, "%s: sae_load: %s", sdir, err);
        return;
    }
    const sae_cfg *sc = sae_config(s);
    hook_point hp;
    if (sae_cfg_check_model(sc, model_config(m), &hp, err, sizeof err)) {
        t_fail(__FILE__, __LINE__, "%s: %s", sdir, err);
        sae_free(s);
        return;
    }
    snprintf(path, sizeof path, "%s/sae_cases.jsonl", sdir);
    FILE *f = fopen(path, "r");
    if (!f) {
        t_fail(__FILE__, __LINE__, "%s: missing", path);
        sae_free(s);
        return;
    }
    json_t *line;
    int lines = 0;
    while ((line = fam_next_line(f))) {
        int T;
        int32_t *ids = fam_ids(line, &T);
        fam_cap c;
        memset(&c, 0, sizeof c);
        hook_req rq = {hp, fam_cap_fn, &c, 0};
        fwd_opts o = {.processing = sae_cfg_processing(sc), .hooks = &rq, .nhooks = 1};
        sae_sparse sp = {0};
        if (model_forward(m, ids, 1, T, &o, err, sizeof err) || sae_encode_sparse(s, c.data, T, &sp, err, sizeof err)) {
            t_fail(__FILE__, __LINE__, "%s: %s", sdir, err);
        } else {
            json_t *acts = json_object_get(line, "acts");
            for (int t = 0; t < T; t++) {
                json_t *want = json_array_get(acts, (size_t)t);
                /* the same features fire (values well away from the thresholds), same values */
                int n = (int)json_array_size(want), ok = sp.count[t] == n;
                for (int j = 0; ok && j < n; j++) {
                    json_t *pair = json_array_get(want, (size_t)j);
                    int idx = (int)json_integer_value(json_array_get(pair, 0));
                    double v = json_number_value(json_array_get(pair, 1));
                    int found = 0;
                    for (int q = 0; q < sp.count[t]; q++)
                        if (sp.idx[sp.offset[t] + q] == idx) {
                            found = 1;
                            if (fabs(sp.val[sp.offset[t] + q] - v) > FAM_ATOL + FAM_RTOL * fabs(v)) ok = 0;
                        }
                    ok = ok && found;
                    (*compared)++;
                }
                if (!ok)
                    t_fail(__FILE__, __LINE__, "%s %s: token %d: %d features fire, the reference has %d (or values differ)",
                           mdir, sdir, t, sp.count[t], n);
            }
        }
        sae_sparse_free(&sp);
        free(c.data);
        free(ids);
        json_decref(line);
        lines++;
    }
    fclose(f);
    CHECK(lines > 0);
    sae_free(s);
}

TEST(families_forward_matches_float64_reference)
{
    DIR *d = opendir(FAM_DIR);
    if (!d) {
        t_fail(__FILE__, __LINE__, "%s is missing", FAM_DIR);
        return;
    }
    saed_backend *be = backend_cpu_open();
    struct dirent *e;
    int models = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char dir[512], path[1024], err[512];
        snprintf(dir, sizeof dir, "%s/%s", FAM_DIR, e->d_name);
        snprintf(path, sizeof path, "%s/forward.jsonl", dir);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        model *m = model_load(dir, be, err, sizeof err);
        if (!m) {
            t_fail(__FILE__, __LINE__, "%s: %s", dir, err);
            fclose(f);
            continue;
        }
        long compared = 0;
        int lines = 0;
        json_t *line;
        while ((line = fam_next_line(f))) {
            compared += fam_check_line(m, e->d_name, line);
            json_decref(line);
            lines++;
        }
        fclose(f);
        DIR *sd = opendir(dir);
        struct dirent *se;
        while (sd && (se = readdir(sd))) {
            if (strncmp(se->d_name, "sae-", 4)) continue;
            char sdir[1024];
            snprintf(sdir, sizeof sdir, "%s/%s", dir, se->d_name);
            fam_check_sae(m, e->d_name, sdir, &compared);
        }
        if (sd) closedir(sd);
        printf("    %-12s %s: %d cases, %ld values within %g + %g·|ref|\n", e->d_name, model_config(m)->architecture,
               lines, compared, FAM_ATOL, FAM_RTOL);
        CHECK(lines >= 2);
        model_free(m);
        models++;
    }
    closedir(d);
    CHECK(models >= 7);
    backend_close(be);
}

/* Incremental decoding through the KV cache (rotary positions continue at pos0, GQA caches the
 * key/value heads only, windows slide over cached keys) gives the full forward's logits. */
TEST(families_kv_cache_matches_full_forward)
{
    static const char *const names[] = {"llama-gqa", "mistral-swa", "gemma2", "pythia", "qwen2-bias"};
    saed_backend *be = backend_cpu_open();
    for (size_t n = 0; n < sizeof names / sizeof names[0]; n++) {
        char dir[256], err[512];
        snprintf(dir, sizeof dir, "%s/%s", FAM_DIR, names[n]);
        model *m = model_load(dir, be, err, sizeof err);
        if (!m) {
            t_fail(__FILE__, __LINE__, "%s: %s", dir, err);
            continue;
        }
        const int T = 11, V = model_config(m)->vocab_size;
        int32_t ids[11];
        for (int t = 0; t < T; t++) ids[t] = (int32_t)((t * 37 + 5) % V);
        float *full = malloc(sizeof(float) * T * V), *step = malloc(sizeof(float) * V);
        fwd_opts fo = {.logits = full};
        CHECK_INT(model_forward(m, ids, 1, T, &fo, err, sizeof err), 0);
        kv_cache *kc = kv_cache_new(m, 1, T, err, sizeof err);
        CHECK(kc != NULL);
        /* a 5-token prefill, then one token at a time */
        float *pre = malloc(sizeof(float) * 5 * V);
        fwd_opts po = {.logits = pre, .cache = kc};
        CHECK_INT(model_forward(m, ids, 1, 5, &po, err, sizeof err), 0);
        double worst = 0;
        for (int i = 0; i < 5 * V; i++) worst = fmax(worst, fabs(pre[i] - full[i]));
        for (int t = 5; t < T; t++) {
            fwd_opts so = {.logits = step, .cache = kc};
            CHECK_INT(model_forward(m, ids + t, 1, 1, &so, err, sizeof err), 0);
            for (int i = 0; i < V; i++) worst = fmax(worst, fabs(step[i] - full[(size_t)t * V + i]));
        }
        if (worst > 1e-4) t_fail(__FILE__, __LINE__, "%s: cached decoding differs by %.3g", names[n], worst);
        kv_cache_free(kc);
        free(full);
        free(step);
        free(pre);
        model_free(m);
    }
    backend_close(be);
}

/* A config the family table cannot honour is refused with the field's name. */
static void fam_config_error(const char *dir, const char *json, const char *want)
{
    char path[512], err[512];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    fputs(json, f);
    fclose(f);
    hf_config c;
    if (hf_config_load(dir, &c, err, sizeof err) == 0) {
        t_fail(__FILE__, __LINE__, "accepted %s", json);
        hf_config_free(&c);
        return;
    }
    CHECK_CONTAINS(err, want);
}

TEST(families_config_errors_name_the_field)
{
    char dir[] = "/tmp/saed-famcfg-XXXXXX", path[512];
    if (!mkdtemp(dir)) return;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    FILE *w = fopen(path, "w");
    fclose(w);
#define LLAMA "\"num_hidden_layers\":2,\"hidden_size\":32,\"num_attention_heads\":4,\"max_position_embeddings\":64," \
              "\"vocab_size\":128,\"intermediate_size\":64"
    fam_config_error(dir, "{\"model_type\":\"mamba\"}", "model_type 'mamba' is not supported");
    fam_config_error(dir, "{\"model_type\":\"llama\"," LLAMA ",\"rope_scaling\":{\"rope_type\":\"yarn\",\"factor\":4}}",
                     "rope_scaling.rope_type' 'yarn'");
    fam_config_error(dir, "{\"model_type\":\"llama\"," LLAMA ",\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":8}}",
                     "original_max_position_embeddings");
    fam_config_error(dir, "{\"model_type\":\"llama\"," LLAMA ",\"hidden_act\":\"relu2\"}", "hidden_act 'relu2'");
    fam_config_error(dir, "{\"model_type\":\"llama\"," LLAMA ",\"num_key_value_heads\":3}", "num_key_value_heads");
    fam_config_error(dir, "{\"model_type\":\"llama\",\"num_hidden_layers\":2,\"hidden_size\":32,\"num_attention_heads\":4,"
                          "\"max_position_embeddings\":64,\"vocab_size\":128}", "intermediate_size");
    fam_config_error(dir, "{\"model_type\":\"gemma2\"," LLAMA ",\"head_dim\":8,\"attn_logit_softcapping\":\"big\"}",
                     "attn_logit_softcapping");
    fam_config_error(dir, "{\"model_type\":\"gemma2\"," LLAMA ",\"head_dim\":8,\"layer_types\":[\"sliding_attention\"]}",
                     "layer_types");
    fam_config_error(dir, "{\"model_type\":\"gpt_neox\"," LLAMA ",\"rotary_pct\":0.1}", "rotary dims");
    fam_config_error(dir, "{\"model_type\":\"qwen2\"," LLAMA ",\"use_sliding_window\":\"yes\"}", "use_sliding_window");
#undef LLAMA
    /* a tensor the config implies is named when missing */
    char err[512];
    saed_backend *be = backend_cpu_open();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "cp tests/data/families/qwen2-bias/model.safetensors '%s/' && sed 's/\"qwen2\"/\"llama\"/' "
                              "tests/data/families/qwen2-bias/config.json | sed 's/\"tie_word_embeddings\": true/\"tie_word_embeddings\": false/' > '%s/config.json'",
             dir, dir);
    CHECK_INT(system(cmd), 0);
    model *m = model_load(dir, be, err, sizeof err);
    CHECK(m == NULL);
    if (m) model_free(m);
    else CHECK_CONTAINS(err, "lm_head.weight' is missing");
    backend_close(be);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) {}
}

/* A Gemma Scope-shaped SAE (jumprelu on attn.hook_z, reshape_activations hook_z) on the tiny
 * Gemma-2, whose hook_z is n_heads·head_dim = 48 wide against d_model 36: it loads, is checked
 * against the right width, and encodes as the JumpReLU formula computed here in double from
 * the same hook values. */
TEST(families_gemma_scope_shaped_hook_z_sae)
{
    char dir[] = "/tmp/saed-gscope-XXXXXX", path[600], err[512];
    if (!mkdtemp(dir)) return;
    const int D = 48, F = 40;
    float *we = malloc(sizeof(float) * D * F), *wd = malloc(sizeof(float) * F * D), be_[40], bd[48], th[40];
    uint64_t s = 99;
    for (int i = 0; i < D * F; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        we[i] = ((float)(s >> 40) / (float)(1 << 24) - 0.5f) * 0.8f;
        wd[i] = we[i] * 0.5f;
    }
    for (int i = 0; i < F; i++) be_[i] = 0.01f * (float)(i % 7), th[i] = 0.05f + 0.01f * (float)(i % 5);
    for (int i = 0; i < D; i++) bd[i] = 0.02f * (float)(i % 3) - 0.02f;
    int64_t s_we[2] = {D, F}, s_wd[2] = {F, D}, s_f[1] = {F}, s_d[1] = {D};
    st_wtensor t[5] = {{"W_enc", ST_F32, 2, s_we, we}, {"W_dec", ST_F32, 2, s_wd, wd}, {"b_enc", ST_F32, 1, s_f, be_},
                       {"b_dec", ST_F32, 1, s_d, bd}, {"threshold", ST_F32, 1, s_f, th}};
    snprintf(path, sizeof path, "%s/sae_weights.safetensors", dir);
    CHECK_INT(st_write(path, t, 5, NULL, err, sizeof err), 0);
    snprintf(path, sizeof path, "%s/cfg.json", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "{\"architecture\":\"jumprelu\",\"d_in\":%d,\"d_sae\":%d,\"dtype\":\"float32\",\"device\":\"cpu\","
               "\"apply_b_dec_to_input\":false,\"normalize_activations\":\"none\",\"reshape_activations\":\"hook_z\","
               "\"metadata\":{\"sae_lens_version\":\"6.18.0\",\"model_name\":\"gemma-2-2b\",\"hook_name\":\"blocks.1.attn.hook_z\","
               "\"hook_head_index\":null,\"prepend_bos\":true,\"context_size\":64,\"dataset_path\":\"x\","
               "\"model_from_pretrained_kwargs\":{}}}", D, F);
    fclose(f);
    saed_backend *be = backend_cpu_open();
    model *m = model_load(FAM_DIR "/gemma2", be, err, sizeof err);
    sae_load_opts lo = {0};
    sae *sa = m ? sae_load(dir, be, &lo, err, sizeof err) : NULL;
    if (!sa) {
        t_fail(__FILE__, __LINE__, "%s", err);
    } else {
        hook_point hp;
        CHECK_INT(sae_cfg_check_model(sae_config(sa), model_config(m), &hp, err, sizeof err), 0);
        CHECK_INT(hp.kind, HOOK_Z);
        const int32_t ids[7] = {2, 17, 40, 99, 3, 120, 8};
        fam_cap c;
        memset(&c, 0, sizeof c);
        hook_req rq = {hp, fam_cap_fn, &c, 0};
        fwd_opts o = {.hooks = &rq, .nhooks = 1};
        CHECK_INT(model_forward(m, ids, 1, 7, &o, err, sizeof err), 0);
        CHECK_INT(c.width, D);
        sae_sparse sp = {0};
        CHECK_INT(sae_encode_sparse(sa, c.data, 7, &sp, err, sizeof err), 0);
        int fired = 0;
        for (int tt = 0; tt < 7; tt++)
            for (int j = 0; j < F; j++) {
                double pre = be_[j];
                for (int i = 0; i < D; i++) pre += (double)c.data[tt * D + i] * we[i * F + j];
                double want = pre > th[j] ? pre : 0.0, got = 0.0;
                for (int q = 0; q < sp.count[tt]; q++)
                    if (sp.idx[sp.offset[tt] + q] == j) got = sp.val[sp.offset[tt] + q];
                fired += want > 0;
                if (fabs(got - want) > 1e-5 && fabs(pre - th[j]) > 1e-4)
                    t_fail(__FILE__, __LINE__, "token %d feature %d: %.7g, JumpReLU gives %.7g", tt, j, got, want);
            }
        CHECK(fired > 10);
        sae_sparse_free(&sp);
        free(c.data);
        sae_free(sa);
    }
    model_free(m);
    backend_close(be);
    free(we);
    free(wd);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) {}
}
