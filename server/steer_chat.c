/* steer_chat.c: see steer_chat.h. */
#include "server/steer_chat.h"

#include <stdlib.h>

#include "server/log.h"

int steer_chat_template(const char *model_id, const char *model_dir, chat_template *t, svc_err *e)
{
    char err[600];
    int rc = chat_template_load(model_dir, t, err, sizeof err);
    if (rc > 0) return 0;
    if (rc == 0)
        return svc_fail(e, SVC_INVALID, "no_chat_template",
                        "model has no chat template: '%s' is steered with /api/steer or /v1/steer/completion", model_id);
    log_error("steer-chat: model %s: %s", model_id, err);
    return svc_fail(e, SVC_INTERNAL, "internal", "model '%s': its chat template cannot be read (see the server log)", model_id);
}

char *steer_chat_render(const chat_template *t, json_t *msgs, svc_err *e)
{
    size_t n = json_array_size(msgs);
    chat_msg *m = calloc(n ? n : 1, sizeof *m);
    if (!m) return svc_fail(e, SVC_INTERNAL, "internal", "out of memory"), NULL;
    for (size_t i = 0; i < n; i++) {
        json_t *x = json_array_get(msgs, i);
        m[i].role = json_string_value(json_object_get(x, "role"));
        m[i].content = json_string_value(json_object_get(x, "content"));
    }
    char err[600];
    char *s = chat_render(t, m, n, 1, err, sizeof err);
    free(m);
    if (!s) svc_fail(e, SVC_INVALID, "chat_template", "the model's chat template refused the messages: %s", err);
    return s;
}

char *steer_chat_key(json_t *msgs)
{
    json_t *a = json_array();
    size_t i;
    json_t *x;
    json_array_foreach(msgs, i, x)
        json_array_append_new(a, json_pack("{s:O,s:O}", "role", json_object_get(x, "role"), "content",
                                           json_object_get(x, "content")));
    char *s = a ? json_dumps(a, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(a);
    return s;
}
