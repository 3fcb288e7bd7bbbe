/* hub_pull.c: see hub_pull.h. */
#define _GNU_SOURCE
#include "server/hub_pull.h"

#include <errno.h>
#include <fnmatch.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "server/hub_cache.h"
#include "server/log.h"

typedef struct sib {
    const char *path;       /* borrowed from the model info JSON */
    int64_t size;
    const char *etag;       /* LFS sha256, else the git blob id */
    const char *sha256;     /* LFS files only */
    int selected, done;
} sib;

typedef struct pull {
    const hub_conn *h;
    const char *cache, *repo;
    char commit[64];
    sib *s;
    size_t n;
    int64_t total, finished;
    hub_pull_progress fn;
    void *ud;
    hub_pulled *out;
} pull;

int hub_path_valid(const char *p)
{
    if (!p || !*p || p[0] == '/' || strlen(p) > 1024) return 0;
    for (const char *s = p; *s;) {
        const char *e = strchr(s, '/');
        size_t l = e ? (size_t)(e - s) : strlen(s);
        if (l == 0 || (l == 1 && s[0] == '.') || (l == 2 && s[0] == '.' && s[1] == '.')) return 0;
        s += l + (e ? 1 : 0);
        if (e && !*s) return 0;
    }
    for (const unsigned char *c = (const unsigned char *)p; *c; c++)
        if (*c < 0x20 || *c == '\\') return 0;
    return 1;
}

static int on_file_bytes(void *ud, int64_t file_bytes)
{
    pull *p = ud;
    return p->fn ? p->fn(p->ud, p->finished + file_bytes, p->total) : 0;
}

/* Fetches one selected file into its blob (unless cached) and links it into the snapshot. */
static int fetch(pull *p, sib *f, hub_err *e)
{
    char blob[4300], part[4400], err[600];
    hub_cache_blob(p->cache, p->repo, f->etag, "", blob, sizeof blob);
    hub_cache_blob(p->cache, p->repo, f->etag, ".incomplete", part, sizeof part);
    struct stat st;
    char blobs[4300];
    snprintf(blobs, sizeof blobs, "%s", blob);
    *strrchr(blobs, '/') = '\0';
    if (hub_mkdirs(blobs)) return hub_fail(e, HUB_INVALID, 0, "cache: %s: %s", blobs, strerror(errno));
    if (stat(blob, &st) || (int64_t)st.st_size != f->size) {
        char *ep = hub_escape(f->path);
        /* The path keeps its "/": escape each character but the separators. */
        size_t k = 0;
        for (char *s = ep; s && *s; s++) {
            if (!strncmp(s, "%2F", 3)) {
                ep[k++] = '/';
                s += 2;
            } else {
                ep[k++] = *s;
            }
        }
        if (ep) ep[k] = '\0';
        char *url = NULL;
        if (ep && asprintf(&url, "%s/%s/resolve/%s/%s", p->h->endpoint, p->repo, p->commit, ep) < 0) url = NULL;
        free(ep);
        if (!url) return hub_fail(e, HUB_INVALID, 0, "out of memory");
        char what[1300];
        snprintf(what, sizeof what, "file %s of %s", f->path, p->repo);
        int rc = hub_download(p->h, url, part, f->size, f->sha256, p->commit, on_file_bytes, p, e);
        free(url);
        if (rc) {
            /* Name the file in the message, keep the kind. */
            char m[sizeof e->msg];
            snprintf(m, sizeof m, "%s", e->msg);
            if (e->kind != HUB_STOPPED) snprintf(e->msg, sizeof e->msg, "%s: %s", what, m);
            return -1;
        }
        if (rename(part, blob)) return hub_fail(e, HUB_INVALID, 0, "%s: %s", blob, strerror(errno));
        p->out->downloaded += f->size;
    }
    if (hub_cache_link(p->cache, p->repo, p->commit, f->path, f->etag, err, sizeof err))
        return hub_fail(e, HUB_INVALID, 0, "cache: %s", err);
    p->finished += f->size;
    f->done = 1;
    p->out->nfiles++;
    if (p->fn && p->fn(p->ud, p->finished, p->total)) return hub_fail(e, HUB_STOPPED, 0, "pull stopped");
    return 0;
}

static sib *find(pull *p, const char *path)
{
    for (size_t i = 0; i < p->n; i++)
        if (!strcmp(p->s[i].path, path)) return &p->s[i];
    return NULL;
}

/* A fetched X.safetensors.index.json selects every shard its weight_map names. */
static int select_shards(pull *p, sib *idx, hub_err *e)
{
    char path[4300];
    hub_cache_snapshot(p->cache, p->repo, p->commit, idx->path, path, sizeof path);
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je), *wm = json_object_get(j, "weight_map");
    if (!json_is_object(wm)) {
        json_decref(j);
        return hub_fail(e, HUB_INVALID, 0, "%s of %s: not a safetensors index (no weight_map object)", idx->path, p->repo);
    }
    char dir[1100] = "";
    const char *slash = strrchr(idx->path, '/');
    if (slash) snprintf(dir, sizeof dir, "%.*s/", (int)(slash - idx->path), idx->path);
    const char *k;
    json_t *v;
    int rc = 0;
    json_object_foreach(wm, k, v) {
        const char *shard = json_string_value(v);
        char full[2200];
        snprintf(full, sizeof full, "%s%s", dir, shard ? shard : "");
        sib *s = shard && hub_path_valid(full) ? find(p, full) : NULL;
        if (!s) {
            rc = hub_fail(e, HUB_INVALID, 0, "%s of %s names shard '%s' (tensor %s), which the repo does not have at %s",
                          idx->path, p->repo, shard ? shard : "(not a string)", k, p->commit);
            break;
        }
        if (!s->selected) {
            s->selected = 1;
            p->total += s->size;
        }
    }
    json_decref(j);
    return rc;
}

static int wanted(const hub_pull_req *q, const char *path)
{
    if (q->subpath) {
        size_t l = strlen(q->subpath);
        if (strncmp(path, q->subpath, l) || path[l] != '/') return 0;
    }
    if (q->include && q->include[0]) {
        for (int i = 0; q->include[i]; i++)
            if (!fnmatch(q->include[i], path, 0)) return 1;
        return 0;
    }
    if (!q->model_files) return 1;
    static const char *const model_globs[] = {"*.json", "*.safetensors", "*.txt", "*.model", "*.jinja"};
    for (size_t i = 0; i < sizeof model_globs / sizeof model_globs[0]; i++)
        if (!fnmatch(model_globs[i], path, 0)) return 1;
    return 0;
}

static int is_index(const char *path)
{
    size_t l = strlen(path), s = strlen(".safetensors.index.json");
    return l > s && !strcmp(path + l - s, ".safetensors.index.json");
}

int hub_pull(const hub_conn *h, const char *cache, const hub_pull_req *q, hub_pull_progress fn, void *ud,
             hub_pulled *out, hub_err *e)
{
    memset(out, 0, sizeof *out);
    const char *rev = q->revision && *q->revision ? q->revision : "main";
    if (!hub_repo_valid(q->repo))
        return hub_fail(e, HUB_INVALID, 0, "hfRepoId: '%s' is not a Hub repo id (name or org/name; letters, digits, '-', '_', '.')",
                        q->repo ? q->repo : "");
    if (strlen(rev) > 255 || strstr(rev, ".."))
        return hub_fail(e, HUB_INVALID, 0, "revision: '%s' is not a branch, tag or commit name", rev);
    for (const unsigned char *c = (const unsigned char *)rev; *c; c++)
        if (*c <= 0x20 || *c == '\\') return hub_fail(e, HUB_INVALID, 0, "revision: '%s' is not a branch, tag or commit name", rev);
    if (q->subpath && !hub_path_valid(q->subpath))
        return hub_fail(e, HUB_INVALID, 0, "path: '%s' is not a folder of the repo (relative, no '..')", q->subpath);

    char *er = hub_escape(rev), *url = NULL;
    if (!er || asprintf(&url, "%s/api/models/%s/revision/%s?blobs=true", h->endpoint, q->repo, er) < 0) url = NULL;
    free(er);
    if (!url) return hub_fail(e, HUB_INVALID, 0, "out of memory");
    hub_resp r;
    int rc = hub_request(h, "GET", url, NULL, NULL, 0, &r, e);
    free(url);
    char what[400];
    snprintf(what, sizeof what, "%s at revision %s", q->repo, rev);
    if (rc) {
        hub_resp_free(&r);
        return -1;
    }
    if (r.status != 200) {
        hub_status_err(h, &r, what, e);
        hub_resp_free(&r);
        return -1;
    }
    json_t *info = json_loads(r.body, 0, NULL);
    hub_resp_free(&r);
    const char *sha = json_string_value(json_object_get(info, "sha"));
    json_t *sibs = json_object_get(info, "siblings");
    if (!sha || strlen(sha) != 40 || strspn(sha, "0123456789abcdef") != 40 || !json_is_array(sibs)) {
        json_decref(info);
        return hub_fail(e, HUB_INVALID, 0, "%s: the Hub's model info has no commit sha or siblings list", what);
    }
    pull p = {.h = h, .cache = cache, .repo = q->repo, .fn = fn, .ud = ud, .out = out};
    snprintf(p.commit, sizeof p.commit, "%s", sha);
    snprintf(out->commit, sizeof out->commit, "%s", sha);
    p.s = calloc(json_array_size(sibs) + 1, sizeof *p.s);
    size_t i;
    json_t *v;
    json_array_foreach(sibs, i, v) {
        sib *s = &p.s[p.n];
        json_t *lfs = json_object_get(v, "lfs");
        s->path = json_string_value(json_object_get(v, "rfilename"));
        s->size = json_integer_value(json_object_get(lfs ? lfs : v, "size"));
        s->sha256 = json_string_value(json_object_get(lfs, "sha256"));
        s->etag = s->sha256 ? s->sha256 : json_string_value(json_object_get(v, "blobId"));
        if (!s->path || !hub_path_valid(s->path)) continue; /* never write outside the snapshot */
        if (!s->etag || strspn(s->etag, "0123456789abcdef") != strlen(s->etag) || strlen(s->etag) < 40) {
            rc = hub_fail(e, HUB_INVALID, 0, "%s: the Hub's model info gives %s no blob id or LFS sha256 (blobs=true)", what, s->path);
            goto out;
        }
        s->selected = wanted(q, s->path);
        if (s->selected) p.total += s->size;
        p.n++;
    }
    int any = 0;
    for (i = 0; i < p.n; i++) any |= p.s[i].selected;
    if (!any) {
        rc = q->subpath ? hub_fail(e, HUB_NOT_FOUND, 404, "%s: no files under path '%s'", what, q->subpath)
                        : hub_fail(e, HUB_NOT_FOUND, 404, "%s: no file matches what was asked for", what);
        goto out;
    }
    /* Indexes first: they decide which shards come too. */
    size_t n0 = p.n;
    for (i = 0; i < n0 && rc == 0; i++)
        if (p.s[i].selected && is_index(p.s[i].path)) rc = fetch(&p, &p.s[i], e) || select_shards(&p, &p.s[i], e);
    for (i = 0; i < p.n && rc == 0; i++)
        if (p.s[i].selected && !p.s[i].done) rc = fetch(&p, &p.s[i], e);
    if (rc) goto out;
    if (hub_cache_write_ref(cache, q->repo, rev, p.commit)) log_warn("hub cache: could not write refs/%s of %s", rev, q->repo);
    out->bytes = p.total;
    hub_cache_snapshot(cache, q->repo, p.commit, q->subpath, out->dir, sizeof out->dir);
out:
    free(p.s);
    json_decref(info);
    return rc ? -1 : 0;
}
