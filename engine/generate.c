/* generate.c: see generate.h. The last token is never run through the model: n new tokens cost
 * one prefill and n − 1 single-token forwards. Rows of one generation share a KV cache of B
 * sequences; while every row is live and the backend's ops are row-exact, one forward of B
 * sequences serves them all (each weight read once per step, products of B rows); otherwise
 * each live row runs alone on its own sequence of that cache (kv_cache_row). */
#include "engine/generate.h"

#include <stdio.h>   // defines: snprintf
#include <stdlib.h>  // defines: calloc, malloc, free

#include "engine/sample.h"

/* One row's own hooks, shown only that row's sequence of a batched forward. */
typedef struct row_hook {
    hook_fn fn;
    void *ud;
    int row;
} row_hook;

typedef struct gen_row {
    gen_opts o;
    sample_rng rng;
    kv_cache *view;    /* this row's sequence alone, once it runs alone; NULL before */
    int32_t *counts;   /* (V) times each token was generated */
    gen_token *tok;    /* (n_tokens) */
    int32_t *ids;      /* (n_tokens) */
    int n, done;
} gen_row;

struct gen {
    model *m;
    int B, V, T;
    int batched;       /* 1: all-live steps run as one forward of B sequences */
    int processing;    /* of the batched forward: the rows with hooks agree on it */
    kv_cache *cache;   /* B sequences */
    gen_row *row;      /* (B) */
    hook_req *hooks;   /* the rows' hooks, each shown its own sequence of a batched forward */
    row_hook *wrap;
    int nhooks;
    float *logits;     /* (B,V) of each row's last position */
    float *lp;         /* (V) log-softmax scratch */
    double *scratch;   /* (V) for sampling */
    int32_t *next;     /* (B·T) the tokens a batched forward runs */
    unsigned char *go; /* (B) rows whose new token is to be run */
    int split;         /* 1 once a row has run alone: the cache's own length is stale */
};

void gen_free(gen *g)
{
    if (!g) return;
    for (int r = 0; g->row && r < g->B; r++) {
        kv_cache_free(g->row[r].view);
        free(g->row[r].counts);
        free(g->row[r].tok);
        free(g->row[r].ids);
    }
    kv_cache_free(g->cache);
    free(g->row);
    free(g->hooks);
    free(g->wrap);
    free(g->logits);
    free(g->lp);
    free(g->scratch);
    free(g->next);
    free(g->go);
    free(g);
}

static int on_row(void *ud, hook_point hp, float *act, int B, int T, int width)
{
    const row_hook *h = ud;
    (void)B;
    return h->fn(h->ud, hp, act + (size_t)h->row * T * width, 1, T, width);
}

/* All rows at once: ids (B,T); each row's logits into its slot. A single row keeps its own
 * hooks as given. */
static int run_all(gen *g, const int32_t *ids, int T, char *err, size_t errlen)
{
    const gen_opts *o0 = &g->row[0].o;
    fwd_opts f = {.processing = g->B == 1 ? o0->processing : g->processing,
                  .hooks = g->B == 1 ? o0->hooks : g->hooks,
                  .nhooks = g->B == 1 ? o0->nhooks : g->nhooks,
                  .logits = g->logits, .logits_last_only = 1, .cache = g->cache};
    return model_forward(g->m, ids, g->B, T, &f, err, errlen);
}

/* Row r alone on its sequence of the cache. */
static int run_row(gen *g, int r, const int32_t *ids, int T, char *err, size_t errlen)
{
    gen_row *w = &g->row[r];
    g->split = 1;
    if (!w->view && !(w->view = kv_cache_row(g->cache, r))) {
        snprintf(err, errlen, "generation: out of memory");
        return -1;
    }
    fwd_opts f = {.processing = w->o.processing, .hooks = w->o.hooks, .nhooks = w->o.nhooks,
                  .logits = g->logits + (size_t)r * g->V, .logits_last_only = 1, .cache = w->view};
    return model_forward(g->m, ids, 1, T, &f, err, errlen);
}

/* Whether the rows can share forwards: the backend's rows are exact, and the rows with hooks
 * see them under one processing. Sets g->processing. */
static int can_batch(gen *g)
{
    if (g->B == 1) return 1;
    if (!model_backend(g->m)->rows_exact) return 0;
    int proc = -1;
    for (int r = 0; r < g->B; r++) {
        const gen_opts *o = &g->row[r].o;
        if (!o->nhooks) continue;
        if (proc >= 0 && o->processing != proc) return 0;
        proc = o->processing;
    }
    g->processing = proc < 0 ? g->row[0].o.processing : proc;
    return 1;
}

static int wrap_hooks(gen *g)
{
    int n = 0;
    for (int r = 0; r < g->B; r++) n += g->row[r].o.nhooks;
    if (!n) return 0;
    if (!(g->hooks = calloc((size_t)n, sizeof *g->hooks)) || !(g->wrap = calloc((size_t)n, sizeof *g->wrap))) return -1;
    for (int r = 0; r < g->B; r++)
        for (int i = 0; i < g->row[r].o.nhooks; i++) {
            const hook_req *h = &g->row[r].o.hooks[i];
            g->wrap[g->nhooks] = (row_hook){.fn = h->fn, .ud = h->ud, .row = r};
            g->hooks[g->nhooks] = (hook_req){.hp = h->hp, .fn = on_row, .ud = &g->wrap[g->nhooks], .write = h->write};
            g->nhooks++;
        }
    return 0;
}

gen *gen_start_rows(model *m, const int32_t *prompt, int T, const gen_opts *o, int B, char *err, size_t errlen)
{
    const hf_config *c = model_config(m);
    int most = 0;
    for (int r = 0; r < B; r++) {
        if (T < 1 || o[r].n_tokens < 1 || o[r].n_logprobs < 0 || o[r].n_logprobs > GEN_MAX_LOGPROBS) {
            snprintf(err, errlen, "generation: %d prompt tokens, %d new tokens, %d logprobs", T, o[r].n_tokens,
                     o[r].n_logprobs);
            return NULL;
        }
        if ((long)T + o[r].n_tokens > c->n_ctx) {
            snprintf(err, errlen, "%d prompt tokens + %d new tokens exceed the model's context of %d", T, o[r].n_tokens,
                     c->n_ctx);
            return NULL;
        }
        if (o[r].n_tokens > most) most = o[r].n_tokens;
    }
    if (B < 1) {
        snprintf(err, errlen, "generation: %d rows", B);
        return NULL;
    }
    gen *g = calloc(1, sizeof *g);
    if (!g) goto oom;
    g->m = m;
    g->B = B;
    g->T = T;
    g->V = c->vocab_size;
    if (!(g->row = calloc((size_t)B, sizeof *g->row))) goto oom;
    for (int r = 0; r < B; r++) {
        gen_row *w = &g->row[r];
        w->o = o[r];
        sample_rng_seed(&w->rng, o[r].seed);
        w->counts = calloc((size_t)g->V, sizeof(int32_t));
        w->tok = calloc((size_t)o[r].n_tokens, sizeof *w->tok);
        w->ids = calloc((size_t)o[r].n_tokens, sizeof *w->ids);
        if (!w->counts || !w->tok || !w->ids) goto oom;
    }
    g->logits = malloc(sizeof(float) * (size_t)B * g->V);
    g->lp = malloc(sizeof(float) * (size_t)g->V);
    g->scratch = malloc(sizeof(double) * (size_t)g->V);
    g->next = malloc(sizeof(int32_t) * (size_t)B * T);
    g->go = calloc((size_t)B, 1);
    if (!g->logits || !g->lp || !g->scratch || !g->next || !g->go) goto oom;
    g->batched = can_batch(g);
    if (g->batched && B > 1 && wrap_hooks(g)) goto oom;
    /* Room for the prompt and every generated token but the last, which is never run. */
    if (!(g->cache = kv_cache_new(m, B, T + most - 1 > T ? T + most - 1 : T, err, errlen))) {
        gen_free(g);
        return NULL;
    }
    int rc = 0;
    if (g->batched) {
        for (int r = 0; r < B; r++)
            for (int t = 0; t < T; t++) g->next[(size_t)r * T + t] = prompt[t];
        rc = run_all(g, g->next, T, err, errlen);
    } else {
        for (int r = 0; r < B && rc == 0; r++) rc = run_row(g, r, prompt, T, err, errlen);
    }
    if (rc) {
        gen_free(g);
        return NULL;
    }
    return g;
oom:
    gen_free(g);
    snprintf(err, errlen, "generation: out of memory");
    return NULL;
}

gen *gen_start(model *m, const int32_t *prompt, int T, const gen_opts *o, char *err, size_t errlen)
{
    return gen_start_rows(m, prompt, T, o, 1, err, errlen);
}

/* Chooses row r's next token: 1 added and to be run, 2 added and the row is finished, 0 the
 * row finished without one (EOS). */
static int choose(gen *g, int r)
{
    gen_row *w = &g->row[r];
    const float *logits = g->logits + (size_t)r * g->V;
    int32_t id = sample_next(logits, g->V, w->counts, w->o.freq_penalty, w->o.temperature, &w->rng, g->scratch);
    if (id == w->o.eos) {
        w->done = 1;
        return 0;
    }
    gen_token *t = &w->tok[w->n];
    t->id = id;
    if (w->o.n_logprobs > 0) {
        sample_log_softmax(logits, g->V, g->lp);
        t->logprob = g->lp[id];
        t->ntop = sample_top_k(g->lp, g->V, w->o.n_logprobs, t->top_id);
        for (int i = 0; i < t->ntop; i++) t->top_logprob[i] = g->lp[t->top_id[i]];
    }
    w->ids[w->n++] = id;
    w->counts[id]++;
    if (w->n == w->o.n_tokens) {
        w->done = 1;
        return 2;
    }
    return 1;
}

int gen_step(gen *g, char *err, size_t errlen)
{
    int added = 0, run = 0;
    for (int r = 0; r < g->B; r++) {
        g->go[r] = 0;
        if (g->row[r].done) continue;
        int s = choose(g, r);
        added |= s > 0;
        if (s == 1) {
            g->go[r] = 1;
            g->next[run++] = g->row[r].ids[g->row[r].n - 1];
        }
    }
    if (run && run == g->B && g->batched && !g->split) return run_all(g, g->next, 1, err, errlen) ? -1 : added;
    for (int r = 0; r < g->B; r++)
        if (g->go[r] && run_row(g, r, &g->row[r].ids[g->row[r].n - 1], 1, err, errlen)) return -1;
    return added;
}

int gen_rows(const gen *g) { return g->B; }
int gen_batched(const gen *g) { return g->batched && g->B > 1; }
int gen_row_done(const gen *g, int r) { return g->row[r].done; }
int gen_row_count(const gen *g, int r) { return g->row[r].n; }
const gen_token *gen_row_tokens(const gen *g, int r) { return g->row[r].tok; }
const int32_t *gen_row_ids(const gen *g, int r) { return g->row[r].ids; }

int gen_done(const gen *g)
{
    for (int r = 0; r < g->B; r++)
        if (!g->row[r].done) return 0;
    return 1;
}
int gen_count(const gen *g) { return gen_row_count(g, 0); }
const gen_token *gen_tokens(const gen *g) { return gen_row_tokens(g, 0); }
const int32_t *gen_ids(const gen *g) { return gen_row_ids(g, 0); }
