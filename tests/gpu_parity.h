/* gpu_parity.h: shared state and checks of build/tests/gpu-parity (tests/gpu_parity.c: main and
 * the per-op comparisons; tests/gpu_parity_e2e.c: forward, SAE encodes, a whole dashboard and
 * the precision report). Every check prints one line; any failure makes the exit status 1. */
#ifndef SAED_TESTS_GPU_PARITY_H
#define SAED_TESTS_GPU_PARITY_H

#include <stddef.h>
#include <stdint.h>

#include "gpu/backend.h"

typedef struct gp {
    saed_backend *cpu;  /* the reference */
    saed_backend *dev;  /* the backend under test */
    int checks, failed;
    int quick;          /* smaller shapes (for compute-sanitizer) */
    uint64_t rng;
} gp;

/* Records one check: prints "ok"/"FAIL", the name and the detail. */
void gp_check(gp *g, int ok, const char *name, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Compares got with ref element-wise: |got − ref| ≤ atol + rtol·|ref| (NaN only against NaN);
 * prints the worst deviation and how many elements are bit-identical. Returns 1 when it passes. */
int gp_cmp(gp *g, const char *name, const float *ref, const float *got, size_t n, double atol, double rtol);
int gp_cmp_i32(gp *g, const char *name, const int32_t *ref, const int32_t *got, size_t n);
int gp_cmp_i64(gp *g, const char *name, const int64_t *ref, const int64_t *got, size_t n);

float gp_uniform(gp *g, float lo, float hi);
uint64_t gp_next(gp *g);                              /* 64 random bits */
void *gp_alloc(size_t n);                             /* zero-filled; exits when out of memory */
float *gp_dup(const float *x, size_t n);              /* malloc'd copy */
/* An op's return codes on both backends: 1 when both are 0, else the failure is reported. */
int gp_both_ok(gp *g, const char *name, int rc_cpu, int rc_dev);
float *gp_rand(gp *g, size_t n, float lo, float hi);  /* malloc'd */
/* Device copies: alloc + upload, download; failures are reported and abort the program. */
float *gp_up(gp *g, const float *h, size_t n);
void gp_down(gp *g, float *h, const float *d, size_t n);

/* The JSON values of a .jsonl file, one per line (NULL and *n = 0 when it cannot be read). */
struct json_t **gp_read_jsonl(const char *path, int *n);

void gp_ops(gp *g);        /* every backend op on random inputs */
void gp_ops_rotary(gp *g); /* the rotary families' ops and attention shapes (gpu_parity_rotary.c) */
void gp_families(gp *g);   /* the rotary family checkpoints end to end (gpu_parity_families.c) */
void gp_e2e(gp *g);        /* tiny-a forward, golden SAE encodes, a small dashboard */
void gp_precision(gp *g);  /* tf32 and bf16 errors against the CPU (reported, loosely bounded) */

#endif
