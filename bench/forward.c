/* bench/forward.c: forward-pass throughput against the machine's own sgemm rate, in one run.
 *   build/bench/forward [--quick]
 * Prints: OpenBLAS sgemm GFLOP/s (large square), then for a random gpt2-small-shaped model
 * (d 768, 12 layers, 12 heads, vocab 50257) at B×T = 32×128: time, GFLOP/s, tokens/s and the
 * ratio to sgemm, up to blocks.6.hook_resid_pre and through the full model with logits; and the
 * tokenizer's MB/s on English text. --quick uses B=4 for a smoke run. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench/common.h"
#include "engine/model.h"
#include "engine/tokenizer.h"
#include "tools/fixture.h"

static int noop_hook(void *ud, hook_point hp, float *act, int B, int T, int width)
{
    (void)ud; (void)hp; (void)act; (void)B; (void)T; (void)width;
    return 0;
}

static double tokenizer_mbps(void)
{
    char err[512];
    tokenizer *tk = tok_load_dir("tests/data/gpt2-tokenizer", err, sizeof err);
    if (!tk) {
        printf("tokenizer: unavailable (%s)\n", err);
        return 0;
    }
    FILE *f = fopen("README.md", "rb");
    char *text = malloc(8 << 20);
    size_t n = f ? fread(text, 1, 1 << 20, f) : 0;
    if (f) fclose(f);
    if (n == 0) {
        strcpy(text, "The quick brown fox jumps over the lazy dog. ");
        n = strlen(text);
    }
    size_t len = n;
    while (len + n < (size_t)(4 << 20)) {
        memcpy(text + len, text, n);
        len += n;
    }
    int32_t *ids = NULL;
    double t = bench_now();
    int k = tok_encode(tk, text, len, &ids, err, sizeof err);
    t = bench_now() - t;
    printf("tokenizer: %.1f MB in %.3f s = %.1f MB/s, %.0f tokens/s\n", len / 1e6, t, len / 1e6 / t, k / t);
    free(ids);
    free(text);
    tok_free(tk);
    return len / 1e6 / t;
}

int main(int argc, char **argv)
{
    backend_blas_env(argv);
    int quick = argc > 1 && !strcmp(argv[1], "--quick");
    if (bench_print_kernels()) return 2;
    const int B = quick ? 4 : 32, T = 128;
    double burst, peak = bench_sgemm_gflops(quick ? 1024 : 2048, &burst);
    printf("sgemm (OpenBLAS, %d threads, %dx%d square): %.1f GFLOP/s sustained (fastest single run %.1f)\n",
           bench_sgemm_threads(), quick ? 1024 : 2048, quick ? 1024 : 2048, peak, burst);

    char dir[] = "/tmp/saed-bench-XXXXXX", err[512];
    if (!mkdtemp(dir)) return 1;
    fixture_gpt2 fx = {.d_model = 768, .n_layer = 12, .n_head = 12, .n_ctx = 1024, .vocab = 50257, .seed = 7, .prefixed = 1};
    double t = bench_now();
    if (fixture_gpt2_write(dir, &fx, err, sizeof err)) {
        fprintf(stderr, "fixture: %s\n", err);
        return 1;
    }
    saed_backend *be = backend_cpu_open();
    model *m = model_load(dir, be, err, sizeof err);
    if (!m) {
        fprintf(stderr, "model_load: %s\n", err);
        return 1;
    }
    printf("model: random gpt2-small shape, %.0f MB of weights, written and loaded in %.1f s\n",
           model_weight_bytes(m) / 1e6, bench_now() - t);
    int32_t *ids = malloc(sizeof(int32_t) * B * T);
    for (int i = 0; i < B * T; i++) ids[i] = (int32_t)((i * 2654435761u) % 50257);

    hook_req h = {{HOOK_RESID_PRE, 6}, noop_hook, NULL, 0};
    fwd_opts o6 = {.hooks = &h, .nhooks = 1};
    int32_t *am = malloc(sizeof(int32_t) * B * T);
    fwd_opts of = {.argmax = am};
    struct { const char *what; fwd_opts *o; int layers, logits; } runs[] = {
        {"to blocks.6.hook_resid_pre", &o6, 6, 0},
        {"full model + logits", &of, 12, 1},
    };
    for (int i = 0; i < 2; i++) {
        model_forward(m, ids, B, T, runs[i].o, err, sizeof err); /* warm-up */
        double best = 1e9;
        for (int r = 0; r < (quick ? 1 : 3); r++) {
            t = bench_now();
            if (model_forward(m, ids, B, T, runs[i].o, err, sizeof err)) {
                fprintf(stderr, "forward: %s\n", err);
                return 1;
            }
            t = bench_now() - t;
            if (t < best) best = t;
        }
        double gf = model_forward_flops(m, B, T, runs[i].layers, runs[i].logits) / best / 1e9;
        printf("forward %-28s B×T=%dx%d: %.3f s, %.1f GFLOP/s, %.0f tokens/s, %.2f of sgemm\n", runs[i].what, B, T,
               best, gf, B * T / best, gf / peak);
    }
    tokenizer_mbps();
    model_free(m);
    backend_close(be);
    free(ids);
    free(am);
    char path[256];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/config.json", dir);
    unlink(path);
    rmdir(dir);
    return 0;
}
