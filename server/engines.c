/* engines.c: a small list-based LRU (a process holds a handful of models and SAEs, not
 * thousands): the list is kept most recently used first. Loading happens outside the lock,
 * with the entry marked so that other getters of the same key wait instead of loading twice. */
#include "server/engines.h"

#include <limits.h>    // defines: PATH_MAX
#include <pthread.h>   // defines: pthread_mutex_t, pthread_cond_t
#include <stdio.h>     // defines: snprintf
#include <stdlib.h>    // defines: calloc, free, realpath
#include <string.h>    // defines: strcmp, strdup

#include "server/log.h" // defines: log_info

enum { E_MODEL, E_SAE };
enum { S_LOADING, S_READY, S_FAILED };

typedef struct entry {
    eng_ref ref;           /* first: getters receive &ref */
    struct entry *next;
    int kind, state, users;
    char *key;
    char err[512];         /* S_FAILED */
} entry;

struct engines {
    pthread_mutex_t mu;
    pthread_cond_t loaded;
    saed_backend *be;
    size_t budget, bytes;
    entry *head;           /* most recently used first */
    int n;
    long long loads, evictions;
};

engines *engines_new(saed_backend *be, size_t budget)
{
    engines *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->loaded, NULL);
    e->be = be;
    e->budget = budget;
    return e;
}

static void entry_free(entry *x)
{
    if (x->ref.model) model_free(x->ref.model);
    if (x->ref.tok) tok_free(x->ref.tok);
    if (x->ref.sae) sae_free(x->ref.sae);
    free(x->key);
    free(x);
}

void engines_free(engines *e)
{
    if (!e) return;
    for (entry *x = e->head, *nx; x; x = nx) {
        nx = x->next;
        if (x->users) log_warn("engine cache freed with %s still in use", x->key);
        entry_free(x);
    }
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->loaded);
    free(e);
}

static void unlink_entry(engines *e, entry *x)
{
    for (entry **pp = &e->head; *pp; pp = &(*pp)->next)
        if (*pp == x) {
            *pp = x->next;
            e->n--;
            return;
        }
}

/* Drops unused ready entries from the tail until the total fits. Called with the lock held;
 * returns the dropped ones chained through next, to be freed outside the lock. */
static entry *evict(engines *e)
{
    entry *dropped = NULL;
    while (e->bytes > e->budget) {
        entry *victim = NULL;
        for (entry *x = e->head; x; x = x->next)
            if (x->state == S_READY && !x->users) victim = x; /* the last such is the least recent */
        if (!victim) break;
        unlink_entry(e, victim);
        e->bytes -= victim->ref.bytes;
        e->evictions++;
        log_info("engine cache: evicted %s (%zu MB)", victim->key, victim->ref.bytes >> 20);
        victim->next = dropped;
        dropped = victim;
    }
    return dropped;
}

static void free_chain(entry *x)
{
    for (entry *nx; x; x = nx) {
        nx = x->next;
        entry_free(x);
    }
}

static int load(engines *e, entry *x, const char *dir, char *err, size_t errlen)
{
    if (x->kind == E_MODEL) {
        if (!(x->ref.tok = tok_load_dir(dir, err, errlen))) return -1;
        if (!(x->ref.model = model_load(dir, e->be, err, errlen))) return -1;
        x->ref.bytes = model_weight_bytes(x->ref.model);
        return 0;
    }
    sae_cfg c;
    if (sae_cfg_load(dir, &c, err, errlen)) return -1;
    sae_load_opts o = sae_dashboard_load_opts(&c);
    sae_cfg_free(&c);
    if (!(x->ref.sae = sae_load(dir, e->be, &o, err, errlen))) return -1;
    x->ref.bytes = sae_memory_bytes(x->ref.sae);
    return 0;
}

static const eng_ref *get(engines *e, int kind, const char *dir, char *err, size_t errlen)
{
    char real[PATH_MAX];
    if (!realpath(dir, real)) {
        snprintf(err, errlen, "%s: cannot be opened", dir);
        return NULL;
    }
    pthread_mutex_lock(&e->mu);
    entry *x = e->head, **pp = &e->head;
    for (; x; pp = &x->next, x = x->next)
        if (x->kind == kind && !strcmp(x->key, real)) break;
    if (x) {
        /* Move to the front: most recently used. */
        *pp = x->next;
        x->next = e->head;
        e->head = x;
        x->users++;
        while (x->state == S_LOADING) pthread_cond_wait(&e->loaded, &e->mu);
        if (x->state == S_FAILED) {
            snprintf(err, errlen, "%s", x->err);
            int last = --x->users == 0;
            pthread_mutex_unlock(&e->mu);
            if (last) entry_free(x);
            return NULL;
        }
        pthread_mutex_unlock(&e->mu);
        return &x->ref;
    }
    x = calloc(1, sizeof *x);
    if (x) x->key = strdup(real);
    if (!x || !x->key) {
        pthread_mutex_unlock(&e->mu);
        free(x);
        snprintf(err, errlen, "engine cache: out of memory");
        return NULL;
    }
    x->kind = kind;
    x->state = S_LOADING;
    x->users = 1;
    x->next = e->head;
    e->head = x;
    e->n++;
    e->loads++;
    pthread_mutex_unlock(&e->mu);

    int rc = load(e, x, real, x->err, sizeof x->err);

    pthread_mutex_lock(&e->mu);
    entry *dropped = NULL;
    if (rc) {
        /* Failed loads are not cached: the next getter tries again (the files may be fixed). */
        x->state = S_FAILED;
        unlink_entry(e, x);
        snprintf(err, errlen, "%s", x->err);
    } else {
        x->state = S_READY;
        e->bytes += x->ref.bytes;
        dropped = evict(e);
        log_info("engine cache: loaded %s (%zu MB, %zu MB held)", real, x->ref.bytes >> 20, e->bytes >> 20);
    }
    pthread_cond_broadcast(&e->loaded);
    int last = rc && --x->users == 0;
    pthread_mutex_unlock(&e->mu);
    free_chain(dropped);
    if (rc) {
        if (last) entry_free(x);
        return NULL;
    }
    return &x->ref;
}

const eng_ref *engines_model(engines *e, const char *dir, char *err, size_t errlen)
{
    return get(e, E_MODEL, dir, err, errlen);
}

const eng_ref *engines_sae(engines *e, const char *dir, char *err, size_t errlen)
{
    return get(e, E_SAE, dir, err, errlen);
}

void engines_put(engines *e, const eng_ref *r)
{
    if (!r) return;
    entry *x = (entry *)r;
    pthread_mutex_lock(&e->mu);
    x->users--;
    entry *dropped = evict(e);
    pthread_mutex_unlock(&e->mu);
    free_chain(dropped);
}

void engines_stats(engines *e, int *entries, size_t *bytes, long long *loads, long long *evictions)
{
    pthread_mutex_lock(&e->mu);
    *entries = e->n;
    *bytes = e->bytes;
    *loads = e->loads;
    *evictions = e->evictions;
    pthread_mutex_unlock(&e->mu);
}
