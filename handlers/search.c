/* search.c: POST /api/search-all (the features of a source set that respond most to a text)
 * and POST /api/search-topk-by-token (the top features of one SAE at every token), Neuronpedia's
 * inference searches. Validation and the SAE lookup run on the HTTP thread; the model pass,
 * the encoders and the lookup of the stored feature rows that go with the results run as a
 * compute task on the cached model and SAEs. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/tok_prompt.h"
#include "engine/live.h"
#include "handlers/handlers.h"
#include "handlers/live.h"

/* Neuronpedia's densityThreshold: absent, null or 0 = no filter (-1); else -1 or in (0, 1).
 * 0 with the value, or -1 after a 400. */
static int density_threshold(http_req *r, json_t *v, double def, double *out)
{
    *out = def;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_number(v)) {
        http_reply_error(r, 400, "invalid_field", "densityThreshold: must be a number");
        return -1;
    }
    double d = json_number_value(v);
    *out = d == 0 ? -1 : d;
    if (*out != -1 && !(*out > 0 && *out < 1)) {
        http_reply_error(r, 400, "invalid_field", "densityThreshold: must be -1 (no filter) or between 0 and 1");
        return -1;
    }
    return 0;
}

/* numResults: absent, null or 0 = def; else an integer in [1, max]. */
static int num_results(http_req *r, json_t *v, int def, int max, int *out)
{
    *out = def;
    if (!v || json_is_null(v) || (json_is_number(v) && json_number_value(v) == 0)) return 0;
    double d = json_is_number(v) ? json_number_value(v) : -1;
    /* The limit before any conversion: a double beyond long long's range has none defined. */
    if (d > max) {
        http_reply_error(r, 400, "limit_exceeded", "numResults: %g is more than the limit of %d", d, max);
        return -1;
    }
    if (!(d >= 1) || d != floor(d)) {
        http_reply_error(r, 400, "invalid_field", "numResults: must be an integer from 1 to %d", max);
        return -1;
    }
    *out = (int)d;
    return 0;
}

static int flag(json_t *body, const char *key, int def)
{
    json_t *v = json_object_get(body, key);
    return json_is_boolean(v) ? json_is_true(v) : def;
}

/* What both searches read from the request (texts borrowed from the body). */
typedef struct search_req {
    const char *model_id, *source;  /* source: the set (search-all) or the SAE (topk) */
    const char *texts[LIVE_MAX_TEXTS];
    int n_texts, is_array, ignore_bos, n_results, max_tokens;
    double density;
} search_req;

/* The body with its modelId and source (src_key, else alt_key when given); NULL after a 400. */
static json_t *search_body_or_reply(http_req *r, const char *src_key, const char *alt_key, const char **model_id,
                                    const char **source)
{
    json_t *body = http_json(r);
    if (!json_is_object(body)) {
        http_reply_error(r, 400, "invalid_body", "request body must be a JSON object");
        return NULL;
    }
    *model_id = json_string_value(json_object_get(body, "modelId"));
    *source = json_string_value(json_object_get(body, src_key));
    if (!*source && alt_key) *source = json_string_value(json_object_get(body, alt_key));
    if (!*model_id || !*source) {
        http_reply_error(r, 400, "invalid_field", "%s: required string", *model_id ? src_key : "modelId");
        return NULL;
    }
    return body;
}

/* ignoreBos, text, numResults (def_results when absent, at most max_results) and
 * densityThreshold (absent_density when absent) into q; -1 after a 400. */
static int search_fields_or_reply(http_req *r, json_t *body, search_req *q, int def_results, int max_results,
                                  double absent_density)
{
    json_t *dt = json_object_get(body, "densityThreshold");
    q->ignore_bos = flag(body, "ignoreBos", 1);
    if ((q->n_texts = live_texts_or_reply(r, json_object_get(body, "text"), "text", q->texts, &q->is_array)) < 0 ||
        num_results(r, json_object_get(body, "numResults"), def_results, max_results, &q->n_results) ||
        density_threshold(r, dt, dt ? -1 : absent_density, &q->density))
        return -1;
    return 0;
}

/* Text i tokenized, field set to its name in the request ("text" or "text[i]"); NULL after a reply. */
static int32_t *search_tokens_or_reply(http_req *r, const eng_ref *mr, const search_req *q, int i, char field[32],
                                       int *T)
{
    snprintf(field, 32, q->is_array ? "text[%d]" : "text", i);
    return live_tokens_or_reply(r, mr->tok, q->texts[i], q->max_tokens, field, T);
}

/* 200 with the results: the array for an array of texts, else the one text's result. */
static void search_reply(http_req *r, const search_req *q, json_t *results)
{
    if (q->is_array) live_reply(r, json_pack("{s:O}", "results", results));
    else live_reply(r, json_incref(json_array_get(results, 0)));
}

/* ---- search-all ---- */

typedef struct sa_task {
    search_req q;
    live_set set;
    int n_sort;
    int sort[LIVE_MAX_SORT];
} sa_task;

static void sa_task_free(sa_task *t)
{
    live_set_free(&t->set);
    free(t);
}

/* The stored feature rows of the hits, keyed "layer/index"; NULL after a reply. */
static json_t *search_neurons_or_reply(http_req *r, const sa_task *t, const live_hit *h, int nh)
{
    json_t *map = json_object();
    if (nh == 0) return map;
    const char **layers = malloc(sizeof(char *) * nh), **idx = malloc(sizeof(char *) * nh);
    char (*num)[16] = malloc(sizeof *num * nh);
    char *la = NULL, *ia = NULL;
    db_conn *c = NULL;
    PGresult *res = NULL;
    if (!layers || !idx || !num) goto oom;
    for (int i = 0; i < nh; i++) {
        layers[i] = t->set.saes[h[i].sae].id;
        snprintf(num[i], sizeof num[i], "%d", h[i].index);
        idx[i] = num[i];
    }
    la = live_pg_array(layers, nh);
    ia = live_pg_array(idx, nh);
    if (!la || !ia) goto oom;
    if (!(c = http_db(r))) goto fail;
    res = db_exec(c, DB_LIVE_NEURONS, (const char *const[]){t->q.model_id, la, ia});
    if (db_kind(res) != DB_OK) {
        http_reply_db_error(r, res, "reading the features found");
        goto fail;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        char key[200];
        snprintf(key, sizeof key, "%s/%s", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));
        json_object_set_new(map, key, json_loads(PQgetvalue(res, i, 2), 0, NULL));
    }
    goto done;
oom:
    http_reply_error(r, 500, "internal", "out of memory");
fail:
    json_decref(map);
    map = NULL;
done:
    PQclear(res);
    free(layers);
    free(idx);
    free(num);
    free(la);
    free(ia);
    return map;
}

static void sa_run(http_req *r, void *ud)
{
    sa_task *t = ud;
    const eng_ref *mr = NULL, *sr[LIVE_MAX_SAES];
    sae *s[LIVE_MAX_SAES];
    float *dens[LIVE_MAX_SAES] = {0};
    int32_t *ids[LIVE_MAX_TEXTS] = {0};
    int T[LIVE_MAX_TEXTS];
    json_t *results = json_array(), *neurons = NULL;
    live_hit *h = NULL;
    int nh = 0;
    if (live_set_engines_or_reply(r, &t->set, &mr, sr, s)) goto done;
    for (int i = 0; i < t->q.n_texts; i++) {
        char field[32];
        if (!(ids[i] = search_tokens_or_reply(r, mr, &t->q, i, field, &T[i]))) goto done;
        for (int j = 0; j < t->n_sort; j++)
            if (t->sort[j] >= T[i]) {
                http_reply_error(r, 400, "invalid_field",
                                 "sortIndexes: %d is out of range for %s, which has %d tokens (BOS included)", t->sort[j],
                                 field, T[i]);
                goto done;
            }
    }
    if (t->q.density > 0)
        for (int i = 0; i < t->set.n; i++)
            if (!(dens[i] = live_density_or_reply(r, t->q.model_id, t->set.saes[i].id, s[i]))) goto done;
    json_t *sorted = json_array();
    for (int j = 0; j < t->n_sort; j++) json_array_append_new(sorted, json_integer(t->sort[j]));
    for (int i = 0; i < t->q.n_texts; i++) {
        char err[1024];
        live_search_opts o = {.sort_pos = t->sort, .n_sort = t->n_sort, .zero_first = t->q.ignore_bos,
                              .density = (const float *const *)dens, .max_density = t->q.density,
                              .n_results = t->q.n_results};
        if (live_search(mr->model, s, t->set.n, ids[i], T[i], &o, &h, &nh, err, sizeof err)) {
            json_decref(sorted);
            live_reply_engine_error(r, "searching", err);
            goto done;
        }
        /* Single text: each result carries its stored feature row (null without dashboards). */
        if (!t->q.is_array && !(neurons = search_neurons_or_reply(r, t, h, nh))) {
            json_decref(sorted);
            goto done;
        }
        json_t *res = json_array();
        for (int k = 0; k < nh; k++) {
            json_t *vals = json_array();
            for (int p = 0; p < T[i]; p++) json_array_append_new(vals, json_real(h[k].values[p]));
            char idx[16], key[200];
            snprintf(idx, sizeof idx, "%d", h[k].index);
            json_t *o1 = json_pack("{s:s,s:s,s:s,s:o,s:f,s:i}", "modelId", t->q.model_id, "layer", t->set.saes[h[k].sae].id,
                                   "index", idx, "values", vals, "maxValue", (double)h[k].max, "maxValueIndex",
                                   h[k].argmax);
            if (neurons) {
                snprintf(key, sizeof key, "%s/%s", t->set.saes[h[k].sae].id, idx);
                json_t *n = json_object_get(neurons, key);
                json_object_set(o1, "neuron", n ? n : json_null());
            }
            json_array_append_new(res, o1);
        }
        json_array_append_new(results, json_pack("{s:o,s:o,s:O}", "tokens", live_token_strings(mr->tok, ids[i], T[i]),
                                                 "result", res, "sortIndexes", sorted));
        json_decref(neurons);
        neurons = NULL;
        live_hits_free(h, nh);
        h = NULL;
    }
    json_decref(sorted);
    search_reply(r, &t->q, results);
done:
    json_decref(results);
    live_hits_free(h, nh);
    for (int i = 0; i < t->q.n_texts; i++) free(ids[i]);
    for (int i = 0; i < t->set.n; i++) free(dens[i]);
    live_set_put(r, &t->set, mr, sr);
    sa_task_free(t);
}

void h_search_all(http_req *r)
{
    const char *model_id, *set;
    json_t *body = search_body_or_reply(r, "sourceSet", NULL, &model_id, &set);
    if (!body) return;
    sa_task *t = calloc(1, sizeof *t);
    if (!t) {
        http_reply_error(r, 500, "internal", "out of memory");
        return;
    }
    t->q.model_id = model_id;
    t->q.source = set;
    if (search_fields_or_reply(r, body, &t->q, 50, LIVE_MAX_SEARCH_RESULTS, -1)) goto fail;
    /* sortIndexes: positions in the tokens (BOS = 0), sorted as Neuronpedia echoes them; a
     * missing one means none (rank by the maximum over the text). */
    if ((t->n_sort = live_positions_or_reply(r, json_object_get(body, "sortIndexes"), "sortIndexes", t->sort)) < 0)
        goto fail;
    int rc = live_set_or_reply(r, model_id, set, json_object_get(body, "selectedLayers"), "selectedLayers", &t->set);
    if (rc == 1) live_reply_not_found(r);
    if (rc) goto fail;
    t->q.max_tokens = t->set.max_tokens;
    if (http_defer(r, sa_run, t) == 0) return;
fail:
    sa_task_free(t);
}

/* ---- search-topk-by-token ---- */

typedef struct tk_task {
    search_req q;
    char *model_path, *sae_path;
} tk_task;

static void tk_task_free(tk_task *t)
{
    free(t->model_path);
    free(t->sae_path);
    free(t);
}

/* Stored rows of the features in idx (count entries), keyed by index; NULL after a reply. */
static json_t *topk_features_or_reply(http_req *r, const tk_task *t, const int32_t *idx, const int *count, int T, int k)
{
    json_t *map = json_object();
    int n = 0;
    for (int p = 0; p < T; p++) n += count[p];
    if (n == 0) return map;
    char (*num)[16] = malloc(sizeof *num * n);
    const char **items = malloc(sizeof(char *) * n);
    char *arr = NULL;
    PGresult *res = NULL;
    db_conn *c;
    if (!num || !items) goto oom;
    n = 0;
    for (int p = 0; p < T; p++)
        for (int j = 0; j < count[p]; j++) {
            snprintf(num[n], sizeof num[n], "%d", idx[(size_t)p * k + j]);
            items[n] = num[n];
            n++;
        }
    if (!(arr = live_pg_array(items, n))) goto oom;
    if (!(c = http_db(r))) goto fail;
    res = db_exec(c, DB_LIVE_TOPK_FEATURES, (const char *const[]){t->q.model_id, t->q.source, arr});
    if (db_kind(res) != DB_OK) {
        http_reply_db_error(r, res, "reading the features found");
        goto fail;
    }
    for (int i = 0; i < PQntuples(res); i++)
        json_object_set_new(map, PQgetvalue(res, i, 0), json_loads(PQgetvalue(res, i, 1), 0, NULL));
    goto done;
oom:
    http_reply_error(r, 500, "internal", "out of memory");
fail:
    json_decref(map);
    map = NULL;
done:
    PQclear(res);
    free(num);
    free(items);
    free(arr);
    return map;
}

static void tk_run(http_req *r, void *ud)
{
    tk_task *t = ud;
    const int k = t->q.n_results;
    saed_app *app = http_app(r);
    const eng_ref *mr = live_model_or_reply(r, t->model_path);
    const eng_ref *sr = mr ? live_sae_or_reply(r, t->sae_path) : NULL;
    int32_t *ids[LIVE_MAX_TEXTS] = {0}, *idx = NULL;
    int T[LIVE_MAX_TEXTS], *count = NULL;
    float *dens = NULL, *val = NULL;
    json_t *results = json_array(), *feats = NULL;
    if (!sr) goto done;
    for (int i = 0; i < t->q.n_texts; i++) {
        char field[32];
        if (!(ids[i] = search_tokens_or_reply(r, mr, &t->q, i, field, &T[i]))) goto done;
    }
    if (t->q.density > 0 && !(dens = live_density_or_reply(r, t->q.model_id, t->q.source, sr->sae))) goto done;
    const int bos = tok_prompt_bos(mr->tok);
    for (int i = 0; i < t->q.n_texts; i++) {
        char err[1024];
        free(idx);
        free(val);
        free(count);
        idx = malloc(sizeof(int32_t) * (size_t)T[i] * k);
        val = malloc(sizeof(float) * (size_t)T[i] * k);
        count = malloc(sizeof(int) * (size_t)T[i]);
        if (!idx || !val || !count) {
            http_reply_error(r, 500, "internal", "out of memory");
            goto done;
        }
        if (live_topk_by_token(mr->model, sr->sae, ids[i], T[i], k, dens, t->q.density, idx, val, count, err,
                               sizeof err)) {
            live_reply_engine_error(r, "searching", err);
            goto done;
        }
        if (!t->q.is_array && !(feats = topk_features_or_reply(r, t, idx, count, T[i], k))) goto done;
        json_t *rows = json_array();
        for (int p = 0; p < T[i]; p++) {
            int special = ids[i][p] == bos || tok_special_id(mr->tok, ids[i][p]);
            if (special && t->q.ignore_bos) continue;
            json_t *tf = json_array();
            for (int j = 0; j < count[p]; j++) {
                int fi = idx[(size_t)p * k + j];
                json_t *o = json_pack("{s:f,s:i}", "activationValue", (double)val[(size_t)p * k + j], "featureIndex", fi);
                if (feats) {
                    char key[16];
                    snprintf(key, sizeof key, "%d", fi);
                    json_t *row = json_object_get(feats, key);
                    json_object_set(o, "feature", row ? row : json_null());
                }
                json_array_append_new(tf, o);
            }
            char *s = tok_token_str(mr->tok, ids[i][p]);
            json_array_append_new(rows, json_pack("{s:i,s:s,s:b,s:o}", "position", p, "token", s ? s : "", "isSpecial",
                                                  special, "topFeatures", tf));
            free(s);
        }
        json_array_append_new(results, json_pack("{s:s,s:o}", "source", t->q.source, "results", rows));
        json_decref(feats);
        feats = NULL;
    }
    search_reply(r, &t->q, results);
done:
    json_decref(results);
    json_decref(feats);
    free(idx);
    free(val);
    free(count);
    free(dens);
    for (int i = 0; i < t->q.n_texts; i++) free(ids[i]);
    engines_put(app->engines, sr);
    engines_put(app->engines, mr);
    tk_task_free(t);
}

void h_search_topk_by_token(http_req *r)
{
    const char *model_id, *source;
    json_t *body = search_body_or_reply(r, "source", "layer", &model_id, &source);
    if (!body) return;
    tk_task *t = calloc(1, sizeof *t);
    if (!t) {
        http_reply_error(r, 500, "internal", "out of memory");
        return;
    }
    t->q.model_id = model_id;
    t->q.source = source;
    if (search_fields_or_reply(r, body, &t->q, 10, LIVE_MAX_TOPK_RESULTS, 0.01)) {
        tk_task_free(t);
        return;
    }
    db_conn *c = http_db(r);
    if (!c) {
        tk_task_free(t);
        return;
    }
    PGresult *res = db_exec(c, DB_LIVE_SAE, (const char *const[]){model_id, source});
    int found = 0;
    if (db_kind(res) != DB_OK) {
        http_reply_db_error(r, res, "looking up the SAE");
    } else if (PQntuples(res) == 0) {
        live_reply_not_found(r);
    } else {
        found = 1;
        t->model_path = strdup(PQgetvalue(res, 0, 0));
        t->sae_path = strdup(PQgetvalue(res, 0, 1));
        t->q.max_tokens = live_max_tokens(r, atoi(PQgetvalue(res, 0, 3)));
    }
    PQclear(res);
    if (found && (!t->model_path || !t->sae_path)) http_reply_error(r, 500, "internal", "out of memory");
    if (!found || !t->model_path || !t->sae_path || http_defer(r, tk_run, t)) tk_task_free(t);
}
