/* common.c: see common.h. */
#include "bench/common.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gpu/blas.h"        // defines: blas_fused
#include "gpu/cpu_kernels.h" // defines: cpu_kernels, cpu_kernels_check
#include "gpu/detgemm.h"     // defines: detgemm_fma

#define SGEMM_SECONDS 2.0

double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int bench_sgemm_threads(void)
{
    const char *env = getenv("OPENBLAS_NUM_THREADS");
    long n = env && atoi(env) > 0 ? atoi(env) : sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

double bench_sgemm_gflops(int n, double *burst)
{
    int before = openblas_get_num_threads();
    openblas_set_num_threads(bench_sgemm_threads());
    float *A = malloc(sizeof(float) * n * n), *B = malloc(sizeof(float) * n * n), *C = malloc(sizeof(float) * n * n);
    for (int i = 0; i < n * n; i++) {
        A[i] = (float)(i % 7) * 0.1f;
        B[i] = (float)(i % 5) * 0.1f;
    }
    /* the first run warms up threads and caches; then back to back for SGEMM_SECONDS */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, A, n, B, n, 0.0f, C, n);
    double best = 1e9, t0 = bench_now(), t = t0;
    int runs = 0;
    while (runs < 3 || t - t0 < SGEMM_SECONDS) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, A, n, B, n, 0.0f, C, n);
        double t1 = bench_now();
        if (t1 - t < best) best = t1 - t;
        t = t1;
        runs++;
    }
    free(A);
    free(B);
    free(C);
    openblas_set_num_threads(before);
    const double flop = 2.0 * n * (double)n * n;
    if (burst) *burst = flop / best / 1e9;
    return flop * runs / (t - t0) / 1e9;
}

uint64_t bench_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

double bench_uniform(uint64_t *s)
{
    return (double)(bench_next(s) >> 11) / 9007199254740992.0;
}

float bench_normal(uint64_t *s)
{
    double u1 = ((double)(bench_next(s) >> 11) + 1.0) / 9007199254740993.0, u2 = bench_uniform(s);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

int bench_cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

int bench_copy_hook(void *ud, hook_point hp, float *act, int B, int T, int width)
{
    (void)hp;
    memcpy(ud, act, sizeof(float) * (size_t)B * T * width);
    return 0;
}

int bench_print_kernels(void)
{
    char err[256];
    if (cpu_kernels_check(err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    printf("kernels: %s products (SAED_GEMM), %s element-wise, attention and statistics kernels (SAED_CPU_KERNELS)\n",
           blas_fused() ? (detgemm_fma() ? "detgemm AVX2+FMA" : "detgemm portable") : "OpenBLAS",
           cpu_kernels_name(cpu_kernels()));
    return 0;
}
