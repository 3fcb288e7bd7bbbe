/* dash_fetch.c: see dash_fetch.h. */
#include "engine/dash_fetch.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct dash_fetch {
    saed_backend *be;
    size_t rows_max;
    int d_sae;
    int64_t *rowptr;      /* (rows_max + 1): the last batch's CSR */
    int32_t *cols;
    float *vals;
    size_t cap;
    size_t last_rows;     /* rows of the last batch, whose non-zeros are in host */
    const float *host;    /* the buffer being maintained; NULL before the first call */
    size_t bytes;
};

dash_fetch *dash_fetch_new(saed_backend *be, size_t rows_max, int d_sae)
{
    dash_fetch *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->be = be;
    f->rows_max = rows_max;
    f->d_sae = d_sae;
    if (!be->host_memory) {
        /* room for an L0 of 64 to start with; grown to what a batch needs */
        f->cap = rows_max * 64 + 1;
        f->rowptr = calloc(rows_max + 1, sizeof *f->rowptr);
        f->cols = malloc(f->cap * sizeof *f->cols);
        f->vals = malloc(f->cap * sizeof *f->vals);
        if (!f->rowptr || !f->cols || !f->vals) {
            dash_fetch_free(f);
            return NULL;
        }
    }
    return f;
}

void dash_fetch_free(dash_fetch *f)
{
    if (!f) return;
    free(f->rowptr);
    free(f->cols);
    free(f->vals);
    free(f);
}

size_t dash_fetch_bytes(const dash_fetch *f) { return f->bytes; }

int dash_fetch_run(dash_fetch *f, const float *dev, size_t rows, float *host, char *err, size_t errlen)
{
    saed_backend *be = f->be;
    const size_t S = (size_t)f->d_sae;
    if (rows > f->rows_max) {
        snprintf(err, errlen, "feature fetch: %zu rows for a buffer of %zu", rows, f->rows_max);
        return -1;
    }
    if (be->host_memory) {
        f->bytes += sizeof(float) * rows * S;
        if (be->download(be, host, dev, sizeof(float) * rows * S)) {
            snprintf(err, errlen, "feature fetch: %s", backend_error(be));
            return -1;
        }
        return 0;
    }
    if (host != f->host) {
        memset(host, 0, sizeof(float) * f->rows_max * S);
        f->host = host;
        f->last_rows = 0;
    }
    /* clear what the last batch wrote: the buffer is all zeros again */
    for (size_t r = 0; r < f->last_rows; r++)
        for (int64_t i = f->rowptr[r]; i < f->rowptr[r + 1]; i++) host[r * S + (size_t)f->cols[i]] = 0.0f;
    f->last_rows = 0;
    for (int attempt = 0;; attempt++) {
        if (be->nonzeros(be, f->rowptr, f->cols, f->vals, f->cap, dev, (int)rows, (int)S, 0, (int)S)) {
            snprintf(err, errlen, "feature fetch: %s", backend_error(be));
            return -1;
        }
        size_t n = (size_t)f->rowptr[rows];
        if (n <= f->cap) break;
        if (attempt) { /* the count cannot change between two calls on the same data */
            snprintf(err, errlen, "feature fetch: non-zero count changed between calls");
            return -1;
        }
        size_t cap = n + n / 4;
        int32_t *c = realloc(f->cols, cap * sizeof *c);
        if (c) f->cols = c;
        float *v = realloc(f->vals, cap * sizeof *v);
        if (v) f->vals = v;
        if (!c || !v) {
            snprintf(err, errlen, "feature fetch: out of memory for %zu non-zeros", n);
            return -1;
        }
        f->cap = cap;
    }
    for (size_t r = 0; r < rows; r++)
        for (int64_t i = f->rowptr[r]; i < f->rowptr[r + 1]; i++) host[r * S + (size_t)f->cols[i]] = f->vals[i];
    f->last_rows = rows;
    f->bytes += sizeof(int64_t) * rows + (sizeof(int32_t) + sizeof(float)) * (size_t)f->rowptr[rows];
    return 0;
}
