/* sae.c: SAELens sparse autoencoders on the backend: sae_weights.safetensors (+ the optional
 * sparsity.safetensors) read and validated, the folds SAELens applies at load (norm scaling
 * factor) or on request (decoder norm), encode/decode with SAELens v6 math for every
 * architecture as batched gemm plus a few row-wise ops, sparse per-token results, and export
 * back to SAELens layout. cfg.json lives in sae_cfg.c. Does not run models or read hooks: the
 * caller feeds activations (engine/model.h). */
#include <errno.h>     // defines: errno, EEXIST
#include <math.h>      // defines: sqrt, expf, log10, isfinite
#include <stdio.h>     // defines: snprintf, fopen
#include <stdlib.h>    // defines: malloc, calloc, qsort
#include <string.h>    // defines: memcpy, strcmp
#include <sys/stat.h>  // defines: mkdir
#include <unistd.h>    // defines: access

#include "engine/safetensors.h" // defines: st_open, st_find, st_to_f32, st_write
#include "engine/sae.h"

enum { T_W_ENC, T_B_ENC, T_B_GATE, T_R_MAG, T_B_MAG, T_THRESHOLD, T_W_DEC, T_B_DEC, T_W_SKIP, T_N };
static const char *const tensor_names[T_N] = {"W_enc", "b_enc", "b_gate", "r_mag", "b_mag",
                                              "threshold", "W_dec", "b_dec", "W_skip"};

typedef struct sae_tensor {
    int ndim;              /* 0: not part of this architecture */
    int64_t shape[2];
    const char *dims;      /* the shape in words, for messages: "d_in, d_sae" */
    float *host;           /* as read from the file (float32), for sae_export; may alias dev */
    float *dev;            /* backend: what encode/decode use (folded when folded) */
} sae_tensor;

struct sae {
    sae_cfg cfg;
    saed_backend *be;
    int folded;
    sae_tensor t[T_N];
    float *w_mag;          /* gated: W_enc ⊙ exp(r_mag) (d_in, d_sae), backend */
    float *neg_b_dec;      /* −b_dec (d_in), backend; only with apply_b_dec_to_input */
    float *dec_norm;       /* topk with rescale: ‖W_dec[i]‖ (d_sae), backend */
    float *inv_dec_norm;   /* 1/‖W_dec[i]‖ (d_sae), backend */
    float *log_sparsity;   /* (d_sae) host, or NULL */
};

static int is_transcoder(sae_arch a)
{
    return a == SAE_TRANSCODER || a == SAE_SKIP_TRANSCODER || a == SAE_JUMPRELU_TRANSCODER;
}

/* Input normalizations with per-token statistics, undone on the way out. */
static int row_norm(const sae_cfg *c)
{
    return c->norm == SAE_NORM_CONSTANT_NORM_RESCALE || c->norm == SAE_NORM_LAYER_NORM;
}

static int be_fail(sae *s, const char *what, char *err, size_t errlen)
{
    snprintf(err, errlen, "SAE %s: backend %s: %s", what, s->be->name, backend_error(s->be));
    return -1;
}

/* ---- loading ---- */

/* The tensors of the architecture (SAELens §1.5) and their shapes. */
static void tensor_layout(sae *s)
{
    const sae_cfg *c = &s->cfg;
    const int tc = is_transcoder(c->arch);
#define SET(i, n, a, b, d) (s->t[i].ndim = (n), s->t[i].shape[0] = (a), s->t[i].shape[1] = (b), s->t[i].dims = (d))
    SET(T_W_ENC, 2, c->d_in, c->d_sae, "d_in, d_sae");
    SET(T_W_DEC, 2, c->d_sae, c->d_out, tc ? "d_sae, d_out" : "d_sae, d_in");
    SET(T_B_DEC, 1, c->d_out, 0, tc ? "d_out" : "d_in");
    if (c->arch == SAE_GATED) {
        SET(T_B_GATE, 1, c->d_sae, 0, "d_sae");
        SET(T_R_MAG, 1, c->d_sae, 0, "d_sae");
        SET(T_B_MAG, 1, c->d_sae, 0, "d_sae");
    } else {
        SET(T_B_ENC, 1, c->d_sae, 0, "d_sae");
    }
    if (c->arch == SAE_JUMPRELU || c->arch == SAE_JUMPRELU_TRANSCODER) SET(T_THRESHOLD, 1, c->d_sae, 0, "d_sae");
    if (c->arch == SAE_SKIP_TRANSCODER) SET(T_W_SKIP, 2, c->d_out, c->d_in, "d_out, d_in");
#undef SET
}

static void fmt_shape(char *buf, size_t n, int ndim, const int64_t *shape)
{
    size_t o = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && o < n; i++) o += (size_t)snprintf(buf + o, n - o, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (o < n) snprintf(buf + o, n - o, "]");
}

/* A float tensor of the given shape as float32, every value finite. */
static float *read_tensor(const st_tensor *t, const char *path, int ndim, const int64_t *shape, const char *dims,
                          char *err, size_t errlen)
{
    if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16 && t->dtype != ST_F64) {
        snprintf(err, errlen, "%s: tensor '%s' has dtype %s; expected F32, F16, BF16 or F64", path, t->name,
                 st_dtype_name(t->dtype));
        return NULL;
    }
    int ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == shape[i];
    if (!ok) {
        char have[128], want[128];
        fmt_shape(have, sizeof have, t->ndim, t->shape);
        fmt_shape(want, sizeof want, ndim, shape);
        snprintf(err, errlen, "%s: tensor '%s' has shape %s, expected %s (%s)", path, t->name, have, want, dims);
        return NULL;
    }
    float *out = malloc(t->numel ? (size_t)t->numel * sizeof(float) : sizeof(float));
    if (!out) {
        snprintf(err, errlen, "%s: tensor '%s': out of memory", path, t->name);
        return NULL;
    }
    if (st_to_f32(t, out, err, errlen)) {
        free(out);
        return NULL;
    }
    for (int64_t i = 0; i < t->numel; i++)
        if (!isfinite(out[i])) {
            snprintf(err, errlen, "%s: tensor '%s' holds %s at index %lld", path, t->name, isnan(out[i]) ? "NaN" : "Inf",
                     (long long)i);
            free(out);
            return NULL;
        }
    return out;
}

static int read_weights(sae *s, const char *dir, char *err, size_t errlen)
{
    char path[4096], need[160] = "";
    snprintf(path, sizeof path, "%s/sae_weights.safetensors", dir);
    for (int i = 0; i < T_N; i++)
        if (s->t[i].ndim) snprintf(need + strlen(need), sizeof need - strlen(need), "%s%s", *need ? ", " : "", tensor_names[i]);
    st_file *f = st_open(path, err, errlen);
    if (!f) return -1;
    int rc = -1;
    /* SAELens loads the state dict strictly, so a stray tensor means the cfg describes another
     * architecture than the weights. */
    for (int i = 0; i < st_count(f); i++) {
        const char *name = st_at(f, i)->name;
        int known = !strcmp(name, "scaling_factor");
        for (int k = 0; k < T_N; k++) known |= s->t[k].ndim && !strcmp(name, tensor_names[k]);
        if (!known) {
            snprintf(err, errlen, "%s: unexpected tensor '%s' for architecture %s (expected %s)", path, name,
                     sae_arch_name(s->cfg.arch), need);
            goto done;
        }
    }
    for (int k = 0; k < T_N; k++) {
        if (!s->t[k].ndim) continue;
        const st_tensor *t = st_find(f, tensor_names[k]);
        if (!t) {
            snprintf(err, errlen, "%s: tensor '%s' not found (architecture %s needs %s)", path, tensor_names[k],
                     sae_arch_name(s->cfg.arch), need);
            goto done;
        }
        if (!(s->t[k].host = read_tensor(t, path, s->t[k].ndim, s->t[k].shape, s->t[k].dims, err, errlen))) goto done;
    }
    /* Pre-6 files may carry scaling_factor (finetuning); SAELens drops an all-ones one, and v6
     * has no parameter to put any other in. */
    const st_tensor *sf = st_find(f, "scaling_factor");
    if (sf) {
        int64_t shape[1] = {s->cfg.d_sae};
        float *v = read_tensor(sf, path, 1, shape, "d_sae", err, errlen);
        if (!v) goto done;
        int64_t bad = -1;
        for (int64_t i = 0; i < shape[0] && bad < 0; i++)
            if (v[i] != 1.0f) bad = i;
        float bv = bad >= 0 ? v[bad] : 1.0f;
        free(v);
        if (bad >= 0) {
            snprintf(err, errlen, "%s: tensor 'scaling_factor' is not all ones (index %lld is %g): a finetuning scaling "
                                  "factor, which SAELens 6 cannot load", path, (long long)bad, bv);
            goto done;
        }
    }
    rc = 0;
done:
    st_close(f);
    return rc;
}

static int read_sparsity(sae *s, const char *dir, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/sparsity.safetensors", dir);
    if (access(path, F_OK) != 0) return 0;
    st_file *f = st_open(path, err, errlen);
    if (!f) return -1;
    int rc = -1;
    const st_tensor *t = st_find(f, "sparsity");
    int64_t shape[1] = {s->cfg.d_sae};
    if (!t) {
        snprintf(err, errlen, "%s: tensor 'sparsity' not found", path);
        goto done;
    }
    if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16 && t->dtype != ST_F64) {
        snprintf(err, errlen, "%s: tensor 'sparsity' has dtype %s; expected F32, F16, BF16 or F64", path, st_dtype_name(t->dtype));
        goto done;
    }
    if (t->ndim != 1 || t->shape[0] != shape[0]) {
        char have[128];
        fmt_shape(have, sizeof have, t->ndim, t->shape);
        snprintf(err, errlen, "%s: tensor 'sparsity' has shape %s, expected [%d] (d_sae)", path, have, s->cfg.d_sae);
        goto done;
    }
    float *v = malloc(sizeof(float) * (size_t)shape[0]);
    if (!v || st_to_f32(t, v, err, errlen)) {
        if (!v) snprintf(err, errlen, "%s: out of memory", path);
        free(v);
        goto done;
    }
    int raw = 1;
    for (int64_t i = 0; i < shape[0]; i++) {
        if (isnan(v[i]) || v[i] == INFINITY) {
            snprintf(err, errlen, "%s: tensor 'sparsity' holds %s at index %lld", path, isnan(v[i]) ? "NaN" : "Inf",
                     (long long)i);
            free(v);
            goto done;
        }
        raw &= v[i] >= 0.0f;
    }
    /* log10 densities are ≤ 0; very old files held the raw frequency instead. −Inf (log10 of 0)
     * becomes −10, the floor of SAELens' log10(freq + 1e-10). */
    for (int64_t i = 0; i < shape[0]; i++) {
        if (raw) v[i] = (float)log10((double)v[i] + 1e-10);
        else if (v[i] == -INFINITY) v[i] = -10.0f;
    }
    s->log_sparsity = v;
    rc = 0;
done:
    st_close(f);
    return rc;
}

static const char *missing_op(const saed_backend *b)
{
#define NEED(op) if (!b->op) return #op
    NEED(alloc); NEED(release); NEED(upload); NEED(download); NEED(gemm); NEED(add_bias); NEED(copy2d);
    NEED(topk_rows); NEED(masked_relu); NEED(scale_cols); NEED(scale_rows); NEED(scatter_rows);
#undef NEED
    return NULL;
}

static float *to_backend(sae *s, const float *src, size_t n, char *err, size_t errlen)
{
    float *d = s->be->alloc(s->be, n * sizeof(float));
    if (!d || s->be->upload(s->be, d, src, n * sizeof(float))) {
        if (d) s->be->release(s->be, d);
        be_fail(s, "upload", err, errlen);
        return NULL;
    }
    return d;
}

static size_t numel(const sae_tensor *t) { return (size_t)t->shape[0] * (size_t)(t->ndim == 2 ? t->shape[1] : 1); }

sae_load_opts sae_dashboard_load_opts(const sae_cfg *c)
{
    return (sae_load_opts){.fold_dec_norm = !(c->arch == SAE_TOPK && !c->rescale_acts_by_decoder_norm)};
}

size_t sae_memory_bytes(const sae *s)
{
    size_t n = 0, d_sae = (size_t)s->cfg.d_sae;
    for (int k = 0; k < T_N; k++) {
        const sae_tensor *t = &s->t[k];
        if (!t->ndim) continue;
        n += numel(t) * sizeof(float) * (t->host && t->host != t->dev ? 2 : 1);
    }
    if (s->w_mag) n += (size_t)s->cfg.d_in * d_sae * sizeof(float);
    if (s->log_sparsity) n += d_sae * sizeof(float);
    return n;
}

/* w[k]: the values to compute with; a fold first copies the as-read tensor. */
static float *writable(sae *s, float **w, int k)
{
    if (w[k] == s->t[k].host) {
        float *c = malloc(numel(&s->t[k]) * sizeof(float));
        if (!c) return NULL;
        memcpy(c, w[k], numel(&s->t[k]) * sizeof(float));
        w[k] = c;
    }
    return w[k];
}

/* Applies the folds to working copies, derives the helper vectors and uploads everything. */
static int prepare(sae *s, const sae_load_opts *o, char *err, size_t errlen)
{
    sae_cfg *c = &s->cfg;
    const int D = c->d_in, S = c->d_sae, O = c->d_out;
    float *w[T_N];
    for (int k = 0; k < T_N; k++) w[k] = s->t[k].host;
    float *tmp = NULL;
    int rc = -1;
    if (o->norm_scaling_factor < 0 || !isfinite(o->norm_scaling_factor)) {
        snprintf(err, errlen, "SAE load: norm_scaling_factor %g is not a positive number", o->norm_scaling_factor);
        goto done;
    }
    if (o->fold_dec_norm && c->arch == SAE_TOPK && !c->rescale_acts_by_decoder_norm) {
        snprintf(err, errlen, "%s: fold_dec_norm is not defined for topk without rescale_acts_by_decoder_norm", c->hook_name);
        goto done;
    }
    /* SAELens' fold_activation_norm_scaling_factor, applied by from_pretrained for
     * expected_average_only_in (other modes: ignored, as SAELens does). Exact: h is unchanged. */
    double sfd = o->norm_scaling_factor > 0 ? o->norm_scaling_factor : c->norm_scaling_factor;
    if (sfd > 0 && c->norm == SAE_NORM_EXPECTED_AVERAGE_ONLY_IN) {
        const float sf = (float)sfd;
        float *we = writable(s, w, T_W_ENC), *wd = writable(s, w, T_W_DEC), *bd = writable(s, w, T_B_DEC);
        if (!we || !wd || !bd) goto oom;
        for (size_t i = 0; i < (size_t)D * S; i++) we[i] *= sf;
        for (size_t i = 0; i < (size_t)S * O; i++) wd[i] /= sf;
        for (int i = 0; i < O; i++) bd[i] /= sf;
        c->norm_scaling_factor = sfd;
    }
    /* SAELens' fold_W_dec_norm: unit decoder rows, the norm moved into the encoder side, so
     * activations come out in the unit-decoder scale and the reconstruction is unchanged. */
    if (o->fold_dec_norm) {
        float *we = writable(s, w, T_W_ENC), *wd = writable(s, w, T_W_DEC);
        float *vec[3] = {NULL, NULL, NULL};
        int nv = 0;
        if (!we || !wd) goto oom;
        if (c->arch == SAE_GATED) {
            if (!(vec[nv++] = writable(s, w, T_B_GATE)) || !(vec[nv++] = writable(s, w, T_B_MAG))) goto oom;
        } else if (!(vec[nv++] = writable(s, w, T_B_ENC))) {
            goto oom;
        }
        if (s->t[T_THRESHOLD].ndim && !(vec[nv++] = writable(s, w, T_THRESHOLD))) goto oom;
        for (int i = 0; i < S; i++) {
            double ss = 0;
            float *row = wd + (size_t)i * O;
            for (int j = 0; j < O; j++) ss += (double)row[j] * row[j];
            float n = (float)sqrt(ss);
            if (!(n >= 1e-8f)) n = 1e-8f; /* SAELens ≥ 6.37 clamps; older ones divided by 0 */
            for (int j = 0; j < O; j++) row[j] /= n;
            for (int r = 0; r < D; r++) we[(size_t)r * S + i] *= n;
            for (int v = 0; v < nv; v++) vec[v][i] *= n;
        }
        s->folded = 1;
    }
    if (!(tmp = malloc(sizeof(float) * ((size_t)D * S > (size_t)2 * S + D ? (size_t)D * S : (size_t)2 * S + D)))) goto oom;
    if (c->arch == SAE_GATED) {
        /* SAELens computes W_enc * exp(r_mag) per call; once is enough. */
        for (int r = 0; r < D; r++)
            for (int i = 0; i < S; i++) tmp[(size_t)r * S + i] = w[T_W_ENC][(size_t)r * S + i] * expf(w[T_R_MAG][i]);
        if (!(s->w_mag = to_backend(s, tmp, (size_t)D * S, err, errlen))) goto done;
    }
    if (c->apply_b_dec_to_input) {
        for (int i = 0; i < D; i++) tmp[i] = -w[T_B_DEC][i];
        if (!(s->neg_b_dec = to_backend(s, tmp, (size_t)D, err, errlen))) goto done;
    }
    if (c->arch == SAE_TOPK && c->rescale_acts_by_decoder_norm) {
        for (int i = 0; i < S; i++) {
            double ss = 0;
            for (int j = 0; j < O; j++) ss += (double)w[T_W_DEC][(size_t)i * O + j] * w[T_W_DEC][(size_t)i * O + j];
            tmp[i] = (float)sqrt(ss);
            /* A zero decoder row reconstructs nothing; 0 instead of SAELens' 0/0. */
            tmp[S + i] = tmp[i] > 0 ? 1.0f / tmp[i] : 0.0f;
        }
        if (!(s->dec_norm = to_backend(s, tmp, (size_t)S, err, errlen)) ||
            !(s->inv_dec_norm = to_backend(s, tmp + S, (size_t)S, err, errlen)))
            goto done;
    }
    for (int k = 0; k < T_N; k++) {
        sae_tensor *t = &s->t[k];
        if (!t->ndim) continue;
        if (!(t->dev = to_backend(s, w[k], numel(t), err, errlen))) goto done;
        if (w[k] != t->host) {
            free(w[k]);
        } else if (s->be->host_memory) {
            /* Unchanged and readable where it is: keep one copy. */
            free(t->host);
            t->host = t->dev;
        }
        w[k] = t->host;
    }
    rc = 0;
    goto done;
oom:
    snprintf(err, errlen, "SAE load: out of memory");
done:
    for (int k = 0; k < T_N; k++)
        if (w[k] != s->t[k].host) free(w[k]);
    free(tmp);
    return rc;
}

sae *sae_load(const char *dir, saed_backend *be, const sae_load_opts *o, char *err, size_t errlen)
{
    const sae_load_opts none = {0};
    sae *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "SAE load: out of memory");
        return NULL;
    }
    s->be = be;
    if (sae_cfg_load(dir, &s->cfg, err, errlen)) {
        free(s);
        return NULL;
    }
    const char *missing = missing_op(be);
    if (missing) {
        snprintf(err, errlen, "backend %s cannot run SAEs yet (no %s op)", be->name, missing);
        sae_free(s);
        return NULL;
    }
    tensor_layout(s);
    if (read_weights(s, dir, err, errlen) || read_sparsity(s, dir, err, errlen) || prepare(s, o ? o : &none, err, errlen)) {
        sae_free(s);
        return NULL;
    }
    return s;
}

void sae_free(sae *s)
{
    if (!s) return;
    saed_backend *be = s->be;
    for (int k = 0; k < T_N; k++) {
        if (s->t[k].host != s->t[k].dev) free(s->t[k].host);
        if (s->t[k].dev) be->release(be, s->t[k].dev);
    }
    float *derived[] = {s->w_mag, s->neg_b_dec, s->dec_norm, s->inv_dec_norm};
    for (size_t i = 0; i < sizeof derived / sizeof *derived; i++)
        if (derived[i]) be->release(be, derived[i]);
    free(s->log_sparsity);
    sae_cfg_free(&s->cfg);
    free(s);
}

const sae_cfg *sae_config(const sae *s) { return &s->cfg; }
int sae_is_folded(const sae *s) { return s->folded; }
saed_backend *sae_backend(const sae *s) { return s->be; }
const float *sae_log_sparsity(const sae *s) { return s->log_sparsity; }

int sae_decoder_row(const sae *s, int i, float *out, char *err, size_t errlen)
{
    if (i < 0 || i >= s->cfg.d_sae) {
        snprintf(err, errlen, "feature %d is outside 0..%d", i, s->cfg.d_sae - 1);
        return -1;
    }
    const int O = s->cfg.d_out;
    if (s->be->download(s->be, out, s->t[T_W_DEC].dev + (size_t)i * O, sizeof(float) * O)) {
        snprintf(err, errlen, "SAE decoder row: backend %s: %s", s->be->name, backend_error(s->be));
        return -1;
    }
    return 0;
}

float sae_cfg_row_divisor(const sae_cfg *c)
{
    return c->norm == SAE_NORM_EXPECTED_AVERAGE_ONLY_IN && c->norm_scaling_factor > 0 ? (float)c->norm_scaling_factor
                                                                                      : 0.0f;
}

/* out = row, divided as prepare's fold divides W_dec when sf > 0. */
static void unfold_row(const float *row, int n, float sf, float *out)
{
    for (int j = 0; j < n; j++) out[j] = sf > 0 ? row[j] / sf : row[j];
}

int sae_file_decoder_row(const char *dir, long long i, float **out, int *n, char *err, size_t errlen)
{
    char path[4096];
    *out = NULL;
    *n = 0;
    snprintf(path, sizeof path, "%s/sae_weights.safetensors", dir);
    st_file *f = st_open(path, err, errlen);
    if (!f) return -1;
    int rc = -1;
    const st_tensor *t = st_find(f, "W_dec");
    if (!t || t->ndim != 2 || t->shape[1] < 1 || t->shape[1] > (1 << 24)) {
        snprintf(err, errlen, "%s: %s", path, t ? "tensor 'W_dec' is not a (d_sae, d_out) matrix" : "tensor 'W_dec' not found");
    } else if (i < 0 || i >= t->shape[0]) {
        snprintf(err, errlen, "feature %lld is outside 0..%lld", i, (long long)t->shape[0] - 1);
        rc = 1;
    } else {
        /* A one-row view of the tensor: only these bytes of the mapping are read. */
        st_tensor row = *t;
        const size_t rb = (size_t)t->shape[1] * st_dtype_size(t->dtype);
        row.ndim = 1;
        row.shape[0] = t->shape[1];
        row.numel = t->shape[1];
        row.nbytes = rb;
        row.data = (const uint8_t *)t->data + (size_t)i * rb;
        float *v = malloc((size_t)row.numel * sizeof(float));
        sae_cfg cfg;
        if (!v) snprintf(err, errlen, "%s: out of memory", path);
        else if (st_to_f32(&row, v, err, errlen)) free(v);
        else if (sae_cfg_load(dir, &cfg, err, errlen)) free(v);
        else {
            /* The row steering adds (sae_decoder_row_raw): SAELens' from_pretrained fold. */
            unfold_row(v, (int)row.numel, sae_cfg_row_divisor(&cfg), v);
            sae_cfg_free(&cfg);
            *out = v;
            *n = (int)row.numel;
            rc = 0;
        }
    }
    st_close(f);
    return rc;
}

int sae_decoder_row_raw(const sae *s, int i, float *out, char *err, size_t errlen)
{
    if (i < 0 || i >= s->cfg.d_sae) {
        snprintf(err, errlen, "feature %d is outside 0..%d", i, s->cfg.d_sae - 1);
        return -1;
    }
    const int O = s->cfg.d_out;
    /* host is the file's tensor in every case (prepare folds into copies, and drops host only
     * for an unchanged tensor on a host-memory backend, where dev then holds the same values). */
    const float *row = s->t[T_W_DEC].host + (size_t)i * O;
    unfold_row(row, O, sae_cfg_row_divisor(&s->cfg), out);
    return 0;
}

/* ---- encode / decode ---- */

/* Per-token factors of norm_in (x·sc_in + sh_in) and norm_out (y·sc_out + sh_out), each (N),
 * in f (4N host floats), from the statistics of x (N,d_in) as SAELens' sae.py computes them. */
static int norm_factors(sae *s, const float *x, int N, float *f, char *err, size_t errlen)
{
    const int D = s->cfg.d_in;
    const float *hx = x;
    float *tmp = NULL;
    if (!s->be->host_memory) {
        if (!(tmp = malloc(sizeof(float) * (size_t)N * D))) {
            snprintf(err, errlen, "SAE normalization: out of memory");
            return -1;
        }
        if (s->be->download(s->be, tmp, x, sizeof(float) * (size_t)N * D)) {
            free(tmp);
            return be_fail(s, "normalization", err, errlen);
        }
        hx = tmp;
    }
    float *sc_in = f, *sh_in = f + N, *sc_out = f + 2 * (size_t)N, *sh_out = f + 3 * (size_t)N;
    for (int r = 0; r < N; r++) {
        const float *row = hx + (size_t)r * D;
        if (s->cfg.norm == SAE_NORM_CONSTANT_NORM_RESCALE) {
            /* c = √d_in / ‖x‖; in: x·c, out: y/c. */
            double ss = 0;
            for (int i = 0; i < D; i++) ss += (double)row[i] * row[i];
            sc_in[r] = (float)(sqrt((double)D) / sqrt(ss));
            sc_out[r] = (float)(sqrt(ss) / sqrt((double)D));
            sh_in[r] = sh_out[r] = 0.0f;
        } else {
            /* in: (x − μ)/(σ + 1e-5), σ the unbiased std; out: y·σ + μ. */
            double m = 0, ss = 0;
            for (int i = 0; i < D; i++) m += row[i];
            m /= D;
            for (int i = 0; i < D; i++) ss += ((double)row[i] - m) * ((double)row[i] - m);
            double sd = D > 1 ? sqrt(ss / (D - 1)) : 0.0, inv = 1.0 / (sd + 1e-5);
            sc_in[r] = (float)inv;
            sh_in[r] = (float)(-m * inv);
            sc_out[r] = (float)sd;
            sh_out[r] = (float)m;
        }
    }
    free(tmp);
    return 0;
}

int sae_encode(sae *s, const float *x, int N, float *f, char *err, size_t errlen)
{
    return sae_encode_map(s, x, N, f, NULL, err, errlen) < 0 ? -1 : 0;
}

int sae_encode_map(sae *s, const float *x, int N, float *f, uint64_t *map, char *err, size_t errlen)
{
    saed_backend *be = s->be;
    const sae_cfg *c = &s->cfg;
    const int D = c->d_in, S = c->d_sae;
    if (N < 0) {
        snprintf(err, errlen, "sae_encode: %d rows", N);
        return -1;
    }
    if (N == 0) return 0;
    float *xbuf = NULL, *pi = NULL, *fac = NULL, *vals = NULL;
    int32_t *idx = NULL;
    const float *xin = x;
    int rc = -1;
    /* x~ = norm_in(x) − b_dec·apply_b_dec_to_input, in a scratch copy. */
    if (row_norm(c) || s->neg_b_dec) {
        if (!(xbuf = be->alloc(be, sizeof(float) * (size_t)N * D)) || be->copy2d(be, xbuf, D, x, D, N, D)) goto be_err;
        if (row_norm(c)) {
            if (!(fac = malloc(sizeof(float) * 4 * (size_t)N))) goto oom;
            if (norm_factors(s, x, N, fac, err, errlen)) goto done;
            if (be->scale_rows(be, xbuf, fac, fac + N, N, D)) goto be_err;
        }
        if (s->neg_b_dec && be->add_bias(be, xbuf, s->neg_b_dec, N, D)) goto be_err;
        xin = xbuf;
    }
    /* h (N,S) = x~ (N,D) · W (D,S) + b; gated: the magnitude path. */
    const float *W = c->arch == SAE_GATED ? s->w_mag : s->t[T_W_ENC].dev;
    const float *b = c->arch == SAE_GATED ? s->t[T_B_MAG].dev : s->t[T_B_ENC].dev;
    if (be->gemm(be, 0, 0, N, S, D, 1.0f, xin, D, W, S, 0.0f, f, S)) goto be_err;
    /* standard and JumpReLU: bias and activation in one pass where the backend can */
    const float *thr = c->arch == SAE_JUMPRELU || c->arch == SAE_JUMPRELU_TRANSCODER ? s->t[T_THRESHOLD].dev : NULL;
    int fused = be->bias_masked_relu && (thr || c->arch == SAE_STANDARD || c->arch == SAE_TRANSCODER ||
                                         c->arch == SAE_SKIP_TRANSCODER);
    if (fused && map && be->bias_masked_relu_map) {
        if (be->bias_masked_relu_map(be, f, b, thr, N, S, map)) goto be_err;
        rc = 1;
        goto done;
    }
    if (fused) {
        if (be->bias_masked_relu(be, f, b, thr, N, S)) goto be_err;
        rc = 0;
        goto done;
    }
    if (be->add_bias(be, f, b, N, S)) goto be_err;
    switch (c->arch) {
    case SAE_GATED:
        /* f = 1[x~ W_enc + b_gate > 0] · ReLU(h) */
        if (!(pi = be->alloc(be, sizeof(float) * (size_t)N * S)) ||
            be->gemm(be, 0, 0, N, S, D, 1.0f, xin, D, s->t[T_W_ENC].dev, S, 0.0f, pi, S) ||
            be->add_bias(be, pi, s->t[T_B_GATE].dev, N, S) || be->masked_relu(be, f, f, NULL, pi, N, S))
            goto be_err;
        break;
    case SAE_JUMPRELU:
    case SAE_JUMPRELU_TRANSCODER:
        if (be->masked_relu(be, f, f, s->t[T_THRESHOLD].dev, NULL, N, S)) goto be_err;
        break;
    case SAE_TOPK: {
        /* Top k of the raw h (× ‖W_dec[i]‖ when rescaling), then ReLU on those; others 0. */
        const int k = c->k;
        if (s->dec_norm && be->scale_cols(be, f, s->dec_norm, N, S)) goto be_err;
        if (!(vals = malloc(sizeof(float) * (size_t)N * k)) || !(idx = malloc(sizeof(int32_t) * (size_t)N * k))) goto oom;
        if (be->topk_rows(be, vals, idx, f, N, S, k)) goto be_err;
        for (size_t i = 0; i < (size_t)N * k; i++)
            if (!(vals[i] > 0.0f)) vals[i] = 0.0f;
        if (be->scatter_rows(be, f, vals, idx, N, S, k)) goto be_err;
        break;
    }
    default:
        if (be->masked_relu(be, f, f, NULL, NULL, N, S)) goto be_err;
    }
    rc = 0;
    goto done;
be_err:
    be_fail(s, "encode", err, errlen);
    goto done;
oom:
    snprintf(err, errlen, "SAE encode: out of memory");
done:
    if (xbuf) be->release(be, xbuf);
    if (pi) be->release(be, pi);
    free(fac);
    free(vals);
    free(idx);
    return rc;
}

int sae_decode(sae *s, const float *f, const float *x, int N, float *out, char *err, size_t errlen)
{
    saed_backend *be = s->be;
    const sae_cfg *c = &s->cfg;
    const int D = c->d_in, S = c->d_sae, O = c->d_out;
    /* Transcoders skip norm_out (their output lives elsewhere); the skip adds x W_skip^T. */
    const int undo_norm = row_norm(c) && !is_transcoder(c->arch), skip = c->arch == SAE_SKIP_TRANSCODER;
    if (N < 0) {
        snprintf(err, errlen, "sae_decode: %d rows", N);
        return -1;
    }
    if ((undo_norm || skip) && !x) {
        snprintf(err, errlen, "sae_decode: %s needs the input x", skip ? "the skip connection" : sae_norm_name(c->norm));
        return -1;
    }
    if (N == 0) return 0;
    float *fbuf = NULL, *fac = NULL;
    const float *fin = f;
    int rc = -1;
    if (s->inv_dec_norm) {
        /* topk rescale: f / ‖W_dec[i]‖ first. */
        if (!(fbuf = be->alloc(be, sizeof(float) * (size_t)N * S)) || be->copy2d(be, fbuf, S, f, S, N, S) ||
            be->scale_cols(be, fbuf, s->inv_dec_norm, N, S))
            goto be_err;
        fin = fbuf;
    }
    /* out (N,O) = f (N,S) · W_dec (S,O) + b_dec */
    if (be->gemm(be, 0, 0, N, O, S, 1.0f, fin, S, s->t[T_W_DEC].dev, O, 0.0f, out, O) ||
        be->add_bias(be, out, s->t[T_B_DEC].dev, N, O))
        goto be_err;
    if (undo_norm) {
        if (!(fac = malloc(sizeof(float) * 4 * (size_t)N))) {
            snprintf(err, errlen, "SAE decode: out of memory");
            goto done;
        }
        if (norm_factors(s, x, N, fac, err, errlen)) goto done;
        if (be->scale_rows(be, out, fac + 2 * (size_t)N, fac + 3 * (size_t)N, N, O)) goto be_err;
    }
    /* out += x (N,D) · W_skip^T, W_skip (O,D) */
    if (skip && be->gemm(be, 0, 1, N, O, D, 1.0f, x, D, s->t[T_W_SKIP].dev, D, 1.0f, out, O)) goto be_err;
    rc = 0;
    goto done;
be_err:
    be_fail(s, "decode", err, errlen);
done:
    if (fbuf) be->release(be, fbuf);
    free(fac);
    return rc;
}

typedef struct sae_act {
    float v;
    int32_t i;
} sae_act;

static int act_cmp(const void *a, const void *b)
{
    const sae_act *x = a, *y = b;
    if (x->v != y->v) return x->v > y->v ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

int sae_encode_sparse(sae *s, const float *x_host, int N, sae_sparse *out, char *err, size_t errlen)
{
    saed_backend *be = s->be;
    const int D = s->cfg.d_in, S = s->cfg.d_sae;
    memset(out, 0, sizeof *out);
    if (N < 0) {
        snprintf(err, errlen, "sae_encode_sparse: %d rows", N);
        return -1;
    }
    out->N = N;
    /* Rows per pass: the dense (R,d_sae) block stays around 64 MiB. */
    size_t wide = (size_t)(S > D ? S : D);
    int R = (int)((16u << 20) / wide);
    if (R < 1) R = 1;
    if (R > N) R = N > 0 ? N : 1;
    float *dx = be->alloc(be, sizeof(float) * (size_t)R * D), *df = be->alloc(be, sizeof(float) * (size_t)R * S);
    float *hf = malloc(sizeof(float) * (size_t)R * S);
    sae_act *row = malloc(sizeof(sae_act) * (size_t)S);
    out->count = calloc((size_t)(N ? N : 1), sizeof(int));
    out->offset = calloc((size_t)(N ? N : 1), sizeof(int));
    size_t cap = 0, used = 0;
    int rc = -1;
    if (!dx || !df || !hf || !row || !out->count || !out->offset) {
        snprintf(err, errlen, "SAE encode: out of memory");
        goto done;
    }
    for (int r0 = 0; r0 < N; r0 += R) {
        int n = N - r0 < R ? N - r0 : R;
        if (be->upload(be, dx, x_host + (size_t)r0 * D, sizeof(float) * (size_t)n * D)) {
            be_fail(s, "encode", err, errlen);
            goto done;
        }
        if (sae_encode(s, dx, n, df, err, errlen)) goto done;
        if (be->download(be, hf, df, sizeof(float) * (size_t)n * S)) {
            be_fail(s, "encode", err, errlen);
            goto done;
        }
        for (int r = 0; r < n; r++) {
            const float *fr = hf + (size_t)r * S;
            int m = 0;
            for (int i = 0; i < S; i++)
                if (fr[i] != 0.0f) row[m++] = (sae_act){fr[i], i};
            qsort(row, (size_t)m, sizeof *row, act_cmp);
            if (used + (size_t)m > cap) {
                size_t nc = cap ? cap : 1024;
                while (nc < used + (size_t)m) nc *= 2;
                int32_t *ni = realloc(out->idx, nc * sizeof(int32_t));
                if (ni) out->idx = ni;
                float *nv = ni ? realloc(out->val, nc * sizeof(float)) : NULL;
                if (nv) out->val = nv;
                if (!ni || !nv) {
                    snprintf(err, errlen, "SAE encode: out of memory");
                    goto done;
                }
                cap = nc;
            }
            if (used > (size_t)0x7fffffff - (size_t)m) {
                snprintf(err, errlen, "SAE encode: more than 2^31 activations; encode fewer rows at a time");
                goto done;
            }
            out->count[r0 + r] = m;
            out->offset[r0 + r] = (int)used;
            for (int j = 0; j < m; j++) {
                out->idx[used + j] = row[j].i;
                out->val[used + j] = row[j].v;
            }
            used += (size_t)m;
        }
    }
    rc = 0;
done:
    if (dx) be->release(be, dx);
    if (df) be->release(be, df);
    free(hf);
    free(row);
    if (rc) sae_sparse_free(out);
    return rc;
}

void sae_sparse_free(sae_sparse *sp)
{
    if (!sp) return;
    free(sp->count);
    free(sp->offset);
    free(sp->idx);
    free(sp->val);
    memset(sp, 0, sizeof *sp);
}

/* ---- export ---- */

static int mkdir_p(const char *dir, char *err, size_t errlen)
{
    char p[4096];
    snprintf(p, sizeof p, "%s", dir);
    for (char *q = p + 1;; q++) {
        int end = *q == '\0';
        if (*q == '/' || end) {
            *q = '\0';
            if (mkdir(p, 0755) && errno != EEXIST) {
                snprintf(err, errlen, "%s: cannot create: %s", p, strerror(errno));
                return -1;
            }
            if (end) break;
            *q = '/';
        }
    }
    return 0;
}

int sae_export(const sae *s, const char *out_dir, int format, const float *log_sparsity, char *err, size_t errlen)
{
    char path[4096];
    char *text = sae_cfg_dump(&s->cfg, format, err, errlen);
    if (!text) return -1;
    if (mkdir_p(out_dir, err, errlen)) {
        free(text);
        return -1;
    }
    snprintf(path, sizeof path, "%s/cfg.json", out_dir);
    FILE *f = fopen(path, "wb");
    int ok = f && fputs(text, f) >= 0 && fputc('\n', f) != EOF;
    if (f && fclose(f)) ok = 0;
    free(text);
    if (!ok) {
        snprintf(err, errlen, "%s: cannot write: %s", path, strerror(errno));
        return -1;
    }
    st_wtensor w[T_N];
    int n = 0;
    for (int k = 0; k < T_N; k++)
        if (s->t[k].ndim) w[n++] = (st_wtensor){tensor_names[k], ST_F32, s->t[k].ndim, s->t[k].shape, s->t[k].host};
    snprintf(path, sizeof path, "%s/sae_weights.safetensors", out_dir);
    if (st_write(path, w, n, NULL, err, errlen)) return -1;
    snprintf(path, sizeof path, "%s/sparsity.safetensors", out_dir);
    if (log_sparsity) {
        int64_t shape[1] = {s->cfg.d_sae};
        st_wtensor sp = {"sparsity", ST_F32, 1, shape, log_sparsity};
        if (st_write(path, &sp, 1, NULL, err, errlen)) return -1;
    } else if (unlink(path) && errno != ENOENT) {
        /* A stale file from an earlier export would be read as this SAE's densities. */
        snprintf(err, errlen, "%s: cannot remove: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}
