/* routes.c: the one route table of saed. Order matters only between a literal and a
 * templated pattern that both match; the first listed wins. */
#include "handlers/handlers.h"

const http_route http_routes[] = {
    {"GET", "/healthz", h_healthz, 0},
    {"GET", "/readyz", h_readyz, 0},
    {"GET", "/openapi.yaml", h_openapi, 0},
    {"GET", "/metrics", h_metrics, 0},
    /* The feature page: static files embedded in the binary, open like the read routes. */
    {"GET", "/", h_web_index, 0},
    {"GET", "/feature/{modelId}/{layer}/{index}", h_web_feature, 0},
    {"GET", "/static/{name}", h_web_static, 0},
    {"GET", "/api/models", h_models_list, ROUTE_SCHEMA},
    {"POST", "/api/models", h_models_create, ROUTE_JSON | ROUTE_AUTH | ROUTE_SCHEMA},
    {"GET", "/api/models/{id}", h_models_get, ROUTE_SCHEMA},
    {"DELETE", "/api/models/{id}", h_models_delete, ROUTE_AUTH | ROUTE_SCHEMA},
    {"GET", "/api/saes", h_saes_list, ROUTE_SCHEMA},
    {"POST", "/api/saes", h_saes_create, ROUTE_JSON | ROUTE_AUTH | ROUTE_SCHEMA},
    {"GET", "/api/saes/{modelId}/{id}", h_saes_get, ROUTE_SCHEMA},
    {"DELETE", "/api/saes/{modelId}/{id}", h_saes_delete, ROUTE_AUTH | ROUTE_SCHEMA},
    /* Export reads and compresses the whole SAE: a key is needed, like the write routes. */
    {"GET", "/api/saes/{modelId}/{id}/export", h_saes_export, ROUTE_AUTH | ROUTE_SCHEMA},
    /* Hugging Face Hub: a push uses saed's HF_TOKEN, so a key is needed. */
    {"POST", "/api/saes/{modelId}/{id}/push", h_saes_push, ROUTE_JSON | ROUTE_AUTH | ROUTE_SCHEMA},
    {"GET", "/api/dashboard-jobs", h_jobs_list, ROUTE_SCHEMA},
    {"POST", "/api/dashboard-jobs", h_jobs_create, ROUTE_JSON | ROUTE_AUTH | ROUTE_SCHEMA},
    {"GET", "/api/dashboard-jobs/{id}", h_jobs_get, ROUTE_SCHEMA},
    {"POST", "/api/dashboard-jobs/{id}/cancel", h_jobs_cancel, ROUTE_AUTH | ROUTE_SCHEMA},
    /* AutoInterp: jobs like the dashboard jobs; the scoring routes spend LLM requests, so the
     * saed one needs a key; Neuronpedia's autointerp-server routes carry the caller's own
     * LLM key (openrouterKey) and ask only the configured SAED_LLM_BASE_URL, so they are open. */
    {"GET", "/api/autointerp-jobs", h_ai_jobs_list, ROUTE_SCHEMA},
    {"POST", "/api/autointerp-jobs", h_ai_jobs_create, ROUTE_JSON | ROUTE_AUTH | ROUTE_SCHEMA},
    {"GET", "/api/autointerp-jobs/{id}", h_ai_jobs_get, ROUTE_SCHEMA},
    {"POST", "/api/autointerp-jobs/{id}/cancel", h_ai_jobs_cancel, ROUTE_AUTH | ROUTE_SCHEMA},
    {"POST", "/api/explanation/score", h_explanation_score, ROUTE_JSON | ROUTE_AUTH | ROUTE_SCHEMA},
    {"POST", "/v1/explain/default", h_v1_explain_default, ROUTE_JSON | ROUTE_SCHEMA | ROUTE_V1},
    {"POST", "/v1/score/fuzz-detection", h_v1_score_fuzz_detection, ROUTE_JSON | ROUTE_SCHEMA | ROUTE_V1},
    {"POST", "/v1/score/embedding", h_v1_score_embedding, ROUTE_JSON | ROUTE_SCHEMA | ROUTE_V1},
    /* Like the SAE export: reads and compresses every stored row of the SAE, so a key is needed. */
    {"GET", "/api/export/{modelId}/{saeId}", h_export_dashboards, ROUTE_AUTH | ROUTE_SCHEMA},
    /* Live activations and searches: open like upstream's (a key, valid or not, is ignored);
     * computed on the compute pool, which bounds them instead. */
    {"POST", "/api/activation/new", h_activation_new, ROUTE_JSON | ROUTE_SCHEMA},
    {"POST", "/api/search-all", h_search_all, ROUTE_JSON | ROUTE_SCHEMA},
    {"POST", "/api/search-topk-by-token", h_search_topk_by_token, ROUTE_JSON | ROUTE_SCHEMA},
    /* Neuronpedia's read routes: no key needed (a missing or wrong one is ignored, as upstream). */
    {"GET", "/api/feature/{modelId}/{layer}/{index}", h_feature_get, ROUTE_SCHEMA},
    {"POST", "/api/features", h_features_post, ROUTE_JSON | ROUTE_SCHEMA},
    {"POST", "/api/vector/get", h_vector_get, ROUTE_JSON | ROUTE_SCHEMA},
    {"GET", "/api/explanation/export", h_explanation_export, ROUTE_SCHEMA},
    {"POST", "/api/explanation/search", h_explanation_search, ROUTE_JSON | ROUTE_SCHEMA},
    {"POST", "/api/explanation/search-model", h_explanation_search_model, ROUTE_JSON | ROUTE_SCHEMA},
    {"POST", "/api/explanation/search-all", h_explanation_search_all, ROUTE_JSON | ROUTE_SCHEMA},
    {"POST", "/api/explanation/new", h_explanation_new, ROUTE_JSON | ROUTE_AUTH | ROUTE_SCHEMA},
    /* The body is the batch file itself (or {"path": ...}), so not ROUTE_JSON. */
    {"POST", "/api/explanation/import", h_explanation_import, ROUTE_AUTH | ROUTE_SCHEMA},
    /* Steering: open like Neuronpedia's (generation runs on the bounded compute pool). */
    {"POST", "/api/steer", h_steer, ROUTE_JSON | ROUTE_SCHEMA},
    {"GET", "/api/steer/{id}", h_steer_get, ROUTE_SCHEMA},
    {"POST", "/api/steer-chat", h_steer_chat, ROUTE_JSON | ROUTE_SCHEMA},
    /* Neuronpedia's inference-server wire (v1.c): X-SECRET-KEY when SAED_V1_SECRET is set. */
    {"GET", "/health", h_v1_health, ROUTE_V1},
    {"GET", "/v1/capabilities", h_v1_capabilities, ROUTE_V1},
    /* The body is optional ({model?, sources?}), so not ROUTE_JSON. */
    {"POST", "/initialize", h_v1_initialize, ROUTE_SCHEMA | ROUTE_V1},
    {"POST", "/v1/tokenize", h_v1_tokenize, ROUTE_JSON | ROUTE_SCHEMA | ROUTE_V1},
    {"POST", "/v1/activation/single", h_v1_activation_single, ROUTE_JSON | ROUTE_SCHEMA | ROUTE_V1},
    {"POST", "/v1/activation/single-batch", h_v1_activation_single_batch, ROUTE_JSON | ROUTE_SCHEMA | ROUTE_V1},
    {"POST", "/v1/activation/all", h_v1_activation_all, ROUTE_JSON | ROUTE_SCHEMA | ROUTE_V1},
    {"POST", "/v1/activation/all-batch", h_v1_activation_all_batch, ROUTE_JSON | ROUTE_SCHEMA | ROUTE_V1},
    {"POST", "/v1/activation/source", h_v1_activation_source, ROUTE_JSON | ROUTE_SCHEMA | ROUTE_V1},
    {"POST", "/v1/activation/topk-by-token", h_v1_topk_by_token, ROUTE_JSON | ROUTE_SCHEMA | ROUTE_V1},
    {"POST", "/v1/activation/topk-by-token-batch", h_v1_topk_by_token_batch, ROUTE_JSON | ROUTE_SCHEMA | ROUTE_V1},
    {"POST", "/v1/util/sae-vector", h_v1_sae_vector, ROUTE_JSON | ROUTE_SCHEMA | ROUTE_V1},
    {"POST", "/v1/util/sae-topk-by-decoder-cossim", h_v1_sae_topk_by_decoder_cossim,
     ROUTE_JSON | ROUTE_SCHEMA | ROUTE_V1},
    {"POST", "/v1/steer/completion", h_v1_steer_completion, ROUTE_JSON | ROUTE_SCHEMA | ROUTE_V1},
    {"POST", "/v1/steer/completion-chat", h_v1_steer_completion_chat, ROUTE_JSON | ROUTE_SCHEMA | ROUTE_V1},
    {"GET", "/v1/steer/health", h_v1_steer_health, ROUTE_V1},
};
const int http_n_routes = sizeof http_routes / sizeof http_routes[0];
