/* mem.h: zeroed host memory for the large arrays a job keeps for its whole length (weights,
 * activations, statistics accumulators). Two costs of plain calloc are avoided: a page that is
 * read before it is written maps the shared zero page, and the later write then copies it and
 * flushes the TLB of every core running the process (an inter-processor interrupt per 4 KB
 * page); and random access into hundreds of MB of 4 KB pages misses the TLB on most rows.
 * So large blocks are 2 MB aligned, advised for transparent huge pages and zeroed by writing,
 * the pages split over the par.c pool (each first write is a fault in which the kernel clears
 * the page). Release with free(). */
#ifndef SAED_GPU_MEM_H
#define SAED_GPU_MEM_H

#include <stddef.h>

/* n·size zeroed bytes (NULL when out of memory or the product overflows). */
void *mem_zalloc(size_t n, size_t size);

#endif
