/* dash_fit.c: see dash_fit.h. */
#include "engine/dash_fit.h"

#include <string.h>

size_t dash_fit_bytes_per_prompt(const model *m, const sae *s, int T)
{
    const hf_config *mc = model_config(m);
    const sae_cfg *c = sae_config(s);
    const size_t C = (size_t)mc->d_model, t = (size_t)T;
    /* forward: resid, ln, tmp, tmp2, qkv, z, fc and up (gated MLPs) per token, the scores of
     * every head, the hook's copy; encode: x, the dense features, and as much again for
     * scratch (gated's second pre-activation, top-k's buffers) */
    const size_t Q = (size_t)mc->n_head * mc->head_dim, KV = (size_t)mc->n_kv_head * mc->head_dim;
    size_t fwd = t * (C * 4 + Q * 2 + KV * 2 + (size_t)mc->d_mlp * 2) + (size_t)mc->n_head * t * t + t * C;
    size_t enc = t * ((size_t)c->d_in * 2 + (size_t)c->d_sae * 2);
    return sizeof(float) * (fwd + enc);
}

static int out_of_memory(const char *err)
{
    return strstr(err, "out of memory") || strstr(err, "ALLOC_FAILED") || strstr(err, "device memory");
}

int dash_run_fit(model *m, sae *s, const int32_t *prompts, int n, int T, const dash_run_opts *o, dash_run_result *res,
                 int *batch_used, char *err, size_t errlen)
{
    saed_backend *be = model_backend(m);
    dash_run_opts fit = *o;
    if (fit.batch_prompts < 1) fit.batch_prompts = 32;
    size_t free_b = 0, total_b = 0;
    if (!be->host_memory && be->mem_info && be->mem_info(be, &free_b, &total_b) == 0) {
        /* 3/4 of what is free: cuBLAS workspaces and allocator rounding take the rest */
        size_t per = dash_fit_bytes_per_prompt(m, s, T), fits = per ? free_b / 4 * 3 / per : (size_t)fit.batch_prompts;
        if (fits < (size_t)fit.batch_prompts) fit.batch_prompts = fits > 0 ? (int)fits : 1;
    }
    for (;;) {
        if (batch_used) *batch_used = fit.batch_prompts;
        int rc = dash_run(m, s, prompts, n, T, &fit, res, err, errlen);
        if (rc >= 0 || be->host_memory || fit.batch_prompts <= 1 || !out_of_memory(err)) return rc;
        fit.batch_prompts /= 2;
    }
}
