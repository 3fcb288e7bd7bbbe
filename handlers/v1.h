/* v1.h: what the handlers of Neuronpedia's inference-server wire share (v1.c, v1_all.c,
 * v1_util.c, v1_init.c): the request body, upstream's prompt/prompts fields and batch limit, and the
 * single-or-batch reply. The `..._or_reply` helpers answer the request when they fail. */
#ifndef SAED_HANDLERS_V1_H
#define SAED_HANDLERS_V1_H

#include <jansson.h>

#include "server/http.h"

#define V1_MAX_BATCH 4 /* prompts in one *-batch or activation/source request, as upstream */

/* body[camel], else body[snake] (pydantic's populate_by_name). */
json_t *v1_field(json_t *body, const char *camel, const char *snake);

/* The request body when it is a JSON object; NULL after a 400. */
json_t *v1_body_or_reply(http_req *r);

/* A batch request's prompts (1..V1_MAX_BATCH non-empty strings, upstream's messages when the
 * count is wrong) or a single request's prompt, borrowed from body into texts. The count, or
 * -1 after a 400. */
int v1_prompts_or_reply(http_req *r, json_t *body, int batch, const char **texts);

/* The request field of prompt i ("prompt" or "prompts[i]") into buf, for error messages. */
const char *v1_prompt_field(int batch, int i, char buf[32]);

/* SAE `source` of `model` (ids as GET /api/saes lists them): its model's and its own folder
 * (malloc'd; the caller frees them, also on failure), d_sae and the token limit. 0, or -1
 * after a reply (404 naming both when there is no such SAE). */
int v1_sae_or_reply(http_req *r, const char *model, const char *source, char **model_path, char **sae_path, int *d_sae,
                    int *max_tokens);

/* 200 with per-prompt results (stolen): the one result itself for a single request,
 * {"results": [...]} for a batch. */
void v1_reply_results(http_req *r, int batch, json_t *results);

#endif
