/* sample.c: see sample.h. The generator is xoshiro256** seeded through splitmix64 (both public
 * domain algorithms by Vigna et al.), written here from their definitions. */
#include "engine/sample.h"

#include <math.h>    // defines: exp, log, isfinite
#include <string.h>  // defines: memcpy

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void sample_rng_seed(sample_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

uint64_t sample_rng_next(sample_rng *r)
{
    uint64_t *s = r->s;
    const uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

double sample_rng_uniform(sample_rng *r) { return (double)(sample_rng_next(r) >> 11) * 0x1.0p-53; }

uint64_t sample_seed_from_double(double seed)
{
    if (seed == 0) seed = 0; /* −0 → +0 */
    uint64_t bits;
    memcpy(&bits, &seed, sizeof bits);
    return bits;
}

int sample_next(const float *logits, int V, const int32_t *counts, double freq_penalty, double temperature,
                sample_rng *r, double *z)
{
    for (int i = 0; i < V; i++) z[i] = (double)logits[i] - (counts && counts[i] ? freq_penalty * counts[i] : 0.0);
    int best = 0;
    for (int i = 1; i < V; i++)
        if (z[i] > z[best]) best = i;
    if (!(temperature > 0)) return best;
    /* softmax(z / T) with the maximum subtracted first; one uniform draw, inverse CDF. */
    double sum = 0, zmax = z[best];
    for (int i = 0; i < V; i++) sum += (z[i] = exp((z[i] - zmax) / temperature));
    double u = sample_rng_uniform(r) * sum, acc = 0;
    for (int i = 0; i < V; i++) {
        acc += z[i];
        if (acc > u) return i;
    }
    return best; /* rounding left u at the very top: the largest weight is as good as any */
}

void sample_log_softmax(const float *logits, int V, float *out)
{
    double m = logits[0];
    for (int i = 1; i < V; i++)
        if (logits[i] > m) m = logits[i];
    double s = 0;
    for (int i = 0; i < V; i++) s += exp((double)logits[i] - m);
    const double lse = m + log(s);
    for (int i = 0; i < V; i++) out[i] = (float)((double)logits[i] - lse);
}

int sample_top_k(const float *x, int V, int k, int32_t *idx)
{
    if (k > V) k = V;
    if (k <= 0) return 0;
    int n = 0;
    /* Insertion into a short sorted list: k is at most a few dozen. */
    for (int i = 0; i < V; i++) {
        if (n == k && !(x[i] > x[idx[n - 1]])) continue;
        int j = n < k ? n++ : n - 1;
        while (j > 0 && x[i] > x[idx[j - 1]]) {
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = i;
    }
    return n;
}
