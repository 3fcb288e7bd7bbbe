/* registry.c: see registry.h. */
#include "server/registry.h"

#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/hfconfig.h"
#include "engine/safetensors.h"
#include "server/log.h"
#include "server/paths.h"

int svc_fail(svc_err *e, enum svc_kind k, const char *code, const char *fmt, ...)
{
    va_list ap;
    e->kind = k;
    snprintf(e->code, sizeof e->code, "%s", code);
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return -1;
}

int registry_id_valid(const char *id)
{
    size_t l = id ? strlen(id) : 0;
    if (l == 0 || l > 128) return 0;
    for (size_t i = 0; i < l; i++) {
        char ch = id[i];
        int alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
        if (!alnum && (i == 0 || (ch != '.' && ch != '_' && ch != '-'))) return 0;
    }
    return 1;
}

void registry_db_err(svc_err *e, const PGresult *r, const char *what)
{
    char m[512];
    switch (db_kind(r)) {
    case DB_UNAVAILABLE:
        log_warn("database unavailable while %s: %s", what, db_errmsg(r, m, sizeof m));
        svc_fail(e, SVC_UNAVAILABLE, "database_unavailable", "database unavailable while %s", what);
        break;
    case DB_NOT_MIGRATED: svc_fail(e, SVC_UNAVAILABLE, "not_migrated", "database schema is missing; run `saed migrate`"); break;
    case DB_RETRYABLE: svc_fail(e, SVC_UNAVAILABLE, "conflict_retry", "concurrent update while %s; retry", what); break;
    case DB_INVALID: svc_fail(e, SVC_INVALID, "invalid_value", "the database rejected a value while %s", what); break;
    case DB_UNIQUE: svc_fail(e, SVC_CONFLICT, "conflict", "already exists (%s)", what); break;
    case DB_FOREIGN_KEY: svc_fail(e, SVC_CONFLICT, "conflict", "still referenced, or refers to something missing (%s)", what); break;
    default:
        /* The database's own text stays in the log; clients get no internals. */
        log_error("database error while %s: %s", what, db_errmsg(r, m, sizeof m));
        svc_fail(e, SVC_INTERNAL, "internal", "internal error while %s", what);
    }
}

int registry_model_create(db_conn *c, char *const *roots, int nroots, const char *id, const char *path,
                          const char *display_name, char **json_out, svc_err *e)
{
    *json_out = NULL;
    if (!registry_id_valid(id))
        return svc_fail(e, SVC_INVALID, "invalid_field",
                   "id: must be 1-128 characters of letters, digits, '.', '_' or '-', starting with a letter or digit");
    if (!path || !*path) return svc_fail(e, SVC_INVALID, "invalid_field", "path: required");
    if (display_name && strlen(display_name) > 256)
        return svc_fail(e, SVC_INVALID, "invalid_field", "displayName: longer than 256 characters");
    char real[4096];
    if (nroots == 0)
        return svc_fail(e, SVC_FORBIDDEN, "path_forbidden", "path: no SAED_DATA_ROOTS are configured, so no path is allowed");
    if (paths_confine(roots, nroots, path, real, sizeof real))
        return svc_fail(e, SVC_FORBIDDEN, "path_forbidden", "path: '%s' is not an existing path under SAED_DATA_ROOTS", path);
    char err[600];
    if (paths_confine_files(roots, nroots, real, (const char *const[]){"config.json", "model.safetensors",
                                                                      "model.safetensors.index.json", NULL}, err, sizeof err))
        return svc_fail(e, SVC_FORBIDDEN, "path_forbidden", "path: %s", err);
    hf_config hc;
    if (hf_config_load(real, &hc, err, sizeof err))
        return svc_fail(e, SVC_INVALID, "invalid_model", "path: %s", err);
    /* The tensor index (headers only; no weight is read): the embedding must be there. */
    st_file *st = st_open(real, err, sizeof err);
    if (!st) {
        hf_config_free(&hc);
        return svc_fail(e, SVC_INVALID, "invalid_model", "path: %s", err);
    }
    /* the token embedding under each family's name */
    static const char *const embed_names[] = {"transformer.wte.weight", "wte.weight", "model.embed_tokens.weight",
                                              "embed_tokens.weight", "gpt_neox.embed_in.weight", "embed_in.weight"};
    const st_tensor *wte = NULL;
    for (size_t i = 0; !wte && i < sizeof embed_names / sizeof embed_names[0]; i++) wte = st_find(st, embed_names[i]);
    int wte_ok = wte && wte->ndim == 2 && wte->shape[0] == hc.vocab_size && wte->shape[1] == hc.d_model;
    st_close(st);
    if (!wte_ok) {
        hf_config_free(&hc);
        return svc_fail(e, SVC_INVALID, "invalid_model", "path: the weights have no token embedding of shape [%d, %d] (vocab_size, d_model)",
                   hc.vocab_size, hc.d_model);
    }
    char layers[16], dim[16], ctx[16], vocab[16];
    snprintf(layers, sizeof layers, "%d", hc.n_layer);
    snprintf(dim, sizeof dim, "%d", hc.d_model);
    snprintf(ctx, sizeof ctx, "%d", hc.n_ctx);
    snprintf(vocab, sizeof vocab, "%d", hc.vocab_size);
    const char *dn = display_name && *display_name ? display_name : id;
    /* neuronsPerLayer follows Neuronpedia: the MLP width (4·d_model for GPT-2). */
    char npl[16];
    snprintf(npl, sizeof npl, "%d", hc.d_mlp);
    const char *p[] = {id, dn, dn, hc.architecture, layers, dim, npl, ctx, vocab, real, hc.json};
    PGresult *r = db_exec(c, DB_MODEL_INSERT, p);
    hf_config_free(&hc);
    int rc = 0;
    if (db_kind(r) == DB_UNIQUE) rc = svc_fail(e, SVC_CONFLICT, "conflict", "model '%s' already exists", id);
    else if (db_kind(r) != DB_OK) rc = (registry_db_err(e, r, "registering the model"), -1);
    else *json_out = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    if (rc == 0 && !*json_out) rc = svc_fail(e, SVC_INTERNAL, "internal", "out of memory");
    return rc;
}
