/* handlers.h: one entry point per route; the table that binds them is routes.c. */
#ifndef SAED_HANDLERS_H
#define SAED_HANDLERS_H

#include "server/http.h"

void h_healthz(http_req *r);
void h_readyz(http_req *r);
void h_openapi(http_req *r);
void h_metrics(http_req *r);
void h_models_list(http_req *r);
void h_models_create(http_req *r);
void h_models_get(http_req *r);
void h_models_delete(http_req *r);

#endif
