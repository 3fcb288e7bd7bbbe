/* cpu_avx512.h: AVX-512 versions of the CPU backend's element-wise loops (cpu.c), used when the
 * processor has AVX-512F (cpu_avx512_usable). Each does the same IEEE single-precision
 * operations in the same order as cpu.c's plain loop for every element (the build turns off
 * FMA contraction), so the results are the same bits; only the speed differs. The plain
 * loops are the reference and the fallback. */
#ifndef SAED_GPU_CPU_AVX512_H
#define SAED_GPU_CPU_AVX512_H

#include <stddef.h>
#include <stdint.h>

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
/* map (⌈C/64⌉ words): bit i%64 of word i/64 set where x[i]'s bits are not all zero, i < C;
 * the unused high bits of the last word are 0. */
void cpu_avx512_nonzero_bits(const float *x, int C, uint64_t *map);

/* Causal attention scores of one head: S[t][s] = (Σ_d q[t][d]·k[s][d], d in order)·scale for
 * s ≤ Tk − Tq + t (the query's absolute position); entries above are left for the softmax to
 * zero. q rows ldq apart, k rows ldk apart; kT: scratch of hd × (Tk rounded up to 16). */
void cpu_avx512_attn_scores(float *S, const float *q, int ldq, const float *k, int ldk, int Tq, int Tk, int hd,
                            float scale, float *kT);
/* Causal softmax of the scores in place, rows Tk apart: p = exp(x − max) (exp from the
 * polynomial of cpu.c's GELU, inputs below −87 taken as −87: a relative error of 2e-7 next to
 * expf's 6e-8), normalized by their sum in double (in order); 0 above the diagonal. */
void cpu_avx512_attn_softmax(float *S, int Tq, int Tk);
/* z[t][d] = Σ_{s ≤ last(t)} P[t][s]·v[s][d], s in order; v rows ldv apart, z rows ldz apart. */
void cpu_avx512_attn_values(float *z, int ldz, const float *P, const float *v, int ldv, int Tq, int Tk, int hd);

#endif
