/* loopd.h: the libmicrohttpd plumbing the in-process stand-ins for outside services share
 * (tests/hubd.c for the Hugging Face Hub, tests/ghd.c for GitHub): a daemon on a free loopback
 * port with its own thread, each request's whole body gathered before the handler runs, the
 * handler called under the stand-in's mutex, and a log of "METHOD path" lines. */
#ifndef SAED_TESTS_LOOPD_H
#define SAED_TESTS_LOOPD_H

#include <microhttpd.h>
#include <pthread.h>
#include <stddef.h>

typedef struct loopd_body {
    char *buf;              /* NUL-terminated, or NULL for no body */
    size_t len;
} loopd_body;

typedef enum MHD_Result (*loopd_fn)(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                      const loopd_body *b);

#define LOOPD_LOG 1024

typedef struct loopd {
    struct MHD_Daemon *d;
    int port;
    char ep[64];            /* "http://127.0.0.1:PORT" */
    pthread_mutex_t *mu;
    loopd_fn fn;
    void *cls;
    char *log[LOOPD_LOG];
    int nlog;
} loopd;

/* 0, or -1 when the daemon does not start. */
int loopd_start(loopd *s, loopd_fn fn, void *cls, pthread_mutex_t *mu);
void loopd_stop(loopd *s);
/* Requests whose "METHOD path" starts with prefix. */
int loopd_count(loopd *s, const char *prefix);

#endif
