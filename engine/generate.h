/* generate.h: autoregressive generation with the KV cache: the prompt is run once (prefill),
 * then one token at a time, each step sampling from the last position's logits (engine/sample.h)
 * with its own seeded generator. Hooks (steering, engine/steer.h) apply at every forward. A
 * generation owns its cache, generators, counts and tokens, so two of them share nothing
 * mutable and may run on different threads over the same model.
 *
 * A generation may hold several rows over one prompt, each with its own options (Neuronpedia's
 * DEFAULT and STEERED: the same prompt with and without the steering hooks). Where the
 * backend's ops are row-exact (backend.h rows_exact) the rows share every forward, so each
 * weight is read once per step for all of them, and each row's tokens are bit for bit those it
 * gets alone; elsewhere they run one after another. Pure C: no HTTP, no SQL. */
#ifndef SAED_ENGINE_GENERATE_H
#define SAED_ENGINE_GENERATE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/model.h"

#define GEN_MAX_LOGPROBS 20

typedef struct gen_opts {
    int n_tokens;            /* most new tokens */
    double temperature;      /* 0 = greedy */
    double freq_penalty;     /* OpenAI-style, over the tokens generated so far */
    uint64_t seed;
    int eos;                 /* generation stops when this is chosen (not added); -1 = never */
    int n_logprobs;          /* 0..GEN_MAX_LOGPROBS alternatives per token; 0 = no logprobs */
    const hook_req *hooks;   /* applied at prefill and at every step */
    int nhooks;
    int processing;          /* PROC_* for what the hooks see */
} gen_opts;

/* One generated token. Log-probabilities are the log-softmax of the model's logits at that step
 * (before the frequency penalty and the temperature). */
typedef struct gen_token {
    int32_t id;
    float logprob;
    int ntop;
    int32_t top_id[GEN_MAX_LOGPROBS];
    float top_logprob[GEN_MAX_LOGPROBS];
} gen_token;

typedef struct gen gen;

/* Runs the prompt (T ids, BOS included when wanted) through the model. T + n_tokens must fit
 * the context. NULL with err. */
gen *gen_start(model *m, const int32_t *prompt, int T, const gen_opts *o, char *err, size_t errlen);
/* B rows over the same prompt, row r with o[r]: what B gen_start calls would give, at once.
 * Rows whose hooks want different processing run one after another. */
gen *gen_start_rows(model *m, const int32_t *prompt, int T, const gen_opts *o, int B, char *err, size_t errlen);
/* Chooses every unfinished row's next token and runs those that are to be continued through the
 * model (a row that chose EOS stops; the others go on unchanged). 1: some row added a token;
 * 0: all rows had finished (n_tokens reached, or EOS chosen); -1 with err. */
int gen_step(gen *g, char *err, size_t errlen);
/* 1 when every row has finished. */
int gen_done(const gen *g);
int gen_rows(const gen *g);
/* 1 when the rows share forwards (more than one row, row-exact backend). */
int gen_batched(const gen *g);
int gen_row_done(const gen *g, int r);
int gen_row_count(const gen *g, int r);
const gen_token *gen_row_tokens(const gen *g, int r);
/* Row r's generated ids (gen_row_count of them), contiguous. */
const int32_t *gen_row_ids(const gen *g, int r);
/* Row 0's. */
int gen_count(const gen *g);
const gen_token *gen_tokens(const gen *g);
const int32_t *gen_ids(const gen *g);
void gen_free(gen *g);

#endif
