/* unit_cpu_kernels.c: the AVX2 kernel set (gpu/cpu_avx2.h) against the portable loops, run
 * through the CPU backend with each set forced in turn (gpu/cpu_kernels.h), on awkward sizes
 * (1, 7, 9, 63, 65 floats: tails of the 8-lane loops and of the 64-bit bitmap words; 768, a
 * model width; 3077, neither) and awkward values (±0, NaN, ±inf, subnormals, |x| past the GELU
 * clamp). The element-wise ops promise the same bits as the portable code; the attention
 * kernels promise cpu_avx512.h's formulas bit for bit (checked against the formula written out
 * here) and agree with the portable path (OpenBLAS, expf) to float rounding. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gpu/backend.h"
#include "gpu/cpu_avx2.h"
#include "gpu/cpu_kernels.h"
#include "tests/t.h"

static const int sizes[] = {1, 7, 8, 9, 63, 64, 65, 768, 3077};

static float *values(size_t n, uint64_t seed)
{
    static const float odd[] = {0.0f, -0.0f, NAN, INFINITY, -INFINITY, 1e-40f, -1e-40f, 30.0f, -30.0f, 1e-20f};
    float *x = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        double u = (double)(seed >> 11) / 9007199254740992.0;
        x[i] = i % 13 == 5 ? odd[(seed >> 3) % 10] : (float)((u - 0.5) * 12.0);
    }
    return x;
}

/* Bit differences between a and b over n floats (NaN payloads included). */
static int differ(const float *a, const float *b, size_t n)
{
    int bad = 0;
    for (size_t i = 0; i < n; i++) bad += memcmp(a + i, b + i, sizeof(float)) != 0;
    return bad;
}

static int avx2_or_skip(void)
{
    if (!cpu_kernels_supported(CPU_K_AVX2)) {
        t_skip("no AVX2+FMA on this processor");
        return 0;
    }
    return 1;
}

/* Runs one backend op under the portable set into out0 and under AVX2 into out1. */
#define BOTH(stmt_into)                                   \
    do {                                                  \
        cpu_kernels_force(CPU_K_PORTABLE);                \
        { float *out = out0; uint64_t *map = map0; (void)map; stmt_into; } \
        cpu_kernels_force(CPU_K_AVX2);                    \
        { float *out = out1; uint64_t *map = map1; (void)map; stmt_into; } \
        cpu_kernels_force(was);                           \
    } while (0)

TEST(cpu_avx2_elementwise_ops_equal_portable_bits)
{
    if (!avx2_or_skip()) return;
    const cpu_kernel_set was = cpu_kernels();
    saed_backend *b = backend_cpu_open();
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
        const int C = sizes[si], N = 5;
        const size_t n = (size_t)N * C, words = ((size_t)C + 63) / 64;
        float *x = values(n, 1 + si), *y = values(n, 100 + si), *w = values(C, 200 + si), *bias = values(C, 300 + si);
        float *out0 = malloc(sizeof(float) * n), *out1 = malloc(sizeof(float) * n);
        uint64_t *map0 = calloc((size_t)N * words, 8), *map1 = calloc((size_t)N * words, 8);
        float *pos = malloc(sizeof(float) * C); /* finite norm weights */
        for (int i = 0; i < C; i++) pos[i] = isfinite(w[i]) ? w[i] : 0.5f;
#define SAME(what, stmt)                                                                       \
        do {                                                                                   \
            BOTH(stmt);                                                                        \
            int bad_ = differ(out0, out1, n) + (int)(memcmp(map0, map1, N * words * 8) != 0);  \
            if (bad_) t_fail(__FILE__, __LINE__, "%s, rows of %d: %d floats differ", what, C, bad_); \
        } while (0)
        SAME("gelu", b->gelu(b, out, x, n));
        SAME("add", b->add(b, out, x, y, n));
        SAME("add_bias", (memcpy(out, x, sizeof(float) * n), b->add_bias(b, out, bias, N, C)));
        SAME("layernorm", b->layernorm(b, out, y, pos, bias, N, C, 1e-5f));
        SAME("rmsnorm", b->rmsnorm(b, out, y, pos, N, C, 1e-6f));
        SAME("rmsnorm without weight", b->rmsnorm(b, out, y, NULL, N, C, 1e-6f));
        SAME("masked_relu", b->masked_relu(b, out, x, NULL, NULL, N, C));
        SAME("masked_relu thr+gate", b->masked_relu(b, out, x, w, y, N, C));
        SAME("bias_masked_relu_map", (memcpy(out, x, sizeof(float) * n), b->bias_masked_relu_map(b, out, bias, NULL, N, C, map)));
        SAME("bias_masked_relu_map thr", (memcpy(out, x, sizeof(float) * n), b->bias_masked_relu_map(b, out, bias, w, N, C, map)));
#undef SAME
        /* the bitmap marks exactly the non-zero floats (independent of either kernel) */
        int wrong = 0;
        for (int r = 0; r < N; r++)
            for (size_t c = 0; c < words * 64; c++) {
                int bit = (int)(map1[r * words + c / 64] >> (c % 64) & 1);
                wrong += bit != (c < (size_t)C && out1[(size_t)r * C + c] != 0.0f);
            }
        CHECK_INT(wrong, 0);
        free(x), free(y), free(w), free(bias), free(out0), free(out1), free(map0), free(map1), free(pos);
    }
    backend_close(b);
}

static float rnd(uint64_t *st) { return (float)((double)(*st = *st * 6364136223846793005ULL + 1) / 1.8e19 - 0.5); }

/* Scores and weighted sums as cpu_avx2.h promises, against the formula written out; rows of
 * four and single rows, Tq < Tk, head widths off the 8- and 16-lane blocks. */
TEST(cpu_avx2_attention_kernels_follow_their_formulas)
{
    if (!avx2_or_skip()) return;
    static const int shapes[][3] = {{7, 11, 64}, {128, 128, 64}, {5, 5, 40}, {1, 9, 64}, {9, 9, 80}, {6, 70, 16}, {3, 3, 7}, {17, 33, 9}};
    uint64_t st = 4242;
    for (size_t c = 0; c < sizeof shapes / sizeof *shapes; c++) {
        int Tq = shapes[c][0], Tk = shapes[c][1], hd = shapes[c][2], ld = hd + 3;
        float *q = malloc(sizeof(float) * Tq * ld), *k = malloc(sizeof(float) * Tk * ld), *v = malloc(sizeof(float) * Tk * ld);
        float *S = malloc(sizeof(float) * Tq * Tk), *P = malloc(sizeof(float) * Tq * Tk), *z = malloc(sizeof(float) * Tq * ld);
        float *kT = malloc(sizeof(float) * hd * ((Tk + 15) / 16 * 16));
        for (int i = 0; i < Tq * ld; i++) q[i] = rnd(&st);
        for (int i = 0; i < Tk * ld; i++) k[i] = rnd(&st), v[i] = rnd(&st);
        cpu_avx2_attn_scores(S, q, ld, k, ld, Tq, Tk, hd, 0.125f, kT);
        /* probabilities above the diagonal NaN: a kernel that read them would return NaN */
        for (int t = 0; t < Tq; t++)
            for (int s = 0; s < Tk; s++) P[t * Tk + s] = s <= Tk - Tq + t ? rnd(&st) + 0.5f : NAN;
        cpu_avx2_attn_values(z, ld, P, v, ld, Tq, Tk, hd);
        int bad_s = 0, bad_z = 0;
        for (int t = 0; t < Tq; t++) {
            for (int s = 0; s <= Tk - Tq + t; s++) {
                float a = 0.0f;
                for (int d = 0; d < hd; d++) a = a + q[t * ld + d] * k[s * ld + d];
                bad_s += memcmp(&(float){a * 0.125f}, &S[t * Tk + s], sizeof a) != 0;
            }
            for (int d = 0; d < hd; d++) {
                float a = 0.0f;
                for (int s = 0; s <= Tk - Tq + t; s++) a = a + P[t * Tk + s] * v[s * ld + d];
                bad_z += memcmp(&a, &z[t * ld + d], sizeof a) != 0;
            }
        }
        CHECK_INT(bad_s, 0);
        CHECK_INT(bad_z, 0);
        /* softmax: each causal row sums to 1 within float rounding, matches expf's softmax to
         * the polynomial's 2e-7 relative error, and is 0 above the diagonal */
        for (int i = 0; i < Tq * Tk; i++) S[i] = rnd(&st) * 8.0f;
        memcpy(P, S, sizeof(float) * Tq * Tk);
        cpu_avx2_attn_softmax(S, Tq, Tk);
        double worst = 0;
        int above = 0;
        for (int t = 0; t < Tq; t++) {
            int last = Tk - Tq + t;
            float mx = P[t * Tk];
            for (int s = 1; s <= last; s++) mx = P[t * Tk + s] > mx ? P[t * Tk + s] : mx;
            double sum = 0;
            for (int s = 0; s <= last; s++) sum += exp((double)P[t * Tk + s] - mx);
            for (int s = 0; s <= last; s++) {
                double want = exp((double)P[t * Tk + s] - mx) / sum;
                double e = fabs(S[t * Tk + s] - want) / want;
                worst = e > worst ? e : worst;
            }
            for (int s = last + 1; s < Tk; s++) above += S[t * Tk + s] != 0.0f;
        }
        CHECK(worst < 1e-6);
        CHECK_INT(above, 0);
        free(q), free(k), free(v), free(S), free(P), free(z), free(kT);
    }
}

/* The whole attention op, AVX2 set against the portable path, with the pattern kept and not,
 * grouped key/value heads, several sequences. */
TEST(cpu_avx2_attention_matches_portable)
{
    if (!avx2_or_skip()) return;
    const cpu_kernel_set was = cpu_kernels();
    saed_backend *b = backend_cpu_open();
    static const int shapes[][5] = {{2, 13, 13, 4, 2}, {1, 1, 9, 2, 2}, {3, 5, 21, 6, 3}, {1, 64, 64, 2, 1}}; /* B Tq Tk NH NKV */
    uint64_t st = 99;
    for (size_t c = 0; c < sizeof shapes / sizeof *shapes; c++) {
        const int B = shapes[c][0], Tq = shapes[c][1], Tk = shapes[c][2], NH = shapes[c][3], NKV = shapes[c][4], hd = 24;
        attn_shape sh = {.B = B, .Tq = Tq, .Tk = Tk, .NH = NH, .NKV = NKV, .hd = hd, .scale = 0.2f};
        const int ldq = NH * hd, ldkv = NKV * hd;
        float *q = malloc(sizeof(float) * B * Tq * ldq), *k = malloc(sizeof(float) * B * Tk * ldkv), *v = malloc(sizeof(float) * B * Tk * ldkv);
        for (int i = 0; i < B * Tq * ldq; i++) q[i] = 4 * rnd(&st);
        for (int i = 0; i < B * Tk * ldkv; i++) k[i] = 4 * rnd(&st), v[i] = rnd(&st);
        size_t nz = (size_t)B * Tq * NH * hd, np = (size_t)B * NH * Tq * Tk;
        float *z[2], *pat[2];
        for (int s = 0; s < 2; s++) {
            cpu_kernels_force(s ? CPU_K_AVX2 : CPU_K_PORTABLE);
            z[s] = malloc(sizeof(float) * nz), pat[s] = malloc(sizeof(float) * np);
            CHECK_INT(b->attention(b, z[s], pat[s], q, ldq, k, v, ldkv, (long)Tk * ldkv, &sh), 0);
            float *z2 = malloc(sizeof(float) * nz);
            CHECK_INT(b->attention(b, z2, NULL, q, ldq, k, v, ldkv, (long)Tk * ldkv, &sh), 0);
            CHECK_INT(differ(z[s], z2, nz), 0); /* keeping the pattern changes nothing */
            free(z2);
        }
        cpu_kernels_force(was);
        /* within 1e-6 + 1e-4·|portable| per value (scores of |s| up to ~20 round to ~1e-6) */
        int off = 0;
        for (size_t i = 0; i < nz; i++) off += !(fabs(z[0][i] - z[1][i]) <= 1e-6 + 1e-4 * fabs(z[0][i]));
        for (size_t i = 0; i < np; i++) off += !(fabs(pat[0][i] - pat[1][i]) <= 1e-6 + 1e-4 * fabs(pat[0][i]));
        if (off) t_fail(__FILE__, __LINE__, "shape %zu: %d values outside 1e-6 + 1e-4·|ref|", c, off);
        free(q), free(k), free(v), free(z[0]), free(z[1]), free(pat[0]), free(pat[1]);
    }
    backend_close(b);
}

TEST(cpu_kernels_env_names_and_refusals)
{
    CHECK_STR(cpu_kernels_name(CPU_K_PORTABLE), "portable");
    CHECK_STR(cpu_kernels_name(CPU_K_AVX2), "avx2");
    CHECK_STR(cpu_kernels_name(CPU_K_AVX512), "avx512");
    CHECK(cpu_kernels_supported(CPU_K_PORTABLE));
    CHECK(cpu_kernels_supported(cpu_kernels())); /* whatever runs is supported */
    CHECK_INT(cpu_kernels_force((cpu_kernel_set)7), -1);
}
