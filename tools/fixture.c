/* fixture.c: see fixture.h. Weight scales follow the shared tiny reference models so that
 * attention patterns and GELU are non-trivial: wte 0.05, wpe 0.02, c_attn and c_fc 1/sqrt(d),
 * projections 0.02, LayerNorm weights 1 ± 0.1 and biases 0.02. */
#include "tools/fixture.h"

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
