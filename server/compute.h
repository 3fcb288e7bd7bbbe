/* compute.h: the bounded pool that runs compute requests (live activations, search, steering)
 * off the HTTP threads. A fixed number of threads and a fixed-capacity queue: a request that
 * finds both full is refused at once (the HTTP layer answers 503 with Retry-After) instead of
 * waiting without bound. Knows nothing of HTTP; server/http.c suspends the connection around a
 * task (http_defer). */
#ifndef SAED_COMPUTE_H
#define SAED_COMPUTE_H

#include <stddef.h>

typedef struct compute_pool compute_pool;
typedef void (*compute_fn)(void *ud);

compute_pool *compute_start(int threads, int queue_cap, char *err, size_t errlen);
/* Takes a slot (running or queued): 0, or -1 when all are taken or the pool is stopping. A
 * reserved slot must be used by compute_submit. Reserving first lets the caller prepare (e.g.
 * suspend a connection) knowing the submit cannot fail. */
int compute_reserve(compute_pool *p);
/* Runs fn(ud) on a pool thread, then frees the slot, then runs after(ud) (may be NULL): what
 * `after` does (e.g. let the reply go out) happens once the slot is free, so a client that
 * sends its next request on receiving the answer never finds its own slot still taken. */
void compute_submit(compute_pool *p, compute_fn fn, compute_fn after, void *ud);
/* Tasks running and waiting, and the capacity, for /metrics. */
void compute_stats(compute_pool *p, int *running, int *queued, int *threads, int *queue_cap);
/* Non-zero once compute_stop began: long tasks (generation) check it between steps. */
int compute_stopping(const compute_pool *p);
/* Refuses new work, runs what is queued and joins the threads; the pool stays valid (reserve
 * answers -1), so HTTP threads still serving keep-alive connections may call it until the HTTP
 * daemon is stopped. Idempotent. */
void compute_drain(compute_pool *p);
/* compute_drain, then frees the pool. NULL is a no-op. */
void compute_stop(compute_pool *p);

#endif
