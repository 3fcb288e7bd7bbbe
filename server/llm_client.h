/* llm_client.h: one client for OpenAI-compatible POST {baseUrl}/v1/chat/completions (OpenAI,
 * OpenRouter, vLLM, llama.cpp's server, Ollama). A client owns one libcurl handle, so the
 * connection is kept alive across requests; use one client per thread. Retries 429, 5xx and
 * transport failures (timeouts, hang-ups) with exponential backoff, honouring Retry-After;
 * counts requests and tokens against a budget shared by a job's clients. The API key is held
 * in memory only: never logged, never part of an error message. */
#ifndef SAED_LLM_CLIENT_H
#define SAED_LLM_CLIENT_H

#include <jansson.h>
#include <stdatomic.h>

/* Spent and allowed, shared by every client of one job. */
typedef struct llm_budget {
    atomic_llong requests, tokens;
    long long max_requests, max_tokens;
} llm_budget;

typedef struct llm_opts {
    const char *base_url;   /* e.g. http://127.0.0.1:8000 (a trailing /v1 is accepted) */
    const char *model;
    const char *api_key;    /* may be NULL (local servers) */
    int timeout_s;          /* per request */
    int retries;            /* after the first try */
    /* "max_tokens" or "max_completion_tokens" (newer OpenAI models, which also refuse a
     * temperature other than the default): NULL picks by model name. */
    const char *token_field;
    llm_budget *budget;
    int (*stop)(void *ud);  /* checked before each request and while waiting; may be NULL */
    void *stop_ud;
} llm_opts;

typedef struct llm_params {
    double temperature;
    int max_tokens;
    int json_mode;          /* response_format json_object; dropped for good if the server refuses it */
} llm_params;

enum { LLM_OK = 0, LLM_FAILED = -1, LLM_BUDGET = -2, LLM_STOPPED = -3 };

typedef struct llm_client llm_client;
llm_client *llm_new(const llm_opts *o);
void llm_free(llm_client *c);
/* Sends messages (borrowed); *content = choices[0].message.content (owned). LLM_OK, or
 * LLM_FAILED (err says why, after the retries), LLM_BUDGET, LLM_STOPPED. */
int llm_chat(llm_client *c, json_t *messages, const llm_params *p, char **content, char *err, size_t errlen);
/* Whether model names a reasoning model that wants max_completion_tokens (o1, o3, o4, gpt-5). */
int llm_wants_completion_tokens(const char *model);

#endif
