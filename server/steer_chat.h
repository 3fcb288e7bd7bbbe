/* steer_chat.h: what POST /api/steer-chat adds to steering: a conversation rendered with the
 * model's chat template, and the canonical form of a conversation that keys the stored outputs.
 * Internal to server/steer.c. */
#ifndef SAED_STEER_CHAT_H
#define SAED_STEER_CHAT_H

#include <jansson.h>

#include "engine/chat_template.h"
#include "server/registry.h"

/* The model folder's chat template into t: 0, or -1 with e (400 no_chat_template for a model
 * without one; 500 when tokenizer_config.json cannot be read). */
int steer_chat_template(const char *model_id, const char *model_dir, chat_template *t, svc_err *e);
/* msgs ([{role, content}], checked by the handler) rendered with the generation prompt added:
 * malloc'd, or NULL with e (400 with the template's own message when it refuses them). */
char *steer_chat_render(const chat_template *t, json_t *msgs, svc_err *e);
/* [{role, content}] as compact JSON with sorted keys and nothing else: the stored form. */
char *steer_chat_key(json_t *msgs);

#endif
