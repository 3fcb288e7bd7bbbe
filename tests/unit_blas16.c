/* unit_blas16.c: products with 16-bit weights (gpu/blas16.c) against float32 products of the
 * widened weights, and the widening against safetensors' converters on every 16-bit value. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/safetensors.h"
#include "gpu/blas.h"
#include "gpu/blas16.h"
#include "tests/t.h"

TEST(blas16_widening_is_exact_for_every_value)
{
    uint16_t *h = malloc(sizeof(uint16_t) * 65536);
    float *bf = malloc(sizeof(float) * 65536), *f16 = malloc(sizeof(float) * 65536);
    for (int i = 0; i < 65536; i++) h[i] = (uint16_t)i;
    blas_widen16(bf, h, 65536, 1);
    blas_widen16(f16, h, 65536, 0);
    int bad_bf = 0, bad_f16 = 0;
    for (int i = 0; i < 65536; i++) {
        float a = st_bf16_to_f32(h[i]), b = st_f16_to_f32(h[i]);
        /* bitwise: NaNs keep their payload, -0 stays -0 */
        bad_bf += memcmp(&a, &bf[i], 4) != 0;
        bad_f16 += memcmp(&b, &f16[i], 4) != 0;
    }
    CHECK_INT(bad_bf, 0);
    CHECK_INT(bad_f16, 0);
    free(h);
    free(bf);
    free(f16);
}

static uint16_t to_bf16(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

TEST(blas16_product_equals_float32_product)
{
    /* N not a multiple of the 64-row blocks; M = 1 (sgemv) and M = 37; beta 0 and 1 */
    const int N = 150, K = 96, Ms[2] = {1, 37};
    uint64_t s = 12345;
    uint16_t *w = malloc(sizeof(uint16_t) * N * K);
    float *wf = malloc(sizeof(float) * N * K), *a = malloc(sizeof(float) * 37 * K);
    for (int i = 0; i < N * K; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        w[i] = to_bf16((float)((int64_t)(s >> 33) - (1ll << 30)) / (float)(1ll << 30));
    }
    blas_widen16(wf, w, (size_t)N * K, 1);
    for (int i = 0; i < 37 * K; i++) a[i] = (float)((i * 7919) % 201 - 100) / 100.0f;
    for (int mi = 0; mi < 2; mi++)
        for (int beta = 0; beta < 2; beta++) {
            int M = Ms[mi];
            float *c1 = malloc(sizeof(float) * M * N), *c2 = malloc(sizeof(float) * M * N);
            for (int i = 0; i < M * N; i++) c1[i] = c2[i] = (float)(i % 13) * 0.25f;
            CHECK_INT(blas_sgemm_w16(M, N, K, a, K, w, 1, (float)beta, c1, N), 0);
            blas_sgemm(0, 1, M, N, K, 1.0f, a, K, wf, K, (float)beta, c2, N);
            double worst = 0;
            for (int i = 0; i < M * N; i++) worst = fabs(c1[i] - c2[i]) > worst ? fabs(c1[i] - c2[i]) : worst;
            CHECK(worst <= 1e-5);
            free(c1);
            free(c2);
        }
    free(w);
    free(wf);
    free(a);
}
