/* cpu_kernels.h: which set of element-wise, attention and statistics kernels the CPU code
 * runs: portable C (the reference, baseline x86-64), AVX2 + FMA (cpu_avx2.h) or AVX-512
 * (cpu_avx512.h). The best the processor has, unless SAED_CPU_KERNELS=avx512|avx2|portable
 * forces one. The matrix products are chosen apart from this (gpu/blas.h, SAED_GEMM). */
#ifndef SAED_GPU_CPU_KERNELS_H
#define SAED_GPU_CPU_KERNELS_H

#include <stddef.h>

typedef enum { CPU_K_PORTABLE, CPU_K_AVX2, CPU_K_AVX512 } cpu_kernel_set;

/* The set in use (decided once: SAED_CPU_KERNELS, else the best supported; a forced set the
 * processor lacks, or an unknown name, falls back to the best and cpu_kernels_check says so). */
cpu_kernel_set cpu_kernels(void);
/* "portable", "avx2" or "avx512". */
const char *cpu_kernels_name(cpu_kernel_set k);
/* 1 where this processor (and build) can run k. */
int cpu_kernels_supported(cpu_kernel_set k);
/* 0, or -1 with a message naming SAED_CPU_KERNELS when its value is unknown or unsupported
 * here. Programs call it at startup and refuse to run on -1. */
int cpu_kernels_check(char *err, size_t errlen);
/* Tests: switch to k (supported) for the calls that follow; -1 where unsupported. */
int cpu_kernels_force(cpu_kernel_set k);

#endif
