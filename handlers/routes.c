/* routes.c: the one route table of saed. Order matters only between a literal and a
 * templated pattern that both match; the first listed wins. */
#include "handlers/handlers.h"

const http_route http_routes[] = {
    {"GET", "/healthz", h_healthz, 0},
    {"GET", "/readyz", h_readyz, 0},
    {"GET", "/openapi.yaml", h_openapi, 0},
    {"GET", "/metrics", h_metrics, 0},
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
    {"GET", "/api/dashboard-jobs", h_jobs_list, ROUTE_SCHEMA},
    {"POST", "/api/dashboard-jobs", h_jobs_create, ROUTE_JSON | ROUTE_AUTH | ROUTE_SCHEMA},
    {"GET", "/api/dashboard-jobs/{id}", h_jobs_get, ROUTE_SCHEMA},
    {"POST", "/api/dashboard-jobs/{id}/cancel", h_jobs_cancel, ROUTE_AUTH | ROUTE_SCHEMA},
    /* Like the SAE export: reads and compresses every stored row of the SAE, so a key is needed. */
    {"GET", "/api/export/{modelId}/{saeId}", h_export_dashboards, ROUTE_AUTH | ROUTE_SCHEMA},
    /* Steering: open like Neuronpedia's (generation runs on the bounded compute pool). */
    {"POST", "/api/steer", h_steer, ROUTE_JSON | ROUTE_SCHEMA},
    {"GET", "/api/steer/{id}", h_steer_get, ROUTE_SCHEMA},
    {"POST", "/api/steer-chat", h_steer_chat, ROUTE_JSON | ROUTE_SCHEMA},
};
const int http_n_routes = sizeof http_routes / sizeof http_routes[0];
