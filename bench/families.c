/* bench/families.c: the rotary families' forward against the machine's own sgemm rate, in one
 * run, on random checkpoints of real shapes written to a scratch folder (BF16, as published):
 *   build/bench/families [--quick] [--8b]
 * tinyllama: TinyLlama-1.1B's shape (d 2048, 22 layers, 32/4 heads, d_mlp 5632, vocab 32000);
 * gemma2-2b: gemma-2-2b's (d 2304, 26 layers, 8/4 heads of 256, d_mlp 9216, vocab 256000).
 * Each: forward to blocks.L/2.hook_resid_pre at B×T = 8×128: time, GFLOP/s, tokens/s, the
 * fraction of sgemm. --8b also loads a Llama-3.1-8B-shaped model (d 4096, 32 layers, 32/8
 * heads, d_mlp 14336, vocab 128256, untied; 16 GB of BF16 on disk) and runs one 1×128 forward
 * with logits: peak RSS, weight bytes, load and forward time (it must fit in 24 GiB).
 * --quick: B = 2, TinyLlama only. Prints which GEMM kernel ran (gpu/blas.h). */
#include <stdio.h>        // defines: printf
#include <stdlib.h>       // defines: malloc, system
#include <string.h>       // defines: strcmp
#include <sys/resource.h> // defines: getrusage
#include <sys/stat.h>     // defines: mkdir
#include <unistd.h>       // defines: unlink

#include "bench/common.h"
#include "engine/model.h"
#include "tools/fixture.h"

static int noop_hook(void *ud, hook_point hp, float *act, int B, int T, int width)
{
    (void)ud; (void)hp; (void)act; (void)B; (void)T; (void)width;
    return 0;
}

static double peak_rss_gb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1048576.0; /* kB → GiB */
}

static void rm_dir(const char *dir)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) {}
}

/* Writes, loads and times one model; 0 or -1. */
static int run(const char *label, const fixture_rotary *fx, int B, int with_logits, double peak, int reps)
{
    char dir[] = "/tmp/saed-bench-fam-XXXXXX", err[512];
    if (!mkdtemp(dir)) return -1;
    double t = bench_now();
    if (fixture_rotary_write(dir, fx, err, sizeof err)) {
        fprintf(stderr, "%s: fixture: %s\n", label, err);
        rm_dir(dir);
        return -1;
    }
    double t_write = bench_now() - t;
    t = bench_now();
    saed_backend *be = backend_cpu_open();
    model *m = model_load(dir, be, err, sizeof err);
    if (!m) {
        fprintf(stderr, "%s: model_load: %s\n", label, err);
        backend_close(be);
        rm_dir(dir);
        return -1;
    }
    double t_load = bench_now() - t;
    const int T = 128, L = model_config(m)->n_layer, V = model_config(m)->vocab_size;
    printf("%s: %.2f GB of weights in memory (written in %.1f s, loaded in %.1f s)\n", label,
           model_weight_bytes(m) / 1e9, t_write, t_load);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)B * T);
    for (int i = 0; i < B * T; i++) ids[i] = (int32_t)((i * 2654435761u) % (unsigned)V);
    hook_req h = {{HOOK_RESID_PRE, L / 2}, noop_hook, NULL, 0};
    float *logits = with_logits ? malloc(sizeof(float) * (size_t)B * V) : NULL;
    fwd_opts o = with_logits ? (fwd_opts){.logits = logits, .logits_last_only = 1} : (fwd_opts){.hooks = &h, .nhooks = 1};
    int rc = 0;
    double best = 1e30;
    for (int r = 0; r < reps + 1 && rc == 0; r++) { /* the first is a warm-up */
        t = bench_now();
        rc = model_forward(m, ids, B, T, &o, err, sizeof err);
        t = bench_now() - t;
        if (r > 0 || reps == 0) best = t < best ? t : best;
    }
    if (rc) {
        fprintf(stderr, "%s: forward: %s\n", label, err);
    } else {
        int layers = with_logits ? L : L / 2;
        double gf = model_forward_flops(m, B, T, layers, with_logits) / best / 1e9;
        printf("%s: forward %s B×T=%dx%d: %.3f s, %.1f GFLOP/s, %.0f tokens/s, %.2f of sgemm; peak RSS %.2f GiB\n", label,
               with_logits ? "full + last logits" : "to the mid-layer hook", B, T, best, gf, B * T / best, gf / peak,
               peak_rss_gb());
    }
    free(ids);
    free(logits);
    model_free(m);
    backend_close(be);
    rm_dir(dir);
    return rc;
}

int main(int argc, char **argv)
{
    backend_blas_env(argv);
    int quick = 0, big = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--8b")) big = 1;
        else {
            fprintf(stderr, "usage: %s [--quick] [--8b]\n", argv[0]);
            return 2;
        }
    }
    double burst, peak = bench_sgemm_gflops(quick ? 1024 : 2048, &burst);
    printf("sgemm (OpenBLAS, %d threads, %dx%d square): %.1f GFLOP/s sustained (fastest single run %.1f)\n",
           bench_sgemm_threads(), quick ? 1024 : 2048, quick ? 1024 : 2048, peak, burst);
    if (bench_print_kernels()) return 2;
    int rc = 0;
    fixture_rotary tiny = {.model_type = "llama", .d_model = 2048, .n_layer = 22, .n_head = 32, .n_kv_head = 4,
                           .d_mlp = 5632, .n_ctx = 2048, .vocab = 32000, .bf16 = 1, .seed = 1};
    rc |= run("tinyllama", &tiny, quick ? 2 : 8, 0, peak, quick ? 1 : 2);
    if (!quick) {
        fixture_rotary gemma = {.model_type = "gemma2", .d_model = 2304, .n_layer = 26, .n_head = 8, .n_kv_head = 4,
                                .head_dim = 256, .d_mlp = 9216, .n_ctx = 8192, .vocab = 256000, .bf16 = 1, .seed = 2};
        rc |= run("gemma2-2b", &gemma, 8, 0, peak, 2);
    }
    if (big) {
        fixture_rotary l8 = {.model_type = "llama", .d_model = 4096, .n_layer = 32, .n_head = 32, .n_kv_head = 8,
                             .d_mlp = 14336, .n_ctx = 8192, .vocab = 128256, .bf16 = 1, .seed = 3};
        rc |= run("llama3-8b", &l8, 1, 1, peak, 0);
    }
    return rc ? 1 : 0;
}
