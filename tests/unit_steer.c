/* unit_steer.c: sampling (engine/sample.c), steering hooks (engine/steer.c) and generation with
 * the KV cache (engine/generate.c) on tiny-a: the generator's determinism and distribution, the
 * frequency penalty, log-softmax and top-k; the value a later hook sees equals the unsteered
 * value + coeff·v; ORTHOGONAL_DECOMP with coeff 1 and SIMPLE_ADDITIVE with coeff 0 change no
 * bit; greedy generation equals the argmax of a full forward at every step, steered or not;
 * logprobs equal the log-softmax of the full forward's logits; seeds repeat and differ. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/generate.h"
#include "engine/model.h"
#include "engine/sae.h"
#include "engine/safetensors.h"
#include "engine/sample.h"
#include "engine/steer.h"
#include "tests/steer_fixture.h"
#include "tests/t.h"

#define TINY "tests/data/models/tiny-a"
#define SAE_STD "tests/data/sae/tiny-a-res-standard"

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

int steer_fixture_scaled_sae(const char *dir)
{
    char err[512], path[600], cmd[1400];
    mkdir(dir, 0755);
    snprintf(cmd, sizeof cmd, "cp " SAE_STD "/cfg.json '%s'/", dir);
    if (system(cmd)) return -1;
    st_file *f = st_open(SAE_STD "/sae_weights.safetensors", err, sizeof err);
    if (!f) return -1;
    const int D = 64, S = 512;
    int64_t enc_shape[2] = {D, S}, dec_shape[2] = {S, D}, benc_shape[1] = {S}, bdec_shape[1] = {D};
    float *we = st_load_f32(f, "W_enc", 2, enc_shape, err, sizeof err), *wd = st_load_f32(f, "W_dec", 2, dec_shape, err, sizeof err);
    float *be_ = st_load_f32(f, "b_enc", 1, benc_shape, err, sizeof err), *bd = st_load_f32(f, "b_dec", 1, bdec_shape, err, sizeof err);
    st_close(f);
    int rc = -1;
    if (we && wd && be_ && bd) {
        for (int i = 0; i < S; i++) {
            float k = (float)(1 + i % 5);
            for (int j = 0; j < D; j++) wd[(size_t)i * D + j] *= k, we[(size_t)j * S + i] /= k;
        }
        st_wtensor t[] = {{"W_enc", ST_F32, 2, enc_shape, we}, {"W_dec", ST_F32, 2, dec_shape, wd},
                          {"b_enc", ST_F32, 1, benc_shape, be_}, {"b_dec", ST_F32, 1, bdec_shape, bd}};
        snprintf(path, sizeof path, "%s/sae_weights.safetensors", dir);
        rc = st_write(path, t, 4, NULL, err, sizeof err);
    }
    free(we), free(wd), free(be_), free(bd);
    return rc;
}

static const int32_t prompt[] = {50256, 464, 2068, 7586, 21831, 18045, 625, 262}; /* BOS "The quick brown fox jumps over the" */
#define NP ((int)(sizeof prompt / sizeof prompt[0]))

TEST(sample_rng_is_deterministic_and_uniform)
{
    sample_rng a, b, c;
    sample_rng_seed(&a, 42);
    sample_rng_seed(&b, 42);
    sample_rng_seed(&c, 43);
    int same_c = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = sample_rng_next(&a), y = sample_rng_next(&b), z = sample_rng_next(&c);
        CHECK(x == y);
        same_c += x == z;
    }
    CHECK_INT(same_c, 0);
    /* Mean and bounds of 200k uniforms. */
    double s = 0, lo = 1, hi = 0;
    for (int i = 0; i < 200000; i++) {
        double u = sample_rng_uniform(&a);
        s += u;
        lo = u < lo ? u : lo;
        hi = u > hi ? u : hi;
    }
    CHECK(lo >= 0 && hi < 1);
    CHECK_NEAR(s / 200000, 0.5, 0.003);
    CHECK(sample_seed_from_double(0.0) == sample_seed_from_double(-0.0));
    CHECK(sample_seed_from_double(16) == sample_seed_from_double(16.0));
    CHECK(sample_seed_from_double(16) != sample_seed_from_double(17));
    CHECK(sample_seed_from_double(16) != sample_seed_from_double(16.5));
}

TEST(sample_next_greedy_temperature_and_penalty)
{
    const float lg[5] = {1.0f, 3.0f, 3.0f, 0.5f, -2.0f};
    double scratch[5];
    sample_rng r;
    sample_rng_seed(&r, 1);
    CHECK_INT(sample_next(lg, 5, NULL, 0, 0, &r, scratch), 1); /* tie: lower id */
    const int32_t counts[5] = {0, 2, 0, 0, 0};
    CHECK_INT(sample_next(lg, 5, counts, 0.6, 0, &r, scratch), 2); /* 3 − 1.2 < 3 */
    CHECK_INT(sample_next(lg, 5, counts, -0.6, 0, &r, scratch), 1); /* a negative penalty favours repeats */
    /* Frequencies at temperature 2 against softmax(lg / 2). */
    int hist[5] = {0};
    const int n = 100000;
    for (int i = 0; i < n; i++) hist[sample_next(lg, 5, NULL, 0, 2.0, &r, scratch)]++;
    double z = 0, p[5];
    for (int i = 0; i < 5; i++) z += exp(lg[i] / 2.0);
    for (int i = 0; i < 5; i++) {
        p[i] = exp(lg[i] / 2.0) / z;
        CHECK_NEAR((double)hist[i] / n, p[i], 4 * sqrt(p[i] * (1 - p[i]) / n) + 1e-4);
    }
    /* The penalty applies before the temperature: token 1 loses mass. */
    int h1 = 0;
    for (int i = 0; i < n; i++) h1 += sample_next(lg, 5, counts, 1.0, 2.0, &r, scratch) == 1;
    double z2 = z - exp(3.0 / 2) + exp(1.0 / 2), p1 = exp(1.0 / 2) / z2;
    CHECK_NEAR((double)h1 / n, p1, 4 * sqrt(p1 * (1 - p1) / n));
}

TEST(sample_log_softmax_and_top_k)
{
    const float lg[6] = {2.0f, -1.0f, 2.0f, 0.0f, 5.0f, -3.0f};
    float lp[6];
    sample_log_softmax(lg, 6, lp);
    double s = 0;
    for (int i = 0; i < 6; i++) s += exp(lp[i]);
    CHECK_NEAR(s, 1.0, 1e-6);
    CHECK_NEAR(lp[4] - lp[3], 5.0, 1e-6);
    int32_t idx[6];
    CHECK_INT(sample_top_k(lp, 6, 3, idx), 3);
    CHECK_INT(idx[0], 4);
    CHECK_INT(idx[1], 0); /* tie with 2: lower index first */
    CHECK_INT(idx[2], 2);
    CHECK_INT(sample_top_k(lp, 6, 10, idx), 6);
    CHECK_INT(idx[5], 5);
    CHECK_INT(sample_top_k(lp, 6, 0, idx), 0);
}

typedef struct capture {
    float *data;
    int rows, width;
} capture;

static int cap_fn(void *ud, hook_point hp, float *act, int B, int T, int width)
{
    (void)hp;
    capture *c = ud;
    free(c->data);
    c->rows = B * T;
    c->width = width;
    c->data = malloc(sizeof(float) * (size_t)c->rows * width);
    memcpy(c->data, act, sizeof(float) * (size_t)c->rows * width);
    return 0;
}

/* Runs the prompt with the set's hooks (NULL = none) followed by a read hook at hp. */
static void run_capture(model *m, const steer_set *s, hook_point hp, int proc, capture *c, float *logits)
{
    char err[512];
    hook_req reqs[8];
    int n = 0;
    if (s) {
        const hook_req *h = steer_hooks(s, &n);
        memcpy(reqs, h, sizeof *h * (size_t)n);
    }
    reqs[n++] = (hook_req){hp, cap_fn, c, 0};
    fwd_opts o = {.processing = proc, .hooks = reqs, .nhooks = n, .logits = logits, .logits_last_only = 1};
    if (model_forward(m, prompt, 1, NP, &o, err, sizeof err)) t_fail(__FILE__, __LINE__, "forward: %s", err);
}

TEST(steer_hook_value_downstream_is_unsteered_plus_coeff_v)
{
    model *m = get_tiny();
    if (!m) return;
    char err[512];
    char dir[] = "/tmp/saed-scaled-sae-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    CHECK_INT(steer_fixture_scaled_sae(dir), 0);
    sae_cfg cfg;
    CHECK_INT(sae_cfg_load(dir, &cfg, err, sizeof err), 0);
    sae_load_opts lo = sae_dashboard_load_opts(&cfg);
    sae *s = sae_load(dir, be, &lo, err, sizeof err);
    char rm[200];
    snprintf(rm, sizeof rm, "rm -rf %s", dir);
    CHECK_INT(system(rm), 0);
    CHECK(s && sae_is_folded(s));
    if (!s) return;
    const int C = 64, V = model_config(m)->vocab_size;
    float v[64], folded[64];
    CHECK_INT(sae_decoder_row_raw(s, 17, v, err, sizeof err), 0);
    CHECK_INT(sae_decoder_row(s, 17, folded, err, sizeof err), 0);
    double nv = 0, nf = 0;
    for (int j = 0; j < C; j++) nv += (double)v[j] * v[j], nf += (double)folded[j] * folded[j];
    CHECK_NEAR(nf, 1.0, 1e-5);         /* the cache's folded row is a unit vector... */
    CHECK_NEAR(sqrt(nv), 3.0, 1e-4);   /* ...the raw row (what steering uses) keeps its norm */
    for (int j = 0; j < C; j++) CHECK_NEAR(folded[j] * sqrt(nv), v[j], 1e-5);

    hook_point hp = {HOOK_RESID_PRE, 1};
    float *lg0 = malloc(sizeof(float) * V), *lg1 = malloc(sizeof(float) * V);
    for (int proc = 0; proc <= PROC_CENTER_WRITING; proc += PROC_CENTER_WRITING) {
        capture base = {0}, steered = {0}, later0 = {0}, later1 = {0};
        run_capture(m, NULL, hp, proc, &base, lg0);
        steer_set *ss = steer_new(STEER_ADDITIVE);
        CHECK_INT(steer_add(ss, hp, 0, v, C, 7.5, err, sizeof err), 0);
        run_capture(m, ss, hp, proc, &steered, lg1);
        double worst = 0;
        for (int r = 0; r < NP; r++)
            for (int j = 0; j < C; j++)
                worst = fmax(worst, fabs(steered.data[r * C + j] - (base.data[r * C + j] + 7.5 * v[j])));
        CHECK_NEAR(worst, 0.0, 1e-5);
        /* Every position is steered, so the next block's output moves at every position. */
        run_capture(m, NULL, (hook_point){HOOK_RESID_POST, 1}, proc, &later0, lg0);
        run_capture(m, ss, (hook_point){HOOK_RESID_POST, 1}, proc, &later1, lg1);
        for (int r = 0; r < NP; r++) {
            double d = 0;
            for (int j = 0; j < C; j++) d += fabs(later1.data[r * C + j] - later0.data[r * C + j]);
            CHECK(d > 1e-3);
        }
        steer_free(ss);
        free(base.data), free(steered.data), free(later0.data), free(later1.data);
    }
    free(lg0);
    free(lg1);
    sae_free(s);
    sae_cfg_free(&cfg);
}

TEST(steer_identities_change_no_bit_and_orthogonal_zero_ablates)
{
    model *m = get_tiny();
    if (!m) return;
    char err[512];
    const int C = 64, V = model_config(m)->vocab_size;
    float v[64];
    for (int j = 0; j < C; j++) v[j] = (float)sin(0.37 * j + 1.0);
    hook_point hp = {HOOK_RESID_PRE, 1};
    float *lg0 = malloc(sizeof(float) * V), *lg1 = malloc(sizeof(float) * V);
    capture base = {0}, c = {0};
    run_capture(m, NULL, hp, PROC_NONE, &base, lg0);
    struct { steer_method m; double coeff; } same[] = {{STEER_ADDITIVE, 0.0}, {STEER_ORTHOGONAL, 1.0}};
    for (int k = 0; k < 2; k++) {
        steer_set *ss = steer_new(same[k].m);
        CHECK_INT(steer_add(ss, hp, 0, v, C, same[k].coeff, err, sizeof err), 0);
        run_capture(m, ss, hp, PROC_NONE, &c, lg1);
        CHECK(memcmp(lg0, lg1, sizeof(float) * V) == 0);
        CHECK(memcmp(base.data, c.data, sizeof(float) * NP * C) == 0);
        steer_free(ss);
    }
    /* coeff 0 removes the direction: h·v = 0 after; coeff 3 triples the component. */
    for (double coeff = 0; coeff <= 3; coeff += 3) {
        steer_set *ss = steer_new(STEER_ORTHOGONAL);
        CHECK_INT(steer_add(ss, hp, 0, v, C, coeff, err, sizeof err), 0);
        run_capture(m, ss, hp, PROC_NONE, &c, lg1);
        double vv = 0;
        for (int j = 0; j < C; j++) vv += (double)v[j] * v[j];
        for (int r = 0; r < NP; r++) {
            double d0 = 0, d1 = 0;
            for (int j = 0; j < C; j++) d0 += (double)base.data[r * C + j] * v[j], d1 += (double)c.data[r * C + j] * v[j];
            CHECK_NEAR(d1, coeff * d0, 1e-4 * (1 + fabs(d0)));
            /* The orthogonal part is unchanged. */
            for (int j = 0; j < C; j++)
                CHECK_NEAR(c.data[r * C + j] - d1 / vv * v[j], base.data[r * C + j] - d0 / vv * v[j], 1e-4);
        }
        steer_free(ss);
    }
    /* A vector wider than the hook's rows aborts the forward. */
    steer_set *ss = steer_new(STEER_ADDITIVE);
    CHECK_INT(steer_add(ss, hp, 8, v, C, 1.0, err, sizeof err), 0);
    int n;
    const hook_req *h = steer_hooks(ss, &n);
    fwd_opts o = {.hooks = h, .nhooks = n, .logits = lg1, .logits_last_only = 1};
    CHECK_INT(model_forward(m, prompt, 1, NP, &o, err, sizeof err), -1);
    CHECK_CONTAINS(err, "aborted");
    v[3] = NAN;
    CHECK_INT(steer_add(ss, hp, 0, v, C, 1.0, err, sizeof err), -1);
    CHECK_INT(steer_method_parse("ORTHOGONAL_DECOMP"), STEER_ORTHOGONAL);
    CHECK_INT(steer_method_parse("PROJECTION_CAP"), -1);
    steer_free(ss);
    free(base.data), free(c.data), free(lg0), free(lg1);
}

/* Generates n tokens and returns them (malloc'd), with *count. */
static int32_t *generate(model *m, const gen_opts *o, int *count, gen_token **toks)
{
    char err[512];
    gen *g = gen_start(m, prompt, NP, o, err, sizeof err);
    if (!g) {
        t_fail(__FILE__, __LINE__, "gen_start: %s", err);
        return NULL;
    }
    int rc;
    while ((rc = gen_step(g, err, sizeof err)) == 1) {}
    if (rc < 0) t_fail(__FILE__, __LINE__, "gen_step: %s", err);
    *count = gen_count(g);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(*count + 1));
    memcpy(ids, gen_ids(g), sizeof(int32_t) * (size_t)*count);
    if (toks) {
        *toks = malloc(sizeof(gen_token) * (size_t)(*count + 1));
        memcpy(*toks, gen_tokens(g), sizeof(gen_token) * (size_t)*count);
    }
    gen_free(g);
    return ids;
}

/* Greedy generation against full forwards (no cache) over prompt + the tokens so far: the token
 * at each step is the argmax (or within 1e-4 of it: the cached and full passes round
 * differently), and the logprobs are the log-softmax of those logits. */
static void check_against_full_forward(model *m, const steer_set *ss, int proc)
{
    char err[512];
    const int V = model_config(m)->vocab_size, N = 24;
    int nh = 0;
    const hook_req *h = ss ? steer_hooks(ss, &nh) : NULL;
    gen_opts o = {.n_tokens = N, .temperature = 0, .freq_penalty = 0, .seed = 1, .eos = -1, .n_logprobs = 5,
                  .hooks = h, .nhooks = nh, .processing = proc};
    int n = 0;
    gen_token *toks = NULL;
    int32_t *ids = generate(m, &o, &n, &toks);
    CHECK_INT(n, N);
    if (!ids) return;
    int32_t seq[64];
    memcpy(seq, prompt, sizeof prompt);
    float *lg = malloc(sizeof(float) * V), *lp = malloc(sizeof(float) * V);
    int exact = 0;
    for (int k = 0; k < n; k++) {
        fwd_opts f = {.processing = proc, .hooks = h, .nhooks = nh, .logits = lg, .logits_last_only = 1};
        CHECK_INT(model_forward(m, seq, 1, NP + k, &f, err, sizeof err), 0);
        int best = 0;
        for (int i = 1; i < V; i++)
            if (lg[i] > lg[best]) best = i;
        exact += best == ids[k];
        CHECK(lg[best] - lg[ids[k]] < 1e-4);
        sample_log_softmax(lg, V, lp);
        CHECK_NEAR(toks[k].logprob, lp[ids[k]], 1e-4);
        CHECK_INT(toks[k].ntop, 5);
        CHECK(toks[k].top_id[0] == ids[k] || lp[toks[k].top_id[0]] - lp[ids[k]] < 1e-4);
        for (int t = 0; t < 5; t++) CHECK_NEAR(toks[k].top_logprob[t], lp[toks[k].top_id[t]], 1e-4);
        for (int t = 1; t < 5; t++) CHECK(toks[k].top_logprob[t] <= toks[k].top_logprob[t - 1]);
        seq[NP + k] = ids[k];
    }
    CHECK(exact >= n - 1);
    free(lg), free(lp), free(ids), free(toks);
}

TEST(generate_greedy_equals_full_forward_argmax_steered_and_not)
{
    model *m = get_tiny();
    if (!m) return;
    char err[512];
    check_against_full_forward(m, NULL, PROC_NONE);
    float v[64];
    for (int j = 0; j < 64; j++) v[j] = (float)cos(0.11 * j);
    steer_set *ss = steer_new(STEER_ADDITIVE);
    CHECK_INT(steer_add(ss, (hook_point){HOOK_RESID_PRE, 1}, 0, v, 64, 4.0, err, sizeof err), 0);
    CHECK_INT(steer_add(ss, (hook_point){HOOK_RESID_POST, 0}, 0, v, 64, -2.0, err, sizeof err), 0);
    check_against_full_forward(m, ss, PROC_NONE);
    steer_free(ss);
    ss = steer_new(STEER_ORTHOGONAL);
    CHECK_INT(steer_add(ss, (hook_point){HOOK_RESID_PRE, 1}, 0, v, 64, 5.0, err, sizeof err), 0);
    check_against_full_forward(m, ss, PROC_CENTER_WRITING);
    steer_free(ss);
}

TEST(generate_seeds_penalty_eos_and_limits)
{
    model *m = get_tiny();
    if (!m) return;
    char err[512];
    gen_opts o = {.n_tokens = 20, .temperature = 1.0, .freq_penalty = 1.0, .seed = 16, .eos = -1};
    int n1, n2, n3;
    int32_t *a = generate(m, &o, &n1, NULL), *b = generate(m, &o, &n2, NULL);
    o.seed = 17;
    int32_t *c = generate(m, &o, &n3, NULL);
    CHECK(n1 == 20 && n2 == 20 && n3 == 20);
    CHECK(a && b && memcmp(a, b, sizeof(int32_t) * 20) == 0);
    CHECK(a && c && memcmp(a, c, sizeof(int32_t) * 20) != 0);
    /* EOS: stop when it is chosen; it is not part of the output. */
    o.eos = a ? a[5] : 0;
    o.seed = 16;
    int n4;
    int32_t *d = generate(m, &o, &n4, NULL);
    int first = 0;
    while (a && first < 20 && a[first] != o.eos) first++;
    CHECK_INT(n4, first);
    CHECK(d && a && memcmp(a, d, sizeof(int32_t) * (size_t)n4) == 0);
    /* A strong frequency penalty under greedy decoding: no token twice. */
    gen_opts g = {.n_tokens = 30, .temperature = 0, .freq_penalty = 100, .eos = -1};
    int n5;
    int32_t *e = generate(m, &g, &n5, NULL);
    for (int i = 0; e && i < n5; i++)
        for (int j = 0; j < i; j++) CHECK(e[i] != e[j]);
    /* Context: prompt + new tokens must fit. */
    g.n_tokens = 128 - NP + 1;
    CHECK(gen_start(m, prompt, NP, &g, err, sizeof err) == NULL);
    CHECK_CONTAINS(err, "exceed the model's context of 128");
    g.n_tokens = 128 - NP;
    int n6;
    int32_t *f = generate(m, &g, &n6, NULL);
    CHECK_INT(n6, 128 - NP);
    free(a), free(b), free(c), free(d), free(e), free(f);
}

/* Generation multiplies one row at a time: the CPU backend takes sgemv for M = 1. Every
 * transpose combination, padded leading dimensions, alpha and beta, against a double loop. */
TEST(backend_cpu_gemm_one_row_all_transposes)
{
    saed_backend *b = backend_cpu_open();
    const int N = 29, K = 53, LDA = 7, LDB = 61;
    float *A = malloc(sizeof(float) * K * LDA), *B = malloc(sizeof(float) * K * LDB * 2), C[29], C0[29];
    unsigned s = 7;
    for (int i = 0; i < K * LDA; i++) A[i] = (float)((s = s * 1103515245u + 12345u) >> 16 & 0xff) / 128.0f - 1.0f;
    for (int i = 0; i < K * LDB * 2; i++) B[i] = (float)((s = s * 1103515245u + 12345u) >> 16 & 0xff) / 128.0f - 1.0f;
    for (int j = 0; j < N; j++) C0[j] = (float)j / 10.0f;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            /* op(A)[0][k] = ta ? A[k·LDA] : A[k]; op(B)[k][j] = tb ? B[j·LDB + k] : B[k·LDB + j]. */
            memcpy(C, C0, sizeof C);
            CHECK_INT(b->gemm(b, ta, tb, 1, N, K, 0.5f, A, ta ? LDA : K, B, LDB, 2.0f, C, N), 0);
            double worst = 0;
            for (int j = 0; j < N; j++) {
                double r = 2.0 * C0[j];
                for (int k = 0; k < K; k++)
                    r += 0.5 * (ta ? A[k * LDA] : A[k]) * (tb ? B[j * LDB + k] : B[k * LDB + j]);
                worst = fmax(worst, fabs(r - C[j]));
            }
            CHECK_NEAR(worst, 0, 1e-4);
        }
    free(A);
    free(B);
    backend_close(b);
}

/* steer_skip leaves the masked positions of a forward of that length alone, steers the others
 * and every forward of another length (the generation steps). */
TEST(steer_skip_masks_prompt_positions_only)
{
    char err[256];
    steer_set *s = steer_new(STEER_ADDITIVE);
    const float v[4] = {1, 2, 3, 4};
    hook_point hp = {HOOK_RESID_PRE, 1};
    CHECK_INT(steer_add(s, hp, 0, v, 4, 10.0, err, sizeof err), 0);
    int nh;
    const hook_req *h = steer_hooks(s, &nh);
    CHECK_INT(nh, 1);
    const unsigned char skip[3] = {1, 0, 1};
    steer_skip(s, skip, 3);
    float x[2 * 3 * 4] = {0};
    CHECK_INT(h[0].fn(h[0].ud, hp, x, 2, 3, 4), 0);
    for (int b = 0; b < 2; b++)
        for (int t = 0; t < 3; t++)
            for (int j = 0; j < 4; j++) CHECK(x[(b * 3 + t) * 4 + j] == (skip[t] ? 0.0f : 10.0f * v[j]));
    float y[4] = {0};
    CHECK_INT(h[0].fn(h[0].ud, hp, y, 1, 1, 4), 0); /* a step: steered */
    CHECK(y[3] == 40.0f);
    steer_skip(s, NULL, 0);
    float z[3 * 4] = {0};
    CHECK_INT(h[0].fn(h[0].ud, hp, z, 1, 3, 4), 0);
    CHECK(z[0] == 10.0f && z[4] == 10.0f && z[8] == 10.0f);
    steer_free(s);
}
