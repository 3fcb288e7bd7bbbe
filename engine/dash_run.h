/* dash_run.h: one dashboard generation over prepared prompts, in one pass: forward to the SAE's
 * hook, encode every feature of the range, stream the statistics (dashboard.h) — which also
 * capture each example's per-token values — then compute the weight-derived fields. Pure C:
 * the job queue, the dataset reader and the writers call it. Memory is bounded by the batch
 * and the accumulators, never by the number of prompts. */
#ifndef SAED_ENGINE_DASH_RUN_H
#define SAED_ENGINE_DASH_RUN_H

#include <stddef.h>
#include <stdint.h>

#include "engine/dashboard.h"
#include "engine/model.h"
#include "engine/sae.h"

typedef struct dash_run_opts {
    dash_opts stats;
    dash_wopts weights;
    int f0, f1;             /* feature range; f1 <= 0 means d_sae */
    int batch_prompts;      /* prompts per forward (32) */
    int bos_id;             /* positions holding it are masked, as SAEDashboard masks BOS; -1 = none */
    /* Further ids masked wherever they stand, whatever prepend_bos says (SAEDashboard's
     * ignore_tokens: the tokenizer's pad, BOS and EOS ids); -1 entries are unused. */
    int32_t mask_ids[4];
    /* Called between batches; a non-zero return cancels the run (dash_run returns 1). */
    int (*progress)(void *ud, const char *phase, int64_t done, int64_t total);
    void *ud;
} dash_run_opts;

void dash_run_opts_default(dash_run_opts *o);

typedef struct dash_run_result {
    int f0, f1, T, n_prompts;
    dash_feature *features;    /* f1 - f0 */
    float **example_values;    /* per feature: n_examples × T values of each example's prompt */
    int64_t tokens;            /* positions processed in the statistics pass */
    double seconds_stats, seconds_weights;
    /* where the statistics pass went: forward to the hook, encode (+ device fetch), accumulate */
    double seconds_forward, seconds_encode, seconds_accumulate;
} dash_run_result;

/* 0 done, 1 cancelled, -1 error (err). prompts: n × T token ids (all windows of length T). */
int dash_run(model *m, sae *s, const int32_t *prompts, int n, int T, const dash_run_opts *o, dash_run_result *res,
             char *err, size_t errlen);
void dash_run_result_free(dash_run_result *r);

#endif
