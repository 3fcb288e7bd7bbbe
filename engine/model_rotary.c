/* model_rotary.c: the rotary-position families — Llama (llama, mistral, qwen2), Gemma-2 and
 * GPT-NeoX/Pythia — as HF transformers' modeling code computes them, with TransformerLens'
 * hook points. One block covers them all; the config (hfconfig.c's family table) says which
 * parts a model has: RMSNorm or LayerNorm, gated or plain MLP, grouped-query attention,
 * partial rotary, parallel residual, Gemma-2's post norms and soft-caps, sliding windows.
 * Shapes: N = B·T rows, C d_model, NH/NKV query/key-value heads of hd, Q = NH·hd,
 * KV = NKV·hd, F the MLP width. Weights are nn.Linear (out, in): y = x·Wᵀ + b. Linear
 * weights stored as BF16/F16 stay 16-bit in memory where the backend has gemm_w16 (widened
 * exactly, block by block, in each product: the same results as float32 weights at half the
 * memory); norms, biases and the embedding are float32. */
#include "engine/model_impl.h"

#include <math.h>   // defines: cos, sin, pow, sqrt, M_PI
#include <stdio.h>  // defines: snprintf
#include <stdlib.h> // defines: malloc, calloc, free
#include <string.h> // defines: strcmp, memcpy

/* ---- loading ---- */

typedef struct rl_names {
    const char *prefix;                 /* "model." or "gpt_neox." */
    const char *embed, *norm_f, *unembed;
    const char *ln1, *ln1post, *ln2, *ln2post;
    const char *q, *k, *v, *qkv, *o;     /* attention (qkv: NeoX's fused one) */
    const char *gate, *up, *down;
} rl_names;

static const rl_names llama_names = {"model.", "embed_tokens.weight", "norm", "lm_head.weight", "input_layernorm", NULL,
                                     "post_attention_layernorm", NULL, "self_attn.q_proj", "self_attn.k_proj",
                                     "self_attn.v_proj", NULL, "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj",
                                     "mlp.down_proj"};
/* Gemma-2 names its MLP input norm pre_feedforward_layernorm; its post_attention_layernorm
 * normalizes the attention output. */
static const rl_names gemma2_names = {"model.", "embed_tokens.weight", "norm", "lm_head.weight", "input_layernorm",
                                      "post_attention_layernorm", "pre_feedforward_layernorm",
                                      "post_feedforward_layernorm", "self_attn.q_proj", "self_attn.k_proj",
                                      "self_attn.v_proj", NULL, "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj",
                                      "mlp.down_proj"};
static const rl_names neox_names = {"gpt_neox.", "embed_in.weight", "final_layer_norm", "embed_out.weight", "input_layernorm", NULL,
                                    "post_attention_layernorm", NULL, NULL, NULL, NULL, "attention.query_key_value",
                                    "attention.dense", NULL, "mlp.dense_h_to_4h", "mlp.dense_4h_to_h"};

/* Host float32 copy of a tensor of shape (d0[, d1]); name tried with and without the prefix
 * (a bare base model has no "model."). NULL with err; *absent set when it does not exist. */
static float *rl_host(const st_file *st, const char *prefix, const char *name, int ndim, int64_t d0, int64_t d1,
                      int *absent, char *err, size_t errlen)
{
    char full[256];
    snprintf(full, sizeof full, "%s%s", prefix, name);
    const char *use = st_find(st, full) ? full : st_find(st, name) ? name : NULL;
    if (absent) *absent = !use;
    if (!use) {
        snprintf(err, errlen, "model weights: tensor '%s' is missing", full);
        return NULL;
    }
    int64_t shape[2] = {d0, d1};
    float *h = st_load_f32(st, use, ndim, shape, err, errlen);
    if (h) st_release(st_find(st, use));
    size_t n = (size_t)d0 * (size_t)(ndim == 2 ? d1 : 1);
    for (size_t i = 0; h && i < n; i++)
        if (!isfinite(h[i])) {
            snprintf(err, errlen, "model weights: tensor '%s' holds NaN or Inf at element %zu", use, i);
            free(h);
            return NULL;
        }
    return h;
}

/* Uploads tensor "<layer part>.<suffix>"; plus_one adds 1 to every value (Gemma's norms
 * multiply by 1 + w: TransformerLens folds the 1 in the same way). optional: NULL without an
 * error when the tensor is absent. */
static int rl_w(model *m, const st_file *st, const char *prefix, const char *name, int ndim, int64_t d0, int64_t d1,
                int plus_one, int optional, float **out, char *err, size_t errlen)
{
    int absent = 0;
    float *h = rl_host(st, prefix, name, ndim, d0, d1, &absent, err, errlen);
    if (!h) {
        if (absent && optional) {
            *out = NULL;
            return 0;
        }
        return -1;
    }
    size_t n = (size_t)d0 * (size_t)(ndim == 2 ? d1 : 1);
    if (plus_one)
        for (size_t i = 0; i < n; i++) h[i] += 1.0f;
    *out = mdl_upload(m, h, n, name, err, errlen);
    free(h);
    return *out ? 0 : -1;
}

/* A tensor's values as stored when they are 16-bit floats and the backend multiplies 16-bit
 * weights; NULL otherwise (*is16 = 0, no error) or on error (*is16 = 1). */
static uint16_t *rl_host16(const model *m, const st_file *st, const char *prefix, const char *name, int64_t d0,
                           int64_t d1, int *is16, int *bf16, char *err, size_t errlen)
{
    char full[256];
    snprintf(full, sizeof full, "%s%s", prefix, name);
    const st_tensor *t = st_find(st, full);
    if (!t) t = st_find(st, name);
    *is16 = m->be->gemm_w16 && t && (t->dtype == ST_BF16 || t->dtype == ST_F16);
    if (!*is16) return NULL;
    *bf16 = t->dtype == ST_BF16;
    if (t->ndim != 2 || t->shape[0] != d0 || t->shape[1] != d1) {
        snprintf(err, errlen, "model weights: tensor '%s' has shape [%lld, %lld], expected [%lld, %lld]", t->name,
                 (long long)(t->ndim > 0 ? t->shape[0] : 0), (long long)(t->ndim > 1 ? t->shape[1] : 0), (long long)d0,
                 (long long)d1);
        return NULL;
    }
    size_t n = (size_t)d0 * (size_t)d1;
    uint16_t *h = malloc(sizeof(uint16_t) * n);
    if (!h) {
        snprintf(err, errlen, "out of memory for '%s'", t->name);
        return NULL;
    }
    memcpy(h, t->data, sizeof(uint16_t) * n);
    st_release(t);
    const uint16_t expo = *bf16 ? 0x7f80 : 0x7c00;
    for (size_t i = 0; i < n; i++)
        if ((h[i] & expo) == expo) {
            snprintf(err, errlen, "model weights: tensor '%s' holds NaN or Inf at element %zu", t->name, i);
            free(h);
            return NULL;
        }
    return h;
}

static uint16_t *rl_upload16(model *m, const uint16_t *h, size_t n, const char *what, char *err, size_t errlen)
{
    return mdl_upload_bytes(m, h, n * sizeof(uint16_t), what, err, errlen);
}

/* A linear weight (d0, d1): kept 16-bit when stored so and the backend can, else float32. */
static int rl_mat_load(model *m, const st_file *st, const char *prefix, const char *name, int64_t d0, int64_t d1,
                       rl_mat *out, char *err, size_t errlen)
{
    int is16 = 0, bf16 = 0;
    uint16_t *h = rl_host16(m, st, prefix, name, d0, d1, &is16, &bf16, err, errlen);
    if (is16) {
        if (!h) return -1;
        out->h = rl_upload16(m, h, (size_t)d0 * (size_t)d1, name, err, errlen);
        out->bf16 = bf16;
        free(h);
        return out->h ? 0 : -1;
    }
    return rl_w(m, st, prefix, name, 2, d0, d1, 0, 0, &out->f, err, errlen);
}

/* The fused q/k/v of one layer as rows [q | k | v] of (Q + 2KV, in) plus its bias (or NULL),
 * 16-bit when every part is stored so and the backend multiplies 16-bit weights. Separate
 * q_proj/k_proj/v_proj are stacked; NeoX's query_key_value holds, per head, its q, k and v
 * rows one after the other (HF views the output as (NH, 3·hd) and splits the last axis), so
 * its rows are regrouped. bv_host receives the v bias (KV floats) when there is one. */
static int rl_qkv(model *m, const st_file *st, const rl_names *nm, int l, rl_mat *w, float **b, float *bv_host,
                  const float *beta, float *bvln_host, char *err, size_t errlen)
{
    const hf_config *c = &m->cfg;
    const int C = c->d_model, hd = c->head_dim, Q = m->q_w, KV = m->kv_w, W = m->qkv_w;
    const char *part[3] = {nm->q, nm->k, nm->v};
    const int rows[3] = {Q, KV, KV}, off[3] = {0, Q, Q + KV};
    char n[160];
    /* 16-bit only when all parts are (and of one kind) */
    int is16 = 1, bf16 = -1;
    for (int j = 0; j < (nm->qkv ? 1 : 3); j++) {
        snprintf(n, sizeof n, "%s%s.%d.%s.weight", nm->prefix, "layers", l, nm->qkv ? nm->qkv : part[j]);
        const st_tensor *t = st_find(st, n);
        int t16 = m->be->gemm_w16 && t && (t->dtype == ST_BF16 || t->dtype == ST_F16);
        if (!t16 || (bf16 >= 0 && bf16 != (t->dtype == ST_BF16))) is16 = 0;
        if (t) bf16 = t->dtype == ST_BF16;
    }
    const size_t es = is16 ? sizeof(uint16_t) : sizeof(float), rowb = es * (size_t)C;
    char *hw = malloc(rowb * (size_t)W);
    float *hb = c->qkv_bias ? malloc(sizeof(float) * (size_t)W) : NULL;
    int rc = -1, dummy, bf;
    if (!hw || (c->qkv_bias && !hb)) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    for (int j = 0; j < (nm->qkv ? 1 : 3); j++) {
        int r = nm->qkv ? 3 * C : rows[j];
        snprintf(n, sizeof n, "layers.%d.%s.weight", l, nm->qkv ? nm->qkv : part[j]);
        void *pw = is16 ? (void *)rl_host16(m, st, nm->prefix, n, r, C, &dummy, &bf, err, errlen)
                        : (void *)rl_host(st, nm->prefix, n, 2, r, C, NULL, err, errlen);
        if (!pw) goto out;
        float *pb = NULL;
        if (hb) {
            snprintf(n, sizeof n, "layers.%d.%s.bias", l, nm->qkv ? nm->qkv : part[j]);
            if (!(pb = rl_host(st, nm->prefix, n, 1, r, 0, NULL, err, errlen))) {
                free(pw);
                goto out;
            }
        }
        if (nm->qkv) {
            for (int h = 0; h < c->n_head; h++)
                for (int q = 0; q < 3; q++)
                    for (int d = 0; d < hd; d++) {
                        size_t src = (size_t)h * 3 * hd + (size_t)q * hd + d, dst = (size_t)q * Q + (size_t)h * hd + d;
                        memcpy(hw + dst * rowb, (char *)pw + src * rowb, rowb);
                        if (pb) hb[dst] = pb[src];
                    }
        } else {
            memcpy(hw + (size_t)off[j] * rowb, pw, rowb * (size_t)rows[j]);
            if (pb) memcpy(hb + off[j], pb, sizeof(float) * (size_t)rows[j]);
        }
        free(pw);
        free(pb);
    }
    if (hb) memcpy(bv_host, hb + Q + KV, sizeof(float) * (size_t)KV);
    /* fold_ln moves LayerNorm's β into the biases: b_V + β·W_Vᵀ, what fold_value_biases then
     * removes from hook_v/hook_z */
    for (int j = 0; beta && j < KV; j++) {
        const char *row = hw + (size_t)(Q + KV + j) * rowb;
        double acc = hb ? hb[Q + KV + j] : 0.0;
        for (int i = 0; i < C; i++) {
            uint16_t h16;
            float wv;
            if (is16) {
                memcpy(&h16, row + (size_t)i * 2, 2);
                wv = bf16 ? st_bf16_to_f32(h16) : st_f16_to_f32(h16);
            } else {
                memcpy(&wv, row + (size_t)i * 4, 4);
            }
            acc += (double)beta[i] * wv;
        }
        bvln_host[j] = (float)acc;
    }
    snprintf(n, sizeof n, "layers.%d.qkv", l);
    if (is16) {
        w->h = rl_upload16(m, (uint16_t *)hw, (size_t)W * C, n, err, errlen);
        w->bf16 = bf16;
    } else {
        w->f = mdl_upload(m, (float *)hw, (size_t)W * C, n, err, errlen);
    }
    *b = (w->h || w->f) && hb ? mdl_upload(m, hb, (size_t)W, n, err, errlen) : NULL;
    rc = (w->h || w->f) && (!hb || *b) ? 0 : -1;
out:
    free(hw);
    free(hb);
    return rc;
}

/* cos | sin rows for every position, from the inverse frequencies HF's rotary embedding
 * uses: f_i = theta^(-2i/rot), divided by factor under linear scaling, and Llama-3's
 * smoothing between low_freq_factor and high_freq_factor (HF _compute_llama3_parameters).
 * Computed in double, stored in float32. */
static int rl_rope(model *m, char *err, size_t errlen)
{
    const hf_config *c = &m->cfg;
    const int rot = c->rotary_dim, half = rot / 2;
    double *fr = malloc(sizeof(double) * (size_t)half);
    float *cs = malloc(sizeof(float) * (size_t)c->n_ctx * rot);
    if (!fr || !cs) {
        free(fr);
        free(cs);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (int i = 0; i < half; i++) {
        double f = 1.0 / pow(c->rope_theta, (2.0 * i) / rot);
        if (c->rope_scaling == HF_ROPE_LINEAR) f /= c->rope_factor;
        if (c->rope_scaling == HF_ROPE_LLAMA3) {
            double old = c->rope_original_ctx, wavelen = 2.0 * M_PI / f;
            double low_wl = old / c->rope_low_freq, high_wl = old / c->rope_high_freq;
            if (wavelen > low_wl) {
                f /= c->rope_factor;
            } else if (wavelen >= high_wl) {
                double s = (old / wavelen - c->rope_low_freq) / (c->rope_high_freq - c->rope_low_freq);
                f = (1.0 - s) * f / c->rope_factor + s * f;
            }
        }
        fr[i] = f;
    }
    for (int p = 0; p < c->n_ctx; p++)
        for (int i = 0; i < half; i++) {
            cs[(size_t)p * rot + i] = (float)cos(p * fr[i]);
            cs[(size_t)p * rot + half + i] = (float)sin(p * fr[i]);
        }
    free(fr);
    m->rope_cs = mdl_upload(m, cs, (size_t)c->n_ctx * rot, "rotary table", err, errlen);
    free(cs);
    return m->rope_cs ? 0 : -1;
}

/* The ops a rotary model needs beyond GPT-2's. */
static const char *rl_missing_op(const model *m)
{
    const saed_backend *be = m->be;
    const hf_config *c = &m->cfg;
    if (c->norm == HF_RMSNORM && !be->rmsnorm) return "rmsnorm";
    if (!be->rotary) return "rotary";
    if (!be->act) return "act";
    if (c->gated_mlp && !be->glu) return "glu";
    if ((c->final_softcap > 0) && !be->softcap) return "softcap";
    return NULL;
}

int rot_load(model *m, const st_file *st, char *err, size_t errlen)
{
    const hf_config *c = &m->cfg;
    const int C = c->d_model, V = c->vocab_size, L = c->n_layer, F = c->d_mlp, Q = m->q_w, KV = m->kv_w;
    const char *missing = rl_missing_op(m);
    if (missing) {
        snprintf(err, errlen, "backend %s cannot run %s models yet (no %s op)", m->be->name, c->architecture, missing);
        return -1;
    }
    const rl_names *nm = !strcmp(c->architecture, "gpt_neox") ? &neox_names
                       : !strcmp(c->architecture, "gemma2")   ? &gemma2_names
                                                              : &llama_names;
    const char *px = nm->prefix;
    const int plus = c->norm_offset, ln = c->norm == HF_LAYERNORM;
    char n[160];
    if (c->parallel_residual) m->hooks &= ~(1u << HOOK_RESID_MID); /* TL has none then */
    if (rl_w(m, st, px, nm->embed, 2, V, C, 0, 0, &m->wte, err, errlen)) return -1;
    if (!c->tied) {
        rl_mat u = {0};
        if (rl_mat_load(m, st, "", nm->unembed, V, C, &u, err, errlen)) return -1;
        m->unembed = u.f;
        m->unembed16 = u.h;
        m->unembed16_bf16 = u.bf16;
    }
    snprintf(n, sizeof n, "%s.weight", nm->norm_f);
    if (rl_w(m, st, px, n, 1, C, 0, plus, 0, &m->lnf_w, err, errlen)) return -1;
    snprintf(n, sizeof n, "%s.bias", nm->norm_f);
    if (ln && rl_w(m, st, px, n, 1, C, 0, 0, 0, &m->lnf_b, err, errlen)) return -1;
    m->rlayers = calloc((size_t)L, sizeof *m->rlayers);
    m->b_v_host = calloc((size_t)L * Q, sizeof(float));
    m->b_vkv_host = calloc((size_t)L * KV, sizeof(float));
    if (ln) {
        m->b_vln_host = calloc((size_t)L * Q, sizeof(float));
        m->b_vkvln_host = calloc((size_t)L * KV, sizeof(float));
    }
    float *beta = ln ? malloc(sizeof(float) * (size_t)C) : NULL;
    if (!m->rlayers || !m->b_v_host || !m->b_vkv_host || (ln && (!m->b_vln_host || !m->b_vkvln_host || !beta))) {
        free(beta);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (int l = 0; l < L; l++) {
        rot_layer *y = &m->rlayers[l];
#define W(field, part, suffix, nd, a, b, p1)                                                \
    snprintf(n, sizeof n, "layers.%d.%s.%s", l, part, suffix);                              \
    if (rl_w(m, st, px, n, nd, a, b, p1, 0, &y->field, err, errlen)) goto fail;
        W(ln1_w, nm->ln1, "weight", 1, C, 0, plus);
        if (ln) { W(ln1_b, nm->ln1, "bias", 1, C, 0, 0); }
        W(ln2_w, nm->ln2, "weight", 1, C, 0, plus);
        if (ln) { W(ln2_b, nm->ln2, "bias", 1, C, 0, 0); }
        if (c->post_norms) {
            W(ln1post_w, nm->ln1post, "weight", 1, C, 0, plus);
            W(ln2post_w, nm->ln2post, "weight", 1, C, 0, plus);
        }
        float *bv = m->b_vkv_host + (size_t)l * KV, *bvln = ln ? m->b_vkvln_host + (size_t)l * KV : NULL;
        if (ln && m->be->download(m->be, beta, y->ln1_b, sizeof(float) * (size_t)C)) {
            snprintf(err, errlen, "model weights: %s", backend_error(m->be));
            goto fail;
        }
        if (rl_qkv(m, st, nm, l, &y->qkv, &y->qkv_b, bv, beta, bvln, err, errlen)) {
            goto fail;
        }
        /* TransformerLens repeats b_V over each group of query heads for hook_z */
        for (int h = 0; h < c->n_head; h++) {
            size_t dst = (size_t)l * Q + (size_t)h * c->head_dim, src = (size_t)(h / (c->n_head / c->n_kv_head)) * c->head_dim;
            memcpy(m->b_v_host + dst, bv + src, sizeof(float) * (size_t)c->head_dim);
            if (ln) memcpy(m->b_vln_host + dst, bvln + src, sizeof(float) * (size_t)c->head_dim);
        }
#define M(field, part, a, b)                                                         \
    snprintf(n, sizeof n, "layers.%d.%s.weight", l, part);                          \
    if (rl_mat_load(m, st, px, n, a, b, &y->field, err, errlen)) goto fail;
        M(o, nm->o, C, Q);
        if (c->o_bias) { W(o_b, nm->o, "bias", 1, C, 0, 0); }
        if (c->gated_mlp) { M(gate, nm->gate, F, C); }
        M(up, nm->up, F, C);
        M(down, nm->down, C, F);
#undef M
        if (c->mlp_bias) {
            if (c->gated_mlp) {
                snprintf(err, errlen, "%s: mlp_bias with a gated MLP is not supported", c->architecture);
                goto fail;
            }
            W(up_b, nm->up, "bias", 1, F, 0, 0);
            W(down_b, nm->down, "bias", 1, C, 0, 0);
        }
#undef W
    }
    free(beta);
    if (c->embed_scale) {
        float *s = malloc(sizeof(float) * (size_t)C);
        if (!s) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        /* HF: the normalizer sqrt(C) as a tensor of the hidden dtype (float32 here) */
        for (int i = 0; i < C; i++) s[i] = (float)sqrt((double)C);
        m->embed_scale = mdl_upload(m, s, (size_t)C, "embedding scale", err, errlen);
        free(s);
        if (!m->embed_scale) return -1;
    }
    return rl_rope(m, err, errlen);
fail:
    free(beta);
    return -1;
}

void rot_free(model *m)
{
    saed_backend *be = m->be;
    for (int l = 0; m->rlayers && l < m->cfg.n_layer; l++) {
        rot_layer *y = &m->rlayers[l];
        float *v[] = {y->ln1_w, y->ln1_b, y->ln1post_w, y->ln2_w, y->ln2_b, y->ln2post_w, y->qkv_b, y->o_b, y->up_b, y->down_b};
        rl_mat *w[] = {&y->qkv, &y->o, &y->gate, &y->up, &y->down};
        for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
            if (v[i]) be->release(be, v[i]);
        for (size_t i = 0; i < sizeof w / sizeof w[0]; i++) {
            if (w[i]->f) be->release(be, w[i]->f);
            if (w[i]->h) be->release(be, w[i]->h);
        }
    }
    free(m->rlayers);
    m->rlayers = NULL;
    if (m->unembed16) be->release(be, m->unembed16);
    m->unembed16 = NULL;
}

/* ---- the block ---- */

/* out (N,n) = in (N,k) · wᵀ (w: (n,k)) + bias (NULL: none); acc: out += instead. */
static int rl_linear(fwd *f, float *out, const float *in, const rl_mat *w, const float *bias, int N, int k, int n,
                     int acc, const char *what)
{
    saed_backend *be = f->m->be;
    /* Row-major out (N,n) = in (N,k) · w(n,k)ᵀ: gemm with the second operand transposed. */
#define PRODUCT(beta)                                                                                 \
    (w->h ? be->gemm_w16(be, N, n, k, in, k, w->h, w->bf16, beta, out, n)                             \
          : be->gemm(be, 0, 1, N, n, k, 1.0f, in, k, w->f, k, beta, out, n))
    int rc;
    if (acc) rc = (bias && mdl_ok(f, be->add_bias(be, out, bias, N, n), what)) || mdl_ok(f, PRODUCT(1.0f), what);
    else if (bias && be->fill_rows)
        rc = mdl_ok(f, be->fill_rows(be, out, bias, N, n), what) || mdl_ok(f, PRODUCT(1.0f), what);
    else rc = mdl_ok(f, PRODUCT(0.0f), what) || (bias && mdl_ok(f, be->add_bias(be, out, bias, N, n), what));
#undef PRODUCT
    return rc;
}

static int rl_norm(fwd *f, float *out, const float *in, const float *w, const float *b, const char *what)
{
    saed_backend *be = f->m->be;
    const hf_config *c = &f->m->cfg;
    const int N = f->B * f->T;
    int rc = c->norm == HF_RMSNORM ? be->rmsnorm(be, out, in, w, N, c->d_model, (float)c->ln_eps)
                                   : be->layernorm(be, out, in, w, b, N, c->d_model, (float)c->ln_eps);
    return mdl_ok(f, rc, what);
}

static int rl_attention(fwd *f, acts *a, int l)
{
    model *m = f->m;
    saed_backend *be = m->be;
    const hf_config *c = &m->cfg;
    rot_layer *y = &m->rlayers[l];
    const int B = f->B, T = f->T, N = B * T, C = c->d_model, Q = m->q_w, KV = m->kv_w, W = m->qkv_w;
    kv_cache *kc = f->o->cache;
    if (rl_norm(f, a->ln, a->resid, y->ln1_w, y->ln1_b, "attention norm") ||
        rl_linear(f, a->qkv, a->ln, &y->qkv, y->qkv_b, N, C, W, 0, "qkv"))
        return -1;
    /* TransformerLens shows q and k before the rotation */
    if (mdl_emit(f, HOOK_Q, l, a->qkv, W, N, Q) || mdl_emit(f, HOOK_K, l, a->qkv + Q, W, N, KV) ||
        mdl_emit(f, HOOK_V, l, a->qkv + Q + KV, W, N, KV))
        return -1;
    if (mdl_ok(f, be->rotary(be, a->qkv, W, B, T, c->n_head, c->head_dim, c->rotary_dim, m->rope_cs, f->pos0), "rotary q") ||
        mdl_ok(f, be->rotary(be, a->qkv + Q, W, B, T, c->n_kv_head, c->head_dim, c->rotary_dim, m->rope_cs, f->pos0),
               "rotary k"))
        return -1;
    const float *k = a->qkv + Q, *v = a->qkv + Q + KV;
    int ldkv = W;
    long sbkv = (long)T * W;
    if (kc) {
        for (int b = 0; b < B; b++) {
            size_t dst = ((size_t)b * kc->Tmax + kc->len) * KV;
            const float *row = a->qkv + (size_t)b * T * W;
            if (mdl_ok(f, be->copy2d(be, kc->k[l] + dst, KV, row + Q, W, T, KV), "kv cache") ||
                mdl_ok(f, be->copy2d(be, kc->v[l] + dst, KV, row + Q + KV, W, T, KV), "kv cache"))
                return -1;
        }
        k = kc->k[l];
        v = kc->v[l];
        ldkv = KV;
        sbkv = (long)kc->Tmax * KV;
    }
    attn_shape sh = {.B = B, .Tq = T, .Tk = f->Tk, .NH = c->n_head, .NKV = c->n_kv_head, .hd = c->head_dim,
                     .scale = (float)c->attn_scale, .softcap = (float)c->attn_softcap, .window = c->layer_window[l]};
    float *pattern = mdl_wants(f, HOOK_PATTERN, l) ? a->pattern : NULL;
    if (mdl_ok(f, be->attention(be, a->z, pattern, a->qkv, W, k, v, ldkv, sbkv, &sh), "attention")) return -1;
    if (pattern && mdl_emit(f, HOOK_PATTERN, l, pattern, f->Tk, B * c->n_head * T, f->Tk)) return -1;
    if (mdl_emit(f, HOOK_Z, l, a->z, Q, N, Q)) return -1;
    if (rl_linear(f, a->tmp, a->z, &y->o, y->o_b, N, Q, C, 0, "attention out")) return -1;
    if (y->ln1post_w && rl_norm(f, a->tmp, a->tmp, y->ln1post_w, NULL, "post-attention norm")) return -1;
    return mdl_emit(f, HOOK_ATTN_OUT, l, a->tmp, C, N, C);
}

static int rl_mlp(fwd *f, acts *a, int l)
{
    model *m = f->m;
    saed_backend *be = m->be;
    const hf_config *c = &m->cfg;
    rot_layer *y = &m->rlayers[l];
    const int N = f->B * f->T, C = c->d_model, F = c->d_mlp;
    const backend_act act = !strcmp(c->activation, "silu") ? ACT_SILU
                          : !strcmp(c->activation, "gelu") ? ACT_GELU_ERF
                                                           : ACT_GELU_TANH;
    if (rl_norm(f, a->ln, a->resid, y->ln2_w, y->ln2_b, "mlp norm")) return -1;
    if (c->gated_mlp) {
        /* TransformerLens' GatedMLP: hook_pre = the gate's pre-activation, hook_post = act(gate)·up */
        if (rl_linear(f, a->fc, a->ln, &y->gate, NULL, N, C, F, 0, "mlp gate") ||
            rl_linear(f, a->up, a->ln, &y->up, NULL, N, C, F, 0, "mlp up") ||
            mdl_emit(f, HOOK_MLP_PRE, l, a->fc, F, N, F) ||
            mdl_ok(f, be->glu(be, a->fc, a->fc, a->up, (size_t)N * F, act), "mlp activation"))
            return -1;
    } else if (rl_linear(f, a->fc, a->ln, &y->up, y->up_b, N, C, F, 0, "mlp in") ||
               mdl_emit(f, HOOK_MLP_PRE, l, a->fc, F, N, F) ||
               mdl_ok(f, be->act(be, a->fc, a->fc, (size_t)N * F, act), "mlp activation")) {
        return -1;
    }
    if (mdl_emit(f, HOOK_MLP_POST, l, a->fc, F, N, F) ||
        rl_linear(f, a->tmp2, a->fc, &y->down, y->down_b, N, F, C, 0, "mlp out"))
        return -1;
    if (y->ln2post_w && rl_norm(f, a->tmp2, a->tmp2, y->ln2post_w, NULL, "post-mlp norm")) return -1;
    return mdl_emit(f, HOOK_MLP_OUT, l, a->tmp2, C, N, C);
}

int rot_block(fwd *f, acts *a, int l)
{
    saed_backend *be = f->m->be;
    const size_t n = (size_t)f->B * f->T * f->m->cfg.d_model;
    const int N = f->B * f->T, C = f->m->cfg.d_model;
    if (rl_attention(f, a, l)) return -1;
    if (f->m->cfg.parallel_residual) {
        /* NeoX: both sublayers read the block's input; resid_post = resid_pre + attn_out + mlp_out */
        if (rl_mlp(f, a, l) || mdl_ok(f, be->add(be, a->resid, a->resid, a->tmp, n), "residual") ||
            mdl_ok(f, be->add(be, a->resid, a->resid, a->tmp2, n), "residual"))
            return -1;
    } else if (mdl_ok(f, be->add(be, a->resid, a->resid, a->tmp, n), "residual") ||
               mdl_emit(f, HOOK_RESID_MID, l, a->resid, C, N, C) || rl_mlp(f, a, l) ||
               mdl_ok(f, be->add(be, a->resid, a->resid, a->tmp2, n), "residual")) {
        return -1;
    }
    return mdl_emit(f, HOOK_RESID_POST, l, a->resid, C, N, C);
}
