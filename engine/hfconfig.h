/* hfconfig.h: reading a HuggingFace model directory's config.json into the numbers saed needs
 * before loading weights, for every family it runs (GPT-2; Llama, Mistral, Qwen2; Gemma-2;
 * GPT-NeoX). A field the family table does not know how to honour is refused with its name,
 * never ignored. Pure C + jansson: no HTTP, no SQL. */
#ifndef SAED_ENGINE_HFCONFIG_H
#define SAED_ENGINE_HFCONFIG_H

#include <stddef.h>

typedef enum hf_norm { HF_LAYERNORM = 0, HF_RMSNORM } hf_norm;
typedef enum hf_rope_scaling { HF_ROPE_NONE = 0, HF_ROPE_LINEAR, HF_ROPE_LLAMA3 } hf_rope_scaling;

typedef struct hf_config {
    char architecture[32];  /* model_type, e.g. "gpt2", "llama", "gemma2", "gpt_neox" */
    int n_layer;            /* L */
    int d_model;            /* C */
    int n_head;             /* NH */
    int n_ctx;              /* T max */
    int vocab_size;         /* V */
    double ln_eps;          /* LayerNorm or RMSNorm epsilon */
    char activation[32];    /* the config's name: gelu_new, gelu_pytorch_tanh, gelu, silu */
    char weights[16];       /* "single" (model.safetensors) or "sharded" (index json) */
    char *json;             /* config.json as compact JSON text (owned) */

    /* What the rotary families add (GPT-2: n_kv_head = n_head, head_dim = C/NH, d_mlp = 4C,
     * rotary_dim 0, everything else 0). */
    hf_norm norm;
    int n_kv_head;          /* NKV: key/value heads (grouped-query attention when < NH) */
    int head_dim;           /* hd; Gemma-2 sets it apart from C/NH */
    int d_mlp;              /* F: MLP hidden width */
    int gated_mlp;          /* act(gate)·up (Llama, Gemma-2) instead of act(fc) */
    int rotary_dim;         /* dims per head that rotate (NeoX: hd·rotary_pct); 0: learned positions */
    double rope_theta;
    hf_rope_scaling rope_scaling;
    double rope_factor, rope_low_freq, rope_high_freq; /* llama3 / linear scaling parameters */
    int rope_original_ctx;  /* llama3: original_max_position_embeddings */
    int parallel_residual;  /* NeoX: resid + attn(ln1(x)) + mlp(ln2(x)) */
    int tied;               /* the unembedding is the token embedding */
    int qkv_bias, o_bias, mlp_bias;
    double attn_scale;      /* multiplies q·k: hd^-0.5, or query_pre_attn_scalar^-0.5 (Gemma-2) */
    double attn_softcap;    /* > 0: Gemma-2's attention logit soft-capping */
    double final_softcap;   /* > 0: Gemma-2's final logit soft-capping */
    int embed_scale;        /* Gemma-2: embeddings times sqrt(d_model) */
    int norm_offset;        /* Gemma-2: RMSNorm weight is 1 + w */
    int post_norms;         /* Gemma-2: RMSNorms after attention and after the MLP too */
    int *layer_window;      /* (L): sliding window of each layer, 0 = full causal (owned) */
    int bos_id, eos_id, pad_id; /* from config.json; -1 when absent */
} hf_config;

/* Reads dir/config.json and checks that weights exist. On error returns -1 with a message
 * naming the file and field. */
int hf_config_load(const char *dir, hf_config *out, char *err, size_t errlen);
void hf_config_free(hf_config *c);
/* The model types saed runs, comma-separated, for messages. */
const char *hf_supported_types(void);

#endif
