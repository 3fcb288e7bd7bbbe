/* steer.c: see steer.h. Sums and dot products in double: a coefficient of 0 (additive) or 1
 * (orthogonal) changes no bit of the stream, so such a run equals the unsteered one exactly. */
#include "engine/steer.h"

#include <math.h>    // defines: isfinite
#include <stdio.h>   // defines: snprintf
#include <stdlib.h>  // defines: calloc, realloc, free
#include <string.h>  // defines: memcpy, strcmp

typedef struct steer_vec {
    hook_point hp;
    int col0, n;
    float *v;          /* (n) */
    double coeff;
    double norm2;      /* ‖v‖² */
} steer_vec;

struct steer_set {
    steer_method method;
    steer_vec *vec;
    int nvec;
    hook_req *hooks;   /* one per distinct hook point */
    int nhooks;
    const unsigned char *skip; /* (skip_T) positions left alone, or NULL */
    int skip_T;
};

int steer_method_parse(const char *s)
{
    if (!strcmp(s, "SIMPLE_ADDITIVE")) return STEER_ADDITIVE;
    if (!strcmp(s, "ORTHOGONAL_DECOMP")) return STEER_ORTHOGONAL;
    return -1;
}

const char *steer_method_name(steer_method m) { return m == STEER_ORTHOGONAL ? "ORTHOGONAL_DECOMP" : "SIMPLE_ADDITIVE"; }

steer_set *steer_new(steer_method m)
{
    steer_set *s = calloc(1, sizeof *s);
    if (s) s->method = m;
    return s;
}

void steer_free(steer_set *s)
{
    if (!s) return;
    for (int i = 0; i < s->nvec; i++) free(s->vec[i].v);
    free(s->vec);
    free(s->hooks);
    free(s);
}

static void apply_vec(steer_method m, const steer_vec *sv, float *h)
{
    float *x = h + sv->col0;
    if (m == STEER_ADDITIVE) {
        if (sv->coeff == 0) return;
        for (int j = 0; j < sv->n; j++) x[j] = (float)((double)x[j] + sv->coeff * sv->v[j]);
        return;
    }
    if (!(sv->norm2 > 0) || sv->coeff == 1.0) return; /* no direction, or the identity */
    double dot = 0;
    for (int j = 0; j < sv->n; j++) dot += (double)x[j] * sv->v[j];
    const double f = (sv->coeff - 1.0) * dot / sv->norm2;
    for (int j = 0; j < sv->n; j++) x[j] = (float)((double)x[j] + f * sv->v[j]);
}

void steer_apply_row(const steer_set *s, hook_point hp, float *h, int width)
{
    for (int i = 0; i < s->nvec; i++) {
        const steer_vec *sv = &s->vec[i];
        if (sv->hp.kind == hp.kind && sv->hp.layer == hp.layer && sv->col0 + sv->n <= width) apply_vec(s->method, sv, h);
    }
}

static int on_hook(void *ud, hook_point hp, float *act, int B, int T, int width)
{
    const steer_set *s = ud;
    for (int i = 0; i < s->nvec; i++) {
        const steer_vec *sv = &s->vec[i];
        if (sv->hp.kind == hp.kind && sv->hp.layer == hp.layer && sv->col0 + sv->n > width) return -1;
    }
    for (long r = 0; r < (long)B * T; r++)
        if (!s->skip || T != s->skip_T || !s->skip[r % T]) steer_apply_row(s, hp, act + (size_t)r * width, width);
    return 0;
}

void steer_skip(steer_set *s, const unsigned char *skip, int T)
{
    s->skip = skip;
    s->skip_T = skip ? T : 0;
}

int steer_add(steer_set *s, hook_point hp, int col0, const float *v, int n, double coeff, char *err, size_t errlen)
{
    if (n < 1 || col0 < 0) {
        snprintf(err, errlen, "steering vector: %d columns from %d", n, col0);
        return -1;
    }
    if (!isfinite(coeff)) {
        snprintf(err, errlen, "steering coefficient is not a finite number");
        return -1;
    }
    double norm2 = 0;
    for (int j = 0; j < n; j++) {
        if (!isfinite(v[j])) {
            snprintf(err, errlen, "steering vector holds NaN or Inf at %d", j);
            return -1;
        }
        norm2 += (double)v[j] * v[j];
    }
    steer_vec *nv = realloc(s->vec, sizeof *nv * (size_t)(s->nvec + 1));
    if (!nv) goto oom;
    s->vec = nv;
    steer_vec *sv = &s->vec[s->nvec];
    *sv = (steer_vec){.hp = hp, .col0 = col0, .n = n, .coeff = coeff, .norm2 = norm2, .v = malloc(sizeof(float) * (size_t)n)};
    if (!sv->v) goto oom;
    memcpy(sv->v, v, sizeof(float) * (size_t)n);
    s->nvec++;
    for (int i = 0; i < s->nhooks; i++)
        if (s->hooks[i].hp.kind == hp.kind && s->hooks[i].hp.layer == hp.layer) return 0;
    hook_req *nh = realloc(s->hooks, sizeof *nh * (size_t)(s->nhooks + 1));
    if (!nh) goto oom;
    s->hooks = nh;
    s->hooks[s->nhooks++] = (hook_req){.hp = hp, .fn = on_hook, .ud = s, .write = 1};
    return 0;
oom:
    snprintf(err, errlen, "steering: out of memory");
    return -1;
}

const hook_req *steer_hooks(const steer_set *s, int *nhooks)
{
    *nhooks = s->nhooks;
    return s->hooks;
}
