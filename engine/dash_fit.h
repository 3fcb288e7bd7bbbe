/* dash_fit.h: dash_run with its batch fitted to a device's memory. On a backend with memory of
 * its own (a GPU), the batch starts at what the free device memory holds (estimated from the
 * model and SAE shapes) and is halved after any out-of-memory failure, down to one prompt; the
 * results do not depend on the batch size (dash_run.h), so a smaller batch changes only the
 * time. On the CPU it is dash_run. Pure C. */
#ifndef SAED_ENGINE_DASH_FIT_H
#define SAED_ENGINE_DASH_FIT_H

#include "engine/dash_run.h"

/* As dash_run; *batch_used (may be NULL) gets the batch size of the run that returned. */
int dash_run_fit(model *m, sae *s, const int32_t *prompts, int n, int T, const dash_run_opts *o, dash_run_result *res,
                 int *batch_used, char *err, size_t errlen);

/* Device bytes one prompt of T tokens needs in dash_run (activations, attention scores, SAE
 * input and features, encode scratch); for the estimate above and for tests. */
size_t dash_fit_bytes_per_prompt(const model *m, const sae *s, int T);

#endif
