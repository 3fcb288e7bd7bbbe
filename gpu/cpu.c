/* cpu.c: the CPU backend, OpenBLAS for GEMMs. It is the fallback when no GPU is present and
 * the reference every other backend is tested against. */
#include <cblas.h>
#include <stdlib.h>

#include "gpu/backend.h"

static int cpu_sgemm(saed_backend *b, int M, int N, int K, const float *A, const float *B, float *C,
                     char *err, size_t errlen)
{
    (void)b;
    (void)err;
    (void)errlen;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N);
    return 0;
}

static void cpu_destroy(saed_backend *b) { free(b); }

saed_backend *backend_cpu_open(void)
{
    saed_backend *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->name = "cpu";
    snprintf(b->device, sizeof b->device, "CPU (OpenBLAS, %d threads)", openblas_get_num_threads());
    b->sgemm = cpu_sgemm;
    b->destroy = cpu_destroy;
    return b;
}
