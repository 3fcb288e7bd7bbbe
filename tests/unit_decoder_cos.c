/* unit_decoder_cos.c: dash_decoder_nearest (the decoder-cosine neighbours of
 * /v1/util/sae-topk-by-decoder-cossim) against a brute-force ranking in double, fed in blocks
 * of uneven sizes as live_decoder_nearest feeds it; a NaN row ranks last, a zero query ties
 * everything at 0 (lower index first). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "engine/dashboard.h"
#include "tests/t.h"

#define R 9001
#define DI 8
#define K 40

static double lcg(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(*s >> 11) / 9007199254740992.0 - 0.5;
}

/* Feeds W in blocks of 1000, 4096, then the rest. */
static int nearest_blocks(const float *W, const float *q, int k, int32_t *idx, float *val)
{
    int n = 0, sizes[] = {1000, 4096, R};
    for (int r0 = 0, b = 0; r0 < R; r0 += sizes[b++]) {
        int rows = R - r0 < sizes[b] ? R - r0 : sizes[b];
        n = dash_decoder_nearest(W + (size_t)r0 * DI, rows, DI, r0, q, k, idx, val, n);
    }
    return n;
}

TEST(unit_decoder_cos_matches_brute_force)
{
    float *W = malloc(sizeof(float) * R * DI), q[DI];
    double *c = malloc(sizeof(double) * R);
    int *used = calloc(R, sizeof(int));
    uint64_t s = 42;
    for (int i = 0; i < R * DI; i++) W[i] = (float)lcg(&s);
    for (int j = 0; j < DI; j++) q[j] = (float)lcg(&s);
    W[5 * DI] = NAN;
    for (int i = 0; i < R; i++) {
        double dot = 0, n = 0, qq = 0;
        for (int j = 0; j < DI; j++) {
            dot += (double)W[i * DI + j] * q[j];
            n += (double)W[i * DI + j] * W[i * DI + j];
            qq += (double)q[j] * q[j];
        }
        c[i] = isnan(n) ? -INFINITY : dot / sqrt(n * qq);
    }
    int32_t idx[K];
    float val[K];
    CHECK_INT(nearest_blocks(W, q, K, idx, val), K);
    for (int r = 0; r < K; r++) {
        int b = -1;
        for (int i = 0; i < R; i++)
            if (!used[i] && (b < 0 || c[i] > c[b])) b = i;
        used[b] = 1;
        CHECK_INT(idx[r], b);
        CHECK_NEAR(val[r], c[b], 1e-6);
        if (r) CHECK(val[r] <= val[r - 1]);
    }
    /* Row 9's own direction finds it first, at cosine 1. */
    float q9[DI];
    for (int j = 0; j < DI; j++) q9[j] = 3 * W[9 * DI + j];
    CHECK_INT(nearest_blocks(W, q9, 3, idx, val), 3);
    CHECK_INT(idx[0], 9);
    CHECK_NEAR(val[0], 1.0, 1e-6);
    /* The NaN row comes last among all, as -inf. */
    int32_t *all_i = malloc(sizeof(int32_t) * R);
    float *all_v = malloc(sizeof(float) * R);
    CHECK_INT(nearest_blocks(W, q, R, all_i, all_v), R);
    CHECK_INT(all_i[R - 1], 5);
    CHECK(isinf(all_v[R - 1]) && all_v[R - 1] < 0);
    /* A zero query: every cosine 0 (the 1e-8 floor), ties by lower index. */
    float z[DI] = {0};
    CHECK_INT(nearest_blocks(W, z, 4, idx, val), 4);
    for (int r = 0; r < 4; r++) {
        CHECK_INT(idx[r], r < 5 ? r : r + 1);
        CHECK(val[r] == 0);
    }
    free(all_i);
    free(all_v);
    free(W);
    free(c);
    free(used);
}
