/* model_impl.h: what the model files share and callers never see: the loaded model, the
 * forward's state, and the helpers a family's block uses to run ops and show hook values.
 * model.c has the family-independent forward (embeddings, hooks, processing, logits, KV cache)
 * and GPT-2; model_rotary.c has Llama/Mistral/Qwen2, Gemma-2 and GPT-NeoX. */
#ifndef SAED_ENGINE_MODEL_IMPL_H
#define SAED_ENGINE_MODEL_IMPL_H

#include <pthread.h> // defines: pthread_mutex_t

#include "engine/model.h"       // defines: model, fwd_opts, hook_req
#include "engine/safetensors.h" // defines: st_file

typedef struct fwd fwd;
typedef struct acts acts;
typedef struct model_family model_family;

typedef struct gpt2_layer {
    float *ln1_w, *ln1_b;     /* (C) */
    float *attn_w, *attn_b;   /* (C,3C), (3C): columns [q | k | v] */
    float *aproj_w, *aproj_b; /* (C,C), (C) */
    float *ln2_w, *ln2_b;     /* (C) */
    float *fc_w, *fc_b;       /* (C,4C), (4C) */
    float *mproj_w, *mproj_b; /* (4C,C), (C) */
} gpt2_layer;

/* A weight matrix in nn.Linear layout (out, in), in backend memory: float32 (f), or the
 * file's BF16/F16 values as they are (h) where the backend multiplies 16-bit weights. */
typedef struct rl_mat {
    float *f;
    uint16_t *h;
    int bf16;                 /* h holds BF16 (1) or IEEE half (0) */
} rl_mat;

/* A rotary family's block: y = x·Wᵀ + b. Q = NH·hd, KV = NKV·hd. NULL where the family has
 * no such tensor (RMSNorm biases, Llama's biases, ...). */
typedef struct rot_layer {
    float *ln1_w, *ln1_b;     /* (C) attention input norm (Gemma-2: 1 + w) */
    float *ln1post_w;         /* (C) Gemma-2: norm of the attention output */
    float *ln2_w, *ln2_b;     /* (C) MLP input norm */
    float *ln2post_w;         /* (C) Gemma-2: norm of the MLP output */
    float *qkv_b, *o_b;       /* (Q+2KV), (C) */
    float *up_b, *down_b;     /* (F), (C) */
    rl_mat qkv;               /* (Q+2KV, C): rows [q | k | v] (NeoX's per-head interleave undone) */
    rl_mat o;                 /* (C, Q) */
    rl_mat gate;              /* (F, C) gated MLPs */
    rl_mat up;                /* (F, C): the up projection (NeoX: dense_h_to_4h) */
    rl_mat down;              /* (C, F) */
} rot_layer;

struct model {
    hf_config cfg;
    const model_family *fam;
    saed_backend *be;
    float *wte;               /* (V,C); also the unembedding when tied */
    float *wpe;               /* (maxT,C); NULL for rotary families */
    float *unembed;           /* (V,C) untied lm_head / embed_out; NULL: wte (or unembed16) */
    uint16_t *unembed16;      /* the same kept in the file's 16-bit type (unembed16_bf16) */
    int unembed16_bf16;
    float *lnf_w, *lnf_b;     /* (C); lnf_b NULL for RMSNorm */
    float *ones, *zeros;      /* (C): the affine-free LayerNorm for ln_final.hook_normalized */
    float *embed_scale;       /* (C) all sqrt(C) (Gemma-2), NULL otherwise */
    float *rope_cs;           /* (n_ctx, rotary_dim): cos | sin rows per position */
    float *b_v_host;          /* (L, NH·hd): value biases per query head, for fold_value_biases */
    float *b_vkv_host;        /* (L, NKV·hd): the same per key/value head (hook_v) */
    float *b_vln_host, *b_vkvln_host; /* the same after fold_ln: b_V + β₁·W_V (LayerNorm models) */
    gpt2_layer *layers;
    rot_layer *rlayers;
    int q_w, kv_w, qkv_w;     /* NH·hd, NKV·hd, NH·hd + 2·NKV·hd */
    unsigned hooks;           /* hook kinds this model emits (bit i = hook_kind i) */
    size_t weight_bytes;
    /* One activation set kept between forwards (ws_lock guards it): a dashboard batch needs
     * ~140 MB of them, and fresh buffers cost page faults and zeroing on every call. */
    pthread_mutex_t ws_lock;
    struct acts *ws;
    size_t ws_rows;           /* the kept set's capacity in tokens */
};

struct kv_cache {
    model *m;
    int B, Tmax, len;
    float **k, **v;           /* per layer (B,Tmax,NKV·hd), keys after rotary */
    int view;                 /* 1: one row of another cache's storage (kv_cache_row) */
};

/* What an architecture plugs in: its weight loader, its block forward, and the hook points its
 * blocks can emit (bit i = hook_kind i; load may narrow m->hooks). Callers only ever see
 * model_load/model_forward. */
struct model_family {
    const char *model_type;
    int (*load)(model *m, const st_file *st, char *err, size_t errlen);
    int (*block)(fwd *f, acts *a, int layer);
    unsigned hooks;
};

struct fwd {
    model *m;
    const fwd_opts *o;
    int proc;                 /* the PROC_* flags that apply to this model */
    int B, T, pos0, Tk;
    char *err;
    size_t errlen;
    float *host;              /* scratch for hooks on device backends / processed views */
    size_t host_cap;
    float *orig;              /* copy of what a write hook was shown */
    size_t orig_cap;
    /* Under center_writing_weights, TransformerLens's stream keeps the mean of anything a
     * write hook adds (only its own writes are centered), while saed's raw stream is shown
     * re-centered: the per-position sum of those means is added back when showing residual
     * hooks. */
    double *shift;            /* (B·T) or NULL */
};

/* Activations of one forward (rows = B·T tokens). */
struct acts {
    float *resid, *ln;        /* (rows, C) */
    float *qkv;               /* (rows, qkv_w) */
    float *z;                 /* (rows, q_w) */
    float *tmp, *tmp2;        /* (rows, C): block outputs; tmp2 for rotary families */
    float *fc, *up;           /* (rows, F); up for gated MLPs */
    float *pattern, *logits;
};

/* -1 with the message in f->err. */
int mdl_fail(fwd *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* rc of a backend op: 0, or -1 with "what: backend error". */
int mdl_ok(fwd *f, int rc, const char *what);
/* Whether some hook asks for (kind, layer). */
int mdl_wants(const fwd *f, hook_kind k, int layer);
/* Shows rows of width floats at stride ld to the hooks registered for (kind, layer), with the
 * processing applied, and folds write-hook changes back into buf. */
int mdl_emit(fwd *f, hook_kind kind, int layer, float *buf, int ld, int rows, int width);
/* out (N,n) = in (N,k) · w (k,n) + bias (Conv1D layout); acc: out += instead. */
int mdl_linear(fwd *f, float *out, const float *in, const float *w, const float *bias, int N, int k, int n, int acc,
               const char *what);
/* Uploads a float32 copy of tensor name (shape d0 × d1, ndim 1 or 2; "transformer." prefix
 * optional) and, when host_out is not NULL, hands back the host copy. */
float *mdl_load_w(model *m, const st_file *st, const char *name, int ndim, int64_t d0, int64_t d1, float **host_out,
                  char *err, size_t errlen);
/* Uploads host floats (n), or any bytes, to backend memory, counted in the model's weight bytes. */
float *mdl_upload(model *m, const float *h, size_t n, const char *what, char *err, size_t errlen);
void *mdl_upload_bytes(model *m, const void *h, size_t bytes, const char *what, char *err, size_t errlen);

int rot_load(model *m, const st_file *st, char *err, size_t errlen);
int rot_block(fwd *f, acts *a, int layer);
void rot_free(model *m);

#endif
