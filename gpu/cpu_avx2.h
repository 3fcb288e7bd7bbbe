/* cpu_avx2.h: AVX2 versions of the CPU backend's element-wise loops and attention (cpu.c),
 * for processors with AVX2 + FMA but no AVX-512 (cpu_kernels.h picks them). The element-wise
 * ones do the same IEEE single-precision operations in the same order as cpu.c's plain loops
 * (no fused multiply-adds: the build turns off contraction and these call none), so their
 * results are the same bits as the portable code's. The attention kernels compute exactly
 * cpu_avx512.h's formulas (sums in the same order, the same exp polynomial), so AVX2 and
 * AVX-512 attention agree bit for bit; both differ from the portable path (OpenBLAS, expf) by
 * float rounding. */
#ifndef SAED_GPU_CPU_AVX2_H
#define SAED_GPU_CPU_AVX2_H

#include <stddef.h>
#include <stdint.h>

/* out[i] = gelu_new(in[i]), cpu.c's formula (tanh from exp_poly). */
void cpu_avx2_gelu(float *out, const float *in, size_t n);
/* out[i] = a[i] + b[i] */
void cpu_avx2_add(float *out, const float *a, const float *b, size_t n);
/* x[i] += bias[i], i < C */
void cpu_avx2_add_row(float *x, const float *bias, int C);
/* o[i] = (x[i] − m)·rstd·w[i] + b[i], i < C */
void cpu_avx2_ln_row(float *o, const float *x, float m, float rstd, const float *w, const float *b, int C);
/* o[i] = x[i]·inv·w[i] (w NULL: x[i]·inv), i < C: RMSNorm's scaling */
void cpu_avx2_scale_row(float *o, const float *x, float inv, const float *w, int C);
/* o[i] = h[i] if h[i] > 0, (thr NULL or h[i] > thr[i]) and (gate NULL or gate[i] > 0), else 0 */
void cpu_avx2_masked_relu_row(float *o, const float *h, const float *thr, const float *gate, int C);
/* x[i] = v > 0 and (thr NULL or v > thr[i]) ? v : 0 with v = x[i] + bias[i]; then, map not
 * NULL, map's ⌈C/64⌉ words: bit i%64 of word i/64 set where x[i]'s bits are not all zero (the
 * SAE encode's epilogue in one pass over the row). */
void cpu_avx2_bias_relu_map_row(float *x, const float *bias, const float *thr, int C, uint64_t *map);

/* cpu_avx512_attn_scores / _softmax / _values (cpu_avx512.h), 8 lanes at a time. kT: scratch
 * of hd × (Tk rounded up to 16). */
void cpu_avx2_attn_scores(float *S, const float *q, int ldq, const float *k, int ldk, int Tq, int Tk, int hd,
                          float scale, float *kT);
void cpu_avx2_attn_softmax(float *S, int Tq, int Tk);
void cpu_avx2_attn_values(float *z, int ldz, const float *P, const float *v, int ldv, int Tq, int Tk, int hd);

#endif
