/* par.h: a tiny fork-join pool for the CPU backend: the blocks of large matrix products
 * (blas.h; OpenBLAS itself runs one thread per call) and the row- and element-wise work
 * (layernorm, GELU, attention heads, statistics). Calls from several threads at once are safe:
 * a caller that finds the pool busy runs its loop inline instead of queueing. */
#ifndef SAED_GPU_PAR_H
#define SAED_GPU_PAR_H

#include <stddef.h>

/* fn(ctx, begin, end) over [0, n) split into contiguous ranges of at least grain items. */
void par_for(size_t n, size_t grain, void (*fn)(void *ctx, size_t begin, size_t end), void *ctx);
int par_threads(void);

#endif
