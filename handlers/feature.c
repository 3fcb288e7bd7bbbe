/* feature.c: GET /api/feature/{modelId}/{layer}/{index} and POST /api/features, Neuronpedia's
 * feature pages as JSON. PostgreSQL builds each response in one statement (DB_FEATURE_GET:
 * the Neuron row, its model, source and source set, activations by maxValue, explanations with
 * their scores); GET responses are kept in the feature cache (server/fcache.h), which the
 * database's change notifications keep true. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers/handlers.h"
#include "server/explanations.h"  // defines: expl_index_canon
#include "server/fcache.h"        // defines: fcache_get, fcache_put

#define NP_FEATURES_MAX 256      /* features per POST /api/features */
#define NP_MAX_ACTS 1000         /* largest maxActsToReturn */

static void release_body(void *b) { fcache_release(b); }

void h_feature_get(http_req *r)
{
    const char *model = http_param(r, "modelId"), *layer = http_param(r, "layer");
    char idx[16], key[400];
    /* Ids that cannot exist and indices that are not numbers: nothing to ask the database. */
    if (!registry_id_valid(model) || !registry_id_valid(layer) || expl_index_canon(http_param(r, "index"), idx)) {
        np_reply_not_found(r);
        return;
    }
    snprintf(key, sizeof key, "%s/%s/%s", model, layer, idx);
    saed_app *app = http_app(r);
    const fcache_body *b = fcache_get(app->fcache, key);
    if (b) { /* sent from the cache's buffer; the reference is dropped once it is out */
        http_reply_shared(r, 200, "application/json", fcache_data(b), fcache_len(b), release_body, (void *)b);
        return;
    }
    fcache_ticket t;
    fcache_begin(app->fcache, model, layer, &t);
    db_conn *c = http_db(r);
    if (!c) return;
    PGresult *res = db_exec(c, DB_FEATURE_GET, (const char *const[]){model, layer, idx, NULL});
    if (db_kind(res) != DB_OK) {
        http_reply_db_error(r, res, "reading the feature");
    } else if (PQntuples(res) == 0) {
        np_reply_not_found(r);
    } else {
        const char *body = PQgetvalue(res, 0, 0);
        size_t len = (size_t)PQgetlength(res, 0, 0);
        fcache_put(app->fcache, &t, key, body, len);
        http_reply_raw(r, 200, "application/json", body, len);
    }
    PQclear(res);
}

void h_features_post(http_req *r)
{
    json_t *body = http_json(r);
    if (!json_is_array(body)) {
        http_reply_error(r, 400, "invalid_body", "request body must be a JSON array of {modelId, layer, index, maxActsToReturn?}");
        return;
    }
    if (json_array_size(body) > NP_FEATURES_MAX) {
        http_reply_error(r, 400, "too_many_features", "at most %d features per request (got %zu)", NP_FEATURES_MAX,
                         json_array_size(body));
        return;
    }
    json_t *q = json_array();
    size_t i;
    json_t *item;
    json_array_foreach(body, i, item) {
        char where[32];
        np_ref ref;
        snprintf(where, sizeof where, "[%zu].", i);
        if (np_ref_or_reply(r, item, where, &ref)) {
            json_decref(q);
            return;
        }
        json_t *n = json_object_get(item, "maxActsToReturn");
        if (n && !json_is_null(n) &&
            (!json_is_integer(n) || json_integer_value(n) < 0 || json_integer_value(n) > NP_MAX_ACTS)) {
            http_reply_error(r, 400, "invalid_field", "%smaxActsToReturn: expected an integer in [0, %d] (0: all)", where,
                             NP_MAX_ACTS);
            json_decref(q);
            return;
        }
        json_int_t nv = json_integer_value(n); /* 0 when absent: every activation, as upstream */
        json_array_append_new(q, json_pack("{s:s,s:s,s:s,s:o}", "modelId", ref.model, "layer", ref.layer, "index", ref.index,
                                           "n", nv > 0 ? json_integer(nv) : json_null()));
    }
    char *text = json_dumps(q, JSON_COMPACT);
    json_decref(q);
    db_conn *c = text ? http_db(r) : NULL;
    if (!c) {
        if (!text) http_reply_error(r, 500, "internal", "out of memory");
        free(text);
        return;
    }
    PGresult *res = db_exec(c, DB_FEATURES_GET_MANY, (const char *const[]){text});
    free(text);
    if (db_kind(res) != DB_OK) http_reply_db_error(r, res, "reading features");
    else reply_json_text(r, 200, PQgetvalue(res, 0, 0));
    PQclear(res);
}
