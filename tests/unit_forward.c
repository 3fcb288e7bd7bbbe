/* unit_forward.c: the GPT-2 forward on the CPU backend against the golden tiny-a cases
 * (tests/data/gpt2/forward_cases.jsonl: float64 PyTorch, cross-checked with llm.c): every
 * stored residual raw and centered, the last position's logits, and the argmax at every
 * position; plus hooks, early stop, write hooks and the KV cache. */
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/model.h"
#include "tests/t.h"

#define TINY "tests/data/models/tiny-a"
#define CASES "tests/data/gpt2/forward_cases.jsonl"

static saed_backend *be;
static model *tiny;

static model *get_tiny(void)
{
    char err[512];
    if (!tiny) {
        be = backend_cpu_open();
        tiny = model_load(TINY, be, err, sizeof err);
        if (!tiny) t_fail(__FILE__, __LINE__, "model_load: %s", err);
    }
    return tiny;
}

typedef struct capture {
    float *data;
    int B, T, width;
} capture;

static int cap_fn(void *ud, hook_point hp, float *act, int B, int T, int width)
{
    (void)hp;
    capture *c = ud;
    free(c->data);
    c->data = malloc(sizeof(float) * (size_t)B * T * width);
    memcpy(c->data, act, sizeof(float) * (size_t)B * T * width);
    c->B = B;
    c->T = T;
    c->width = width;
    return 0;
}

/* max |a - ref| over a (T,width) capture against a JSON [T][width] array. */
static double max_diff(const capture *c, json_t *ref)
{
    double worst = 0;
    if (!ref || (int)json_array_size(ref) != c->T) return 1e9;
    for (int t = 0; t < c->T; t++) {
        json_t *row = json_array_get(ref, (size_t)t);
        for (int i = 0; i < c->width; i++) {
            double d = fabs(c->data[(size_t)t * c->width + i] - json_number_value(json_array_get(row, (size_t)i)));
            if (d > worst) worst = d;
        }
    }
    return worst;
}

static void run_case(json_t *cs, int processing)
{
    model *m = get_tiny();
    if (!m) return;
    json_t *jids = json_object_get(cs, "ids");
    int T = (int)json_array_size(jids);
    int32_t *ids = malloc(sizeof(int32_t) * T);
    for (int t = 0; t < T; t++) ids[t] = (int32_t)json_integer_value(json_array_get(jids, (size_t)t));
    const int L = model_config(m)->n_layer, V = model_config(m)->vocab_size;
    capture pre[2] = {{0}}, mid[2] = {{0}}, post = {0};
    hook_req hooks[5];
    int n = 0;
    for (int l = 0; l < L; l++) {
        hooks[n++] = (hook_req){{HOOK_RESID_PRE, l}, cap_fn, &pre[l], 0};
        hooks[n++] = (hook_req){{HOOK_RESID_MID, l}, cap_fn, &mid[l], 0};
    }
    hooks[n++] = (hook_req){{HOOK_RESID_POST, L - 1}, cap_fn, &post, 0};
    float *logits = malloc(sizeof(float) * (size_t)T * V);
    int32_t *argmax = malloc(sizeof(int32_t) * T);
    fwd_opts o = {.processing = processing, .hooks = hooks, .nhooks = n, .logits = logits, .argmax = argmax};
    char err[512];
    CHECK_INT(model_forward(m, ids, 1, T, &o, err, sizeof err), 0);
    const char *name = json_string_value(json_object_get(cs, "name"));
    int centered = processing & PROC_CENTER_WRITING;
    json_t *jpre = json_object_get(cs, centered ? "resid_pre_centered" : "resid_pre");
    char key[8];
    for (int l = 0; l < L; l++) {
        snprintf(key, sizeof key, "%d", l);
        double d = max_diff(&pre[l], json_object_get(jpre, key));
        if (d > 1e-4) t_fail(__FILE__, __LINE__, "%s: resid_pre[%d]%s max abs err %.3g", name, l, centered ? " centered" : "", d);
        if (!centered) {
            d = max_diff(&mid[l], json_object_get(json_object_get(cs, "resid_mid"), key));
            if (d > 1e-4) t_fail(__FILE__, __LINE__, "%s: resid_mid[%d] max abs err %.3g", name, l, d);
        }
        free(pre[l].data);
        free(mid[l].data);
    }
    double d = max_diff(&post, json_object_get(cs, centered ? "resid_post_last_layer_centered" : "resid_post_last_layer"));
    if (d > 1e-4) t_fail(__FILE__, __LINE__, "%s: resid_post[%d] max abs err %.3g", name, L - 1, d);
    free(post.data);
    /* Logits are unchanged by the processing. */
    json_t *jl = json_object_get(cs, "logits_last");
    double worst = 0;
    for (int v = 0; v < V; v++) {
        double e = fabs(logits[(size_t)(T - 1) * V + v] - json_number_value(json_array_get(jl, (size_t)v)));
        if (e > worst) worst = e;
    }
    if (worst > 1e-4) t_fail(__FILE__, __LINE__, "%s: logits_last max abs err %.3g", name, worst);
    json_t *ja = json_object_get(cs, "logits_argmax");
    for (int t = 0; t < T; t++)
        if (argmax[t] != json_integer_value(json_array_get(ja, (size_t)t)))
            t_fail(__FILE__, __LINE__, "%s: argmax at %d: %d vs %lld", name, t, argmax[t],
                   (long long)json_integer_value(json_array_get(ja, (size_t)t)));
    free(logits);
    free(argmax);
    free(ids);
}

static void run_all(int processing)
{
    FILE *f = fopen(CASES, "r");
    CHECK(f != NULL);
    if (!f) return;
    char *line = NULL;
    size_t cap = 0;
    int cases = 0;
    while (getline(&line, &cap, f) > 0) {
        json_t *cs = json_loads(line, 0, NULL);
        CHECK(cs != NULL);
        if (cs) run_case(cs, processing);
        json_decref(cs);
        cases++;
    }
    free(line);
    fclose(f);
    CHECK_INT(cases, 4);
}

TEST(forward_tiny_a_matches_reference_raw) { run_all(PROC_NONE); }
TEST(forward_tiny_a_matches_reference_centered) { run_all(PROC_CENTER_WRITING); }

static int32_t fox[] = {50256, 464, 2068, 7586, 21831, 18045, 625, 262, 16931, 3290, 13};

TEST(forward_hooks_shapes_and_fold_value_biases)
{
    model *m = get_tiny();
    if (!m) return;
    capture z = {0}, zf = {0}, pat = {0}, mlp = {0}, lnf = {0};
    char err[512];
    hook_req h1[] = {{{HOOK_Z, 1}, cap_fn, &z, 0}, {{HOOK_PATTERN, 0}, cap_fn, &pat, 0},
                     {{HOOK_MLP_POST, 0}, cap_fn, &mlp, 0}, {{HOOK_LN_FINAL, -1}, cap_fn, &lnf, 0}};
    fwd_opts o = {.hooks = h1, .nhooks = 4};
    CHECK_INT(model_forward(m, fox, 1, 11, &o, err, sizeof err), 0);
    CHECK_INT(z.width, 64);
    CHECK_INT(mlp.width, 256);
    CHECK_INT(pat.width, 4 * 11); /* (B,NH,T,Tk): NH·Tk floats per query position */
    /* Each pattern row sums to 1 and is causal. */
    for (int h = 0; h < 4; h++)
        for (int t = 0; t < 11; t++) {
            double s = 0;
            for (int k = 0; k < 11; k++) {
                float p = pat.data[((size_t)h * 11 + t) * 11 + k];
                if (k > t) CHECK(p == 0.0f);
                s += p;
            }
            CHECK_NEAR(s, 1.0, 1e-5);
        }
    /* ln_final.hook_normalized: zero mean, unit variance per row. */
    double s = 0, ss = 0;
    for (int i = 0; i < 64; i++) {
        s += lnf.data[3 * 64 + i];
        ss += lnf.data[3 * 64 + i] * lnf.data[3 * 64 + i];
    }
    CHECK_NEAR(s / 64, 0.0, 1e-5);
    CHECK_NEAR(ss / 64, 1.0, 1e-3);
    hook_req h2[] = {{{HOOK_Z, 1}, cap_fn, &zf, 0}};
    fwd_opts o2 = {.processing = PROC_FOLD_VALUE_BIASES, .hooks = h2, .nhooks = 1};
    CHECK_INT(model_forward(m, fox, 1, 11, &o2, err, sizeof err), 0);
    /* fold_value_biases: z_TL = z_HF − b_V (the c_attn bias's v part), every position. */
    double worst = 0;
    for (int t = 1; t < 11; t++)
        for (int i = 0; i < 64; i++) {
            double d0 = (z.data[i] - zf.data[i]) - (z.data[(size_t)t * 64 + i] - zf.data[(size_t)t * 64 + i]);
            worst = fmax(worst, fabs(d0));
        }
    CHECK_NEAR(worst, 0.0, 1e-6);
    CHECK(fabs(z.data[0] - zf.data[0]) > 1e-6); /* the bias is not zero in tiny-a */
    free(z.data);
    free(zf.data);
    free(pat.data);
    free(mlp.data);
    free(lnf.data);
}

static int add_one(void *ud, hook_point hp, float *act, int B, int T, int width)
{
    (void)ud;
    (void)hp;
    for (int i = 0; i < B * T * width; i++) act[i] += 1.0f;
    return 0;
}

static int scale_two(void *ud, hook_point hp, float *act, int B, int T, int width)
{
    (void)ud;
    (void)hp;
    for (int i = 0; i < B * T * width; i++) act[i] *= 2.0f;
    return 0;
}

TEST(forward_write_hooks)
{
    model *m = get_tiny();
    if (!m) return;
    char err[512];
    const int V = model_config(m)->vocab_size;
    float *a = malloc(sizeof(float) * V), *b = malloc(sizeof(float) * V);
    /* Adding a constant to the residual is invisible after a LayerNorm: logits unchanged. */
    fwd_opts o = {.logits = a, .logits_last_only = 1};
    CHECK_INT(model_forward(m, fox, 1, 11, &o, err, sizeof err), 0);
    hook_req w[] = {{{HOOK_RESID_PRE, 1}, add_one, NULL, 1}};
    fwd_opts ow = {.hooks = w, .nhooks = 1, .logits = b, .logits_last_only = 1};
    CHECK_INT(model_forward(m, fox, 1, 11, &ow, err, sizeof err), 0);
    double worst = 0;
    for (int v = 0; v < V; v++) worst = fmax(worst, fabs(a[v] - b[v]));
    CHECK_NEAR(worst, 0.0, 1e-3);
    /* Scaling the residual at layer 1 changes the logits, and the same under centering. */
    hook_req s[] = {{{HOOK_RESID_PRE, 1}, scale_two, NULL, 1}};
    fwd_opts os = {.hooks = s, .nhooks = 1, .logits = b, .logits_last_only = 1};
    CHECK_INT(model_forward(m, fox, 1, 11, &os, err, sizeof err), 0);
    worst = 0;
    for (int v = 0; v < V; v++) worst = fmax(worst, fabs(a[v] - b[v]));
    CHECK(worst > 1e-3);
    float *c = malloc(sizeof(float) * V);
    /* Under centering the hook sees h − mean; doubling that adds (h − mean) to h. Same
     * downstream as doubling h, because LayerNorm ignores the mean. */
    fwd_opts oc = {.processing = PROC_CENTER_WRITING, .hooks = s, .nhooks = 1, .logits = c, .logits_last_only = 1};
    CHECK_INT(model_forward(m, fox, 1, 11, &oc, err, sizeof err), 0);
    worst = 0;
    for (int v = 0; v < V; v++) worst = fmax(worst, fabs(c[v] - b[v]));
    CHECK_NEAR(worst, 0.0, 1e-4);
    /* Read-only hooks refuse writes. */
    hook_req bad[] = {{{HOOK_PATTERN, 0}, add_one, NULL, 1}};
    fwd_opts ob = {.hooks = bad, .nhooks = 1};
    CHECK_INT(model_forward(m, fox, 1, 11, &ob, err, sizeof err), -1);
    CHECK_CONTAINS(err, "read-only");
    free(a);
    free(b);
    free(c);
}

static int count_fn(void *ud, hook_point hp, float *act, int B, int T, int width)
{
    (void)hp;
    (void)act;
    (void)B;
    (void)T;
    (void)width;
    ++*(int *)ud;
    return 0;
}

TEST(forward_stops_at_the_last_needed_block)
{
    model *m = get_tiny();
    if (!m) return;
    char err[512];
    capture full = {0}, early = {0};
    fwd_opts of = {.hooks = (hook_req[]){{{HOOK_RESID_PRE, 1}, cap_fn, &full, 0}}, .nhooks = 1,
                   .argmax = (int32_t[11]){0}};
    CHECK_INT(model_forward(m, fox, 1, 11, &of, err, sizeof err), 0);
    /* Only resid_pre of block 1: block 0 runs, block 1 does not (a write hook inside block 1
     * would abort the pass if it were reached). */
    int calls = 0;
    hook_req h[] = {{{HOOK_RESID_PRE, 1}, cap_fn, &early, 0}};
    fwd_opts oe = {.hooks = h, .nhooks = 1};
    CHECK_INT(model_forward(m, fox, 1, 11, &oe, err, sizeof err), 0);
    double worst = 0;
    for (int i = 0; i < 11 * 64; i++) worst = fmax(worst, fabs(full.data[i] - early.data[i]));
    CHECK_NEAR(worst, 0.0, 0.0);
    hook_req h0[] = {{{HOOK_RESID_PRE, 0}, count_fn, &calls, 0}, {{HOOK_EMBED, -1}, count_fn, &calls, 0}};
    fwd_opts o0 = {.hooks = h0, .nhooks = 2};
    CHECK_INT(model_forward(m, fox, 1, 11, &o0, err, sizeof err), 0);
    CHECK_INT(calls, 2);
    free(full.data);
    free(early.data);
}

/* TransformerLens keeps the mean of a write under centering: +1 at resid_pre 0 shows as +1 at
 * resid_post 0 (and later), with or without processing. */
TEST(forward_centered_write_keeps_its_mean)
{
    model *m = get_tiny();
    if (!m) return;
    char err[512];
    for (int proc = 0; proc <= PROC_CENTER_WRITING; proc += PROC_CENTER_WRITING) {
        capture base = {0}, moved = {0};
        hook_req r1[] = {{{HOOK_RESID_POST, 0}, cap_fn, &base, 0}};
        fwd_opts o1 = {.processing = proc, .hooks = r1, .nhooks = 1};
        CHECK_INT(model_forward(m, fox, 1, 11, &o1, err, sizeof err), 0);
        hook_req r2[] = {{{HOOK_RESID_PRE, 0}, add_one, NULL, 1}, {{HOOK_RESID_POST, 0}, cap_fn, &moved, 0}};
        fwd_opts o2 = {.processing = proc, .hooks = r2, .nhooks = 2};
        CHECK_INT(model_forward(m, fox, 1, 11, &o2, err, sizeof err), 0);
        /* LayerNorm ignores the constant, so the block's writes are unchanged: exactly +1. */
        double worst = 0;
        for (int i = 0; i < 11 * 64; i++) worst = fmax(worst, fabs(moved.data[i] - base.data[i] - 1.0));
        CHECK_NEAR(worst, 0.0, 1e-4);
        free(base.data);
        free(moved.data);
    }
}

TEST(forward_kv_cache_matches_full_pass)
{
    model *m = get_tiny();
    if (!m) return;
    char err[512];
    const int V = model_config(m)->vocab_size, T = 11;
    float *full = malloc(sizeof(float) * T * V), *step = malloc(sizeof(float) * V);
    fwd_opts o = {.logits = full};
    CHECK_INT(model_forward(m, fox, 1, T, &o, err, sizeof err), 0);
    kv_cache *kc = kv_cache_new(m, 1, 32, err, sizeof err);
    CHECK(kc != NULL);
    /* Prefill 6 tokens, then one at a time. */
    fwd_opts p = {.cache = kc, .logits = step, .logits_last_only = 1};
    CHECK_INT(model_forward(m, fox, 1, 6, &p, err, sizeof err), 0);
    double worst = 0;
    for (int v = 0; v < V; v++) worst = fmax(worst, fabs(step[v] - full[(size_t)5 * V + v]));
    for (int t = 6; t < T; t++) {
        CHECK_INT(model_forward(m, fox + t, 1, 1, &p, err, sizeof err), 0);
        for (int v = 0; v < V; v++) worst = fmax(worst, fabs(step[v] - full[(size_t)t * V + v]));
    }
    CHECK_NEAR(worst, 0.0, 1e-4);
    CHECK_INT(kv_cache_len(kc), T);
    kv_cache_free(kc);
    free(full);
    free(step);
}

TEST(forward_batched_equals_single)
{
    model *m = get_tiny();
    if (!m) return;
    char err[512];
    const int V = model_config(m)->vocab_size;
    int32_t two[22];
    memcpy(two, fox, sizeof fox);
    for (int i = 0; i < 11; i++) two[11 + i] = fox[10 - i];
    float *bl = malloc(sizeof(float) * 2 * V), *sl = malloc(sizeof(float) * V);
    fwd_opts o = {.logits = bl, .logits_last_only = 1};
    CHECK_INT(model_forward(m, two, 2, 11, &o, err, sizeof err), 0);
    fwd_opts o1 = {.logits = sl, .logits_last_only = 1};
    CHECK_INT(model_forward(m, two + 11, 1, 11, &o1, err, sizeof err), 0);
    double worst = 0;
    for (int v = 0; v < V; v++) worst = fmax(worst, fabs(bl[V + v] - sl[v]));
    CHECK_NEAR(worst, 0.0, 1e-4);
    free(bl);
    free(sl);
}

/* Logits of every position of fox (B=1) and of the 2-prompt batch, on model m. */
static void fox_logits(model *m, float *one, float *two_out)
{
    char err[512];
    int32_t two[22];
    memcpy(two, fox, sizeof fox);
    for (int i = 0; i < 11; i++) two[11 + i] = fox[10 - i];
    fwd_opts o = {.logits = one};
    CHECK_INT(model_forward(m, fox, 1, 11, &o, err, sizeof err), 0);
    if (two_out) {
        fwd_opts o2 = {.logits = two_out};
        CHECK_INT(model_forward(m, two, 2, 11, &o2, err, sizeof err), 0);
    }
}

typedef struct fwd_thread {
    model *m;
    const float *want_one, *want_two;
    int V, mismatches;
} fwd_thread;

static void *fwd_thread_main(void *ud)
{
    fwd_thread *t = ud;
    float *one = malloc(sizeof(float) * 11 * t->V), *two = malloc(sizeof(float) * 22 * t->V);
    for (int r = 0; r < 20; r++) {
        fox_logits(t->m, one, r % 2 ? two : NULL);
        t->mismatches += memcmp(one, t->want_one, sizeof(float) * 11 * t->V) != 0;
        if (r % 2) t->mismatches += memcmp(two, t->want_two, sizeof(float) * 22 * t->V) != 0;
    }
    free(one);
    free(two);
    return NULL;
}

/* A model keeps its activation buffers between forwards: a smaller batch after a larger one, a
 * fresh model and concurrent forwards on one model must all give the same bits. */
TEST(forward_kept_buffers_give_the_same_bits)
{
    model *m = get_tiny();
    if (!m) return;
    char err[512];
    const int V = model_config(m)->vocab_size;
    model *fresh = model_load(TINY, be, err, sizeof err);
    CHECK(fresh != NULL);
    if (!fresh) return;
    float *a1 = malloc(sizeof(float) * 11 * V), *a2 = malloc(sizeof(float) * 22 * V);
    float *b1 = malloc(sizeof(float) * 11 * V), *b2 = malloc(sizeof(float) * 22 * V);
    fox_logits(fresh, a1, a2);   /* first call: fresh buffers, then the batch of two */
    fox_logits(fresh, b1, b2);   /* both now reuse the kept (two-prompt) buffers */
    CHECK(memcmp(a1, b1, sizeof(float) * 11 * V) == 0);
    CHECK(memcmp(a2, b2, sizeof(float) * 22 * V) == 0);
    fox_logits(m, b1, b2);       /* the shared test model, after every other test's forwards */
    CHECK(memcmp(a1, b1, sizeof(float) * 11 * V) == 0);
    CHECK(memcmp(a2, b2, sizeof(float) * 22 * V) == 0);
    fwd_thread t[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        t[i] = (fwd_thread){fresh, a1, a2, V, 0};
        pthread_create(&th[i], NULL, fwd_thread_main, &t[i]);
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        CHECK_INT(t[i].mismatches, 0);
    }
    free(a1);
    free(a2);
    free(b1);
    free(b2);
    model_free(fresh);
}

/* Without an attn_out / mlp_out hook the projections add straight onto the residual stream;
 * with one they go through their own buffer. Both give the same residuals up to rounding, and
 * the hook sees exactly the difference the block adds. */
TEST(forward_out_hooks_leave_the_residual_alone)
{
    model *m = get_tiny();
    if (!m) return;
    char err[512];
    capture pre = {0}, mid = {0}, post = {0}, mid2 = {0}, post2 = {0}, aout = {0}, mout = {0};
    hook_req plain[] = {{{HOOK_RESID_PRE, 1}, cap_fn, &pre, 0}, {{HOOK_RESID_MID, 1}, cap_fn, &mid, 0},
                        {{HOOK_RESID_POST, 1}, cap_fn, &post, 0}};
    fwd_opts o = {.hooks = plain, .nhooks = 3};
    CHECK_INT(model_forward(m, fox, 1, 11, &o, err, sizeof err), 0);
    hook_req hooked[] = {{{HOOK_RESID_MID, 1}, cap_fn, &mid2, 0}, {{HOOK_RESID_POST, 1}, cap_fn, &post2, 0},
                         {{HOOK_ATTN_OUT, 1}, cap_fn, &aout, 0}, {{HOOK_MLP_OUT, 1}, cap_fn, &mout, 0}};
    fwd_opts oh = {.hooks = hooked, .nhooks = 4};
    CHECK_INT(model_forward(m, fox, 1, 11, &oh, err, sizeof err), 0);
    const size_t n = (size_t)11 * model_config(m)->d_model;
    double dmid = 0, dpost = 0, dattn = 0, dmlp = 0, big = 0;
    for (size_t i = 0; i < n; i++) {
        dmid = fmax(dmid, fabs(mid.data[i] - mid2.data[i]));
        dpost = fmax(dpost, fabs(post.data[i] - post2.data[i]));
        dattn = fmax(dattn, fabs((mid.data[i] - pre.data[i]) - aout.data[i]));
        dmlp = fmax(dmlp, fabs((post.data[i] - mid.data[i]) - mout.data[i]));
        big = fmax(big, fabs(aout.data[i]));
    }
    CHECK_NEAR(dmid, 0.0, 1e-5);
    CHECK_NEAR(dpost, 0.0, 1e-5);
    CHECK_NEAR(dattn, 0.0, 1e-5);
    CHECK_NEAR(dmlp, 0.0, 1e-5);
    CHECK(big > 1e-3);   /* the block adds something, so the comparisons above mean something */
    capture *all[] = {&pre, &mid, &post, &mid2, &post2, &aout, &mout};
    for (int i = 0; i < 7; i++) free(all[i]->data);
}

TEST(forward_errors)
{
    model *m = get_tiny();
    if (!m) return;
    char err[512];
    int32_t bad[] = {50256, 50257};
    fwd_opts o = {0};
    CHECK_INT(model_forward(m, bad, 1, 2, &o, err, sizeof err), -1);
    CHECK_CONTAINS(err, "outside the vocabulary");
    int32_t *many = calloc(200, sizeof(int32_t));
    CHECK_INT(model_forward(m, many, 1, 200, &o, err, sizeof err), -1);
    CHECK_CONTAINS(err, "exceed the model's context of 128");
    free(many);
    hook_point hp;
    CHECK_INT(hook_parse("blocks.2.hook_resid_pre", 2, &hp, err, sizeof err), -1);
    CHECK_CONTAINS(err, "layer 2 out of range");
    CHECK_INT(hook_parse("blocks.0.hook_nonsense", 2, &hp, err, sizeof err), -1);
    CHECK_CONTAINS(err, "unknown hook");
    CHECK_INT(hook_parse("blocks.1.attn.hook_z", 2, &hp, err, sizeof err), 0);
    CHECK_INT(hp.kind, HOOK_Z);
    CHECK_INT(hp.layer, 1);
    char name[64];
    hook_format(hp, name, sizeof name);
    CHECK_STR(name, "blocks.1.attn.hook_z");
    CHECK(model_load("tests/data/models", be, err, sizeof err) == NULL);
    CHECK_CONTAINS(err, "config.json");
}

TEST(final_forward_cleanup)
{
    model_free(tiny);
    backend_close(be);
    tiny = NULL;
    be = NULL;
}

/* The fixture generator is deterministic, and both tensor naming styles load to the same
 * model (HF save_pretrained's "transformer." prefix and the original gpt2 checkpoint's none). */
#include "tools/fixture.h"

static void rm_fixture(const char *dir)
{
    char p[512];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/config.json", dir);
    unlink(p);
    rmdir(dir);
}

TEST(forward_fixture_models_load_with_either_naming)
{
    char d1[] = "/tmp/saed-fx1-XXXXXX", d2[] = "/tmp/saed-fx2-XXXXXX", err[512];
    CHECK(mkdtemp(d1) && mkdtemp(d2));
    fixture_gpt2 f = {.d_model = 32, .n_layer = 3, .n_head = 2, .n_ctx = 16, .vocab = 300, .seed = 42, .prefixed = 1};
    CHECK_INT(fixture_gpt2_write(d1, &f, err, sizeof err), 0);
    f.prefixed = 0;
    CHECK_INT(fixture_gpt2_write(d2, &f, err, sizeof err), 0);
    saed_backend *b = backend_cpu_open();
    model *m1 = model_load(d1, b, err, sizeof err), *m2 = model_load(d2, b, err, sizeof err);
    CHECK(m1 && m2);
    if (m1 && m2) {
        CHECK_INT(model_config(m1)->n_layer, 3);
        int32_t ids[5] = {1, 299, 7, 0, 42};
        float l1[5 * 300], l2[5 * 300];
        fwd_opts o1 = {.logits = l1}, o2 = {.logits = l2};
        CHECK_INT(model_forward(m1, ids, 1, 5, &o1, err, sizeof err), 0);
        CHECK_INT(model_forward(m2, ids, 1, 5, &o2, err, sizeof err), 0);
        CHECK(memcmp(l1, l2, sizeof l1) == 0);
        CHECK(fabs(l1[0] - l1[1]) > 0);
    }
    model_free(m1);
    model_free(m2);
    /* A checkpoint missing a tensor names it. */
    char p[512];
    snprintf(p, sizeof p, "%s/model.safetensors", d2);
    unlink(p);
    fixture_gpt2 g = {.d_model = 32, .n_layer = 3, .n_head = 2, .n_ctx = 16, .vocab = 300, .seed = 42, .prefixed = 1};
    CHECK_INT(fixture_gpt2_write(d2, &g, err, sizeof err), 0);
    FILE *cf = fopen(p, "r+b"); /* corrupt the header length: must be an error, not a crash */
    if (cf) {
        fputc(0xff, cf);
        fputc(0xff, cf);
        fputc(0xff, cf);
        fclose(cf);
    }
    CHECK(model_load(d2, b, err, sizeof err) == NULL);
    CHECK_CONTAINS(err, "model.safetensors");
    backend_close(b);
    rm_fixture(d1);
    rm_fixture(d2);
}
