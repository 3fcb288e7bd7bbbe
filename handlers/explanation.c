/* explanation.c: Neuronpedia's explanation routes. new stores one explanation (upstream's
 * route is inactive; saed's works), export returns an SAE's explanations as the bare JSON
 * array older tutorials load, search / search-model / search-all rank descriptions with
 * PostgreSQL full-text search (upstream embeds them; see DB_EXPLANATION_SEARCH), and import
 * loads Neuronpedia explanation batch files (server/explanations.h, as `saed
 * import-explanations`). Writes drop the feature cache's entries for what they touched. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "handlers/handlers.h"
#include "server/explanations.h"  // defines: expl_import_fd, expl_export_json
#include "server/fcache.h"        // defines: fcache_invalidate
#include "server/paths.h"         // defines: paths_confine

#define NP_SEARCH_PAGE 20          /* upstream's MAX_EXPLANATION_SEARCH_RESULTS */
#define NP_QUERY_MIN 3             /* upstream: query.min(3) */
#define NP_QUERY_MAX 1000
#define NP_LAYERS_MAX 256
#define NP_OFFSET_MAX 100000
#define NP_DESCRIPTION_MAX 10000
#define NP_NAME_MAX 256
#define NP_SCORES_MAX 100

/* An optional string field of at most max bytes: 0 (*out NULL when absent), or -1 replied. */
static int opt_str(http_req *r, json_t *o, const char *k, size_t max, const char **out)
{
    json_t *v = json_object_get(o, k);
    *out = NULL;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_string(v) || json_string_length(v) > max) {
        http_reply_error(r, 400, "invalid_field", "%s: expected a string of at most %zu bytes", k, max);
        return -1;
    }
    *out = json_string_value(v);
    return 0;
}

static int opt_num(http_req *r, json_t *o, const char *k, char *buf, size_t n, const char **out)
{
    json_t *v = json_object_get(o, k);
    *out = NULL;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_number(v)) {
        http_reply_error(r, 400, "invalid_field", "%s: expected a number", k);
        return -1;
    }
    snprintf(buf, n, "%.17g", json_number_value(v));
    *out = buf;
    return 0;
}

/* scores: [{value, explanationScoreTypeName, explanationScoreModelName, jsonDetails?}] as the
 * JSON text the statement takes (jsonDetails stored as a string, as upstream does). */
static char *scores_or_reply(http_req *r, json_t *a)
{
    if (!a || json_is_null(a)) return strdup("[]");
    if (!json_is_array(a) || json_array_size(a) > NP_SCORES_MAX) {
        http_reply_error(r, 400, "invalid_field", "scores: expected an array of at most %d scores", NP_SCORES_MAX);
        return NULL;
    }
    json_t *out = json_array();
    size_t i;
    json_t *s;
    json_array_foreach(a, i, s) {
        json_t *v = json_object_get(s, "value"), *t = json_object_get(s, "explanationScoreTypeName"),
               *m = json_object_get(s, "explanationScoreModelName"), *d = json_object_get(s, "jsonDetails");
        if (!json_is_number(v) || !json_is_string(t) || !json_is_string(m) || json_string_length(t) > NP_NAME_MAX ||
            json_string_length(m) > NP_NAME_MAX) {
            json_decref(out);
            http_reply_error(r, 400, "invalid_field",
                             "scores[%zu]: expected {value: number, explanationScoreTypeName: string, explanationScoreModelName: string}", i);
            return NULL;
        }
        json_t *o = json_pack("{s:O,s:O,s:O}", "value", v, "explanationScoreTypeName", t, "explanationScoreModelName", m);
        if (d && !json_is_null(d)) {
            char *txt = json_is_string(d) ? NULL : json_dumps(d, JSON_COMPACT | JSON_ENCODE_ANY);
            json_object_set_new(o, "jsonDetails", txt ? json_string(txt) : json_copy(d));
            free(txt);
        }
        json_array_append_new(out, o);
    }
    char *txt = json_dumps(out, JSON_COMPACT);
    json_decref(out);
    if (!txt) http_reply_error(r, 500, "internal", "out of memory");
    return txt;
}

void h_explanation_new(http_req *r)
{
    json_t *body = http_json(r);
    np_ref ref;
    if (np_ref_or_reply(r, body, "", &ref)) return;
    json_t *dv = json_object_get(body, "description");
    if (!json_is_string(dv) || json_string_length(dv) == 0 || json_string_length(dv) > NP_DESCRIPTION_MAX) {
        http_reply_error(r, 400, "invalid_field", "description: required non-empty string of at most %d bytes",
                         NP_DESCRIPTION_MAX);
        return;
    }
    const char *type, *emodel, *author, *s1, *s2;
    char b1[40], b2[40];
    if (opt_str(r, body, "typeName", NP_NAME_MAX, &type) || opt_str(r, body, "explanationModelName", NP_NAME_MAX, &emodel) ||
        opt_str(r, body, "authorId", NP_NAME_MAX, &author) || opt_num(r, body, "scoreV1", b1, sizeof b1, &s1) ||
        opt_num(r, body, "scoreV2", b2, sizeof b2, &s2))
        return;
    char *scores = scores_or_reply(r, json_object_get(body, "scores"));
    if (!scores) return;
    db_conn *c = http_db(r);
    if (!c) {
        free(scores);
        return;
    }
    PGresult *res = db_exec(c, DB_EXPLANATION_NEW, (const char *const[]){ref.model, ref.layer, ref.index, json_string_value(dv),
                                                                         type, emodel, author, s1, s2, scores});
    free(scores);
    if (db_kind(res) != DB_OK) {
        http_reply_db_error(r, res, "storing the explanation");
    } else if (PQntuples(res) == 0) {
        np_reply_not_found(r);
    } else {
        fcache_invalidate(http_app(r)->fcache, ref.model, ref.layer);
        size_t n = (size_t)PQgetlength(res, 0, 0);
        char *out = malloc(n + 20);
        if (!out) {
            http_reply_error(r, 500, "internal", "out of memory");
        } else {
            snprintf(out, n + 20, "{\"explanation\":%s}", PQgetvalue(res, 0, 0));
            reply_json_text(r, 201, out);
            free(out);
        }
    }
    PQclear(res);
}

void h_explanation_export(http_req *r)
{
    const char *model = http_query(r, "modelId"), *sae = http_query(r, "saeId");
    if (!model || !*model || !sae || !*sae) {
        http_reply_error(r, 400, "invalid_field", "%s: required query parameter", !model || !*model ? "modelId" : "saeId");
        return;
    }
    db_conn *c = http_db(r);
    if (!c) return;
    /* Written to an unlinked temporary file that MHD streams from: memory stays bounded. */
    char tmp[] = "/tmp/saed-explanations-XXXXXX";
    int fd = mkstemp(tmp);
    if (fd < 0) {
        http_reply_error(r, 500, "internal", "cannot create a temporary file");
        return;
    }
    unlink(tmp);
    size_t bytes;
    svc_err e;
    struct stat st;
    if (expl_export_json(c, model, sae, fd, &bytes, &e)) {
        close(fd);
        if (e.kind == SVC_NOT_FOUND) np_reply_not_found(r);
        else reply_svc(r, &e);
        return;
    }
    if (fstat(fd, &st)) {
        close(fd);
        http_reply_error(r, 500, "internal", "cannot read the export back");
        return;
    }
    http_reply_fd(r, 200, "application/json", fd, (size_t)st.st_size);
}

/* ---- search ---- */

/* {"a","b"}: a PostgreSQL text[] literal, each element quoted and escaped. */
static char *pg_text_array(json_t *a)
{
    size_t cap = 3;
    for (size_t i = 0; i < json_array_size(a); i++) cap += 2 * json_string_length(json_array_get(a, i)) + 3;
    char *s = malloc(cap), *p = s;
    if (!s) return NULL;
    *p++ = '{';
    for (size_t i = 0; i < json_array_size(a); i++) {
        const char *v = json_string_value(json_array_get(a, i));
        if (i) *p++ = ',';
        *p++ = '"';
        for (; *v; v++) {
            if (*v == '"' || *v == '\\') *p++ = '\\';
            *p++ = *v;
        }
        *p++ = '"';
    }
    *p++ = '}';
    *p = '\0';
    return s;
}

enum { SEARCH_ALL, SEARCH_MODEL, SEARCH_LAYERS };

static void search(http_req *r, int scope)
{
    json_t *body = http_json(r);
    if (!json_is_object(body)) {
        http_reply_error(r, 400, "invalid_body", "request body must be a JSON object");
        return;
    }
    json_t *qv = json_object_get(body, "query"), *ov = json_object_get(body, "offset"), *lv = json_object_get(body, "layers");
    const char *model = json_string_value(json_object_get(body, "modelId"));
    if (!json_is_string(qv) || json_string_length(qv) < NP_QUERY_MIN || json_string_length(qv) > NP_QUERY_MAX) {
        http_reply_error(r, 400, "invalid_field", "query: required string of %d to %d characters", NP_QUERY_MIN, NP_QUERY_MAX);
        return;
    }
    if (ov && !json_is_null(ov) && (!json_is_integer(ov) || json_integer_value(ov) < 0 || json_integer_value(ov) > NP_OFFSET_MAX)) {
        http_reply_error(r, 400, "invalid_field", "offset: expected an integer in [0, %d]", NP_OFFSET_MAX);
        return;
    }
    if (scope != SEARCH_ALL && (!model || !*model)) {
        http_reply_error(r, 400, "invalid_field", "modelId: required string");
        return;
    }
    if (scope == SEARCH_LAYERS) {
        int ok = json_is_array(lv) && json_array_size(lv) >= 1 && json_array_size(lv) <= NP_LAYERS_MAX;
        for (size_t i = 0; ok && i < json_array_size(lv); i++) ok = json_is_string(json_array_get(lv, i));
        if (!ok) {
            http_reply_error(r, 400, "invalid_field", "layers: required array of 1 to %d SAE ids (strings)", NP_LAYERS_MAX);
            return;
        }
    }
    long long offset = json_integer_value(ov);
    char off[24], page[8];
    snprintf(off, sizeof off, "%lld", offset);
    snprintf(page, sizeof page, "%d", NP_SEARCH_PAGE);
    char *layers = scope == SEARCH_LAYERS ? pg_text_array(lv) : NULL;
    if (scope == SEARCH_LAYERS && !layers) {
        http_reply_error(r, 500, "internal", "out of memory");
        return;
    }
    db_conn *c = http_db(r);
    if (!c) {
        free(layers);
        return;
    }
    PGresult *res = db_exec(c, DB_EXPLANATION_SEARCH, (const char *const[]){json_string_value(qv),
                                                                           scope == SEARCH_ALL ? NULL : model, layers, off, page});
    free(layers);
    if (db_kind(res) != DB_OK) {
        http_reply_db_error(r, res, "searching explanations");
        PQclear(res);
        return;
    }
    json_t *results = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    PQclear(res);
    if (!results) {
        http_reply_error(r, 500, "internal", "could not read the search results (request id %s)", http_request_id(r));
        return;
    }
    size_t n = json_array_size(results);
    json_t *req = json_pack("{s:O,s:I}", "query", qv, "offset", (json_int_t)offset);
    if (scope != SEARCH_ALL) json_object_set_new(req, "modelId", json_string(model));
    if (scope == SEARCH_LAYERS) json_object_set(req, "layers", lv);
    /* hasMore as upstream decides it: a full page came back. */
    int more = n == NP_SEARCH_PAGE;
    json_t *out = json_pack("{s:o,s:o,s:I,s:b}", "request", req, "results", results, "resultsCount", (json_int_t)n, "hasMore", more);
    if (more) json_object_set_new(out, "nextOffset", json_integer(offset + (json_int_t)n));
    http_reply_json(r, 200, out);
}

void h_explanation_search(http_req *r) { search(r, SEARCH_LAYERS); }
void h_explanation_search_model(http_req *r) { search(r, SEARCH_MODEL); }
void h_explanation_search_all(http_req *r) { search(r, SEARCH_ALL); }

/* ---- import ---- */

/* Content-Type without parameters equals t (case-insensitive). */
static int ctype_is(const char *ct, const char *t)
{
    if (!ct) return 0;
    while (*ct == ' ') ct++;
    size_t n = strcspn(ct, ";");
    while (n && ct[n - 1] == ' ') n--;
    return n == strlen(t) && !strncasecmp(ct, t, n);
}

void h_explanation_import(http_req *r)
{
    static const char *const file_types[] = {"application/x-ndjson", "application/jsonl", "application/jsonlines",
                                             "application/x-jsonlines", "application/gzip", "application/x-gzip",
                                             "application/octet-stream", "text/plain", "application/json"};
    const char *ct = http_header(r, "Content-Type");
    size_t len;
    const char *body = http_body(r, &len);
    int known = !ct;
    for (size_t i = 0; !known && i < sizeof file_types / sizeof *file_types; i++) known = ctype_is(ct, file_types[i]);
    if (!known) {
        http_reply_error(r, 415, "unsupported_media_type",
                         "Content-Type must be application/json ({\"path\": ...}) or the file itself (application/x-ndjson,"
                         " application/gzip), got '%s'", ct);
        return;
    }
    if (!body) {
        http_reply_error(r, 400, "invalid_body",
                         "request body is empty: send the explanation batch file (JSON lines, optionally gzip'd) or"
                         " {\"path\": FILE} for a file under SAED_DATA_ROOTS");
        return;
    }
    saed_app *app = http_app(r);
    /* {"path": ...} names a file on the server; anything else is the file itself. */
    json_t *j = ctype_is(ct, "application/json") ? json_loadb(body, len, 0, NULL) : NULL;
    const char *path = json_string_value(json_object_get(j, "path"));
    char real[4096], label[300];
    int fd = -1;
    if (path) {
        if (app->cfg->n_data_roots == 0 || paths_confine(app->cfg->data_roots, app->cfg->n_data_roots, path, real, sizeof real) ||
            (fd = open(real, O_RDONLY | O_CLOEXEC)) < 0) {
            http_reply_error(r, 403, "forbidden", "path: '%s' is not an existing file under SAED_DATA_ROOTS", path);
            json_decref(j);
            return;
        }
        snprintf(label, sizeof label, "%s", path);
    } else {
        const char *name = http_query(r, "name");
        snprintf(label, sizeof label, "%s", name && *name ? name : "body");
        char tmp[] = "/tmp/saed-import-XXXXXX";
        fd = mkstemp(tmp);
        if (fd >= 0) unlink(tmp);
        size_t off = 0;
        while (fd >= 0 && off < len) {
            ssize_t w = write(fd, body + off, len - off);
            if (w <= 0) {
                close(fd);
                fd = -1;
            } else {
                off += (size_t)w;
            }
        }
        if (fd < 0 || lseek(fd, 0, SEEK_SET) != 0) {
            if (fd >= 0) close(fd);
            json_decref(j);
            http_reply_error(r, 500, "internal", "cannot buffer the upload");
            return;
        }
    }
    json_decref(j);
    db_conn *c = http_db(r);
    if (!c) {
        close(fd);
        return;
    }
    expl_import_stats st;
    svc_err e;
    int rc = expl_import_fd(c, fd, label, &st, &e);
    /* Rows of any SAE may have changed: this process's cache drops everything now (other
     * processes hear it from the database). */
    if (rc == 0) fcache_invalidate(app->fcache, NULL, NULL);
    if (rc) {
        reply_svc(r, &e);
        return;
    }
    http_reply_json(r, 200, json_pack("{s:s,s:I,s:I,s:I,s:I,s:I}", "file", label, "lines", (json_int_t)st.lines,
                                      "explanations", (json_int_t)st.rows, "inserted", (json_int_t)st.inserted, "updated",
                                      (json_int_t)st.updated, "unchanged", (json_int_t)st.unchanged));
}
