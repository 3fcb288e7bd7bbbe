/* http_stream.c: see http_stream.h. Locking: the reader suspends the connection while holding
 * the stream's mutex, so a writer that sees `suspended` knows the suspension has happened; the
 * writer resumes after unlocking. Only the side that clears `suspended` resumes, so every
 * suspension is resumed exactly once, and never after the connection is gone (MHD neither
 * closes nor frees a suspended connection). */
#include "server/http_stream.h"

#include <pthread.h>    // defines: pthread_mutex_t
#include <stdatomic.h>  // defines: atomic_int
#include <stdint.h>     // defines: SIZE_MAX
#include <stdlib.h>     // defines: malloc, realloc, free
#include <string.h>     // defines: memcpy, memmove

#include "server/http.h"

/* Bytes a stream may hold for a client that reads slower than the task writes. */
#define STREAM_MAX_PENDING ((size_t)16 << 20)
#define NO_PIECE SIZE_MAX

struct http_stream {
    pthread_mutex_t mu;
    struct MHD_Connection *conn;
    char *buf;
    size_t off, len, cap;  /* pending bytes are buf[off, len) */
    size_t sup;            /* start of the trailing supersedable piece not yet started, or NO_PIECE */
    size_t sent;
    bool ended, gone, suspended;
    atomic_int refs;
};

static void unref(http_stream *s)
{
    if (atomic_fetch_sub(&s->refs, 1) != 1) return;
    pthread_mutex_destroy(&s->mu);
    free(s->buf);
    free(s);
}

static ssize_t reader(void *cls, uint64_t pos, char *out, size_t max)
{
    (void)pos;
    http_stream *s = cls;
    pthread_mutex_lock(&s->mu);
    size_t n = s->len - s->off;
    if (n == 0) {
        ssize_t rc = 0;
        if (s->ended) {
            rc = MHD_CONTENT_READER_END_OF_STREAM;
        } else if (s->gone) {
            rc = MHD_CONTENT_READER_END_WITH_ERROR; /* cut short: the client must not take it as whole */
        } else {
            MHD_suspend_connection(s->conn);
            s->suspended = true;
        }
        pthread_mutex_unlock(&s->mu);
        return rc;
    }
    if (n > max) n = max;
    memcpy(out, s->buf + s->off, n);
    s->off += n;
    s->sent += n;
    if (s->sup != NO_PIECE && s->off > s->sup) s->sup = NO_PIECE; /* started: must be finished */
    if (s->off == s->len) s->off = s->len = 0, s->sup = NO_PIECE;
    pthread_mutex_unlock(&s->mu);
    return (ssize_t)n;
}

static void response_freed(void *cls)
{
    http_stream *s = cls;
    pthread_mutex_lock(&s->mu);
    s->gone = true;
    pthread_mutex_unlock(&s->mu);
    unref(s);
}

http_stream *hstream_new(struct MHD_Connection *conn, struct MHD_Response **resp)
{
    *resp = NULL;
    http_stream *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    pthread_mutex_init(&s->mu, NULL);
    s->conn = conn;
    s->sup = NO_PIECE;
    atomic_init(&s->refs, 3); /* task, response, request */
    *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, reader, s, response_freed);
    if (!*resp) {
        pthread_mutex_destroy(&s->mu);
        free(s);
        return NULL;
    }
    return s;
}

size_t hstream_request_done(http_stream *s, bool completed_ok)
{
    pthread_mutex_lock(&s->mu);
    if (!completed_ok) s->gone = true;
    size_t sent = s->sent;
    pthread_mutex_unlock(&s->mu);
    unref(s);
    return sent;
}

/* Wakes the reader when it waits; call with the lock held, resume after unlocking. */
static bool take_suspended(http_stream *s)
{
    bool was = s->suspended;
    s->suspended = false;
    return was;
}

int http_stream_write(http_stream *s, const char *data, size_t len, bool supersede)
{
    pthread_mutex_lock(&s->mu);
    if (s->gone || s->ended) {
        pthread_mutex_unlock(&s->mu);
        return -1;
    }
    /* A cumulative frame nobody has started reading yet is replaced by the newer one. */
    if (supersede && s->sup != NO_PIECE && s->sup >= s->off) s->len = s->sup;
    if (s->off && s->off >= s->cap / 2) {
        memmove(s->buf, s->buf + s->off, s->len - s->off);
        s->len -= s->off;
        if (s->sup != NO_PIECE) s->sup -= s->off;
        s->off = 0;
    }
    int rc = 0;
    if (s->len - s->off + len > STREAM_MAX_PENDING) {
        s->gone = true; /* the client does not keep up: give up on it */
        rc = -1;
    } else {
        if (s->len + len > s->cap) {
            size_t cap = (s->len + len) * 2;
            char *nb = realloc(s->buf, cap);
            if (!nb) {
                pthread_mutex_unlock(&s->mu);
                return -1;
            }
            s->buf = nb;
            s->cap = cap;
        }
        s->sup = supersede ? s->len : NO_PIECE;
        memcpy(s->buf + s->len, data, len);
        s->len += len;
    }
    bool wake = take_suspended(s);
    pthread_mutex_unlock(&s->mu);
    if (wake) MHD_resume_connection(s->conn);
    return rc;
}

bool http_stream_closed(http_stream *s)
{
    pthread_mutex_lock(&s->mu);
    bool gone = s->gone;
    pthread_mutex_unlock(&s->mu);
    return gone;
}

void http_stream_end(http_stream *s)
{
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->ended = true;
    bool wake = take_suspended(s);
    pthread_mutex_unlock(&s->mu);
    if (wake) MHD_resume_connection(s->conn);
    unref(s);
}
