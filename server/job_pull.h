/* job_pull.h: the "hub_pull" job kind: a model or an SAE pulled from the Hugging Face Hub into
 * the cache (hub_pull.h), then registered from its snapshot exactly as a local folder is
 * (registry.h). Registration and the job's completion commit together, so a pull that fails,
 * is cancelled or loses its lease never leaves a registration behind; a retried attempt
 * resumes the cached downloads. Progress: {phase, bytesDone, bytesTotal, bytesPerSecond,
 * etaSeconds}; a completed job's progress also has result {modelId, saeId?, path, commit}. */
#ifndef SAED_JOB_PULL_H
#define SAED_JOB_PULL_H

#include <jansson.h>

#include "server/hub_client.h"
#include "server/worker.h"

#define JOB_PULL_KIND "hub_pull"

/* The Hub connection the configuration describes. */
void hub_conn_from_config(hub_conn *h, const saed_config *cfg);

/* A POST /api/models (target "model") or /api/saes (target "sae") body that names hfRepoId
 * checked and turned into a job payload. 0, or -1 with err naming the field. */
int job_pull_payload(json_t *body, const char *target, json_t **payload, char *err, size_t errlen);

int job_pull_run(job_ctx *c, char *err, size_t errlen);

#endif
