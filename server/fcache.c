/* fcache.c: see fcache.h. A chained hash table of entries with an LRU list, a small table of
 * generation records (one per model and per SAE with a stored response), and the LISTEN thread. Invalidation
 * is lazy: bumping a generation makes the entries that captured the old one invalid, and
 * they are freed when next looked up or when the LRU evicts them. */
#include "server/fcache.h"

#include <poll.h>       // defines: poll
#include <pthread.h>    // defines: pthread_mutex_t, pthread_create
#include <stdatomic.h>  // defines: atomic_int
#include <stdlib.h>     // defines: malloc, calloc, free
#include <string.h>     // defines: memcpy, strlen, strcmp, strchr
#include <time.h>       // defines: clock_gettime, nanosleep

#include "db/db.h"       // defines: db_connect, db_exec, DB_LISTEN_FEATURES
#include "server/log.h"  // defines: log_info, log_warn

#define GEN_BUCKETS 256
#define MIN_BUCKETS 1024

struct fcache_body {
    atomic_int ref;
    size_t len;
    char data[];
};

typedef struct gen_rec {
    struct gen_rec *next;
    uint64_t gen;
    char key[];            /* "model/" or "model/sae" */
} gen_rec;

typedef struct entry {
    struct entry *hnext;          /* hash chain */
    struct entry *prev, *next;    /* LRU: head = most recently used */
    uint64_t hash;
    uint64_t gen[3];
    gen_rec *rec[2];
    double expires;
    fcache_body *body;
    size_t cost;
    char key[];
} entry;

struct fcache {
    pthread_mutex_t mu;
    size_t budget, used;
    entry **buckets;
    size_t nbuckets, n;
    entry *head, *tail;
    gen_rec *gens[GEN_BUCKETS];
    size_t nrecs;
    uint64_t global;
    uint64_t unknown; /* bumped when a key without a record is invalidated */
    int listening;
    unsigned long long hits, misses, stores, invalidations;
    /* listener */
    char *conninfo;
    pthread_t thread;
    int has_thread;
    atomic_int stop;
};

static uint64_t hash_str(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void body_release(fcache_body *b)
{
    if (b && atomic_fetch_sub(&b->ref, 1) == 1) free(b);
}

/* The record of key[0..n), created when missing (create) or NULL. Caller holds mu. */
static gen_rec *gen_find(fcache *c, const char *key, size_t n, int create)
{
    uint64_t h = hash_str(key, n) % GEN_BUCKETS;
    for (gen_rec *g = c->gens[h]; g; g = g->next)
        if (strlen(g->key) == n && !memcmp(g->key, key, n)) return g;
    if (!create) return NULL;
    gen_rec *g = malloc(sizeof *g + n + 1);
    if (!g) return NULL;
    g->gen = 0;
    memcpy(g->key, key, n);
    g->key[n] = '\0';
    g->next = c->gens[h];
    c->gens[h] = g;
    c->nrecs++;
    return g;
}

static void lru_unlink(fcache *c, entry *e)
{
    if (e->prev) e->prev->next = e->next;
    else c->head = e->next;
    if (e->next) e->next->prev = e->prev;
    else c->tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push(fcache *c, entry *e)
{
    e->prev = NULL;
    e->next = c->head;
    if (c->head) c->head->prev = e;
    c->head = e;
    if (!c->tail) c->tail = e;
}

static void entry_remove(fcache *c, entry *e)
{
    entry **pp = &c->buckets[e->hash & (c->nbuckets - 1)];
    while (*pp && *pp != e) pp = &(*pp)->hnext;
    if (*pp) *pp = e->hnext;
    lru_unlink(c, e);
    c->used -= e->cost;
    c->n--;
    body_release(e->body);
    free(e);
}

static entry *entry_find(fcache *c, const char *key, uint64_t h)
{
    for (entry *e = c->buckets[h & (c->nbuckets - 1)]; e; e = e->hnext)
        if (e->hash == h && !strcmp(e->key, key)) return e;
    return NULL;
}

static int entry_valid(const fcache *c, const entry *e, double now)
{
    return c->listening && e->gen[0] == c->global && e->gen[1] == e->rec[0]->gen && e->gen[2] == e->rec[1]->gen &&
           now < e->expires;
}

static void grow(fcache *c)
{
    size_t nb = c->nbuckets * 2;
    entry **b = calloc(nb, sizeof *b);
    if (!b) return; /* longer chains, still correct */
    for (size_t i = 0; i < c->nbuckets; i++)
        for (entry *e = c->buckets[i], *next; e; e = next) {
            next = e->hnext;
            e->hnext = b[e->hash & (nb - 1)];
            b[e->hash & (nb - 1)] = e;
        }
    free(c->buckets);
    c->buckets = b;
    c->nbuckets = nb;
}

const fcache_body *fcache_get(fcache *c, const char *key)
{
    if (!c) return NULL;
    uint64_t h = hash_str(key, strlen(key));
    pthread_mutex_lock(&c->mu);
    entry *e = entry_find(c, key, h);
    fcache_body *b = NULL;
    if (e && !entry_valid(c, e, now_s())) {
        entry_remove(c, e);
        e = NULL;
    }
    if (e) {
        lru_unlink(c, e);
        lru_push(c, e);
        b = e->body;
        atomic_fetch_add(&b->ref, 1);
        c->hits++;
    } else {
        c->misses++;
    }
    pthread_mutex_unlock(&c->mu);
    return b;
}

const char *fcache_data(const fcache_body *b) { return b->data; }
size_t fcache_len(const fcache_body *b) { return b->len; }
void fcache_release(const fcache_body *b) { body_release((fcache_body *)b); }

/* Writes "model/sae" to k and returns 0, or -1 when it does not fit. */
static int gen_key(char k[600], const char *model, size_t ml, const char *sae, size_t sl)
{
    if (ml + sl + 2 > 600) return -1;
    memcpy(k, model, ml);
    k[ml] = '/';
    memcpy(k + ml + 1, sae, sl);
    k[ml + 1 + sl] = '\0';
    return 0;
}

/* Records are looked up, never created, here: a request for an id that does not exist must
 * leave nothing behind. A key without a record captures the "unknown" epoch instead, which
 * any invalidation of a key without a record bumps; fcache_put creates the records. */
void fcache_begin(fcache *c, const char *model, const char *sae, fcache_ticket *t)
{
    memset(t, 0, sizeof *t);
    if (!c) return;
    char k[600];
    size_t ml = strlen(model), sl = strlen(sae);
    if (gen_key(k, model, ml, sae, sl)) return;
    pthread_mutex_lock(&c->mu);
    if (c->listening) {
        gen_rec *mr = gen_find(c, k, ml + 1, 0), *sr = gen_find(c, k, ml + 1 + sl, 0);
        t->ok = 1;
        t->gen[0] = c->global;
        t->gen[1] = mr ? mr->gen : 0;
        t->gen[2] = sr ? sr->gen : 0;
        t->rec[0] = mr;
        t->rec[1] = sr;
        t->unknown = c->unknown;
    }
    pthread_mutex_unlock(&c->mu);
}

/* The record of k[0..n) for a store under ticket generation *gen (rec: the one the ticket
 * saw, or NULL), created if needed; NULL when an invalidation came after the ticket. Caller
 * holds mu. A record created after the ticket starts at generation 0, so a later bump of it
 * shows as a mismatch; an invalidation before its creation bumped the unknown epoch. */
static gen_rec *gen_for_put(fcache *c, const fcache_ticket *t, const char *k, size_t n, void *rec, uint64_t *gen)
{
    if (rec) return ((gen_rec *)rec)->gen == *gen ? rec : NULL;
    if (c->unknown != t->unknown) return NULL;
    gen_rec *g = gen_find(c, k, n, 0);
    if (g) return g->gen == 0 ? g : NULL;
    g = gen_find(c, k, n, 1);
    if (g) *gen = g->gen;
    return g;
}

void fcache_put(fcache *c, const fcache_ticket *t, const char *key, const char *body, size_t len)
{
    if (!c || !t->ok) return;
    /* The key's first two parts are the model and the SAE (fcache.h). */
    const char *s1 = strchr(key, '/'), *s2 = s1 ? strchr(s1 + 1, '/') : NULL;
    char k[600];
    if (!s2 || gen_key(k, key, (size_t)(s1 - key), s1 + 1, (size_t)(s2 - s1 - 1))) return;
    size_t ml = (size_t)(s1 - key), sl = (size_t)(s2 - s1 - 1);
    size_t kl = strlen(key), cost = sizeof(entry) + kl + 1 + sizeof(fcache_body) + len;
    if (cost > c->budget / 8) return; /* one response may not crowd out the rest */
    entry *e = malloc(sizeof *e + kl + 1);
    fcache_body *b = malloc(sizeof *b + len + 1);
    if (!e || !b) {
        free(e);
        free(b);
        return;
    }
    atomic_init(&b->ref, 1);
    b->len = len;
    memcpy(b->data, body, len);
    b->data[len] = '\0';
    memcpy(e->key, key, kl + 1);
    e->hash = hash_str(key, kl);
    e->body = b;
    e->cost = cost;
    memcpy(e->gen, t->gen, sizeof e->gen);
    e->expires = now_s() + FCACHE_TTL_S;
    e->prev = e->next = NULL;
    pthread_mutex_lock(&c->mu);
    /* Something changed while the caller read: store nothing. */
    int fresh = c->listening && t->gen[0] == c->global;
    e->rec[0] = fresh ? gen_for_put(c, t, k, ml + 1, t->rec[0], &e->gen[1]) : NULL;
    e->rec[1] = e->rec[0] ? gen_for_put(c, t, k, ml + 1 + sl, t->rec[1], &e->gen[2]) : NULL;
    if (!e->rec[1] || !entry_valid(c, e, now_s() - 1)) {
        pthread_mutex_unlock(&c->mu);
        body_release(b);
        free(e);
        return;
    }
    entry *old = entry_find(c, key, e->hash);
    if (old) entry_remove(c, old);
    while (c->tail && c->used + cost > c->budget) entry_remove(c, c->tail);
    if (c->n >= c->nbuckets) grow(c);
    e->hnext = c->buckets[e->hash & (c->nbuckets - 1)];
    c->buckets[e->hash & (c->nbuckets - 1)] = e;
    lru_push(c, e);
    c->used += cost;
    c->n++;
    c->stores++;
    pthread_mutex_unlock(&c->mu);
}

/* Caller holds mu. */
static void invalidate_locked(fcache *c, const char *model, const char *sae)
{
    c->invalidations++;
    if (!model || !*model) {
        c->global++;
        return;
    }
    char k[600];
    size_t ml = strlen(model), sl = sae ? strlen(sae) : 0;
    if (ml + sl + 2 > sizeof k) {
        c->global++;
        return;
    }
    memcpy(k, model, ml);
    k[ml] = '/';
    memcpy(k + ml + 1, sae ? sae : "", sl + 1);
    /* A record not yet created has no entries to drop, but a read that began before this and
     * would create it on storing must not store. */
    gen_rec *g = gen_find(c, k, ml + 1 + sl, 0);
    if (g) g->gen++;
    else c->unknown++;
}

void fcache_invalidate(fcache *c, const char *model, const char *sae)
{
    if (!c) return;
    pthread_mutex_lock(&c->mu);
    invalidate_locked(c, model, sae);
    pthread_mutex_unlock(&c->mu);
}

void fcache_notify(fcache *c, const char *payload)
{
    if (!c) return;
    const char *slash = payload ? strchr(payload, '/') : NULL;
    char model[300];
    if (!slash || (size_t)(slash - payload) >= sizeof model) {
        fcache_invalidate(c, NULL, NULL);
        return;
    }
    memcpy(model, payload, (size_t)(slash - payload));
    model[slash - payload] = '\0';
    fcache_invalidate(c, model, slash[1] ? slash + 1 : NULL);
}

static void set_listening(fcache *c, int on)
{
    pthread_mutex_lock(&c->mu);
    if (c->listening != on) {
        c->listening = on;
        c->global++; /* notifications may have been missed: nothing cached before is trusted */
    }
    pthread_mutex_unlock(&c->mu);
}

size_t fcache_gen_records(fcache *c)
{
    if (!c) return 0;
    pthread_mutex_lock(&c->mu);
    size_t n = c->nrecs;
    pthread_mutex_unlock(&c->mu);
    return n;
}

int fcache_listening(fcache *c)
{
    if (!c) return 0;
    pthread_mutex_lock(&c->mu);
    int on = c->listening;
    pthread_mutex_unlock(&c->mu);
    return on;
}

static void nap_ms(fcache *c, int ms)
{
    for (int t = 0; t < ms && !atomic_load(&c->stop); t += 50) {
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

static void *listen_main(void *arg)
{
    fcache *c = arg;
    int backoff = 100, was_down = 0;
    while (!atomic_load(&c->stop)) {
        char err[256];
        db_conn *db = db_connect(c->conninfo, err, sizeof err);
        PGresult *r = db ? db_exec(db, DB_LISTEN_FEATURES, NULL) : NULL;
        if (!db || db_kind(r) != DB_OK) {
            if (!was_down) log_warn("feature cache: cannot LISTEN saed_features (%s); not caching until it can",
                                    db ? db_errmsg(r, err, sizeof err) : err);
            was_down = 1;
            PQclear(r);
            db_close(db);
            nap_ms(c, backoff);
            backoff = backoff < 5000 ? backoff * 2 : 5000;
            continue;
        }
        PQclear(r);
        if (was_down) log_info("feature cache: listening again");
        was_down = 0;
        backoff = 100;
        set_listening(c, 1);
        PGconn *pg = db_pg(db);
        while (!atomic_load(&c->stop)) {
            struct pollfd p = {.fd = PQsocket(pg), .events = POLLIN};
            int k = poll(&p, 1, 200);
            if (k < 0) continue;
            if (k > 0 && !PQconsumeInput(pg)) break;
            PGnotify *n;
            while ((n = PQnotifies(pg))) {
                fcache_notify(c, n->extra);
                PQfreemem(n);
            }
            if (PQstatus(pg) != CONNECTION_OK) break;
        }
        set_listening(c, 0);
        if (!atomic_load(&c->stop)) {
            log_warn("feature cache: LISTEN connection lost; not caching until it is back");
            was_down = 1;
        }
        db_close(db);
    }
    return NULL;
}

fcache *fcache_create(size_t budget_bytes, const char *conninfo)
{
    if (budget_bytes == 0) return NULL;
    fcache *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->budget = budget_bytes;
    c->nbuckets = MIN_BUCKETS;
    c->buckets = calloc(c->nbuckets, sizeof *c->buckets);
    pthread_mutex_init(&c->mu, NULL);
    atomic_init(&c->stop, 0);
    if (!c->buckets) {
        fcache_destroy(c);
        return NULL;
    }
    if (!conninfo) {
        c->listening = 1; /* one process, no listener: every write goes through fcache_invalidate */
        return c;
    }
    c->conninfo = strdup(conninfo);
    if (!c->conninfo || pthread_create(&c->thread, NULL, listen_main, c)) {
        fcache_destroy(c);
        return NULL;
    }
    c->has_thread = 1;
    return c;
}

void fcache_destroy(fcache *c)
{
    if (!c) return;
    atomic_store(&c->stop, 1);
    if (c->has_thread) pthread_join(c->thread, NULL);
    while (c->head) entry_remove(c, c->head);
    for (int i = 0; i < GEN_BUCKETS; i++)
        for (gen_rec *g = c->gens[i], *next; g; g = next) {
            next = g->next;
            free(g);
        }
    free(c->buckets);
    free(c->conninfo);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

void fcache_render_metrics(fcache *c, FILE *f)
{
    if (!c) return;
    pthread_mutex_lock(&c->mu);
    unsigned long long hits = c->hits, misses = c->misses, stores = c->stores, inv = c->invalidations;
    size_t n = c->n, used = c->used, recs = c->nrecs;
    int on = c->listening;
    pthread_mutex_unlock(&c->mu);
    fprintf(f, "# HELP saed_feature_cache_requests_total Feature cache lookups by result.\n"
               "# TYPE saed_feature_cache_requests_total counter\n"
               "saed_feature_cache_requests_total{result=\"hit\"} %llu\n"
               "saed_feature_cache_requests_total{result=\"miss\"} %llu\n", hits, misses);
    fprintf(f, "# HELP saed_feature_cache_stores_total Responses stored in the feature cache.\n"
               "# TYPE saed_feature_cache_stores_total counter\nsaed_feature_cache_stores_total %llu\n", stores);
    fprintf(f, "# HELP saed_feature_cache_invalidations_total Invalidations applied (notifications and local writes).\n"
               "# TYPE saed_feature_cache_invalidations_total counter\nsaed_feature_cache_invalidations_total %llu\n", inv);
    fprintf(f, "# HELP saed_feature_cache_entries Entries held (some may be invalid until looked up or evicted).\n"
               "# TYPE saed_feature_cache_entries gauge\nsaed_feature_cache_entries %zu\n", n);
    fprintf(f, "# HELP saed_feature_cache_bytes Bytes held against SAED_FEATURE_CACHE.\n"
               "# TYPE saed_feature_cache_bytes gauge\nsaed_feature_cache_bytes %zu\n", used);
    fprintf(f, "# HELP saed_feature_cache_generation_records Models and SAEs with a generation record (made only when a response is stored).\n"
               "# TYPE saed_feature_cache_generation_records gauge\nsaed_feature_cache_generation_records %zu\n", recs);
    fprintf(f, "# HELP saed_feature_cache_listening 1 while the LISTEN connection is up (the cache serves).\n"
               "# TYPE saed_feature_cache_listening gauge\nsaed_feature_cache_listening %d\n", on);
}
