/* srv.h: helpers for tests that need real PostgreSQL and a real saed process: fresh databases
 * in the harness's throwaway cluster, starting/stopping `saed serve`, and an HTTP client whose
 * every response is checked against openapi/openapi.yaml and the one error shape. */
#ifndef SAED_TESTS_SRV_H
#define SAED_TESTS_SRV_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct srv {
    pid_t pid;
    int port;
    char dir[128];          /* scratch folder with the logs */
    char db_url[512];
} srv;

typedef struct resp {
    int status;
    char *body;
    size_t len;
    char ctype[128], allow[128], retry_after[32], request_id[96], location[256], acao[64], etag[96], cache_control[64];
} resp;

/* 1 when the harness provided a cluster (tests/run.sh); otherwise the caller skips. */
int tdb_available(void);
/* Creates an empty database; fills its URL. 0 on success. */
int tdb_create(char *url, size_t n);
int tdb_exec(const char *url, const char *sql);      /* 0 on success */
int tdb_pg(const char *action);                      /* "stop" or "start" the cluster */

const char *saed_bin(void);
/* Runs saed with args (NULL-terminated) and waits; returns the exit status, stderr in err. */
int saed_run(const char *const *args, char *out, size_t outlen, char *err, size_t errlen);

/* Starts `saed serve` on a free loopback port against db_url with extra args (NULL-terminated
 * list, may be NULL); waits for /healthz. 0 on success. */
int srv_start(srv *s, const char *db_url, const char *const *extra);
/* A fresh database (URL into url when not NULL) and a server on it: 0, or -1 after marking the
 * test skipped (no harness cluster) or failed. */
int srv_fresh(srv *s, char *url, size_t n, const char *const *extra);
/* SIGTERM and wait; returns the exit status (or -1). */
int srv_stop(srv *s);

int http(srv *s, const char *method, const char *path, const char *const *headers, const char *body, resp *out);
json_t *resp_json(const resp *r);
/* A snake_case /v1 answer (the wire's other casing, server/wire_case.h) renamed to camelCase in
 * place, so camelCase schemas check it; written apart from saed's renaming, the other way round. */
void tests_camelize(json_t *j);
/* A copy of tests/data/models/tiny-a in dir with a tokenizer_config.json whose chat template
 * renders "<bos>role: content\n"... then "assistant:". 0 on success. */
int tests_write_chat_model(const char *dir);
/* Registers that copy as model tiny-chat and sae_dir as its SAE 1-rs (set "rs"); 0, or -1
 * after failing the test. */
int tests_add_chat_model(srv *s, const char *const *hdr, const char *dir, const char *sae_dir);
void resp_free(resp *r);

/* A text corpus for dashboard jobs: docs lines of words_per_doc words drawn from a small
 * vocabulary by a seeded generator (deterministic). */
void tests_write_corpus(const char *path, int docs, int words_per_doc, unsigned seed);
/* dir (existing): a copy of tests/data/sae/tiny-a-res-standard whose cfg says
 * normalize_activations expected_average_only_in, norm_scaling_factor 4 (weights linked). */
int tests_write_nsf_sae(const char *dir);
/* A whole file, NUL-terminated (owned), its size in *len; NULL when it cannot be read. */
char *tests_slurp(const char *path, size_t *len);
/* The first column of the first row of a query, as a number (psql; 0 when none). */
long long tdb_scalar(const char *url, const char *sql);

/* `saed encode --prepend-bos [--fold-dec-norm]` of text with the model and SAE folders: dense
 * (T, d_sae) values (owned; T out), or NULL after failing the test. */
float *tests_saed_encode(const char *model_dir, const char *sae_dir, const char *text, int fold, int d_sae, int *T);

/* Checks a greedy continuation of prompt (T ids) with model_dir against `saed forward` run
 * step by step: n tokens, lps (upstream's [{token, logprob, topLogprobs}] with k_top entries)
 * the log-softmax of the logits at each step, and text the decoded tokens. Fails the test. */
void tests_check_greedy(const char *model_dir, const int32_t *prompt, int T, int n, int k_top, json_t *lps, const char *text);

/* Polls GET /api/dashboard-jobs/{id} until the job is neither available nor running; its final
 * JSON (owned), or NULL after `seconds`. */
json_t *srv_wait_job(srv *s, long long id, int seconds);

/* A connected socket to the server, for requests sent by hand. */
int srv_connect(srv *s);

/* One POST sent from a thread of its own (pthread_create(..., fire, &shot)), for bursts that
 * must overlap on the server: status (0 when it failed), Retry-After, Content-Type and body. */
typedef struct shot {
    int port;
    const char *path, *body;
    long status;
    char retry_after[16];
    char *resp;
    size_t len;
    char ctype[128];
} shot;
void *fire(void *arg);

#endif
