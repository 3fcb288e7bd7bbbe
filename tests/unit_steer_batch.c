/* unit_steer_batch.c: DEFAULT and STEERED as one generation of two rows (gen_start_rows, one
 * forward of both sequences per step) against the two separate generations /api/steer ran
 * before, stepped in turn: the same token ids, logprobs and decoded texts, bit for bit, over
 * seeds, temperatures, frequency penalties, strengths and both steering methods, with EOS
 * stopping one row before the other; for GPT-2 (tiny-a, and a wider random checkpoint whose
 * products split over the thread pool) and the rotary families llama-gqa and gemma2. The
 * reference is the one-row path, which the other steering tests hold to full forwards. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/generate.h"
#include "engine/model.h"
#include "engine/steer.h"
#include "engine/tokenizer.h"
#include "gpu/blas.h"
#include "tests/t.h"
#include "tools/fixture.h"

enum { NTOK = 20 };

typedef struct run_out {
    int n[2];
    int32_t ids[2][NTOK];
    gen_token tok[2][NTOK];
} run_out;

static const int32_t prompt[] = {1, 64, 17, 99, 3, 41, 120, 7, 88, 5}; /* < 128: every test vocab */
#define NP ((int)(sizeof prompt / sizeof prompt[0]))

static void keep(run_out *o, int k, const gen *g, int r)
{
    o->n[k] = gen_row_count(g, r);
    memcpy(o->ids[k], gen_row_ids(g, r), sizeof(int32_t) * (size_t)o->n[k]);
    memcpy(o->tok[k], gen_row_tokens(g, r), sizeof(gen_token) * (size_t)o->n[k]);
}

/* Before: two one-row generations stepped in turn, as server/steer.c did. */
static int two_runs(model *m, const gen_opts *o, run_out *out)
{
    char err[512];
    gen *g[2] = {gen_start(m, prompt, NP, &o[0], err, sizeof err), gen_start(m, prompt, NP, &o[1], err, sizeof err)};
    int rc = g[0] && g[1] ? 0 : -1;
    for (int more = 1; rc == 0 && more;) {
        more = 0;
        for (int k = 0; k < 2 && rc == 0; k++) {
            if (gen_done(g[k])) continue;
            rc = gen_step(g[k], err, sizeof err) < 0 ? -1 : 0;
            more |= !gen_done(g[k]);
        }
    }
    if (rc) t_fail(__FILE__, __LINE__, "two runs: %s", err);
    for (int k = 0; rc == 0 && k < 2; k++) keep(out, k, g[k], 0);
    gen_free(g[0]);
    gen_free(g[1]);
    return rc;
}

/* Now: one generation of two rows. */
static int batched(model *m, const gen_opts *o, run_out *out)
{
    char err[512];
    gen *g = gen_start_rows(m, prompt, NP, o, 2, err, sizeof err);
    int rc = g ? 0 : -1;
    if (g) CHECK_INT(gen_batched(g), blas_fused());
    while (rc == 0 && !gen_done(g)) rc = gen_step(g, err, sizeof err) < 0 ? -1 : 0;
    if (rc) t_fail(__FILE__, __LINE__, "batched: %s", err);
    for (int k = 0; rc == 0 && k < 2; k++) keep(out, k, g, k);
    gen_free(g);
    return rc;
}

static int same_tokens(const gen_token *a, const gen_token *b, int n)
{
    for (int i = 0; i < n; i++) {
        if (a[i].id != b[i].id || memcmp(&a[i].logprob, &b[i].logprob, sizeof(float)) || a[i].ntop != b[i].ntop) return 0;
        for (int t = 0; t < a[i].ntop; t++)
            if (a[i].top_id[t] != b[i].top_id[t] || memcmp(&a[i].top_logprob[t], &b[i].top_logprob[t], sizeof(float)))
                return 0;
    }
    return 1;
}

/* Both paths over one configuration; 1 when the rows stopped at different steps. */
static int compare(model *m, const tokenizer *tok, const gen_opts *o, const char *what)
{
    run_out a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    if (two_runs(m, o, &a) || batched(m, o, &b)) return 0;
    for (int k = 0; k < 2; k++) {
        if (a.n[k] != b.n[k] || memcmp(a.ids[k], b.ids[k], sizeof(int32_t) * (size_t)a.n[k]) ||
            !same_tokens(a.tok[k], b.tok[k], a.n[k])) {
            t_fail(__FILE__, __LINE__, "%s: row %d differs (%d vs %d tokens)", what, k, a.n[k], b.n[k]);
            continue;
        }
        size_t la = 0, lb = 0;
        char *ta = tok_decode(tok, a.ids[k], a.n[k], &la), *tb = tok_decode(tok, b.ids[k], b.n[k], &lb);
        CHECK(ta && tb && la == lb && memcmp(ta, tb, la) == 0);
        free(ta);
        free(tb);
    }
    /* The steered row really was steered (else the comparison proves little), unless EOS came
     * first in both. */
    CHECK(a.n[0] + a.n[1] == 0 || a.n[0] != a.n[1] || memcmp(a.ids[0], a.ids[1], sizeof(int32_t) * (size_t)a.n[0]) ||
          !same_tokens(a.tok[0], a.tok[1], a.n[0]));
    return a.n[0] != a.n[1];
}

/* Every configuration for one model: hp is where the vector goes, C its width. */
static void check_model(model *m, const tokenizer *tok, const char *name, hook_point hp, int C)
{
    char err[512], what[160];
    float *v = malloc(sizeof(float) * (size_t)C);
    for (int j = 0; j < C; j++) v[j] = (float)sin(0.37 * j + 0.5);
    const struct {
        double temperature, freq_penalty;
        uint64_t seed;
    } sampling[] = {{0, 0, 1}, {0.7, 0, 7}, {1.0, 0.5, 42}, {1.3, 1.0, 1234567}};
    const double strengths[] = {0.5, 4.0, -8.0};
    int uneven = 0;
    for (int method = STEER_ADDITIVE; method <= STEER_ORTHOGONAL; method++)
        for (size_t s = 0; s < sizeof strengths / sizeof strengths[0]; s++) {
            steer_set *ss = steer_new((steer_method)method);
            CHECK_INT(steer_add(ss, hp, 0, v, C, strengths[s], err, sizeof err), 0);
            int nh;
            const hook_req *h = steer_hooks(ss, &nh);
            const int proc = method == STEER_ORTHOGONAL ? PROC_CENTER_WRITING : PROC_NONE;
            for (size_t q = 0; q < sizeof sampling / sizeof sampling[0]; q++) {
                gen_opts o[2] = {{.n_tokens = NTOK, .temperature = sampling[q].temperature,
                                  .freq_penalty = sampling[q].freq_penalty, .seed = sampling[q].seed, .eos = -1,
                                  .n_logprobs = 3, .processing = proc}};
                o[1] = o[0];
                o[1].hooks = h;
                o[1].nhooks = nh;
                snprintf(what, sizeof what, "%s %s strength %g, T %g, seed %llu", name, steer_method_name(method),
                         strengths[s], sampling[q].temperature, (unsigned long long)sampling[q].seed);
                compare(m, tok, o, what);
                /* EOS: a token the DEFAULT row chooses early stops it (or the other row) first. */
                run_out ref;
                memset(&ref, 0, sizeof ref);
                if (two_runs(m, o, &ref)) continue;
                for (int k = 0; k < 2; k++) {
                    o[0].eos = o[1].eos = ref.ids[k][3 + (int)q];
                    snprintf(what, sizeof what, "%s %s strength %g, T %g, seed %llu, eos %d", name,
                             steer_method_name(method), strengths[s], sampling[q].temperature,
                             (unsigned long long)sampling[q].seed, o[0].eos);
                    uneven += compare(m, tok, o, what);
                }
            }
            steer_free(ss);
        }
    CHECK(uneven > 0); /* some EOS stopped one row while the other went on */
    free(v);
}

TEST(generate_rows_batched_equal_two_runs_gpt2_and_rotary)
{
    char err[512];
    saed_backend *be = backend_cpu_open();
    tokenizer *tok = tok_load_dir("tests/data/models/tiny-a", err, sizeof err);
    if (!tok) {
        t_fail(__FILE__, __LINE__, "tokenizer: %s", err);
        backend_close(be);
        return;
    }
    const char *dirs[] = {"tests/data/models/tiny-a", "tests/data/families/llama-gqa", "tests/data/families/gemma2", NULL};
    char wide[] = "/tmp/saed-steer-batch-XXXXXX";
    /* Wider than the tiny checkpoints: products big enough to be split over the pool's threads
     * and a vocabulary that is no multiple of the kernels' tiles. */
    fixture_gpt2 fx = {.d_model = 256, .n_layer = 2, .n_head = 4, .n_ctx = 64, .vocab = 4099, .seed = 3, .prefixed = 1};
    if (mkdtemp(wide) && fixture_gpt2_write(wide, &fx, err, sizeof err) == 0) dirs[3] = wide;
    else t_fail(__FILE__, __LINE__, "fixture: %s", err);
    for (int i = 0; i < 4 && dirs[i]; i++) {
        model *m = model_load(dirs[i], be, err, sizeof err);
        if (!m) {
            t_fail(__FILE__, __LINE__, "%s: %s", dirs[i], err);
            continue;
        }
        const int C = model_config(m)->d_model;
        check_model(m, tok, dirs[i] == wide ? "gpt2 256-wide" : dirs[i], (hook_point){HOOK_RESID_PRE, 1}, C);
        model_free(m);
    }
    char path[600];
    snprintf(path, sizeof path, "%s/model.safetensors", wide);
    unlink(path);
    snprintf(path, sizeof path, "%s/config.json", wide);
    unlink(path);
    rmdir(wide);
    tok_free(tok);
    backend_close(be);
}

/* Rows whose hooks want different processing cannot share a forward; they still give what
 * they give alone. */
TEST(generate_rows_differing_processing_run_apart)
{
    char err[512];
    saed_backend *be = backend_cpu_open();
    model *m = model_load("tests/data/models/tiny-a", be, err, sizeof err);
    if (!m) {
        t_fail(__FILE__, __LINE__, "model_load: %s", err);
        backend_close(be);
        return;
    }
    float v[64];
    for (int j = 0; j < 64; j++) v[j] = (float)cos(0.2 * j);
    steer_set *ss = steer_new(STEER_ORTHOGONAL);
    CHECK_INT(steer_add(ss, (hook_point){HOOK_RESID_PRE, 1}, 0, v, 64, 3.0, err, sizeof err), 0);
    int nh;
    const hook_req *h = steer_hooks(ss, &nh);
    gen_opts o[2] = {{.n_tokens = NTOK, .temperature = 0.8, .seed = 5, .eos = -1, .hooks = h, .nhooks = nh,
                      .processing = PROC_NONE}};
    o[1] = o[0];
    o[1].processing = PROC_CENTER_WRITING;
    gen *g = gen_start_rows(m, prompt, NP, o, 2, err, sizeof err);
    CHECK(g != NULL);
    if (g) {
        CHECK_INT(gen_batched(g), 0);
        while (!gen_done(g)) CHECK(gen_step(g, err, sizeof err) >= 0);
        run_out a;
        if (two_runs(m, o, &a) == 0)
            for (int k = 0; k < 2; k++) {
                CHECK_INT(gen_row_count(g, k), a.n[k]);
                CHECK(memcmp(gen_row_ids(g, k), a.ids[k], sizeof(int32_t) * (size_t)a.n[k]) == 0);
            }
        gen_free(g);
    }
    steer_free(ss);
    model_free(m);
    backend_close(be);
}
