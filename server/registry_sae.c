/* registry_sae.c: the SAE half of the registry (registration and export), shared by the API
 * and the CLI (`saed import-sae`, `saed export-sae`). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <jansson.h>
#include <yaml.h>

#include "engine/safetensors.h"
#include "engine/sae.h"
#include "server/log.h"
#include "server/paths.h"
#include "server/registry.h"

/* The registered model's directory; -1 with e set (404 when unknown). */
static int model_dir(db_conn *c, const char *model_id, char *dir, size_t n, svc_err *e)
{
    if (!registry_id_valid(model_id))
        return svc_fail(e, SVC_NOT_FOUND, "not_found", "model '%s' not found", model_id);
    PGresult *r = db_exec(c, DB_MODEL_PATH, (const char *const[]){model_id});
    int rc = 0;
    if (db_kind(r) != DB_OK) rc = (registry_db_err(e, r, "reading the model"), -1);
    else if (PQntuples(r) == 0) rc = svc_fail(e, SVC_NOT_FOUND, "not_found", "model '%s' not found", model_id);
    else snprintf(dir, n, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return rc;
}

/* Neuronpedia-style set name from the hook when none is given: res, att, mlp (transcoders: tc). */
static const char *default_set(const sae_cfg *cfg, const hook_point *hp)
{
    if (cfg->arch == SAE_TRANSCODER || cfg->arch == SAE_SKIP_TRANSCODER || cfg->arch == SAE_JUMPRELU_TRANSCODER) return "tc";
    switch (hp->kind) {
    case HOOK_Z: case HOOK_Q: case HOOK_K: case HOOK_V: case HOOK_ATTN_OUT: return "att";
    case HOOK_MLP_PRE: case HOOK_MLP_POST: case HOOK_MLP_OUT: return "mlp";
    default: return "res";
    }
}

int registry_sae_create(db_conn *c, char *const *roots, int nroots, const sae_reg *in, char **json_out, svc_err *e)
{
    *json_out = NULL;
    if (in->id && !registry_id_valid(in->id))
        return svc_fail(e, SVC_INVALID, "invalid_field", "id: must be 1-128 characters of letters, digits, '.', '_' or '-'");
    if (in->set_name && !registry_id_valid(in->set_name))
        return svc_fail(e, SVC_INVALID, "invalid_field", "setName: must be 1-128 characters of letters, digits, '.', '_' or '-'");
    if (!in->path || !*in->path) return svc_fail(e, SVC_INVALID, "invalid_field", "path: required");
    if (in->description && strlen(in->description) > 4096)
        return svc_fail(e, SVC_INVALID, "invalid_field", "description: longer than 4096 characters");
    if (in->hf_repo_id && strlen(in->hf_repo_id) > 256)
        return svc_fail(e, SVC_INVALID, "invalid_field", "hfRepoId: longer than 256 characters");
    if (in->hf_folder_id && strlen(in->hf_folder_id) > 1024)
        return svc_fail(e, SVC_INVALID, "invalid_field", "hfFolderId: longer than 1024 characters");
    char mdir[4096], real[4096], err[768];
    if (model_dir(c, in->model_id, mdir, sizeof mdir, e)) return -1;
    if (nroots == 0)
        return svc_fail(e, SVC_FORBIDDEN, "path_forbidden", "path: no SAED_DATA_ROOTS are configured, so no path is allowed");
    if (paths_confine(roots, nroots, in->path, real, sizeof real))
        return svc_fail(e, SVC_FORBIDDEN, "path_forbidden", "path: '%s' is not an existing path under SAED_DATA_ROOTS", in->path);
    if (paths_confine_files(roots, nroots, real, (const char *const[]){"cfg.json", "sae_weights.safetensors",
                                                                       "sparsity.safetensors", NULL}, err, sizeof err))
        return svc_fail(e, SVC_FORBIDDEN, "path_forbidden", "path: %s", err);
    hf_config hc;
    if (hf_config_load(mdir, &hc, err, sizeof err)) {
        log_error("registering an SAE for %s: %s", in->model_id, err);
        return svc_fail(e, SVC_INTERNAL, "model_unreadable", "the registered model's files no longer read (see the server log)");
    }
    sae_cfg cfg;
    hook_point hp;
    int rc = -1;
    if (sae_cfg_load(real, &cfg, err, sizeof err)) {
        hf_config_free(&hc);
        return svc_fail(e, SVC_INVALID, "invalid_sae", "path: %s", err);
    }
    if (sae_cfg_check_model(&cfg, &hc, &hp, err, sizeof err)) {
        svc_fail(e, SVC_INVALID, "invalid_sae", "path: %s", err);
        goto out;
    }
    /* Full validation (every tensor's presence, shape, dtype, finiteness) on the CPU. */
    saed_backend *cpu = backend_cpu_open();
    sae *s = cpu ? sae_load(real, cpu, &(sae_load_opts){0}, err, sizeof err) : NULL;
    sae_free(s);
    backend_close(cpu);
    if (!s) {
        svc_fail(e, SVC_INVALID, "invalid_sae", "path: %s", err);
        goto out;
    }
    const char *setname = in->set_name ? in->set_name : default_set(&cfg, &hp);
    char id[160], layer[16], d_in[16], d_sae[16];
    int L = hp.layer < 0 ? 0 : hp.layer;
    if (in->id) snprintf(id, sizeof id, "%s", in->id);
    else snprintf(id, sizeof id, "%d-%s", L, setname);
    snprintf(layer, sizeof layer, "%d", L);
    snprintf(d_in, sizeof d_in, "%d", cfg.d_in);
    snprintf(d_sae, sizeof d_sae, "%d", cfg.d_sae);
    const char *p[] = {in->model_id, id, setname, cfg.json, in->hf_repo_id, in->hf_folder_id, in->description,
                       cfg.dataset_path[0] ? cfg.dataset_path : NULL, real, cfg.hook_name, sae_arch_name(cfg.arch),
                       d_in, d_sae, layer};
    PGresult *r = db_exec(c, DB_SAE_INSERT, p);
    if (db_kind(r) == DB_UNIQUE) svc_fail(e, SVC_CONFLICT, "conflict", "SAE '%s' of model '%s' already exists", id, in->model_id);
    else if (db_kind(r) == DB_FOREIGN_KEY) svc_fail(e, SVC_NOT_FOUND, "not_found", "model '%s' not found", in->model_id);
    else if (db_kind(r) != DB_OK) registry_db_err(e, r, "registering the SAE");
    else if (!(*json_out = strdup(PQgetvalue(r, 0, 0)))) svc_fail(e, SVC_INTERNAL, "internal", "out of memory");
    else rc = 0;
    PQclear(r);
out:
    sae_cfg_free(&cfg);
    hf_config_free(&hc);
    return rc;
}

/* ---- export ---- */

/* Every event initializer can refuse (libyaml rejects invalid UTF-8) and then leaves the event
 * untouched: emitting it anyway would replay a stale, freed event. */
static int yaml_scalar(yaml_emitter_t *em, const char *s, int plain)
{
    yaml_event_t ev;
    if (!yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s, (int)strlen(s), plain, !plain,
                                      plain ? YAML_PLAIN_SCALAR_STYLE : YAML_DOUBLE_QUOTED_SCALAR_STYLE))
        return 0;
    return yaml_emitter_emit(em, &ev);
}

/* Keys plain, values quoted: a folder named "null" or "123" must stay a string. */
static int yaml_key(yaml_emitter_t *em, const char *s) { return yaml_scalar(em, s, 1); }
static int yaml_str(yaml_emitter_t *em, const char *s) { return yaml_scalar(em, s, 0); }
static int yaml_null(yaml_emitter_t *em) { return yaml_scalar(em, "null", 1); }

static int yaml_begin(yaml_emitter_t *em, int seq)
{
    yaml_event_t ev;
    int ok = seq ? yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_SEQUENCE_STYLE)
                 : yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE);
    return ok && yaml_emitter_emit(em, &ev);
}

static int yaml_end(yaml_emitter_t *em, int seq)
{
    yaml_event_t ev;
    int ok = seq ? yaml_sequence_end_event_initialize(&ev) : yaml_mapping_end_event_initialize(&ev);
    return ok && yaml_emitter_emit(em, &ev);
}

/* A pretrained_saes.yaml entry SAELens can load this export with (conversion_func null = the
 * plain sae_lens loader). */
static int write_yaml(const char *path, const char *model_id, const char *sae_id, const sae_cfg *cfg,
                      const char *repo_id, const char *folder, double l0, char *err, size_t errlen)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    yaml_emitter_t em;
    yaml_event_t ev;
    yaml_emitter_initialize(&em);
    yaml_emitter_set_output_file(&em, f);
    yaml_emitter_set_unicode(&em, 1);
    char release[300], l0s[32], np[300], nsf[32];
    snprintf(release, sizeof release, "saed-%s-%s", model_id, sae_id);
    snprintf(l0s, sizeof l0s, "%.4g", l0);
    snprintf(np, sizeof np, "%s/%s", model_id, sae_id);
    snprintf(nsf, sizeof nsf, "%.9g", cfg->norm_scaling_factor);
    int ok = yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING) && yaml_emitter_emit(&em, &ev);
    ok = ok && yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1) && yaml_emitter_emit(&em, &ev);
    ok = ok && yaml_begin(&em, 0) && yaml_key(&em, release) && yaml_begin(&em, 0);
    ok = ok && yaml_key(&em, "repo_id") && yaml_str(&em, repo_id);
    ok = ok && yaml_key(&em, "model") && yaml_str(&em, cfg->model_name[0] ? cfg->model_name : model_id);
    ok = ok && yaml_key(&em, "conversion_func") && yaml_null(&em);
    ok = ok && yaml_key(&em, "saes") && yaml_begin(&em, 1) && yaml_begin(&em, 0);
    ok = ok && yaml_key(&em, "id") && yaml_str(&em, cfg->hook_name);
    ok = ok && yaml_key(&em, "path") && yaml_str(&em, folder);
    ok = ok && yaml_key(&em, "l0") && yaml_scalar(&em, l0s, 1);
    ok = ok && yaml_key(&em, "neuronpedia") && yaml_str(&em, np);
    /* SAELens folds this factor only when it comes from pretrained_saes.yaml. */
    if (cfg->norm_scaling_factor > 0) ok = ok && yaml_key(&em, "norm_scaling_factor") && yaml_scalar(&em, nsf, 1);
    ok = ok && yaml_end(&em, 0) && yaml_end(&em, 1) && yaml_end(&em, 0) && yaml_end(&em, 0);
    ok = ok && yaml_document_end_event_initialize(&ev, 1) && yaml_emitter_emit(&em, &ev);
    ok = ok && yaml_stream_end_event_initialize(&ev) && yaml_emitter_emit(&em, &ev);
    yaml_emitter_delete(&em);
    if (fclose(f) || !ok) {
        snprintf(err, errlen, "%s: cannot write the YAML", path);
        return -1;
    }
    return 0;
}

int registry_sae_export(db_conn *c, const char *model_id, const char *sae_id, int format, const char *out_dir,
                        svc_err *e)
{
    return registry_sae_export_to(c, model_id, sae_id, format, out_dir, NULL, NULL, e);
}

int registry_sae_export_to(db_conn *c, const char *model_id, const char *sae_id, int format, const char *out_dir,
                           const char *repo_id, const char *folder_id, svc_err *e)
{
    if (!registry_id_valid(model_id) || !registry_id_valid(sae_id))
        return svc_fail(e, SVC_NOT_FOUND, "not_found", "SAE '%s' of model '%s' not found", sae_id, model_id);
    PGresult *r = db_exec(c, DB_SAE_GET, (const char *const[]){model_id, sae_id});
    if (db_kind(r) != DB_OK) {
        registry_db_err(e, r, "reading the SAE");
        PQclear(r);
        return -1;
    }
    if (PQntuples(r) == 0) {
        PQclear(r);
        return svc_fail(e, SVC_NOT_FOUND, "not_found", "SAE '%s' of model '%s' not found", sae_id, model_id);
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", PQgetvalue(r, 0, 1));
    json_t *row = json_loads(PQgetvalue(r, 0, 0), 0, NULL);
    PQclear(r);
    /* Whole strings, never cut: a cut could split a UTF-8 character. */
    const char *hr = json_string_value(json_object_get(row, "hfRepoId"));
    const char *hf = json_string_value(json_object_get(row, "hfFolderId"));
    if (repo_id) hr = repo_id;
    if (folder_id) hf = folder_id;
    char *repo = strdup(hr ? hr : "local/saed-export"), *folder = strdup(hf ? hf : ".");
    json_decref(row);
    if (!repo || !folder) {
        free(repo);
        free(folder);
        return svc_fail(e, SVC_INTERNAL, "internal", "out of memory");
    }

    char err[768];
    saed_backend *cpu = backend_cpu_open();
    sae *s = sae_load(dir, cpu, &(sae_load_opts){0}, err, sizeof err);
    if (!s) {
        backend_close(cpu);
        free(repo);
        free(folder);
        log_error("export %s/%s: %s", model_id, sae_id, err);
        return svc_fail(e, SVC_INTERNAL, "sae_unreadable", "the registered SAE's files no longer load (see the server log)");
    }
    const sae_cfg *cfg = sae_config(s);
    /* Density measured by dashboards (one frac_nonzero per feature) becomes log10 sparsity. */
    float *logsp = NULL;
    double l0 = 0;
    r = db_exec(c, DB_SAE_DENSITY, (const char *const[]){model_id, sae_id});
    if (db_kind(r) == DB_OK && PQntuples(r) == cfg->d_sae) {
        logsp = malloc(sizeof(float) * (size_t)cfg->d_sae);
        for (int i = 0; logsp && i < cfg->d_sae; i++) {
            double fr = PQgetisnull(r, i, 0) ? 0 : atof(PQgetvalue(r, i, 0));
            logsp[i] = (float)log10(fr + 1e-10);
            l0 += fr;
        }
    }
    PQclear(r);
    int rc = 0;
    mkdir(out_dir, 0755);
    char yp[4200];
    snprintf(yp, sizeof yp, "%s/pretrained_saes.yaml", out_dir);
    if (sae_export(s, out_dir, format, logsp, err, sizeof err) ||
        write_yaml(yp, model_id, sae_id, cfg, repo, folder, l0, err, sizeof err)) {
        log_error("export %s/%s: %s", model_id, sae_id, err);
        rc = svc_fail(e, SVC_INTERNAL, "export_failed", "the export could not be written (see the server log)");
    }
    free(logsp);
    free(repo);
    free(folder);
    sae_free(s);
    backend_close(cpu);
    return rc;
}
