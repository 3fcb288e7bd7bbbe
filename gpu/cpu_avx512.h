/* cpu_avx512.h: AVX-512 versions of the CPU backend's element-wise loops (cpu.c), used when the
 * processor has AVX-512F (cpu_avx512_usable). Each does the same IEEE single-precision
 * operations in the same order as cpu.c's plain loop for every element (the build turns off
 * FMA contraction), so the results are the same bits; only the speed differs. The plain
 * loops are the reference and the fallback. */
#ifndef SAED_GPU_CPU_AVX512_H
#define SAED_GPU_CPU_AVX512_H

#include <stddef.h>

int cpu_avx512_usable(void);

/* out[i] = gelu_new(in[i]) for i in [0, n), cpu.c's formula (exp from a degree-6 polynomial). */
void cpu_avx512_gelu(float *out, const float *in, size_t n);
/* out[i] = a[i] + b[i] */
void cpu_avx512_add(float *out, const float *a, const float *b, size_t n);
/* x[i] += bias[i], i < C */
void cpu_avx512_add_row(float *x, const float *bias, int C);
/* o[i] = (x[i] − m)·rstd·w[i] + b[i], i < C */
void cpu_avx512_ln_row(float *o, const float *x, float m, float rstd, const float *w, const float *b, int C);
/* o[i] = h[i] if h[i] > 0, (thr NULL or h[i] > thr[i]) and (gate NULL or gate[i] > 0), else 0 */
void cpu_avx512_masked_relu_row(float *o, const float *h, const float *thr, const float *gate, int C);

#endif
