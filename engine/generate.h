/* generate.h: autoregressive generation with the KV cache: the prompt is run once (prefill),
 * then one token at a time, each step sampling from the last position's logits (engine/sample.h)
 * with its own seeded generator. Hooks (steering, engine/steer.h) apply at every forward. A
 * generation owns its cache, generator, counts and tokens, so two of them (Neuronpedia's
 * DEFAULT and STEERED) share nothing mutable and may run on different threads over the same
 * model. Pure C: no HTTP, no SQL. */
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
/* Chooses the next token; runs it through the model when more are to follow. 1: a token was
 * added; 0: finished (n_tokens reached, or EOS chosen); -1 with err. */
int gen_step(gen *g, char *err, size_t errlen);
int gen_done(const gen *g);
int gen_count(const gen *g);
const gen_token *gen_tokens(const gen *g);
/* The generated ids (gen_count of them), contiguous. */
const int32_t *gen_ids(const gen *g);
void gen_free(gen *g);

#endif
