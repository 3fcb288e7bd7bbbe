/* par.c: see par.h. Workers are created on first use and live for the process. */
#include "gpu/par.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#define PAR_MAX 16

static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_mutex_t busy = PTHREAD_MUTEX_INITIALIZER;  /* held by the caller owning the pool */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t go = PTHREAD_COND_INITIALIZER, done = PTHREAD_COND_INITIALIZER;
static int nthreads = 1;        /* including the caller */
static unsigned long generation;
static int pending;
static struct {
    void (*fn)(void *, size_t, size_t);
    void *ctx;
    size_t n, chunk;
} job;

static void run_part(int part)
{
    size_t b = (size_t)part * job.chunk, e = b + job.chunk;
    if (e > job.n) e = job.n;
    if (b < e) job.fn(job.ctx, b, e);
}

/* Waiting starts with a short spin (some tens of microseconds) before the condition variable:
 * a forward issues its ops back to back, and waking a sleeping thread costs more than many of
 * them take (a generation step's matrix-vector products run ~0.1 ms each). */
#define SPIN 2000

static inline void relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void *worker(void *arg)
{
    int part = (int)(long)arg;
    unsigned long seen = 0;
    for (;;) {
        for (int s = 0; s < SPIN && __atomic_load_n(&generation, __ATOMIC_ACQUIRE) == seen; s++) relax();
        pthread_mutex_lock(&mu);
        while (__atomic_load_n(&generation, __ATOMIC_ACQUIRE) == seen) pthread_cond_wait(&go, &mu);
        seen = generation;
        pthread_mutex_unlock(&mu);
        run_part(part);
        pthread_mutex_lock(&mu);
        if (__atomic_sub_fetch(&pending, 1, __ATOMIC_ACQ_REL) == 0) pthread_cond_signal(&done);
        pthread_mutex_unlock(&mu);
    }
    return NULL;
}

static void init(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    const char *env = getenv("SAED_CPU_THREADS");
    if (env && atoi(env) > 0) n = atoi(env);
    if (n < 1) n = 1;
    if (n > PAR_MAX) n = PAR_MAX;
    for (int i = 1; i < n; i++) {
        pthread_t t;
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &a, worker, (void *)(long)nthreads) == 0) nthreads++;
        pthread_attr_destroy(&a);
    }
}

int par_threads(void)
{
    pthread_once(&once, init);
    return nthreads;
}

void par_for(size_t n, size_t grain, void (*fn)(void *ctx, size_t begin, size_t end), void *ctx)
{
    if (n == 0) return;
    pthread_once(&once, init);
    if (grain < 1) grain = 1;
    if (nthreads == 1 || n < 2 * grain || pthread_mutex_trylock(&busy) != 0) {
        fn(ctx, 0, n);
        return;
    }
    pthread_mutex_lock(&mu);
    job.fn = fn;
    job.ctx = ctx;
    job.n = n;
    job.chunk = (n + (size_t)nthreads - 1) / (size_t)nthreads;
    __atomic_store_n(&pending, nthreads - 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&generation, 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&go);
    pthread_mutex_unlock(&mu);
    run_part(0);
    for (int s = 0; s < SPIN && __atomic_load_n(&pending, __ATOMIC_ACQUIRE) > 0; s++) relax();
    pthread_mutex_lock(&mu);
    while (__atomic_load_n(&pending, __ATOMIC_ACQUIRE) > 0) pthread_cond_wait(&done, &mu);
    pthread_mutex_unlock(&mu);
    pthread_mutex_unlock(&busy);
}
