/* llm_standin.c: see llm_standin.h. */
#include "tests/llm_standin.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_REQ 4096
#define MAX_CONN 64

struct standin {
    int fd, port, stopping;
    standin_fn fn;
    void *ud;
    pthread_t acceptor;
    pthread_mutex_t mu;
    int n;
    json_t *reqs[MAX_REQ];
    char *auth[MAX_REQ];
    pthread_t conns[MAX_CONN];
    int conn_fd[MAX_CONN], nconn;
};

typedef struct conn_arg {
    standin *s;
    int fd;
} conn_arg;

static void send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k <= 0) return;
        p += k;
        n -= (size_t)k;
    }
}

/* Reads one request: headers then Content-Length bytes. Returns the body (owned) or NULL at
 * end of connection; auth gets the Authorization header. */
static char *read_request(int fd, char *buf, size_t cap, size_t *have, char *auth, size_t authn)
{
    char *end;
    for (;;) {
        buf[*have] = '\0';
        if ((end = strstr(buf, "\r\n\r\n"))) break;
        if (*have + 1 >= cap) return NULL;
        ssize_t k = recv(fd, buf + *have, cap - 1 - *have, 0);
        if (k <= 0) return NULL;
        *have += (size_t)k;
    }
    size_t hlen = (size_t)(end - buf) + 4, clen = 0;
    auth[0] = '\0';
    for (char *l = strstr(buf, "\r\n"); l && l < end; l = strstr(l + 2, "\r\n")) {
        if (!strncasecmp(l + 2, "content-length:", 15)) clen = strtoul(l + 17, NULL, 10);
        if (!strncasecmp(l + 2, "authorization:", 14)) {
            const char *v = l + 16, *e = strstr(v, "\r\n");
            while (*v == ' ') v++;
            snprintf(auth, authn, "%.*s", (int)(e - v), v);
        }
    }
    char *body = malloc(clen + 1);
    size_t got = *have - hlen < clen ? *have - hlen : clen;
    memcpy(body, buf + hlen, got);
    while (got < clen) {
        ssize_t k = recv(fd, body + got, clen - got, 0);
        if (k <= 0) {
            free(body);
            return NULL;
        }
        got += (size_t)k;
    }
    body[clen] = '\0';
    size_t used = hlen + (*have - hlen < clen ? *have - hlen : clen);
    memmove(buf, buf + used, *have - used);
    *have -= used;
    return body;
}

static void *conn_main(void *arg)
{
    conn_arg a = *(conn_arg *)arg;
    free(arg);
    standin *s = a.s;
    size_t cap = 1 << 20, have = 0;
    char *buf = malloc(cap), auth[600];
    char *body;
    while ((body = read_request(a.fd, buf, cap, &have, auth, sizeof auth))) {
        json_t *req = json_loads(body, 0, NULL);
        free(body);
        standin_reply out = {.status = 200, .retry_after = -1};
        pthread_mutex_lock(&s->mu);
        int n = s->n;
        if (n < MAX_REQ) {
            s->reqs[n] = req ? json_incref(req) : json_null();
            s->auth[n] = strdup(auth);
            s->n++;
        }
        s->fn(s->ud, n, req, &out);
        pthread_mutex_unlock(&s->mu);
        json_decref(req);
        if (out.delay_ms) {
            struct timespec ts = {out.delay_ms / 1000, (out.delay_ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
        if (out.hangup) {
            free(out.content);
            free(out.raw);
            break;
        }
        char *text = out.raw;
        if (!text) {
            json_t *j = out.status == 200
                ? json_pack("{s:s,s:s,s:[{s:i,s:s,s:{s:s,s:s}}],s:{s:i,s:i,s:i}}", "id", "chatcmpl-standin", "object",
                            "chat.completion", "choices", "index", 0, "finish_reason", "stop", "message", "role", "assistant",
                            "content", out.content ? out.content : "", "usage", "prompt_tokens", 90, "completion_tokens", 10,
                            "total_tokens", 100)
                : json_pack("{s:{s:s}}", "error", "message", "scripted error");
            text = json_dumps(j, JSON_COMPACT);
            json_decref(j);
        }
        char head[300], ra[40] = "";
        if (out.retry_after >= 0) snprintf(ra, sizeof ra, "Retry-After: %d\r\n", out.retry_after);
        int hl = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n%s\r\n",
                          out.status, out.status == 200 ? "OK" : "Scripted", strlen(text), ra);
        send_all(a.fd, head, (size_t)hl);
        send_all(a.fd, text, strlen(text));
        free(text);
        free(out.content);
    }
    free(buf);
    close(a.fd);
    return NULL;
}

static void *accept_main(void *arg)
{
    standin *s = arg;
    while (!s->stopping) {
        struct pollfd p = {s->fd, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0) continue;
        int c = accept(s->fd, NULL, NULL);
        if (c < 0) continue;
        pthread_mutex_lock(&s->mu);
        if (s->nconn >= MAX_CONN) {
            pthread_mutex_unlock(&s->mu);
            close(c);
            continue;
        }
        conn_arg *a = malloc(sizeof *a);
        a->s = s;
        a->fd = c;
        s->conn_fd[s->nconn] = c;
        pthread_create(&s->conns[s->nconn++], NULL, conn_main, a);
        pthread_mutex_unlock(&s->mu);
    }
    return NULL;
}

standin *standin_start(standin_fn fn, void *ud)
{
    standin *s = calloc(1, sizeof *s);
    s->fn = fn;
    s->ud = ud;
    pthread_mutex_init(&s->mu, NULL);
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof sa;
    if (bind(s->fd, (struct sockaddr *)&sa, sizeof sa) || listen(s->fd, 64) || getsockname(s->fd, (struct sockaddr *)&sa, &l)) {
        close(s->fd);
        free(s);
        return NULL;
    }
    s->port = ntohs(sa.sin_port);
    pthread_create(&s->acceptor, NULL, accept_main, s);
    return s;
}

int standin_port(standin *s) { return s->port; }

int standin_count(standin *s)
{
    pthread_mutex_lock(&s->mu);
    int n = s->n;
    pthread_mutex_unlock(&s->mu);
    return n;
}

json_t *standin_request(standin *s, int i) { return i >= 0 && i < s->n ? s->reqs[i] : NULL; }
const char *standin_auth(standin *s, int i) { return i >= 0 && i < s->n ? s->auth[i] : NULL; }

const char *standin_last_user(json_t *req)
{
    json_t *m = json_object_get(req, "messages");
    for (size_t i = json_array_size(m); i > 0; i--) {
        json_t *e = json_array_get(m, i - 1);
        if (!strcmp(json_string_value(json_object_get(e, "role")) ?: "", "user"))
            return json_string_value(json_object_get(e, "content"));
    }
    return NULL;
}

void standin_stop(standin *s)
{
    if (!s) return;
    s->stopping = 1;
    pthread_join(s->acceptor, NULL);
    close(s->fd);
    for (int i = 0; i < s->nconn; i++) shutdown(s->conn_fd[i], SHUT_RDWR);
    for (int i = 0; i < s->nconn; i++) pthread_join(s->conns[i], NULL);
    for (int i = 0; i < s->n; i++) {
        json_decref(s->reqs[i]);
        free(s->auth[i]);
    }
    pthread_mutex_destroy(&s->mu);
    free(s);
}
