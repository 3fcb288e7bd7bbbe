/* bench/steer.c: generation speed for steering, in one run.
 *   build/bench/steer [--quick]
 * Prints OpenBLAS's sgemm rate, then for a random gpt2-small-shaped model (d 768, 12 layers,
 * 12 heads, vocab 50257): greedy generation of 64 new tokens after a 32-token prompt with the
 * KV cache (engine/generate.h), unsteered and steered (one SIMPLE_ADDITIVE vector at
 * blocks.6.hook_resid_pre, as /api/steer applies it), each as tokens/s, the counted FLOP rate
 * and its ratio to sgemm; both runs interleaved as /api/steer runs DEFAULT and STEERED; and the
 * batched forward's ratio to sgemm for comparison (bench/forward measures it in full).
 * The three cases take turns, five repetitions each (best counts); --quick: 16 new tokens, one
 * repetition. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/common.h"
#include "engine/generate.h"
#include "engine/model.h"
#include "engine/steer.h"
#include "tools/fixture.h"

#define PROMPT 32

/* FLOPs of one generation: the prompt's forward (logits of its last position only), then one
 * token per step attending over everything before it, with its logits. The last token is never
 * run, as generate.c does. */
static double gen_flops(const model *m, int T, int n_new)
{
    const hf_config *c = model_config(m);
    const double C = c->d_model, V = c->vocab_size, L = c->n_layer;
    double f = model_forward_flops(m, 1, T, c->n_layer, 0) + 2.0 * C * V;
    for (int k = 0; k < n_new - 1; k++) {
        double Tk = T + k + 1;
        f += L * (2.0 * 12.0 * C * C + 2.0 * 2.0 * Tk * C) + 2.0 * C * V;
    }
    return f;
}

/* Generates n_new tokens greedily with each of the given option sets in turn, one token each
 * per round (nruns generations, as /api/steer interleaves DEFAULT and STEERED). Seconds, or -1. */
static double run(model *m, const int32_t *prompt, const gen_opts *o, int nruns, int *produced)
{
    char err[512];
    gen *g[2] = {NULL, NULL};
    double t = bench_now();
    for (int k = 0; k < nruns; k++)
        if (!(g[k] = gen_start(m, prompt, PROMPT, &o[k], err, sizeof err))) {
            fprintf(stderr, "gen_start: %s\n", err);
            return -1;
        }
    for (int more = 1; more;) {
        more = 0;
        for (int k = 0; k < nruns; k++) {
            int rc = gen_step(g[k], err, sizeof err);
            if (rc < 0) {
                fprintf(stderr, "gen_step: %s\n", err);
                return -1;
            }
            more |= rc == 1 && !gen_done(g[k]);
        }
    }
    t = bench_now() - t;
    *produced = 0;
    for (int k = 0; k < nruns; k++) {
        *produced += gen_count(g[k]);
        gen_free(g[k]);
    }
    return t;
}

int main(int argc, char **argv)
{
    const int quick = argc > 1 && !strcmp(argv[1], "--quick"), n_new = quick ? 16 : 64, reps = quick ? 1 : 5;
    double burst;
    const double peak = bench_sgemm_gflops(quick ? 1024 : 2048, &burst);
    printf("sgemm (OpenBLAS, %d threads, %dx%d square): %.1f GFLOP/s sustained (fastest single run %.1f)\n",
           bench_sgemm_threads(), quick ? 1024 : 2048, quick ? 1024 : 2048, peak, burst);

    char dir[] = "/tmp/saed-bench-steer-XXXXXX", err[512];
    if (!mkdtemp(dir)) return 1;
    fixture_gpt2 fx = {.d_model = 768, .n_layer = 12, .n_head = 12, .n_ctx = 1024, .vocab = 50257, .seed = 7, .prefixed = 1};
    double t = bench_now();
    if (fixture_gpt2_write(dir, &fx, err, sizeof err)) {
        fprintf(stderr, "fixture: %s\n", err);
        return 1;
    }
    saed_backend *be = backend_cpu_open();
    model *m = model_load(dir, be, err, sizeof err);
    char path[256];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/config.json", dir);
    unlink(path);
    rmdir(dir);
    if (!m) {
        fprintf(stderr, "model_load: %s\n", err);
        return 1;
    }
    printf("model: random gpt2-small shape, %.0f MB of weights, written and loaded in %.1f s\n", model_weight_bytes(m) / 1e6,
           bench_now() - t);

    int32_t prompt[PROMPT];
    prompt[0] = 50256;
    for (int i = 1; i < PROMPT; i++) prompt[i] = (int32_t)((i * 2654435761u) % 50256);
    /* A steering vector of norm ~40 at the middle of the model, like a strong feature. */
    float v[768];
    for (int j = 0; j < 768; j++) v[j] = (float)sin(0.7 * j + 0.3);
    steer_set *ss = steer_new(STEER_ADDITIVE);
    if (!ss || steer_add(ss, (hook_point){HOOK_RESID_PRE, 6}, 0, v, 768, 2.0, err, sizeof err)) {
        fprintf(stderr, "steer: %s\n", err);
        return 1;
    }
    int nh;
    const hook_req *hooks = steer_hooks(ss, &nh);
    const gen_opts plain = {.n_tokens = n_new, .temperature = 0, .freq_penalty = 0, .eos = -1};
    gen_opts steered = plain;
    steered.hooks = hooks;
    steered.nhooks = nh;
    const gen_opts both[2] = {steered, plain};
    struct {
        const char *what;
        const gen_opts *o;
        int nruns;
    } cases[] = {{"unsteered", &plain, 1}, {"steered (1 vector at blocks.6.hook_resid_pre)", &steered, 1},
                 {"DEFAULT + STEERED interleaved (/api/steer)", both, 2}};
    const double flops1 = gen_flops(m, PROMPT, n_new);
    double rate[3] = {0}, best[3] = {1e9, 1e9, 1e9};
    int produced[3] = {0};
    /* The cases take turns within each repetition, so a busy moment of a shared machine does not
     * land on one case only; the best repetition of each counts. */
    for (int r = -1; r < reps; r++)
        for (int c = 0; c < 3; c++) {
            double s = run(m, prompt, cases[c].o, cases[c].nruns, &produced[c]);
            if (s < 0) return 1;
            if (r >= 0 && s < best[c]) best[c] = s; /* r = -1: warm-up */
        }
    for (int c = 0; c < 3; c++) {
        double gf = flops1 * cases[c].nruns / best[c] / 1e9;
        rate[c] = produced[c] / best[c];
        printf("generate %-46s prompt %d + %d new, greedy: %.3f s, %.1f tokens/s, %.1f GFLOP/s, %.3f of sgemm\n",
               cases[c].what, PROMPT, n_new, best[c], rate[c], gf, gf / peak);
    }
    printf("steering overhead: %.1f%% (steered %.1f vs unsteered %.1f tokens/s)\n", 100.0 * (rate[0] / rate[1] - 1), rate[1],
           rate[0]);

    /* The batched forward for comparison: GEMMs instead of one token's GEMVs. */
    const int B = quick ? 2 : 8, T = 128;
    int32_t *ids = malloc(sizeof(int32_t) * B * T);
    int32_t *am = malloc(sizeof(int32_t) * B * T);
    for (int i = 0; i < B * T; i++) ids[i] = (int32_t)((i * 2654435761u) % 50257);
    fwd_opts of = {.argmax = am};
    model_forward(m, ids, B, T, &of, err, sizeof err);
    double fbest = 1e9;
    for (int r = 0; r < (quick ? 1 : 3); r++) {
        t = bench_now();
        if (model_forward(m, ids, B, T, &of, err, sizeof err)) {
            fprintf(stderr, "forward: %s\n", err);
            return 1;
        }
        t = bench_now() - t;
        if (t < fbest) fbest = t;
    }
    double gf = model_forward_flops(m, B, T, 12, 1) / fbest / 1e9;
    printf("forward full model + logits B×T=%dx%d (for comparison): %.3f s, %.1f GFLOP/s, %.0f tokens/s, %.2f of sgemm\n", B, T,
           fbest, gf, B * T / fbest, gf / peak);
    free(ids);
    free(am);
    steer_free(ss);
    model_free(m);
    backend_close(be);
    return 0;
}
