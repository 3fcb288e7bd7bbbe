/* chat_template.h: a model's chat template (tokenizer_config.json "chat_template") rendered
 * over role/content messages as transformers' apply_chat_template renders it: Python Jinja2
 * with trim_blocks and lstrip_blocks, bos_token / eos_token, add_generation_prompt, tools and
 * documents None. The Jinja subset real chat templates use is implemented (engine/jinja_*.c);
 * anything else is refused with "not implemented: ...", never rendered differently. Pure C: no
 * HTTP, no SQL. Thread-safe: each render owns its state. */
#ifndef SAED_ENGINE_CHAT_TEMPLATE_H
#define SAED_ENGINE_CHAT_TEMPLATE_H

#include <stddef.h> // defines: size_t

typedef struct chat_msg { const char *role; const char *content; } chat_msg;
/* A model's chat template and the strings it refers to, read from DIR/tokenizer_config.json:
 * chat_template as a string, or a list of {name, template} (the one named "default");
 * bos_token / eos_token as strings or AddedToken objects ({"content": ...}); NULL when absent. */
typedef struct chat_template { char *source; char *bos_token; char *eos_token; } chat_template;
/* 1 = loaded, 0 = the folder's tokenizer_config.json has no chat_template (or no such file),
 * -1 = error (bad JSON, wrong field type) with a message naming the file and field in err. */
int chat_template_load(const char *model_dir, chat_template *out, char *err, size_t errn);
void chat_template_free(chat_template *t);
/* Renders the template over messages (role/content), add_generation_prompt, bos_token and
 * eos_token as HF transformers does. Returns a malloc'd NUL-terminated string, or NULL with
 * the reason in err: a syntax error with its line/column, a construct or filter that is not
 * implemented named as such, or the template's own raise_exception("...") message. */
char *chat_render(const chat_template *t, const chat_msg *msgs, size_t n, int add_generation_prompt,
                  char *err, size_t errn);

#endif
