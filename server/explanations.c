/* explanations.c: see explanations.h. The import reads lines, validates each one here (so
 * that an error can name its line) and sends them to PostgreSQL in batches of JSON rows; the
 * export pages through the SAE's index range. Neither builds SQL: the statements are
 * DB_EXPLANATION_* in db/statements.c. */
#include "server/explanations.h"

#include <errno.h>     // defines: errno
#include <fcntl.h>     // defines: open, O_RDONLY
#include <jansson.h>   // defines: json_loadb, json_dumps
#include <stdarg.h>    // defines: va_list
#include <stdio.h>     // defines: snprintf, fdopen, fwrite
#include <stdlib.h>    // defines: malloc, realloc, atoll
#include <string.h>    // defines: strlen, strcmp, strspn
#include <unistd.h>    // defines: close, dup
#include <zlib.h>      // defines: gzdopen, gzgets, gzerror

#include "server/log.h"  // defines: log_error

int expl_index_canon(const char *s, char out[16])
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 15 || strspn(s, "0123456789") != n) return -1;
    while (n > 1 && *s == '0') { /* "007" names feature 7 */
        s++;
        n--;
    }
    if (n > 9) return -1; /* the features table's bound */
    memcpy(out, s, n + 1);
    return 0;
}

/* ---- import ---- */

typedef struct imp {
    db_conn *c;
    const char *label;
    long long line;
    json_t *rows;
    long long first_line;   /* of the rows batched */
    expl_import_stats *st;
    svc_err *e;
} imp;

static int line_err(imp *x, const char *code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int line_err(imp *x, const char *code, const char *fmt, ...)
{
    char m[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    return svc_fail(x->e, SVC_INVALID, code, "%s:%lld: %s", x->label, x->line, m);
}

/* Copies key k from o to row when present and not null, checking its JSON type. */
static int copy_opt(imp *x, json_t *o, json_t *row, const char *k, json_type want)
{
    json_t *v = json_object_get(o, k);
    if (!v || json_is_null(v)) return 0;
    int ok = want == JSON_REAL ? json_is_number(v) : json_typeof(v) == want;
    if (!ok)
        return line_err(x, "invalid_line", "%s: expected %s", k,
                        want == JSON_STRING ? "a string" : want == JSON_INTEGER ? "an integer" : want == JSON_REAL ? "a number" : "an array");
    json_object_set(row, k, v);
    return 0;
}

/* A line's scores: ExplanationScore objects; jsonDetails may be a string or any JSON value. */
static int copy_scores(imp *x, json_t *o, json_t *row)
{
    json_t *a = json_object_get(o, "scores");
    if (!a || json_is_null(a)) return 0;
    if (!json_is_array(a) || json_array_size(a) > 1000) return line_err(x, "invalid_line", "scores: expected an array of at most 1000 scores");
    json_t *out = json_array();
    size_t i;
    json_t *s;
    json_array_foreach(a, i, s) {
        json_t *v = json_object_get(s, "value"), *t = json_object_get(s, "explanationScoreTypeName"),
               *m = json_object_get(s, "explanationScoreModelName"), *d = json_object_get(s, "jsonDetails"),
               *by = json_object_get(s, "initiatedByUserId");
        if (!json_is_object(s) || !json_is_number(v) || !json_is_string(t) || !json_is_string(m) ||
            (by && !json_is_null(by) && !json_is_string(by))) {
            json_decref(out);
            return line_err(x, "invalid_line",
                            "scores[%zu]: expected {value: number, explanationScoreTypeName: string, explanationScoreModelName: string}", i);
        }
        json_t *sc = json_pack("{s:O,s:O,s:O}", "value", v, "explanationScoreTypeName", t, "explanationScoreModelName", m);
        if (by && json_is_string(by)) json_object_set(sc, "initiatedByUserId", by);
        if (d && !json_is_null(d)) {
            char *txt = json_is_string(d) ? NULL : json_dumps(d, JSON_COMPACT | JSON_ENCODE_ANY);
            json_object_set_new(sc, "jsonDetails", txt ? json_string(txt) : json_copy(d));
            free(txt);
        }
        json_array_append_new(out, sc);
    }
    json_object_set_new(row, "scores", out);
    return 0;
}

/* One line: validated into a row of x->rows, or an error naming the line. */
static int parse_line(imp *x, const char *buf, size_t len)
{
    json_error_t je;
    json_t *o = json_loadb(buf, len, 0, &je);
    if (!o) return line_err(x, "invalid_line", "malformed JSON at column %d: %s", je.column, je.text);
    int rc = -1;
    json_t *row = json_object();
    const char *model = json_string_value(json_object_get(o, "modelId"));
    json_t *lv = json_object_get(o, "layer");
    if (!lv || json_is_null(lv)) lv = json_object_get(o, "source");
    const char *layer = json_string_value(lv), *desc = json_string_value(json_object_get(o, "description"));
    json_t *iv = json_object_get(o, "index");
    char idx[16], num[24];
    if (json_is_integer(iv) && json_integer_value(iv) >= 0) {
        snprintf(num, sizeof num, "%lld", (long long)json_integer_value(iv));
    } else {
        snprintf(num, sizeof num, "%s", json_is_string(iv) ? json_string_value(iv) : "-");
    }
    if (!json_is_object(o)) line_err(x, "invalid_line", "expected a JSON object (one Explanation row)");
    else if (!model || !*model) line_err(x, "invalid_line", "modelId: required string");
    else if (!layer || !*layer) line_err(x, "invalid_line", "layer: required string (the SAE id)");
    else if (expl_index_canon(num, idx)) line_err(x, "invalid_line", "index: expected a feature index (an integer or its decimal string)");
    else if (!desc) line_err(x, "invalid_line", "description: required string");
    else {
        json_object_set_new(row, "line", json_integer(x->line));
        json_object_set_new(row, "modelId", json_string(model));
        json_object_set_new(row, "layer", json_string(layer));
        json_object_set_new(row, "index", json_string(idx));
        json_object_set_new(row, "description", json_string(desc));
        static const char *const strs[] = {"id", "authorId", "triggeredByUserId", "typeName", "explanationModelName",
                                           "notes", "createdAt"};
        static const char *const nums[] = {"scoreV1", "scoreV2", "umap_x", "umap_y", "umap_log_feature_sparsity"};
        rc = 0;
        for (size_t i = 0; rc == 0 && i < sizeof strs / sizeof *strs; i++) rc = copy_opt(x, o, row, strs[i], JSON_STRING);
        for (size_t i = 0; rc == 0 && i < sizeof nums / sizeof *nums; i++) rc = copy_opt(x, o, row, nums[i], JSON_REAL);
        if (rc == 0) rc = copy_opt(x, o, row, "umap_cluster", JSON_INTEGER);
        if (rc == 0 && json_is_string(json_object_get(o, "id")) && !*json_string_value(json_object_get(o, "id")))
            rc = line_err(x, "invalid_line", "id: expected a non-empty string");
        if (rc == 0) rc = copy_scores(x, o, row);
    }
    json_decref(o);
    if (rc == 0) {
        if (json_array_size(x->rows) == 0) x->first_line = x->line;
        json_array_append(x->rows, row);
    }
    json_decref(row);
    return rc;
}

static int flush(imp *x)
{
    if (json_array_size(x->rows) == 0) return 0;
    char *text = json_dumps(x->rows, JSON_COMPACT);
    long long last = json_integer_value(json_object_get(json_array_get(x->rows, json_array_size(x->rows) - 1), "line"));
    json_array_clear(x->rows);
    if (!text) return svc_fail(x->e, SVC_INTERNAL, "internal", "out of memory");
    int rc = 0;
    PGresult *r = db_exec(x->c, DB_EXPLANATION_IMPORT_MISSING, (const char *const[]){text});
    if (db_kind(r) != DB_OK) {
        rc = (registry_db_err(x->e, r, "checking the features"), -1);
    } else if (PQntuples(r) > 0) {
        rc = svc_fail(x->e, SVC_INVALID, "unknown_feature",
                    "%s:%s: feature %s/%s/%s does not exist; generate or import its dashboards first", x->label,
                    PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2), PQgetvalue(r, 0, 3));
    }
    PQclear(r);
    if (rc == 0) {
        r = db_exec(x->c, DB_EXPLANATION_IMPORT_UPSERT, (const char *const[]){text});
        if (db_kind(r) == DB_INVALID) {
            char m[300];
            rc = svc_fail(x->e, SVC_INVALID, "invalid_value", "%s:%lld-%lld: the database rejected a value: %s", x->label,
                        x->first_line, last, db_errmsg(r, m, sizeof m));
        } else if (db_kind(r) != DB_OK) {
            rc = (registry_db_err(x->e, r, "storing explanations"), -1);
        } else {
            x->st->inserted += atoll(PQgetvalue(r, 0, 0));
            x->st->updated += atoll(PQgetvalue(r, 0, 1));
        }
        PQclear(r);
    }
    free(text);
    return rc;
}

/* Reads one line into *buf (without the newline). 1 = a line, 0 = end, -1 = error. */
static int read_line(imp *x, gzFile g, char **buf, size_t *cap, size_t *len)
{
    *len = 0;
    for (;;) {
        if (*cap - *len < 2) {
            if (*cap >= (size_t)EXPL_IMPORT_MAX_LINE) {
                x->line++;
                return line_err(x, "invalid_line", "line longer than %d bytes", EXPL_IMPORT_MAX_LINE);
            }
            char *b = realloc(*buf, *cap * 2);
            if (!b) return svc_fail(x->e, SVC_INTERNAL, "internal", "out of memory");
            *buf = b;
            *cap *= 2;
        }
        if (!gzgets(g, *buf + *len, (int)(*cap - *len))) {
            int zerr;
            const char *m = gzerror(g, &zerr);
            if (zerr != Z_OK && zerr != Z_BUF_ERROR)
                return svc_fail(x->e, SVC_INVALID, "invalid_file", "%s: unreadable after line %lld (%s)", x->label, x->line,
                              zerr == Z_ERRNO ? strerror(errno) : m);
            if (*len == 0) return 0;
            break; /* a last line without a newline */
        }
        *len += strlen(*buf + *len);
        if (*len && (*buf)[*len - 1] == '\n') {
            (*buf)[--*len] = '\0';
            break;
        }
    }
    x->line++;
    if (*len && (*buf)[*len - 1] == '\r') (*buf)[--*len] = '\0';
    return 1;
}

int expl_import_fd(db_conn *c, int fd, const char *label, expl_import_stats *st, svc_err *e)
{
    memset(st, 0, sizeof *st);
    gzFile g = gzdopen(fd, "rb"); /* reads plain files as they are */
    if (!g) {
        close(fd);
        return svc_fail(e, SVC_INTERNAL, "internal", "%s: cannot read", label);
    }
    gzbuffer(g, 1 << 16);
    imp x = {.c = c, .label = label, .rows = json_array(), .st = st, .e = e};
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    PGresult *r = db_exec(c, DB_BEGIN, NULL);
    int rc = db_kind(r) == DB_OK ? 0 : (registry_db_err(e, r, "starting the import"), -1);
    PQclear(r);
    if (!buf && rc == 0) rc = svc_fail(e, SVC_INTERNAL, "internal", "out of memory");
    int k;
    while (rc == 0 && (k = read_line(&x, g, &buf, &cap, &len)) != 0) {
        if (k < 0) {
            rc = -1;
            break;
        }
        if (strspn(buf, " \t") == len) continue; /* blank line */
        st->rows++;
        rc = parse_line(&x, buf, len);
        if (rc == 0 && json_array_size(x.rows) >= EXPL_IMPORT_BATCH) rc = flush(&x);
    }
    st->lines = x.line;
    if (rc == 0) rc = flush(&x);
    if (rc == 0) {
        r = db_exec(c, DB_COMMIT, NULL);
        if (db_kind(r) != DB_OK) rc = (registry_db_err(e, r, "finishing the import"), -1);
        PQclear(r);
    }
    if (rc) PQclear(db_exec_script(c, "ROLLBACK"));
    else st->unchanged = st->rows - st->inserted - st->updated;
    json_decref(x.rows);
    free(buf);
    gzclose(g);
    return rc;
}

int expl_import_path(db_conn *c, const char *path, expl_import_stats *st, svc_err *e)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        memset(st, 0, sizeof *st);
        return svc_fail(e, SVC_NOT_FOUND, "not_found", "%s: %s", path, strerror(errno));
    }
    return expl_import_fd(c, fd, path, st, e);
}

/* ---- export ---- */

int expl_export_json(db_conn *c, const char *model, const char *sae, int fd, size_t *bytes, svc_err *e)
{
    *bytes = 0;
    e->kind = SVC_OK;
    if (!registry_id_valid(model) || !registry_id_valid(sae))
        return svc_fail(e, SVC_NOT_FOUND, "not_found", "SAE '%s' of model '%s' not found", sae, model);
    int dfd = dup(fd);
    FILE *f = dfd >= 0 ? fdopen(dfd, "w") : NULL;
    if (!f) {
        if (dfd >= 0) close(dfd);
        return svc_fail(e, SVC_INTERNAL, "internal", "cannot write the export");
    }
    /* One snapshot: a job or an import committing meanwhile cannot mix rows. */
    PGresult *r = db_exec(c, DB_EXPORT_BEGIN, NULL);
    int rc = db_kind(r) == DB_OK ? 0 : (registry_db_err(e, r, "starting the export"), -1);
    PQclear(r);
    long long lo = 0, hi = -1;
    if (rc == 0) {
        r = db_exec(c, DB_EXPLANATION_EXPORT_RANGE, (const char *const[]){model, sae});
        if (db_kind(r) != DB_OK) rc = (registry_db_err(e, r, "reading the SAE"), -1);
        else if (PQntuples(r) == 0) rc = svc_fail(e, SVC_NOT_FOUND, "not_found", "SAE '%s' of model '%s' not found", sae, model);
        else if (!PQgetisnull(r, 0, 0)) {
            lo = atoll(PQgetvalue(r, 0, 0));
            hi = atoll(PQgetvalue(r, 0, 1));
        }
        PQclear(r);
    }
    size_t n = 0;
    long long rows = 0;
    if (rc == 0 && fputc('[', f) == EOF) rc = -1;
    for (long long a = lo; rc == 0 && a <= hi; a += EXPL_EXPORT_RANGE) {
        char sa[24], sb[24];
        snprintf(sa, sizeof sa, "%lld", a);
        snprintf(sb, sizeof sb, "%lld", a + EXPL_EXPORT_RANGE);
        r = db_exec(c, DB_EXPLANATION_EXPORT_ROWS, (const char *const[]){model, sae, sa, sb});
        if (db_kind(r) != DB_OK) {
            rc = (registry_db_err(e, r, "reading explanations"), -1);
        } else {
            for (int i = 0; rc == 0 && i < PQntuples(r); i++, rows++) {
                size_t l = (size_t)PQgetlength(r, i, 0);
                if ((rows && fputc(',', f) == EOF) || fwrite(PQgetvalue(r, i, 0), 1, l, f) != l) rc = -1;
                n += l + (rows ? 1 : 0);
            }
        }
        PQclear(r);
    }
    if (rc == 0 && fputs("]\n", f) == EOF) rc = -1;
    if (fclose(f) && rc == 0) rc = -1;
    if (rc == -1 && e->kind == SVC_OK) {
        log_error("explanation export %s/%s: write failed: %s", model, sae, strerror(errno));
        svc_fail(e, SVC_INTERNAL, "internal", "the export could not be written (see the server log)");
    }
    if (rc == 0) {
        r = db_exec(c, DB_COMMIT, NULL);
        if (db_kind(r) != DB_OK) rc = (registry_db_err(e, r, "finishing the export"), -1);
        PQclear(r);
    }
    if (rc) PQclear(db_exec_script(c, "ROLLBACK"));
    *bytes = n + 3;
    return rc;
}
