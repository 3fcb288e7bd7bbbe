/* fcache.h: the in-memory cache of GET /api/feature responses. Serving a feature from
 * PostgreSQL costs a round trip and a JSON build of tens of kilobytes; the cache answers a
 * repeated request from memory.
 *
 * Correctness across processes: every write to the rows a feature response is built from
 * (features, activations, explanations, explanation_scores, saes, source_sets, models) sends
 * NOTIFY saed_features with the SAE it touched (migrations/0002_read_api.sql), whichever
 * process made it (`saed worker` elsewhere, `saed import-explanations`). A listener thread
 * here LISTENs and drops that SAE's entries. The cache only stores and serves while that
 * connection is up; losing it drops everything. A response read from the database is stored
 * only if no invalidation of its SAE arrived since just before the read began (a ticket taken
 * then), so a read racing a commit never stores the old rows. Entries also expire after
 * FCACHE_TTL_S seconds, a safety net for writes that fire no trigger (TRUNCATE, manual
 * changes with triggers disabled).
 *
 * Memory: a byte budget (SAED_FEATURE_CACHE) over keys and bodies, least recently used
 * evicted first. Bodies are reference counted, so an evicted body being sent stays alive.
 * Thread-safe; one mutex, held only for table operations (never during I/O). */
#ifndef SAED_FCACHE_H
#define SAED_FCACHE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define FCACHE_TTL_S 60

typedef struct fcache fcache;
typedef struct fcache_body fcache_body;

/* What fcache_put needs to know that nothing changed since the read began. */
typedef struct fcache_ticket {
    int ok;                 /* 0: the cache is off or not listening; do not store */
    uint64_t gen[3];        /* global, model, SAE generations when taken */
    void *rec[2];           /* the model's and the SAE's generation records; NULL: none yet */
    uint64_t unknown;       /* the epoch of keys without a record when taken */
} fcache_ticket;

/* budget_bytes 0 = no cache (NULL). conninfo: where to LISTEN (the listener thread starts
 * here and retries with backoff while the database is unreachable). */
fcache *fcache_create(size_t budget_bytes, const char *conninfo);
void fcache_destroy(fcache *c);

/* Keys are "{modelId}/{saeId}/{index}" (ids cannot contain '/'); model and sae must be the
 * key's first two parts. NULL = miss. A hit is released with fcache_release after use. */
const fcache_body *fcache_get(fcache *c, const char *key);
const char *fcache_data(const fcache_body *b);
size_t fcache_len(const fcache_body *b);
void fcache_release(const fcache_body *b);

/* Before reading the database for a key of (model, sae). Allocates nothing: the generation
 * records of a model and an SAE are made by the first fcache_put for them, so requests for
 * ids that do not exist leave no trace. */
void fcache_begin(fcache *c, const char *model, const char *sae, fcache_ticket *t);
/* Stores a copy of body unless an invalidation of the SAE (or the cache) came after t. */
void fcache_put(fcache *c, const fcache_ticket *t, const char *key, const char *body, size_t len);

/* Drops one SAE's entries (sae != NULL), a model's (sae NULL), or all (model NULL). For
 * writes made by this process, so that its own next read is fresh without waiting for the
 * notification. */
void fcache_invalidate(fcache *c, const char *model, const char *sae);

/* Applies a saed_features payload: "model/sae", "model/" or "" (all). */
void fcache_notify(fcache *c, const char *payload);

/* Prometheus text: hits, misses, entries, bytes, listening. Nothing when c is NULL. */
void fcache_render_metrics(fcache *c, FILE *f);

/* Tests: 1 while the listener holds a LISTEN connection (the cache is serving). */
int fcache_listening(fcache *c);
/* Tests and metrics: generation records held (one per model and per SAE stored). */
size_t fcache_gen_records(fcache *c);

#endif
