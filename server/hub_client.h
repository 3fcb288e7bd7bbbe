/* hub_client.h: the Hugging Face Hub's HTTP API as saed uses it (libcurl): JSON requests
 * with the token, file downloads that resume with Range and verify LFS files' sha256, retries
 * on 5xx, 429 and cut connections with backoff, and the Hub's error answers (401, 403 gated,
 * 404 repo/revision/file, its X-Error-Code header) turned into messages a user can act on.
 * Knows nothing of the cache layout (hub_cache.c) or of saed's registry. hub_request is also
 * GitHub's REST client (gh_pr.c): same retries, its headers through hub_conn.headers. */
#ifndef SAED_HUB_CLIENT_H
#define SAED_HUB_CLIENT_H

#include <stddef.h>
#include <stdint.h>

typedef struct hub_conn {
    const char *endpoint;   /* https://huggingface.co or a mirror (HF_ENDPOINT), no trailing slash */
    const char *token;      /* HF_TOKEN, or NULL/"" for anonymous requests */
    int tries;              /* attempts per request (>= 1) */
    int backoff_ms;         /* first retry's wait; doubles, at most 8 s */
    const char *service;    /* who answers, for messages: NULL "the Hub" (GitHub: "GitHub") */
    const char *const *headers; /* more request headers ("Name: value"), NULL-terminated, or NULL */
} hub_conn;

enum hub_kind { HUB_OK, HUB_INVALID, HUB_AUTH, HUB_GATED, HUB_NOT_FOUND, HUB_CONFLICT, HUB_UNAVAILABLE, HUB_STOPPED };

typedef struct hub_err {
    enum hub_kind kind;
    int status;             /* the Hub's HTTP status, 0 for a connection failure */
    char msg[900];
} hub_err;

int hub_fail(hub_err *e, enum hub_kind k, int status, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

typedef struct hub_resp {
    long status;
    char *body;             /* NUL-terminated (owned) */
    size_t len;
    char repo_commit[64];   /* X-Repo-Commit */
    char error_code[64];    /* X-Error-Code: RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo */
    char error_msg[400];    /* X-Error-Message */
} hub_resp;

void hub_resp_free(hub_resp *r);

/* One request to url (absolute), retried on 5xx/429/connection errors. body may be NULL (no
 * body); ctype its Content-Type. Any final status comes back in out (0 = answered); -1 only
 * when no answer came after every try (e says why). */
int hub_request(const hub_conn *h, const char *method, const char *url, const char *ctype, const char *body,
                size_t len, hub_resp *out, hub_err *e);

/* Turns a non-2xx answer about what (a repo, "file F of repo R") into e; returns -1. */
int hub_status_err(const hub_conn *h, const hub_resp *r, const char *what, hub_err *e);

/* Called while bytes arrive with the file's bytes so far; non-zero stops the download. */
typedef int (*hub_progress_fn)(void *ud, int64_t file_bytes);

/* Downloads url (redirects followed, the token never sent to another host) into path, resuming
 * from path's current length with Range and across cut connections. size: the expected length
 * (-1: unknown); sha256: the expected digest (NULL: not checked). A file that ends up with the
 * wrong length or digest is removed and refused. commit: when not NULL, X-Repo-Commit must
 * match it. */
int hub_download(const hub_conn *h, const char *url, const char *path, int64_t size, const char *sha256,
                 const char *commit, hub_progress_fn fn, void *ud, hub_err *e);

/* The escaped form of s for one URL path segment (malloc'd; "/" escaped too). */
char *hub_escape(const char *s);

/* Whether repo is a valid Hub repo id ("name" or "org/name", the Hub's characters, no "--"
 * or ".."). */
int hub_repo_valid(const char *repo);

#endif
