/* unit_live.c: live activations (engine/live.c) on tiny-a and the golden SAEs, against an
 * independent path: the model forward with a read hook, sae_encode_sparse (what `saed encode`
 * prints) and brute-force reductions over the dense activations. Also Neuronpedia's BOS
 * handling, the token limit and SAEs with different processing in one search. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/live.h"
#include "tests/t.h"

#define TINY "tests/data/models/tiny-a"
#define SAE_STD "tests/data/sae/tiny-a-res-standard"
#define SAE_JR "tests/data/sae/tiny-a-res-jumprelu"
#define SAE_TK "tests/data/sae/tiny-a-res-topk"
#define BOS 50256

typedef struct fixture {
    saed_backend *be;
    model *m;
    tokenizer *tok;
} fixture;

static int fx_open(fixture *f)
{
    char err[512];
    f->be = backend_cpu_open();
    f->m = model_load(TINY, f->be, err, sizeof err);
    f->tok = f->m ? tok_load_dir(TINY, err, sizeof err) : NULL;
    if (!f->tok) t_fail(__FILE__, __LINE__, "%s", err);
    return f->tok ? 0 : -1;
}

static void fx_close(fixture *f)
{
    tok_free(f->tok);
    model_free(f->m);
    backend_close(f->be);
}

static sae *load_sae(fixture *f, const char *dir)
{
    char err[512];
    sae_cfg c;
    if (sae_cfg_load(dir, &c, err, sizeof err)) {
        t_fail(__FILE__, __LINE__, "%s", err);
        return NULL;
    }
    sae_load_opts o = sae_dashboard_load_opts(&c);
    sae_cfg_free(&c);
    sae *s = sae_load(dir, f->be, &o, err, sizeof err);
    if (!s) t_fail(__FILE__, __LINE__, "%s", err);
    return s;
}

/* Reference: forward with the SAE's processing, its hook's rows, sae_encode_sparse → dense. */
typedef struct rows {
    float *x;
    int n, width;
} rows;

static int keep(void *ud, hook_point hp, float *act, int B, int T, int width)
{
    (void)hp;
    rows *r = ud;
    r->x = malloc(sizeof(float) * (size_t)B * T * width);
    memcpy(r->x, act, sizeof(float) * (size_t)B * T * width);
    r->n = B * T;
    r->width = width;
    return 0;
}

static float *reference_dense(fixture *f, sae *s, const int32_t *ids, int T)
{
    char err[512];
    const sae_cfg *c = sae_config(s);
    hook_point hp;
    int col0, ncols;
    if (sae_cfg_check_model(c, model_config(f->m), &hp, err, sizeof err)) return NULL;
    sae_cfg_hook_columns(c, model_config(f->m), &col0, &ncols);
    rows r = {0};
    hook_req h = {hp, keep, &r, 0};
    fwd_opts o = {.processing = sae_cfg_processing(c), .hooks = &h, .nhooks = 1};
    if (model_forward(f->m, ids, 1, T, &o, err, sizeof err)) return NULL;
    float *x = malloc(sizeof(float) * (size_t)T * c->d_in);
    for (int t = 0; t < T; t++) memcpy(x + (size_t)t * c->d_in, r.x + (size_t)t * r.width + col0, sizeof(float) * c->d_in);
    free(r.x);
    sae_sparse sp;
    if (sae_encode_sparse(s, x, T, &sp, err, sizeof err)) {
        free(x);
        return NULL;
    }
    float *dense = calloc((size_t)T * c->d_sae, sizeof(float));
    for (int t = 0; t < T; t++)
        for (int j = 0; j < sp.count[t]; j++) dense[(size_t)t * c->d_sae + sp.idx[sp.offset[t] + j]] = sp.val[sp.offset[t] + j];
    sae_sparse_free(&sp);
    free(x);
    return dense;
}

TEST(live_tokenize_like_neuronpedia)
{
    fixture f;
    if (fx_open(&f)) return;
    char err[256];
    int32_t *plain = NULL, *ids = NULL;
    int n = tok_encode(f.tok, "Hello world", 11, &plain, err, sizeof err);
    CHECK(n == 2);
    /* BOS prepended when missing. */
    int T = live_tokenize(f.tok, "Hello world", 11, 100, &ids, err, sizeof err);
    CHECK_INT(T, n + 1);
    if (T == n + 1) {
        CHECK_INT(ids[0], BOS);
        CHECK(!memcmp(ids + 1, plain, sizeof(int32_t) * n));
    }
    free(ids);
    /* Already there: not doubled; the BOS string anywhere is the special token. */
    const char *t2 = "<|endoftext|>Hello world<|endoftext|>Hello world";
    T = live_tokenize(f.tok, t2, strlen(t2), 100, &ids, err, sizeof err);
    CHECK_INT(T, 2 * n + 2);
    if (T == 2 * n + 2) {
        CHECK_INT(ids[0], BOS);
        CHECK_INT(ids[n + 1], BOS);
        CHECK(!memcmp(ids + n + 2, plain, sizeof(int32_t) * n));
    }
    free(ids);
    /* Empty text: the BOS alone. */
    T = live_tokenize(f.tok, "", 0, 100, &ids, err, sizeof err);
    CHECK_INT(T, 1);
    free(ids);
    /* The limit counts the BOS; a text too long in bytes is refused without tokenizing. */
    CHECK_INT(live_tokenize(f.tok, "Hello world", 11, 3, &ids, err, sizeof err), 3);
    free(ids);
    CHECK_INT(live_tokenize(f.tok, "Hello world", 11, 2, &ids, err, sizeof err), -2);
    CHECK(ids == NULL);
    size_t big = 5000;
    char *b = malloc(big);
    memset(b, 'a', big);
    CHECK_INT(live_tokenize(f.tok, b, big, 4, &ids, err, sizeof err), -2);
    free(b);
    free(plain);
    fx_close(&f);
}

TEST(live_feature_equals_sae_encode_with_neuronpedia_bos_handling)
{
    fixture f;
    if (fx_open(&f)) return;
    sae *s = load_sae(&f, SAE_JR);
    if (!s) {
        fx_close(&f);
        return;
    }
    char err[512];
    const char *text = "The quick brown fox<|endoftext|> jumps over the lazy dog again and again";
    int32_t *ids = NULL;
    int T = live_tokenize(f.tok, text, strlen(text), 128, &ids, err, sizeof err);
    CHECK(T > 10);
    float *ref = reference_dense(&f, s, ids, T);
    CHECK(ref != NULL);
    const int S = sae_config(s)->d_sae;
    /* A feature that fires somewhere past the BOS: the most active one at the last token. */
    int feat = 0;
    for (int i = 1; i < S; i++)
        if (ref[(size_t)(T - 1) * S + i] > ref[(size_t)(T - 1) * S + feat]) feat = i;
    CHECK(ref[(size_t)(T - 1) * S + feat] > 0);
    live_values v;
    CHECK_INT(live_feature(f.m, s, ids, T, feat, BOS, 0, &v, err, sizeof err), 0);
    CHECK_INT(v.first, 1);
    CHECK_INT(v.n, T - 1);
    float mx = -1e30f, mn = 1e30f;
    int am = -1;
    for (int t = 1; t < T; t++) {
        float want = ids[t] == BOS ? 0.0f : ref[(size_t)t * S + feat];
        if (v.values[t - 1] != want) t_fail(__FILE__, __LINE__, "token %d: %.9g != %.9g", t, v.values[t - 1], want);
        if (want > mx) {
            mx = want;
            am = t - 1;
        }
        if (want < mn) mn = want;
    }
    CHECK(v.max == mx && v.min == mn);
    CHECK_INT(v.argmax, am);
    /* The BOS inside the text is zeroed, not dropped. */
    int mid = -1;
    for (int t = 1; t < T; t++)
        if (ids[t] == BOS) mid = t;
    CHECK(mid > 1);
    if (mid > 1) CHECK(v.values[mid - 1] == 0.0f);
    live_values_free(&v);
    /* An index outside the SAE. */
    CHECK_INT(live_feature(f.m, s, ids, T, S, BOS, 0, &v, err, sizeof err), -1);
    CHECK_CONTAINS(err, "outside");
    free(ids);

    /* A text that starts with two BOS: ignoreBos drops the second as well. */
    const char *t2 = "<|endoftext|><|endoftext|>fox";
    T = live_tokenize(f.tok, t2, strlen(t2), 128, &ids, err, sizeof err);
    CHECK_INT(T, 3);
    CHECK_INT(live_feature(f.m, s, ids, T, feat, BOS, 0, &v, err, sizeof err), 0);
    CHECK_INT(v.n, 2);
    CHECK(v.values[0] == 0.0f);
    live_values_free(&v);
    CHECK_INT(live_feature(f.m, s, ids, T, feat, BOS, 1, &v, err, sizeof err), 0);
    CHECK_INT(v.first, 2);
    CHECK_INT(v.n, 1);
    CHECK_INT(v.argmax, 0);
    live_values_free(&v);
    free(ids);
    /* The BOS alone: nothing left. */
    T = live_tokenize(f.tok, "<|endoftext|>", 13, 128, &ids, err, sizeof err);
    CHECK_INT(T, 1);
    CHECK_INT(live_feature(f.m, s, ids, T, feat, BOS, 0, &v, err, sizeof err), 0);
    CHECK_INT(v.n, 0);
    CHECK_INT(v.argmax, -1);
    live_values_free(&v);
    free(ids);
    free(ref);
    sae_free(s);
    fx_close(&f);
}

TEST(live_topk_by_token_equals_brute_force)
{
    fixture f;
    if (fx_open(&f)) return;
    sae *s = load_sae(&f, SAE_STD);
    if (!s) {
        fx_close(&f);
        return;
    }
    char err[512];
    const char *text = "Sparse autoencoders find features in the residual stream of small transformers";
    int32_t *ids = NULL;
    int T = live_tokenize(f.tok, text, strlen(text), 128, &ids, err, sizeof err);
    float *ref = reference_dense(&f, s, ids, T);
    const int S = sae_config(s)->d_sae, K = 7;
    /* A density that rules out every third feature; NaN = unknown passes. */
    float *dens = malloc(sizeof(float) * S);
    for (int i = 0; i < S; i++) dens[i] = i % 3 == 0 ? 0.5f : i % 3 == 1 ? 0.001f : NAN;
    int32_t *idx = malloc(sizeof(int32_t) * (size_t)T * K);
    float *val = malloc(sizeof(float) * (size_t)T * K);
    int *cnt = malloc(sizeof(int) * (size_t)T);
    for (int pass = 0; pass < 2; pass++) {
        const float *d = pass ? dens : NULL;
        CHECK_INT(live_topk_by_token(f.m, s, ids, T, K, d, 0.01, idx, val, cnt, err, sizeof err), 0);
        for (int t = 0; t < T; t++) {
            /* Brute force: every allowed positive value, best K by (value desc, index asc). */
            int want = 0;
            for (int j = 0; j < K; j++) {
                int b = -1;
                for (int i = 0; i < S; i++) {
                    float x = ref[(size_t)t * S + i];
                    if (!(x > 0) || (d && i % 3 == 0)) continue;
                    int used = 0;
                    for (int q = 0; q < j; q++) used |= idx[(size_t)t * K + q] == i;
                    if (used) continue;
                    if (b < 0 || x > ref[(size_t)t * S + b]) b = i;
                }
                if (b < 0) break;
                want++;
                if (idx[(size_t)t * K + j] != b || val[(size_t)t * K + j] != ref[(size_t)t * S + b])
                    t_fail(__FILE__, __LINE__, "pass %d token %d rank %d: %d %.9g, want %d %.9g", pass, t, j,
                           idx[(size_t)t * K + j], val[(size_t)t * K + j], b, ref[(size_t)t * S + b]);
            }
            CHECK_INT(cnt[t], want);
        }
    }
    CHECK(cnt[T - 1] == K);
    free(idx);
    free(val);
    free(cnt);
    free(dens);
    free(ids);
    free(ref);
    sae_free(s);
    fx_close(&f);
}

/* Writes a copy of an SAE folder whose cfg asks for centered residual hooks. */
static int centered_copy(const char *src, char *dir, size_t n)
{
    snprintf(dir, n, "/tmp/saed-live-XXXXXX");
    if (!mkdtemp(dir)) return -1;
    char p[512], q[512], cwd[512];
    if (!getcwd(cwd, sizeof cwd)) return -1;
    snprintf(p, sizeof p, "%s/%s/sae_weights.safetensors", cwd, src);
    snprintf(q, sizeof q, "%s/sae_weights.safetensors", dir);
    if (symlink(p, q)) return -1;
    snprintf(p, sizeof p, "%s/cfg.json", src);
    FILE *in = fopen(p, "r");
    char buf[4096];
    size_t len = in ? fread(buf, 1, sizeof buf - 1, in) : 0;
    if (in) fclose(in);
    buf[len] = 0;
    char *k = strstr(buf, "\"model_from_pretrained_kwargs\": {}");
    if (!k) return -1;
    snprintf(q, sizeof q, "%s/cfg.json", dir);
    FILE *out = fopen(q, "w");
    if (!out) return -1;
    fprintf(out, "%.*s\"model_from_pretrained_kwargs\": {\"center_writing_weights\": true}%s", (int)(k - buf), buf,
            k + strlen("\"model_from_pretrained_kwargs\": {}"));
    fclose(out);
    return 0;
}

TEST(live_search_equals_brute_force_across_saes)
{
    fixture f;
    if (fx_open(&f)) return;
    char cdir[64];
    CHECK_INT(centered_copy(SAE_STD, cdir, sizeof cdir), 0);
    sae *s[3] = {load_sae(&f, SAE_STD), load_sae(&f, SAE_TK), load_sae(&f, cdir)};
    if (!s[0] || !s[1] || !s[2]) {
        for (int i = 0; i < 3; i++) sae_free(s[i]);
        fx_close(&f);
        return;
    }
    CHECK(sae_cfg_processing(sae_config(s[2])) != sae_cfg_processing(sae_config(s[0])));
    char err[512];
    const char *text = "Features of the residual stream respond to words like fox, dog and cat";
    int32_t *ids = NULL;
    int T = live_tokenize(f.tok, text, strlen(text), 128, &ids, err, sizeof err);
    float *ref[3];
    for (int i = 0; i < 3; i++) ref[i] = reference_dense(&f, s[i], ids, T);
    /* The centered copy sees other inputs, so its activations differ from the plain SAE's. */
    int differ = 0;
    for (int i = 0; i < T * 512 && !differ; i++) differ = ref[0][i] != ref[2][i];
    CHECK(differ);
    const int S = 512;
    int sort_pos[] = {3, 5, 5};
    float *dens = malloc(sizeof(float) * S);
    for (int i = 0; i < S; i++) dens[i] = i % 2 ? 0.9f : 0.0f;
    const float *dd[3] = {NULL, dens, NULL};
    for (int variant = 0; variant < 3; variant++) {
        live_search_opts o = {.n_results = 25, .zero_first = variant != 1, .max_density = -1};
        if (variant == 1) {
            o.sort_pos = sort_pos;
            o.n_sort = 3;
        }
        if (variant == 2) {
            o.density = dd;
            o.max_density = 0.5;
        }
        live_hit *h = NULL;
        int nh = 0;
        CHECK_INT(live_search(f.m, s, 3, ids, T, &o, &h, &nh, err, sizeof err), 0);
        /* Brute force: every (sae, feature) with its key, best 25. */
        typedef struct { float key; int sae, idx; } kk;
        kk *all = malloc(sizeof(kk) * 3 * S);
        int na = 0;
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < S; j++) {
                if (variant == 2 && i == 1 && j % 2) continue;
                float key = 0, mx = 0;
                for (int t = 0; t < T; t++) {
                    float v = t == 0 && o.zero_first ? 0.0f : ref[i][(size_t)t * S + j];
                    if (t == 0 || v > mx) mx = v;
                }
                if (o.n_sort)
                    for (int q = 0; q < o.n_sort; q++) key += ref[i][(size_t)sort_pos[q] * S + j];
                else
                    key = mx;
                if (key > 0) all[na++] = (kk){key, i, j};
            }
        int want = na < 25 ? na : 25;
        CHECK_INT(nh, want);
        for (int r = 0; r < nh && r < want; r++) {
            /* The r-th best of the brute-force list. */
            int b = -1;
            for (int a = 0; a < na; a++) {
                int taken = 0;
                for (int q = 0; q < r; q++) taken |= h[q].sae == all[a].sae && h[q].index == all[a].idx;
                if (taken) continue;
                if (b < 0 || all[a].key > all[b].key ||
                    (all[a].key == all[b].key && (all[a].sae < all[b].sae || (all[a].sae == all[b].sae && all[a].idx < all[b].idx))))
                    b = a;
            }
            if (h[r].sae != all[b].sae || h[r].index != all[b].idx || fabsf(h[r].key - all[b].key) > 1e-6f * fabsf(all[b].key))
                t_fail(__FILE__, __LINE__, "variant %d rank %d: (%d,%d,%.9g) want (%d,%d,%.9g)", variant, r, h[r].sae,
                       h[r].index, h[r].key, all[b].sae, all[b].idx, all[b].key);
            /* Values at every position, max and its first position. */
            float mx = 0;
            int am = 0;
            for (int t = 0; t < T; t++) {
                float v = t == 0 && o.zero_first ? 0.0f : ref[h[r].sae][(size_t)t * S + h[r].index];
                if (h[r].values[t] != v) t_fail(__FILE__, __LINE__, "variant %d rank %d token %d", variant, r, t);
                if (t == 0 || v > mx) {
                    mx = v;
                    am = t;
                }
            }
            CHECK(h[r].max == mx);
            CHECK_INT(h[r].argmax, am);
        }
        free(all);
        live_hits_free(h, nh);
    }
    /* A sort position outside the text. */
    live_hit *h = NULL;
    int nh = 0;
    int bad[] = {T};
    live_search_opts o = {.n_results = 5, .sort_pos = bad, .n_sort = 1, .max_density = -1};
    CHECK_INT(live_search(f.m, s, 3, ids, T, &o, &h, &nh, err, sizeof err), -1);
    CHECK_CONTAINS(err, "outside");
    free(dens);
    for (int i = 0; i < 3; i++) {
        free(ref[i]);
        sae_free(s[i]);
    }
    free(ids);
    char p[128];
    snprintf(p, sizeof p, "%s/cfg.json", cdir);
    unlink(p);
    snprintf(p, sizeof p, "%s/sae_weights.safetensors", cdir);
    unlink(p);
    rmdir(cdir);
    fx_close(&f);
}
