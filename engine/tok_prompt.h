/* tok_prompt.h: which tokens a model's prompts start with and which ids count as special, the
 * same for dashboards, live routes and steering on every family. Pure C: no HTTP, no SQL. */
#ifndef SAED_ENGINE_TOK_PROMPT_H
#define SAED_ENGINE_TOK_PROMPT_H

#include <stdint.h>

#include "engine/tokenizer.h"

/* The BOS a prompt gets as TransformerLens gives it: the tokenizer's bos_token, else its eos
 * (TL sets bos_token = eos_token when a tokenizer has none: GPT-2's files, Qwen2). -1 when the
 * tokenizer has neither. */
int tok_prompt_bos(const tokenizer *t);
/* SAEDashboard's ignore_tokens: the BOS above, the EOS and the pad id, distinct and >= 0, into
 * out; returns how many (0-3). */
int tok_mask_ids(const tokenizer *t, int32_t out[3]);
/* 1 when id is one of tok_mask_ids or an added token marked special (chat markers). */
int tok_special_id(const tokenizer *t, int32_t id);

#endif
