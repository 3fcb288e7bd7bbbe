/* backend.h: the compute backend interface the engine calls for heavy math. Two
 * implementations: cpu.c (OpenBLAS + plain C; also the reference for tests) and the CUDA one
 * (cuda_backend.cu, cuBLAS + kernels), built as a separate shared object and loaded at run time
 * so that saed starts on machines with no GPU, driver or CUDA libraries.
 * Knows nothing of HTTP or SQL. Grows op by op as the engine needs them. */
#ifndef SAED_GPU_BACKEND_H
#define SAED_GPU_BACKEND_H

#include <stddef.h>

typedef struct saed_backend saed_backend;

struct saed_backend {
    const char *name;       /* "cpu" or "cuda" */
    char device[160];       /* human description, e.g. "NVIDIA H100 (sm_90, 79 GiB)" */
    /* C (M,N) = A (M,K) · B (K,N), all row-major float32 in host memory. 0 or -1 with err. */
    int (*sgemm)(saed_backend *b, int M, int N, int K, const float *A, const float *B, float *C,
                 char *err, size_t errlen);
    void (*destroy)(saed_backend *b);
    void *impl;
};

/* spec: "auto" (CUDA when a device and driver are present, else CPU), "cpu", "cuda" or
 * "cuda:N". NULL with err when the requested backend cannot be opened. */
saed_backend *backend_open(const char *spec, char *err, size_t errlen);
saed_backend *backend_cpu_open(void);
void backend_close(saed_backend *b);

/* Entry point exported by the CUDA shared object (saed-cuda.so). */
typedef saed_backend *(*backend_cuda_open_fn)(int device, char *err, size_t errlen);
#define BACKEND_CUDA_SYMBOL "saed_cuda_backend_open"
#define BACKEND_CUDA_LIBRARY "saed-cuda.so"

#endif
