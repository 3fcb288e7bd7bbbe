/* mem.c: see mem.h. */
#include "gpu/mem.h"

#include <stdint.h>   // defines: SIZE_MAX
#include <stdlib.h>   // defines: calloc, posix_memalign
#include <string.h>   // defines: memset
#include <sys/mman.h> // defines: madvise, MADV_HUGEPAGE

#define HUGE_BYTES ((size_t)2 << 20)

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
    memset(p, 0, bytes);
    return p;
}
