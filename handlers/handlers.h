/* handlers.h: one entry point per route; the table that binds them is routes.c. */
#ifndef SAED_HANDLERS_H
#define SAED_HANDLERS_H

#include "server/http.h"
#include "server/registry.h"

/* Shared reply helpers (common.c). */
void reply_svc(http_req *r, const svc_err *e);                      /* registry error → status */
/* The same error with one more top-level field (key: extra, not stolen), e.g. a push's Hub
 * result when only its SAELens pull request failed. */
void reply_svc_with(http_req *r, const svc_err *e, const char *key, json_t *extra);
void reply_json_text(http_req *r, int status, const char *text);    /* JSON built by the database */
/* dir as a .tar.gz of prefix/... (200 application/gzip, or 500); dir is left for the caller. */
void reply_targz_dir(http_req *r, const char *dir, const char *prefix);

/* pull.c: whether a POST /api/models (sae 0) or /api/saes (sae 1) body asks for a Hub pull,
 * and the reply that queues it (target "model" or "sae"). */
int body_is_pull(json_t *body, int sae);
void reply_pull_job(http_req *r, const char *target);

void h_healthz(http_req *r);
void h_readyz(http_req *r);
void h_openapi(http_req *r);
void h_metrics(http_req *r);
/* The feature page (web.c): embedded HTML, CSS and JS. */
void h_web_index(http_req *r);
void h_web_feature(http_req *r);
void h_web_static(http_req *r);
void h_models_list(http_req *r);
void h_models_create(http_req *r);
void h_models_get(http_req *r);
void h_models_delete(http_req *r);
void h_saes_list(http_req *r);
void h_saes_create(http_req *r);
void h_saes_get(http_req *r);
void h_saes_delete(http_req *r);
void h_saes_export(http_req *r);
void h_saes_push(http_req *r);
void h_jobs_create(http_req *r);
void h_jobs_get(http_req *r);
void h_jobs_list(http_req *r);
void h_jobs_cancel(http_req *r);
void h_export_dashboards(http_req *r);
/* AutoInterp (jobs.c, autointerp.c). */
void h_ai_jobs_create(http_req *r);
void h_ai_jobs_get(http_req *r);
void h_ai_jobs_list(http_req *r);
void h_ai_jobs_cancel(http_req *r);
void h_explanation_score(http_req *r);
void h_v1_explain_default(http_req *r);
void h_v1_score_fuzz_detection(http_req *r);
void h_v1_score_embedding(http_req *r);
/* Compute routes (run on the compute pool; no API key, like Neuronpedia's). */
void h_activation_new(http_req *r);
void h_search_all(http_req *r);
void h_search_topk_by_token(http_req *r);

/* Neuronpedia-compatible read API. np.c: request helpers shared by feature.c, vector.c and
 * explanation.c. */
typedef struct np_ref {
    const char *model, *layer;
    char index[16];                 /* canonical decimal string */
} np_ref;
/* modelId, layer (or its alias source) and index (an integer or its decimal string) of obj;
 * on error replies 400 naming the field (after where, e.g. "features[2].") and returns -1. */
/* A feature index as Neuronpedia accepts it (an integer >= 0 or a decimal string of one) in
 * canonical form ("007" -> "7", as stored); -1 when it is not one. */
int np_index_canon(json_t *v, char out[16]);
int np_ref_or_reply(http_req *r, json_t *obj, const char *where, np_ref *ref);
/* 404 with Neuronpedia's message for a model, source or feature that does not exist. */
void np_reply_not_found(http_req *r);
void h_feature_get(http_req *r);
void h_features_post(http_req *r);
void h_vector_get(http_req *r);
void h_explanation_new(http_req *r);
void h_explanation_export(http_req *r);
void h_explanation_search(http_req *r);
void h_explanation_search_model(http_req *r);
void h_explanation_search_all(http_req *r);
void h_explanation_import(http_req *r);
void h_steer(http_req *r);
void h_steer_get(http_req *r);
void h_steer_chat(http_req *r);
/* One server-sent event `[event: name\n]data: <json>\n\n` on st (steer.c); steals j. 0, or -1
 * once the client is gone. supersede as http_stream_write's. */
int sse_send(http_stream *st, const char *event, json_t *j, bool supersede);
/* Neuronpedia inference-server compatibility (v1.c, v1_all.c, v1_util.c, v1_init.c). */
void h_v1_health(http_req *r);
void h_v1_capabilities(http_req *r);
void h_v1_initialize(http_req *r);
void h_v1_tokenize(http_req *r);
void h_v1_activation_single(http_req *r);
void h_v1_activation_single_batch(http_req *r);
void h_v1_activation_all(http_req *r);
void h_v1_activation_all_batch(http_req *r);
void h_v1_activation_source(http_req *r);
void h_v1_sae_vector(http_req *r);
void h_v1_sae_topk_by_decoder_cossim(http_req *r);
void h_v1_topk_by_token(http_req *r);
void h_v1_topk_by_token_batch(http_req *r);
/* Its steering routes (v1_steer.c). */
void h_v1_steer_completion(http_req *r);
void h_v1_steer_completion_chat(http_req *r);
void h_v1_steer_health(http_req *r);

#endif
