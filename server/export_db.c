/* export_db.c: see export_db.h. A small file writer (plain or gzip, NAME.tmp renamed into
 * place), then one walk per layout over the SAE's stored index range. It does NOT build JSON
 * rows (the statements DB_EXPORT_* do), compute anything, or know about HTTP or tar. */
#include "server/export_db.h"

#include <dirent.h>    // defines: opendir, readdir
#include <errno.h>     // defines: errno, EEXIST
#include <jansson.h>   // defines: json_loads, json_dumps (run_settings.json's indentation)
#include <stdio.h>     // defines: snprintf, fopen, rename
#include <stdlib.h>    // defines: atoi, free
#include <string.h>    // defines: strlen, strerror
#include <sys/stat.h>  // defines: mkdir, lstat
#include <unistd.h>    // defines: unlink, rmdir
#include <zlib.h>      // defines: gzopen, gzwrite, gzclose

#include "server/log.h"  // defines: log_error

#define XP_NP_BATCH 1024  /* Neuronpedia's batch width (features, activations, explanations) */
#define XP_ACT_CHUNK 128  /* features per activations query: their rows are the bulk of the data */
#define XP_PATH 4096

typedef struct xp {
    db_conn *c;
    const char *model, *sae, *dir;
    svc_err *e;
} xp;

typedef struct xp_file {
    char path[XP_PATH], tmp[XP_PATH + 8];
    FILE *f;    /* plain */
    gzFile gz;  /* or gzip */
} xp_file;

/* A file-system failure: the details (paths) go to the log, the caller gets a plain 500. */
static int xp_io(xp *x, const char *what, const char *path)
{
    log_error("export %s/%s: %s %s: %s", x->model, x->sae, what, path, errno ? strerror(errno) : "failed");
    return svc_fail(x->e, SVC_INTERNAL, "export_failed", "the export could not be written (see the server log)");
}

/* ---- files ---- */

static int xp_mkdirs(xp *x, const char *dir)
{
    char p[XP_PATH];
    errno = 0;
    if (snprintf(p, sizeof p, "%s", dir) >= (int)sizeof p) return xp_io(x, "path too long:", dir);
    for (char *s = p + 1;; s++) {
        if (*s && *s != '/') continue;
        char c = *s;
        *s = '\0';
        if (mkdir(p, 0755) && errno != EEXIST) return xp_io(x, "mkdir", p);
        errno = 0;
        *s = c;
        if (!c) break;
    }
    struct stat st;
    if (stat(p, &st) || !S_ISDIR(st.st_mode)) return xp_io(x, "not a directory:", p);
    return 0;
}

static int xp_open(xp *x, xp_file *o, const char *sub, const char *name, int gz)
{
    memset(o, 0, sizeof *o);
    errno = 0;
    if (snprintf(o->path, sizeof o->path, "%s/%s%s%s", x->dir, sub ? sub : "", sub ? "/" : "", name) >= (int)sizeof o->path)
        return xp_io(x, "path too long:", name);
    snprintf(o->tmp, sizeof o->tmp, "%s.tmp", o->path);
    if (gz) o->gz = gzopen(o->tmp, "wb5"); /* level 5, as Neuronpedia's exporter; no time in the header */
    else o->f = fopen(o->tmp, "wb");
    return o->gz || o->f ? 0 : xp_io(x, "create", o->tmp);
}

static int xp_write(xp *x, xp_file *o, const char *buf, size_t n)
{
    if (!n) return 0;
    errno = 0;
    int ok = o->gz ? gzwrite(o->gz, buf, (unsigned)n) == (int)n : fwrite(buf, 1, n, o->f) == n;
    return ok ? 0 : xp_io(x, "write", o->tmp);
}

static int xp_puts(xp *x, xp_file *o, const char *s) { return xp_write(x, o, s, strlen(s)); }

/* Drops a file that failed: no NAME.tmp is left behind. */
static void xp_abort(xp_file *o)
{
    if (o->gz) gzclose(o->gz);
    if (o->f) fclose(o->f);
    if (o->gz || o->f) unlink(o->tmp);
    o->gz = NULL;
    o->f = NULL;
}

static int xp_close(xp *x, xp_file *o)
{
    errno = 0;
    int ok = o->gz ? gzclose(o->gz) == Z_OK : fclose(o->f) == 0;
    o->gz = NULL;
    o->f = NULL;
    if (!ok || rename(o->tmp, o->path)) {
        int rc = xp_io(x, ok ? "rename" : "close", o->tmp);
        unlink(o->tmp);
        return rc;
    }
    return 0;
}

/* ---- queries ---- */

/* A DB_EXPORT_* statement over the features [lo, hi); NULL with e set on failure. */
static PGresult *xp_range(xp *x, enum db_stmt st, long long lo, long long hi, const char *what)
{
    char a[24], b[24];
    snprintf(a, sizeof a, "%lld", lo);
    snprintf(b, sizeof b, "%lld", hi);
    PGresult *r = db_exec(x->c, st, (const char *const[]){x->model, x->sae, a, b});
    if (db_kind(r) == DB_OK) return r;
    registry_db_err(x->e, r, what);
    PQclear(r);
    return NULL;
}

/* Column col of every row, one per line, into a new file; no rows = no file unless always. */
static int xp_rows_file(xp *x, const char *sub, const char *name, PGresult *r, int col, int always)
{
    if (PQntuples(r) == 0 && !always) return 0;
    xp_file o;
    if (xp_open(x, &o, sub, name, 1)) return -1;
    for (int i = 0; i < PQntuples(r); i++)
        if (xp_write(x, &o, PQgetvalue(r, i, col), (size_t)PQgetlength(r, i, col)) || xp_puts(x, &o, "\n")) {
            xp_abort(&o);
            return -1;
        }
    return xp_close(x, &o);
}

/* ---- neuronpedia ---- */

static int xp_neuronpedia(xp *x, long long lo, long long hi)
{
    static const char *const subs[] = {"features", "activations", "explanations"};
    static const char *const meta[] = {"release.jsonl", "model.jsonl", "sourceset.jsonl", "source.jsonl"};
    char d[XP_PATH + 16];
    if (xp_mkdirs(x, x->dir)) return -1;
    for (int i = 0; i < 3; i++) {
        snprintf(d, sizeof d, "%s/%s", x->dir, subs[i]);
        if (xp_mkdirs(x, d)) return -1;
    }
    PGresult *r = db_exec(x->c, DB_EXPORT_NP_META, (const char *const[]){x->model, x->sae});
    if (db_kind(r) != DB_OK || PQntuples(r) != 1) {
        if (db_kind(r) != DB_OK) registry_db_err(x->e, r, "reading the SAE's metadata");
        else svc_fail(x->e, SVC_INTERNAL, "internal", "the SAE's model or source set row is missing");
        PQclear(r);
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < 4 && rc == 0; i++) {
        xp_file o;
        if ((rc = xp_open(x, &o, NULL, meta[i], 0))) break;
        if (xp_puts(x, &o, PQgetvalue(r, 0, i)) || xp_puts(x, &o, "\n")) {
            xp_abort(&o);
            rc = -1;
        } else {
            rc = xp_close(x, &o);
        }
    }
    PQclear(r);
    if (rc) return -1;
    for (long long b = lo / XP_NP_BATCH; b <= hi / XP_NP_BATCH; b++) {
        const long long f0 = b * XP_NP_BATCH, f1 = f0 + XP_NP_BATCH;
        char name[48];
        snprintf(name, sizeof name, "batch-%lld.jsonl.gz", b);
        if (!(r = xp_range(x, DB_EXPORT_NP_FEATURES, f0, f1, "reading features"))) return -1;
        int n = PQntuples(r);
        rc = xp_rows_file(x, "features", name, r, 0, 0);
        PQclear(r);
        if (rc) return -1;
        if (n == 0) continue; /* nothing stored in this range */
        /* Activations in sub-ranges: memory holds XP_ACT_CHUNK features' examples at most. */
        xp_file o;
        if (xp_open(x, &o, "activations", name, 1)) return -1;
        for (long long c0 = f0; c0 < f1; c0 += XP_ACT_CHUNK) {
            if (!(r = xp_range(x, DB_EXPORT_NP_ACTIVATIONS, c0, c0 + XP_ACT_CHUNK, "reading activations"))) {
                xp_abort(&o);
                return -1;
            }
            for (int i = 0; i < PQntuples(r) && rc == 0; i++)
                rc = xp_write(x, &o, PQgetvalue(r, i, 0), (size_t)PQgetlength(r, i, 0)) || xp_puts(x, &o, "\n");
            PQclear(r);
            if (rc) {
                xp_abort(&o);
                return -1;
            }
        }
        if (xp_close(x, &o)) return -1;
        if (!(r = xp_range(x, DB_EXPORT_NP_EXPLANATIONS, f0, f1, "reading explanations"))) return -1;
        rc = xp_rows_file(x, "explanations", name, r, 0, 0);
        PQclear(r);
        if (rc) return -1;
    }
    return 0;
}

/* ---- saedashboard ---- */

static int xp_run_settings(xp *x, int B)
{
    char bs[16];
    snprintf(bs, sizeof bs, "%d", B);
    PGresult *r = db_exec(x->c, DB_EXPORT_SD_RUN_SETTINGS, (const char *const[]){x->model, x->sae, bs});
    if (db_kind(r) != DB_OK || PQntuples(r) != 1) {
        if (db_kind(r) != DB_OK) registry_db_err(x->e, r, "reading the run settings");
        else svc_fail(x->e, SVC_INTERNAL, "internal", "the SAE row disappeared during the export");
        PQclear(r);
        return -1;
    }
    /* Indented like json.dump(cfg.__dict__, indent=4), keys in the statement's order. */
    json_t *j = json_loads(PQgetvalue(r, 0, 0), 0, NULL);
    PQclear(r);
    char *s = j ? json_dumps(j, JSON_INDENT(4) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15)) : NULL;
    json_decref(j);
    if (!s) return svc_fail(x->e, SVC_INTERNAL, "internal", "run settings: out of memory");
    xp_file o;
    int rc = xp_open(x, &o, NULL, "run_settings.json", 0);
    if (rc == 0 && (xp_puts(x, &o, s) || xp_puts(x, &o, "\n"))) {
        xp_abort(&o);
        rc = -1;
    }
    free(s);
    return rc ? -1 : xp_close(x, &o);
}

/* One batch file: the header, then each feature with its activations spliced in before
 * "vector" (both row sets come ordered by feature index). */
static int xp_sd_batch(xp *x, const char *name, const char *head, size_t headlen, PGresult *rf, PGresult *ra)
{
    xp_file o;
    if (xp_open(x, &o, NULL, name, 0)) return -1;
    int rc = xp_write(x, &o, head, headlen) || xp_puts(x, &o, ",\"features\":[");
    for (int i = 0, k = 0, na = PQntuples(ra); i < PQntuples(rf) && rc == 0; i++) {
        const int idx = atoi(PQgetvalue(rf, i, 0));
        const char *feat = PQgetvalue(rf, i, 1);
        size_t fl = (size_t)PQgetlength(rf, i, 1);
        rc = (i && xp_puts(x, &o, ",")) || xp_write(x, &o, feat, fl ? fl - 1 : 0) || xp_puts(x, &o, ",\"activations\":[");
        while (k < na && atoi(PQgetvalue(ra, k, 0)) < idx) k++;
        for (int first = 1; rc == 0 && k < na && atoi(PQgetvalue(ra, k, 0)) == idx; k++, first = 0)
            rc = (!first && xp_puts(x, &o, ",")) || xp_write(x, &o, PQgetvalue(ra, k, 1), (size_t)PQgetlength(ra, k, 1));
        rc = rc || xp_puts(x, &o, "],\"vector\":") || xp_puts(x, &o, PQgetvalue(rf, i, 2)) || xp_puts(x, &o, "}");
    }
    if (rc || xp_puts(x, &o, "]}\n")) {
        xp_abort(&o);
        return -1;
    }
    return xp_close(x, &o);
}

static int xp_saedashboard(xp *x, long long lo, long long hi, int B, const char *header)
{
    if (xp_mkdirs(x, x->dir) || xp_run_settings(x, B)) return -1;
    size_t headlen = strlen(header);
    if (headlen < 2 || header[headlen - 1] != '}')
        return svc_fail(x->e, SVC_INTERNAL, "internal", "unexpected batch header from the database");
    headlen--; /* the closing '}' comes after "features" */
    for (long long b = lo / B; b <= hi / B; b++) {
        const long long f0 = b * B, f1 = f0 + B;
        PGresult *rf = xp_range(x, DB_EXPORT_SD_FEATURES, f0, f1, "reading features"), *ra = NULL;
        if (!rf) return -1;
        if (PQntuples(rf) == 0) {
            PQclear(rf);
            continue;
        }
        if (!(ra = xp_range(x, DB_EXPORT_SD_ACTIVATIONS, f0, f1, "reading activations"))) {
            PQclear(rf);
            return -1;
        }
        char name[48];
        snprintf(name, sizeof name, "batch-%lld.json", b);
        int rc = xp_sd_batch(x, name, header, headlen, rf, ra);
        PQclear(rf);
        PQclear(ra);
        if (rc) return -1;
    }
    return 0;
}

/* ---- entry points ---- */

int export_db_format_parse(const char *s, export_db_format *f)
{
    if (!s || !strcmp(s, "neuronpedia")) *f = EXPORT_DB_NEURONPEDIA;
    else if (!strcmp(s, "saedashboard")) *f = EXPORT_DB_SAEDASHBOARD;
    else return -1;
    return 0;
}

int export_db_write(db_conn *c, const char *model_id, const char *sae_id, export_db_format fmt, int features_per_batch,
                    const char *dir, svc_err *e)
{
    const int B = features_per_batch ? features_per_batch : EXPORT_DB_SD_BATCH;
    if (B < 1 || B > EXPORT_DB_SD_BATCH_MAX)
        return svc_fail(e, SVC_INVALID, "invalid_field", "featuresPerBatch: expected an integer in [1, %d]", EXPORT_DB_SD_BATCH_MAX);
    if (!registry_id_valid(model_id) || !registry_id_valid(sae_id))
        return svc_fail(e, SVC_NOT_FOUND, "not_found", "SAE '%s' of model '%s' not found", sae_id, model_id);
    xp x = {.c = c, .model = model_id, .sae = sae_id, .dir = dir, .e = e};
    PGresult *r = db_exec(c, DB_EXPORT_BEGIN, NULL);
    if (db_kind(r) != DB_OK) {
        registry_db_err(e, r, "starting the export");
        PQclear(r);
        return -1;
    }
    PQclear(r);
    int rc = -1;
    r = db_exec(c, DB_EXPORT_SAE, (const char *const[]){model_id, sae_id});
    if (db_kind(r) != DB_OK) registry_db_err(e, r, "reading the SAE");
    else if (PQntuples(r) == 0) svc_fail(e, SVC_NOT_FOUND, "not_found", "SAE '%s' of model '%s' not found", sae_id, model_id);
    else if (strcmp(PQgetvalue(r, 0, 0), "t") || PQgetisnull(r, 0, 1))
        svc_fail(e, SVC_CONFLICT, "no_dashboards", "SAE '%s' of model '%s' has no dashboards yet; run a dashboard job first",
               sae_id, model_id);
    else {
        long long lo = atoll(PQgetvalue(r, 0, 1)), hi = atoll(PQgetvalue(r, 0, 2));
        rc = fmt == EXPORT_DB_SAEDASHBOARD ? xp_saedashboard(&x, lo, hi, B, PQgetvalue(r, 0, 3)) : xp_neuronpedia(&x, lo, hi);
    }
    PQclear(r);
    if (rc == 0) {
        r = db_exec(c, DB_COMMIT, NULL);
        if (db_kind(r) != DB_OK) rc = (registry_db_err(e, r, "finishing the export"), -1);
        PQclear(r);
    }
    if (rc) PQclear(db_exec_script(c, "ROLLBACK"));
    return rc;
}

int export_db_rmtree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    struct dirent *ent;
    int rc = 0;
    while ((ent = readdir(d))) {
        if (!strcmp(ent->d_name, ".") || !strcmp(ent->d_name, "..")) continue;
        char p[XP_PATH];
        struct stat st;
        if (snprintf(p, sizeof p, "%s/%s", dir, ent->d_name) >= (int)sizeof p || lstat(p, &st)) {
            rc = -1;
            continue;
        }
        /* lstat: a symbolic link is removed, never followed */
        if (S_ISDIR(st.st_mode) ? export_db_rmtree(p) : unlink(p)) rc = -1;
    }
    closedir(d);
    return rmdir(dir) || rc ? -1 : 0;
}
