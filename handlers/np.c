/* np.c: request helpers for the Neuronpedia-compatible routes. Upstream accepts a feature as
 * {modelId, layer, index} with `source` as another name for `layer` and `index` as an integer
 * or a string, ignores keys it does not know, and answers a missing model, source or feature
 * with one 404 message; these helpers do the same for feature.c, vector.c and explanation.c. */
#include <stdio.h>

#include "handlers/handlers.h"
#include "server/explanations.h"  // defines: expl_index_canon

int np_index_canon(json_t *v, char out[16])
{
    char num[32];
    if (json_is_integer(v) && json_integer_value(v) >= 0) snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
    else snprintf(num, sizeof num, "%s", json_is_string(v) ? json_string_value(v) : "-");
    return expl_index_canon(num, out);
}

int np_ref_or_reply(http_req *r, json_t *o, const char *where, np_ref *ref)
{
    if (!json_is_object(o)) {
        http_reply_error(r, 400, "invalid_body", "%s: expected a JSON object with modelId, layer and index",
                         *where ? where : "request body");
        return -1;
    }
    ref->model = json_string_value(json_object_get(o, "modelId"));
    json_t *lv = json_object_get(o, "layer");
    if (!lv || json_is_null(lv)) lv = json_object_get(o, "source");
    ref->layer = json_string_value(lv);
    if (!ref->model || !*ref->model) {
        http_reply_error(r, 400, "invalid_field", "%smodelId: required string", where);
        return -1;
    }
    if (!ref->layer || !*ref->layer) {
        http_reply_error(r, 400, "invalid_field", "%slayer: required string (the SAE id, e.g. 6-res-jb; `source` is accepted too)",
                         where);
        return -1;
    }
    if (np_index_canon(json_object_get(o, "index"), ref->index)) {
        http_reply_error(r, 400, "invalid_field", "%sindex: expected a feature index (a non-negative integer or its decimal string)",
                         where);
        return -1;
    }
    return 0;
}

void np_reply_not_found(http_req *r)
{
    /* Upstream's first sentence, word for word: clients match on it. */
    http_reply_error(r, 404, "not_found",
                     "The model, source, or feature you specified is not available. Check the available models and"
                     " sources at /api/models and /api/saes.");
}
