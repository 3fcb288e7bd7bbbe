/* api_sae.c: writes the SAE that `make bench-api` builds its dashboard from: a SAELens v6
 * standard SAE at one hook of a model, d_sae random features whose encoder biases are set on
 * calibration prompts so that each fires on 1–5% of tokens (so that every feature has a full
 * dashboard of examples, as real SAEs' live features do). Deterministic for a seed.
 *   bench/api-sae --model DIR --out DIR [--d-sae 4096] [--layer 1] [--seed 1]
 * It only writes files; bench/api.sh registers them, runs the dashboard job and the load. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cblas.h>

#include "bench/common.h"
#include "engine/model.h"
#include "engine/safetensors.h"
#include "gpu/blas.h"

#define T_CAL 64
#define N_CAL 16

int main(int argc, char **argv)
{
    const char *model_dir = NULL, *out = NULL;
    int S = 4096, layer = 1;
    uint64_t seed = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--model")) model_dir = argv[i + 1];
        else if (!strcmp(argv[i], "--out")) out = argv[i + 1];
        else if (!strcmp(argv[i], "--d-sae")) S = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--layer")) layer = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seed")) seed = strtoull(argv[i + 1], NULL, 10);
        else break;
    }
    if (!model_dir || !out || S < 1 || layer < 0 || argc % 2 == 0) {
        fprintf(stderr, "usage: api-sae --model DIR --out DIR [--d-sae 4096] [--layer 1] [--seed 1]\n");
        return 2;
    }
    char err[512];
    saed_backend *be = backend_cpu_open();
    model *m = model_load(model_dir, be, err, sizeof err);
    if (!m) {
        fprintf(stderr, "api-sae: %s\n", err);
        return 1;
    }
    const int D = model_config(m)->d_model, N = N_CAL * T_CAL, V = model_config(m)->vocab_size;
    float *W_enc = malloc(sizeof(float) * (size_t)D * S), *W_dec = malloc(sizeof(float) * (size_t)S * D);
    float *b_enc = malloc(sizeof(float) * S), *b_dec = calloc((size_t)D, sizeof(float));
    float *x = malloc(sizeof(float) * (size_t)N * D), *h = malloc(sizeof(float) * (size_t)N * S), *col = malloc(sizeof(float) * N);
    int32_t *ids = malloc(sizeof(int32_t) * N);
    if (!W_enc || !W_dec || !b_enc || !b_dec || !x || !h || !col || !ids) {
        fprintf(stderr, "api-sae: out of memory\n");
        return 1;
    }
    /* Encoder rows random, decoder its transpose with unit-norm rows (SAELens's tied init). */
    const float sd = 1.0f / sqrtf((float)D);
    for (size_t i = 0; i < (size_t)D * S; i++) W_enc[i] = sd * bench_normal(&seed);
    for (int i = 0; i < S; i++) {
        double s2 = 0;
        for (int d = 0; d < D; d++) s2 += (double)W_enc[(size_t)d * S + i] * W_enc[(size_t)d * S + i];
        for (int d = 0; d < D; d++) W_dec[(size_t)i * D + d] = (float)(W_enc[(size_t)d * S + i] / sqrt(s2));
    }
    /* Calibration: random token prompts to the hook, then b_enc = minus the (1 − density)
     * quantile of each feature's pre-activation. */
    for (int i = 0; i < N; i++) ids[i] = (int32_t)(bench_next(&seed) % (uint64_t)(V < 4000 ? V : 4000));
    hook_req req = {{HOOK_RESID_PRE, layer}, bench_copy_hook, x, 0};
    fwd_opts fo = {.hooks = &req, .nhooks = 1};
    if (model_forward(m, ids, N_CAL, T_CAL, &fo, err, sizeof err)) {
        fprintf(stderr, "api-sae: %s\n", err);
        return 1;
    }
    blas_sgemm(0, 0, N, S, D, 1.0f, x, D, W_enc, S, 0.0f, h, S);
    for (int i = 0; i < S; i++) {
        for (int r = 0; r < N; r++) col[r] = h[(size_t)r * S + i];
        qsort(col, (size_t)N, sizeof *col, bench_cmp_float);
        double dens = exp(log(0.01) + bench_uniform(&seed) * (log(0.05) - log(0.01)));
        b_enc[i] = -col[N - 1 - (int)(dens * N)];
    }
    mkdir(out, 0755);
    char path[4200], hook[64];
    snprintf(hook, sizeof hook, "blocks.%d.hook_resid_pre", layer);
    snprintf(path, sizeof path, "%s/sae_weights.safetensors", out);
    const int64_t se[2] = {D, S}, sdec[2] = {S, D}, s1[1] = {S}, sdin[1] = {D};
    st_wtensor t[4] = {{"W_enc", ST_F32, 2, se, W_enc}, {"W_dec", ST_F32, 2, sdec, W_dec},
                       {"b_enc", ST_F32, 1, s1, b_enc}, {"b_dec", ST_F32, 1, sdin, b_dec}};
    if (st_write(path, t, 4, NULL, err, sizeof err)) {
        fprintf(stderr, "api-sae: %s\n", err);
        return 1;
    }
    snprintf(path, sizeof path, "%s/cfg.json", out);
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "api-sae: %s: %s\n", path, strerror(errno));
        return 1;
    }
    fprintf(f,
            "{\"architecture\": \"standard\", \"d_in\": %d, \"d_sae\": %d, \"dtype\": \"float32\", \"device\": \"cpu\",\n"
            " \"apply_b_dec_to_input\": true, \"normalize_activations\": \"none\", \"reshape_activations\": \"none\",\n"
            " \"metadata\": {\"sae_lens_version\": \"6.5.0\", \"model_name\": \"gpt2\", \"hook_name\": \"%s\",\n"
            "  \"hook_head_index\": null, \"prepend_bos\": true, \"context_size\": %d, \"dataset_path\": \"random\",\n"
            "  \"neuronpedia_id\": null, \"model_from_pretrained_kwargs\": {}}}\n",
            D, S, hook, T_CAL);
    if (fclose(f)) {
        fprintf(stderr, "api-sae: %s: write failed\n", path);
        return 1;
    }
    printf("%s: standard SAE, d_in %d, d_sae %d, %s, features firing on 1-5%% of calibration tokens\n", out, D, S, hook);
    model_free(m);
    backend_close(be);
    free(W_enc);
    free(W_dec);
    free(b_enc);
    free(b_dec);
    free(x);
    free(h);
    free(col);
    free(ids);
    return 0;
}
