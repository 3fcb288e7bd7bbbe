/* mem.c: see mem.h. */
#include "gpu/mem.h"

#include <stdint.h>   // defines: SIZE_MAX
#include <stdlib.h>   // defines: calloc, posix_memalign
#include <string.h>   // defines: memset
#include <sys/mman.h> // defines: madvise, MADV_HUGEPAGE

#include "gpu/par.h"  // defines: par_for

#define HUGE_BYTES ((size_t)2 << 20)

/* Zeroes 2 MB pages [begin, end) of the block: the first write to each page is a fault in
 * which the kernel clears it, slow enough on a VM (about 1–2 GB/s on the development machine)
 * that the cores share it. */
typedef struct block {
    char *p;
    size_t bytes;
} block;

static void zero_pages(void *ctx, size_t begin, size_t end)
{
    const block *b = ctx;
    size_t e = end * HUGE_BYTES < b->bytes ? end * HUGE_BYTES : b->bytes;
    memset(b->p + begin * HUGE_BYTES, 0, e - begin * HUGE_BYTES);
}

void *mem_zalloc(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size) return NULL;
    size_t bytes = n * size;
    if (bytes < HUGE_BYTES) return calloc(n ? n : 1, size ? size : 1);
    void *p = NULL;
    if (posix_memalign(&p, HUGE_BYTES, bytes)) return NULL;
#ifdef MADV_HUGEPAGE
    /* advisory: where THP is off or the kernel declines, 4 KB pages remain */
    (void)madvise(p, (bytes + 4095) & ~(size_t)4095, MADV_HUGEPAGE);
#endif
    block b = {p, bytes};
    par_for((bytes + HUGE_BYTES - 1) / HUGE_BYTES, 4, zero_pages, &b);
    return p;
}
