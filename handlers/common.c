/* common.c: reply helpers shared by the resource handlers. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "handlers/handlers.h"
#include "server/log.h"
#include "server/targz.h"

static const int svc_status[] = {
    [SVC_OK] = 200, [SVC_INVALID] = 400, [SVC_FORBIDDEN] = 403, [SVC_NOT_FOUND] = 404,
    [SVC_CONFLICT] = 409, [SVC_UNAVAILABLE] = 503, [SVC_INTERNAL] = 500, [SVC_UPSTREAM] = 502,
};

void reply_svc(http_req *r, const svc_err *e)
{
    if (e->kind == SVC_UNAVAILABLE) http_add_header(r, "Retry-After", "5");
    http_reply_error(r, svc_status[e->kind], e->code, "%s", e->msg);
}

void reply_svc_with(http_req *r, const svc_err *e, const char *key, json_t *extra)
{
    char msg[sizeof e->msg];
    snprintf(msg, sizeof msg, "%s", e->msg);
    log_utf8_sanitize(msg);
    if (svc_status[e->kind] >= 500) log_warn("%s: %s", e->code, msg);
    http_reply_json(r, svc_status[e->kind], json_pack("{s:{s:s,s:s},s:s,s:O?}", "error", "code", e->code, "message", msg,
                                                      "message", msg, key, extra));
}

void reply_json_text(http_req *r, int status, const char *text)
{
    http_reply_raw(r, status, "application/json", text, strlen(text));
}

void reply_targz_dir(http_req *r, const char *dir, const char *prefix)
{
    /* The archive goes to an unlinked temporary file that MHD streams from and closes. */
    char tgz[] = "/tmp/saed-export-XXXXXX.tar.gz", err[512] = "";
    int fd = mkstemps(tgz, 7);
    if (fd >= 0) unlink(tgz);
    else snprintf(err, sizeof err, "temporary archive: %s", strerror(errno));
    int rc = fd < 0 ? -1 : targz_dir(dir, prefix, fd, err, sizeof err);
    struct stat st;
    if (rc == 0 && fstat(fd, &st)) {
        snprintf(err, sizeof err, "fstat: %s", strerror(errno));
        rc = -1;
    }
    if (rc) {
        if (fd >= 0) close(fd);
        log_error("archive %s: %s", prefix, err);
        http_reply_error(r, 500, "internal", "could not build the archive (request id %s)", http_request_id(r));
        return;
    }
    char disp[400];
    snprintf(disp, sizeof disp, "attachment; filename=\"%s.tar.gz\"", prefix);
    http_add_header(r, "Content-Disposition", disp);
    http_reply_fd(r, 200, "application/gzip", fd, (size_t)st.st_size);
}
