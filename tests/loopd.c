/* loopd.c: see loopd.h. */
#include "tests/loopd.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void on_done(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode t)
{
    (void)cls, (void)c, (void)t;
    loopd_body *b = *con_cls;
    if (b) free(b->buf);
    free(b);
    *con_cls = NULL;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    (void)version;
    loopd *s = cls;
    if (!*con_cls) {
        *con_cls = calloc(1, sizeof(loopd_body));
        return *con_cls ? MHD_YES : MHD_NO;
    }
    loopd_body *b = *con_cls;
    if (*upload_size) {
        char *nb = realloc(b->buf, b->len + *upload_size + 1);
        if (!nb) return MHD_NO;
        memcpy(nb + b->len, upload, *upload_size);
        b->buf = nb;
        b->len += *upload_size;
        nb[b->len] = '\0';
        *upload_size = 0;
        return MHD_YES;
    }
    pthread_mutex_lock(s->mu);
    if (s->nlog < LOOPD_LOG) {
        char line[700];
        snprintf(line, sizeof line, "%s %s", method, url);
        s->log[s->nlog++] = strdup(line);
    }
    enum MHD_Result k = s->fn(s->cls, c, url, method, b);
    pthread_mutex_unlock(s->mu);
    return k;
}

int loopd_start(loopd *s, loopd_fn fn, void *cls, pthread_mutex_t *mu)
{
    memset(s, 0, sizeof *s);
    s->fn = fn;
    s->cls = cls;
    s->mu = mu;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    s->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR,
                            (struct sockaddr *)&a, MHD_OPTION_NOTIFY_COMPLETED, on_done, NULL, MHD_OPTION_END);
    if (!s->d) return -1;
    s->port = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT)->port;
    snprintf(s->ep, sizeof s->ep, "http://127.0.0.1:%d", s->port);
    return 0;
}

void loopd_stop(loopd *s)
{
    if (s->d) MHD_stop_daemon(s->d);
    s->d = NULL;
    for (int i = 0; i < s->nlog; i++) free(s->log[i]);
    s->nlog = 0;
}

int loopd_count(loopd *s, const char *prefix)
{
    int n = 0;
    pthread_mutex_lock(s->mu);
    for (int i = 0; i < s->nlog; i++) n += !strncmp(s->log[i], prefix, strlen(prefix));
    pthread_mutex_unlock(s->mu);
    return n;
}
