/* common.c: reply helpers shared by the resource handlers. */
#include <string.h>

#include "handlers/handlers.h"

static const int svc_status[] = {
    [SVC_OK] = 200, [SVC_INVALID] = 400, [SVC_FORBIDDEN] = 403, [SVC_NOT_FOUND] = 404,
    [SVC_CONFLICT] = 409, [SVC_UNAVAILABLE] = 503, [SVC_INTERNAL] = 500,
};

void reply_svc(http_req *r, const svc_err *e)
{
    if (e->kind == SVC_UNAVAILABLE) http_add_header(r, "Retry-After", "5");
    http_reply_error(r, svc_status[e->kind], e->code, "%s", e->msg);
}

void reply_json_text(http_req *r, int status, const char *text)
{
    http_reply_raw(r, status, "application/json", text, strlen(text));
}
