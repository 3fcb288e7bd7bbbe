/* saedash_ref.h: a C reference of SAEDashboard's per-feature-batch algorithm
 * (shared/reference/saelens-saedashboard.md §3.2–3.5), for bench/dashboard's speed-up ratio.
 *
 * What it does, as SAEDashboard does it: the model runs once to the SAE's hook and every
 * hook activation is kept in memory (SAEDashboard caches them, on disk); then for each batch of
 * 128 features it encodes only those features' W_enc columns for ALL tokens into an in-memory
 * (tokens × 128) tensor and computes, per feature, max, frac_nonzero, the 50-bin histogram of
 * the non-zero values, the top 20 over all positions and 5 equal-width intervals × 5 random
 * examples (two passes over that tensor, since the interval edges need the max), then gathers
 * each example's prompt row of values (what the JSON conversion reads).
 *
 * What it leaves out, so the ratio against saed is conservative: quantiles (2,351
 * torch.quantile calls per feature in SAEDashboard), correlated neurons and features, the logit
 * tables, Python overhead, the disk cache. Only the standard and jumprelu architectures. */
#ifndef SAED_BENCH_SAEDASH_REF_H
#define SAED_BENCH_SAEDASH_REF_H

#include <stddef.h>
#include <stdint.h>

#include "engine/model.h"

typedef struct saedash_ref_opts {
    int batch_features;    /* features per batch (128, n_features_at_a_time) */
    int batch_prompts;     /* prompts per forward (32, n_prompts_in_forward_pass) */
    int top_k, n_intervals, per_interval, hist_bins;  /* 20, 5, 5, 50 */
    int bos_id;            /* masked positions (-1 = none) */
    uint64_t seed;
    /* Feature batches to run: every stride-th one, at most max_batches (0 = all). The caller
     * extrapolates the per-batch time to all of them. */
    int max_batches;
} saedash_ref_opts;

void saedash_ref_opts_default(saedash_ref_opts *o);

typedef struct saedash_ref_result {
    int d_sae, batches_total, batches_run;
    double seconds_forward;    /* model forward to the hook, caching every activation */
    double seconds_batches;    /* the feature batches that ran: encode + statistics + examples */
    double seconds_encode;     /* of which the encode GEMMs */
    double flops_forward, flops_encode;  /* counted for what ran */
    size_t cache_bytes;        /* the in-memory activation cache */
    /* Per feature (d_sae entries; only the batches that ran are filled, others nnz = -1):
     * non-zero count, max, and (prompt·T + pos) of the top example, for cross-checks. */
    int64_t *nnz;
    float *max;
    int64_t *top1;
    double checksum;           /* of every statistic and example, so no work is optimised away */
} saedash_ref_result;

/* Runs the reference over prompts (n × T ids) for the SAELens folder sae_dir on model m.
 * 0, or -1 with err. */
int saedash_ref_run(model *m, const char *sae_dir, const int32_t *prompts, int n, int T, const saedash_ref_opts *o,
                    saedash_ref_result *r, char *err, size_t errlen);
void saedash_ref_result_free(saedash_ref_result *r);

#endif
