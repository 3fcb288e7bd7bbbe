/* llm_client.c: see llm_client.h. */
#include "server/llm_client.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "server/log.h"

struct llm_client {
    llm_opts o;
    char url[1200];
    char auth[600];
    CURL *h;
    int no_json_mode;   /* the server refused response_format */
};

typedef struct buf {
    char *s;
    size_t n;
} buf;

static size_t on_body(char *p, size_t sz, size_t nm, void *ud)
{
    buf *b = ud;
    size_t n = sz * nm;
    if (b->n + n > (64u << 20)) return 0;   /* a reply this big is not a chat completion */
    b->s = realloc(b->s, b->n + n + 1);
    memcpy(b->s + b->n, p, n);
    b->n += n;
    b->s[b->n] = '\0';
    return n;
}

static size_t on_header(char *p, size_t sz, size_t nm, void *ud)
{
    size_t n = sz * nm;
    if (n > 12 && !strncasecmp(p, "retry-after:", 12)) *(double *)ud = atof(p + 12);
    return n;
}

/* libcurl's progress callback: a job told to stop (cancel, shutdown) abandons the request in
 * flight instead of waiting up to SAED_LLM_TIMEOUT for it. */
static int on_xfer(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    (void)dt, (void)dn, (void)ut, (void)un;
    llm_client *c = ud;
    return c->o.stop && c->o.stop(c->o.stop_ud);
}

int llm_wants_completion_tokens(const char *m)
{
    if (!m) return 0;
    const char *s = strrchr(m, '/');   /* openai/o3-mini on OpenRouter */
    s = s ? s + 1 : m;
    return !strncmp(s, "o1", 2) || !strncmp(s, "o3", 2) || !strncmp(s, "o4", 2) || !strncmp(s, "gpt-5", 5);
}

llm_client *llm_new(const llm_opts *o)
{
    static int once;
    if (!__atomic_exchange_n(&once, 1, __ATOMIC_SEQ_CST)) curl_global_init(CURL_GLOBAL_DEFAULT);
    llm_client *c = calloc(1, sizeof *c);
    c->o = *o;
    size_t n = strlen(o->base_url);
    while (n && o->base_url[n - 1] == '/') n--;
    int has_v1 = n >= 3 && !strncmp(o->base_url + n - 3, "/v1", 3);
    snprintf(c->url, sizeof c->url, "%.*s%s/chat/completions", (int)n, o->base_url, has_v1 ? "" : "/v1");
    if (o->api_key && *o->api_key) snprintf(c->auth, sizeof c->auth, "Authorization: Bearer %s", o->api_key);
    c->h = curl_easy_init();
    return c;
}

void llm_free(llm_client *c)
{
    if (!c) return;
    curl_easy_cleanup(c->h);
    memset(c->auth, 0, sizeof c->auth);
    free(c);
}

/* Sleeps s seconds in short steps; 1 when told to stop meanwhile. */
static int wait_s(llm_client *c, double s)
{
    for (double t = 0; t < s; t += 0.05) {
        if (c->o.stop && c->o.stop(c->o.stop_ud)) return 1;
        struct timespec ts = {0, 50000000L};
        nanosleep(&ts, NULL);
    }
    return 0;
}

static char *request_body(llm_client *c, json_t *messages, const llm_params *p)
{
    const char *field = c->o.token_field ? c->o.token_field
                        : llm_wants_completion_tokens(c->o.model) ? "max_completion_tokens" : "max_tokens";
    json_t *b = json_pack("{s:s,s:O,s:i}", "model", c->o.model, "messages", messages, field, p->max_tokens);
    /* models that want max_completion_tokens take only their default temperature */
    if (strcmp(field, "max_completion_tokens")) json_object_set_new(b, "temperature", json_real(p->temperature));
    if (p->json_mode && !c->no_json_mode) json_object_set_new(b, "response_format", json_pack("{s:s}", "type", "json_object"));
    char *s = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    return s;
}

int llm_chat(llm_client *c, json_t *messages, const llm_params *p, char **content, char *err, size_t errlen)
{
    *content = NULL;
    double backoff = 0.5;
    for (int attempt = 0;; attempt++) {
        if (c->o.stop && c->o.stop(c->o.stop_ud)) return LLM_STOPPED;
        llm_budget *bg = c->o.budget;
        if (bg && ((bg->max_requests > 0 && atomic_load(&bg->requests) >= bg->max_requests) ||
                   (bg->max_tokens > 0 && atomic_load(&bg->tokens) >= bg->max_tokens))) {
            snprintf(err, errlen, "budget spent: %lld request(s), %lld token(s) (limits %lld, %lld)",
                     (long long)atomic_load(&bg->requests), (long long)atomic_load(&bg->tokens), bg->max_requests, bg->max_tokens);
            return LLM_BUDGET;
        }
        if (bg) atomic_fetch_add(&bg->requests, 1);
        char *body = request_body(c, messages, p);
        struct curl_slist *hd = curl_slist_append(NULL, "Content-Type: application/json");
        if (c->auth[0]) hd = curl_slist_append(hd, c->auth);
        buf rb = {0};
        double retry_after = -1;
        CURL *h = c->h;
        curl_easy_reset(h);
        curl_easy_setopt(h, CURLOPT_URL, c->url);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &rb);
        curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(h, CURLOPT_HEADERDATA, &retry_after);
        curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)c->o.timeout_s);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_xfer);
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, c);
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
        CURLcode cc = curl_easy_perform(h);
        long status = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        curl_slist_free_all(hd);
        free(body);
        int transient = 0;
        if (cc == CURLE_ABORTED_BY_CALLBACK) {
            free(rb.s);
            return LLM_STOPPED;
        }
        if (cc != CURLE_OK) {
            snprintf(err, errlen, "%s: %s", c->url, curl_easy_strerror(cc));
            transient = 1;
        } else if (status == 429 || status >= 500) {
            snprintf(err, errlen, "%s: HTTP %ld", c->url, status);
            transient = 1;
        } else if (status != 200) {
            /* A server without JSON mode (older vLLM, llama.cpp builds) says so with a 400. */
            if (status == 400 && p->json_mode && !c->no_json_mode && rb.s && strstr(rb.s, "response_format")) {
                c->no_json_mode = 1;
                log_warn("%s refuses response_format; asking without it", c->url);
                free(rb.s);
                continue;
            }
            snprintf(err, errlen, "%s: HTTP %ld: %.200s", c->url, status, rb.s ? rb.s : "");
            free(rb.s);
            return LLM_FAILED;
        } else {
            json_t *j = json_loads(rb.s ? rb.s : "", 0, NULL);
            json_t *ch = json_array_get(json_object_get(j, "choices"), 0);
            const char *text = json_string_value(json_object_get(json_object_get(ch, "message"), "content"));
            json_t *tot = json_object_get(json_object_get(j, "usage"), "total_tokens");
            if (bg && json_is_integer(tot)) atomic_fetch_add(&bg->tokens, json_integer_value(tot));
            if (text) *content = strdup(text);
            else snprintf(err, errlen, "%s: the reply has no choices[0].message.content", c->url);
            json_decref(j);
            free(rb.s);
            rb.s = NULL;
            if (text) return LLM_OK;
            transient = 1;   /* a truncated or garbled body: ask again */
        }
        free(rb.s);
        if (!transient || attempt >= c->o.retries) return LLM_FAILED;
        double wait = retry_after >= 0 ? (retry_after > 60 ? 60 : retry_after) : backoff;
        backoff = backoff * 2 > 30 ? 30 : backoff * 2;
        log_warn("llm: %s; retry %d/%d in %.1f s", err, attempt + 1, c->o.retries, wait);
        if (wait_s(c, wait)) return LLM_STOPPED;
    }
}
