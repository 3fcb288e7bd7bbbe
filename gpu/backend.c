/* backend.c: backend selection. The CUDA backend lives in saed-cuda.so next to the saed
 * binary and is dlopen'ed on demand; its absence, or a machine without a driver or device, is
 * an ordinary "not available" answer, never a start-up failure in auto mode. */
#include "gpu/backend.h"

#include <dlfcn.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static saed_backend *cuda_open(int device, char *err, size_t errlen)
{
    char exe[PATH_MAX], lib[PATH_MAX + 32];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        snprintf(err, errlen, "cannot locate the saed binary to find %s", BACKEND_CUDA_LIBRARY);
        return NULL;
    }
    exe[n] = '\0';
    /* Next to the binary; one level up serves binaries in a sub-folder such as build/tests. */
    char *dir = dirname(exe);
    snprintf(lib, sizeof lib, "%s/%s", dir, BACKEND_CUDA_LIBRARY);
    void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (!h && access(lib, F_OK) != 0) {
        snprintf(lib, sizeof lib, "%s/../%s", dir, BACKEND_CUDA_LIBRARY);
        h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    }
    if (!h) {
        snprintf(err, errlen, "CUDA backend not available: %s", dlerror());
        return NULL;
    }
    backend_cuda_open_fn fn = (backend_cuda_open_fn)dlsym(h, BACKEND_CUDA_SYMBOL);
    if (!fn) {
        snprintf(err, errlen, "%s: symbol %s missing", lib, BACKEND_CUDA_SYMBOL);
        dlclose(h);
        return NULL;
    }
    saed_backend *b = fn(device, err, errlen);
    /* The library stays loaded for the life of the process: CUDA's runtime does not support
     * being unloaded and reloaded. */
    return b;
}

saed_backend *backend_open(const char *spec, char *err, size_t errlen)
{
    if (!spec || !strcmp(spec, "cpu")) return backend_cpu_open();
    if (!strcmp(spec, "auto")) {
        saed_backend *b = cuda_open(0, err, errlen);
        return b ? b : backend_cpu_open();
    }
    if (!strncmp(spec, "cuda", 4)) {
        int dev = 0;
        if (spec[4] == ':') {
            char *end;
            long v = strtol(spec + 5, &end, 10);
            if (*end || v < 0 || v > 255 || spec[5] == '\0') {
                snprintf(err, errlen, "device '%s': expected cuda or cuda:N", spec);
                return NULL;
            }
            dev = (int)v;
        } else if (spec[4]) {
            snprintf(err, errlen, "device '%s': expected auto, cpu, cuda or cuda:N", spec);
            return NULL;
        }
        return cuda_open(dev, err, errlen);
    }
    snprintf(err, errlen, "device '%s': expected auto, cpu, cuda or cuda:N", spec);
    return NULL;
}

void backend_blas_env(char **argv)
{
    if (getenv("OPENBLAS_THREAD_TIMEOUT") || setenv("OPENBLAS_THREAD_TIMEOUT", "4", 1)) return;
    fflush(NULL);
    execv("/proc/self/exe", argv);
}

void backend_close(saed_backend *b)
{
    if (b) b->destroy(b);
}

const char *backend_missing_op(const saed_backend *b)
{
#define NEED(op) if (!b->op) return #op
    NEED(alloc); NEED(release); NEED(upload); NEED(download); NEED(gemm); NEED(layernorm); NEED(add_bias);
    NEED(gelu); NEED(add); NEED(center_rows); NEED(embed); NEED(copy2d); NEED(attention); NEED(argmax_rows); NEED(topk_rows);
    NEED(masked_relu); NEED(scale_cols); NEED(scale_rows); NEED(scatter_rows);
#undef NEED
    return NULL;
}
