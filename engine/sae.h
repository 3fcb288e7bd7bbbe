/* sae.h: sparse autoencoders in SAELens layout (cfg.json, sae_weights.safetensors, optional
 * sparsity.safetensors): config parsing for every format version (flat v3–v5 with the loader's
 * renames, v6 with metadata), validation, encode/decode with SAELens v6 math for every
 * architecture on the backend interface, decoder-norm folding, and export back to SAELens
 * layout. Pure C: no HTTP, no SQL. A loaded SAE is read-only and may be shared by threads. */
#ifndef SAED_ENGINE_SAE_H
#define SAED_ENGINE_SAE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/hfconfig.h"
#include "engine/hooks.h"
#include "gpu/backend.h"

typedef enum sae_arch {
    SAE_STANDARD, SAE_GATED, SAE_JUMPRELU, SAE_TOPK, SAE_TRANSCODER, SAE_SKIP_TRANSCODER, SAE_JUMPRELU_TRANSCODER
} sae_arch;

typedef enum sae_norm {
    SAE_NORM_NONE, SAE_NORM_EXPECTED_AVERAGE_ONLY_IN, SAE_NORM_CONSTANT_NORM_RESCALE, SAE_NORM_LAYER_NORM
} sae_norm;

typedef struct sae_cfg {
    sae_arch arch;
    int d_in, d_sae, d_out;          /* d_out = d_in except for transcoders */
    int k;                           /* topk */
    int rescale_acts_by_decoder_norm;/* topk */
    int apply_b_dec_to_input;
    sae_norm norm;
    int reshape_hook_z;              /* reshape_activations "hook_z" */
    char hook_name[128];             /* TransformerLens hook the SAE reads */
    char hook_name_out[128];         /* transcoders: where the output goes (may be empty) */
    int hook_head_index;             /* -1 when null */
    char model_name[128];
    int context_size;                /* 0 when absent */
    int prepend_bos;
    int center_writing_weights;      /* from model_from_pretrained_kwargs (SAELens default: off) */
    int fold_value_biases;
    int fold_ln;                     /* with fold_value_biases: the LN-folded b_V is removed */
    char dtype[16];                  /* as written in the cfg, e.g. "float32" */
    char neuronpedia_id[256];
    char dataset_path[512];
    char sae_lens_version[32];       /* "" for pre-6 files without one */
    int format;                      /* 5 (flat v3–v5) or 6 (metadata) */
    double norm_scaling_factor;      /* 0 = none supplied */
    char *json;                      /* the cfg.json text as read (owned) */
} sae_cfg;

/* Reads dir/cfg.json (or parses text, with label naming it in errors). -1 with err naming the
 * file and field: missing field, unknown architecture or normalization, inconsistent sizes,
 * a transcoder with apply_b_dec_to_input, unknown hook name. */
int sae_cfg_load(const char *dir, sae_cfg *out, char *err, size_t errlen);
int sae_cfg_parse(const char *json_text, const char *label, sae_cfg *out, char *err, size_t errlen);
void sae_cfg_free(sae_cfg *c);
/* The cfg.json text sae_export writes (format 5 or 6), malloc'd; NULL with err. */
char *sae_cfg_dump(const sae_cfg *c, int format, char *err, size_t errlen);
const char *sae_arch_name(sae_arch a);
const char *sae_norm_name(sae_norm n);
/* The model processing (engine/model.h PROC_* flags) the SAE's hook input needs. */
int sae_cfg_processing(const sae_cfg *c);
/* Checks that the hook exists in the model and that its width equals d_in (hook_z: n_heads ·
 * d_head). -1 with err naming both numbers. */
int sae_cfg_check_model(const sae_cfg *c, const hf_config *m, hook_point *hp, char *err, size_t errlen);
/* The columns of the hook's rows the SAE reads, [*col0, *col0 + d_in): all of them, except
 * when hook_head_index picks one head of an attn.hook_q/k/v/z. Call after sae_cfg_check_model. */
void sae_cfg_hook_columns(const sae_cfg *c, const hf_config *m, int *col0, int *ncols);

typedef struct sae_load_opts {
    int fold_dec_norm;               /* SAELens fold_W_dec_norm (refused for topk without rescale) */
    double norm_scaling_factor;      /* > 0: fold it (expected_average_only_in), as SAELens does */
} sae_load_opts;

typedef struct sae sae;

/* Loads cfg.json + sae_weights.safetensors (+ sparsity.safetensors when present) onto the
 * backend. Validates tensor presence (a tensor the architecture does not have is an error, as
 * in SAELens' strict load), shapes against d_in/d_sae/d_out, dtype (F32, F16, BF16, F64;
 * converted to float32), NaN/Inf; errors name the file and tensor. An all-ones scaling_factor
 * is dropped, any other refused. Sparsity: all values ≥ 0 means raw frequencies (old files),
 * converted to log10(x + 1e-10). */
sae *sae_load(const char *dir, saed_backend *be, const sae_load_opts *o, char *err, size_t errlen);
void sae_free(sae *s);
/* The load options dashboards use (SAEDashboard folds the decoder norm, except for topk SAEs
 * without rescale_acts_by_decoder_norm, where the fold is undefined). Everything that shows
 * values next to a dashboard (live activations, search) loads the SAE the same way. */
sae_load_opts sae_dashboard_load_opts(const sae_cfg *c);
/* Bytes the SAE holds (backend and host copies), for cache budgets. */
size_t sae_memory_bytes(const sae *s);
const sae_cfg *sae_config(const sae *s);
int sae_is_folded(const sae *s);
/* The backend the SAE's tensors live on (inputs to sae_encode go there). */
saed_backend *sae_backend(const sae *s);
/* log10 feature density from sparsity.safetensors (d_sae floats, host), or NULL. */
const float *sae_log_sparsity(const sae *s);
/* Row i of W_dec (d_out floats) into out (host), as stored (after folding when folded). */
int sae_decoder_row(const sae *s, int i, float *out, char *err, size_t errlen);
/* Row i of W_dec read from dir/sae_weights.safetensors without loading the SAE: the file is
 * mapped and only that row is converted to float32; the same values as sae_decoder_row_raw
 * (no decoder-norm fold, divided by sae_cfg_row_divisor of dir/cfg.json). On success *out
 * (malloc'd) holds *n = d_out floats and 0 is returned; 1 when i is outside [0, d_sae) (err
 * says so); -1 with err when the file or its W_dec is unusable. */
int sae_file_decoder_row(const char *dir, long long i, float **out, int *n, char *err, size_t errlen);
/* Row i of W_dec (d_out floats) as SAELens' from_pretrained gives it, whatever this load
 * folded: the file's values, no decoder-norm fold, divided by a norm_scaling_factor that
 * SAELens folds for expected_average_only_in. Neuronpedia steers with this row (W_dec[index]). */
int sae_decoder_row_raw(const sae *s, int i, float *out, char *err, size_t errlen);
/* What both divide W_dec's rows by: norm_scaling_factor for expected_average_only_in (SAELens'
 * from_pretrained folds it), 0 = nothing. */
float sae_cfg_row_divisor(const sae_cfg *c);

/* Encode (N,d_in) → (N,d_sae) dense feature activations; both in backend memory. */
int sae_encode(sae *s, const float *x, int N, float *f, char *err, size_t errlen);
/* sae_encode that, where the backend can (bias_masked_relu_map) and the activation is
 * element-wise (standard, JumpReLU, transcoders), also marks f's non-zeros in map (host
 * memory, ⌈d_sae/64⌉ words per row, feature i is bit i%64 of word i/64): 1 when it did, 0 when
 * map was left alone, -1 with err. */
int sae_encode_map(sae *s, const float *x, int N, float *f, uint64_t *map, char *err, size_t errlen);
/* Decode (N,d_sae) → (N,d_out) (skip transcoders: needs x for the skip connection;
 * constant_norm_rescale and layer_norm: needs x, whose per-token statistics norm_out undoes;
 * else x may be NULL). Backend memory. */
int sae_decode(sae *s, const float *f, const float *x, int N, float *out, char *err, size_t errlen);

/* Sparse results per token: indices and values of the non-zero activations, sorted by value
 * descending (ties: lower index first). */
typedef struct sae_sparse {
    int N;
    int *count;          /* (N) */
    int *offset;         /* (N) into idx/val */
    int32_t *idx;
    float *val;
} sae_sparse;
/* Encodes host activations x (N,d_in) into sparse lists. */
int sae_encode_sparse(sae *s, const float *x_host, int N, sae_sparse *out, char *err, size_t errlen);
void sae_sparse_free(sae_sparse *sp);

/* Writes cfg.json (format 5: flat; 6: with metadata), sae_weights.safetensors (float32, the
 * tensors as read from the file: no fold applied at load is written, so the export is the SAE
 * as published; a norm_scaling_factor in use is written to cfg.json) and, when log_sparsity is
 * not NULL, sparsity.safetensors, into out_dir (created). -1 with err. */
int sae_export(const sae *s, const char *out_dir, int format, const float *log_sparsity, char *err, size_t errlen);

#endif
