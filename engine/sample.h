/* sample.h: choosing the next token during generation. A seeded random generator of saed's own
 * (so a seed gives the same tokens on every machine and library version), the OpenAI-style
 * frequency penalty, temperature sampling (0 = greedy), log-softmax and top-k log-probabilities.
 * Pure C; no state outside the caller's structs, so concurrent generations share nothing. */
#ifndef SAED_ENGINE_SAMPLE_H
#define SAED_ENGINE_SAMPLE_H

#include <stdint.h>

/* xoshiro256** state, filled from the seed by splitmix64. */
typedef struct sample_rng {
    uint64_t s[4];
} sample_rng;

void sample_rng_seed(sample_rng *r, uint64_t seed);
uint64_t sample_rng_next(sample_rng *r);
/* Uniform in [0, 1), 53 random bits. */
double sample_rng_uniform(sample_rng *r);
/* A request's seed (any finite double, e.g. Neuronpedia's −1e8…1e8) as generator seed: equal
 * numbers give equal seeds (0 and −0 included), different ones differ. */
uint64_t sample_seed_from_double(double seed);

/* Picks the next token from logits (V). The frequency penalty subtracts freq_penalty × counts[i]
 * from logit i (counts: how often token i was generated so far; NULL = none), as OpenAI's API
 * does; then temperature 0 takes the argmax (lowest id on ties) and temperature > 0 draws one
 * uniform number and samples from softmax(logits / temperature). scratch holds V doubles. */
int sample_next(const float *logits, int V, const int32_t *counts, double freq_penalty, double temperature,
                sample_rng *r, double *scratch);

/* out[i] = logits[i] − logsumexp(logits), computed in double. out may equal logits. */
void sample_log_softmax(const float *logits, int V, float *out);

/* The k largest values' indices, largest first (ties: lower index first); returns min(k, V). */
int sample_top_k(const float *x, int V, int k, int32_t *idx);

#endif
