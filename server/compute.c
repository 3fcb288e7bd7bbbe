/* compute.c: fixed threads around a ring of pending tasks; the slot count (running + queued)
 * is the bound that compute_reserve enforces. */
#include "server/compute.h"

#include <pthread.h>    // defines: pthread_create, pthread_mutex_t, pthread_cond_t
#include <stdatomic.h>  // defines: atomic_int
#include <stdio.h>      // defines: snprintf
#include <stdlib.h>     // defines: calloc, free
#include <string.h>     // defines: strerror

typedef struct task {
    compute_fn fn, after;
    void *ud;
} task;

struct compute_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t *th;
    int nthreads, cap;
    int slots;          /* reserved: running + queued + reserved-not-yet-submitted */
    int running;
    task *ring;         /* cap entries */
    int head, count;
    atomic_int stopping;
    int joined;         /* compute_drain's own: threads joined (drain and stop run on one thread) */
};

static void *loop(void *arg)
{
    compute_pool *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->count && !(atomic_load(&p->stopping) && p->slots == p->running))
            pthread_cond_wait(&p->cv, &p->mu);
        if (!p->count) break; /* stopping, and nothing reserved is still to come */
        task t = p->ring[p->head];
        p->head = (p->head + 1) % p->cap;
        p->count--;
        p->running++;
        pthread_mutex_unlock(&p->mu);
        t.fn(t.ud);
        pthread_mutex_lock(&p->mu);
        p->running--;
        p->slots--;
        pthread_cond_broadcast(&p->cv);
        if (t.after) {
            pthread_mutex_unlock(&p->mu);
            t.after(t.ud);
            pthread_mutex_lock(&p->mu);
        }
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

compute_pool *compute_start(int threads, int queue_cap, char *err, size_t errlen)
{
    compute_pool *p = calloc(1, sizeof *p);
    if (!p) goto oom;
    p->cap = threads + queue_cap;
    p->ring = calloc((size_t)p->cap, sizeof *p->ring);
    p->th = calloc((size_t)threads, sizeof *p->th);
    if (!p->ring || !p->th) goto oom;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    for (; p->nthreads < threads; p->nthreads++) {
        int rc = pthread_create(&p->th[p->nthreads], NULL, loop, p);
        if (rc) {
            snprintf(err, errlen, "compute pool: cannot start thread %d: %s", p->nthreads, strerror(rc));
            compute_stop(p);
            return NULL;
        }
    }
    return p;
oom:
    snprintf(err, errlen, "compute pool: out of memory");
    if (p) {
        free(p->ring);
        free(p->th);
    }
    free(p);
    return NULL;
}

int compute_reserve(compute_pool *p)
{
    int ok = 0;
    pthread_mutex_lock(&p->mu);
    if (!atomic_load(&p->stopping) && p->slots < p->cap) {
        p->slots++;
        ok = 1;
    }
    pthread_mutex_unlock(&p->mu);
    return ok ? 0 : -1;
}

void compute_submit(compute_pool *p, compute_fn fn, compute_fn after, void *ud)
{
    pthread_mutex_lock(&p->mu);
    p->ring[(p->head + p->count) % p->cap] = (task){fn, after, ud};
    p->count++;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

void compute_stats(compute_pool *p, int *running, int *queued, int *threads, int *queue_cap)
{
    pthread_mutex_lock(&p->mu);
    *running = p->running;
    *queued = p->slots - p->running;
    *threads = p->nthreads;
    *queue_cap = p->cap - p->nthreads;
    pthread_mutex_unlock(&p->mu);
}

int compute_stopping(const compute_pool *p) { return atomic_load(&p->stopping); }

void compute_drain(compute_pool *p)
{
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stopping, 1);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    if (p->joined) return;
    for (int i = 0; i < p->nthreads; i++) pthread_join(p->th[i], NULL);
    p->joined = 1;
}

void compute_stop(compute_pool *p)
{
    if (!p) return;
    compute_drain(p);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->ring);
    free(p->th);
    free(p);
}
