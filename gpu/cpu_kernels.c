/* cpu_kernels.c: see cpu_kernels.h. */
#include "gpu/cpu_kernels.h"

#include <pthread.h> // defines: pthread_once
#include <stdio.h>   // defines: snprintf
#include <stdlib.h>  // defines: getenv
#include <string.h>  // defines: strcmp

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int has[3];
static int chosen;            /* cpu_kernel_set; read by every kernel call, written once (tests: force) */
static const char *bad_env;   /* SAED_CPU_KERNELS's value when refused */
static int bad_unsupported;

static const char *const names[3] = {"portable", "avx2", "avx512"};

static void probe(void)
{
    has[CPU_K_PORTABLE] = 1;
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
    __builtin_cpu_init();
    has[CPU_K_AVX2] = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    has[CPU_K_AVX512] = __builtin_cpu_supports("avx512f");
#endif
    int best = has[CPU_K_AVX512] ? CPU_K_AVX512 : has[CPU_K_AVX2] ? CPU_K_AVX2 : CPU_K_PORTABLE;
    chosen = best;
    const char *e = getenv("SAED_CPU_KERNELS");
    if (!e || !*e) return;
    for (int k = 0; k < 3; k++)
        if (!strcmp(e, names[k])) {
            if (has[k]) chosen = k;
            else bad_env = e, bad_unsupported = 1;
            return;
        }
    bad_env = e;
}

cpu_kernel_set cpu_kernels(void)
{
    pthread_once(&once, probe);
    return (cpu_kernel_set)__atomic_load_n(&chosen, __ATOMIC_RELAXED);
}

const char *cpu_kernels_name(cpu_kernel_set k) { return (unsigned)k < 3 ? names[k] : "?"; }

int cpu_kernels_supported(cpu_kernel_set k)
{
    pthread_once(&once, probe);
    return (unsigned)k < 3 && has[k];
}

int cpu_kernels_check(char *err, size_t errlen)
{
    pthread_once(&once, probe);
    if (!bad_env) return 0;
    if (bad_unsupported)
        snprintf(err, errlen, "SAED_CPU_KERNELS: '%s' is not supported by this processor (best available: %s)",
                 bad_env, names[has[CPU_K_AVX512] ? 2 : has[CPU_K_AVX2] ? 1 : 0]);
    else snprintf(err, errlen, "SAED_CPU_KERNELS: '%s' is not one of avx512, avx2, portable", bad_env);
    return -1;
}

int cpu_kernels_force(cpu_kernel_set k)
{
    if (!cpu_kernels_supported(k)) return -1;
    __atomic_store_n(&chosen, (int)k, __ATOMIC_RELAXED);
    return 0;
}
