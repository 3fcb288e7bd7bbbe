/* v1_util.c: POST /v1/util/sae-topk-by-decoder-cossim on Neuronpedia's inference-server wire
 * (v1.c has the conventions).
 *
 * sae-topk-by-decoder-cossim: the numResults (clamped to 1..128 and the SAE's width) features
 * of `source` whose decoder rows are closest in cosine to feature.index's row (itself
 * included, first) or to `vector`; exactly one of the two. As upstream, feature.model and
 * feature.source are echoed, not looked up: the rows searched are those of `source`. */
#include <stdio.h>  // defines: snprintf
#include <stdlib.h> // defines: calloc, malloc, free

#include "engine/live.h"
#include "handlers/handlers.h"
#include "handlers/live.h"
#include "handlers/v1.h"

#define V1_COSSIM_MAX_RESULTS 128 /* upstream's clamp */

typedef struct cos_task {
    char *model_path, *sae_path;
    const char *model, *source;   /* borrowed from the body */
    json_t *feature;              /* the body's feature (borrowed) or NULL */
    int index, k, n_vec;
    float *vec;                   /* the body's vector, or NULL */
} cos_task;

static void cos_task_free(cos_task *t)
{
    free(t->model_path);
    free(t->sae_path);
    free(t->vec);
    free(t);
}

static void cos_run(http_req *r, void *ud)
{
    cos_task *t = ud;
    saed_app *app = http_app(r);
    const eng_ref *sr = live_sae_or_reply(r, t->sae_path);
    int32_t *idx = malloc(sizeof(int32_t) * (size_t)t->k);
    float *val = malloc(sizeof(float) * (size_t)t->k), *q = NULL;
    char err[1024];
    if (!sr) goto done;
    const sae_cfg *c = sae_config(sr->sae);
    if (!idx || !val) {
        http_reply_error(r, 500, "internal", "out of memory");
        goto done;
    }
    if (t->vec && t->n_vec != c->d_out) {
        http_reply_error(r, 400, "invalid_field", "vector: has %d entries, the decoder rows of %s have %d", t->n_vec,
                         t->source, c->d_out);
        goto done;
    }
    if (!t->vec && t->index >= c->d_sae) {
        http_reply_error(r, 400, "invalid_field", "Feature index %d is out of range for %s, which has %d features",
                         t->index, t->source, c->d_sae);
        goto done;
    }
    if (!t->vec && (!(q = malloc(sizeof(float) * (size_t)c->d_out)) ||
                    sae_decoder_row(sr->sae, t->index, q, err, sizeof err))) {
        if (q) live_reply_engine_error(r, "reading the decoder", err);
        else http_reply_error(r, 500, "internal", "out of memory");
        goto done;
    }
    int n = live_decoder_nearest(sr->sae, t->vec ? t->vec : q, t->k, idx, val, err, sizeof err);
    if (n < 0) {
        live_reply_engine_error(r, "comparing the decoder rows", err);
        goto done;
    }
    json_t *top = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(top, json_pack("{s:{s:s,s:s,s:i},s:f}", "feature", "model", t->model, "source", t->source,
                                             "index", idx[i], "cosineSimilarity", (double)val[i]));
    json_t *body = json_pack("{s:o}", "topkDecoderCossimFeatures", top);
    if (t->feature)
        json_object_set_new(body, "feature",
                            json_pack("{s:O,s:O,s:i}", "model", json_object_get(t->feature, "model"), "source",
                                      json_object_get(t->feature, "source"), "index", t->index));
    live_reply(r, body);
done:
    free(idx);
    free(val);
    free(q);
    engines_put(app->engines, sr);
    cos_task_free(t);
}

/* feature: {model, source, index} (strings, index an integer >= 0) into t; -1 after a 400. */
static int cos_feature_or_reply(http_req *r, json_t *f, cos_task *t)
{
    json_t *ix = json_object_get(f, "index");
    if (!json_is_object(f) || !json_is_string(json_object_get(f, "model")) ||
        !json_is_string(json_object_get(f, "source")) || !json_is_integer(ix) || json_integer_value(ix) < 0 ||
        json_integer_value(ix) > 1 << 30) {
        http_reply_error(r, 400, "invalid_field", "feature: must be {model, source, index} with index an integer >= 0");
        return -1;
    }
    t->feature = f;
    t->index = (int)json_integer_value(ix);
    return 0;
}

/* vector: an array of 1..2^24 numbers into t->vec; -1 after a 400. */
static int cos_vector_or_reply(http_req *r, json_t *v, cos_task *t)
{
    size_t n = json_array_size(v);
    if (!json_is_array(v) || n == 0 || n > 1 << 24) {
        http_reply_error(r, 400, "invalid_field", "vector: must be a non-empty array of numbers");
        return -1;
    }
    if (!(t->vec = malloc(sizeof(float) * n))) {
        http_reply_error(r, 500, "internal", "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(v, i);
        if (!json_is_number(e)) {
            http_reply_error(r, 400, "invalid_field", "vector[%zu]: must be a number", i);
            return -1;
        }
        t->vec[i] = (float)json_number_value(e);
    }
    t->n_vec = (int)n;
    return 0;
}

void h_v1_sae_topk_by_decoder_cossim(http_req *r)
{
    json_t *body = v1_body_or_reply(r);
    if (!body) return;
    cos_task *t = calloc(1, sizeof *t);
    if (!t) {
        http_reply_error(r, 500, "internal", "out of memory");
        return;
    }
    json_t *f = json_object_get(body, "feature"), *v = json_object_get(body, "vector");
    json_t *nr = v1_field(body, "numResults", "num_results");
    int d_sae, max_tokens;
    f = json_is_null(f) ? NULL : f;
    v = json_is_null(v) ? NULL : v;
    t->model = json_string_value(json_object_get(body, "model"));
    t->source = json_string_value(json_object_get(body, "source"));
    if (!t->model || !t->source) {
        http_reply_error(r, 400, "invalid_field", "%s: required string", t->model ? "source" : "model");
        goto fail;
    }
    if (!json_is_integer(nr)) {
        http_reply_error(r, 400, "invalid_field", "numResults: required, an integer (clamped to 1..%d)",
                         V1_COSSIM_MAX_RESULTS);
        goto fail;
    }
    json_int_t k = json_integer_value(nr);
    t->k = k < 1 ? 1 : k > V1_COSSIM_MAX_RESULTS ? V1_COSSIM_MAX_RESULTS : (int)k;
    if (!f == !v) {
        http_reply_error(r, 400, "invalid_field", "Invalid request data: exactly one of feature or vector must be provided");
        goto fail;
    }
    if ((f && cos_feature_or_reply(r, f, t)) || (v && cos_vector_or_reply(r, v, t))) goto fail;
    if (v1_sae_or_reply(r, t->model, t->source, &t->model_path, &t->sae_path, &d_sae, &max_tokens)) goto fail;
    if (d_sae < t->k) t->k = d_sae;
    if (http_defer(r, cos_run, t) == 0) return;
fail:
    cos_task_free(t);
}
