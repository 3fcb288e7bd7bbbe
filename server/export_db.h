/* export_db.h: exports the dashboards stored in PostgreSQL (features, activations,
 * explanations of one SAE) in the two layouts engine/dash_export.h writes from a run, so the
 * tools that read those read this too. Shared by `saed export` and GET /api/export/...
 *
 *  - neuronpedia: release.jsonl, model.jsonl, sourceset.jsonl, source.jsonl (one row each,
 *    from the models / source_sets / saes rows), features/batch-N.jsonl.gz (Neuron rows),
 *    activations/batch-N.jsonl.gz (Activation rows), explanations/batch-N.jsonl.gz
 *    (Explanation rows; a batch without explanations has no file, so explanations/ may be
 *    empty). Batch N = the numeric index range [1024N, 1024N+1023]; a range with no stored
 *    feature has no files. Keys are Neuronpedia's column names; saed's own columns ("indexInt",
 *    "jobId", "descriptionTsv", paths) are left out.
 *  - saedashboard: run_settings.json and batch-N.json (features [N·B, N·B+B−1], B = 128 by
 *    default) in SAEDashboard's NeuronpediaRunner shape, the Neuron columns renamed back. A
 *    window stored with "<|endoftext|>" first loses position 0 (qualifying_token_index − 1), as
 *    SAEDashboard's windows and dash_export_saedashboard do.
 *
 * PostgreSQL builds every row (row_to_json over the columns); this file only sequences the
 * ranges and writes files, so memory holds one range at a time (at most 1024 features' rows,
 * activations 128 features at a time). Everything is read in one REPEATABLE READ snapshot.
 * Output is deterministic: fixed ordering, gzip without timestamps, no time but the stored
 * createdAt/updatedAt values. Files are written as NAME.tmp and renamed.
 *
 * Compared with the file writers on the same run: examples come in the job's order (top group,
 * then intervals from the highest down, by value) except that two examples whose values tie
 * after the stored 5-decimal rounding are ordered by prompt and position (the job ordered them
 * by the unrounded value); unrounded fractions carry 17 significant digits as stored (the file
 * writers print 15); rows carry every Neuronpedia column the table has (umap_*, zQIndices...),
 * and the metadata rows take the stored models/source_sets/saes values. */
#ifndef SAED_EXPORT_DB_H
#define SAED_EXPORT_DB_H

#include "db/db.h"            // defines: db_conn
#include "server/registry.h"  // defines: svc_err

typedef enum export_db_format { EXPORT_DB_NEURONPEDIA, EXPORT_DB_SAEDASHBOARD } export_db_format;

#define EXPORT_DB_SD_BATCH 128      /* SAEDashboard's n_features_at_a_time default */
#define EXPORT_DB_SD_BATCH_MAX 1024 /* largest batch accepted: bounds one range's rows */

/* "neuronpedia" or "saedashboard" (NULL = neuronpedia). 0, or -1 when unknown. */
int export_db_format_parse(const char *s, export_db_format *f);

/* Writes the stored dashboards of SAE (model_id, sae_id) into dir (created when missing).
 * features_per_batch applies to saedashboard (0 = 128; 1..EXPORT_DB_SD_BATCH_MAX).
 * 0, or -1 with e: SVC_NOT_FOUND (unknown SAE), SVC_CONFLICT (no dashboards yet),
 * SVC_INVALID, SVC_UNAVAILABLE, SVC_INTERNAL (details logged, no paths in e). */
int export_db_write(db_conn *c, const char *model_id, const char *sae_id, export_db_format fmt, int features_per_batch,
                    const char *dir, svc_err *e);

/* Removes dir and everything under it (an export's scratch directory). 0 or -1. */
int export_db_rmtree(const char *dir);

#endif
