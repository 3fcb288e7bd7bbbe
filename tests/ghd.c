/* ghd.c: see ghd.h. libmicrohttpd with its own thread; state under one mutex. */
#define _GNU_SOURCE
#include "tests/ghd.h"

#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "server/base64.h"
#include "server/sha256.h"
#include "tests/loopd.h"

#define MAX_COMMITS 64
#define MAX_FILES 4
#define MAX_REPOS 8
#define MAX_BRANCHES 16
#define MAX_PRS 16
#define MAX_TOKENS 8
#define BIG_FILE (1 << 20)

typedef struct gfile {
    char path[256];
    char *text;
    char blob[41];
} gfile;

typedef struct gcommit {
    char sha[41];
    int net, nf;
    gfile f[MAX_FILES];
} gcommit;

typedef struct grepo {
    char id[128], owner[64];
    int net, nb, isolated;
    struct { char name[256]; int commit; } b[MAX_BRANCHES];
} grepo;

typedef struct gpr {
    int number, open;
    char base[128], base_ref[256], head_repo[128], head_ref[256], label[320], title[512], body[4096];
} gpr;

struct ghd {
    loopd sd;
    const char *ep;
    pthread_mutex_t mu;
    gcommit c[MAX_COMMITS];
    int nc;
    grepo r[MAX_REPOS];
    int nr, nnet;
    gpr p[MAX_PRS];
    int np;
    struct { char token[96], login[64]; } t[MAX_TOKENS];
    int nt, fail, bad_headers;
    char race_repo[128], race_branch[256], race_path[256];
    char *race_add;             /* appended to the file right after the next read of it */
};

typedef loopd_body body;

/* ---- state ---- */

static grepo *repo_of(ghd *g, const char *id)
{
    for (int i = 0; i < g->nr; i++)
        if (!strcmp(g->r[i].id, id)) return &g->r[i];
    return NULL;
}

static int branch_of(grepo *r, const char *name)
{
    for (int i = 0; r && i < r->nb; i++)
        if (!strcmp(r->b[i].name, name)) return i;
    return -1;
}

static gfile *file_in(gcommit *c, const char *path)
{
    for (int i = 0; i < c->nf; i++)
        if (!strcmp(c->f[i].path, path)) return &c->f[i];
    return NULL;
}

static void hex40(const char *a, const char *b, char out[41])
{
    sha256_ctx x;
    char hex[65];
    sha256_init(&x);
    sha256_update(&x, a, strlen(a));
    sha256_update(&x, b, strlen(b));
    sha256_final_hex(&x, hex);
    memcpy(out, hex, 40);
    out[40] = '\0';
}

/* A new commit: parent's files (parent -1: none) with path set to text. Its index, or -1. */
static int new_commit(ghd *g, int parent, int net, const char *path, const char *text)
{
    if (g->nc >= MAX_COMMITS) return -1;
    gcommit *c = &g->c[g->nc];
    memset(c, 0, sizeof *c);
    c->net = net;
    if (parent >= 0) {
        gcommit *p = &g->c[parent];
        c->nf = p->nf;
        for (int i = 0; i < p->nf; i++) {
            c->f[i] = p->f[i];
            c->f[i].text = strdup(p->f[i].text);
        }
    }
    gfile *f = file_in(c, path);
    if (!f && c->nf < MAX_FILES) f = &c->f[c->nf++];
    if (!f) return -1;
    free(f->text);
    snprintf(f->path, sizeof f->path, "%s", path);
    f->text = strdup(text);
    hex40("blob", text, f->blob);
    hex40(parent >= 0 ? g->c[parent].sha : "root", f->blob, c->sha);
    return g->nc++;
}

static int commit_by_sha(ghd *g, const char *sha, int net)
{
    for (int i = 0; i < g->nc; i++)
        if (!strcmp(g->c[i].sha, sha) && g->c[i].net == net) return i;
    return -1;
}

/* ---- answers ---- */

static enum MHD_Result send_text(struct MHD_Connection *c, int status, const char *ctype, const char *b, size_t n)
{
    struct MHD_Response *rs = MHD_create_response_from_buffer(n, (void *)b, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(rs, "Content-Type", ctype);
    enum MHD_Result k = MHD_queue_response(c, (unsigned)status, rs);
    MHD_destroy_response(rs);
    return k;
}

static enum MHD_Result send_j(struct MHD_Connection *c, int status, json_t *j)
{
    char *t = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    enum MHD_Result k = send_text(c, status, "application/json; charset=utf-8", t ? t : "{}", t ? strlen(t) : 2);
    free(t);
    return k;
}

static enum MHD_Result fail_msg(struct MHD_Connection *c, int status, const char *msg)
{
    return send_j(c, status, json_pack("{s:s}", "message", msg));
}

/* 422 "Validation Failed" with one error. */
static enum MHD_Result fail_422(struct MHD_Connection *c, const char *resource, const char *msg)
{
    return send_j(c, 422, json_pack("{s:s,s:[{s:s,s:s,s:s}]}", "message", "Validation Failed", "errors", "resource", resource,
                                    "code", "custom", "message", msg));
}

static const char *login_of(ghd *g, struct MHD_Connection *c)
{
    const char *a = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!a || strncmp(a, "Bearer ", 7)) return NULL;
    for (int i = 0; i < g->nt; i++)
        if (!strcmp(g->t[i].token, a + 7)) return g->t[i].login;
    return NULL;
}

static json_t *ref_json(const char *branch, const char *sha)
{
    char ref[300];
    snprintf(ref, sizeof ref, "refs/heads/%s", branch);
    return json_pack("{s:s,s:{s:s,s:s}}", "ref", ref, "object", "type", "commit", "sha", sha);
}

static json_t *pr_json(ghd *g, const gpr *p)
{
    char url[400];
    snprintf(url, sizeof url, "%s/%s/pull/%d", g->ep, p->base, p->number);
    return json_pack("{s:i,s:s,s:s,s:s,s:s,s:{s:s,s:s},s:{s:s}}", "number", p->number, "html_url", url, "state",
                     p->open ? "open" : "closed", "title", p->title, "body", p->body, "head", "ref", p->head_ref, "label", p->label,
                     "base", "ref", p->base_ref);
}

static enum MHD_Result get_ref(ghd *g, struct MHD_Connection *c, grepo *r, const char *branch)
{
    int b = branch_of(r, branch);
    if (b < 0) return fail_msg(c, 404, "Not Found");
    return send_j(c, 200, ref_json(branch, g->c[r->b[b].commit].sha));
}

static enum MHD_Result post_ref(ghd *g, struct MHD_Connection *c, grepo *r, const char *login, const body *bd)
{
    if (strcmp(login, r->owner)) return fail_msg(c, 403, "Resource not accessible by personal access token");
    json_t *j = json_loadb(bd->buf ? bd->buf : "", bd->len, 0, NULL);
    const char *ref = json_string_value(json_object_get(j, "ref")), *sha = json_string_value(json_object_get(j, "sha"));
    enum MHD_Result k;
    int ci = sha ? commit_by_sha(g, sha, r->net) : -1;
    if (r->isolated) {
        /* A mirror sees only the commits of its own branches. */
        int seen = 0;
        for (int i = 0; i < r->nb; i++) seen |= r->b[i].commit == ci;
        if (!seen) ci = -1;
    }
    if (!ref || strncmp(ref, "refs/heads/", 11) || !sha) k = fail_msg(c, 422, "Invalid request.");
    else if (branch_of(r, ref + 11) >= 0) k = fail_msg(c, 422, "Reference already exists");
    else if (ci < 0) k = fail_msg(c, 422, "Object does not exist");
    else if (r->nb >= MAX_BRANCHES) k = fail_msg(c, 500, "full");
    else {
        snprintf(r->b[r->nb].name, sizeof r->b[r->nb].name, "%s", ref + 11);
        r->b[r->nb++].commit = ci;
        k = send_j(c, 201, ref_json(ref + 11, sha));
    }
    json_decref(j);
    return k;
}

static enum MHD_Result get_contents(ghd *g, struct MHD_Connection *c, grepo *r, const char *path)
{
    const char *ref = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "ref");
    int b = branch_of(r, ref ? ref : "main");
    gfile *f = b >= 0 ? file_in(&g->c[r->b[b].commit], path) : NULL;
    if (!f) return fail_msg(c, 404, "Not Found");
    size_t n = strlen(f->text);
    const char *acc = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Accept");
    if (acc && strstr(acc, "application/vnd.github.raw")) return send_text(c, 200, "application/vnd.github.raw", f->text, n);
    char *b64 = NULL, *lines = NULL;
    size_t ln = 0;
    if (n <= BIG_FILE) {
        b64 = base64_encode(f->text, n);
        FILE *m = open_memstream(&lines, &ln);
        for (size_t i = 0, L = strlen(b64); i < L; i += 60) fprintf(m, "%.*s\n", (int)(L - i < 60 ? L - i : 60), b64 + i);
        fclose(m);
    }
    const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    enum MHD_Result k = send_j(c, 200, json_pack("{s:s,s:s,s:s,s:I,s:s,s:s,s:s}", "type", "file", "name", name, "path", path, "size",
                                                 (json_int_t)n, "sha", f->blob, "encoding", n <= BIG_FILE ? "base64" : "none",
                                                 "content", lines ? lines : ""));
    free(b64);
    free(lines);
    if (g->race_add && !strcmp(g->race_repo, r->id) && !strcmp(g->race_branch, ref ? ref : "main") && !strcmp(g->race_path, path)) {
        /* Someone else commits to the file between this read and the reader's write. */
        char *t = NULL;
        if (asprintf(&t, "%s%s", f->text, g->race_add) >= 0) {
            int ci = new_commit(g, r->b[b].commit, r->net, path, t);
            if (ci >= 0) r->b[b].commit = ci;
        }
        free(t);
        free(g->race_add);
        g->race_add = NULL;
    }
    return k;
}

static enum MHD_Result put_contents(ghd *g, struct MHD_Connection *c, grepo *r, const char *login, const char *path, const body *bd)
{
    if (strcmp(login, r->owner)) return fail_msg(c, 403, "Resource not accessible by personal access token");
    json_t *j = json_loadb(bd->buf ? bd->buf : "", bd->len, 0, NULL);
    const char *msg = json_string_value(json_object_get(j, "message")), *ct = json_string_value(json_object_get(j, "content"));
    const char *sha = json_string_value(json_object_get(j, "sha")), *br = json_string_value(json_object_get(j, "branch"));
    int b = branch_of(r, br ? br : "main");
    enum MHD_Result k;
    size_t n = 0;
    unsigned char *d = ct ? base64_decode(ct, strlen(ct), &n) : NULL;
    gfile *f = b >= 0 ? file_in(&g->c[r->b[b].commit], path) : NULL;
    char m[600];
    if (!msg || !d) {
        k = fail_msg(c, 422, "Invalid request.");
    } else if (b < 0) {
        snprintf(m, sizeof m, "Branch %s not found", br ? br : "main");
        k = fail_msg(c, 404, m);
    } else if (f && !sha) {
        k = fail_msg(c, 422, "Invalid request.\n\n\"sha\" wasn't supplied.");
    } else if (f && strcmp(sha, f->blob)) {
        snprintf(m, sizeof m, "%s does not match %s", path, sha);
        k = fail_msg(c, 409, m);
    } else {
        d[n] = '\0';
        int ci = new_commit(g, r->b[b].commit, r->net, path, (char *)d);
        if (ci < 0) {
            k = fail_msg(c, 500, "full");
        } else {
            r->b[b].commit = ci;
            char url[400];
            snprintf(url, sizeof url, "%s/%s/commit/%s", g->ep, r->id, g->c[ci].sha);
            k = send_j(c, f ? 200 : 201, json_pack("{s:{s:s,s:s},s:{s:s,s:s,s:s}}", "content", "path", path, "sha",
                                                   file_in(&g->c[ci], path)->blob, "commit", "sha", g->c[ci].sha, "html_url", url,
                                                   "message", msg));
        }
    }
    free(d);
    json_decref(j);
    return k;
}

static enum MHD_Result post_pull(ghd *g, struct MHD_Connection *c, grepo *r, const body *bd)
{
    json_t *j = json_loadb(bd->buf ? bd->buf : "", bd->len, 0, NULL);
    const char *title = json_string_value(json_object_get(j, "title")), *head = json_string_value(json_object_get(j, "head"));
    const char *base = json_string_value(json_object_get(j, "base")), *text = json_string_value(json_object_get(j, "body"));
    const char *colon = head ? strchr(head, ':') : NULL;
    enum MHD_Result k;
    char hid[128] = "", m[600];
    grepo *hr = NULL;
    if (colon) {
        /* The head's repo: the fork of this network owned by the head's owner. */
        for (int i = 0; i < g->nr && !hr; i++)
            if (g->r[i].net == r->net && !strncmp(g->r[i].owner, head, (size_t)(colon - head)) &&
                strlen(g->r[i].owner) == (size_t)(colon - head))
                hr = &g->r[i];
        if (hr) snprintf(hid, sizeof hid, "%s", hr->id);
    }
    int hb = hr ? branch_of(hr, colon + 1) : -1, bb = base ? branch_of(r, base) : -1;
    int dup = 0;
    for (int i = 0; i < g->np && head; i++)
        if (g->p[i].open && !strcmp(g->p[i].base, r->id) && !strcmp(g->p[i].label, head) && base && !strcmp(g->p[i].base_ref, base)) dup = 1;
    if (!title || !head || !base) {
        k = fail_msg(c, 422, "Invalid request.");
    } else if (hb < 0 || bb < 0) {
        k = fail_422(c, "PullRequest", hb < 0 ? "head invalid" : "base invalid");
    } else if (dup) {
        snprintf(m, sizeof m, "A pull request already exists for %s.", head);
        k = fail_422(c, "PullRequest", m);
    } else if (!strcmp(g->c[hr->b[hb].commit].sha, g->c[r->b[bb].commit].sha)) {
        snprintf(m, sizeof m, "No commits between %s and %s", base, head);
        k = fail_422(c, "PullRequest", m);
    } else if (g->np >= MAX_PRS) {
        k = fail_msg(c, 500, "full");
    } else {
        gpr *p = &g->p[g->np];
        memset(p, 0, sizeof *p);
        p->number = ++g->np;
        p->open = 1;
        snprintf(p->base, sizeof p->base, "%s", r->id);
        snprintf(p->base_ref, sizeof p->base_ref, "%s", base);
        snprintf(p->head_repo, sizeof p->head_repo, "%s", hid);
        snprintf(p->head_ref, sizeof p->head_ref, "%s", colon + 1);
        snprintf(p->label, sizeof p->label, "%s", head);
        snprintf(p->title, sizeof p->title, "%s", title);
        snprintf(p->body, sizeof p->body, "%s", text ? text : "");
        k = send_j(c, 201, pr_json(g, p));
    }
    json_decref(j);
    return k;
}

static enum MHD_Result get_pulls(ghd *g, struct MHD_Connection *c, grepo *r)
{
    const char *head = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "head");
    const char *state = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "state");
    json_t *a = json_array();
    for (int i = 0; i < g->np; i++) {
        gpr *p = &g->p[i];
        if (strcmp(p->base, r->id) || (head && strcmp(p->label, head)) || ((!state || !strcmp(state, "open")) && !p->open)) continue;
        json_array_append_new(a, pr_json(g, p));
    }
    return send_j(c, 200, a);
}

/* ---- dispatch ---- */

static enum MHD_Result route(void *cls, struct MHD_Connection *c, const char *url, const char *method, const body *bd)
{
    ghd *g = cls;
    const char *ua = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "User-Agent");
    const char *acc = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Accept");
    const char *ver = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-GitHub-Api-Version");
    if (!acc || strncmp(acc, "application/vnd.github", 22) || !ver || strcmp(ver, "2022-11-28")) g->bad_headers++;
    if (!ua || !*ua)
        return fail_msg(c, 403, "Request forbidden by administrative rules. Please make sure your request has a User-Agent header");
    if (g->fail > 0) {
        g->fail--;
        return fail_msg(c, 503, "Service Unavailable");
    }
    const char *login = login_of(g, c);
    if (!login) return fail_msg(c, 401, "Bad credentials");
    /* /repos/{owner}/{repo}/{rest} */
    char id[128];
    const char *p = url + 7, *s1 = strchr(p, '/'), *s2 = s1 ? strchr(s1 + 1, '/') : NULL;
    if (strncmp(url, "/repos/", 7) || !s2 || (size_t)(s2 - p) >= sizeof id) return fail_msg(c, 404, "Not Found");
    snprintf(id, sizeof id, "%.*s", (int)(s2 - p), p);
    const char *rest = s2 + 1;
    grepo *r = repo_of(g, id);
    if (!r) return fail_msg(c, 404, "Not Found");
    if (!strcmp(method, "GET") && !strncmp(rest, "git/ref/heads/", 14)) return get_ref(g, c, r, rest + 14);
    if (!strcmp(method, "POST") && !strcmp(rest, "git/refs")) return post_ref(g, c, r, login, bd);
    if (!strcmp(method, "GET") && !strncmp(rest, "contents/", 9)) return get_contents(g, c, r, rest + 9);
    if (!strcmp(method, "PUT") && !strncmp(rest, "contents/", 9)) return put_contents(g, c, r, login, rest + 9, bd);
    if (!strcmp(method, "POST") && !strcmp(rest, "pulls")) return post_pull(g, c, r, bd);
    if (!strcmp(method, "GET") && !strcmp(rest, "pulls")) return get_pulls(g, c, r);
    return fail_msg(c, 404, "Not Found");
}

ghd *ghd_start(void)
{
    ghd *g = calloc(1, sizeof *g);
    pthread_mutex_init(&g->mu, NULL);
    if (loopd_start(&g->sd, route, g, &g->mu)) {
        free(g);
        return NULL;
    }
    g->ep = g->sd.ep;
    return g;
}

void ghd_stop(ghd *g)
{
    if (!g) return;
    loopd_stop(&g->sd);
    free(g->race_add);
    for (int i = 0; i < g->nc; i++)
        for (int j = 0; j < g->c[i].nf; j++) free(g->c[i].f[j].text);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

const char *ghd_endpoint(const ghd *g) { return g->ep; }

void ghd_token(ghd *g, const char *token, const char *login)
{
    pthread_mutex_lock(&g->mu);
    if (g->nt < MAX_TOKENS) {
        snprintf(g->t[g->nt].token, sizeof g->t[g->nt].token, "%s", token);
        snprintf(g->t[g->nt++].login, sizeof g->t[0].login, "%s", login);
    }
    pthread_mutex_unlock(&g->mu);
}

void ghd_repo(ghd *g, const char *repo, const char *parent, const char *path, const char *text)
{
    pthread_mutex_lock(&g->mu);
    grepo *pr = parent ? repo_of(g, parent) : NULL;
    if (g->nr < MAX_REPOS && (!parent || pr)) {
        grepo *r = &g->r[g->nr++];
        memset(r, 0, sizeof *r);
        snprintf(r->id, sizeof r->id, "%s", repo);
        snprintf(r->owner, sizeof r->owner, "%.*s", (int)strcspn(repo, "/"), repo);
        r->net = pr ? pr->net : ++g->nnet;
        int ci = pr ? pr->b[branch_of(pr, "main")].commit : new_commit(g, -1, r->net, path, text);
        snprintf(r->b[0].name, sizeof r->b[0].name, "main");
        r->b[0].commit = ci;
        r->nb = 1;
    }
    pthread_mutex_unlock(&g->mu);
}

void ghd_isolate(ghd *g, const char *repo)
{
    pthread_mutex_lock(&g->mu);
    grepo *r = repo_of(g, repo);
    if (r) r->isolated = 1;
    pthread_mutex_unlock(&g->mu);
}

void ghd_commit(ghd *g, const char *repo, const char *branch, const char *path, const char *text)
{
    pthread_mutex_lock(&g->mu);
    grepo *r = repo_of(g, repo);
    int b = branch_of(r, branch);
    if (b >= 0) {
        int ci = new_commit(g, r->b[b].commit, r->net, path, text);
        if (ci >= 0) r->b[b].commit = ci;
    }
    pthread_mutex_unlock(&g->mu);
}

char *ghd_file(ghd *g, const char *repo, const char *branch, const char *path)
{
    pthread_mutex_lock(&g->mu);
    grepo *r = repo_of(g, repo);
    int b = branch_of(r, branch);
    gfile *f = b >= 0 ? file_in(&g->c[r->b[b].commit], path) : NULL;
    char *out = f ? strdup(f->text) : NULL;
    pthread_mutex_unlock(&g->mu);
    return out;
}

int ghd_pr(ghd *g, const char *repo, int n, char *head, char *title, char *body_prefix, char *state)
{
    int ok = 0;
    pthread_mutex_lock(&g->mu);
    for (int i = 0; i < g->np; i++) {
        gpr *p = &g->p[i];
        if (p->number != n || strcmp(p->base, repo)) continue;
        snprintf(head, 512, "%s", p->label);
        snprintf(title, 512, "%s", p->title);
        snprintf(body_prefix, 512, "%s", p->body);
        snprintf(state, 512, "%s", p->open ? "open" : "closed");
        ok = 1;
    }
    pthread_mutex_unlock(&g->mu);
    return ok;
}

void ghd_merge(ghd *g, const char *repo, int n)
{
    pthread_mutex_lock(&g->mu);
    for (int i = 0; i < g->np; i++) {
        gpr *p = &g->p[i];
        grepo *b = repo_of(g, p->base), *h = repo_of(g, p->head_repo);
        if (p->number != n || strcmp(p->base, repo) || !b || !h) continue;
        int bb = branch_of(b, p->base_ref), hb = branch_of(h, p->head_ref);
        if (bb >= 0 && hb >= 0) b->b[bb].commit = h->b[hb].commit;
        p->open = 0;
    }
    pthread_mutex_unlock(&g->mu);
}

void ghd_race(ghd *g, const char *repo, const char *branch, const char *path, const char *add)
{
    pthread_mutex_lock(&g->mu);
    snprintf(g->race_repo, sizeof g->race_repo, "%s", repo);
    snprintf(g->race_branch, sizeof g->race_branch, "%s", branch);
    snprintf(g->race_path, sizeof g->race_path, "%s", path);
    free(g->race_add);
    g->race_add = strdup(add);
    pthread_mutex_unlock(&g->mu);
}

void ghd_fail(ghd *g, int n)
{
    pthread_mutex_lock(&g->mu);
    g->fail = n;
    pthread_mutex_unlock(&g->mu);
}

int ghd_count(ghd *g, const char *prefix) { return loopd_count(&g->sd, prefix); }

int ghd_bad_headers(ghd *g)
{
    pthread_mutex_lock(&g->mu);
    int n = g->bad_headers;
    pthread_mutex_unlock(&g->mu);
    return n;
}
