/* unit_engines.c: the engine cache (server/engines.c) and the compute pool (server/compute.c)
 * on their own: sharing, single loads under concurrency, eviction by budget, failures not
 * cached, and the compute pool's bound. The HTTP side (http_defer) is exercised by the compute
 * routes' API tests. */
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "server/compute.h"
#include "server/engines.h"
#include "tests/t.h"

#define MODEL_DIR "tests/data/models/tiny-a"
#define SAE_DIR "tests/data/sae/tiny-a-res-standard"

TEST(engines_share_and_evict_by_budget)
{
    saed_backend *be = backend_cpu_open();
    engines *e = engines_new(be, 1); /* a budget nothing fits: unused entries go at once */
    char err[512] = "";
    const eng_ref *a = engines_model(e, MODEL_DIR, err, sizeof err);
    CHECK(a && a->model && a->tok);
    const eng_ref *b = engines_model(e, "tests/data/models/../models/tiny-a", err, sizeof err);
    CHECK(a == b); /* same real path: same entry, one load */
    const eng_ref *s = engines_sae(e, SAE_DIR, err, sizeof err);
    CHECK(s && s->sae && s->bytes > 0);
    int n;
    size_t bytes;
    long long loads, ev;
    engines_stats(e, &n, &bytes, &loads, &ev);
    CHECK_INT(n, 2);
    CHECK_INT(loads, 2);
    CHECK_INT(ev, 0); /* in use: kept although over budget */
    CHECK_INT(bytes, a->bytes + s->bytes);
    engines_put(e, a);
    engines_put(e, b);
    engines_stats(e, &n, &bytes, &loads, &ev);
    CHECK_INT(n, 1);
    CHECK_INT(ev, 1);
    engines_put(e, s);
    engines_stats(e, &n, &bytes, &loads, &ev);
    CHECK_INT(n, 0);
    CHECK_INT(bytes, 0);
    engines_free(e);

    /* With room, an unused entry stays and the next get is a hit. */
    e = engines_new(be, (size_t)1 << 30);
    a = engines_sae(e, SAE_DIR, err, sizeof err);
    engines_put(e, a);
    b = engines_sae(e, SAE_DIR, err, sizeof err);
    engines_stats(e, &n, &bytes, &loads, &ev);
    CHECK(a == b);
    CHECK_INT(loads, 1);
    engines_put(e, b);
    engines_free(e);
    backend_close(be);
}

TEST(engines_failed_load_is_reported_and_not_cached)
{
    saed_backend *be = backend_cpu_open();
    engines *e = engines_new(be, (size_t)1 << 30);
    char err[512] = "";
    CHECK(!engines_sae(e, MODEL_DIR, err, sizeof err)); /* a model folder is not an SAE */
    CHECK_CONTAINS(err, "cfg.json");
    err[0] = '\0';
    CHECK(!engines_model(e, "tests/data/no-such-model", err, sizeof err));
    CHECK_CONTAINS(err, "no-such-model");
    int n;
    size_t bytes;
    long long loads, ev;
    engines_stats(e, &n, &bytes, &loads, &ev);
    CHECK_INT(n, 0);
    engines_free(e);
    backend_close(be);
}

typedef struct getter {
    engines *e;
    const eng_ref *got;
} getter;

static void *get_model(void *arg)
{
    getter *g = arg;
    char err[256];
    g->got = engines_model(g->e, MODEL_DIR, err, sizeof err);
    return NULL;
}

TEST(engines_concurrent_getters_load_once)
{
    saed_backend *be = backend_cpu_open();
    engines *e = engines_new(be, (size_t)1 << 30);
    pthread_t th[6];
    getter g[6];
    for (int i = 0; i < 6; i++) {
        g[i] = (getter){e, NULL};
        pthread_create(&th[i], NULL, get_model, &g[i]);
    }
    for (int i = 0; i < 6; i++) pthread_join(th[i], NULL);
    int n;
    size_t bytes;
    long long loads, ev;
    engines_stats(e, &n, &bytes, &loads, &ev);
    CHECK_INT(loads, 1);
    for (int i = 0; i < 6; i++) {
        CHECK(g[i].got && g[i].got == g[0].got);
        engines_put(e, g[i].got);
    }
    engines_free(e);
    backend_close(be);
}

typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int open;
    atomic_int ran;
} gate;

static void wait_gate(void *arg)
{
    gate *g = arg;
    pthread_mutex_lock(&g->mu);
    while (!g->open) pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
    atomic_fetch_add(&g->ran, 1);
}

TEST(compute_pool_refuses_beyond_threads_plus_queue)
{
    char err[256];
    compute_pool *p = compute_start(2, 3, err, sizeof err);
    CHECK(p != NULL);
    gate g = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    for (int i = 0; i < 5; i++) {
        CHECK_INT(compute_reserve(p), 0);
        compute_submit(p, wait_gate, NULL, &g);
    }
    CHECK_INT(compute_reserve(p), -1); /* 2 running + 3 queued: full */
    int running = 0, queued = 0, threads, cap;
    for (int i = 0; i < 200 && running < 2; i++) {
        usleep(5000);
        compute_stats(p, &running, &queued, &threads, &cap);
    }
    CHECK_INT(running, 2);
    CHECK_INT(queued, 3);
    CHECK_INT(threads, 2);
    CHECK_INT(cap, 3);
    pthread_mutex_lock(&g.mu);
    g.open = 1;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    compute_stop(p); /* runs what was queued before joining */
    CHECK_INT(atomic_load(&g.ran), 5);
}

typedef struct after_probe {
    compute_pool *p;
    atomic_int reserved;   /* what compute_reserve said inside `after` */
    atomic_int done;
} after_probe;

static void noop(void *arg) { (void)arg; }

static void probe_after(void *arg)
{
    after_probe *a = arg;
    /* The slot of the task that just ran must already be free here. */
    int rc = compute_reserve(a->p);
    atomic_store(&a->reserved, rc == 0 ? 1 : -1);
    if (rc == 0) compute_submit(a->p, noop, NULL, NULL);
    atomic_store(&a->done, 1);
}

TEST(compute_pool_frees_the_slot_before_after)
{
    char err[256];
    compute_pool *p = compute_start(1, 0, err, sizeof err);
    CHECK(p != NULL);
    after_probe a = {.p = p};
    CHECK_INT(compute_reserve(p), 0);
    compute_submit(p, noop, probe_after, &a);
    for (int i = 0; i < 400 && !atomic_load(&a.done); i++) usleep(5000);
    CHECK_INT(atomic_load(&a.reserved), 1);
    compute_stop(p);
}
