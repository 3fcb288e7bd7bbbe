/* hooks.h: TransformerLens hook point names and their parsing. A hook point is a kind plus a
 * layer ("blocks.3.attn.hook_z" = {HOOK_Z, 3}; "hook_embed" = {HOOK_EMBED, -1}). */
#ifndef SAED_ENGINE_HOOKS_H
#define SAED_ENGINE_HOOKS_H

#include <stddef.h>

typedef enum hook_kind {
    HOOK_EMBED,       /* hook_embed: token embedding (B,T,C) */
    HOOK_POS_EMBED,   /* hook_pos_embed: position embedding (B,T,C) */
    HOOK_RESID_PRE,   /* blocks.L.hook_resid_pre: input of block L (B,T,C) */
    HOOK_RESID_MID,   /* blocks.L.hook_resid_mid: after the attention add (B,T,C) */
    HOOK_RESID_POST,  /* blocks.L.hook_resid_post: output of block L (B,T,C) */
    HOOK_ATTN_OUT,    /* blocks.L.hook_attn_out: attention output after c_proj (B,T,C) */
    HOOK_MLP_OUT,     /* blocks.L.hook_mlp_out: MLP output after c_proj (B,T,C) */
    HOOK_Q,           /* blocks.L.attn.hook_q (B,T,NH·hd) */
    HOOK_K,           /* blocks.L.attn.hook_k (B,T,NH·hd) */
    HOOK_V,           /* blocks.L.attn.hook_v (B,T,NH·hd) */
    HOOK_Z,           /* blocks.L.attn.hook_z: merged heads before c_proj (B,T,NH·hd) */
    HOOK_PATTERN,     /* blocks.L.attn.hook_pattern: (B,NH,T,T) softmax probabilities; read-only */
    HOOK_MLP_PRE,     /* blocks.L.mlp.hook_pre: c_fc output (B,T,4C) */
    HOOK_MLP_POST,    /* blocks.L.mlp.hook_post: GELU output (B,T,4C) */
    HOOK_LN_FINAL,    /* ln_final.hook_normalized: (x−mean)/std before γ, β (B,T,C); read-only */
    HOOK_N_KINDS
} hook_kind;

typedef struct hook_point {
    hook_kind kind;
    int layer;        /* -1 for hooks outside the blocks */
} hook_point;

/* Parses a TransformerLens hook name; checks the layer against n_layer. -1 with err naming
 * the problem (unknown name, layer out of range). */
int hook_parse(const char *name, int n_layer, hook_point *hp, char *err, size_t errlen);
void hook_format(hook_point hp, char *buf, size_t n);
/* Whether TransformerLens' center_writing_weights changes this hook's values. */
int hook_is_residual_write(hook_kind k);

#endif
