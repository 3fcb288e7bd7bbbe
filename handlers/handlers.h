/* handlers.h: one entry point per route; the table that binds them is routes.c. */
#ifndef SAED_HANDLERS_H
#define SAED_HANDLERS_H

#include "server/http.h"
#include "server/registry.h"

/* Shared reply helpers (common.c). */
void reply_svc(http_req *r, const svc_err *e);                      /* registry error → status */
void reply_json_text(http_req *r, int status, const char *text);    /* JSON built by the database */
/* dir as a .tar.gz of prefix/... (200 application/gzip, or 500); dir is left for the caller. */
void reply_targz_dir(http_req *r, const char *dir, const char *prefix);

void h_healthz(http_req *r);
void h_readyz(http_req *r);
void h_openapi(http_req *r);
void h_metrics(http_req *r);
void h_models_list(http_req *r);
void h_models_create(http_req *r);
void h_models_get(http_req *r);
void h_models_delete(http_req *r);
void h_saes_list(http_req *r);
void h_saes_create(http_req *r);
void h_saes_get(http_req *r);
void h_saes_delete(http_req *r);
void h_saes_export(http_req *r);
void h_jobs_create(http_req *r);
void h_jobs_get(http_req *r);
void h_jobs_list(http_req *r);
void h_jobs_cancel(http_req *r);
void h_export_dashboards(http_req *r);
void h_steer(http_req *r);
void h_steer_get(http_req *r);
void h_steer_chat(http_req *r);

#endif
