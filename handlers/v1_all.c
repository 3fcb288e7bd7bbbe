/* v1_all.c: POST /v1/activation/all and /v1/activation/all-batch on Neuronpedia's
 * inference-server wire (v1.c has the conventions).
 *
 * activation/all ranks the features of a source set as /api/search-all does (the same
 * live_set resolution and live_search): `sourceSet` is the setName of the model's SAEs,
 * `selectedSources` names some of them by SAE id ([] = the whole set, in layer order), and
 * each result's `source` is that SAE id (upstream's "<layer>-<sourceSet>", which is how
 * saed names an SAE unless it was registered with another id). As upstream: the key is the
 * sum of the values at sortByTokenIndexes (repeats count again; sumValues) or else the
 * maximum (sumValues 0); ignoreBos zeroes position 0 first; every feature is ranked, zeros
 * included, ties by source order then index; numResults defaults to 25 and is clamped to
 * 1000; values cover every token, BOS included. No DFA, no counts (left out). */
#include <stdio.h>  // defines: snprintf
#include <stdlib.h> // defines: calloc, free

#include "engine/live.h"
#include "handlers/handlers.h"
#include "handlers/live.h"
#include "handlers/v1.h"

#define V1_ALL_DEFAULT_RESULTS 25
#define V1_ALL_MAX_RESULTS 1000 /* upstream's ceiling, a clamp rather than an error */

typedef struct all_task {
    live_set set;
    int batch, n_texts, ignore_bos, n_results, n_sort;
    const char *texts[V1_MAX_BATCH]; /* borrowed from the body */
    int sort[LIVE_MAX_SORT];
} all_task;

static void all_task_free(all_task *t)
{
    live_set_free(&t->set);
    free(t);
}

/* One prompt's ranked features, or NULL after a reply. */
static json_t *all_one(http_req *r, const all_task *t, const eng_ref *mr, sae **s, const int32_t *ids, int T)
{
    json_t *acts = json_array();
    if (t->n_results == 0) return acts;
    live_hit *h = NULL;
    int nh = 0;
    char err[1024];
    live_search_opts o = {.sort_pos = t->sort, .n_sort = t->n_sort, .zero_first = t->ignore_bos, .max_density = -1,
                          .n_results = t->n_results, .keep_all = 1};
    if (live_search(mr->model, s, t->set.n, ids, T, &o, &h, &nh, err, sizeof err)) {
        json_decref(acts);
        live_reply_engine_error(r, "ranking the features", err);
        return NULL;
    }
    for (int k = 0; k < nh; k++) {
        json_t *vals = json_array();
        for (int p = 0; p < T; p++) json_array_append_new(vals, json_real(h[k].values[p]));
        json_array_append_new(acts, json_pack("{s:s,s:i,s:o,s:f,s:i,s:f}", "source", t->set.saes[h[k].sae].id, "index",
                                              h[k].index, "values", vals, "maxValue", (double)h[k].max,
                                              "maxValueIndex", h[k].argmax, "sumValues",
                                              t->n_sort ? (double)h[k].key : 0.0));
    }
    live_hits_free(h, nh);
    return acts;
}

static void all_run(http_req *r, void *ud)
{
    all_task *t = ud;
    const eng_ref *mr = NULL, *sr[LIVE_MAX_SAES];
    sae *s[LIVE_MAX_SAES];
    json_t *results = json_array();
    if (live_set_engines_or_reply(r, &t->set, &mr, sr, s)) goto done;
    for (int i = 0; i < t->n_texts; i++) {
        char f[32];
        int T = 0;
        int32_t *ids = live_tokens_or_reply(r, mr->tok, t->texts[i], t->set.max_tokens, v1_prompt_field(t->batch, i, f), &T);
        if (!ids) goto done;
        json_t *acts = NULL;
        for (int j = 0; j < t->n_sort; j++)
            if (t->sort[j] >= T) {
                http_reply_error(r, 400, "invalid_field",
                                 "sortByTokenIndexes: token index %d is out of range for %s, which only has %d tokens "
                                 "(BOS included)", t->sort[j], f, T);
                free(ids);
                goto done;
            }
        acts = all_one(r, t, mr, s, ids, T);
        if (acts)
            json_array_append_new(results, json_pack("{s:o,s:o}", "activations", acts, "tokens",
                                                     live_token_strings(mr->tok, ids, T)));
        free(ids);
        if (!acts) goto done;
    }
    v1_reply_results(r, t->batch, results);
    results = NULL;
done:
    json_decref(results);
    live_set_put(r, &t->set, mr, sr);
    all_task_free(t);
}

static void all_start(http_req *r, int batch)
{
    json_t *body = v1_body_or_reply(r);
    if (!body) return;
    all_task *t = calloc(1, sizeof *t);
    if (!t) {
        http_reply_error(r, 500, "internal", "out of memory");
        return;
    }
    t->batch = batch;
    const char *model = json_string_value(json_object_get(body, "model"));
    const char *set = json_string_value(v1_field(body, "sourceSet", "source_set"));
    json_t *ib = v1_field(body, "ignoreBos", "ignore_bos"), *nr = v1_field(body, "numResults", "num_results");
    if (!model || !set) {
        http_reply_error(r, 400, "invalid_field", "%s: required string", model ? "sourceSet" : "model");
        goto fail;
    }
    if ((t->n_texts = v1_prompts_or_reply(r, body, batch, t->texts)) < 0) goto fail;
    if (ib && !json_is_boolean(ib)) {
        http_reply_error(r, 400, "invalid_field", "ignoreBos: must be a boolean");
        goto fail;
    }
    t->ignore_bos = json_is_true(ib);
    t->n_results = V1_ALL_DEFAULT_RESULTS;
    if (nr && !json_is_null(nr)) {
        if (!json_is_integer(nr) || json_integer_value(nr) < 0) {
            http_reply_error(r, 400, "invalid_field", "numResults: must be an integer >= 0 (default %d)",
                             V1_ALL_DEFAULT_RESULTS);
            goto fail;
        }
        json_int_t n = json_integer_value(nr);
        t->n_results = n > V1_ALL_MAX_RESULTS ? V1_ALL_MAX_RESULTS : (int)n;
    }
    if ((t->n_sort = live_positions_or_reply(r, v1_field(body, "sortByTokenIndexes", "sort_by_token_indexes"),
                                             "sortByTokenIndexes", t->sort)) < 0)
        goto fail;
    int rc = live_set_or_reply(r, model, set, v1_field(body, "selectedSources", "selected_sources"), "selectedSources",
                               &t->set);
    if (rc == 1)
        http_reply_error(r, 400, "invalid_field",
                         "Invalid source set '%s' for model '%s' (source sets are the setName of its SAEs: GET /api/saes)",
                         set, model);
    if (rc == 0 && http_defer(r, all_run, t) == 0) return;
fail:
    all_task_free(t);
}

void h_v1_activation_all(http_req *r) { all_start(r, 0); }
void h_v1_activation_all_batch(http_req *r) { all_start(r, 1); }
