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

/* saed-cuda.so next to the binary, or one level up (binaries in a sub-folder such as
 * build/tests); NULL with err. */
static void *cuda_library(char *err, size_t errlen)
{
    char exe[PATH_MAX], lib[PATH_MAX + 32];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        snprintf(err, errlen, "cannot locate the saed binary to find %s", BACKEND_CUDA_LIBRARY);
        return NULL;
    }
    exe[n] = '\0';
    char *dir = dirname(exe);
    snprintf(lib, sizeof lib, "%s/%s", dir, BACKEND_CUDA_LIBRARY);
    void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (!h && access(lib, F_OK) != 0) {
        snprintf(lib, sizeof lib, "%s/../%s", dir, BACKEND_CUDA_LIBRARY);
        h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    }
    if (!h) {
        /* dlerror names the file with its directory: keep the machine's paths out of messages
         * that reach API clients (a job's lastError) */
        const char *e = dlerror(), *at = e ? strstr(e, lib) : NULL;
        if (at) snprintf(err, errlen, "CUDA backend not available: %s%s", BACKEND_CUDA_LIBRARY, at + strlen(lib));
        else snprintf(err, errlen, "CUDA backend not available: %s", e ? e : "dlopen failed");
    }
    /* The library stays loaded for the life of the process (dlopen counts references; nothing
     * closes it): CUDA's runtime does not support being unloaded and reloaded. */
    return h;
}

/* dev < 0: device -dev-1 modulo the number of devices (a worker slot). */
static saed_backend *cuda_open(int dev, char *err, size_t errlen)
{
    char scratch[8];
    if (!err || !errlen) {
        err = scratch; /* callers that do not want the reason */
        errlen = sizeof scratch;
    }
    void *h = cuda_library(err, errlen);
    if (!h) return NULL;
    backend_cuda_open_fn fn = (backend_cuda_open_fn)dlsym(h, BACKEND_CUDA_SYMBOL);
    if (!fn) {
        snprintf(err, errlen, "%s: symbol %s missing", BACKEND_CUDA_LIBRARY, BACKEND_CUDA_SYMBOL);
        return NULL;
    }
    if (dev < 0) {
        backend_cuda_count_fn count = (backend_cuda_count_fn)dlsym(h, BACKEND_CUDA_COUNT_SYMBOL);
        int n = count ? count() : 1;
        dev = n > 0 ? (-dev - 1) % n : 0;
    }
    saed_backend *b = fn(dev, err, errlen);
    const char *missing = b ? backend_missing_op(b) : NULL;
    if (missing) {
        snprintf(err, errlen, "%s lacks the %s op", BACKEND_CUDA_LIBRARY, missing);
        b->destroy(b);
        b = NULL;
    }
    return b;
}

/* 0 cpu, 1 auto, 2 cuda (device in *dev); -1 with err. */
static int parse_spec(const char *spec, int *dev, char *err, size_t errlen)
{
    *dev = 0;
    if (!spec || !strcmp(spec, "cpu")) return 0;
    if (!strcmp(spec, "auto")) return 1;
    if (!strncmp(spec, "cuda", 4)) {
        if (spec[4] == '\0') return 2;
        if (spec[4] == ':') {
            char *end;
            long v = strtol(spec + 5, &end, 10);
            if (*end || v < 0 || v > 255 || spec[5] < '0' || spec[5] > '9') {
                snprintf(err, errlen, "device '%s': expected cuda or cuda:N (N 0-255)", spec);
                return -1;
            }
            *dev = (int)v;
            return 2;
        }
    }
    snprintf(err, errlen, "device '%s': expected auto, cpu, cuda or cuda:N", spec);
    return -1;
}

int backend_spec_check(const char *spec, char *err, size_t errlen)
{
    int dev;
    return parse_spec(spec, &dev, err, errlen) < 0 ? -1 : 0;
}

saed_backend *backend_open_slot(const char *spec, int slot, char *err, size_t errlen)
{
    int dev;
    if (err && errlen) err[0] = '\0';
    if (slot < 0) slot = 0;
    switch (parse_spec(spec, &dev, err, errlen)) {
    case 0: return backend_cpu_open();
    case 1: {
        saed_backend *b = cuda_open(-slot - 1, err, errlen);
        return b ? b : backend_cpu_open();
    }
    case 2: return cuda_open(spec[4] == ':' ? dev : -slot - 1, err, errlen);
    default: return NULL;
    }
}

saed_backend *backend_open(const char *spec, char *err, size_t errlen)
{
    return backend_open_slot(spec, 0, err, errlen);
}

int backend_precision_parse(const char *s, backend_precision *out)
{
    static const char *const names[] = {"fp32", "tf32", "bf16"};
    for (int i = 0; s && i < 3; i++)
        if (!strcmp(s, names[i])) {
            *out = (backend_precision)i;
            return 0;
        }
    return -1;
}

const char *backend_precision_name(backend_precision p)
{
    return p == BACKEND_TF32 ? "tf32" : p == BACKEND_BF16 ? "bf16" : "fp32";
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
    NEED(masked_relu); NEED(scale_cols); NEED(scale_rows); NEED(scatter_rows); NEED(nonzeros);
#undef NEED
    return NULL;
}
