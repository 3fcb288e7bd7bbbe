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

/* ---- Source sets (live_set.c): what search-all and /v1/activation/all[-batch] search ---- */

/* A source set resolved for a search: the model's path and token limit and the chosen SAEs. */
typedef struct live_set {
    char *model_path;
    int max_tokens, n;
    struct {
        char id[160];
        char *path;
    } saes[LIVE_MAX_SAES];
} live_set;

/* The SAEs of source set `set` (saes.setName) of model_id, those named in sel (an array of
 * SAE ids; absent, null or [] = the whole set, in layer order), into out (zeroed first).
 * 0; 1 when the model has no SAE in such a set (nothing replied); -1 after a reply (400
 * naming sel_name, 500, 503). Free with live_set_free. */
int live_set_or_reply(http_req *r, const char *model_id, const char *set, json_t *sel, const char *sel_name,
                      live_set *out);
void live_set_free(live_set *s);

/* Token positions (integers >= 0, at most LIVE_MAX_SORT, none past SAED_MAX_TEXT_TOKENS - 1)
 * of v into pos, sorted; absent or null = none. The count, or -1 after a 400 naming field. */
int live_positions_or_reply(http_req *r, json_t *v, const char *field, int *pos);

/* The cached model and every SAE of set: 0, or -1 after a 500. Whatever was taken (also on
 * failure) goes back with live_set_put. */
int live_set_engines_or_reply(http_req *r, const live_set *set, const eng_ref **mr, const eng_ref **sr, sae **s);
void live_set_put(http_req *r, const live_set *set, const eng_ref *mr, const eng_ref **sr);

/* PostgreSQL array literal {"a","b",...} of n strings (ids and decimal indexes only). */
char *live_pg_array(const char *const *items, int n);

#endif
