/* live.h: what the compute routes (activation.c: activation/new; search.c: search-all and
 * search-topk-by-token) share: Neuronpedia's loose request fields, the input limits, the
 * engine references a compute task holds, feature densities for the density filter, token
 * strings and the reply. The `..._or_reply` helpers answer the request themselves when they
 * fail (and return NULL or -1). */
#ifndef SAED_HANDLERS_LIVE_H
#define SAED_HANDLERS_LIVE_H

#include <jansson.h>
#include <stdint.h>

#include "server/engines.h"
#include "server/http.h"

/* Input limits; the 400 for each names it. The token limit is SAED_MAX_TEXT_TOKENS (config),
 * capped by the model's context. */
#define LIVE_MAX_TEXTS 32          /* texts in one customText / text array */
#define LIVE_MAX_SAES 64           /* SAEs one search-all runs */
#define LIVE_MAX_SORT 4096         /* sortIndexes entries */
#define LIVE_MAX_SEARCH_RESULTS 100
#define LIVE_MAX_TOPK_RESULTS 20

/* Neuronpedia's answer for an unknown (or inaccessible) model, source or feature. */
void live_reply_not_found(http_req *r);

/* index as Neuronpedia accepts it: a decimal string or a non-negative integer. -1 otherwise. */
int live_index(json_t *v);

/* A string or an array of 1..LIVE_MAX_TEXTS non-empty strings (borrowed from the body). The
 * count with *is_array set, or -1 after a 400 naming field. */
int live_texts_or_reply(http_req *r, json_t *v, const char *field, const char **texts, int *is_array);

/* The token limit for a model with this context size. */
int live_max_tokens(http_req *r, int context_size);

/* The cached model (with tokenizer) or SAE at path; NULL after a 500 (files that no longer
 * load; the log has why). Put back with engines_put. */
const eng_ref *live_model_or_reply(http_req *r, const char *path);
const eng_ref *live_sae_or_reply(http_req *r, const char *path);

/* live_tokenize with the request's limit; NULL after a 400 naming the limit (or a 500). */
int32_t *live_tokens_or_reply(http_req *r, const tokenizer *t, const char *text, int max_tokens, const char *field,
                              int *T);

/* Display strings of ids (as dashboards show tokens). */
json_t *live_token_strings(const tokenizer *t, const int32_t *ids, int n);

/* Per-feature density of an SAE for the density filter: frac_nonzero of its stored dashboards
 * where they exist, else its sparsity.safetensors (10^log10 density), else NaN (unknown).
 * malloc'd d_sae floats, or NULL after a reply (database trouble). */
float *live_density_or_reply(http_req *r, const char *model_id, const char *sae_id, const sae *s);

/* 200 with body (stolen); reals at float precision (nine significant digits), which is all
 * the engine's float32 values hold. */
void live_reply(http_req *r, json_t *body);

/* 500 for an engine failure, logged with the request id. */
void live_reply_engine_error(http_req *r, const char *what, const char *err);

/* PostgreSQL array literal {"a","b",...} of n strings (ids and decimal indexes only). */
char *live_pg_array(const char *const *items, int n);

#endif
