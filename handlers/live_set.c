/* live_set.c: source sets for the searches (live.h): which SAEs of a model's set a request
 * covers, the token positions that rank features, and the engines the search runs on. Shared
 * by /api/search-all (search.c) and /v1/activation/all[-batch] (v1_all.c). */
#include <math.h>   // defines: floor
#include <stdio.h>  // defines: snprintf
#include <stdlib.h> // defines: qsort, free, atoi
#include <string.h> // defines: strcmp, strdup, memset

#include "handlers/handlers.h"
#include "handlers/live.h"

static int chosen(json_t *sel, const char *id)
{
    if (json_array_size(sel) == 0) return 1;
    for (size_t i = 0; i < json_array_size(sel); i++)
        if (!strcmp(id, json_string_value(json_array_get(sel, i)))) return 1;
    return 0;
}

int live_set_or_reply(http_req *r, const char *model_id, const char *set, json_t *sel, const char *sel_name,
                      live_set *out)
{
    memset(out, 0, sizeof *out);
    if (sel && !json_is_null(sel) && !json_is_array(sel)) {
        http_reply_error(r, 400, "invalid_field", "%s: must be an array of SAE ids ([] = the whole set)", sel_name);
        return -1;
    }
    for (size_t i = 0; i < json_array_size(sel); i++)
        if (!json_is_string(json_array_get(sel, i))) {
            http_reply_error(r, 400, "invalid_field", "%s[%zu]: must be an SAE id", sel_name, i);
            return -1;
        }
    db_conn *c = http_db(r);
    if (!c) return -1;
    PGresult *res = db_exec(c, DB_LIVE_SET_SAES, (const char *const[]){model_id, set});
    int rc = -1;
    if (db_kind(res) != DB_OK) {
        http_reply_db_error(r, res, "listing the source set");
        goto done;
    }
    const int rows = PQntuples(res);
    if (rows == 0) {
        rc = 1;
        goto done;
    }
    /* Every selected SAE must be in the set. */
    for (size_t i = 0; i < json_array_size(sel); i++) {
        const char *want = json_string_value(json_array_get(sel, i));
        int found = 0;
        for (int k = 0; k < rows && !found; k++) found = !strcmp(PQgetvalue(res, k, 0), want);
        if (!found) {
            http_reply_error(r, 400, "invalid_field", "%s[%zu]: '%s' is not an SAE of source set '%s'", sel_name, i, want,
                             set);
            goto done;
        }
    }
    int n = 0;
    for (int k = 0; k < rows; k++) n += chosen(sel, PQgetvalue(res, k, 0));
    if (n > LIVE_MAX_SAES) {
        http_reply_error(r, 400, "limit_exceeded",
                         "the search covers %d SAEs, more than the limit of %d per request; name fewer in %s", n,
                         LIVE_MAX_SAES, sel_name);
        goto done;
    }
    int oom = !(out->model_path = strdup(PQgetvalue(res, 0, 1)));
    out->max_tokens = live_max_tokens(r, atoi(PQgetvalue(res, 0, 4)));
    for (int k = 0; k < rows && !oom; k++) {
        if (!chosen(sel, PQgetvalue(res, k, 0))) continue;
        snprintf(out->saes[out->n].id, sizeof out->saes[0].id, "%s", PQgetvalue(res, k, 0));
        oom = !(out->saes[out->n++].path = strdup(PQgetvalue(res, k, 2)));
    }
    if (oom) http_reply_error(r, 500, "internal", "out of memory");
    else rc = 0;
done:
    PQclear(res);
    if (rc) live_set_free(out);
    return rc;
}

void live_set_free(live_set *s)
{
    free(s->model_path);
    for (int i = 0; i < s->n; i++) free(s->saes[i].path);
    memset(s, 0, sizeof *s);
}

static int int_cmp(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

int live_positions_or_reply(http_req *r, json_t *v, const char *field, int *pos)
{
    if (v && !json_is_null(v) && !json_is_array(v)) {
        http_reply_error(r, 400, "invalid_field", "%s: must be an array of token positions", field);
        return -1;
    }
    if (json_array_size(v) > LIVE_MAX_SORT) {
        http_reply_error(r, 400, "limit_exceeded", "%s: %zu entries, more than the limit of %d", field,
                         json_array_size(v), LIVE_MAX_SORT);
        return -1;
    }
    const int max_pos = http_app(r)->cfg->max_text_tokens - 1; /* no text has more tokens */
    int n = 0;
    for (size_t i = 0; i < json_array_size(v); i++) {
        json_t *e = json_array_get(v, i);
        double d = json_is_number(e) ? json_number_value(e) : -1;
        if (d > max_pos) { /* checked before converting: an int cannot hold every double */
            http_reply_error(r, 400, "limit_exceeded", "%s[%zu]: %g is more than the limit of %d (SAED_MAX_TEXT_TOKENS - 1)",
                             field, i, d, max_pos);
            return -1;
        }
        if (!(d >= 0) || d != floor(d)) {
            http_reply_error(r, 400, "invalid_field", "%s[%zu]: must be a token position (integer >= 0)", field, i);
            return -1;
        }
        pos[n++] = (int)d;
    }
    qsort(pos, (size_t)n, sizeof(int), int_cmp);
    return n;
}

int live_set_engines_or_reply(http_req *r, const live_set *set, const eng_ref **mr, const eng_ref **sr, sae **s)
{
    for (int i = 0; i < set->n; i++) sr[i] = NULL;
    if (!(*mr = live_model_or_reply(r, set->model_path))) return -1;
    for (int i = 0; i < set->n; i++) {
        if (!(sr[i] = live_sae_or_reply(r, set->saes[i].path))) return -1;
        s[i] = sr[i]->sae;
    }
    return 0;
}

void live_set_put(http_req *r, const live_set *set, const eng_ref *mr, const eng_ref **sr)
{
    engines *e = http_app(r)->engines;
    for (int i = 0; i < set->n; i++) engines_put(e, sr[i]);
    engines_put(e, mr);
}
