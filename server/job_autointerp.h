/* job_autointerp.h: the "autointerp" job kind: payload validation (shared with the API) and
 * the runner that explains, and optionally scores, every feature of an SAE's stored
 * dashboards in a range, against OpenAI-compatible LLM servers. */
#ifndef SAED_JOB_AUTOINTERP_H
#define SAED_JOB_AUTOINTERP_H

#include <jansson.h>

#include "server/worker.h"

/* Checks and normalizes a request body into a job payload (defaults filled in; the API key is
 * never part of it, only the name of the variable that holds it). 0, or -1 with err naming
 * the field. */
int job_autointerp_payload(const saed_config *cfg, json_t *body, json_t **payload, char *err, size_t errlen);

/* The API key for a request: the environment variable env (which must be listed in
 * SAED_LLM_KEY_ENVS), or SAED_LLM_KEY_FILE's first line when env is NULL, or "" when neither
 * is configured. 0, or -1 with err (naming the variable or file, never the key). */
int ai_api_key(const saed_config *cfg, const char *env, char *out, size_t n, char *err, size_t errlen);

/* JOB_DONE, JOB_STOPPED, JOB_RETRY or JOB_FATAL (err says why). */
int job_autointerp_run(job_ctx *c, char *err, size_t errlen);

#endif
