/* generate.c: see generate.h. The last token is never run through the model: n new tokens cost
 * one prefill and n − 1 single-token forwards. */
#include "engine/generate.h"

#include <stdio.h>   // defines: snprintf
#include <stdlib.h>  // defines: calloc, malloc, free

#include "engine/sample.h"

struct gen {
    model *m;
    gen_opts o;
    kv_cache *cache;
    sample_rng rng;
    int V;
    float *logits;     /* (V) of the last position */
    float *lp;         /* (V) log-softmax scratch */
    double *scratch;   /* (V) for sampling */
    int32_t *counts;   /* (V) times each token was generated */
    gen_token *tok;    /* (n_tokens) */
    int32_t *ids;      /* (n_tokens) */
    int n, done;
};

void gen_free(gen *g)
{
    if (!g) return;
    kv_cache_free(g->cache);
    free(g->logits);
    free(g->lp);
    free(g->scratch);
    free(g->counts);
    free(g->tok);
    free(g->ids);
    free(g);
}

static int run(gen *g, const int32_t *ids, int T, char *err, size_t errlen)
{
    fwd_opts f = {.processing = g->o.processing, .hooks = g->o.hooks, .nhooks = g->o.nhooks, .logits = g->logits,
                  .logits_last_only = 1, .cache = g->cache};
    return model_forward(g->m, ids, 1, T, &f, err, errlen);
}

gen *gen_start(model *m, const int32_t *prompt, int T, const gen_opts *o, char *err, size_t errlen)
{
    const hf_config *c = model_config(m);
    if (T < 1 || o->n_tokens < 1 || o->n_logprobs < 0 || o->n_logprobs > GEN_MAX_LOGPROBS) {
        snprintf(err, errlen, "generation: %d prompt tokens, %d new tokens, %d logprobs", T, o->n_tokens, o->n_logprobs);
        return NULL;
    }
    if ((long)T + o->n_tokens > c->n_ctx) {
        snprintf(err, errlen, "%d prompt tokens + %d new tokens exceed the model's context of %d", T, o->n_tokens, c->n_ctx);
        return NULL;
    }
    gen *g = calloc(1, sizeof *g);
    if (!g) goto oom;
    g->m = m;
    g->o = *o;
    g->V = c->vocab_size;
    sample_rng_seed(&g->rng, o->seed);
    g->logits = malloc(sizeof(float) * (size_t)g->V);
    g->lp = malloc(sizeof(float) * (size_t)g->V);
    g->scratch = malloc(sizeof(double) * (size_t)g->V);
    g->counts = calloc((size_t)g->V, sizeof(int32_t));
    g->tok = calloc((size_t)o->n_tokens, sizeof *g->tok);
    g->ids = calloc((size_t)o->n_tokens, sizeof *g->ids);
    if (!g->logits || !g->lp || !g->scratch || !g->counts || !g->tok || !g->ids) goto oom;
    /* Room for the prompt and every generated token but the last, which is never run. */
    if (!(g->cache = kv_cache_new(m, 1, T + o->n_tokens - 1 > T ? T + o->n_tokens - 1 : T, err, errlen)) ||
        run(g, prompt, T, err, errlen)) {
        gen_free(g);
        return NULL;
    }
    return g;
oom:
    gen_free(g);
    snprintf(err, errlen, "generation: out of memory");
    return NULL;
}

int gen_step(gen *g, char *err, size_t errlen)
{
    if (g->done) return 0;
    int32_t id = sample_next(g->logits, g->V, g->counts, g->o.freq_penalty, g->o.temperature, &g->rng, g->scratch);
    if (id == g->o.eos) {
        g->done = 1;
        return 0;
    }
    gen_token *t = &g->tok[g->n];
    t->id = id;
    if (g->o.n_logprobs > 0) {
        sample_log_softmax(g->logits, g->V, g->lp);
        t->logprob = g->lp[id];
        t->ntop = sample_top_k(g->lp, g->V, g->o.n_logprobs, t->top_id);
        for (int i = 0; i < t->ntop; i++) t->top_logprob[i] = g->lp[t->top_id[i]];
    }
    g->ids[g->n++] = id;
    g->counts[id]++;
    if (g->n == g->o.n_tokens) {
        g->done = 1;
        return 1;
    }
    return run(g, &id, 1, err, errlen) ? -1 : 1;
}

int gen_done(const gen *g) { return g->done; }
int gen_count(const gen *g) { return g->n; }
const gen_token *gen_tokens(const gen *g) { return g->tok; }
const int32_t *gen_ids(const gen *g) { return g->ids; }
