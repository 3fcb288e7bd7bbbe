/* hub_client.c: see hub_client.h. One curl easy handle per request: requests are few and
 * large (metadata, then whole files), so connection reuse would buy little. */
#include "server/hub_client.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "server/log.h"
#include "server/sha256.h"

int hub_fail(hub_err *e, enum hub_kind k, int status, const char *fmt, ...)
{
    va_list ap;
    e->kind = k;
    e->status = status;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return -1;
}

void hub_resp_free(hub_resp *r)
{
    free(r->body);
    r->body = NULL;
    r->len = 0;
}

char *hub_escape(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *o = malloc(3 * n + 1), *p = o;
    if (!o) return NULL;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || strchr("-._~", *c)) {
            *p++ = (char)*c;
        } else {
            *p++ = '%';
            *p++ = hex[*c >> 4];
            *p++ = hex[*c & 15];
        }
    }
    *p = '\0';
    return o;
}

int hub_repo_valid(const char *repo)
{
    size_t n = repo ? strlen(repo) : 0;
    if (n == 0 || n > 96 + 1 + 96 || strstr(repo, "--") || strstr(repo, "..")) return 0;
    int slashes = 0, seg = 0;
    for (size_t i = 0; i < n; i++) {
        char c = repo[i];
        if (c == '/') {
            if (!seg || ++slashes > 1) return 0;
            seg = 0;
            continue;
        }
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 (seg && (c == '.' || c == '_' || c == '-'));
        if (!ok) return 0;
        seg++;
    }
    return seg > 0 && repo[n - 1] != '.' && repo[n - 1] != '-';
}

/* ---- one transfer ---- */

typedef struct xfer {
    hub_resp *r;
    FILE *f;                /* download target, or NULL: the body goes to r->body */
    int64_t base;           /* bytes the file had before this transfer */
    int64_t got;            /* bytes written by this transfer */
    long status;            /* status of the response being received */
    hub_progress_fn fn;
    void *ud;
    int stopped;
} xfer;

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    xfer *x = ud;
    size_t k = sz * n;
    if (x->f && x->status >= 200 && x->status < 300) {
        if (fwrite(p, 1, k, x->f) != k) return 0;
        x->got += (int64_t)k;
        return k;
    }
    char *nb = realloc(x->r->body, x->r->len + k + 1);
    if (!nb) return 0;
    x->r->body = nb;
    memcpy(nb + x->r->len, p, k);
    x->r->len += k;
    nb[x->r->len] = '\0';
    return k;
}

static void header_value(const char *line, size_t n, const char *name, char *dst, size_t dn)
{
    size_t nl = strlen(name);
    if (n <= nl + 1 || strncasecmp(line, name, nl) || line[nl] != ':') return;
    const char *v = line + nl + 1;
    while (*v == ' ') v++;
    size_t vl = n - (size_t)(v - line);
    while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' ')) vl--;
    if (vl >= dn) vl = dn - 1;
    memcpy(dst, v, vl);
    dst[vl] = '\0';
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
    xfer *x = ud;
    size_t k = sz * n;
    if (k > 5 && !strncmp(p, "HTTP/", 5)) {
        /* A new response (after a redirect): its status decides where the body goes, and only
         * its error headers count. */
        const char *sp = memchr(p, ' ', k);
        x->status = sp ? strtol(sp + 1, NULL, 10) : 0;
        x->r->error_code[0] = x->r->error_msg[0] = '\0';
        return k;
    }
    /* The first X-Repo-Commit is the Hub's; a CDN after a redirect sends none. */
    if (!x->r->repo_commit[0]) header_value(p, k, "X-Repo-Commit", x->r->repo_commit, sizeof x->r->repo_commit);
    header_value(p, k, "X-Error-Code", x->r->error_code, sizeof x->r->error_code);
    header_value(p, k, "X-Error-Message", x->r->error_msg, sizeof x->r->error_msg);
    return k;
}

static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    (void)dt, (void)dn, (void)ut, (void)un;
    xfer *x = ud;
    if (x->fn && x->fn(x->ud, x->base + x->got)) {
        x->stopped = 1;
        return 1;
    }
    return 0;
}

/* One attempt. Returns the CURLcode; the status is in x->r->status. */
static CURLcode perform(const hub_conn *h, const char *method, const char *url, const char *ctype, const char *body,
                        size_t len, const char *range, xfer *x)
{
    CURL *c = curl_easy_init();
    if (!c) return CURLE_OUT_OF_MEMORY;
    struct curl_slist *hl = NULL;
    char auth[600], ct[160], rg[80];
    if (h->token && *h->token) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", h->token);
        hl = curl_slist_append(hl, auth);
    }
    if (ctype) {
        snprintf(ct, sizeof ct, "Content-Type: %s", ctype);
        hl = curl_slist_append(hl, ct);
        if (strstr(ctype, "git-lfs")) hl = curl_slist_append(hl, "Accept: application/vnd.git-lfs+json");
    }
    if (range) {
        snprintf(rg, sizeof rg, "Range: %s", range);
        hl = curl_slist_append(hl, rg);
    }
    for (const char *const *x = h->headers; x && *x; x++) hl = curl_slist_append(hl, *x);
    hl = curl_slist_append(hl, "Expect:");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    /* GitHub refuses requests without a User-Agent. */
    curl_easy_setopt(c, CURLOPT_USERAGENT, h->service ? "saed" : "saed (huggingface_hub-compatible)");
    /* Downloads follow the Hub's redirects to its storage; the Authorization header is a
     * custom header, which libcurl does not send on to another host. */
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, x->f ? 1L : 0L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, x->f ? "identity" : "");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, x);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 20L);
    /* No overall timeout (files are gigabytes); a stalled transfer counts as cut. */
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &x->r->status);
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    return rc;
}

static int retryable(CURLcode rc, long status)
{
    if (rc != CURLE_OK) return 1;
    return status >= 500 || status == 429;
}

static void nap(const hub_conn *h, int attempt)
{
    long ms = (long)h->backoff_ms << (attempt < 6 ? attempt : 6);
    if (ms > 8000) ms = 8000;
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int hub_request(const hub_conn *h, const char *method, const char *url, const char *ctype, const char *body,
                size_t len, hub_resp *out, hub_err *e)
{
    int tries = h->tries > 0 ? h->tries : 1;
    CURLcode rc = CURLE_OK;
    memset(out, 0, sizeof *out);
    for (int a = 0; a < tries; a++) {
        hub_resp_free(out);
        memset(out, 0, sizeof *out);
        xfer x = {.r = out};
        rc = perform(h, method, url, ctype, body, len, NULL, &x);
        if (!retryable(rc, out->status)) break;
        if (a + 1 < tries) {
            log_warn("%s: %s %s: %s; retrying", h->service ? h->service : "hub", method, url,
                     rc != CURLE_OK ? curl_easy_strerror(rc) : out->status == 429 ? "429 rate limited" : "server error");
            nap(h, a);
        }
    }
    if (!out->body) out->body = calloc(1, 1);
    if (rc != CURLE_OK)
        return hub_fail(e, HUB_UNAVAILABLE, 0, "%s at %s could not be reached after %d tries: %s",
                        h->service ? h->service : "the Hub", h->endpoint, tries, curl_easy_strerror(rc));
    return 0;
}

int hub_status_err(const hub_conn *h, const hub_resp *r, const char *what, hub_err *e)
{
    int st = (int)r->status;
    const char *code = r->error_code, *hubmsg = r->error_msg[0] ? r->error_msg : "";
    int tok = h->token && *h->token;
    if (!strcmp(code, "GatedRepo") || (st == 403 && !tok))
        return hub_fail(e, HUB_GATED, st,
                        "%s: access is restricted (gated repo). %s: accept its conditions on the Hub, then set HF_TOKEN "
                        "to a token of that account%s%s",
                        what, tok ? "This HF_TOKEN's account has not been granted access" : "No HF_TOKEN is set",
                        *hubmsg ? ". The Hub says: " : "", hubmsg);
    if (!strcmp(code, "RevisionNotFound"))
        return hub_fail(e, HUB_NOT_FOUND, st, "%s: revision not found%s%s", what, *hubmsg ? ": " : "", hubmsg);
    if (!strcmp(code, "EntryNotFound"))
        return hub_fail(e, HUB_NOT_FOUND, st, "%s: file not found in the repo%s%s", what, *hubmsg ? ": " : "", hubmsg);
    if (st == 401 || !strcmp(code, "RepoNotFound"))
        /* The Hub answers 401 for a private repo without a token as for a missing one. */
        return hub_fail(e, st == 401 && !tok ? HUB_AUTH : HUB_NOT_FOUND, st,
                        "%s: repository not found, or private%s", what,
                        tok ? " and this HF_TOKEN has no access to it" : ": set HF_TOKEN for a private or gated repo");
    if (st == 403)
        return hub_fail(e, HUB_GATED, st, "%s: forbidden: HF_TOKEN lacks the permission (a write token is needed to push)%s%s",
                        what, *hubmsg ? ". The Hub says: " : "", hubmsg);
    if (st == 404) return hub_fail(e, HUB_NOT_FOUND, st, "%s: not found on the Hub", what);
    if (st == 409) return hub_fail(e, HUB_CONFLICT, st, "%s: conflict%s%s", what, *hubmsg ? ": " : "", hubmsg);
    if (st >= 500 || st == 429)
        return hub_fail(e, HUB_UNAVAILABLE, st, "%s: the Hub answered %d after every retry", what, st);
    return hub_fail(e, HUB_INVALID, st, "%s: the Hub answered %d%s%.200s", what, st, *hubmsg ? ": " : "", hubmsg);
}

static int64_t file_len(const char *path)
{
    struct stat st;
    return stat(path, &st) ? 0 : (int64_t)st.st_size;
}

int hub_download(const hub_conn *h, const char *url, const char *path, int64_t size, const char *sha256,
                 const char *commit, hub_progress_fn fn, void *ud, hub_err *e)
{
    int tries = h->tries > 0 ? h->tries : 1;
    for (int a = 0;; a++) {
        int64_t have = file_len(path);
        if (size >= 0 && have > size) {
            /* Longer than the file can be: not a prefix of it. */
            if (truncate(path, 0)) return hub_fail(e, HUB_INVALID, 0, "%s: %s", path, strerror(errno));
            have = 0;
        }
        if (size >= 0 && have == size) break;
        FILE *f = fopen(path, "ab");
        if (!f) return hub_fail(e, HUB_INVALID, 0, "%s: %s", path, strerror(errno));
        hub_resp r = {0};
        xfer x = {.r = &r, .f = f, .base = have, .fn = fn, .ud = ud};
        char range[64];
        snprintf(range, sizeof range, "bytes=%lld-", (long long)have);
        CURLcode rc = perform(h, "GET", url, NULL, NULL, 0, have > 0 ? range : NULL, &x);
        int bad = fclose(f) != 0;
        if (x.stopped) {
            hub_resp_free(&r);
            return hub_fail(e, HUB_STOPPED, 0, "download stopped");
        }
        if (bad) {
            hub_resp_free(&r);
            return hub_fail(e, HUB_INVALID, 0, "%s: write failed: %s", path, strerror(errno));
        }
        if (commit && r.repo_commit[0] && strcmp(r.repo_commit, commit)) {
            hub_resp_free(&r);
            return hub_fail(e, HUB_INVALID, 0, "%s: the Hub served commit %s, not the pinned %s", url, r.repo_commit, commit);
        }
        if (rc == CURLE_OK && r.status == 200 && have > 0) {
            /* The server ignored Range and sent the whole file after what we had: start over. */
            log_warn("hub: %s ignored Range; downloading it again from the start", url);
            hub_resp_free(&r);
            if (truncate(path, 0)) return hub_fail(e, HUB_INVALID, 0, "%s: %s", path, strerror(errno));
            continue;
        }
        if (rc == CURLE_OK && r.status == 416 && size < 0) {
            hub_resp_free(&r);
            break;  /* nothing after what we have: complete */
        }
        if (rc == CURLE_OK && (r.status == 200 || r.status == 206) && size < 0) {
            hub_resp_free(&r);
            break;
        }
        if (rc == CURLE_OK && r.status != 200 && r.status != 206 && !retryable(rc, r.status)) {
            int k = hub_status_err(h, &r, url, e);
            hub_resp_free(&r);
            return k;
        }
        hub_resp_free(&r);
        if (file_len(path) == size) continue;  /* complete: the loop's top ends it */
        /* Cut short (an error, a 5xx, or a body that ended early): resume, within the tries. */
        if (a + 1 >= tries)
            return hub_fail(e, HUB_UNAVAILABLE, (int)r.status, "%s: download failed after %d tries (%s); %lld bytes kept for a resume",
                            url, tries, rc != CURLE_OK ? curl_easy_strerror(rc) : "server error", (long long)file_len(path));
        log_warn("hub: %s: %s after %lld bytes; resuming", url, rc != CURLE_OK ? curl_easy_strerror(rc) : "server error",
                 (long long)file_len(path));
        nap(h, a);
    }
    if (sha256) {
        char got[65];
        if (sha256_file(path, got)) return hub_fail(e, HUB_INVALID, 0, "%s: cannot read it back", path);
        if (strcmp(got, sha256)) {
            unlink(path);
            return hub_fail(e, HUB_INVALID, 0, "%s: sha256 %s does not match the Hub's %s; the download was discarded", url, got,
                            sha256);
        }
    }
    return 0;
}
