/* registry.h: the model registry as a service used by both the HTTP handlers and the CLI
 * (`saed import-model`), so the two write through the same validation and SQL. Knows SQL (via
 * db/) and the engine, not HTTP: failures come back as an svc_err the caller maps. */
#ifndef SAED_REGISTRY_H
#define SAED_REGISTRY_H

#include "db/db.h"

/* SVC_UPSTREAM: another service (the Hugging Face Hub) refused or failed: 502. */
enum svc_kind { SVC_OK, SVC_INVALID, SVC_FORBIDDEN, SVC_NOT_FOUND, SVC_CONFLICT, SVC_UNAVAILABLE, SVC_INTERNAL, SVC_UPSTREAM };

typedef struct svc_err {
    enum svc_kind kind;
    char code[48];      /* snake_case, for the API's error.code */
    char msg[768];
} svc_err;

/* Fills e (kind, code, printf-style msg) and returns -1, so a failure path is one return. */
int svc_fail(svc_err *e, enum svc_kind k, const char *code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Registers a HF-layout model directory. On success *json_out is the model as the API shows
 * it (malloc'd JSON text). */
int registry_model_create(db_conn *c, char *const *roots, int nroots, const char *id, const char *path,
                          const char *display_name, char **json_out, svc_err *e);

/* Registers a SAELens folder for a registered model: cfg and weights validated, the hook's
 * width checked against the model. id and set_name are derived when NULL (Neuronpedia's
 * "{layer}-{setName}"). */
typedef struct sae_reg {
    const char *model_id, *id, *path, *set_name, *hf_repo_id, *hf_folder_id, *description;
} sae_reg;
int registry_sae_create(db_conn *c, char *const *roots, int nroots, const sae_reg *in, char **json_out, svc_err *e);

/* Exports a registered SAE to out_dir in SAELens layout (format 5 or 6) plus a
 * pretrained_saes.yaml snippet; sparsity.safetensors when dashboards measured the density. */
int registry_sae_export(db_conn *c, const char *model_id, const char *sae_id, int format, const char *out_dir,
                        svc_err *e);

/* The same with the pretrained_saes.yaml entry naming repo_id and folder_id (NULL: the SAE's
 * recorded hfRepoId / hfFolderId), as a push to the Hub needs. */
int registry_sae_export_to(db_conn *c, const char *model_id, const char *sae_id, int format, const char *out_dir,
                           const char *repo_id, const char *folder_id, svc_err *e);

/* Returns 1 when the id is a valid model/SAE id. */
int registry_id_valid(const char *id);

/* Fills e from a failed database result; what names the operation. */
void registry_db_err(svc_err *e, const PGresult *r, const char *what);

#endif
