/* common.h: what the benchmarks share: a monotonic clock, the machine's sgemm rate (the yardstick
 * every FLOP rate is printed against), deterministic random numbers for weights and prompts,
 * and a hook that copies the activation out. Not part of saed itself. */
#ifndef SAED_BENCH_COMMON_H
#define SAED_BENCH_COMMON_H

#include <stdint.h>

#include "engine/hooks.h"

/* Seconds on the monotonic clock. */
double bench_now(void);

/* OpenBLAS's single-precision GEMM rate in GFLOP/s on n×n matrices with its own threads, one
 * per core (bench_sgemm_threads; saed itself runs OpenBLAS one thread per block, gpu/blas.h):
 * sustained, over two seconds of back-to-back runs after one that warms threads and caches up,
 * as the jobs measured against it run for minutes. *burst (when not NULL): the fastest single
 * run's rate, which on a shared VM catches turbo bursts a long job does not see. */
double bench_sgemm_gflops(int n, double *burst);
/* The threads that measurement uses: OPENBLAS_NUM_THREADS when set, else the online cores. */
int bench_sgemm_threads(void);

/* Prints which CPU kernel set (gpu/cpu_kernels.h) and GEMM path (gpu/blas.h) run; 0, or -1
 * with the reason on stderr when SAED_CPU_KERNELS asks for a set this machine cannot run. */
int bench_print_kernels(void);

/* splitmix64: the next 64 random bits of state *s. */
uint64_t bench_next(uint64_t *s);
/* Uniform in [0, 1). */
double bench_uniform(uint64_t *s);
/* Standard normal (Box–Muller). */
float bench_normal(uint64_t *s);

/* qsort comparator: ascending floats. */
int bench_cmp_float(const void *a, const void *b);

/* hook_fn that copies the whole (B,T,width) activation to ud. */
int bench_copy_hook(void *ud, hook_point hp, float *act, int B, int T, int width);

#endif
