/* hubd.c: see hubd.h. libmicrohttpd with its own thread; state under one mutex. */
#include "tests/hubd.h"

#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "server/base64.h"
#include "server/sha256.h"
#include "tests/loopd.h"

#define MAX_REPOS 16
#define MAX_FILES 16
#define MAX_PENDING 16
#define MAX_LOG 1024

typedef struct hfile {
    char path[256];
    unsigned char *data;
    size_t size;
    int lfs, downloads;
    char sha[65], claimed[65], blob[41];
} hfile;

typedef struct hrepo {
    char id[128], commit[41], token[64];
    int gated, nf;
    hfile f[MAX_FILES];
} hrepo;

struct hubd {
    loopd sd;
    const char *ep;
    pthread_mutex_t mu;
    hrepo r[MAX_REPOS];
    int nr, fail_info;
    long cut;
    char *ranges[MAX_LOG];
    int nranges;
    char write_token[64];
    struct { char oid[65]; unsigned char *data; size_t size; int verified; } pending[MAX_PENDING];
    int npending, uploads_with_auth, npr;
    char last_summary[512];
};

typedef loopd_body body;

static hrepo *repo_of(hubd *h, const char *id)
{
    for (int i = 0; i < h->nr; i++)
        if (!strcmp(h->r[i].id, id)) return &h->r[i];
    return NULL;
}

static hfile *file_of(hrepo *r, const char *path)
{
    for (int i = 0; r && i < r->nf; i++)
        if (!strcmp(r->f[i].path, path)) return &r->f[i];
    return NULL;
}

static enum MHD_Result send_json(struct MHD_Connection *c, int status, const char *body, const char *code)
{
    struct MHD_Response *rs = MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(rs, "Content-Type", "application/json");
    if (code) {
        MHD_add_response_header(rs, "X-Error-Code", code);
        MHD_add_response_header(rs, "X-Error-Message", body);
    }
    enum MHD_Result k = MHD_queue_response(c, (unsigned)status, rs);
    MHD_destroy_response(rs);
    return k;
}

/* A body that stops early: the connection is closed after `stop` of `size` bytes. */
typedef struct cutter {
    const unsigned char *data;
    size_t size, stop;
} cutter;

static ssize_t cut_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    cutter *ct = cls;
    if (pos >= ct->stop) return MHD_CONTENT_READER_END_WITH_ERROR;
    size_t n = ct->stop - (size_t)pos < max ? ct->stop - (size_t)pos : max;
    memcpy(buf, ct->data + pos, n);
    return (ssize_t)n;
}

/* The bytes of f with Range handling; cut > 0 closes the connection after that many bytes. */
static enum MHD_Result serve_bytes(hubd *h, struct MHD_Connection *c, const hfile *f, const char *commit, long cut,
                                   int head)
{
    const char *range = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Range");
    size_t from = 0;
    if (range) {
        if (h->nranges < MAX_LOG) h->ranges[h->nranges++] = strdup(range); /* the caller holds h->mu */
        if (strncmp(range, "bytes=", 6)) return send_json(c, 400, "{\"error\":\"bad range\"}", NULL);
        from = (size_t)strtoull(range + 6, NULL, 10);
        if (from >= f->size) {
            struct MHD_Response *rs = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
            char cr[64];
            snprintf(cr, sizeof cr, "bytes */%zu", f->size);
            MHD_add_response_header(rs, "Content-Range", cr);
            enum MHD_Result k = MHD_queue_response(c, 416, rs);
            MHD_destroy_response(rs);
            return k;
        }
    }
    size_t n = f->size - from;
    struct MHD_Response *rs;
    if (cut > 0 && (size_t)cut < n && !head) {
        cutter *ct = malloc(sizeof *ct);
        *ct = (cutter){f->data + from, n, (size_t)cut};
        rs = MHD_create_response_from_callback(n, 64 * 1024, cut_reader, ct, free);
    } else {
        rs = MHD_create_response_from_buffer(head ? 0 : n, (void *)(f->data + from), MHD_RESPMEM_PERSISTENT);
    }
    char etag[80], cr[96];
    snprintf(etag, sizeof etag, "\"%s\"", f->lfs ? f->sha : f->blob);
    MHD_add_response_header(rs, "ETag", etag);
    MHD_add_response_header(rs, "Accept-Ranges", "bytes");
    MHD_add_response_header(rs, "Content-Type", "application/octet-stream");
    if (commit) MHD_add_response_header(rs, "X-Repo-Commit", commit);
    if (range) {
        snprintf(cr, sizeof cr, "bytes %zu-%zu/%zu", from, f->size - 1, f->size);
        MHD_add_response_header(rs, "Content-Range", cr);
    }
    enum MHD_Result k = MHD_queue_response(c, range ? 206 : 200, rs);
    MHD_destroy_response(rs);
    return k;
}

static const char *bearer(struct MHD_Connection *c)
{
    const char *a = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    return a && !strncmp(a, "Bearer ", 7) ? a + 7 : NULL;
}

/* "org/name" from the front of p (advanced past it and its "/"); 0 when absent. */
static int take_repo(const char **p, char *out, size_t n)
{
    const char *s = *p, *a = strchr(s, '/');
    const char *b = a ? strchr(a + 1, '/') : NULL;
    size_t l = b ? (size_t)(b - s) : strlen(s);
    if (!a || l >= n) return 0;
    memcpy(out, s, l);
    out[l] = '\0';
    *p = b ? b + 1 : s + l;
    return 1;
}

static enum MHD_Result model_info(hubd *h, struct MHD_Connection *c, const char *rest)
{
    char id[128], rev[128];
    if (!take_repo(&rest, id, sizeof id) || strncmp(rest, "revision/", 9)) return send_json(c, 404, "{\"error\":\"Not Found\"}", NULL);
    snprintf(rev, sizeof rev, "%s", rest + 9);
    if (h->fail_info > 0) {
        h->fail_info--;
        return send_json(c, 503, "{\"error\":\"Service Unavailable\"}", NULL);
    }
    hrepo *r = repo_of(h, id);
    if (!r)
        return send_json(c, bearer(c) ? 404 : 401, "{\"error\":\"Repository not found\"}", "RepoNotFound");
    if (strcmp(rev, "main") && strcmp(rev, r->commit))
        return send_json(c, 404, "{\"error\":\"Invalid rev id\"}", "RevisionNotFound");
    char *b = malloc(65536);
    int k = snprintf(b, 65536, "{\"id\":\"%s\",\"modelId\":\"%s\",\"sha\":\"%s\",\"private\":false,\"gated\":%s,\"siblings\":[",
                     r->id, r->id, r->commit, r->gated ? "\"manual\"" : "false");
    for (int i = 0; i < r->nf; i++) {
        hfile *f = &r->f[i];
        k += snprintf(b + k, 65536 - (size_t)k, "%s{\"rfilename\":\"%s\",\"blobId\":\"%s\",\"size\":%zu", i ? "," : "", f->path,
                      f->blob, f->size);
        if (f->lfs)
            k += snprintf(b + k, 65536 - (size_t)k, ",\"lfs\":{\"sha256\":\"%s\",\"size\":%zu,\"pointerSize\":134}",
                          f->claimed[0] ? f->claimed : f->sha, f->size);
        k += snprintf(b + k, 65536 - (size_t)k, "}");
    }
    snprintf(b + k, 65536 - (size_t)k, "]}");
    enum MHD_Result res = send_json(c, 200, b, NULL);
    free(b);
    return res;
}

static enum MHD_Result resolve(hubd *h, struct MHD_Connection *c, const char *rest, int head)
{
    char id[128], rev[128];
    const char *p = rest;
    if (!take_repo(&p, id, sizeof id) || strncmp(p, "resolve/", 8)) return send_json(c, 404, "{\"error\":\"Not Found\"}", NULL);
    p += 8;
    const char *sl = strchr(p, '/');
    if (!sl || (size_t)(sl - p) >= sizeof rev) return send_json(c, 404, "{\"error\":\"Not Found\"}", NULL);
    snprintf(rev, sizeof rev, "%.*s", (int)(sl - p), p);
    hrepo *r = repo_of(h, id);
    if (!r) return send_json(c, bearer(c) ? 404 : 401, "{\"error\":\"Repository not found\"}", "RepoNotFound");
    if (strcmp(rev, "main") && strcmp(rev, r->commit))
        return send_json(c, 404, "{\"error\":\"Invalid rev id\"}", "RevisionNotFound");
    if (r->gated) {
        const char *t = bearer(c);
        if (!t) return send_json(c, 401, "{\"error\":\"Access to this model is restricted. You must be authenticated.\"}", "GatedRepo");
        if (strcmp(t, r->token))
            return send_json(c, 403, "{\"error\":\"Access to this model is restricted and you are not in the authorized list.\"}",
                             "GatedRepo");
    }
    hfile *f = file_of(r, sl + 1);
    if (!f) return send_json(c, 404, "{\"error\":\"Entry not found\"}", "EntryNotFound");
    if (!f->lfs) return serve_bytes(h, c, f, r->commit, 0, head);
    struct MHD_Response *rs = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    char loc[200], le[80], ls[32];
    snprintf(loc, sizeof loc, "%s/lfs-storage/%s", h->ep, f->sha);
    snprintf(le, sizeof le, "\"%s\"", f->sha);
    snprintf(ls, sizeof ls, "%zu", f->size);
    MHD_add_response_header(rs, "Location", loc);
    MHD_add_response_header(rs, "X-Linked-Etag", le);
    MHD_add_response_header(rs, "X-Linked-Size", ls);
    MHD_add_response_header(rs, "X-Repo-Commit", r->commit);
    enum MHD_Result k = MHD_queue_response(c, 302, rs);
    MHD_destroy_response(rs);
    return k;
}

static enum MHD_Result storage(hubd *h, struct MHD_Connection *c, const char *sha, int head)
{
    for (int i = 0; i < h->nr; i++)
        for (int j = 0; j < h->r[i].nf; j++) {
            hfile *f = &h->r[i].f[j];
            if (!f->lfs || strcmp(f->sha, sha)) continue;
            long cut = h->cut > 0 && f->downloads++ == 0 ? h->cut : 0;
            return serve_bytes(h, c, f, NULL, cut, head);
        }
    return send_json(c, 404, "{\"error\":\"no such object\"}", NULL);
}


/* ---- push: repo create, preupload, LFS batch/upload/verify, commit ---- */

static enum MHD_Result need_write(hubd *h, struct MHD_Connection *c, int *refused)
{
    const char *t = bearer(c);
    *refused = 1;
    if (!t) return send_json(c, 401, "{\"error\":\"Invalid credentials in Authorization header\"}", NULL);
    if (strcmp(t, h->write_token)) return send_json(c, 403, "{\"error\":\"You don't have the rights to create a model under this namespace\"}", NULL);
    *refused = 0;
    return MHD_YES;
}

static void commit_id(const char *prev, const char *salt, char out[41])
{
    sha256_ctx c;
    char hex[65];
    sha256_init(&c);
    sha256_update(&c, prev, strlen(prev));
    sha256_update(&c, salt, strlen(salt));
    sha256_final_hex(&c, hex);
    memcpy(out, hex, 40);
    out[40] = '\0';
}

static enum MHD_Result repo_create(hubd *h, struct MHD_Connection *c, const body *b)
{
    int refused;
    enum MHD_Result k = need_write(h, c, &refused);
    if (refused) return k;
    json_t *j = json_loadb(b->buf ? b->buf : "", b->len, 0, NULL);
    const char *name = json_string_value(json_object_get(j, "name")), *org = json_string_value(json_object_get(j, "organization"));
    char id[128], out[300];
    snprintf(id, sizeof id, "%s%s%s", org ? org : "", org ? "/" : "", name ? name : "");
    json_decref(j);
    if (!name) return send_json(c, 400, "{\"error\":\"name is required\"}", NULL);
    snprintf(out, sizeof out, "{\"error\":\"You already created this model repo\",\"url\":\"%s/%s\"}", h->ep, id);
    if (repo_of(h, id)) return send_json(c, 409, out, NULL);
    if (h->nr >= MAX_REPOS) return send_json(c, 500, "{\"error\":\"full\"}", NULL);
    hrepo *r = &h->r[h->nr++];
    memset(r, 0, sizeof *r);
    snprintf(r->id, sizeof r->id, "%s", id);
    commit_id(id, "init", r->commit);
    snprintf(out, sizeof out, "{\"url\":\"%s/%s\",\"name\":\"%s\"}", h->ep, id, id);
    return send_json(c, 200, out, NULL);
}

static enum MHD_Result preupload(hubd *h, struct MHD_Connection *c, const body *b)
{
    (void)h;
    json_t *j = json_loadb(b->buf ? b->buf : "", b->len, 0, NULL), *out = json_array(), *f;
    size_t i;
    json_array_foreach(json_object_get(j, "files"), i, f) {
        const char *path = json_string_value(json_object_get(f, "path")), *sample = json_string_value(json_object_get(f, "sample"));
        size_t n = 0, pl = path ? strlen(path) : 0;
        unsigned char *d = sample ? base64_decode(sample, strlen(sample), &n) : NULL;
        /* The Hub's rule: .gitattributes LFS patterns (*.safetensors), files over 10 MB, binary samples. */
        int lfs = (pl > 12 && !strcmp(path + pl - 12, ".safetensors")) || json_integer_value(json_object_get(f, "size")) > 10000000 ||
                  (d && memchr(d, 0, n));
        free(d);
        json_array_append_new(out, json_pack("{s:s,s:s,s:b}", "path", path ? path : "", "uploadMode", lfs ? "lfs" : "regular",
                                             "shouldIgnore", 0));
    }
    json_decref(j);
    json_t *res = json_pack("{s:o}", "files", out);
    char *t = json_dumps(res, JSON_COMPACT);
    json_decref(res);
    enum MHD_Result k = send_json(c, 200, t, NULL);
    free(t);
    return k;
}

static int have_oid(hubd *h, const char *oid)
{
    for (int i = 0; i < h->nr; i++)
        for (int j = 0; j < h->r[i].nf; j++)
            if (h->r[i].f[j].lfs && !strcmp(h->r[i].f[j].sha, oid)) return 1;
    return 0;
}

static enum MHD_Result lfs_batch(hubd *h, struct MHD_Connection *c, const char *repo, const body *b)
{
    int refused;
    enum MHD_Result k = need_write(h, c, &refused);
    if (refused) return k;
    json_t *j = json_loadb(b->buf ? b->buf : "", b->len, 0, NULL), *out = json_array(), *o;
    size_t i;
    json_array_foreach(json_object_get(j, "objects"), i, o) {
        const char *oid = json_string_value(json_object_get(o, "oid"));
        json_int_t size = json_integer_value(json_object_get(o, "size"));
        if (!oid) continue;
        if (have_oid(h, oid)) {
            json_array_append_new(out, json_pack("{s:s,s:I}", "oid", oid, "size", size));
            continue;
        }
        char up[300], ver[300];
        snprintf(up, sizeof up, "%s/lfs-upload/%s", h->ep, oid);
        snprintf(ver, sizeof ver, "%s/%s.git/info/lfs/objects/verify", h->ep, repo);
        json_array_append_new(out, json_pack("{s:s,s:I,s:{s:{s:s,s:{}},s:{s:s,s:{}}}}", "oid", oid, "size", size, "actions",
                                             "upload", "href", up, "header", "verify", "href", ver, "header"));
    }
    json_decref(j);
    json_t *res = json_pack("{s:s,s:o}", "transfer", "basic", "objects", out);
    char *t = json_dumps(res, JSON_COMPACT);
    json_decref(res);
    struct MHD_Response *rs = MHD_create_response_from_buffer(strlen(t), t, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(rs, "Content-Type", "application/vnd.git-lfs+json");
    k = MHD_queue_response(c, 200, rs);
    MHD_destroy_response(rs);
    return k;
}

static enum MHD_Result lfs_put(hubd *h, struct MHD_Connection *c, const char *oid, const body *b)
{
    if (bearer(c)) h->uploads_with_auth++;
    sha256_ctx x;
    char hex[65];
    sha256_init(&x);
    sha256_update(&x, b->buf ? b->buf : "", b->len);
    sha256_final_hex(&x, hex);
    if (strcmp(hex, oid)) return send_json(c, 400, "{\"error\":\"content does not match the oid\"}", NULL);
    if (h->npending >= MAX_PENDING) return send_json(c, 500, "{\"error\":\"full\"}", NULL);
    int i = h->npending++;
    snprintf(h->pending[i].oid, sizeof h->pending[i].oid, "%s", oid);
    h->pending[i].data = malloc(b->len + 1);
    memcpy(h->pending[i].data, b->buf ? b->buf : "", b->len);
    h->pending[i].size = b->len;
    h->pending[i].verified = 0;
    return send_json(c, 200, "{}", NULL);
}

static int pending_of(hubd *h, const char *oid)
{
    for (int i = h->npending - 1; i >= 0; i--)
        if (!strcmp(h->pending[i].oid, oid)) return i;
    return -1;
}

static enum MHD_Result lfs_verify(hubd *h, struct MHD_Connection *c, const body *b)
{
    int refused;
    enum MHD_Result k = need_write(h, c, &refused);
    if (refused) return k;
    json_t *j = json_loadb(b->buf ? b->buf : "", b->len, 0, NULL);
    const char *oid = json_string_value(json_object_get(j, "oid"));
    int i = oid ? pending_of(h, oid) : -1;
    int ok = i >= 0 && (json_int_t)h->pending[i].size == json_integer_value(json_object_get(j, "size"));
    if (ok) h->pending[i].verified = 1;
    json_decref(j);
    return ok ? send_json(c, 200, "{}", NULL) : send_json(c, 404, "{\"error\":\"object not found\"}", NULL);
}

static void put_file(hrepo *r, const char *path, unsigned char *data, size_t n, int lfs)
{
    hfile *f = file_of(r, path);
    if (!f && r->nf < MAX_FILES) f = &r->f[r->nf++];
    if (!f) return free(data);
    free(f->data);
    memset(f, 0, sizeof *f);
    snprintf(f->path, sizeof f->path, "%s", path);
    f->data = data;
    f->size = n;
    f->lfs = lfs;
    sha256_ctx c;
    sha256_init(&c);
    sha256_update(&c, data, n);
    sha256_final_hex(&c, f->sha);
    memcpy(f->blob, f->sha, 40);
    f->blob[40] = '\0';
}

static enum MHD_Result commit(hubd *h, struct MHD_Connection *c, const char *repo, const body *b)
{
    int refused;
    enum MHD_Result k = need_write(h, c, &refused);
    if (refused) return k;
    hrepo *r = repo_of(h, repo);
    if (!r) return send_json(c, 404, "{\"error\":\"Repository not found\"}", "RepoNotFound");
    const char *pr = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "create_pr");
    int as_pr = pr && !strcmp(pr, "1");
    hrepo *t = r;
    if (as_pr) {
        if (h->nr >= MAX_REPOS) return send_json(c, 500, "{\"error\":\"full\"}", NULL);
        /* The PR's files: a copy of the repo as it would be after the commit (refs/pr/N). */
        t = &h->r[h->nr++];
        *t = *r;
        snprintf(t->id, sizeof t->id, "%s@pr/%d", repo, ++h->npr);
        for (int i = 0; i < t->nf; i++) {
            unsigned char *d = malloc(r->f[i].size + 1);
            memcpy(d, r->f[i].data, r->f[i].size);
            t->f[i].data = d;
        }
    }
    char *text = malloc(b->len + 1), *save = NULL;
    memcpy(text, b->buf ? b->buf : "", b->len);
    text[b->len] = '\0';
    int header = 0, bad = 0;
    for (char *line = strtok_r(text, "\n", &save); line && !bad; line = strtok_r(NULL, "\n", &save)) {
        json_t *j = json_loads(line, 0, NULL), *v = json_object_get(j, "value");
        const char *key = json_string_value(json_object_get(j, "key"));
        const char *path = json_string_value(json_object_get(v, "path"));
        if (key && !strcmp(key, "header")) {
            header = 1;
            snprintf(h->last_summary, sizeof h->last_summary, "%s", json_string_value(json_object_get(v, "summary")) ?: "");
        } else if (key && !strcmp(key, "file") && path) {
            const char *ct = json_string_value(json_object_get(v, "content"));
            size_t n = 0;
            unsigned char *d = ct ? base64_decode(ct, strlen(ct), &n) : NULL;
            if (!d) bad = 1;
            else put_file(t, path, d, n, 0);
        } else if (key && !strcmp(key, "lfsFile") && path) {
            const char *oid = json_string_value(json_object_get(v, "oid"));
            int i = oid ? pending_of(h, oid) : -1;
            if (i < 0 || !h->pending[i].verified) {
                bad = 2;
            } else {
                unsigned char *d = malloc(h->pending[i].size + 1);
                memcpy(d, h->pending[i].data, h->pending[i].size);
                put_file(t, path, d, h->pending[i].size, 1);
            }
        } else {
            bad = 1;
        }
        json_decref(j);
    }
    free(text);
    if (!header || bad)
        return send_json(c, bad == 2 ? 422 : 400, bad == 2 ? "{\"error\":\"LFS object not uploaded or not verified\"}"
                                                         : "{\"error\":\"malformed commit payload\"}", NULL);
    commit_id(t->commit, h->last_summary, t->commit);
    char out[600];
    if (as_pr)
        snprintf(out, sizeof out, "{\"commitUrl\":\"%s/%s/commit/%s\",\"commitOid\":\"%s\",\"pullRequestUrl\":\"%s/%s/discussions/%d\"}",
                 h->ep, repo, t->commit, t->commit, h->ep, repo, h->npr);
    else
        snprintf(out, sizeof out, "{\"commitUrl\":\"%s/%s/commit/%s\",\"commitOid\":\"%s\"}", h->ep, repo, t->commit, t->commit);
    return send_json(c, 200, out, NULL);
}

/* "/org/name.git/info/lfs/objects/<what>" -> repo; 0 when url is not one. */
static int lfs_url(const char *url, const char *what, char *repo, size_t n)
{
    const char *g = strstr(url, ".git/info/lfs/objects/");
    if (!g || strcmp(g + 22, what) || (size_t)(g - url - 1) >= n) return 0;
    snprintf(repo, n, "%.*s", (int)(g - url - 1), url + 1);
    return 1;
}

/* "/api/models/org/name/<verb>/<rev>" -> repo; 0 otherwise. */
static int api_url(const char *url, const char *verb, char *repo, size_t n)
{
    const char *p = url + 12;
    if (strncmp(url, "/api/models/", 12) || !take_repo(&p, repo, n)) return 0;
    return !strncmp(p, verb, strlen(verb)) && p[strlen(verb)] == '/';
}

static enum MHD_Result route(void *cls, struct MHD_Connection *c, const char *url, const char *method, const body *b)
{
    hubd *h = cls;
    char repo[128];
    int head = !strcmp(method, "HEAD");
    enum MHD_Result k;
    if (!strcmp(method, "GET") && !strncmp(url, "/api/models/", 12)) k = model_info(h, c, url + 12);
    else if ((head || !strcmp(method, "GET")) && !strncmp(url, "/lfs-storage/", 13)) k = storage(h, c, url + 13, head);
    else if ((head || !strcmp(method, "GET")) && strstr(url, "/resolve/")) k = resolve(h, c, url + 1, head);
    else if (!strcmp(method, "POST") && !strcmp(url, "/api/repos/create")) k = repo_create(h, c, b);
    else if (!strcmp(method, "POST") && api_url(url, "preupload", repo, sizeof repo)) k = preupload(h, c, b);
    else if (!strcmp(method, "POST") && api_url(url, "commit", repo, sizeof repo)) k = commit(h, c, repo, b);
    else if (!strcmp(method, "POST") && lfs_url(url, "batch", repo, sizeof repo)) k = lfs_batch(h, c, repo, b);
    else if (!strcmp(method, "POST") && lfs_url(url, "verify", repo, sizeof repo)) k = lfs_verify(h, c, b);
    else if (!strcmp(method, "PUT") && !strncmp(url, "/lfs-upload/", 12)) k = lfs_put(h, c, url + 12, b);
    else k = send_json(c, 404, "{\"error\":\"Not Found\"}", NULL);
    return k;
}

hubd *hubd_start(void)
{
    hubd *h = calloc(1, sizeof *h);
    pthread_mutex_init(&h->mu, NULL);
    if (loopd_start(&h->sd, route, h, &h->mu)) {
        free(h);
        return NULL;
    }
    h->ep = h->sd.ep;
    return h;
}

void hubd_stop(hubd *h)
{
    if (!h) return;
    loopd_stop(&h->sd);
    for (int i = 0; i < h->nr; i++)
        for (int j = 0; j < h->r[i].nf; j++) free(h->r[i].f[j].data);
    for (int i = 0; i < h->nranges; i++) free(h->ranges[i]);
    for (int i = 0; i < h->npending; i++) free(h->pending[i].data);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

int hubd_port(const hubd *h) { return h->sd.port; }
const char *hubd_endpoint(const hubd *h) { return h->ep; }

void hubd_repo(hubd *h, const char *repo, const char *commit, int gated, const char *granted_token)
{
    pthread_mutex_lock(&h->mu);
    hrepo *r = repo_of(h, repo);
    if (!r && h->nr < MAX_REPOS) r = &h->r[h->nr++];
    if (r) {
        snprintf(r->id, sizeof r->id, "%s", repo);
        snprintf(r->commit, sizeof r->commit, "%s", commit);
        snprintf(r->token, sizeof r->token, "%s", granted_token ? granted_token : "");
        r->gated = gated;
    }
    pthread_mutex_unlock(&h->mu);
}

void hubd_file(hubd *h, const char *repo, const char *path, const char *local, int lfs)
{
    FILE *f = fopen(local, "rb");
    if (!f) return;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *d = malloc((size_t)n + 1);
    size_t got = fread(d, 1, (size_t)n, f);
    fclose(f);
    pthread_mutex_lock(&h->mu);
    hrepo *r = repo_of(h, repo);
    if (r && r->nf < MAX_FILES) {
        hfile *x = &r->f[r->nf++];
        memset(x, 0, sizeof *x);
        snprintf(x->path, sizeof x->path, "%s", path);
        x->data = d;
        x->size = got;
        x->lfs = lfs;
        sha256_ctx c;
        sha256_init(&c);
        sha256_update(&c, d, got);
        sha256_final_hex(&c, x->sha);
        memcpy(x->blob, x->sha, 40);
        x->blob[40] = '\0';
        d = NULL;
    }
    pthread_mutex_unlock(&h->mu);
    free(d);
}

void hubd_corrupt_sha(hubd *h, const char *repo, const char *path)
{
    pthread_mutex_lock(&h->mu);
    hfile *f = file_of(repo_of(h, repo), path);
    if (f) {
        snprintf(f->claimed, sizeof f->claimed, "%s", f->sha);
        f->claimed[0] = f->claimed[0] == '0' ? '1' : '0';
    }
    pthread_mutex_unlock(&h->mu);
}

void hubd_fail_info(hubd *h, int n)
{
    pthread_mutex_lock(&h->mu);
    h->fail_info = n;
    pthread_mutex_unlock(&h->mu);
}

void hubd_cut_first_lfs(hubd *h, long bytes)
{
    pthread_mutex_lock(&h->mu);
    h->cut = bytes;
    pthread_mutex_unlock(&h->mu);
}

int hubd_count(hubd *h, const char *prefix) { return loopd_count(&h->sd, prefix); }

int hubd_saw_range(hubd *h, const char *range)
{
    int n = 0;
    pthread_mutex_lock(&h->mu);
    for (int i = 0; i < h->nranges; i++) n += !strcmp(h->ranges[i], range);
    pthread_mutex_unlock(&h->mu);
    return n;
}

void hubd_write_token(hubd *h, const char *token)
{
    pthread_mutex_lock(&h->mu);
    snprintf(h->write_token, sizeof h->write_token, "%s", token);
    pthread_mutex_unlock(&h->mu);
}

char *hubd_text(hubd *h, const char *repo, const char *path, int *lfs, size_t *size)
{
    char *out = NULL;
    pthread_mutex_lock(&h->mu);
    hfile *f = file_of(repo_of(h, repo), path);
    if (f) {
        out = malloc(f->size + 1);
        memcpy(out, f->data, f->size);
        out[f->size] = '\0';
        if (lfs) *lfs = f->lfs;
        if (size) *size = f->size;
    }
    pthread_mutex_unlock(&h->mu);
    return out;
}

int hubd_uploads_with_auth(hubd *h)
{
    pthread_mutex_lock(&h->mu);
    int n = h->uploads_with_auth;
    pthread_mutex_unlock(&h->mu);
    return n;
}

const char *hubd_last_summary(hubd *h) { return h->last_summary; }
