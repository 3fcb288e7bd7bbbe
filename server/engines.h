/* engines.h: loaded models (with their tokenizer) and SAEs shared by every compute path of a
 * process — live activations, search, steering and dashboard jobs — so a model is read from
 * disk once and not once per request. Entries are reference counted; unused ones are evicted
 * least recently used first when the total exceeds the memory budget (an entry in use is never
 * evicted, so the budget can be exceeded while requests hold more than it). Concurrent getters
 * of an entry being loaded wait for that one load. Keyed by the directory's real path. */
#ifndef SAED_ENGINES_H
#define SAED_ENGINES_H

#include <stddef.h>

#include "engine/model.h"
#include "engine/sae.h"
#include "engine/tokenizer.h"
#include "gpu/backend.h"

typedef struct engines engines;

/* What a getter receives; read-only and shareable between threads (the engine objects are). */
typedef struct eng_ref {
    model *model;        /* model entries */
    tokenizer *tok;      /* model entries */
    sae *sae;            /* SAE entries, loaded with sae_dashboard_load_opts */
    size_t bytes;
} eng_ref;

/* be is shared by every entry and must outlive the cache. budget in bytes (0 = keep nothing
 * unused). */
engines *engines_new(saed_backend *be, size_t budget);
void engines_free(engines *e);   /* every reference must have been put back */

/* A model directory (HF layout, tokenizer files beside it). NULL with err. */
const eng_ref *engines_model(engines *e, const char *dir, char *err, size_t errlen);
/* A SAELens directory. NULL with err. */
const eng_ref *engines_sae(engines *e, const char *dir, char *err, size_t errlen);
void engines_put(engines *e, const eng_ref *r);

/* For /metrics: entries, bytes held, loads and evictions so far. */
void engines_stats(engines *e, int *entries, size_t *bytes, long long *loads, long long *evictions);

#endif
