/* model.c: see model.h and model_impl.h. The family-independent forward (embeddings, hook
 * values with TransformerLens processing, final norm, logits, KV cache) and GPT-2's block.
 * Shapes: B batch, T tokens, C d_model, NH heads, hd = C/NH, V vocab, L layers. GPT-2's
 * weights are HF Conv1D (input-major): y = x·W + b. */
#include "engine/model_impl.h"

#include <math.h>   // defines: sqrtf, isfinite
#include <stdarg.h> // defines: va_list
#include <stdint.h> // defines: INT32_MAX
#include <stdio.h>  // defines: snprintf
#include <stdlib.h> // defines: malloc, calloc, free
#include <string.h> // defines: memcpy, strcmp

static void acts_free(saed_backend *be, acts *a);

int model_processing_parse(const char *s)
{
    if (!strcmp(s, "none")) return PROC_NONE;
    if (!strcmp(s, "center_writing_weights")) return PROC_CENTER_WRITING;
    if (!strcmp(s, "fold_value_biases")) return PROC_FOLD_VALUE_BIASES;
    if (!strcmp(s, "fold_ln")) return PROC_FOLD_LN;
    if (!strcmp(s, "tl")) return PROC_CENTER_WRITING | PROC_FOLD_VALUE_BIASES | PROC_FOLD_LN;
    return -1;
}

/* ---- loading ---- */

/* Finds "transformer.<name>" or "<name>" and uploads it as float32 with the given shape. */
void *mdl_upload_bytes(model *m, const void *h, size_t bytes, const char *what, char *err, size_t errlen)
{
    void *d = m->be->alloc(m->be, bytes);
    if (!d || m->be->upload(m->be, d, h, bytes)) {
        snprintf(err, errlen, "model weights: %s: %s", what, backend_error(m->be));
        if (d) m->be->release(m->be, d);
        return NULL;
    }
    m->weight_bytes += bytes;
    return d;
}

float *mdl_upload(model *m, const float *h, size_t n, const char *what, char *err, size_t errlen)
{
    return mdl_upload_bytes(m, h, n * sizeof(float), what, err, errlen);
}

/* Finds "transformer.<name>" or "<name>" and uploads it as float32 with the given shape. */
float *mdl_load_w(model *m, const st_file *st, const char *name, int ndim, int64_t d0, int64_t d1, float **host_out,
                  char *err, size_t errlen)
{
    char full[256];
    snprintf(full, sizeof full, "transformer.%s", name);
    const char *use = st_find(st, full) ? full : name;
    int64_t shape[2] = {d0, d1};
    float *h = st_load_f32(st, use, ndim, shape, err, errlen);
    if (!h) {
        if (!st_find(st, full) && !st_find(st, name)) snprintf(err, errlen, "model weights: tensor '%s' is missing", name);
        return NULL;
    }
    size_t n = (size_t)d0 * (size_t)(ndim == 2 ? d1 : 1);
    for (size_t i = 0; i < n; i++)
        if (!isfinite(h[i])) {
            snprintf(err, errlen, "model weights: tensor '%s' holds NaN or Inf at element %zu", use, i);
            free(h);
            return NULL;
        }
    float *d = mdl_upload(m, h, n, use, err, errlen);
    if (d && host_out) *host_out = h;
    else free(h);
    return d;
}

static int gpt2_load(model *m, const st_file *st, char *err, size_t errlen)
{
    const int C = m->cfg.d_model, V = m->cfg.vocab_size, L = m->cfg.n_layer;
    if (!(m->wte = mdl_load_w(m, st, "wte.weight", 2, V, C, NULL, err, errlen))) return -1;
    if (!(m->wpe = mdl_load_w(m, st, "wpe.weight", 2, m->cfg.n_ctx, C, NULL, err, errlen))) return -1;
    if (!(m->lnf_w = mdl_load_w(m, st, "ln_f.weight", 1, C, 0, NULL, err, errlen))) return -1;
    if (!(m->lnf_b = mdl_load_w(m, st, "ln_f.bias", 1, C, 0, NULL, err, errlen))) return -1;
    m->layers = calloc((size_t)L, sizeof *m->layers);
    m->b_v_host = calloc((size_t)L * C, sizeof(float));
    m->b_vln_host = calloc((size_t)L * C, sizeof(float));
    if (!m->layers || !m->b_v_host || !m->b_vln_host) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (int l = 0; l < L; l++) {
        gpt2_layer *y = &m->layers[l];
        char n[64];
        float *attn_b_host = NULL, *ln1_b_host = NULL, *attn_w_host = NULL;
#define W(field, suffix, nd, a, b)                                                    \
    snprintf(n, sizeof n, "h.%d.%s", l, suffix);                                      \
    if (!(y->field = mdl_load_w(m, st, n, nd, a, b, NULL, err, errlen))) return -1;
        W(ln1_w, "ln_1.weight", 1, C, 0);
        snprintf(n, sizeof n, "h.%d.ln_1.bias", l);
        if (!(y->ln1_b = mdl_load_w(m, st, n, 1, C, 0, &ln1_b_host, err, errlen))) return -1;
        snprintf(n, sizeof n, "h.%d.attn.c_attn.weight", l);
        if (!(y->attn_w = mdl_load_w(m, st, n, 2, C, 3 * C, &attn_w_host, err, errlen))) {
            free(ln1_b_host);
            return -1;
        }
        snprintf(n, sizeof n, "h.%d.attn.c_attn.bias", l);
        if (!(y->attn_b = mdl_load_w(m, st, n, 1, 3 * C, 0, &attn_b_host, err, errlen))) {
            free(ln1_b_host);
            free(attn_w_host);
            return -1;
        }
        /* b_V, and b_V + β₁·W_V as fold_ln leaves it (Conv1D: column 2C + j is v_j) */
        for (int j = 0; j < C; j++) {
            double s = attn_b_host[2 * C + j];
            for (int i = 0; i < C; i++) s += (double)ln1_b_host[i] * attn_w_host[(size_t)i * 3 * C + 2 * C + j];
            m->b_v_host[(size_t)l * C + j] = attn_b_host[2 * C + j];
            m->b_vln_host[(size_t)l * C + j] = (float)s;
        }
        free(attn_b_host);
        free(ln1_b_host);
        free(attn_w_host);
        W(aproj_w, "attn.c_proj.weight", 2, C, C);
        W(aproj_b, "attn.c_proj.bias", 1, C, 0);
        W(ln2_w, "ln_2.weight", 1, C, 0);
        W(ln2_b, "ln_2.bias", 1, C, 0);
        W(fc_w, "mlp.c_fc.weight", 2, C, 4 * C);
        W(fc_b, "mlp.c_fc.bias", 1, 4 * C, 0);
        W(mproj_w, "mlp.c_proj.weight", 2, 4 * C, C);
        W(mproj_b, "mlp.c_proj.bias", 1, C, 0);
#undef W
    }
    m->b_vkv_host = m->b_v_host;
    m->b_vkvln_host = m->b_vln_host;
    /* lm_head is tied to wte in GPT-2; a separate lm_head.weight must then equal it. */
    return 0;
}


static int gpt2_block(fwd *f, acts *a, int l);

/* Every hook kind but the learned position embedding, which rotary families do not have. */
#define ROT_HOOKS (((1u << HOOK_N_KINDS) - 1) & ~(1u << HOOK_POS_EMBED))

static const model_family families[] = {
    {"gpt2", gpt2_load, gpt2_block, (1u << HOOK_N_KINDS) - 1},
    {"llama", rot_load, rot_block, ROT_HOOKS},
    {"mistral", rot_load, rot_block, ROT_HOOKS},
    {"qwen2", rot_load, rot_block, ROT_HOOKS},
    {"gemma2", rot_load, rot_block, ROT_HOOKS},
    {"gpt_neox", rot_load, rot_block, ROT_HOOKS},
};

model *model_load(const char *dir, saed_backend *be, char *err, size_t errlen)
{
    const char *missing = backend_missing_op(be);
    if (missing) {
        snprintf(err, errlen, "backend %s cannot run models yet (no %s op)", be->name, missing);
        return NULL;
    }
    model *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->be = be;
    pthread_mutex_init(&m->ws_lock, NULL);
    if (hf_config_load(dir, &m->cfg, err, errlen)) {
        free(m);
        return NULL;
    }
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++)
        if (!strcmp(families[i].model_type, m->cfg.architecture)) m->fam = &families[i];
    if (!m->fam) {
        snprintf(err, errlen, "%s: model_type '%s' has no forward pass", dir, m->cfg.architecture);
        model_free(m);
        return NULL;
    }
    const hf_config *c = &m->cfg;
    m->hooks = m->fam->hooks;
    m->q_w = c->n_head * c->head_dim;
    m->kv_w = c->n_kv_head * c->head_dim;
    m->qkv_w = m->q_w + 2 * m->kv_w;
    st_file *st = st_open(dir, err, errlen);
    if (!st) {
        model_free(m);
        return NULL;
    }
    int rc = m->fam->load(m, st, err, errlen);
    st_close(st);
    if (rc == 0) {
        const int C = m->cfg.d_model;
        float *ones = malloc(sizeof(float) * (size_t)C);
        m->ones = be->alloc(be, sizeof(float) * (size_t)C);
        m->zeros = be->alloc(be, sizeof(float) * (size_t)C);
        if (!ones || !m->ones || !m->zeros) rc = -1;
        for (int i = 0; rc == 0 && i < C; i++) ones[i] = 1.0f;
        if (rc == 0) rc = be->upload(be, m->ones, ones, sizeof(float) * (size_t)C);
        free(ones);
        if (rc) snprintf(err, errlen, "out of memory");
    }
    if (rc) {
        model_free(m);
        return NULL;
    }
    return m;
}

void model_free(model *m)
{
    if (!m) return;
    saed_backend *be = m->be;
#define R(p) do { if (p) be->release(be, p); } while (0)
    R(m->wte); R(m->wpe); R(m->unembed); R(m->lnf_w); R(m->lnf_b); R(m->ones); R(m->zeros);
    R(m->embed_scale); R(m->rope_cs);
    rot_free(m);
    for (int l = 0; m->layers && l < m->cfg.n_layer; l++) {
        gpt2_layer *y = &m->layers[l];
        R(y->ln1_w); R(y->ln1_b); R(y->attn_w); R(y->attn_b); R(y->aproj_w); R(y->aproj_b);
        R(y->ln2_w); R(y->ln2_b); R(y->fc_w); R(y->fc_b); R(y->mproj_w); R(y->mproj_b);
    }
#undef R
    if (m->ws) {
        acts_free(be, m->ws);
        free(m->ws);
    }
    pthread_mutex_destroy(&m->ws_lock);
    free(m->layers);
    if (m->b_vkv_host != m->b_v_host) free(m->b_vkv_host);
    if (m->b_vkvln_host != m->b_vln_host) free(m->b_vkvln_host);
    free(m->b_v_host);
    free(m->b_vln_host);
    hf_config_free(&m->cfg);
    free(m);
}

const hf_config *model_config(const model *m) { return &m->cfg; }
saed_backend *model_backend(const model *m) { return m->be; }
size_t model_weight_bytes(const model *m) { return m->weight_bytes; }

int model_unembed_host(const model *m, float *out, char *err, size_t errlen)
{
    size_t n = (size_t)m->cfg.vocab_size * (size_t)m->cfg.d_model;
    if (m->unembed16) {
        /* the 16-bit values go into the back half of out and widen front to back: writing
         * out[i] only overwrites 16-bit values at indices ≤ i, already read */
        uint16_t *h = (uint16_t *)(out + n / 2);
        int rc = m->be->download(m->be, h, m->unembed16, n * sizeof(uint16_t));
        for (size_t i = 0; rc == 0 && i < n; i++)
            out[i] = m->unembed16_bf16 ? st_bf16_to_f32(h[i]) : st_f16_to_f32(h[i]);
        if (rc) snprintf(err, errlen, "unembedding: %s", backend_error(m->be));
        return rc ? -1 : 0;
    }
    if (m->be->download(m->be, out, m->unembed ? m->unembed : m->wte, n * sizeof(float))) {
        snprintf(err, errlen, "unembedding: %s", backend_error(m->be));
        return -1;
    }
    return 0;
}

int model_hook_width(const model *m, hook_point hp, int Tk)
{
    switch (hp.kind) {
    case HOOK_MLP_PRE:
    case HOOK_MLP_POST: return m->cfg.d_mlp;
    case HOOK_Q:
    case HOOK_Z: return m->q_w;
    case HOOK_K:
    case HOOK_V: return m->kv_w;
    case HOOK_PATTERN: return m->cfg.n_head * Tk;
    default: return m->cfg.d_model;
    }
}

double model_forward_flops(const model *m, int B, int T, int n_layers, int with_logits)
{
    const double C = m->cfg.d_model, V = m->cfg.vocab_size, N = (double)B * T, F = m->cfg.d_mlp;
    /* per token per layer: q, k, v and the out-projection, the MLP's two (gated: three)
     * products; attention scores and weighted sum T·hd MACs per head each (full T×T, as
     * computed). GPT-2: 12C² MACs. */
    double macs = C * (m->qkv_w + m->q_w) + (m->cfg.gated_mlp ? 3.0 : 2.0) * C * F;
    double per_layer = 2.0 * N * macs + 2.0 * 2.0 * N * T * m->q_w;
    return per_layer * n_layers + (with_logits ? 2.0 * N * C * V : 0.0);
}

/* ---- the forward pass ---- */


int mdl_fail(fwd *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int mdl_fail(fwd *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->err, f->errlen, fmt, ap);
    va_end(ap);
    return -1;
}

int mdl_ok(fwd *f, int rc, const char *what)
{
    return rc ? mdl_fail(f, "%s: %s", what, backend_error(f->m->be)) : 0;
}

static float *grow(float **buf, size_t *cap, size_t n)
{
    if (n > *cap) {
        float *nb = realloc(*buf, n * sizeof(float));
        if (!nb) return NULL;
        *buf = nb;
        *cap = n;
    }
    return *buf;
}

int mdl_wants(const fwd *f, hook_kind k, int layer)
{
    for (int i = 0; i < f->o->nhooks; i++)
        if (f->o->hooks[i].hp.kind == k && f->o->hooks[i].hp.layer == layer) return 1;
    return 0;
}

/* Runs hook h on x (rows × width values as emit was given them); -1 with the error when the
 * callback aborts the forward. */
static int call_hook(fwd *f, const hook_req *h, hook_kind kind, float *x, int rows, int width)
{
    int T = kind == HOOK_PATTERN ? f->T : rows / f->B;
    if (!h->fn(h->ud, h->hp, x, f->B, T, kind == HOOK_PATTERN ? rows * width / (f->B * f->T) : width)) return 0;
    char name[96];
    hook_format(h->hp, name, sizeof name);
    return mdl_fail(f, "hook %s: callback aborted the forward", name);
}

/* Shows the activation buf (rows of `width` floats at stride ld, starting at buf) to every hook
 * registered for (kind, layer), with the processing applied, and folds write-hook changes
 * back into buf. */
int mdl_emit(fwd *f, hook_kind kind, int layer, float *buf, int ld, int rows, int width)
{
    saed_backend *be = f->m->be;
    for (int i = 0; i < f->o->nhooks; i++) {
        const hook_req *h = &f->o->hooks[i];
        if (h->hp.kind != kind || h->hp.layer != layer) continue;
        int processed = ((f->proc & PROC_CENTER_WRITING) && hook_is_residual_write(kind)) ||
                        ((f->proc & PROC_FOLD_VALUE_BIASES) && (kind == HOOK_Z || kind == HOOK_V));
        if (be->host_memory && !h->write && !processed && ld == width) {
            /* a read hook on unprocessed, contiguous host values sees them in place: no copy */
            if (call_hook(f, h, kind, buf, rows, width)) return -1;
            continue;
        }
        size_t n = (size_t)rows * width;
        float *x = grow(&f->host, &f->host_cap, n);
        if (!x) return mdl_fail(f, "out of memory for hook values");
        if (be->host_memory) {
            for (int r = 0; r < rows; r++) memcpy(x + (size_t)r * width, buf + (size_t)r * ld, sizeof(float) * width);
        } else {
            float *dev = be->alloc(be, n * sizeof(float));
            int rc = !dev || be->copy2d(be, dev, width, buf, ld, rows, width) || be->download(be, x, dev, n * sizeof(float));
            if (dev) be->release(be, dev);
            if (rc) return mdl_fail(f, "hook copy: %s", backend_error(be));
        }
        /* The shift each processed value got, so a write can be folded back exactly. */
        int stream = kind == HOOK_RESID_PRE || kind == HOOK_RESID_MID || kind == HOOK_RESID_POST;
        if ((f->proc & PROC_CENTER_WRITING) && hook_is_residual_write(kind))
            for (int r = 0; r < rows; r++) {
                double s = 0;
                float *row = x + (size_t)r * width;
                for (int j = 0; j < width; j++) s += row[j];
                float mean = (float)(s / width - (stream && f->shift ? f->shift[r] : 0.0));
                for (int j = 0; j < width; j++) row[j] -= mean;
            }
        if ((f->proc & PROC_FOLD_VALUE_BIASES) && (kind == HOOK_Z || kind == HOOK_V)) {
            /* hook_v has the key/value heads' biases, hook_z each query head's (TL repeats
             * b_V over a group of query heads) */
            const int ln = (f->proc & PROC_FOLD_LN) && f->m->b_vln_host;
            const float *bv = kind == HOOK_V ? (ln ? f->m->b_vkvln_host : f->m->b_vkv_host) + (size_t)layer * width
                                             : (ln ? f->m->b_vln_host : f->m->b_v_host) + (size_t)layer * width;
            for (int r = 0; r < rows; r++)
                for (int j = 0; j < width; j++) x[(size_t)r * width + j] -= bv[j];
        }
        float *orig = NULL;
        if (h->write) {
            if (kind == HOOK_PATTERN || kind == HOOK_LN_FINAL) {
                char name[96];
                hook_format(h->hp, name, sizeof name);
                return mdl_fail(f, "hook %s is read-only", name);
            }
            if (!(orig = grow(&f->orig, &f->orig_cap, n))) return mdl_fail(f, "out of memory for hook values");
            memcpy(orig, x, n * sizeof(float));
        }
        if (call_hook(f, h, kind, x, rows, width)) return -1;
        if (!h->write) continue;
        for (size_t j = 0; j < n; j++) x[j] -= orig[j]; /* the requested change */
        if ((f->proc & PROC_CENTER_WRITING) && hook_is_residual_write(kind)) {
            if (!f->shift && !(f->shift = calloc((size_t)rows, sizeof *f->shift)))
                return mdl_fail(f, "out of memory for hook values");
            for (int r = 0; r < rows; r++) {
                double s = 0;
                for (int j = 0; j < width; j++) s += x[(size_t)r * width + j];
                f->shift[r] += s / width;
            }
        }
        if (be->host_memory) {
            for (int r = 0; r < rows; r++) {
                float *dst = buf + (size_t)r * ld;
                const float *d = x + (size_t)r * width;
                for (int j = 0; j < width; j++) dst[j] += d[j];
            }
        } else {
            float *dev = be->alloc(be, n * sizeof(float)), *cur = be->alloc(be, n * sizeof(float));
            int rc = !dev || !cur || be->upload(be, dev, x, n * sizeof(float)) ||
                     be->copy2d(be, cur, width, buf, ld, rows, width) || be->add(be, cur, cur, dev, n) ||
                     be->copy2d(be, buf, ld, cur, width, rows, width);
            if (dev) be->release(be, dev);
            if (cur) be->release(be, cur);
            if (rc) return mdl_fail(f, "hook write-back: %s", backend_error(be));
        }
    }
    return 0;
}

/* The last layer whose computation some hook needs; -1 = embeddings only. */
static int last_needed_layer(const fwd *f)
{
    const fwd_opts *o = f->o;
    if (o->logits || o->argmax || o->cache) return f->m->cfg.n_layer;
    int last = -1;
    for (int i = 0; i < o->nhooks; i++) {
        hook_point hp = o->hooks[i].hp;
        int need = hp.kind == HOOK_LN_FINAL ? f->m->cfg.n_layer
                 : hp.kind == HOOK_RESID_PRE ? hp.layer - 1
                 : hp.layer;
        if (need > last) last = need;
    }
    return last;
}


static void acts_free(saed_backend *be, acts *a)
{
    float **p = (float **)a;
    for (size_t i = 0; i < sizeof *a / sizeof(float *); i++)
        if (p[i]) be->release(be, p[i]);
}

/* The kept activation set when it holds rows tokens, else fresh buffers; the attention pattern
 * (hook_pattern only) is never kept. Buffers are fully written before they are read, so stale
 * contents do not matter. -1 when out of memory. */
/* Whether a holds every buffer a forward through the blocks uses. */
static int acts_complete(const model *m, const acts *a)
{
    return a->resid && a->ln && a->qkv && a->z && a->tmp && a->fc && (!m->rlayers || a->tmp2) &&
           (!m->cfg.gated_mlp || a->up);
}

static int acts_take(model *m, acts *a, size_t rows, int layers, size_t *cap)
{
    saed_backend *be = m->be;
    const size_t C = (size_t)m->cfg.d_model;
    memset(a, 0, sizeof *a);
    pthread_mutex_lock(&m->ws_lock);
    *cap = rows;
    if (m->ws && m->ws_rows >= rows) {
        *cap = m->ws_rows;
        *a = *m->ws;
        free(m->ws);
        m->ws = NULL;
    }
    pthread_mutex_unlock(&m->ws_lock);
    if (a->resid) return 0;
    a->resid = be->alloc(be, sizeof(float) * rows * C);
    a->ln = be->alloc(be, sizeof(float) * rows * C);
    if (layers) {
        a->qkv = be->alloc(be, sizeof(float) * rows * (size_t)m->qkv_w);
        a->z = be->alloc(be, sizeof(float) * rows * (size_t)m->q_w);
        a->tmp = be->alloc(be, sizeof(float) * rows * C);
        a->fc = be->alloc(be, sizeof(float) * rows * (size_t)m->cfg.d_mlp);
        if (m->rlayers) a->tmp2 = be->alloc(be, sizeof(float) * rows * C);
        if (m->cfg.gated_mlp) a->up = be->alloc(be, sizeof(float) * rows * (size_t)m->cfg.d_mlp);
    }
    return a->resid && a->ln && (!layers || acts_complete(m, a)) ? 0 : -1;
}

/* Keeps a complete set of rows tokens for the next forward (the larger one, when another
 * forward kept one meanwhile) and frees the rest. */
static void acts_give(model *m, acts *a, size_t rows)
{
    saed_backend *be = m->be;
    if (a->pattern) be->release(be, a->pattern);
    a->pattern = NULL;
    acts *keep = acts_complete(m, a) ? malloc(sizeof *keep) : NULL;
    if (keep) {
        *keep = *a;
        memset(a, 0, sizeof *a);
        pthread_mutex_lock(&m->ws_lock);
        if (!m->ws || m->ws_rows < rows) {
            acts *old = m->ws;
            m->ws = keep;
            m->ws_rows = rows;
            keep = old;
        }
        pthread_mutex_unlock(&m->ws_lock);
        if (keep) {
            acts_free(be, keep);
            free(keep);
        }
    }
    acts_free(be, a);
}

static int run_logits(fwd *f, acts *a)
{
    model *m = f->m;
    saed_backend *be = m->be;
    const int B = f->B, T = f->T, C = m->cfg.d_model, V = m->cfg.vocab_size;
    const fwd_opts *o = f->o;
    const float *W = m->unembed ? m->unembed : m->wte, cap = (float)m->cfg.final_softcap;
    if (o->logits_last_only && !o->argmax) {
        /* Rows T-1, 2T-1, ...: stride T·C in ln. */
        float *lg = be->alloc(be, sizeof(float) * (size_t)B * V);
        if (!lg) return mdl_fail(f, "out of memory for logits");
        int rc = (m->unembed16 ? be->gemm_w16(be, B, V, C, a->ln + (size_t)(T - 1) * C, T * C, m->unembed16,
                                               m->unembed16_bf16, 0.0f, lg, V)
                                : be->gemm(be, 0, 1, B, V, C, 1.0f, a->ln + (size_t)(T - 1) * C, T * C, W, C, 0.0f, lg, V)) ||
                 (cap > 0 && be->softcap(be, lg, (size_t)B * V, cap)) ||
                 be->download(be, o->logits, lg, sizeof(float) * (size_t)B * V);
        be->release(be, lg);
        return mdl_ok(f, rc, "logits");
    }
    /* Chunks of rows bound the (rows, V) scratch. */
    const int rows_per = 256;
    size_t N = (size_t)B * T;
    float *lg = be->alloc(be, sizeof(float) * (size_t)rows_per * V);
    if (!lg) return mdl_fail(f, "out of memory for logits");
    int rc = 0;
    for (size_t r0 = 0; r0 < N && rc == 0; r0 += rows_per) {
        int n = (int)(N - r0 < (size_t)rows_per ? N - r0 : (size_t)rows_per);
        rc = m->unembed16 ? be->gemm_w16(be, n, V, C, a->ln + r0 * C, C, m->unembed16, m->unembed16_bf16, 0.0f, lg, V)
                          : be->gemm(be, 0, 1, n, V, C, 1.0f, a->ln + r0 * C, C, W, C, 0.0f, lg, V);
        if (rc == 0 && cap > 0) rc = be->softcap(be, lg, (size_t)n * V, cap);
        if (rc == 0 && o->argmax) rc = be->argmax_rows(be, o->argmax + r0, lg, n, V);
        if (rc == 0 && o->logits && !o->logits_last_only)
            rc = be->download(be, o->logits + r0 * V, lg, sizeof(float) * (size_t)n * V);
        if (rc == 0 && o->logits && o->logits_last_only)
            for (int i = 0; i < n && rc == 0; i++)
                if ((r0 + i) % T == (size_t)T - 1)
                    rc = be->download(be, o->logits + (r0 + i) / T * V, lg + (size_t)i * V, sizeof(float) * V);
    }
    be->release(be, lg);
    return mdl_ok(f, rc, "logits");
}

/* out (N,n) = in (N,k) · w (k,n) + bias. Where the backend can fill rows, the bias goes in
 * first and the GEMM adds onto it (beta 1): one pass over out instead of BLAS's zeroing pass
 * and a bias pass after it. acc: out already holds a residual to add onto, so the bias is
 * added to it and the GEMM accumulates (out += in · w + bias, no separate buffer or add). */
int mdl_linear(fwd *f, float *out, const float *in, const float *w, const float *bias, int N, int k, int n,
                  int acc, const char *what)
{
    saed_backend *be = f->m->be;
    if (acc)
        return mdl_ok(f, be->add_bias(be, out, bias, N, n), what) ||
               mdl_ok(f, be->gemm(be, 0, 0, N, n, k, 1.0f, in, k, w, n, 1.0f, out, n), what);
    if (be->fill_rows)
        return mdl_ok(f, be->fill_rows(be, out, bias, N, n), what) ||
               mdl_ok(f, be->gemm(be, 0, 0, N, n, k, 1.0f, in, k, w, n, 1.0f, out, n), what);
    return mdl_ok(f, be->gemm(be, 0, 0, N, n, k, 1.0f, in, k, w, n, 0.0f, out, n), what) ||
           mdl_ok(f, be->add_bias(be, out, bias, N, n), what);
}

static int gpt2_block(fwd *f, acts *a, int l)
{
    model *m = f->m;
    saed_backend *be = m->be;
    gpt2_layer *y = &m->layers[l];
    const int B = f->B, T = f->T, C = m->cfg.d_model, NH = m->cfg.n_head, hd = C / NH;
    const int N = B * T;
    const float eps = (float)m->cfg.ln_eps;
    kv_cache *kc = f->o->cache;

    if (mdl_ok(f, be->layernorm(be, a->ln, a->resid, y->ln1_w, y->ln1_b, N, C, eps), "ln_1")) return -1;
    /* qkv (N,3C) = ln (N,C) · W (C,3C) + b */
    if (mdl_linear(f, a->qkv, a->ln, y->attn_w, y->attn_b, N, C, 3 * C, 0, "c_attn")) return -1;
    if (mdl_emit(f, HOOK_Q, l, a->qkv, 3 * C, N, C) || mdl_emit(f, HOOK_K, l, a->qkv + C, 3 * C, N, C) ||
        mdl_emit(f, HOOK_V, l, a->qkv + 2 * C, 3 * C, N, C))
        return -1;
    const float *k = a->qkv + C, *v = a->qkv + 2 * C;
    int ldkv = 3 * C;
    long sbkv = (long)T * 3 * C;
    if (kc) {
        /* Append this step's keys and values, then attend over everything cached. */
        for (int b = 0; b < B; b++) {
            size_t dst = ((size_t)b * kc->Tmax + kc->len) * C;
            if (mdl_ok(f, be->copy2d(be, kc->k[l] + dst, C, a->qkv + (size_t)b * T * 3 * C + C, 3 * C, T, C), "kv cache") ||
                mdl_ok(f, be->copy2d(be, kc->v[l] + dst, C, a->qkv + (size_t)b * T * 3 * C + 2 * C, 3 * C, T, C), "kv cache"))
                return -1;
        }
        k = kc->k[l];
        v = kc->v[l];
        ldkv = C;
        sbkv = (long)kc->Tmax * C;
    }
    float *pattern = mdl_wants(f, HOOK_PATTERN, l) ? a->pattern : NULL;
    attn_shape sh = {.B = B, .Tq = T, .Tk = f->Tk, .NH = NH, .NKV = NH, .hd = hd, .scale = 1.0f / sqrtf((float)hd)};
    if (mdl_ok(f, be->attention(be, a->z, pattern, a->qkv, 3 * C, k, v, ldkv, sbkv, &sh), "attention"))
        return -1;
    if (pattern && mdl_emit(f, HOOK_PATTERN, l, pattern, f->Tk, B * NH * T, f->Tk)) return -1;
    if (mdl_emit(f, HOOK_Z, l, a->z, C, N, C)) return -1;
    /* Without an attn_out hook the projection accumulates straight onto the residual. */
    if (!mdl_wants(f, HOOK_ATTN_OUT, l)) {
        if (mdl_linear(f, a->resid, a->z, y->aproj_w, y->aproj_b, N, C, C, 1, "attn c_proj")) return -1;
    } else if (mdl_linear(f, a->tmp, a->z, y->aproj_w, y->aproj_b, N, C, C, 0, "attn c_proj") ||
               mdl_emit(f, HOOK_ATTN_OUT, l, a->tmp, C, N, C) ||
               mdl_ok(f, be->add(be, a->resid, a->resid, a->tmp, (size_t)N * C), "residual")) {
        return -1;
    }
    if (mdl_emit(f, HOOK_RESID_MID, l, a->resid, C, N, C)) return -1;

    if (mdl_ok(f, be->layernorm(be, a->ln, a->resid, y->ln2_w, y->ln2_b, N, C, eps), "ln_2") ||
        mdl_linear(f, a->fc, a->ln, y->fc_w, y->fc_b, N, C, 4 * C, 0, "c_fc"))
        return -1;
    if (mdl_emit(f, HOOK_MLP_PRE, l, a->fc, 4 * C, N, 4 * C)) return -1;
    if (mdl_ok(f, be->gelu(be, a->fc, a->fc, (size_t)N * 4 * C), "gelu")) return -1;
    if (mdl_emit(f, HOOK_MLP_POST, l, a->fc, 4 * C, N, 4 * C)) return -1;
    if (!mdl_wants(f, HOOK_MLP_OUT, l)) {
        if (mdl_linear(f, a->resid, a->fc, y->mproj_w, y->mproj_b, N, 4 * C, C, 1, "mlp c_proj")) return -1;
    } else if (mdl_linear(f, a->tmp, a->fc, y->mproj_w, y->mproj_b, N, 4 * C, C, 0, "mlp c_proj") ||
               mdl_emit(f, HOOK_MLP_OUT, l, a->tmp, C, N, C) ||
               mdl_ok(f, be->add(be, a->resid, a->resid, a->tmp, (size_t)N * C), "residual")) {
        return -1;
    }
    return mdl_emit(f, HOOK_RESID_POST, l, a->resid, C, N, C);
}

int model_forward(model *m, const int32_t *ids, int B, int T, const fwd_opts *o, char *err, size_t errlen)
{
    saed_backend *be = m->be;
    const int C = m->cfg.d_model, V = m->cfg.vocab_size, L = m->cfg.n_layer, NH = m->cfg.n_head;
    /* TransformerLens refuses center_writing_weights for RMSNorm models (the norm does not
     * remove the mean, so the weights are left as they are); saed does the same. */
    int proc = o->processing & (m->cfg.norm == HF_RMSNORM ? ~PROC_CENTER_WRITING : ~0);
    fwd f = {.m = m, .o = o, .proc = proc, .B = B, .T = T, .err = err, .errlen = errlen};
    kv_cache *kc = o->cache;
    f.pos0 = kc ? kc->len : 0;
    f.Tk = f.pos0 + T;
    if (B < 1 || T < 1) return mdl_fail(&f, "empty input (B=%d, T=%d)", B, T);
    /* Element counts are passed to ops and hooks as int: keep every buffer within that. */
    const int64_t widest = m->cfg.d_mlp > m->qkv_w ? m->cfg.d_mlp : m->qkv_w;
    if ((int64_t)B * T * (widest > C ? widest : C) > INT32_MAX || (int64_t)B * NH * T * (f.pos0 + T) > INT32_MAX)
        return mdl_fail(&f, "batch too large (%d × %d tokens)", B, T);
    if (f.Tk > m->cfg.n_ctx) return mdl_fail(&f, "%d tokens exceed the model's context of %d", f.Tk, m->cfg.n_ctx);
    if (kc && (kc->m != m || kc->B != B || f.Tk > kc->Tmax))
        return mdl_fail(&f, "kv cache does not fit this call (B=%d, %d+%d tokens, cache B=%d Tmax=%d)", B, f.pos0, T,
                    kc->B, kc->Tmax);
    for (int i = 0; i < B * T; i++)
        if (ids[i] < 0 || ids[i] >= V) return mdl_fail(&f, "token id %d at position %d is outside the vocabulary (0-%d)", ids[i], i, V - 1);
    for (int i = 0; i < o->nhooks; i++) {
        hook_point hp = o->hooks[i].hp;
        if (hp.layer >= L || (hp.layer < 0 && hp.kind != HOOK_EMBED && hp.kind != HOOK_POS_EMBED && hp.kind != HOOK_LN_FINAL))
            return mdl_fail(&f, "hook %d: layer %d out of range", i, hp.layer);
        if (!(m->hooks & (1u << hp.kind))) {
            char name[96];
            hook_format(hp, name, sizeof name);
            return mdl_fail(&f, "hook %s does not exist in %s models", name, m->fam->model_type);
        }
    }
    const size_t N = (size_t)B * T;
    int last = last_needed_layer(&f);
    acts a = {0};
    int rc = -1;
    size_t cap = N;
    if (acts_take(m, &a, N, last >= 0, &cap)) {
        mdl_fail(&f, "out of memory for activations (%zu tokens)", N);
        goto out;
    }
    if (last >= 0) {
        for (int i = 0; i < o->nhooks; i++)
            if (o->hooks[i].hp.kind == HOOK_PATTERN && !a.pattern &&
                !(a.pattern = be->alloc(be, sizeof(float) * (size_t)B * NH * T * f.Tk))) {
                mdl_fail(&f, "out of memory for attention patterns");
                goto out;
            }
    }

    /* Embeddings; the separate token/position parts only when a hook asks for them. Gemma-2's
     * are scaled by sqrt(C) (TransformerLens folds the factor into W_E: the same products). */
    if (!m->wpe) {
        if (mdl_ok(&f, be->embed(be, a.resid, ids, m->wte, NULL, B, T, C, f.pos0), "embed") ||
            (m->embed_scale && mdl_ok(&f, be->scale_cols(be, a.resid, m->embed_scale, (int)N, C), "embed scale")) ||
            mdl_emit(&f, HOOK_EMBED, -1, a.resid, C, (int)N, C))
            goto out;
    } else if (mdl_wants(&f, HOOK_EMBED, -1) || mdl_wants(&f, HOOK_POS_EMBED, -1)) {
        if (mdl_ok(&f, be->embed(be, a.resid, ids, m->wte, NULL, B, T, C, f.pos0), "embed") ||
            mdl_emit(&f, HOOK_EMBED, -1, a.resid, C, (int)N, C) ||
            mdl_ok(&f, be->embed(be, a.ln, NULL, NULL, m->wpe, B, T, C, f.pos0), "pos embed") ||
            mdl_emit(&f, HOOK_POS_EMBED, -1, a.ln, C, (int)N, C) ||
            mdl_ok(&f, be->add(be, a.resid, a.resid, a.ln, N * C), "embed sum"))
            goto out;
    } else if (mdl_ok(&f, be->embed(be, a.resid, ids, m->wte, m->wpe, B, T, C, f.pos0), "embed")) {
        goto out;
    }
    /* Blocks 0..last run; resid_pre of the block after them is still shown (it is the last
     * block's output), then the pass stops. */
    for (int l = 0; l < L; l++) {
        if (mdl_emit(&f, HOOK_RESID_PRE, l, a.resid, C, (int)N, C)) goto out;
        if (l > last) break;
        if (m->fam->block(&f, &a, l)) goto out;
    }
    if (last >= L) {
        const float eps = (float)m->cfg.ln_eps;
        const int rms = m->cfg.norm == HF_RMSNORM;
        if (mdl_wants(&f, HOOK_LN_FINAL, -1)) {
            int r = rms ? be->rmsnorm(be, a.ln, a.resid, NULL, (int)N, C, eps)
                        : be->layernorm(be, a.ln, a.resid, m->ones, m->zeros, (int)N, C, eps);
            if (mdl_ok(&f, r, "ln_f") || mdl_emit(&f, HOOK_LN_FINAL, -1, a.ln, C, (int)N, C)) goto out;
        }
        int r = rms ? be->rmsnorm(be, a.ln, a.resid, m->lnf_w, (int)N, C, eps)
                    : be->layernorm(be, a.ln, a.resid, m->lnf_w, m->lnf_b, (int)N, C, eps);
        if (mdl_ok(&f, r, "ln_f")) goto out;
        if ((o->logits || o->argmax) && run_logits(&f, &a)) goto out;
    }
    if (kc) kc->len += T;
    rc = 0;
out:
    acts_give(m, &a, cap);
    free(f.host);
    free(f.orig);
    free(f.shift);
    return rc;
}

/* ---- KV cache ---- */

kv_cache *kv_cache_new(model *m, int B, int Tmax, char *err, size_t errlen)
{
    const int L = m->cfg.n_layer, C = m->kv_w;
    if (B < 1 || Tmax < 1 || Tmax > m->cfg.n_ctx) {
        snprintf(err, errlen, "kv cache: B=%d, Tmax=%d (context %d)", B, Tmax, m->cfg.n_ctx);
        return NULL;
    }
    kv_cache *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->m = m;
    c->B = B;
    c->Tmax = Tmax;
    c->k = calloc((size_t)L, sizeof *c->k);
    c->v = calloc((size_t)L, sizeof *c->v);
    for (int l = 0; c->k && c->v && l < L; l++) {
        c->k[l] = m->be->alloc(m->be, sizeof(float) * (size_t)B * Tmax * C);
        c->v[l] = m->be->alloc(m->be, sizeof(float) * (size_t)B * Tmax * C);
        if (!c->k[l] || !c->v[l]) {
            snprintf(err, errlen, "kv cache: out of memory");
            kv_cache_free(c);
            return NULL;
        }
    }
    if (!c->k || !c->v) {
        snprintf(err, errlen, "kv cache: out of memory");
        kv_cache_free(c);
        return NULL;
    }
    return c;
}

int kv_cache_len(const kv_cache *c) { return c->len; }

kv_cache *kv_cache_row(kv_cache *c, int b)
{
    const int L = c->m->cfg.n_layer;
    const size_t off = (size_t)b * c->Tmax * c->m->kv_w;
    kv_cache *r = calloc(1, sizeof *r);
    if (r && (r->k = calloc((size_t)L, sizeof *r->k)) && (r->v = calloc((size_t)L, sizeof *r->v))) {
        *r = (kv_cache){.m = c->m, .B = 1, .Tmax = c->Tmax, .len = c->len, .k = r->k, .v = r->v, .view = 1};
        for (int l = 0; l < L; l++) r->k[l] = c->k[l] + off, r->v[l] = c->v[l] + off;
        return r;
    }
    if (r) free(r->k);
    free(r);
    return NULL;
}

void kv_cache_free(kv_cache *c)
{
    if (!c) return;
    for (int l = 0; !c->view && l < c->m->cfg.n_layer; l++) {
        if (c->k && c->k[l]) c->m->be->release(c->m->be, c->k[l]);
        if (c->v && c->v[l]) c->m->be->release(c->m->be, c->v[l]);
    }
    free(c->k);
    free(c->v);
    free(c);
}

int hook_copy_cols(void *ud, hook_point hp, float *act, int B, int T, int width)
{
    (void)hp;
    hook_copy *h = ud;
    for (size_t r = 0; r < (size_t)B * T; r++) memcpy(h->x + r * h->D, act + r * width + h->col0, sizeof(float) * h->D);
    return 0;
}
