/* job_dashboard.h: the "dashboard" job kind: payload validation (shared with the API) and the
 * runner that turns a queued job into features + activations rows. */
#ifndef SAED_JOB_DASHBOARD_H
#define SAED_JOB_DASHBOARD_H

#include <jansson.h>

#include "server/worker.h"

/* Checks and normalizes a request body into a job payload (defaults filled in). 0, or -1 with
 * err naming the field. The dataset path is confined to roots; model/SAE existence is the
 * caller's check. */
int job_dashboard_payload(json_t *body, char *const *roots, int nroots, json_t **payload, char *err, size_t errlen,
                          int *forbidden);

/* Whether a job over features [f0, f1) fits max features (SAED_JOB_MAX_FEATURES): 0, or -1
 * with err saying how to split the SAE. */
int job_dashboard_width_ok(int f0, int f1, int max, char *err, size_t errlen);

/* JOB_DONE, JOB_STOPPED, JOB_RETRY or JOB_FATAL (err says why). */
int job_dashboard_run(job_ctx *c, char *err, size_t errlen);

#endif
