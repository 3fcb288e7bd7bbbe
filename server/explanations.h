/* explanations.h: bulk explanation I/O shared by the API and the CLI.
 *
 *  - import: Neuronpedia explanation batch files (explanations/batch-N.jsonl[.gz], one
 *    Explanation row per line, as `saed export` and Neuronpedia's exporter write them; the
 *    `embedding` column is ignored). Used by `saed import-explanations FILE` and
 *    POST /api/explanation/import. The whole file is one transaction: any bad line aborts it
 *    and the error names FILE:LINE. Re-importing a file changes nothing: rows are keyed by
 *    their `id`, and a line without one gets an id derived from its feature, description,
 *    typeName and explanationModelName. A line may carry saed's `scores` array
 *    (ExplanationScore objects), which then replaces the explanation's scores.
 *  - export: GET /api/explanation/export, the bare JSON array of an SAE's explanations
 *    (with their scores), read one index range at a time in one snapshot and written to a
 *    file descriptor, so memory stays bounded whatever the SAE's size.
 *
 * Knows SQL (db/) and files, not HTTP. */
#ifndef SAED_EXPLANATIONS_H
#define SAED_EXPLANATIONS_H

#include <stddef.h>

#include "db/db.h"            // defines: db_conn
#include "server/registry.h"  // defines: svc_err

#define EXPL_IMPORT_BATCH 500          /* lines per statement */
#define EXPL_IMPORT_MAX_LINE (16 << 20) /* longest accepted line, bytes */
#define EXPL_EXPORT_RANGE 4096         /* feature indices per export query */

typedef struct expl_import_stats {
    long long lines;      /* lines read, blank ones included */
    long long rows;       /* explanation lines */
    long long inserted;   /* new explanations */
    long long updated;    /* existing explanations whose values changed */
    long long unchanged;  /* rows - inserted - updated (already there as they are) */
} expl_import_stats;

/* Imports fd (plain or gzip'd JSON lines; read from its current offset, closed here), naming
 * it label in errors. 0, or -1 with e: SVC_INVALID ("label:LINE: ..." for a bad line or a
 * feature that does not exist), SVC_UNAVAILABLE, SVC_INTERNAL. */
int expl_import_fd(db_conn *c, int fd, const char *label, expl_import_stats *st, svc_err *e);
/* The same for a path (label = the path). */
int expl_import_path(db_conn *c, const char *path, expl_import_stats *st, svc_err *e);

/* Writes the explanations of SAE (model, sae) to fd as one JSON array:
 * [{id, modelId, layer, index, description, typeName, explanationModelName, authorId,
 *   scoreV1, scoreV2, createdAt, scores}], in index order. *bytes = bytes written.
 * 0, or -1 with e: SVC_NOT_FOUND (unknown SAE), SVC_UNAVAILABLE, SVC_INTERNAL. */
int expl_export_json(db_conn *c, const char *model, const char *sae, int fd, size_t *bytes, svc_err *e);

/* The canonical decimal string of a feature index given as digits ("7", "007": "7"; no
 * sign, at most 9 significant digits, as the features table allows) into out[16].
 * 0, or -1 when s is not such a string. */
int expl_index_canon(const char *s, char out[16]);

#endif
