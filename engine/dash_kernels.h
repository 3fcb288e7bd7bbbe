/* dash_kernels.h: the inner loops that dominate the dashboard's cost, with wide-vector
 * versions picked at run time on x86-64. For the accumulator (dashboard.c): finding the
 * non-zeros of a row of activations, and the Σ f·x_j accumulation of correlated neurons. For
 * the weight-derived fields (dash_weights.c): scanning rows of 50257 logits or 24576 cosines
 * for the few values that can enter a top-k, min/max, and torch.histc counts. Every version
 * does the same IEEE operations in the same order on each element (the build turns off FMA
 * contraction, see Makefile), so results are bit-identical whichever runs. */
#ifndef SAED_ENGINE_DASH_KERNELS_H
#define SAED_ENGINE_DASH_KERNELS_H

#include <stdint.h>

/* One non-zero of a feature: position in the batch and value. */
typedef struct dk_pv {
    int32_t p;
    float v;
} dk_pv;

/* Writes the indices q (ascending) where row[q]'s bit pattern is not +0.0 — any value other
 * than +0.0, including -0.0 and NaN — and returns how many. idx holds n entries. */
int dk_nonzeros(const float *row, int n, int32_t *idx);
/* The same from a bitmap: the i in [0, n) (ascending) whose bit bit0 + i is set, bit b being
 * bit b%64 of words[b/64]. */
int dk_set_bits(const uint64_t *words, int bit0, int n, int32_t *idx);

/* c[k] += e[i].v · x[e[i].p·d + k] for i = 0..m-1 in that order, k < d, in double: the same
 * rounding as that scalar loop. x: (rows, d) float, c: (d) double. */
void dk_accum_rows(double *c, const float *x, int d, const dk_pv *e, int m);

/* Indices i (ascending) with x[i] > hi or x[i] < lo; NaN never. idx holds n entries. */
int dk_outside(const float *x, int n, float lo, float hi, int32_t *idx);

/* Indices i (ascending) with c[i]·s·inv[i] ≥ thr (a float estimate a caller checks exactly). */
int dk_scaled_at_least(const float *c, const float *inv, float s, int n, float thr, int32_t *idx);

/* *lo = min, *hi = max of the non-NaN x[i], as `if (v < *lo) *lo = v; if (v > *hi) *hi = v`
 * from *lo = +inf, *hi = -inf would leave them (the first of equal values kept). */
void dk_minmax(const float *x, int n, float *lo, float *hi);

/* h[b] += the count of non-NaN x[i] in torch.histc bin b of [lo, hi] (dash_histc_bin). */
void dk_histc(const float *x, int n, float lo, float hi, int bins, int64_t *h);

#endif
