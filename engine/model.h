/* model.h: transformer checkpoints (HuggingFace layout) and their forward pass with
 * TransformerLens hook points. A model-family table maps the config's model_type to a weight
 * loader and a block forward, so new architectures plug in without touching callers. Weights
 * live in backend memory; a loaded model is read-only and may be shared by threads (each
 * forward allocates its own activations). Pure C: no HTTP, no SQL. */
#ifndef SAED_ENGINE_MODEL_H
#define SAED_ENGINE_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "engine/hfconfig.h"
#include "engine/hooks.h"
#include "gpu/backend.h"

typedef struct model model;
typedef struct kv_cache kv_cache;

/* TransformerLens processing as it changes hook values (flags, combinable). */
enum {
    PROC_NONE = 0,
    PROC_CENTER_WRITING = 1,   /* residual-stream hooks become h − mean over d_model */
    PROC_FOLD_VALUE_BIASES = 2,/* hook_v and hook_z lose b_V */
    PROC_FOLD_LN = 4           /* LayerNorm's β is folded into b_Q/K/V first: with
                                * PROC_FOLD_VALUE_BIASES, hook_v/hook_z lose b_V + β₁·W_V
                                * (alone it changes no hook value) */
};
/* "none", "center_writing_weights", "fold_value_biases", "fold_ln", "tl" (TransformerLens'
 * from_pretrained default: all three). -1 when unknown. */
int model_processing_parse(const char *s);

/* A hook callback sees the activation in host memory: (B,T,width) row-major, except
 * hook_pattern which is (B,NH,T,Tk). A read hook (write = 0) must not change the values: on
 * host-memory backends it may be shown the stream itself. A write hook may change the values
 * in place; the change
 * is applied to the model's stream (for processed hooks, the difference to what was shown is
 * added, which is exact because the processing only shifts or centers). Return non-zero to
 * abort the forward. */
typedef int (*hook_fn)(void *ud, hook_point hp, float *act, int B, int T, int width);

typedef struct hook_req {
    hook_point hp;
    hook_fn fn;
    void *ud;
    int write;
} hook_req;

/* A read hook's target that keeps columns [col0, col0+D) of every (B·T) row: x is (B,T,D). */
typedef struct hook_copy {
    float *x;
    int col0, D;
} hook_copy;

/* hook_fn for a hook_copy ud. */
int hook_copy_cols(void *ud, hook_point hp, float *act, int B, int T, int width);

typedef struct fwd_opts {
    int processing;           /* PROC_* flags */
    const hook_req *hooks;
    int nhooks;
    float *logits;            /* host: (B,T,V), or (B,V) with logits_last_only; NULL = none */
    int logits_last_only;
    int32_t *argmax;          /* host: (B,T) argmax of the logits; NULL = none */
    kv_cache *cache;          /* incremental decoding: tokens continue the cached ones */
} fwd_opts;

/* Loads config.json + weights from dir onto the backend. NULL with err naming file/tensor. */
model *model_load(const char *dir, saed_backend *be, char *err, size_t errlen);
void model_free(model *m);
const hf_config *model_config(const model *m);
saed_backend *model_backend(const model *m);
/* Floats per position at a hook (for hook_pattern: NH·Tk). */
int model_hook_width(const model *m, hook_point hp, int Tk);
/* The unembedding as (V,C) rows, one per token, into host memory (GPT-2: the tied wte). */
int model_unembed_host(const model *m, float *out, char *err, size_t errlen);
/* Total weight bytes in backend memory. */
size_t model_weight_bytes(const model *m);

/* Runs ids (B,T) through the model. The pass stops after the last block a hook needs unless
 * logits or argmax are requested. 0, or -1 with err. */
int model_forward(model *m, const int32_t *ids, int B, int T, const fwd_opts *o, char *err, size_t errlen);

/* KV cache for B sequences of up to Tmax tokens. */
kv_cache *kv_cache_new(model *m, int B, int Tmax, char *err, size_t errlen);
int kv_cache_len(const kv_cache *c);
/* Sequence b of c as a cache of one sequence, sharing c's storage and starting at c's length:
 * a batch's rows can go on alone when the others stop. c must outlive it, and is not to be
 * run on again once the view has been (their lengths part). NULL when out of memory. */
kv_cache *kv_cache_row(kv_cache *c, int b);
void kv_cache_free(kv_cache *c);

/* Forward FLOPs (multiply-add = 2) of B×T tokens through n_layers blocks, plus the unembedding
 * when with_logits; for benchmarks. */
double model_forward_flops(const model *m, int B, int T, int n_layers, int with_logits);

#endif
