/* hub_push.c: see hub_push.h. */
#define _GNU_SOURCE
#include "server/hub_push.h"

#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/base64.h"
#include "server/gh_pr.h"
#include "server/hub_pull.h"
#include "server/log.h"
#include "server/sha256.h"
#include "server/saes_yaml.h"
#include "server/yaml_json.h"

#define MAX_FILES 5

typedef struct pfile {
    char repo_path[1200];
    char local[4200];       /* the file, or "" for content held in mem */
    char *mem;              /* README.md / pretrained_saes.yaml text (owned) */
    size_t size;
    int lfs;
    char oid[65];
} pfile;

typedef struct push {
    const hub_conn *h;
    const hub_push_req *q;
    const char *rev, *path;
    char *rev_esc;
    pfile f[MAX_FILES];
    int n;
} push;

/* A Hub failure as the API's error: 502 with the Hub's reason. */
static int hub_svc(svc_err *e, const hub_err *he)
{
    static const char *const codes[] = {[HUB_OK] = "hub_error", [HUB_INVALID] = "hub_error", [HUB_AUTH] = "hub_unauthorized",
                                        [HUB_GATED] = "hub_forbidden", [HUB_NOT_FOUND] = "hub_not_found",
                                        [HUB_CONFLICT] = "hub_conflict", [HUB_UNAVAILABLE] = "hub_unavailable",
                                        [HUB_STOPPED] = "hub_error"};
    return svc_fail(e, SVC_UPSTREAM, codes[he->kind], "%s", he->msg);
}

/* One JSON request to the Hub; the answer's JSON (owned) when 2xx (ok409: a 409 too). */
static json_t *hub_json(const hub_conn *h, const char *method, const char *url, const char *ctype, const char *body,
                        size_t len, const char *what, int ok409, svc_err *e)
{
    hub_resp r;
    hub_err he;
    if (hub_request(h, method, url, ctype, body, len, &r, &he)) {
        hub_resp_free(&r);
        hub_svc(e, &he);
        return NULL;
    }
    json_t *j = NULL;
    if ((r.status >= 200 && r.status < 300) || (ok409 && r.status == 409)) {
        j = json_loads(r.body, 0, NULL);
        if (!j) j = json_object();
    } else {
        hub_status_err(h, &r, what, &he);
        hub_svc(e, &he);
    }
    hub_resp_free(&r);
    return j;
}

/* The repo's file at rev (NULL when it has none; *missing then 1), e.g. the current card. */
static char *hub_fetch_text(push *p, const char *file, int *missing, svc_err *e)
{
    char *url = NULL;
    *missing = 0;
    if (asprintf(&url, "%s/%s/resolve/%s/%s", p->h->endpoint, p->q->repo, p->rev_esc, file) < 0) return NULL;
    hub_resp r;
    hub_err he;
    int rc = hub_request(p->h, "GET", url, NULL, NULL, 0, &r, &he);
    free(url);
    char *out = NULL;
    if (rc) {
        hub_svc(e, &he);
    } else if (r.status == 200) {
        out = r.body;
        r.body = NULL;
    } else if (r.status == 404) {
        *missing = 1;
    } else {
        char what[400];
        snprintf(what, sizeof what, "%s of %s", file, p->q->repo);
        hub_status_err(p->h, &r, what, &he);
        hub_svc(e, &he);
    }
    hub_resp_free(&r);
    return out;
}

static void add_file(push *p, const char *repo_path, const char *local, char *mem)
{
    pfile *f = &p->f[p->n++];
    memset(f, 0, sizeof *f);
    snprintf(f->repo_path, sizeof f->repo_path, "%s", repo_path);
    if (local) snprintf(f->local, sizeof f->local, "%s", local);
    f->mem = mem;
    struct stat st;
    f->size = mem ? strlen(mem) : (stat(local, &st) ? 0 : (size_t)st.st_size);
}

/* The file's bytes: mem, or the file mapped (*map set for munmap). */
static const char *bytes_of(pfile *f, void **map)
{
    *map = NULL;
    if (f->mem) return f->mem;
    if (f->size == 0) return "";
    int fd = open(f->local, O_RDONLY);
    if (fd < 0) return NULL;
    void *m = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) return NULL;
    *map = m;
    return m;
}

/* The export's pretrained_saes.yaml: its one release (owned; NULL with e). */
static json_t *export_entry(const char *local_yaml_path, double *l0, svc_err *e)
{
    char err[300], buf[8192];
    FILE *f = fopen(local_yaml_path, "r");
    size_t k = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    buf[k] = '\0';
    json_t *mine = yaml_to_json(buf, k, err, sizeof err), *entry = NULL, *mv;
    const char *mk;
    json_object_foreach(mine, mk, mv) entry = mv; /* the export's one release */
    json_t *sae = json_array_get(json_object_get(entry, "saes"), 0);
    if (!json_is_object(sae)) {
        json_decref(mine);
        return svc_fail(e, SVC_INTERNAL, "internal", "the export's pretrained_saes.yaml has no entry"), NULL;
    }
    *l0 = json_number_value(json_object_get(sae, "l0"));
    json_incref(entry);
    json_decref(mine);
    return entry;
}

/* pretrained_saes.yaml: the repo's file with this SAE's entry added (or replaced, by path),
 * every other line as it was. */
static char *merge_yaml(push *p, const char *remote, const json_t *entry, const char *release_default, char *release,
                        size_t rn, svc_err *e)
{
    char err[400], *out = NULL;
    int rc = saes_yaml_merge(remote, entry, release_default, &out, release, rn, err, sizeof err);
    if (rc != SY_OK)
        svc_fail(e, SVC_UPSTREAM, rc == SY_CONFLICT ? "hub_conflict" : "hub_error", "pretrained_saes.yaml of %s: %s", p->q->repo, err);
    return out;
}

/* README.md: the repo's card with this SAE's section (between markers) put in or replaced. */
static char *merge_card(push *p, const char *remote, json_t *row, const char *release, double l0)
{
    const char *model = json_string_value(json_object_get(json_object_get(row, "saelensConfig"), "model_name"));
    if (!model) model = p->q->model_id;
    const char *ds = json_string_value(json_object_get(row, "dataset"));
    char begin[1300], end[1300], links[1500], *sec = NULL;
    snprintf(begin, sizeof begin, "<!-- saed:sae %s -->", p->path);
    snprintf(end, sizeof end, "<!-- /saed:sae %s -->", p->path);
    if (p->q->dashboard_url)
        snprintf(links, sizeof links, "[%s/%s](%s/%s/%s)", p->q->model_id, p->q->sae_id, p->q->dashboard_url, p->q->model_id,
                 p->q->sae_id);
    else
        snprintf(links, sizeof links, "saed `GET /api/feature/%s/%s/{index}`", p->q->model_id, p->q->sae_id);
    if (asprintf(&sec,
                 "%s\n## %s\n\n| | |\n|---|---|\n| model | %s |\n| hook | `%s` |\n| architecture | %s |\n| d_in | %lld |\n"
                 "| d_sae | %lld |\n| L0 | %.4g |\n| dataset | %s |\n| dashboards | %s |\n\n"
                 "```python\nfrom sae_lens import SAE\nsae = SAE.from_pretrained(\"%s\", \"%s\")  # with this repo's pretrained_saes.yaml entry\n"
                 "# or: SAE.load_from_disk(snapshot_download(\"%s\") + \"/%s\")\n```\n%s\n",
                 begin, p->path, model, json_string_value(json_object_get(row, "hookName")),
                 json_string_value(json_object_get(row, "architecture")), (long long)json_integer_value(json_object_get(row, "dIn")),
                 (long long)json_integer_value(json_object_get(row, "dSae")), l0, ds ? ds : "(not recorded)", links, release,
                 json_string_value(json_object_get(row, "hookName")), p->q->repo, p->path, end) < 0)
        return NULL;
    char *out = NULL;
    const char *b = remote ? strstr(remote, begin) : NULL, *x = b ? strstr(b, end) : NULL;
    int rc;
    if (b && x) {
        x += strlen(end);
        if (*x == '\n') x++;
        rc = asprintf(&out, "%.*s%s%s", (int)(b - remote), remote, sec, x);
    } else if (remote) {
        size_t l = strlen(remote);
        rc = asprintf(&out, "%s%s\n%s", remote, l && remote[l - 1] != '\n' ? "\n" : "", sec);
    } else {
        rc = asprintf(&out,
                      "---\nlibrary_name: saelens\ntags:\n- sae_lens\n- sparse-autoencoder\n- saed\n---\n\n"
                      "# %s\n\nSparse autoencoders for %s in SAELens format, exported by saed. "
                      "`pretrained_saes.yaml` has their SAELens entries (release `%s`).\n\n%s",
                      p->q->repo, model, release, sec);
    }
    free(sec);
    return rc < 0 ? NULL : out;
}

static void push_free(push *p)
{
    for (int i = 0; i < p->n; i++) free(p->f[i].mem);
    free(p->rev_esc);
}

static void rm_export(const char *dir)
{
    static const char *const names[] = {"cfg.json", "sae_weights.safetensors", "sparsity.safetensors", "pretrained_saes.yaml"};
    char f[4200];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(f, sizeof f, "%s/%s", dir, names[i]);
        unlink(f);
    }
    rmdir(dir);
}

/* POST /api/repos/create; an existing repo (409) is fine. */
static int create_repo(push *p, svc_err *e)
{
    char org[200] = "", *url = NULL;
    const char *slash = strchr(p->q->repo, '/'), *name = slash ? slash + 1 : p->q->repo;
    if (slash) snprintf(org, sizeof org, "%.*s", (int)(slash - p->q->repo), p->q->repo);
    json_t *body = json_pack("{s:s,s:s?,s:b,s:s}", "name", name, "organization", slash ? org : NULL, "private", p->q->is_private,
                             "type", "model");
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (asprintf(&url, "%s/api/repos/create", p->h->endpoint) < 0) url = NULL;
    char what[300];
    snprintf(what, sizeof what, "creating repo %s", p->q->repo);
    json_t *j = url && text ? hub_json(p->h, "POST", url, "application/json", text, strlen(text), what, 1, e) : NULL;
    free(url);
    free(text);
    json_decref(j);
    return j ? 0 : -1;
}

/* preupload: the Hub says which files go through LFS. */
static int preupload(push *p, svc_err *e)
{
    json_t *files = json_array();
    for (int i = 0; i < p->n; i++) {
        void *map;
        const char *b = bytes_of(&p->f[i], &map);
        if (!b) {
            json_decref(files);
            return svc_fail(e, SVC_INTERNAL, "internal", "%s: cannot read the export", p->f[i].repo_path);
        }
        char *sample = base64_encode(b, p->f[i].size < 512 ? p->f[i].size : 512);
        if (map) munmap(map, p->f[i].size);
        json_array_append_new(files, json_pack("{s:s,s:I,s:s}", "path", p->f[i].repo_path, "size", (json_int_t)p->f[i].size,
                                               "sample", sample ? sample : ""));
        free(sample);
    }
    json_t *body = json_pack("{s:o}", "files", files);
    char *text = json_dumps(body, JSON_COMPACT), *url = NULL;
    json_decref(body);
    if (asprintf(&url, "%s/api/models/%s/preupload/%s%s", p->h->endpoint, p->q->repo, p->rev_esc,
                 p->q->create_pr ? "?create_pr=1" : "") < 0)
        url = NULL;
    char what[300];
    snprintf(what, sizeof what, "preupload to %s", p->q->repo);
    json_t *j = url && text ? hub_json(p->h, "POST", url, "application/json", text, strlen(text), what, 0, e) : NULL;
    free(url);
    free(text);
    if (!j) return -1;
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(j, "files"), i, v) {
        const char *path = json_string_value(json_object_get(v, "path"));
        const char *mode = json_string_value(json_object_get(v, "uploadMode"));
        for (int k = 0; path && mode && k < p->n; k++)
            if (!strcmp(p->f[k].repo_path, path)) p->f[k].lfs = !strcmp(mode, "lfs");
    }
    json_decref(j);
    return 0;
}

/* LFS batch, then each object's upload and verify actions (none for an object the Hub has). */
static int lfs_upload(push *p, svc_err *e)
{
    json_t *objs = json_array();
    for (int i = 0; i < p->n; i++) {
        if (!p->f[i].lfs) continue;
        if (sha256_file(p->f[i].local, p->f[i].oid)) {
            json_decref(objs);
            return svc_fail(e, SVC_INTERNAL, "internal", "%s: cannot read the export", p->f[i].repo_path);
        }
        json_array_append_new(objs, json_pack("{s:s,s:I}", "oid", p->f[i].oid, "size", (json_int_t)p->f[i].size));
    }
    if (!json_array_size(objs)) {
        json_decref(objs);
        return 0;
    }
    char ref[300];
    snprintf(ref, sizeof ref, "refs/heads/%s", p->rev);
    json_t *body = json_pack("{s:s,s:[s],s:o,s:s,s:{s:s}}", "operation", "upload", "transfers", "basic", "objects", objs,
                             "hash_algo", "sha256", "ref", "name", ref);
    char *text = json_dumps(body, JSON_COMPACT), *url = NULL;
    json_decref(body);
    if (asprintf(&url, "%s/%s.git/info/lfs/objects/batch", p->h->endpoint, p->q->repo) < 0) url = NULL;
    char what[300];
    snprintf(what, sizeof what, "LFS batch for %s", p->q->repo);
    json_t *j = url && text ? hub_json(p->h, "POST", url, "application/vnd.git-lfs+json", text, strlen(text), what, 0, e) : NULL;
    free(url);
    free(text);
    if (!j) return -1;
    int rc = 0;
    size_t i;
    json_t *o;
    json_array_foreach(json_object_get(j, "objects"), i, o) {
        const char *oid = json_string_value(json_object_get(o, "oid"));
        pfile *f = NULL;
        for (int k = 0; oid && k < p->n; k++)
            if (p->f[k].lfs && !strcmp(p->f[k].oid, oid)) f = &p->f[k];
        if (!f) continue;
        json_t *err = json_object_get(o, "error");
        if (err) {
            rc = svc_fail(e, SVC_UPSTREAM, "hub_error", "LFS upload of %s refused: %s", f->repo_path,
                          json_string_value(json_object_get(err, "message")) ? json_string_value(json_object_get(err, "message")) : "error");
            break;
        }
        json_t *act = json_object_get(o, "actions");
        const char *up = json_string_value(json_object_get(json_object_get(act, "upload"), "href"));
        const char *ver = json_string_value(json_object_get(json_object_get(act, "verify"), "href"));
        if (up) {
            void *map;
            const char *b = bytes_of(f, &map);
            /* The upload URL is storage, presigned: the Hub token is not sent there. */
            hub_conn anon = *p->h;
            anon.token = NULL;
            snprintf(what, sizeof what, "uploading %s", f->repo_path);
            json_t *u = b ? hub_json(&anon, "PUT", up, "application/octet-stream", b, f->size, what, 0, e) : NULL;
            if (map) munmap(map, f->size);
            if (!u) {
                rc = b ? -1 : svc_fail(e, SVC_INTERNAL, "internal", "%s: cannot read the export", f->repo_path);
                break;
            }
            json_decref(u);
        }
        if (ver) {
            char *vb = NULL;
            if (asprintf(&vb, "{\"oid\":\"%s\",\"size\":%zu}", f->oid, f->size) < 0) vb = NULL;
            snprintf(what, sizeof what, "verifying the upload of %s", f->repo_path);
            json_t *v = vb ? hub_json(p->h, "POST", ver, "application/vnd.git-lfs+json", vb, strlen(vb), what, 0, e) : NULL;
            free(vb);
            if (!v) {
                rc = -1;
                break;
            }
            json_decref(v);
        }
    }
    json_decref(j);
    return rc;
}

/* The NDJSON commit: a header line, then one line per file (regular content base64, LFS by oid). */
static json_t *commit(push *p, svc_err *e)
{
    char *nd = NULL, *line;
    size_t ndl = 0;
    FILE *m = open_memstream(&nd, &ndl);
    char summary[1400];
    snprintf(summary, sizeof summary, "Upload SAE %s (%s/%s) with saed", p->path, p->q->model_id, p->q->sae_id);
    json_t *hd = json_pack("{s:s,s:{s:s,s:s}}", "key", "header", "value", "summary", summary, "description",
                           "SAELens export, model card section and pretrained_saes.yaml entry written by saed.");
    line = json_dumps(hd, JSON_COMPACT);
    fprintf(m, "%s\n", line);
    free(line);
    json_decref(hd);
    int rc = 0;
    for (int i = 0; i < p->n && rc == 0; i++) {
        pfile *f = &p->f[i];
        json_t *l;
        if (f->lfs) {
            l = json_pack("{s:s,s:{s:s,s:s,s:s,s:I}}", "key", "lfsFile", "value", "path", f->repo_path, "algo", "sha256", "oid",
                          f->oid, "size", (json_int_t)f->size);
        } else {
            void *map;
            const char *b = bytes_of(f, &map);
            char *b64 = b ? base64_encode(b, f->size) : NULL;
            if (map) munmap(map, f->size);
            if (!b64) {
                rc = svc_fail(e, SVC_INTERNAL, "internal", "%s: cannot read the export", f->repo_path);
                break;
            }
            l = json_pack("{s:s,s:{s:s,s:s,s:s}}", "key", "file", "value", "content", b64, "path", f->repo_path, "encoding",
                          "base64");
            free(b64);
        }
        line = json_dumps(l, JSON_COMPACT);
        fprintf(m, "%s\n", line);
        free(line);
        json_decref(l);
    }
    fclose(m);
    char *url = NULL;
    json_t *j = NULL;
    if (rc == 0 && asprintf(&url, "%s/api/models/%s/commit/%s%s", p->h->endpoint, p->q->repo, p->rev_esc,
                            p->q->create_pr ? "?create_pr=1" : "") >= 0) {
        char what[300];
        snprintf(what, sizeof what, "committing to %s", p->q->repo);
        j = hub_json(p->h, "POST", url, "application/x-ndjson", nd, ndl, what, 0, e);
    }
    free(url);
    free(nd);
    return j;
}

int hub_push_sae(db_conn *c, const hub_conn *h, const hub_push_req *q, char **json_out, svc_err *e)
{
    *json_out = NULL;
    push p = {.h = h, .q = q, .rev = q->revision && *q->revision ? q->revision : "main", .path = q->path ? q->path : q->sae_id};
    if (!hub_repo_valid(q->repo) || !strchr(q->repo, '/'))
        return svc_fail(e, SVC_INVALID, "invalid_field", "repo: '%s' is not a Hub repo id (org/name)", q->repo ? q->repo : "");
    if (!hub_path_valid(p.path))
        return svc_fail(e, SVC_INVALID, "invalid_field", "path: '%s' is not a folder for the repo (relative, no '..')", p.path);
    if (strstr(p.rev, "..") || strpbrk(p.rev, " \t\r\n\\") || strlen(p.rev) > 255)
        return svc_fail(e, SVC_INVALID, "invalid_field", "revision: '%s' is not a branch name", p.rev);
    if (!h->token || !*h->token)
        return svc_fail(e, SVC_INVALID, "hub_token_missing", "pushing to the Hub needs HF_TOKEN (a write token) in saed's configuration");
    if (q->saelens && gh_pr_check(q->gh, q->saelens, q->saelens_base, e)) return -1;
    if (!registry_id_valid(q->model_id) || !registry_id_valid(q->sae_id))
        return svc_fail(e, SVC_NOT_FOUND, "not_found", "SAE '%s' of model '%s' not found", q->sae_id, q->model_id);
    PGresult *r = db_exec(c, DB_SAE_GET, (const char *const[]){q->model_id, q->sae_id});
    json_t *row = db_kind(r) == DB_OK && PQntuples(r) == 1 ? json_loads(PQgetvalue(r, 0, 0), 0, NULL) : NULL;
    int found = db_kind(r) == DB_OK;
    if (db_kind(r) != DB_OK) registry_db_err(e, r, "reading the SAE");
    PQclear(r);
    if (!row) return found ? svc_fail(e, SVC_NOT_FOUND, "not_found", "SAE '%s' of model '%s' not found", q->sae_id, q->model_id) : -1;
    char dir[] = "/tmp/saed-push-XXXXXX", f[4200], yp[4200];
    if (!mkdtemp(dir)) {
        json_decref(row);
        return svc_fail(e, SVC_INTERNAL, "internal", "cannot create a temporary directory");
    }
    int rc = registry_sae_export_to(c, q->model_id, q->sae_id, 6, dir, q->repo, p.path, e);
    p.rev_esc = hub_escape(p.rev);
    char *yaml_remote = NULL, *card_remote = NULL, release[300];
    json_t *entry = NULL;
    double l0 = 0;
    int missing, pr_failed = 0;
    if (rc == 0) rc = create_repo(&p, e);
    if (rc == 0) {
        yaml_remote = hub_fetch_text(&p, "pretrained_saes.yaml", &missing, e);
        if (!yaml_remote && !missing) rc = -1;
    }
    if (rc == 0) {
        card_remote = hub_fetch_text(&p, "README.md", &missing, e);
        if (!card_remote && !missing) rc = -1;
    }
    if (rc == 0) {
        static const char *const names[] = {"cfg.json", "sae_weights.safetensors", "sparsity.safetensors"};
        for (size_t i = 0; i < 3; i++) {
            snprintf(f, sizeof f, "%s/%s", dir, names[i]);
            char rp[1200];
            snprintf(rp, sizeof rp, "%s/%s", p.path, names[i]);
            if (access(f, R_OK) == 0) add_file(&p, rp, f, NULL);
        }
        snprintf(yp, sizeof yp, "%s/pretrained_saes.yaml", dir);
        const char *slash = strchr(q->repo, '/');
        entry = export_entry(yp, &l0, e);
        char *y = entry ? merge_yaml(&p, yaml_remote, entry, slash + 1, release, sizeof release, e) : NULL;
        char *card = y ? merge_card(&p, card_remote, row, release, l0) : NULL;
        if (!y || !card) {
            free(y);
            rc = y ? svc_fail(e, SVC_INTERNAL, "internal", "out of memory") : -1;
        } else {
            add_file(&p, "README.md", NULL, card);
            add_file(&p, "pretrained_saes.yaml", NULL, y);
        }
    }
    if (rc == 0) rc = preupload(&p, e);
    if (rc == 0) rc = lfs_upload(&p, e);
    json_t *cm = rc == 0 ? commit(&p, e) : NULL;
    if (cm) {
        json_t *files = json_array();
        for (int i = 0; i < p.n; i++)
            json_array_append_new(files, json_pack("{s:s,s:I,s:b}", "path", p.f[i].repo_path, "size", (json_int_t)p.f[i].size,
                                                   "lfs", p.f[i].lfs));
        json_t *out = json_pack("{s:s,s:s,s:s,s:s,s:O?,s:O?,s:O?,s:o}", "repoId", q->repo, "revision", p.rev, "path", p.path,
                                "release", release, "commitOid", json_object_get(cm, "commitOid"), "commitUrl",
                                json_object_get(cm, "commitUrl"), "pullRequestUrl", json_object_get(cm, "pullRequestUrl"),
                                "files", files);
        if (!json_object_get(out, "pullRequestUrl")) json_object_set_new(out, "pullRequestUrl", json_null());
        log_info("pushed %s/%s to %s/%s at %s", q->model_id, q->sae_id, q->repo, p.path, p.rev);
        json_t *gpr = NULL;
        if (q->saelens) {
            /* The entry proposed to SAELens names the Hub repo the SAE now lives in. */
            char about[1400];
            snprintf(about, sizeof about, "%s/%s, folder `%s`", h->endpoint, q->repo, p.path);
            if (gh_saelens_pr(q->gh, q->saelens, q->saelens_base, entry, release, about, &gpr, e)) {
                char m[sizeof e->msg];
                snprintf(m, sizeof m, "%s", e->msg);
                snprintf(e->msg, sizeof e->msg, "the SAE was pushed to the Hub (%s, %s); the SAELens pull request failed: %s", q->repo,
                         p.path, m);
                pr_failed = 1;
            }
        }
        json_object_set(out, "saelensPullRequestUrl", gpr && json_is_string(json_object_get(gpr, "pullRequestUrl"))
                                                          ? json_object_get(gpr, "pullRequestUrl") : json_null());
        if (gpr) json_object_set_new(out, "saelensPr", gpr);
        *json_out = json_dumps(out, JSON_COMPACT);
        json_decref(out);
        json_decref(cm);
    } else if (rc == 0) {
        rc = -1;
    }
    free(yaml_remote);
    free(card_remote);
    push_free(&p);
    json_decref(row);
    json_decref(entry);
    rm_export(dir);
    return *json_out ? pr_failed : -1;
}
