/* fixture.c: see fixture.h. Weight scales follow the shared tiny reference models so that
 * attention patterns and GELU are non-trivial: wte 0.05, wpe 0.02, c_attn and c_fc 1/sqrt(d),
 * projections 0.02, LayerNorm weights 1 ± 0.1 and biases 0.02. */
#include "tools/fixture.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/safetensors.h"

/* splitmix64: a small, well-mixed generator; Box–Muller for normals. */
static uint64_t next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static float normal(uint64_t *s)
{
    double u1 = ((next(s) >> 11) + 1.0) / 9007199254740993.0, u2 = (next(s) >> 11) / 9007199254740992.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

typedef struct wt {
    char name[96];
    int ndim;
    int64_t shape[2];
    float *data;
} wt;

static wt *add(wt *list, int *n, const char *prefix, const char *name, int ndim, int64_t d0, int64_t d1, float mean,
               float std, uint64_t *rng)
{
    wt *w = &list[(*n)++];
    snprintf(w->name, sizeof w->name, "%s%s", prefix, name);
    w->ndim = ndim;
    w->shape[0] = d0;
    w->shape[1] = d1;
    size_t numel = (size_t)d0 * (size_t)(ndim == 2 ? d1 : 1);
    w->data = malloc(sizeof(float) * numel);
    for (size_t i = 0; w->data && i < numel; i++) w->data[i] = mean + std * normal(rng);
    return w;
}

int fixture_gpt2_write(const char *dir, const fixture_gpt2 *f, char *err, size_t errlen)
{
    const int C = f->d_model, L = f->n_layer;
    uint64_t rng = f->seed;
    int cap = 4 + 12 * L, n = 0, rc = -1;
    wt *w = calloc((size_t)cap, sizeof *w);
    const char *p = f->prefixed ? "transformer." : "";
    const float sd = 1.0f / sqrtf((float)C);
    char name[96];
    add(w, &n, p, "wte.weight", 2, f->vocab, C, 0, 0.05f, &rng);
    add(w, &n, p, "wpe.weight", 2, f->n_ctx, C, 0, 0.02f, &rng);
    for (int l = 0; l < L; l++) {
#define ADD(suffix, nd, a, b, mean, std) \
    snprintf(name, sizeof name, "h.%d.%s", l, suffix); add(w, &n, p, name, nd, a, b, mean, std, &rng)
        ADD("ln_1.weight", 1, C, 0, 1.0f, 0.1f);
        ADD("ln_1.bias", 1, C, 0, 0.0f, 0.02f);
        ADD("attn.c_attn.weight", 2, C, 3 * C, 0.0f, sd);
        ADD("attn.c_attn.bias", 1, 3 * C, 0, 0.0f, 0.02f);
        ADD("attn.c_proj.weight", 2, C, C, 0.0f, 0.02f);
        ADD("attn.c_proj.bias", 1, C, 0, 0.0f, 0.02f);
        ADD("ln_2.weight", 1, C, 0, 1.0f, 0.1f);
        ADD("ln_2.bias", 1, C, 0, 0.0f, 0.02f);
        ADD("mlp.c_fc.weight", 2, C, 4 * C, 0.0f, sd);
        ADD("mlp.c_fc.bias", 1, 4 * C, 0, 0.0f, 0.02f);
        ADD("mlp.c_proj.weight", 2, 4 * C, C, 0.0f, 0.02f);
        ADD("mlp.c_proj.bias", 1, C, 0, 0.0f, 0.02f);
#undef ADD
    }
    add(w, &n, p, "ln_f.weight", 1, C, 0, 1.0f, 0.1f, &rng);
    add(w, &n, p, "ln_f.bias", 1, C, 0, 0.0f, 0.02f, &rng);
    st_wtensor *t = calloc((size_t)n, sizeof *t);
    int ok = t != NULL;
    for (int i = 0; i < n; i++) {
        ok &= w[i].data != NULL;
        if (t) t[i] = (st_wtensor){w[i].name, ST_F32, w[i].ndim, w[i].shape, w[i].data};
    }
    char path[4096];
    if (!ok) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    const char *meta[] = {"format", "pt", NULL};
    if (st_write(path, t, n, meta, err, errlen)) goto out;
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *cf = fopen(path, "w");
    if (!cf) {
        snprintf(err, errlen, "%s: cannot write", path);
        goto out;
    }
    fprintf(cf,
            "{\n  \"model_type\": \"gpt2\",\n  \"architectures\": [\"GPT2LMHeadModel\"],\n  \"n_embd\": %d,\n"
            "  \"n_layer\": %d,\n  \"n_head\": %d,\n  \"n_positions\": %d,\n  \"n_ctx\": %d,\n  \"vocab_size\": %d,\n"
            "  \"layer_norm_epsilon\": 1e-05,\n  \"activation_function\": \"gelu_new\",\n"
            "  \"bos_token_id\": 50256,\n  \"eos_token_id\": 50256,\n  \"saed_fixture_seed\": %llu\n}\n",
            C, L, f->n_head, f->n_ctx, f->n_ctx, f->vocab, (unsigned long long)f->seed);
    rc = fclose(cf) ? -1 : 0;
    if (rc) snprintf(err, errlen, "%s: write error", path);
out:
    for (int i = 0; i < n; i++) free(w[i].data);
    free(w);
    free(t);
    return rc;
}

/* ---- rotary families ---- */

/* The rotary fixture streams: the tensor list (names, shapes, scales) is made first, then
 * the header, then each tensor generated in chunks from its own seed, so memory stays a few
 * MB whatever the model's size (an 8B-shaped checkpoint is 16 GB). Values are uniform with
 * the stated mean and std (cheaper than normals; the models are only random). */
typedef struct spec {
    char name[128];
    int ndim;
    int64_t shape[2];
    float mean, std;
} spec;

static void spec_add(spec *list, int *n, const char *prefix, const char *name, int ndim, int64_t d0, int64_t d1,
                     float mean, float std)
{
    spec *w = &list[(*n)++];
    snprintf(w->name, sizeof w->name, "%s%s", prefix, name);
    w->ndim = ndim;
    w->shape[0] = d0;
    w->shape[1] = ndim == 2 ? d1 : 0;
    w->mean = mean;
    w->std = std;
}

static uint16_t to_bf16(float x)
{
    union { float f; uint32_t u; } v = {.f = x};
    return (uint16_t)((v.u + 0x7fffu + ((v.u >> 16) & 1u)) >> 16); /* round to nearest even */
}

static int write_streamed(const char *path, const spec *w, int n, int bf16, uint64_t seed, char *err, size_t errlen)
{
    const size_t es = bf16 ? 2 : 4;
    json_t *root = json_object();
    json_object_set_new(root, "__metadata__", json_pack("{s:s}", "format", "pt"));
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        size_t numel = (size_t)w[i].shape[0] * (size_t)(w[i].ndim == 2 ? w[i].shape[1] : 1);
        json_t *shape = w[i].ndim == 2 ? json_pack("[I,I]", (json_int_t)w[i].shape[0], (json_int_t)w[i].shape[1])
                                       : json_pack("[I]", (json_int_t)w[i].shape[0]);
        json_object_set_new(root, w[i].name, json_pack("{s:s,s:o,s:[I,I]}", "dtype", bf16 ? "BF16" : "F32", "shape", shape,
                                                       "data_offsets", (json_int_t)off, (json_int_t)(off + numel * es)));
        off += numel * es;
    }
    char *hdr = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    FILE *f = hdr ? fopen(path, "wb") : NULL;
    if (!f) {
        free(hdr);
        snprintf(err, errlen, "%s: cannot write", path);
        return -1;
    }
    size_t hl = strlen(hdr), padded = (hl + 7) / 8 * 8;
    uint64_t len = padded;
    unsigned char le[8];
    for (int i = 0; i < 8; i++) le[i] = (unsigned char)(len >> (8 * i));
    int ok = fwrite(le, 1, 8, f) == 8 && fwrite(hdr, 1, hl, f) == hl;
    for (size_t i = hl; ok && i < padded; i++) ok = fputc(' ', f) != EOF;
    free(hdr);
    enum { CHUNK = 1 << 20 };
    float *buf = malloc(sizeof(float) * CHUNK);
    uint16_t *h = malloc(sizeof(uint16_t) * CHUNK);
    ok = ok && buf && h;
    for (int i = 0; ok && i < n; i++) {
        uint64_t rng = seed ^ (0x9e3779b97f4a7c15ull * (uint64_t)(i + 1));
        const float a = w[i].std * 1.7320508f; /* uniform(-a, a) has std a/sqrt(3) */
        size_t numel = (size_t)w[i].shape[0] * (size_t)(w[i].ndim == 2 ? w[i].shape[1] : 1);
        for (size_t d = 0; ok && d < numel; d += CHUNK) {
            size_t k = numel - d < CHUNK ? numel - d : CHUNK;
            for (size_t j = 0; j < k; j++) buf[j] = w[i].mean + a * (float)(2.0 * ((next(&rng) >> 11) / 9007199254740992.0) - 1.0);
            if (bf16) {
                for (size_t j = 0; j < k; j++) h[j] = to_bf16(buf[j]);
                ok = fwrite(h, 2, k, f) == k;
            } else {
                ok = fwrite(buf, 4, k, f) == k;
            }
        }
    }
    free(buf);
    free(h);
    if (fclose(f) || !ok) {
        snprintf(err, errlen, "%s: write error", path);
        return -1;
    }
    return 0;
}

int fixture_rotary_write(const char *dir, const fixture_rotary *f, char *err, size_t errlen)
{
    const int C = f->d_model, L = f->n_layer, NH = f->n_head, NKV = f->n_kv_head ? f->n_kv_head : NH;
    const int hd = f->head_dim ? f->head_dim : C / NH, F = f->d_mlp ? f->d_mlp : 4 * C, V = f->vocab;
    const int neox = !strcmp(f->model_type, "gpt_neox"), gemma = !strcmp(f->model_type, "gemma2");
    const int qwen = !strcmp(f->model_type, "qwen2");
    int cap = 4 + 16 * L, n = 0, rc = -1;
    spec *w = calloc((size_t)cap, sizeof *w);
    if (!w) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    const char *p = neox ? "gpt_neox." : "model.";
    const float sd = 1.0f / sqrtf((float)C), nw = gemma ? 0.0f : 1.0f; /* Gemma's norms are 1 + w */
    char name[128];
    spec_add(w, &n, p, neox ? "embed_in.weight" : "embed_tokens.weight", 2, V, C, 0, gemma ? 0.02f : 0.05f);
    for (int l = 0; l < L; l++) {
#define ADD(suffix, nd, a, b, mean, std) \
    snprintf(name, sizeof name, "layers.%d.%s", l, suffix); spec_add(w, &n, p, name, nd, a, b, mean, std)
        ADD("input_layernorm.weight", 1, C, 0, nw, 0.1f);
        if (neox) {
            ADD("input_layernorm.bias", 1, C, 0, 0.0f, 0.02f);
            ADD("attention.query_key_value.weight", 2, 3 * C, C, 0.0f, sd);
            ADD("attention.query_key_value.bias", 1, 3 * C, 0, 0.0f, 0.02f);
            ADD("attention.dense.weight", 2, C, C, 0.0f, 0.02f);
            ADD("attention.dense.bias", 1, C, 0, 0.0f, 0.02f);
            ADD("post_attention_layernorm.weight", 1, C, 0, 1.0f, 0.1f);
            ADD("post_attention_layernorm.bias", 1, C, 0, 0.0f, 0.02f);
            ADD("mlp.dense_h_to_4h.weight", 2, F, C, 0.0f, sd);
            ADD("mlp.dense_h_to_4h.bias", 1, F, 0, 0.0f, 0.02f);
            ADD("mlp.dense_4h_to_h.weight", 2, C, F, 0.0f, 0.02f);
            ADD("mlp.dense_4h_to_h.bias", 1, C, 0, 0.0f, 0.02f);
            continue;
        }
        ADD("self_attn.q_proj.weight", 2, NH * hd, C, 0.0f, sd);
        ADD("self_attn.k_proj.weight", 2, NKV * hd, C, 0.0f, sd);
        ADD("self_attn.v_proj.weight", 2, NKV * hd, C, 0.0f, sd);
        if (qwen) {
            ADD("self_attn.q_proj.bias", 1, NH * hd, 0, 0.0f, 0.02f);
            ADD("self_attn.k_proj.bias", 1, NKV * hd, 0, 0.0f, 0.02f);
            ADD("self_attn.v_proj.bias", 1, NKV * hd, 0, 0.0f, 0.02f);
        }
        ADD("self_attn.o_proj.weight", 2, C, NH * hd, 0.0f, 0.02f);
        ADD("post_attention_layernorm.weight", 1, C, 0, nw, 0.1f);
        if (gemma) {
            ADD("pre_feedforward_layernorm.weight", 1, C, 0, nw, 0.1f);
            ADD("post_feedforward_layernorm.weight", 1, C, 0, nw, 0.1f);
        }
        ADD("mlp.gate_proj.weight", 2, F, C, 0.0f, sd);
        ADD("mlp.up_proj.weight", 2, F, C, 0.0f, sd);
        ADD("mlp.down_proj.weight", 2, C, F, 0.0f, 0.02f);
#undef ADD
    }
    spec_add(w, &n, p, neox ? "final_layer_norm.weight" : "norm.weight", 1, C, 0, nw, 0.1f);
    if (neox) spec_add(w, &n, p, "final_layer_norm.bias", 1, C, 0, 0.0f, 0.02f);
    if (!gemma) spec_add(w, &n, "", neox ? "embed_out.weight" : "lm_head.weight", 2, V, C, 0, 0.05f);
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (write_streamed(path, w, n, f->bf16, f->seed, err, errlen)) goto out;
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *cf = fopen(path, "w");
    if (!cf) {
        snprintf(err, errlen, "%s: cannot write", path);
        goto out;
    }
    fprintf(cf, "{\n  \"model_type\": \"%s\",\n  \"hidden_size\": %d,\n  \"num_hidden_layers\": %d,\n"
                "  \"num_attention_heads\": %d,\n  \"intermediate_size\": %d,\n  \"max_position_embeddings\": %d,\n"
                "  \"vocab_size\": %d,\n  \"torch_dtype\": \"%s\",\n  \"bos_token_id\": 50256,\n  \"eos_token_id\": 50256,\n",
            f->model_type, C, L, NH, F, f->n_ctx, V, f->bf16 ? "bfloat16" : "float32");
    if (neox)
        fprintf(cf, "  \"architectures\": [\"GPTNeoXForCausalLM\"],\n  \"hidden_act\": \"gelu\",\n  \"rotary_pct\": 0.25,\n"
                    "  \"rotary_emb_base\": 10000,\n  \"layer_norm_eps\": 1e-05,\n  \"use_parallel_residual\": true,\n"
                    "  \"tie_word_embeddings\": false,\n");
    else if (gemma)
        fprintf(cf, "  \"architectures\": [\"Gemma2ForCausalLM\"],\n  \"num_key_value_heads\": %d,\n  \"head_dim\": %d,\n"
                    "  \"hidden_activation\": \"gelu_pytorch_tanh\",\n  \"rms_norm_eps\": 1e-06,\n  \"rope_theta\": 10000.0,\n"
                    "  \"query_pre_attn_scalar\": %d,\n  \"attn_logit_softcapping\": 50.0,\n  \"final_logit_softcapping\": 30.0,\n"
                    "  \"sliding_window\": 8,\n  \"tie_word_embeddings\": true,\n",
                NKV, hd, hd);
    else
        fprintf(cf, "  \"architectures\": [\"%s\"],\n  \"num_key_value_heads\": %d,\n  \"hidden_act\": \"silu\",\n"
                    "  \"rms_norm_eps\": 1e-05,\n  \"rope_theta\": 10000.0,\n  \"tie_word_embeddings\": false,\n",
                qwen ? "Qwen2ForCausalLM" : "LlamaForCausalLM", NKV);
    fprintf(cf, "  \"saed_fixture_seed\": %llu\n}\n", (unsigned long long)f->seed);
    rc = fclose(cf) ? -1 : 0;
    if (rc) snprintf(err, errlen, "%s: write error", path);
out:
    free(w);
    return rc;
}
