/* llm_standin.h: a local stand-in for an OpenAI-compatible server, for tests: real HTTP/1.1
 * over loopback (keep-alive, Content-Length bodies, one thread per connection) answering
 * POST /v1/chat/completions with replies a test scripts: a content string, or a status with
 * Retry-After, a delay, malformed JSON, or a hang-up. Every request body is kept. */
#ifndef SAED_TESTS_LLM_STANDIN_H
#define SAED_TESTS_LLM_STANDIN_H

#include <jansson.h>

typedef struct standin_reply {
    int status;           /* 200 unless set */
    char *content;        /* choices[0].message.content (owned; freed by the stand-in) */
    char *raw;            /* instead of a chat completion: this body verbatim (owned) */
    int retry_after;      /* -1: no header */
    int delay_ms;
    int hangup;           /* close the connection without answering */
} standin_reply;

/* n = the request's number (0-based, over the stand-in's life); req = its parsed body (NULL
 * when not JSON). Called from connection threads, serialised by the stand-in. */
typedef void (*standin_fn)(void *ud, int n, json_t *req, standin_reply *out);

typedef struct standin standin;
standin *standin_start(standin_fn fn, void *ud);
int standin_port(standin *s);
int standin_count(standin *s);
/* Request i's body (borrowed; NULL when out of range) and its Authorization header. */
json_t *standin_request(standin *s, int i);
const char *standin_auth(standin *s, int i);
/* The last user message of a chat request (borrowed). */
const char *standin_last_user(json_t *req);
void standin_stop(standin *s);

#endif
