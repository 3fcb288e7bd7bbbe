/* dash_fetch.h: brings one batch of dense SAE feature activations (backend memory, rows ×
 * d_sae) into a host buffer for the dashboard statistics. On the CPU backend it is the plain
 * copy it always was. On a device only the non-zeros cross PCIe (the backend's nonzeros op,
 * as CSR) and are scattered into the host buffer, which is kept zero elsewhere by clearing
 * the previous batch's non-zeros instead of the whole buffer. The host matrix is the same,
 * bit for bit: every SAE encode ends in a ReLU-like step (backend masked_relu, or top-k's
 * scatter of values > 0), so each entry is either > 0 or exactly +0. Pure C. */
#ifndef SAED_ENGINE_DASH_FETCH_H
#define SAED_ENGINE_DASH_FETCH_H

#include <stddef.h>

#include "gpu/backend.h"

typedef struct dash_fetch dash_fetch;

/* For batches of up to rows_max rows of d_sae features. NULL when out of memory. */
dash_fetch *dash_fetch_new(saed_backend *be, size_t rows_max, int d_sae);
void dash_fetch_free(dash_fetch *f);
/* host (rows, d_sae) = dev (rows, d_sae). Always pass the same host buffer (of rows_max rows):
 * on a device its zeros are maintained across calls. 0, or -1 with err. */
int dash_fetch_run(dash_fetch *f, const float *dev, size_t rows, float *host, char *err, size_t errlen);
/* Bytes that crossed from the backend so far (dense copies on the CPU, CSR on a device). */
size_t dash_fetch_bytes(const dash_fetch *f);

#endif
