/* hfconfig.c: see hfconfig.h. The family table below is where every constant saed relies on
 * for a model type is written down: the config.json field names, the defaults HF's config
 * classes use when a field is absent, and the architecture facts the field names do not say
 * (from HF transformers' modeling_<type>.py and TransformerLens' weight conversions). Adding a
 * family means a row here and its weights and block in the engine (engine/model_*.c). */
#include "engine/hfconfig.h"

#include <jansson.h>  // defines: json_load_file, json_object_get
#include <math.h>     // defines: sqrt
#include <stdio.h>    // defines: snprintf
#include <stdlib.h>   // defines: calloc, free
#include <string.h>   // defines: strcmp
#include <sys/stat.h> // defines: stat

typedef struct family {
    const char *model_type;
    /* config.json names of the core sizes (alt: an older name) */
    const char *f_layer, *f_embd, *f_head, *f_ctx, *f_ctx_alt, *f_eps, *f_act, *f_mlp;
    hf_norm norm;
    const char *def_act;     /* activation when the config names none */
    double def_eps;
    int def_tied;            /* tie_word_embeddings when absent */
    int gated_mlp;           /* gate/up/down MLP */
    int qkv_bias;            /* -1: from attention_bias (default def_attn_bias); else fixed */
    int def_attn_bias;
    int parallel_default;    /* use_parallel_residual when absent (NeoX), -1: never parallel */
    int rotary;              /* rotary positions (all but GPT-2) */
    int gemma2;              /* Gemma-2's extras: sqrt(C) embedding, 1 + w norms, post norms,
                              * soft-caps, query_pre_attn_scalar, even layers slide */
    int def_bos, def_eos, def_pad;
} family;

static const family families[] = {
    /* GPT-2: LayerNorm, learned positions, Conv1D weights, fused c_attn, tied wte. */
    {"gpt2", "n_layer", "n_embd", "n_head", "n_positions", "n_ctx", "layer_norm_epsilon", "activation_function",
     "n_inner", HF_LAYERNORM, "gelu_new", 1e-5, 1, 0, 1, 1, -1, 0, 0, 50256, 50256, -1},
    /* LlamaConfig: RMSNorm eps 1e-6, silu, rope_theta 1e4, untied, attention_bias false,
     * mlp_bias false, head_dim = C/NH unless given, bos 1 eos 2. */
    {"llama", "num_hidden_layers", "hidden_size", "num_attention_heads", "max_position_embeddings", NULL,
     "rms_norm_eps", "hidden_act", "intermediate_size", HF_RMSNORM, "silu", 1e-6, 0, 1, -1, 0, -1, 1, 0, 1, 2, -1},
    /* MistralConfig: as Llama, no biases, sliding_window on every layer (null: none). */
    {"mistral", "num_hidden_layers", "hidden_size", "num_attention_heads", "max_position_embeddings", NULL,
     "rms_norm_eps", "hidden_act", "intermediate_size", HF_RMSNORM, "silu", 1e-6, 0, 1, 0, 0, -1, 1, 0, 1, 2, -1},
    /* Qwen2Config: as Llama with q/k/v biases always (o_proj none), sliding window only with
     * use_sliding_window on layers >= max_window_layers. */
    {"qwen2", "num_hidden_layers", "hidden_size", "num_attention_heads", "max_position_embeddings", NULL,
     "rms_norm_eps", "hidden_act", "intermediate_size", HF_RMSNORM, "silu", 1e-6, 0, 1, 1, 0, -1, 1, 0, -1, -1, -1},
    /* Gemma2Config: hidden_activation gelu_pytorch_tanh, eps 1e-6, tied, head_dim 256,
     * query_pre_attn_scalar 256, attn soft-cap 50, final soft-cap 30, sliding_window 4096 on
     * even layers, bos 2 eos 1 pad 0. */
    {"gemma2", "num_hidden_layers", "hidden_size", "num_attention_heads", "max_position_embeddings", NULL,
     "rms_norm_eps", "hidden_activation", "intermediate_size", HF_RMSNORM, "gelu_pytorch_tanh", 1e-6, 1, 1, -1, 0, -1,
     1, 1, 2, 1, 0},
    /* GPTNeoXConfig: LayerNorm eps 1e-5, exact gelu, rotary_pct 0.25 of each head (NeoX
     * half-split layout), rotary_emb_base 1e4, use_parallel_residual true, untied embed_out,
     * attention_bias true, bos 0 eos 2 (Pythia: both 0). */
    {"gpt_neox", "num_hidden_layers", "hidden_size", "num_attention_heads", "max_position_embeddings", NULL,
     "layer_norm_eps", "hidden_act", "intermediate_size", HF_LAYERNORM, "gelu", 1e-5, 0, 0, -1, 1, 1, 1, 0, 0, 2, -1},
};
#define N_FAMILIES (sizeof families / sizeof families[0])

const char *hf_supported_types(void) { return "gpt2, llama, mistral, qwen2, gemma2, gpt_neox"; }

static int get_int(json_t *root, const char *field, const char *alt, int min, int *out, const char *file,
                   char *err, size_t errlen)
{
    json_t *v = json_object_get(root, field);
    if (!v && alt) v = json_object_get(root, alt);
    if (!v) {
        snprintf(err, errlen, "%s: field '%s' is missing", file, field);
        return -1;
    }
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > 1 << 24) {
        snprintf(err, errlen, "%s: field '%s' must be an integer >= %d", file, field, min);
        return -1;
    }
    *out = (int)json_integer_value(v);
    return 0;
}

/* An optional integer (null = absent): def when absent. */
static int opt_int(json_t *root, const char *field, int def, int min, int *out, const char *file, char *err,
                   size_t errlen)
{
    json_t *v = json_object_get(root, field);
    if (!v || json_is_null(v)) {
        *out = def;
        return 0;
    }
    return get_int(root, field, NULL, min, out, file, err, errlen);
}

static int opt_num(json_t *root, const char *field, double def, double *out, int positive, const char *file,
                   char *err, size_t errlen)
{
    json_t *v = json_object_get(root, field);
    if (!v || json_is_null(v)) {
        *out = def;
        return 0;
    }
    if (!json_is_number(v) || !isfinite(json_number_value(v)) || (positive && json_number_value(v) <= 0)) {
        snprintf(err, errlen, "%s: field '%s' must be a %snumber", file, field, positive ? "positive " : "");
        return -1;
    }
    *out = json_number_value(v);
    return 0;
}

static int opt_bool(json_t *root, const char *field, int def, int *out, const char *file, char *err, size_t errlen)
{
    json_t *v = json_object_get(root, field);
    if (!v || json_is_null(v)) {
        *out = def;
        return 0;
    }
    if (!json_is_boolean(v)) {
        snprintf(err, errlen, "%s: field '%s' must be true or false", file, field);
        return -1;
    }
    *out = json_is_true(v);
    return 0;
}

/* rope_scaling: null, {"rope_type"|"type": "linear", factor} or Llama-3's {"rope_type":
 * "llama3", factor, low_freq_factor, high_freq_factor, original_max_position_embeddings};
 * any other kind (dynamic, yarn, longrope, ...) would change the positions differently and is
 * refused. */
static int parse_rope_scaling(json_t *root, hf_config *c, const char *file, char *err, size_t errlen)
{
    json_t *rs = json_object_get(root, "rope_scaling");
    if (!rs || json_is_null(rs)) return 0;
    if (!json_is_object(rs)) {
        snprintf(err, errlen, "%s: field 'rope_scaling' must be an object or null", file);
        return -1;
    }
    const char *type = json_string_value(json_object_get(rs, "rope_type"));
    if (!type) type = json_string_value(json_object_get(rs, "type"));
    if (!type || !strcmp(type, "default")) return 0;
    if (opt_num(rs, "factor", 1.0, &c->rope_factor, 1, file, err, errlen)) return -1;
    if (!strcmp(type, "linear")) {
        c->rope_scaling = HF_ROPE_LINEAR;
        return 0;
    }
    if (strcmp(type, "llama3")) {
        snprintf(err, errlen, "%s: field 'rope_scaling.rope_type' '%s' is not supported (linear, llama3)", file, type);
        return -1;
    }
    c->rope_scaling = HF_ROPE_LLAMA3;
    if (opt_num(rs, "low_freq_factor", 1.0, &c->rope_low_freq, 1, file, err, errlen) ||
        opt_num(rs, "high_freq_factor", 4.0, &c->rope_high_freq, 1, file, err, errlen) ||
        get_int(rs, "original_max_position_embeddings", NULL, 1, &c->rope_original_ctx, file, err, errlen))
        return -1;
    if (c->rope_high_freq <= c->rope_low_freq) {
        snprintf(err, errlen, "%s: field 'rope_scaling.high_freq_factor' must exceed low_freq_factor", file);
        return -1;
    }
    return 0;
}

/* Which layers slide and by how much (HF: Mistral every layer, Qwen2 layers >=
 * max_window_layers with use_sliding_window, Gemma-2 even layers; layer_types overrides). */
static int parse_windows(json_t *root, const family *fam, hf_config *c, const char *file, char *err, size_t errlen)
{
    c->layer_window = calloc((size_t)c->n_layer, sizeof *c->layer_window);
    if (!c->layer_window) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (!fam->rotary || !strcmp(fam->model_type, "llama") || !strcmp(fam->model_type, "gpt_neox")) return 0;
    int w;
    /* HF's config classes default sliding_window to 4096 (Mistral, Qwen2, Gemma-2); null: none */
    json_t *sw = json_object_get(root, "sliding_window");
    if (sw && json_is_null(sw)) return 0;
    if (opt_int(root, "sliding_window", 4096, 1, &w, file, err, errlen)) return -1;
    int use = 1, from = 0;
    if (!strcmp(fam->model_type, "qwen2")) {
        if (opt_bool(root, "use_sliding_window", 0, &use, file, err, errlen) ||
            opt_int(root, "max_window_layers", 28, 0, &from, file, err, errlen))
            return -1;
    }
    json_t *types = json_object_get(root, "layer_types");
    if (types && !json_is_null(types)) {
        if (!json_is_array(types) || json_array_size(types) != (size_t)c->n_layer) {
            snprintf(err, errlen, "%s: field 'layer_types' must list one type per layer", file);
            return -1;
        }
        for (int l = 0; l < c->n_layer; l++) {
            const char *t = json_string_value(json_array_get(types, (size_t)l));
            if (!t || (strcmp(t, "sliding_attention") && strcmp(t, "full_attention"))) {
                snprintf(err, errlen, "%s: field 'layer_types[%d]' must be sliding_attention or full_attention", file, l);
                return -1;
            }
            c->layer_window[l] = use && !strcmp(t, "sliding_attention") ? w : 0;
        }
        return 0;
    }
    for (int l = 0; l < c->n_layer; l++)
        c->layer_window[l] = !use ? 0 : fam->gemma2 ? (l % 2 == 0 ? w : 0) : (l >= from ? w : 0);
    return 0;
}

static int bad_act(const family *fam, const char *act)
{
    static const char *const ok[] = {"gelu_new", "gelu_pytorch_tanh", "gelu", "silu"};
    if (!strcmp(fam->model_type, "gpt2")) return strcmp(act, "gelu_new") && strcmp(act, "gelu_pytorch_tanh");
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (!strcmp(act, ok[i])) return 0;
    return 1;
}

static int parse_family(json_t *root, const family *fam, hf_config *c, const char *path, char *err, size_t errlen)
{
    c->norm = fam->norm;
    c->bos_id = c->eos_id = c->pad_id = -1;
    if (get_int(root, fam->f_layer, NULL, 1, &c->n_layer, path, err, errlen) ||
        get_int(root, fam->f_embd, NULL, 1, &c->d_model, path, err, errlen) ||
        get_int(root, fam->f_head, NULL, 1, &c->n_head, path, err, errlen) ||
        get_int(root, fam->f_ctx, fam->f_ctx_alt, 1, &c->n_ctx, path, err, errlen) ||
        get_int(root, "vocab_size", NULL, 1, &c->vocab_size, path, err, errlen))
        return -1;
    if (!fam->gemma2 && !json_object_get(root, "head_dim")) {
        if (c->d_model % c->n_head) {
            snprintf(err, errlen, "%s: %s (%d) is not a multiple of %s (%d)", path, fam->f_embd, c->d_model, fam->f_head,
                     c->n_head);
            return -1;
        }
    }
    if (opt_int(root, "head_dim", fam->gemma2 ? 256 : c->d_model / c->n_head, 1, &c->head_dim, path, err, errlen) ||
        opt_int(root, "num_key_value_heads", c->n_head, 1, &c->n_kv_head, path, err, errlen))
        return -1;
    if (!fam->rotary) c->head_dim = c->d_model / c->n_head, c->n_kv_head = c->n_head;
    if (c->n_head % c->n_kv_head) {
        snprintf(err, errlen, "%s: num_attention_heads (%d) is not a multiple of num_key_value_heads (%d)", path,
                 c->n_head, c->n_kv_head);
        return -1;
    }
    if (fam->rotary) {
        if (get_int(root, fam->f_mlp, NULL, 1, &c->d_mlp, path, err, errlen)) return -1;
    } else if (opt_int(root, fam->f_mlp, 4 * c->d_model, 1, &c->d_mlp, path, err, errlen)) {
        return -1;
    }
    if (!fam->rotary && c->d_mlp != 4 * c->d_model) {
        snprintf(err, errlen, "%s: field '%s' = %d is not supported (4 × n_embd)", path, fam->f_mlp, c->d_mlp);
        return -1;
    }
    if (opt_num(root, fam->f_eps, fam->def_eps, &c->ln_eps, 1, path, err, errlen)) return -1;
    json_t *actv = json_object_get(root, fam->f_act);
    if (!actv && fam->gemma2) actv = json_object_get(root, "hidden_act");
    const char *act = json_string_value(actv);
    snprintf(c->activation, sizeof c->activation, "%s", act ? act : fam->def_act);
    if (bad_act(fam, c->activation)) {
        snprintf(err, errlen, "%s: %s '%s' is not supported (gelu_new, gelu_pytorch_tanh, gelu, silu)", path, fam->f_act,
                 c->activation);
        return -1;
    }
    if (opt_bool(root, "tie_word_embeddings", fam->def_tied, &c->tied, path, err, errlen)) return -1;
    c->gated_mlp = fam->gated_mlp;
    int attn_bias = fam->def_attn_bias;
    if (fam->rotary && opt_bool(root, "attention_bias", fam->def_attn_bias, &attn_bias, path, err, errlen)) return -1;
    /* Qwen2: q/k/v biases, none on o_proj; the others: attention_bias on all four. */
    c->qkv_bias = fam->qkv_bias >= 0 ? fam->qkv_bias : attn_bias;
    c->o_bias = fam->qkv_bias >= 0 ? 0 : attn_bias;
    if (!fam->rotary) c->qkv_bias = c->o_bias = c->mlp_bias = 1;
    if (fam->gated_mlp && opt_bool(root, "mlp_bias", 0, &c->mlp_bias, path, err, errlen)) return -1;
    if (!strcmp(fam->model_type, "gpt_neox")) c->mlp_bias = 1;
    if (fam->parallel_default >= 0 &&
        opt_bool(root, "use_parallel_residual", fam->parallel_default, &c->parallel_residual, path, err, errlen))
        return -1;
    if (fam->rotary) {
        double pct = 1.0;
        if (!strcmp(fam->model_type, "gpt_neox")) {
            double base;
            if (opt_num(root, "rotary_pct", 0.25, &pct, 1, path, err, errlen) ||
                opt_num(root, "rotary_emb_base", 10000.0, &base, 1, path, err, errlen) ||
                opt_num(root, "rope_theta", base, &c->rope_theta, 1, path, err, errlen))
                return -1;
            if (pct > 1.0) {
                snprintf(err, errlen, "%s: field 'rotary_pct' must be at most 1", path);
                return -1;
            }
        } else if (opt_num(root, "rope_theta", 10000.0, &c->rope_theta, 1, path, err, errlen)) {
            return -1;
        }
        /* HF: rotary_ndims = int(head_size · rotary_pct) */
        c->rotary_dim = (int)(c->head_dim * pct);
        if (c->rotary_dim < 2 || c->rotary_dim % 2) {
            snprintf(err, errlen, "%s: %d rotary dims per head (head_dim %d) must be even and at least 2", path,
                     c->rotary_dim, c->head_dim);
            return -1;
        }
        if (parse_rope_scaling(root, c, path, err, errlen)) return -1;
        /* pretraining_tp > 1 only slices HF's matmuls into the same products: nothing to do. */
    }
    c->attn_scale = 1.0 / sqrt((double)c->head_dim);
    if (fam->gemma2) {
        double qpas;
        c->embed_scale = c->norm_offset = c->post_norms = 1;
        if (opt_num(root, "query_pre_attn_scalar", 256.0, &qpas, 1, path, err, errlen) ||
            opt_num(root, "attn_logit_softcapping", 50.0, &c->attn_softcap, 0, path, err, errlen) ||
            opt_num(root, "final_logit_softcapping", 30.0, &c->final_softcap, 0, path, err, errlen))
            return -1;
        c->attn_scale = 1.0 / sqrt(qpas);
        if (c->attn_softcap < 0 || c->final_softcap < 0) {
            snprintf(err, errlen, "%s: soft-capping values must be positive or null", path);
            return -1;
        }
    }
    if (parse_windows(root, fam, c, path, err, errlen)) return -1;
    if (opt_int(root, "bos_token_id", fam->def_bos, -1, &c->bos_id, path, err, errlen) ||
        opt_int(root, "pad_token_id", fam->def_pad, -1, &c->pad_id, path, err, errlen))
        return -1;
    /* Llama-3 lists several eos ids: the first one is the id saed stops on. */
    json_t *e = json_object_get(root, "eos_token_id");
    if (json_is_array(e)) e = json_array_get(e, 0);
    c->eos_id = !e || json_is_null(e) ? fam->def_eos : json_is_integer(e) ? (int)json_integer_value(e) : -2;
    if (c->eos_id < -1) {
        snprintf(err, errlen, "%s: field 'eos_token_id' must be an integer or a list of them", path);
        return -1;
    }
    return 0;
}

int hf_config_load(const char *dir, hf_config *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root) {
        struct stat st;
        if (stat(path, &st)) snprintf(err, errlen, "%s: not found (a HuggingFace model directory has config.json)", path);
        else snprintf(err, errlen, "%s: invalid JSON at line %d: %s", path, je.line, je.text);
        return -1;
    }
    int rc = -1;
    const char *mt = json_string_value(json_object_get(root, "model_type"));
    const family *fam = NULL;
    for (size_t i = 0; mt && i < N_FAMILIES; i++)
        if (!strcmp(families[i].model_type, mt)) fam = &families[i];
    if (!json_is_object(root)) {
        snprintf(err, errlen, "%s: not a JSON object", path);
        goto out;
    }
    if (!mt) {
        snprintf(err, errlen, "%s: field 'model_type' is missing", path);
        goto out;
    }
    if (!fam) {
        snprintf(err, errlen, "%s: model_type '%s' is not supported (supported: %s)", path, mt, hf_supported_types());
        goto out;
    }
    snprintf(out->architecture, sizeof out->architecture, "%s", fam->model_type);
    if (parse_family(root, fam, out, path, err, errlen)) goto out;
    /* GPT-2's forward implements the model as released: refuse variants it would run wrongly. */
    static const struct { const char *field; int want; } flags[] = {
        {"scale_attn_weights", 1}, {"scale_attn_by_inverse_layer_idx", 0}, {"reorder_and_upcast_attn", 0}};
    for (size_t i = 0; !fam->rotary && i < sizeof flags / sizeof flags[0]; i++) {
        json_t *v = json_object_get(root, flags[i].field);
        if (v && json_is_boolean(v) && json_is_true(v) != flags[i].want) {
            snprintf(err, errlen, "%s: %s = %s is not supported", path, flags[i].field, flags[i].want ? "false" : "true");
            goto out;
        }
    }
    struct stat st;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
        strcpy(out->weights, "single");
    } else {
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
        if (stat(path, &st) || !S_ISREG(st.st_mode)) {
            snprintf(err, errlen, "%s: no model.safetensors or model.safetensors.index.json", dir);
            goto out;
        }
        strcpy(out->weights, "sharded");
    }
    out->json = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
    rc = out->json ? 0 : -1;
out:
    if (rc) {
        free(out->layer_window);
        out->layer_window = NULL;
    }
    json_decref(root);
    return rc;
}

void hf_config_free(hf_config *c)
{
    free(c->json);
    free(c->layer_window);
    c->json = NULL;
    c->layer_window = NULL;
}
