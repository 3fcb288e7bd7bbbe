/* config.h: every run-time option of saed, defined once in a table (config.c) from which
 * flag parsing, environment lookup, bounds checks, `saed --help` and the README's config table
 * are all derived. Precedence: default < environment < command-line flag. */
#ifndef SAED_CONFIG_H
#define SAED_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define CFG_MAX_LIST 32

typedef struct saed_config {
    char database_url[1024];
    char listen[300];           /* as given: host:port */
    char listen_host[256];      /* parsed */
    int listen_port;
    int http_threads;
    long long body_limit;       /* bytes */
    char api_keys_raw[4096];
    int n_api_keys;
    char *api_keys[CFG_MAX_LIST];   /* point into api_keys_buf */
    char api_keys_buf[4096];
    char v1_secret[257];        /* SAED_V1_SECRET: X-SECRET-KEY of the /v1 routes (empty: open) */
    char v1_wire_case[8];       /* SAED_V1_WIRE_CASE: camel | snake */
    bool v1_snake;              /* parsed: snake_case answers by default */
    char data_roots_raw[4096];
    int n_data_roots;
    char *data_roots[CFG_MAX_LIST]; /* realpath'd, owned */
    int workers;
    int job_lease_s;
    int job_max_features;
    int compute_threads;
    int compute_queue;
    long long engine_cache;     /* bytes */
    int max_text_tokens;
    char device[32];            /* SAED_DEVICE: auto, cpu, cuda, cuda:N (checked) */
    char gpu_precision[8];      /* SAED_GPU_PRECISION: fp32, tf32, bf16 (checked) */
    int log_level;
    char access_log[1024];
    char migrations_dir[1024];
    char openapi_file[1024];
    int max_connections;
    int db_wait_ms;
    int shutdown_timeout_s;
    bool insecure;
    bool migrate;
    long long feature_cache;    /* bytes */
    /* AutoInterp's LLM access (server/llm_client.h) */
    char llm_base_url[512];     /* default OpenAI-compatible server for the scoring routes */
    char llm_model[256];
    char llm_key_envs[1024];    /* comma-separated environment variables a request may name */
    char llm_key_file[1024];
    int llm_timeout_s;
    int llm_retries;
    int llm_max_requests;       /* per job */
    int llm_max_tokens;         /* per job */
    char hf_cache[1024];        /* Hub cache folder: SAED_HF_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub */
    char hf_endpoint[512];      /* HF_ENDPOINT, no trailing slash */
    char hf_token[512];         /* HF_TOKEN (never logged) */
    int hub_tries;
    char github_token[512];     /* GITHUB_TOKEN (never logged) */
    char github_api[512];       /* SAED_GITHUB_API, no trailing slash */
    char saelens_repo[256];     /* SAED_SAELENS_REPO: default base of saelensPr */
} saed_config;

/* Fills cfg from defaults, then the environment, then argv (flags only; positional arguments
 * are an error). On failure writes a message naming the option to err and returns -1. */
int config_load(saed_config *cfg, int argc, char **argv, char *err, size_t errlen);
void config_free(saed_config *cfg);

/* Parses "1024", "8M", "2GiB"... into bytes; -1 on error. */
long long config_parse_size(const char *s);
/* Splits "host:port" / "[v6]:port"; -1 on error. */
int config_parse_listen(const char *s, char *host, size_t hostlen, int *port);

void config_print_help(FILE *f);
void config_print_markdown(FILE *f);

#endif
