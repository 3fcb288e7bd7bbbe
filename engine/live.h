/* live.h: SAE feature activations on custom text, computed on request — what Neuronpedia's
 * activation/new, search-all and search-topk-by-token ask its inference server for. The text
 * is tokenized as that server does it, one model pass feeds the hooks of every SAE asked for,
 * the encoders run in blocks of rows, and each route's reduction keeps only what it returns
 * (one feature's values; the top features per token; the top features over the text).
 * Values are sae_encode's for the SAE as loaded: load SAEs with sae_dashboard_load_opts and
 * they match stored dashboards. Pure C: no HTTP, no SQL, no caching (the caller holds the
 * loaded model and SAEs). */
#ifndef SAED_ENGINE_LIVE_H
#define SAED_ENGINE_LIVE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/model.h"
#include "engine/sae.h"
#include "engine/tokenizer.h"

/* Tokenizes text as Neuronpedia's inference server does: the BOS is prepended unless the text
 * starts with it, and special tokens in the text are those tokens (HF tokenizers split them
 * out before BPE; the plain tok_encode treats them as text). GPT-2's vocabulary files: the BOS
 * string is <|endoftext|> (the EOS); tokenizer.json files: tok_bos_id and every added token. Returns the count with *ids malloc'd; -2 when the result
 * would exceed max_tokens (BOS included; the text is not tokenized at all when its length in
 * bytes already rules it out); -1 with err otherwise. */
int live_tokenize(const tokenizer *t, const char *text, size_t len, int max_tokens, int32_t **ids, char *err,
                  size_t errlen);

/* The inputs of n SAEs of one model for the same tokens: x[i] = (T, d_in) rows of SAE i's hook
 * (its columns of it when hook_head_index picks a head), with the processing its cfg asks for
 * (sae_cfg_processing). One model pass per distinct processing, stopping after the deepest
 * hook it needs. x[i] malloc'd (freed on failure). */
int live_inputs(model *m, sae *const *s, int n, const int32_t *ids, int T, float **x, char *err, size_t errlen);

/* Encodes x (T, d_in) in blocks of rows and hands each block's dense activations to fn:
 * f (rows, d_sae) host memory for rows [r0, r0 + rows). The blocks are the ones
 * sae_encode_sparse uses, so values equal `saed encode`'s bit for bit. A non-zero return
 * from fn stops and is returned. */
typedef int (*live_block_fn)(void *ud, int r0, int rows, const float *f);
int live_encode_blocks(sae *s, const float *x, int T, live_block_fn fn, void *ud, char *err, size_t errlen);

/* activation/new: one feature's values over the tokens, Neuronpedia style: values at BOS
 * positions are 0 and the leading BOS is dropped; with drop_special a leading bos_id left
 * after that goes too (the webapp's ignoreBos). */
typedef struct live_values {
    int first;        /* position in ids of values[0] */
    int n;            /* values kept */
    float *values;    /* (n) malloc'd */
    float max, min;   /* 0 when n is 0 */
    int argmax;       /* first position of max in values; -1 when n is 0 */
} live_values;
int live_feature(model *m, sae *s, const int32_t *ids, int T, int index, int bos_id, int drop_special,
                 live_values *out, char *err, size_t errlen);
void live_values_free(live_values *v);

/* search-topk-by-token: for every position, the k largest positive activations (ties: lower
 * index first) among the features whose density passes (density NULL, or density[i] NaN =
 * unknown, or density[i] <= max_density; max_density < 0 = no filter). idx and val (T, k),
 * count (T) features found per position. */
int live_topk_by_token(model *m, sae *s, const int32_t *ids, int T, int k, const float *density,
                       double max_density, int32_t *idx, float *val, int *count, char *err, size_t errlen);

/* search-all: the features of n SAEs that respond most to the text. A feature's key is the sum
 * of its values at sort_pos (any repeats count again) or, without sort positions, its maximum
 * over the text; with zero_first the value at position 0 (the BOS) counts as 0 everywhere.
 * Features whose key is not positive (unless keep_all), or whose density fails the filter (as
 * above, density[i] per SAE), are left out. The n_results highest keys, ties by SAE order, then index. */
typedef struct live_search_opts {
    const int *sort_pos;
    int n_sort;
    int zero_first;
    const float *const *density;  /* n entries (each may be NULL), or NULL */
    double max_density;
    int n_results;
    int keep_all;   /* rank every feature, keys <= 0 included (Neuronpedia's /v1/activation/all) */
} live_search_opts;

typedef struct live_hit {
    int sae;          /* which of the n SAEs */
    int index;        /* feature */
    float key, max;
    int argmax;       /* first position of max */
    float *values;    /* (T) with position 0 zeroed under zero_first */
} live_hit;

/* *hits malloc'd (free with live_hits_free), *nhits <= n_results, best first. */
int live_search(model *m, sae *const *s, int n, const int32_t *ids, int T, const live_search_opts *o,
                live_hit **hits, int *nhits, char *err, size_t errlen);
void live_hits_free(live_hit *h, int n);

/* activation/source: every non-zero activation of the SAE over the tokens, per token sorted
 * by value descending (sae_encode_sparse, so `saed encode`'s values). Free with
 * sae_sparse_free. */
int live_sparse(model *m, sae *s, const int32_t *ids, int T, sae_sparse *out, char *err, size_t errlen);

/* util/sae-topk-by-decoder-cossim: the k features of s whose decoder rows (as loaded) are
 * closest in cosine to q (d_out floats): dash_decoder_nearest over the rows fetched from the
 * backend a block at a time, a non-finite cosine reported as 0. k is clamped to [1, d_sae];
 * idx, val: that many entries, best first; returns how many, -1 with err. */
int live_decoder_nearest(sae *s, const float *q, int k, int32_t *idx, float *val, char *err, size_t errlen);

#endif
