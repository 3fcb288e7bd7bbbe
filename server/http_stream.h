/* http_stream.h: the inside of streaming replies (http_reply_stream in server/http.h), shared by
 * http.c and http_stream.c only. A stream is a byte queue between a compute task (the writer)
 * and libmicrohttpd's content-reader callback. With MHD's internal epoll threads a reader that
 * returns 0 would be called again at once (busy waiting), so when the queue is empty the reader
 * suspends the connection (allowed from a content reader, libmicrohttpd 0.9.75 microhttpd.h)
 * and the next write or the end resumes it. Three owners hold a reference: the task, the MHD
 * response and the request. */
#ifndef SAED_HTTP_STREAM_H
#define SAED_HTTP_STREAM_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct http_stream http_stream;

/* A stream for conn and the response that reads from it (NULL, NULL when out of memory). */
http_stream *hstream_new(struct MHD_Connection *conn, struct MHD_Response **resp);
/* The request is over (completed or aborted): bytes sent so far, the client marked gone unless
 * completed_ok, and the request's reference dropped. */
size_t hstream_request_done(http_stream *s, bool completed_ok);

#endif
