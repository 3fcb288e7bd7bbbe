/* vector.c: POST /api/vector/get, a feature's steering vector. A feature that stores its own
 * vector (Neuronpedia's saved vectors: hasVector) gets that one; an SAE feature gets its
 * decoder row W_dec[index] read straight from the SAE's weights file without loading the SAE,
 * the same vector steering adds (no decoder-norm fold; divided by norm_scaling_factor for
 * expected_average_only_in, as SAELens' from_pretrained folds it), with upstream's default
 * strength of 10. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/sae.h"   // defines: sae_file_decoder_row
#include "handlers/handlers.h"
#include "server/log.h"   // defines: log_error

static json_t *str_or_null(PGresult *res, int col)
{
    return PQgetisnull(res, 0, col) ? json_null() : json_string(PQgetvalue(res, 0, col));
}

void h_vector_get(http_req *r)
{
    np_ref ref;
    if (np_ref_or_reply(r, http_json(r), "", &ref)) return;
    db_conn *c = http_db(r);
    if (!c) return;
    PGresult *res = db_exec(c, DB_VECTOR_GET, (const char *const[]){ref.model, ref.layer, ref.index});
    if (db_kind(res) != DB_OK) {
        http_reply_db_error(r, res, "reading the SAE");
        PQclear(res);
        return;
    }
    if (PQntuples(res) == 0) {
        PQclear(res);
        np_reply_not_found(r);
        return;
    }
    json_t *v = json_pack("{s:s,s:s,s:s}", "modelId", ref.model, "layer", ref.layer, "index", ref.index);
    json_object_set_new(v, "hookName", json_string(PQgetvalue(res, 0, 1)));
    size_t flags = JSON_COMPACT;
    int stored = !strcmp(PQgetvalue(res, 0, 3), "t") && PQgetlength(res, 0, 4) > 2; /* hasVector, vector not [] */
    if (stored) {
        json_object_set_new(v, "vectorLabel", str_or_null(res, 5));
        json_object_set_new(v, "vectorDefaultSteerStrength",
                            PQgetisnull(res, 0, 6) ? json_null() : json_real(strtod(PQgetvalue(res, 0, 6), NULL)));
        json_object_set_new(v, "vector", json_loads(PQgetvalue(res, 0, 4), 0, NULL));
    } else {
        float *row = NULL;
        int n = 0;
        char err[600];
        int rc = atoll(ref.index) < atoll(PQgetvalue(res, 0, 2))
                     ? sae_file_decoder_row(PQgetvalue(res, 0, 0), atoll(ref.index), &row, &n, err, sizeof err)
                     : 1;
        if (rc) {
            json_decref(v);
            PQclear(res);
            if (rc > 0) {
                np_reply_not_found(r);
            } else {
                log_error("vector %s/%s/%s: %s [%s]", ref.model, ref.layer, ref.index, err, http_request_id(r));
                http_reply_error(r, 500, "internal", "the SAE's weights could not be read (request id %s)",
                                 http_request_id(r));
            }
            return;
        }
        json_t *a = json_array();
        for (int i = 0; i < n; i++) json_array_append_new(a, json_real(row[i]));
        free(row);
        json_object_set_new(v, "vectorLabel", json_null());
        json_object_set_new(v, "vectorDefaultSteerStrength", json_real(10));
        json_object_set_new(v, "vector", a);
        flags |= JSON_REAL_PRECISION(9); /* float32 values: 9 digits round-trip exactly */
    }
    json_object_set_new(v, "creatorId", str_or_null(res, 7));
    json_object_set_new(v, "createdAt", str_or_null(res, 8));
    PQclear(res);
    json_t *body = json_pack("{s:o}", "vector", v);
    char *s = json_dumps(body, flags);
    json_decref(body);
    if (s) reply_json_text(r, 200, s);
    else http_reply_error(r, 500, "internal", "out of memory");
    free(s);
}
