/* config.c: the option table and its interpreters. Adding an option = one row here plus the
 * field in saed_config; help text and the README table follow from the row. */
#include "server/config.h"
#include "server/wire_case.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "gpu/backend.h"
#include "server/log.h"

enum cfg_type { T_STR, T_INT, T_SIZE, T_BOOL, T_LEVEL, T_LISTEN, T_KEYS, T_ROOTS };

typedef struct cfg_option {
    const char *flag;   /* without the leading "--" */
    const char *env;
    enum cfg_type type;
    const char *def;
    long long min, max; /* T_INT, T_SIZE */
    size_t off, size;   /* field in saed_config; size for strings */
    const char *help;
} cfg_option;

#define F(field) offsetof(saed_config, field), sizeof(((saed_config *)0)->field)

static const cfg_option options[] = {
    {"database-url", "DATABASE_URL", T_STR, "", 0, 0, F(database_url),
     "libpq connection string or URI of the PostgreSQL database (empty: libpq's PG* defaults)"},
    {"listen", "SAED_LISTEN", T_LISTEN, "127.0.0.1:8080", 0, 0, F(listen),
     "HTTP listen address, host:port ([v6]:port for IPv6)"},
    {"http-threads", "SAED_HTTP_THREADS", T_INT, "4", 1, 256, F(http_threads),
     "HTTP worker threads (libmicrohttpd epoll thread pool); each gets a database connection"},
    {"body-limit", "SAED_BODY_LIMIT", T_SIZE, "8M", 1024, 1LL << 30, F(body_limit),
     "largest accepted request body; larger bodies get 413 (suffixes K, M, G)"},
    {"api-keys", "SAED_API_KEYS", T_KEYS, "", 0, 0, F(api_keys_raw),
     "comma-separated API keys accepted in x-api-key on write routes (each 16-256 characters)"},
    {"v1-secret", "SAED_V1_SECRET", T_STR, "", 0, 0, F(v1_secret),
     "secret the Neuronpedia inference-server routes (/v1/*) require in X-SECRET-KEY, as upstream's SECRET (empty: open)"},
    {"v1-wire-case", "SAED_V1_WIRE_CASE", T_STR, "camel", 0, 0, F(v1_wire_case),
     "key casing of /v1 answers when the request's keys do not show one: camel (upstream's server) or snake (the npm neuronpedia-inference-client)"},
    {"data-roots", "SAED_DATA_ROOTS", T_ROOTS, "", 0, 0, F(data_roots_raw),
     "colon-separated directories that model, SAE and dataset paths must lie under"},
    {"workers", "SAED_WORKERS", T_INT, "1", 0, 64, F(workers),
     "dashboard job worker threads started by `saed serve` (0 = HTTP only)"},
    {"job-lease", "SAED_JOB_LEASE", T_INT, "60", 3, 3600, F(job_lease_s),
     "seconds a job's lease lasts without a heartbeat; then the sweeper hands it to another worker"},
    {"job-max-features", "SAED_JOB_MAX_FEATURES", T_INT, "131072", 1, 1 << 24, F(job_max_features),
     "most features one dashboard job covers; a wider SAE is split with featureRange, one job per range"},
    {"compute-threads", "SAED_COMPUTE_THREADS", T_INT, "2", 1, 256, F(compute_threads),
     "threads that run compute routes (live activations, search, steering) off the HTTP threads"},
    {"compute-queue", "SAED_COMPUTE_QUEUE", T_INT, "16", 0, 4096, F(compute_queue),
     "compute requests that may wait for a thread; beyond it they get 503 with Retry-After"},
    {"engine-cache", "SAED_ENGINE_CACHE", T_SIZE, "4G", 0, 1LL << 50, F(engine_cache),
     "memory for loaded models and SAEs kept between requests (least recently used evicted first)"},
    {"max-text-tokens", "SAED_MAX_TEXT_TOKENS", T_INT, "1024", 1, 1 << 20, F(max_text_tokens),
     "longest text, in tokens with the BOS, that live-activation and search requests may send (the model's context also caps it)"},
    {"device", "SAED_DEVICE", T_STR, "auto", 0, 0, F(device),
     "compute device for dashboard jobs: auto (CUDA when saed-cuda.so loads and a GPU is present, else CPU, "
     "the reason logged), cpu, cuda (worker i on GPU i mod count) or cuda:N; a worker whose device fails stops "
     "taking jobs and /readyz answers 503"},
    {"gpu-precision", "SAED_GPU_PRECISION", T_STR, "fp32", 0, 0, F(gpu_precision),
     "GEMM precision on a GPU: fp32 (as the CPU), tf32 or bf16 (tensor cores, fp32 accumulation); "
     "the CPU always computes in fp32"},
    {"log-level", "SAED_LOG_LEVEL", T_LEVEL, "info", 0, 0, F(log_level),
     "application log level: debug, info, warn, error"},
    {"access-log", "SAED_ACCESS_LOG", T_STR, "-", 0, 0, F(access_log),
     "JSON-lines access log: - for stdout, off, or a file path (appended)"},
    {"migrations-dir", "SAED_MIGRATIONS_DIR", T_STR, "migrations", 0, 0, F(migrations_dir),
     "directory holding NNNN_name.sql migrations"},
    {"openapi-file", "SAED_OPENAPI_FILE", T_STR, "openapi/openapi.yaml", 0, 0, F(openapi_file),
     "OpenAPI document served at /openapi.yaml"},
    {"max-connections", "SAED_MAX_CONNECTIONS", T_INT, "1024", 1, 100000, F(max_connections),
     "concurrent HTTP connections accepted"},
    {"db-wait-ms", "SAED_DB_WAIT_MS", T_INT, "2000", 0, 60000, F(db_wait_ms),
     "how long a request waits for a free database connection before 503"},
    {"shutdown-timeout", "SAED_SHUTDOWN_TIMEOUT", T_INT, "30", 0, 3600, F(shutdown_timeout_s),
     "seconds in-flight requests get to finish after SIGTERM/SIGINT"},
    {"insecure", "SAED_INSECURE", T_BOOL, "false", 0, 0, F(insecure),
     "allow a non-loopback listen address with no API keys (write routes open to the network)"},
    {"migrate", "SAED_MIGRATE", T_BOOL, "false", 0, 0, F(migrate),
     "apply pending migrations when `saed serve` starts"},
    {"feature-cache", "SAED_FEATURE_CACHE", T_SIZE, "256M", 0, 1LL << 40, F(feature_cache),
     "memory for cached GET /api/feature responses (0 = no cache); kept true by database notifications"},
    {"llm-base-url", "SAED_LLM_BASE_URL", T_STR, "", 0, 0, F(llm_base_url),
     "OpenAI-compatible server (POST {url}/v1/chat/completions) used by the scoring routes when a request names "
     "none, and by /v1/explain/default and /v1/score/fuzz-detection; autointerp jobs name their own"},
    {"llm-model", "SAED_LLM_MODEL", T_STR, "", 0, 0, F(llm_model),
     "model asked on SAED_LLM_BASE_URL when a request names none"},
    {"llm-key-envs", "SAED_LLM_KEY_ENVS", T_STR, "OPENAI_API_KEY,OPENROUTER_API_KEY", 0, 0, F(llm_key_envs),
     "comma-separated environment variables that a job's apiKeyEnv may name (the key itself is never stored)"},
    {"llm-key-file", "SAED_LLM_KEY_FILE", T_STR, "", 0, 0, F(llm_key_file),
     "file holding the LLM API key used when a request names no apiKeyEnv (empty: no key sent)"},
    {"llm-timeout", "SAED_LLM_TIMEOUT", T_INT, "120", 1, 3600, F(llm_timeout_s),
     "seconds one LLM request may take before it is abandoned and retried"},
    {"llm-retries", "SAED_LLM_RETRIES", T_INT, "4", 0, 20, F(llm_retries),
     "retries of an LLM request after 429, 5xx or a transport failure (backoff 0.5 s doubling, or Retry-After)"},
    {"llm-max-requests", "SAED_LLM_MAX_REQUESTS", T_INT, "200000", 1, 2000000000, F(llm_max_requests),
     "most LLM requests one autointerp job attempt may send (a job's maxRequests may only lower it)"},
    {"llm-max-tokens", "SAED_LLM_MAX_TOKENS", T_INT, "200000000", 1, 2000000000, F(llm_max_tokens),
     "most LLM tokens (the servers' usage.total_tokens) one autointerp job attempt may spend (maxTokens may lower it)"},
    {"hf-cache", "SAED_HF_CACHE", T_STR, "", 0, 0, F(hf_cache),
     "Hugging Face Hub cache folder in the Hub's layout (models--org--name/snapshots/...); empty: $HF_HOME/hub, "
     "else ~/.cache/huggingface/hub"},
    {"hf-endpoint", "HF_ENDPOINT", T_STR, "https://huggingface.co", 0, 0, F(hf_endpoint),
     "Hugging Face Hub endpoint (a mirror, or a local stand-in)"},
    {"hf-token", "HF_TOKEN", T_STR, "", 0, 0, F(hf_token),
     "Hugging Face access token: gated and private repos (pull), and every push (a write token)"},
    {"hub-tries", "SAED_HUB_TRIES", T_INT, "5", 1, 50, F(hub_tries),
     "attempts per Hub (and GitHub) request on 5xx, 429 and cut connections (downloads resume with Range), with doubling backoff"},
    {"github-token", "GITHUB_TOKEN", T_STR, "", 0, 0, F(github_token),
     "GitHub token for a push's saelensPr: push rights on the SAELens fork (contents: write) and pull requests on the base (never logged)"},
    {"github-api", "SAED_GITHUB_API", T_STR, "https://api.github.com", 0, 0, F(github_api),
     "GitHub REST API endpoint (GitHub Enterprise: https://HOST/api/v3, or a local stand-in)"},
    {"saelens-repo", "SAED_SAELENS_REPO", T_STR, "decoderesearch/SAELens", 0, 0, F(saelens_repo),
     "GitHub repo a saelensPr pull request goes to when the request names no base (SAELens' home, owner/name)"},
};
#define N_OPTIONS (sizeof options / sizeof options[0])

static const char *type_name(enum cfg_type t)
{
    switch (t) {
    case T_INT: return "integer";
    case T_SIZE: return "size";
    case T_BOOL: return "bool";
    case T_LEVEL: return "level";
    case T_LISTEN: return "host:port";
    case T_KEYS: return "list";
    case T_ROOTS: return "paths";
    default: return "string";
    }
}

long long config_parse_size(const char *s)
{
    char *end;
    errno = 0;
    if (!isdigit((unsigned char)*s)) return -1;
    long long v = strtoll(s, &end, 10);
    if (errno) return -1;
    long long mul = 1;
    if (*end) {
        switch (toupper((unsigned char)*end)) {
        case 'K': mul = 1LL << 10; break;
        case 'M': mul = 1LL << 20; break;
        case 'G': mul = 1LL << 30; break;
        default: return -1;
        }
        end++;
        if (*end == 'i' || *end == 'I') end++;
        if (*end == 'B' || *end == 'b') end++;
        if (*end) return -1;
    }
    if (v > LLONG_MAX / mul) return -1;
    return v * mul;
}

int config_parse_listen(const char *s, char *host, size_t hostlen, int *port)
{
    const char *colon;
    size_t hl;
    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':') return -1;
        hl = (size_t)(rb - s - 1);
        s++;
        colon = rb + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || memchr(s, ':', (size_t)(colon - s))) return -1;
        hl = (size_t)(colon - s);
    }
    if (hl == 0 || hl >= hostlen) return -1;
    memcpy(host, s, hl);
    host[hl] = '\0';
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (errno || *end || colon[1] == '\0' || p < 0 || p > 65535) return -1;
    *port = (int)p;
    return 0;
}

/* Splits raw on sep into the list, skipping empty items; -1 when more than CFG_MAX_LIST. */
static int split(char *raw, char sep, char **items, int *n)
{
    *n = 0;
    for (char *p = raw; p && *p;) {
        char *next = strchr(p, sep);
        if (next) *next++ = '\0';
        while (isspace((unsigned char)*p)) p++;
        size_t l = strlen(p);
        while (l && isspace((unsigned char)p[l - 1])) p[--l] = '\0';
        if (*p) {
            if (*n == CFG_MAX_LIST) return -1;
            items[(*n)++] = p;
        }
        p = next;
    }
    return 0;
}

static int set_value(saed_config *cfg, const cfg_option *o, const char *val, const char *from,
                     char *err, size_t errlen)
{
    char *field = (char *)cfg + o->off;
#define BAD(...) do { snprintf(err, errlen, __VA_ARGS__); return -1; } while (0)
    switch (o->type) {
    case T_STR:
    case T_LISTEN:
    case T_KEYS:
    case T_ROOTS:
        if (strlen(val) >= o->size) BAD("%s: value longer than %zu characters", from, o->size - 1);
        strcpy(field, val);
        if (o->type == T_LISTEN &&
            config_parse_listen(val, cfg->listen_host, sizeof cfg->listen_host, &cfg->listen_port))
            BAD("%s: '%s' is not host:port (port 0-65535)", from, val);
        return 0;
    case T_INT:
    case T_SIZE: {
        long long v;
        if (o->type == T_SIZE) {
            v = config_parse_size(val);
            if (v < 0) BAD("%s: '%s' is not a size (digits with an optional K, M or G)", from, val);
        } else {
            char *end;
            errno = 0;
            v = strtoll(val, &end, 10);
            if (errno || *end || !*val) BAD("%s: '%s' is not an integer", from, val);
        }
        if (v < o->min || v > o->max)
            BAD("%s: %s is out of range [%lld, %lld]", from, val, o->min, o->max);
        if (o->type == T_SIZE) *(long long *)field = v;
        else *(int *)field = (int)v;
        return 0;
    }
    case T_BOOL:
        if (!strcmp(val, "true") || !strcmp(val, "1") || !strcmp(val, "yes")) *(bool *)field = true;
        else if (!strcmp(val, "false") || !strcmp(val, "0") || !strcmp(val, "no") || !*val) *(bool *)field = false;
        else BAD("%s: '%s' is not a boolean (true/false)", from, val);
        return 0;
    case T_LEVEL: {
        int l = log_level_parse(val);
        if (l < 0 || l == LOG_OFF) BAD("%s: '%s' is not one of debug, info, warn, error", from, val);
        *(int *)field = l;
        return 0;
    }
    }
#undef BAD
    return 0;
}

/* Derived values that need the whole config: key list, resolved data roots. */
static int finish(saed_config *cfg, char *err, size_t errlen)
{
    char why[160];
    backend_precision prec;
    if (backend_spec_check(cfg->device, why, sizeof why)) {
        snprintf(err, errlen, "SAED_DEVICE (--device): %s", why);
        return -1;
    }
    if (backend_precision_parse(cfg->gpu_precision, &prec)) {
        snprintf(err, errlen, "SAED_GPU_PRECISION (--gpu-precision): '%s' is not one of fp32, tf32, bf16",
                 cfg->gpu_precision);
        return -1;
    }
    wire_case wc;
    if (wire_case_parse(cfg->v1_wire_case, &wc)) {
        snprintf(err, errlen, "SAED_V1_WIRE_CASE (--v1-wire-case): '%s' is not one of camel, snake", cfg->v1_wire_case);
        return -1;
    }
    cfg->v1_snake = wc == WIRE_SNAKE;
    size_t el = strlen(cfg->hf_endpoint);
    while (el && cfg->hf_endpoint[el - 1] == '/') cfg->hf_endpoint[--el] = '\0';
    if (strncmp(cfg->hf_endpoint, "http://", 7) && strncmp(cfg->hf_endpoint, "https://", 8)) {
        snprintf(err, errlen, "HF_ENDPOINT (--hf-endpoint): '%s' is not an http:// or https:// URL", cfg->hf_endpoint);
        return -1;
    }
    el = strlen(cfg->github_api);
    while (el && cfg->github_api[el - 1] == '/') cfg->github_api[--el] = '\0';
    if (strncmp(cfg->github_api, "http://", 7) && strncmp(cfg->github_api, "https://", 8)) {
        snprintf(err, errlen, "SAED_GITHUB_API (--github-api): '%s' is not an http:// or https:// URL", cfg->github_api);
        return -1;
    }
    if (!cfg->hf_cache[0]) {
        /* huggingface_hub's own default, so both share one cache. */
        const char *hh = getenv("HF_HOME"), *home = getenv("HOME");
        if (hh && *hh) snprintf(cfg->hf_cache, sizeof cfg->hf_cache, "%s/hub", hh);
        else snprintf(cfg->hf_cache, sizeof cfg->hf_cache, "%s/.cache/huggingface/hub", home && *home ? home : "/tmp");
    }
    strcpy(cfg->api_keys_buf, cfg->api_keys_raw);
    if (split(cfg->api_keys_buf, ',', cfg->api_keys, &cfg->n_api_keys)) {
        snprintf(err, errlen, "SAED_API_KEYS (--api-keys): more than %d keys", CFG_MAX_LIST);
        return -1;
    }
    for (int i = 0; i < cfg->n_api_keys; i++) {
        size_t l = strlen(cfg->api_keys[i]);
        if (l < 16 || l > 256) {
            snprintf(err, errlen, "SAED_API_KEYS (--api-keys): key %d has %zu characters; keys need 16-256", i + 1, l);
            return -1;
        }
    }
    char buf[sizeof cfg->data_roots_raw];
    char *items[CFG_MAX_LIST];
    int n;
    strcpy(buf, cfg->data_roots_raw);
    if (split(buf, ':', items, &n)) {
        snprintf(err, errlen, "SAED_DATA_ROOTS (--data-roots): more than %d directories", CFG_MAX_LIST);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        char *rp = realpath(items[i], NULL);
        struct stat st;
        if (!rp || stat(rp, &st) || !S_ISDIR(st.st_mode)) {
            snprintf(err, errlen, "SAED_DATA_ROOTS (--data-roots): '%s' is not an existing directory", items[i]);
            free(rp);
            return -1;
        }
        cfg->data_roots[cfg->n_data_roots++] = rp;
    }
    return 0;
}

int config_load(saed_config *cfg, int argc, char **argv, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    char from[160];
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const cfg_option *o = &options[i];
        snprintf(from, sizeof from, "default of --%s", o->flag);
        if (set_value(cfg, o, o->def, from, err, errlen)) return -1;
        const char *env = getenv(o->env);
        if (env) {
            snprintf(from, sizeof from, "%s (--%s)", o->env, o->flag);
            if (set_value(cfg, o, env, from, err, errlen)) return -1;
        }
    }
    for (int a = 0; a < argc; a++) {
        const char *arg = argv[a];
        if (strncmp(arg, "--", 2) != 0) {
            snprintf(err, errlen, "unexpected argument '%s' (options are --name value or --name=value)", arg);
            return -1;
        }
        const char *name = arg + 2, *eq = strchr(name, '=');
        size_t nl = eq ? (size_t)(eq - name) : strlen(name);
        const cfg_option *o = NULL;
        for (size_t i = 0; i < N_OPTIONS; i++)
            if (strlen(options[i].flag) == nl && !strncmp(options[i].flag, name, nl)) o = &options[i];
        if (!o) {
            snprintf(err, errlen, "unknown option '%.*s' (see saed --help)", (int)(nl + 2), arg);
            return -1;
        }
        const char *val;
        if (eq) val = eq + 1;
        else if (o->type == T_BOOL) val = "true";
        else if (a + 1 < argc) val = argv[++a];
        else {
            snprintf(err, errlen, "--%s needs a value", o->flag);
            return -1;
        }
        snprintf(from, sizeof from, "--%s", o->flag);
        if (set_value(cfg, o, val, from, err, errlen)) return -1;
    }
    return finish(cfg, err, errlen);
}

void config_free(saed_config *cfg)
{
    for (int i = 0; i < cfg->n_data_roots; i++) free(cfg->data_roots[i]);
    cfg->n_data_roots = 0;
}

void config_print_help(FILE *f)
{
    fprintf(f, "Options (flag, environment variable, default):\n");
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const cfg_option *o = &options[i];
        char range[64] = "";
        if (o->type == T_INT || o->type == T_SIZE) snprintf(range, sizeof range, " [%lld..%lld]", o->min, o->max);
        fprintf(f, "  --%-18s %-22s default \"%s\"%s\n      %s\n", o->flag, o->env, o->def, range, o->help);
    }
}

void config_print_markdown(FILE *f)
{
    fprintf(f, "| flag | environment | type | default | bounds | meaning |\n");
    fprintf(f, "|---|---|---|---|---|---|\n");
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const cfg_option *o = &options[i];
        char range[64] = "";
        if (o->type == T_INT || o->type == T_SIZE) snprintf(range, sizeof range, "%lld–%lld", o->min, o->max);
        char def[96];
        snprintf(def, sizeof def, *o->def ? "`%s`" : "(empty)", o->def);
        fprintf(f, "| `--%s` | `%s` | %s | %s | %s | %s |\n", o->flag, o->env, type_name(o->type),
                def, range, o->help);
    }
}
