/* statements.c: every SQL statement of saed, prepared by name on first use per connection.
 * Parameters are always bound ($n), never spliced into the text. */
#include "db/statements.h"

const char db_migrations_bootstrap_sql[] =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version integer PRIMARY KEY,"
    " name text NOT NULL,"
    " checksum text NOT NULL,"
    " applied_at timestamptz NOT NULL DEFAULT now())";

/* The columns of a model as the API returns them (Neuronpedia Model names + saed's); wrapped
 * in row_to_json, which writes compact JSON in this order. */
#define MODEL_COLS                                                                           \
    "id, \"displayName\", \"displayNameShort\", architecture, layers, dimension,"               \
    " \"neuronsPerLayer\", \"contextSize\", \"vocabSize\", path, visibility, \"inferenceEnabled\"," \
    " to_char(\"createdAt\" AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS \"createdAt\","  \
    " to_char(\"updatedAt\" AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS \"updatedAt\""

/* An SAE (Neuronpedia "Source") as the API returns it. */
#define SAE_COLS                                                                              \
    "\"modelId\", id, \"setName\", \"hookName\", layer, architecture, \"dIn\", \"dSae\", path,"       \
    " \"hfRepoId\", \"hfFolderId\", notes AS description, dataset, visibility, \"inferenceEnabled\","    \
    " \"hasDashboards\", \"saelensConfig\","                                                        \
    " to_char(\"createdAt\" AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS \"createdAt\""

const db_statement db_statements[DB_N_STMTS] = {
    [DB_PING] = {"ping", "SELECT 1", 0, 1},
    [DB_SCHEMA_VERSION] = {"schema_version",
                           "SELECT coalesce(max(version), 0) FROM schema_migrations", 0, 1},
    /* One migrator at a time per database; the key is arbitrary but fixed. */
    [DB_MIG_LOCK] = {"mig_lock", "SELECT pg_advisory_lock(7300112001)", 0, 0},
    [DB_MIG_UNLOCK] = {"mig_unlock", "SELECT pg_advisory_unlock(7300112001)", 0, 0},
    [DB_MIG_APPLIED] = {"mig_applied",
                        "SELECT version, name, checksum FROM schema_migrations ORDER BY version", 0, 1},
    [DB_MIG_CHECKSUM] = {"mig_checksum",
                         "SELECT encode(sha256(convert_to($1::text, 'UTF8')), 'hex')", 1, 1},
    [DB_MIG_RECORD] = {"mig_record",
                       "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)", 3, 0},

    [DB_MODEL_INSERT] = {"model_insert",
        "WITH m AS (INSERT INTO models (id, \"displayName\", \"displayNameShort\", architecture, layers,"
        " dimension, \"neuronsPerLayer\", \"contextSize\", \"vocabSize\", path, config)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb) RETURNING *)"
        " SELECT row_to_json(v)::text FROM (SELECT " MODEL_COLS " FROM m) v", 11, 0},
    [DB_MODEL_GET] = {"model_get",
        "SELECT row_to_json(v)::text FROM (SELECT " MODEL_COLS " FROM models WHERE id = $1) v", 1, 1},
    [DB_MODEL_LIST] = {"model_list",
        "SELECT coalesce(json_agg(v ORDER BY v.id), '[]')::text FROM (SELECT " MODEL_COLS " FROM models) v", 0, 1},
    [DB_MODEL_DELETE] = {"model_delete", "DELETE FROM models WHERE id = $1", 1, 0},

    [DB_MODEL_PATH] = {"model_path", "SELECT path, config::text FROM models WHERE id = $1", 1, 1},

    /* An SAE and, when new, its source set, in one statement (so in one transaction). */
    [DB_SAE_INSERT] = {"sae_insert",
        "WITH ss AS (INSERT INTO source_sets (\"modelId\", name, description, \"creatorName\", visibility)"
        " VALUES ($1, $3, '', 'saed', 'PUBLIC') ON CONFLICT DO NOTHING),"
        " s AS (INSERT INTO saes (\"modelId\", id, \"setName\", visibility, \"inferenceEnabled\", \"hasDashboards\", \"saelensConfig\","
        " \"hfRepoId\", \"hfFolderId\", notes, dataset, path, \"hookName\", architecture, \"dIn\", \"dSae\", layer)"
        " VALUES ($1, $2, $3, 'PUBLIC', true, false, $4::jsonb, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING *)"
        " SELECT row_to_json(v)::text FROM (SELECT " SAE_COLS " FROM s) v", 14, 0},
    [DB_SAE_GET] = {"sae_get",
        "SELECT row_to_json(v)::text, v.path FROM (SELECT " SAE_COLS " FROM saes WHERE \"modelId\" = $1 AND id = $2) v",
        2, 1},
    [DB_SAE_LIST] = {"sae_list",
        "SELECT coalesce(json_agg(v ORDER BY v.\"modelId\", v.layer, v.id), '[]')::text"
        " FROM (SELECT " SAE_COLS " FROM saes) v", 0, 1},
    [DB_SAE_LIST_MODEL] = {"sae_list_model",
        "SELECT coalesce(json_agg(v ORDER BY v.layer, v.id), '[]')::text"
        " FROM (SELECT " SAE_COLS " FROM saes WHERE \"modelId\" = $1) v", 1, 1},
    [DB_SAE_DELETE] = {"sae_delete", "DELETE FROM saes WHERE \"modelId\" = $1 AND id = $2", 2, 0},
    /* Measured density per feature (frac_nonzero of the dashboards) for sparsity.safetensors:
     * one row per feature in index order; fewer rows than d_sae = not measured. */
    [DB_SAE_DENSITY] = {"sae_density",
        "SELECT frac_nonzero FROM features WHERE \"modelId\" = $1 AND layer = $2 ORDER BY \"indexInt\"", 2, 1},

    /* ---- job queue (River-style; see db/jobs.h) ---- */
    [DB_JOB_ENQUEUE] = {"job_enqueue",
        "INSERT INTO jobs (kind, payload, priority, max_attempts, \"modelId\", \"saeId\")"
        " VALUES ($1, $2::jsonb, $3, $4, $5, $6) RETURNING id", 6, 0},
    /* One job, highest priority first, oldest first; SKIP LOCKED lets concurrent claimers pass
     * each other instead of queueing on the same row. */
    [DB_JOB_CLAIM] = {"job_claim",
        "UPDATE jobs SET state = 'running', attempt = attempt + 1, worker_id = $1,"
        " lease_expires_at = now() + make_interval(secs => $2::int), heartbeat_at = now(),"
        " started_at = coalesce(started_at, now())"
        " WHERE id = (SELECT id FROM jobs WHERE state = 'available' AND run_after <= now() AND kind = ANY($3::text[])"
        " ORDER BY priority DESC, run_after, id FOR UPDATE SKIP LOCKED LIMIT 1)"
        " RETURNING id, kind, payload::text, attempt, max_attempts", 3, 0},
    /* That job, when it is still waiting (`saed autointerp` runs the job it queued itself). */
    [DB_JOB_CLAIM_ID] = {"job_claim_id",
        "UPDATE jobs SET state = 'running', attempt = attempt + 1, worker_id = $1,"
        " lease_expires_at = now() + make_interval(secs => $2::int), heartbeat_at = now(),"
        " started_at = coalesce(started_at, now())"
        " WHERE id = $3 AND state = 'available'"
        " RETURNING id, kind, payload::text, attempt, max_attempts", 3, 0},
    /* Extends the lease of a job this worker still holds; no row = the lease was lost. */
    [DB_JOB_HEARTBEAT] = {"job_heartbeat",
        "UPDATE jobs SET heartbeat_at = now(), lease_expires_at = now() + make_interval(secs => $4::int),"
        " progress = coalesce($5::jsonb, progress)"
        " WHERE id = $1 AND state = 'running' AND attempt = $2 AND worker_id = $3 RETURNING cancel_requested", 5, 0},
    /* Completion is accepted only from the lease holder of this attempt. */
    [DB_JOB_COMPLETE] = {"job_complete",
        "UPDATE jobs SET state = 'completed', finished_at = now(), lease_expires_at = NULL, progress = coalesce($3::jsonb, progress)"
        " WHERE id = $1 AND state = 'running' AND attempt = $2 RETURNING id", 3, 0},
    /* A failed attempt: back to the queue after attempt^4 seconds, or failed for good. */
    [DB_JOB_RETRY_OR_FAIL] = {"job_retry_or_fail",
        "UPDATE jobs SET"
        " state = CASE WHEN attempt < max_attempts AND NOT $4::boolean THEN 'available' ELSE 'failed' END,"
        " run_after = now() + make_interval(secs => power(attempt, 4)::int),"
        " finished_at = CASE WHEN attempt < max_attempts AND NOT $4::boolean THEN NULL ELSE now() END,"
        " worker_id = NULL, lease_expires_at = NULL,"
        " errors = errors || jsonb_build_array(jsonb_build_object('attempt', attempt, 'at', now(), 'error', $3::text))"
        " WHERE id = $1 AND state = 'running' AND attempt = $2 RETURNING state", 4, 0},
    [DB_JOB_CANCELLED] = {"job_cancelled",
        "UPDATE jobs SET state = 'cancelled', finished_at = now(), lease_expires_at = NULL"
        " WHERE id = $1 AND state = 'running' AND attempt = $2 RETURNING id", 2, 0},
    /* Cancellation: a queued job ends at once; a running one is flagged and its worker stops
     * between batches. */
    [DB_JOB_REQUEST_CANCEL] = {"job_request_cancel",
        "UPDATE jobs SET cancel_requested = true,"
        " state = CASE WHEN state = 'available' THEN 'cancelled' ELSE state END,"
        " finished_at = CASE WHEN state = 'available' THEN now() ELSE finished_at END"
        " WHERE id = $1 AND state IN ('available', 'running') RETURNING state", 1, 0},
    /* Leases that expired (worker died): back to available, or failed when out of attempts. */
    [DB_JOB_SWEEP] = {"job_sweep",
        "UPDATE jobs SET"
        " state = CASE WHEN attempt < max_attempts THEN 'available' ELSE 'failed' END,"
        " finished_at = CASE WHEN attempt < max_attempts THEN NULL ELSE now() END,"
        " errors = errors || jsonb_build_array(jsonb_build_object('attempt', attempt, 'at', now(),"
        " 'error', 'lease expired (worker ' || coalesce(worker_id, '?') || ' stopped heartbeating)')),"
        " worker_id = NULL, lease_expires_at = NULL"
        " WHERE state = 'running' AND lease_expires_at < now() RETURNING id", 0, 0},
    [DB_JOB_GET] = {"job_get",
        "SELECT row_to_json(v)::text FROM (SELECT id, kind, state, priority, payload, progress, attempt,"
        " max_attempts AS \"maxAttempts\", \"modelId\", \"saeId\", worker_id AS \"workerId\","
        " cancel_requested AS \"cancelRequested\", errors,"
        " errors -> -1 ->> 'error' AS \"lastError\", created_at AS \"createdAt\", started_at AS \"startedAt\","
        " finished_at AS \"finishedAt\", run_after AS \"runAfter\" FROM jobs WHERE id = $1) v", 1, 1},
    [DB_JOB_COUNTS] = {"job_counts", "SELECT state, count(*) FROM jobs GROUP BY state", 0, 1},

    [DB_JOB_LIST] = {"job_list",
        "SELECT coalesce(json_agg(v ORDER BY v.id DESC), '[]')::text FROM (SELECT id, kind, state, priority, progress,"
        " attempt, max_attempts AS \"maxAttempts\", \"modelId\", \"saeId\", errors -> -1 ->> 'error' AS \"lastError\","
        " created_at AS \"createdAt\", started_at AS \"startedAt\", finished_at AS \"finishedAt\" FROM jobs"
        " WHERE ($1::text IS NULL OR state = $1) AND ($2::text IS NULL OR \"modelId\" = $2)"
        " AND ($3::text IS NULL OR \"saeId\" = $3) ORDER BY id DESC LIMIT $4 OFFSET $5) v", 5, 1},

    /* ---- dashboard results: a job replaces its feature range, never duplicates it. The
     * feature rows are updated in place, not deleted, so that what hangs off them (explanations
     * and their scores, steering records) survives a re-run; only the examples are replaced. ---- */
    [DB_ACTIVATIONS_DELETE_RANGE] = {"activations_delete_range",
        "DELETE FROM activations a USING features f WHERE f.\"modelId\" = $1 AND f.layer = $2"
        " AND f.\"indexInt\" >= $3 AND f.\"indexInt\" < $4"
        " AND a.\"modelId\" = f.\"modelId\" AND a.layer = f.layer AND a.index = f.index", 4, 0},
    /* Rows arrive as one JSON array per batch: one round trip, one prepared statement. */
    [DB_FEATURES_INSERT] = {"features_insert",
        "INSERT INTO features (\"modelId\", layer, index, \"sourceSetName\", \"creatorId\", \"maxActApprox\", \"hasVector\", vector, \"vectorLabel\", \"vectorDefaultSteerStrength\", \"hookName\", \"topkCosSimIndices\", \"topkCosSimValues\", neuron_alignment_indices, neuron_alignment_values, neuron_alignment_l1, correlated_neurons_indices, correlated_neurons_pearson, correlated_neurons_l1, correlated_features_indices, correlated_features_pearson, correlated_features_l1, pos_str, pos_values, neg_str, neg_values, frac_nonzero, freq_hist_data_bar_heights, freq_hist_data_bar_values, logits_hist_data_bar_heights, logits_hist_data_bar_values, decoder_weights_dist) SELECT \"modelId\", layer, index, \"sourceSetName\", \"creatorId\", \"maxActApprox\", \"hasVector\", vector, \"vectorLabel\", \"vectorDefaultSteerStrength\", \"hookName\", \"topkCosSimIndices\", \"topkCosSimValues\", neuron_alignment_indices, neuron_alignment_values, neuron_alignment_l1, correlated_neurons_indices, correlated_neurons_pearson, correlated_neurons_l1, correlated_features_indices, correlated_features_pearson, correlated_features_l1, pos_str, pos_values, neg_str, neg_values, frac_nonzero, freq_hist_data_bar_heights, freq_hist_data_bar_values, logits_hist_data_bar_heights, logits_hist_data_bar_values, decoder_weights_dist FROM json_populate_recordset(NULL::features, $1::json)"
        " ON CONFLICT (\"modelId\", layer, index) DO UPDATE SET \"sourceSetName\" = EXCLUDED.\"sourceSetName\", \"creatorId\" = EXCLUDED.\"creatorId\", \"maxActApprox\" = EXCLUDED.\"maxActApprox\", \"hasVector\" = EXCLUDED.\"hasVector\", vector = EXCLUDED.vector, \"vectorLabel\" = EXCLUDED.\"vectorLabel\", \"vectorDefaultSteerStrength\" = EXCLUDED.\"vectorDefaultSteerStrength\", \"hookName\" = EXCLUDED.\"hookName\", \"topkCosSimIndices\" = EXCLUDED.\"topkCosSimIndices\", \"topkCosSimValues\" = EXCLUDED.\"topkCosSimValues\", neuron_alignment_indices = EXCLUDED.neuron_alignment_indices, neuron_alignment_values = EXCLUDED.neuron_alignment_values, neuron_alignment_l1 = EXCLUDED.neuron_alignment_l1, correlated_neurons_indices = EXCLUDED.correlated_neurons_indices, correlated_neurons_pearson = EXCLUDED.correlated_neurons_pearson, correlated_neurons_l1 = EXCLUDED.correlated_neurons_l1, correlated_features_indices = EXCLUDED.correlated_features_indices, correlated_features_pearson = EXCLUDED.correlated_features_pearson, correlated_features_l1 = EXCLUDED.correlated_features_l1, pos_str = EXCLUDED.pos_str, pos_values = EXCLUDED.pos_values, neg_str = EXCLUDED.neg_str, neg_values = EXCLUDED.neg_values, frac_nonzero = EXCLUDED.frac_nonzero, freq_hist_data_bar_heights = EXCLUDED.freq_hist_data_bar_heights, freq_hist_data_bar_values = EXCLUDED.freq_hist_data_bar_values, logits_hist_data_bar_heights = EXCLUDED.logits_hist_data_bar_heights, logits_hist_data_bar_values = EXCLUDED.logits_hist_data_bar_values, decoder_weights_dist = EXCLUDED.decoder_weights_dist", 1, 0},
    [DB_ACTIVATIONS_INSERT] = {"activations_insert",
        "INSERT INTO activations (id, \"modelId\", layer, index, tokens, values, \"maxValue\", \"maxValueTokenIndex\", \"minValue\", \"dfaValues\", \"dfaTargetIndex\", \"dfaMaxValue\", \"lossValues\", \"logitContributions\", \"binMin\", \"binMax\", \"binContains\", \"qualifyingTokenIndex\", \"dataIndex\", \"dataSource\", \"creatorId\", \"jobId\") SELECT id, \"modelId\", layer, index, tokens, values, \"maxValue\", \"maxValueTokenIndex\", \"minValue\", \"dfaValues\", \"dfaTargetIndex\", \"dfaMaxValue\", \"lossValues\", \"logitContributions\", \"binMin\", \"binMax\", \"binContains\", \"qualifyingTokenIndex\", \"dataIndex\", \"dataSource\", \"creatorId\", \"jobId\" FROM json_populate_recordset(NULL::activations, $1::json)", 1, 0},
    [DB_SAE_MARK_DASHBOARDS] = {"sae_mark_dashboards",
        "UPDATE saes SET \"hasDashboards\" = true, num_prompts = $3, num_tokens_in_prompt = $4, dataset = $5"
        " WHERE \"modelId\" = $1 AND id = $2", 5, 0},
    [DB_SAE_PATHS] = {"sae_paths",
        "SELECT m.path, s.path, s.\"setName\", s.\"hookName\", s.layer FROM saes s JOIN models m ON m.id = s.\"modelId\""
        " WHERE s.\"modelId\" = $1 AND s.id = $2", 2, 1},
    [DB_LISTEN_JOBS] = {"listen_jobs", "LISTEN saed_jobs", 0, 0},
    [DB_BEGIN] = {"begin", "BEGIN", 0, 0},
    [DB_COMMIT] = {"commit", "COMMIT", 0, 0},

    /* Graceful shutdown: hand this process's running jobs back to the queue at once instead of
     * letting their leases expire. */
    [DB_JOBS_RELEASE_WORKER] = {"jobs_release_worker",
        "UPDATE jobs SET state = 'available', worker_id = NULL, lease_expires_at = NULL,"
        " heartbeat_at = NULL, run_after = now() WHERE state = 'running' AND starts_with(worker_id, $1)", 1, 0},

    /* ---- dashboard export (server/export_db.c): PostgreSQL builds every row as JSON, with
     * Neuronpedia's column names and without saed's own columns ("indexInt", "jobId",
     * "descriptionTsv", paths); ranges are numeric ("indexInt") so one call holds a bounded
     * number of features. All of them run inside DB_EXPORT_BEGIN's snapshot, so they are
     * never re-run on a fresh connection (readonly = 0). ---- */
#define EXPORT_TS(c) "to_char(" c " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
/* "{layer}-{setName}__{suffix}" → suffix, else NULL (SAEDashboard's sae_id_suffix). */
#define EXPORT_SUFFIX                                                                                    \
    "CASE WHEN starts_with(s.id, s.layer || '-' || s.\"setName\" || '__')"                               \
    " AND length(s.id) > length(s.layer || '-' || s.\"setName\" || '__')"                                 \
    " THEN substr(s.id, length(s.layer || '-' || s.\"setName\" || '__') + 1) END"
#define EXPORT_RANGE " WHERE f.\"modelId\" = $1 AND f.layer = $2 AND f.\"indexInt\" >= $3 AND f.\"indexInt\" < $4"
/* The order the dashboard job produced them in: the top group (binMin -1) first, then the
 * intervals from the highest down, each by the qualifying token's value; then by prompt. */
#define EXPORT_ACT_ORDER                                                                                 \
    " ORDER BY f.\"indexInt\", a.\"binMin\" >= 0, a.\"binMin\" DESC, a.values[a.\"qualifyingTokenIndex\" + 1] DESC," \
    " length(a.\"dataIndex\"), a.\"dataIndex\", a.\"qualifyingTokenIndex\", a.id"
    /* One consistent snapshot for the whole export: a job finishing meanwhile cannot mix rows. */
    [DB_EXPORT_BEGIN] = {"export_begin", "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", 0, 0},
    /* hasDashboards, the stored index range, and SAEDashboard's batch header. */
    [DB_EXPORT_SAE] = {"export_sae",
        "SELECT s.\"hasDashboards\", r.lo, r.hi, row_to_json(h)::text FROM saes s"
        " CROSS JOIN LATERAL (SELECT min(f.\"indexInt\") AS lo, max(f.\"indexInt\") AS hi FROM features f"
        " WHERE f.\"modelId\" = s.\"modelId\" AND f.layer = s.id) r"
        " CROSS JOIN LATERAL (SELECT s.\"modelId\" AS model_id, s.layer, s.\"setName\" AS sae_set, " EXPORT_SUFFIX
        " AS sae_id_suffix) h WHERE s.\"modelId\" = $1 AND s.id = $2", 2, 0},
    /* release.jsonl, model.jsonl, sourceset.jsonl, source.jsonl. saed has no SourceRelease
     * table: the release is the source set's releaseName, else "{modelId}-{saeId}". Where a row
     * has no creator, "saed" is written; inferenceEnabled is false because nothing says the
     * importing instance can run the model. */
    [DB_EXPORT_NP_META] = {"export_np_meta",
        "SELECT row_to_json(rel)::text, row_to_json(mo)::text, row_to_json(st)::text, row_to_json(so)::text"
        " FROM saes s JOIN models m ON m.id = s.\"modelId\""
        " JOIN source_sets ss ON ss.\"modelId\" = s.\"modelId\" AND ss.name = s.\"setName\""
        " CROSS JOIN LATERAL (SELECT coalesce(ss.\"releaseName\", s.\"modelId\" || '-' || s.id) AS release,"
        " coalesce(nullif(ss.description, ''), s.\"hookName\" || ', ' || s.\"dSae\" || ' features') AS descr,"
        " coalesce(nullif(ss.\"creatorName\", ''), 'saed') AS creator) d"
        " CROSS JOIN LATERAL (SELECT d.release AS name, d.descr AS description, NULL::text AS \"descriptionShort\","
        " d.creator AS \"creatorName\", d.creator AS \"creatorNameShort\", ss.\"creatorEmail\","
        " coalesce(ss.\"creatorId\", 'saed') AS \"creatorId\", ss.visibility, false AS \"isNewUi\", false AS featured, ss.urls,"
        " s.\"setName\" AS \"defaultSourceSetName\", s.id AS \"defaultSourceId\", '{}'::text[] AS \"defaultUmapSourceIds\","
        " " EXPORT_TS("ss.\"createdAt\"") " AS \"createdAt\") rel"
        " CROSS JOIN LATERAL (SELECT m.id, m.\"displayNameShort\", m.\"displayName\", coalesce(m.\"creatorId\", 'saed') AS \"creatorId\","
        " m.owner, m.website, m.\"tlensId\", m.dimension, m.layers, m.\"neuronsPerLayer\", m.thinking, m.visibility,"
        " false AS \"inferenceEnabled\", m.instruct, coalesce(m.\"defaultSourceSetName\", s.\"setName\") AS \"defaultSourceSetName\","
        " coalesce(m.\"defaultSourceId\", s.id) AS \"defaultSourceId\", " EXPORT_TS("m.\"createdAt\"") " AS \"createdAt\","
        " " EXPORT_TS("m.\"updatedAt\"") " AS \"updatedAt\") mo"
        " CROSS JOIN LATERAL (SELECT ss.\"modelId\", ss.name, d.descr AS description, ss.type, d.creator AS \"creatorName\", ss.urls,"
        " ss.\"creatorEmail\", coalesce(ss.\"creatorId\", 'saed') AS \"creatorId\", d.release AS \"releaseName\", ss.\"hasDashboards\","
        " ss.\"allowInferenceSearch\", ss.visibility, ss.\"hasGraphs\", ss.\"graphEnabled\", ss.\"similarityMatrixEnabled\","
        " ss.\"defaultOfModelId\", ss.\"defaultGraphModelId\", ss.\"defaultRange\", ss.\"defaultShowBreaks\", ss.\"showDfa\","
        " ss.\"showCorrelated\", ss.\"showHeadAttribution\", ss.\"showUmap\", " EXPORT_TS("ss.\"createdAt\"") " AS \"createdAt\") st"
        " CROSS JOIN LATERAL (SELECT s.id, s.\"modelId\", s.\"setName\", coalesce(s.\"creatorId\", 'saed') AS \"creatorId\","
        " s.\"hasDashboards\", false AS \"inferenceEnabled\", s.visibility, s.\"hasUmap\", s.\"hasUmapLogSparsity\", s.\"hasUmapClusters\","
        " s.\"saelensConfig\", s.\"saelensRelease\", s.\"saelensSaeId\", s.\"hfRepoId\", s.\"hfFolderId\", s.num_prompts,"
        " s.num_tokens_in_prompt, s.dataset, s.notes, s.\"defaultOfModelId\", s.\"cosSimMatchModelId\", s.\"cosSimMatchSourceId\","
        " " EXPORT_TS("s.\"createdAt\"") " AS \"createdAt\") so"
        " WHERE s.\"modelId\" = $1 AND s.id = $2", 2, 0},
    /* Neuron rows of [$3, $4). */
    [DB_EXPORT_NP_FEATURES] = {"export_np_features",
        "SELECT row_to_json(v)::text FROM features f CROSS JOIN LATERAL (SELECT f.\"modelId\", f.layer, f.index,"
        " f.\"sourceSetName\", f.\"creatorId\", " EXPORT_TS("f.\"createdAt\"") " AS \"createdAt\", f.\"maxActApprox\", f.\"hasVector\","
        " f.vector, f.\"vectorLabel\", f.\"vectorDefaultSteerStrength\", f.\"hookName\", f.\"topkCosSimIndices\", f.\"topkCosSimValues\","
        " f.neuron_alignment_indices, f.neuron_alignment_values, f.neuron_alignment_l1, f.correlated_neurons_indices,"
        " f.correlated_neurons_pearson, f.correlated_neurons_l1, f.correlated_features_indices, f.correlated_features_pearson,"
        " f.correlated_features_l1, f.pos_str, f.pos_values, f.neg_str, f.neg_values, f.frac_nonzero,"
        " f.freq_hist_data_bar_heights, f.freq_hist_data_bar_values, f.logits_hist_data_bar_heights,"
        " f.logits_hist_data_bar_values, f.decoder_weights_dist, f.umap_cluster, f.umap_log_feature_sparsity, f.umap_x,"
        " f.umap_y) v" EXPORT_RANGE " ORDER BY f.\"indexInt\"", 4, 0},
    /* Activation rows of the features of [$3, $4). */
    [DB_EXPORT_NP_ACTIVATIONS] = {"export_np_activations",
        "SELECT row_to_json(v)::text FROM features f"
        " JOIN activations a ON a.\"modelId\" = f.\"modelId\" AND a.layer = f.layer AND a.index = f.index"
        " CROSS JOIN LATERAL (SELECT a.id, a.\"modelId\", a.layer, a.index, a.tokens, a.values, a.\"maxValue\","
        " a.\"maxValueTokenIndex\", a.\"minValue\", a.\"dfaValues\", a.\"dfaTargetIndex\", a.\"dfaMaxValue\", a.\"zQIndices\","
        " a.\"zKIndices\", a.\"zValues\", a.\"lossValues\", a.\"logitContributions\", a.\"binMin\", a.\"binMax\", a.\"binContains\","
        " a.\"qualifyingTokenIndex\", a.\"dataIndex\", a.\"dataSource\", a.\"creatorId\", " EXPORT_TS("a.\"createdAt\"")
        " AS \"createdAt\") v" EXPORT_RANGE EXPORT_ACT_ORDER, 4, 0},
    /* Explanation rows of the features of [$3, $4). */
    [DB_EXPORT_NP_EXPLANATIONS] = {"export_np_explanations",
        "SELECT row_to_json(v)::text FROM features f"
        " JOIN explanations e ON e.\"modelId\" = f.\"modelId\" AND e.layer = f.layer AND e.index = f.index"
        " CROSS JOIN LATERAL (SELECT e.id, e.\"modelId\", e.layer, e.index, e.description, e.\"authorId\", e.\"triggeredByUserId\","
        " e.\"typeName\", e.\"explanationModelName\", e.\"scoreV1\", e.\"scoreV2\", e.notes, e.umap_x, e.umap_y, e.umap_cluster,"
        " e.umap_log_feature_sparsity, " EXPORT_TS("e.\"createdAt\"") " AS \"createdAt\", " EXPORT_TS("e.\"updatedAt\"")
        " AS \"updatedAt\") v" EXPORT_RANGE " ORDER BY f.\"indexInt\", e.\"createdAt\", e.id", 4, 0},
    /* SAEDashboard's run_settings.json ($3 = features per batch): the SAE row, plus the run
     * options of the SAE's latest completed dashboard job (null when there is none). */
    [DB_EXPORT_SD_RUN_SETTINGS] = {"export_sd_run_settings",
        "SELECT row_to_json(v)::text FROM saes s"
        " CROSS JOIN LATERAL (SELECT min(f.\"indexInt\") AS lo, max(f.\"indexInt\") AS hi, count(*) AS n FROM features f"
        " WHERE f.\"modelId\" = s.\"modelId\" AND f.layer = s.id) r"
        " LEFT JOIN LATERAL (SELECT j.id, j.payload FROM jobs j WHERE j.\"modelId\" = s.\"modelId\" AND j.\"saeId\" = s.id"
        " AND j.kind = 'dashboard' AND j.state = 'completed' ORDER BY j.finished_at DESC, j.id DESC LIMIT 1) j ON true"
        " CROSS JOIN LATERAL (SELECT coalesce(s.\"saelensRelease\", s.\"setName\") AS sae_set,"
        " coalesce(s.\"saelensSaeId\", s.\"hookName\") AS sae_path, s.\"modelId\" || '-' || s.id AS outputs_dir,"
        " " EXPORT_SUFFIX " AS np_sae_id_suffix, s.\"setName\" AS np_set_name, s.\"saelensRelease\" IS NULL AS from_local_sae,"
        " coalesce(s.dataset, '') AS huggingface_dataset_path, s.num_prompts AS n_prompts_total,"
        " s.num_tokens_in_prompt AS n_tokens_in_prompt, (j.payload ->> 'batchPrompts')::int AS n_prompts_in_forward_pass,"
        " $3::int AS n_features_at_a_time, r.lo / $3::int AS start_batch, r.hi / $3::int + 1 AS end_batch,"
        " (j.payload ->> 'nIntervals')::int AS n_quantiles, (j.payload ->> 'topK')::int AS top_acts_group_size,"
        " (j.payload ->> 'perInterval')::int AS quantile_group_size, false AS use_dfa, 'float32' AS model_dtype,"
        " 'float32' AS sae_dtype, s.\"modelId\" AS model_id, s.layer, s.\"hookName\" AS hook_name,"
        " coalesce((j.payload ->> 'prependBos')::boolean, (s.\"saelensConfig\" ->> 'prepend_bos')::boolean,"
        " (s.\"saelensConfig\" #>> '{metadata,prepend_bos}')::boolean, true) AS prepend_bos, false AS shuffle_tokens,"
        " NULL::int[] AS prefix_tokens, NULL::int[] AS suffix_tokens, NULL::int[] AS ignore_positions,"
        " (j.payload ->> 'seed')::bigint AS seed, 'saed' AS generated_by,"
        " json_build_object('source_id', s.id, 'd_sae', s.\"dSae\", 'feature_range', json_build_array(r.lo, r.hi + 1),"
        " 'n_features', r.n, 'job_id', j.id, 'hist_bins', (j.payload ->> 'histogramBins')::int,"
        " 'logit_k', (j.payload ->> 'logitK')::int, 'value_decimals', 5) AS saed) v"
        " WHERE s.\"modelId\" = $1 AND s.id = $2", 3, 0},
    /* SAEDashboard features of [$3, $4), Neuron columns renamed back, without "activations"
     * (the caller splices them in) and with the vector apart (it comes after them). */
    [DB_EXPORT_SD_FEATURES] = {"export_sd_features",
        "SELECT f.\"indexInt\", row_to_json(v)::text, to_json(f.vector)::text FROM features f"
        " JOIN saes s ON s.\"modelId\" = f.\"modelId\" AND s.id = f.layer"
        " CROSS JOIN LATERAL (SELECT f.\"indexInt\" AS feature_index, f.neuron_alignment_indices, f.neuron_alignment_values,"
        " f.neuron_alignment_l1, f.correlated_neurons_indices, f.correlated_neurons_l1, f.correlated_neurons_pearson,"
        " f.correlated_features_indices, f.correlated_features_l1, f.correlated_features_pearson, f.neg_str, f.neg_values,"
        " f.pos_str, f.pos_values, f.frac_nonzero, f.freq_hist_data_bar_values, f.freq_hist_data_bar_heights,"
        " f.logits_hist_data_bar_heights, f.logits_hist_data_bar_values, s.num_prompts AS n_prompts_total,"
        " s.num_tokens_in_prompt AS n_tokens_in_prompt, coalesce(s.dataset, '') AS dataset, f.decoder_weights_dist) v"
        EXPORT_RANGE " ORDER BY f.\"indexInt\"", 4, 0},
    /* SAEDashboard activation objects of the features of [$3, $4). A window stored with the
     * BOS first loses position 0, as SAEDashboard's windows do (qualifying index − 1). */
    [DB_EXPORT_SD_ACTIVATIONS] = {"export_sd_activations",
        "SELECT f.\"indexInt\", row_to_json(v)::text FROM features f"
        " JOIN activations a ON a.\"modelId\" = f.\"modelId\" AND a.layer = f.layer AND a.index = f.index"
        " CROSS JOIN LATERAL (SELECT a.tokens[1] = '<|endoftext|>' AND cardinality(a.tokens) > 1 AS bos) b"
        " CROSS JOIN LATERAL (SELECT a.\"binMin\" AS bin_min, a.\"binMax\" AS bin_max, a.\"binContains\" AS bin_contains,"
        " CASE WHEN b.bos THEN a.tokens[2:] ELSE a.tokens END AS tokens,"
        " CASE WHEN b.bos THEN a.values[2:] ELSE a.values END AS values,"
        " a.\"qualifyingTokenIndex\" - CASE WHEN b.bos THEN 1 ELSE 0 END AS qualifying_token_index) v"
        EXPORT_RANGE EXPORT_ACT_ORDER, 4, 0},

    /* ---- steering ---- */
/* The [{layer, index, strength}] of a request's features (JSON parameter p) as rows. */
#define STEER_FEATURES(p) "SELECT * FROM json_to_recordset(" p "::json) AS x(layer text, index text, strength float8)"
/* Candidate c (a STEERED output) was made with exactly the features and strengths of "want";
 * then the latest such one is s, and the one row found: d's and s's id, text and logprobs. */
#define STEER_SAME_FEATURES                                                                             \
    " AND NOT EXISTS (SELECT f.layer, f.index, f.strength FROM steer_output_features f WHERE f.\"steerOutputId\" = c.id" \
    " EXCEPT SELECT * FROM want)"                                                                       \
    " AND NOT EXISTS (SELECT * FROM want EXCEPT SELECT f.layer, f.index, f.strength FROM steer_output_features f" \
    " WHERE f.\"steerOutputId\" = c.id)"                                                                \
    " ORDER BY \"createdAt\" DESC, id LIMIT 1)"
#define STEER_FOUND                                                                                     \
    " SELECT d.id, d.\"outputText\", d.logprobs, s.id, s.\"outputText\", s.logprobs"                    \
    " FROM (SELECT 1) one LEFT JOIN d ON true LEFT JOIN s ON true"
    [DB_STEER_SAE] = {"steer_sae", "SELECT path, \"dSae\" FROM saes WHERE \"modelId\" = $1 AND id = $2", 2, 1},
    /* Stored outputs that answer a request: the latest DEFAULT with the same prompt and settings
     * ($1 model, $2 prompt, $3 temperature, $4 n_tokens, $5 freq_penalty, $6 seed, $7 n_logprobs),
     * and the latest STEERED that also has the same multiplier ($8), method ($9) and exactly the
     * features and strengths of $10 ([{layer, index, strength}]). One row; NULLs where none. */
    [DB_STEER_FIND] = {"steer_find",
        "WITH c AS (SELECT id, type, \"outputText\", logprobs, \"strengthMultiplier\", \"steerMethod\", \"createdAt\""
        " FROM steer_outputs WHERE \"modelId\" = $1 AND type IN ('DEFAULT', 'STEERED') AND \"inputTextMd5\" = md5($2)"
        " AND \"inputText\" = $2 AND \"inputTextChatTemplate\" IS NULL AND version = 2 AND temperature = $3::float8"
        " AND \"numTokens\" = $4::int AND \"freqPenalty\" = $5::float8 AND seed = $6::float8 AND \"nLogprobs\" = $7::int),"
        " want AS (" STEER_FEATURES("$10") "),"
        " d AS (SELECT id, \"outputText\", logprobs FROM c WHERE type = 'DEFAULT' ORDER BY \"createdAt\" DESC, id LIMIT 1),"
        " s AS (SELECT id, \"outputText\", logprobs FROM c WHERE type = 'STEERED' AND \"strengthMultiplier\" = $8::float8"
        " AND \"steerMethod\" = $9"
        STEER_SAME_FEATURES STEER_FOUND, 10, 1},
    /* Saves a request's outputs in one statement: $1-$10 as in steer_find; the STEERED output
     * ($11 text, $12 logprobs JSON) unless $13 names a stored one, the DEFAULT ($14, $15) unless
     * $16 does. The two are linked both ways (connectedDefaultOutputId, connectedSteerOutputIds).
     * Returns the STEERED and DEFAULT ids. */
    [DB_STEER_STORE] = {"steer_store",
        "WITH ids AS (SELECT coalesce($13::text, gen_random_uuid()::text) AS sid, coalesce($16::text, gen_random_uuid()::text) AS did),"
        " d AS (INSERT INTO steer_outputs (id, type, \"modelId\", \"inputText\", \"inputTextMd5\", \"outputText\", logprobs,"
        " \"steerSpecialTokens\", temperature, \"numTokens\", \"freqPenalty\", seed, \"strengthMultiplier\", \"steerMethod\","
        " version, \"nLogprobs\", \"connectedSteerOutputIds\")"
        " SELECT did, 'DEFAULT', $1, $2, md5($2), $14, $15, false, $3::float8, $4::int, $5::float8, $6::float8, $8::float8, $9,"
        " 2, $7::int, ARRAY[sid] FROM ids WHERE $16::text IS NULL),"
        " du AS (UPDATE steer_outputs SET \"connectedSteerOutputIds\" = array_append(\"connectedSteerOutputIds\", (SELECT sid FROM ids))"
        " WHERE id = $16::text AND $13::text IS NULL),"
        " s AS (INSERT INTO steer_outputs (id, type, \"modelId\", \"inputText\", \"inputTextMd5\", \"outputText\", logprobs,"
        " \"steerSpecialTokens\", temperature, \"numTokens\", \"freqPenalty\", seed, \"strengthMultiplier\", \"steerMethod\","
        " version, \"nLogprobs\", \"connectedDefaultOutputId\")"
        " SELECT sid, 'STEERED', $1, $2, md5($2), $11, $12, false, $3::float8, $4::int, $5::float8, $6::float8, $8::float8, $9,"
        " 2, $7::int, did FROM ids WHERE $13::text IS NULL),"
        " f AS (INSERT INTO steer_output_features (\"steerOutputId\", \"modelId\", layer, index, strength)"
        " SELECT ids.sid, $1, x.layer, x.index, x.strength FROM ids,"
        " (" STEER_FEATURES("$10") ") x WHERE $13::text IS NULL)"
        " SELECT sid, did FROM ids", 16, 0},
    /* A stored STEERED output with its DEFAULT, features and settings, as GET /api/steer/{id}
     * returns it. */
    [DB_STEER_GET] = {"steer_get",
        "SELECT json_build_object('STEERED', s.\"outputText\", 'DEFAULT', d.\"outputText\","
        " 'steeredLogProbs', s.logprobs::json, 'defaultLogProbs', d.logprobs::json, 'id', s.id,"
        " 'shareUrl', '/api/steer/' || s.id, 'limit', NULL, 'modelId', s.\"modelId\", 'prompt', s.\"inputText\","
        " 'features', (SELECT coalesce(json_agg(json_build_object('modelId', f.\"modelId\", 'layer', f.layer, 'index', f.index,"
        " 'strength', f.strength) ORDER BY f.layer, length(f.index), f.index, f.strength), '[]')"
        " FROM steer_output_features f WHERE f.\"steerOutputId\" = s.id),"
        " 'settings', json_build_object('temperature', s.temperature, 'n_tokens', s.\"numTokens\", 'freq_penalty', s.\"freqPenalty\","
        " 'seed', s.seed, 'strength_multiplier', s.\"strengthMultiplier\", 'steer_method', s.\"steerMethod\","
        " 'n_logprobs', s.\"nLogprobs\"),"
        " 'createdAt', to_char(s.\"createdAt\" AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'))::text"
        " FROM steer_outputs s LEFT JOIN steer_outputs d ON d.id = s.\"connectedDefaultOutputId\""
        " WHERE s.id = $1 AND s.type = 'STEERED'", 1, 1},
    /* steer-chat's stored outputs: as steer_find, keyed by each run's conversation instead of
     * the prompt ($2 DEFAULT's, $3 STEERED's: [{role, content}] as steer_chat_key writes them),
     * $4-$10 temperature, n_tokens, freq_penalty, seed, n_logprobs, multiplier, method, $11 the
     * features, $12 steer_special_tokens (STEERED only: DEFAULT steers nothing). */
    [DB_STEER_CHAT_FIND] = {"steer_chat_find",
        "WITH c AS (SELECT id, type, \"outputText\", logprobs, \"strengthMultiplier\", \"steerMethod\", \"steerSpecialTokens\","
        " \"inputTextChatTemplate\" AS chat, \"createdAt\""
        " FROM steer_outputs WHERE \"modelId\" = $1 AND type IN ('DEFAULT', 'STEERED')"
        " AND \"inputTextChatTemplateMd5\" IN (md5($2), md5($3)) AND version = 2 AND temperature = $4::float8"
        " AND \"numTokens\" = $5::int AND \"freqPenalty\" = $6::float8 AND seed = $7::float8 AND \"nLogprobs\" = $8::int),"
        " want AS (" STEER_FEATURES("$11") "),"
        " d AS (SELECT id, \"outputText\", logprobs FROM c WHERE type = 'DEFAULT' AND chat = $2"
        " ORDER BY \"createdAt\" DESC, id LIMIT 1),"
        " s AS (SELECT id, \"outputText\", logprobs FROM c WHERE type = 'STEERED' AND chat = $3"
        " AND \"strengthMultiplier\" = $9::float8 AND \"steerMethod\" = $10 AND \"steerSpecialTokens\" = $12::bool"
        STEER_SAME_FEATURES STEER_FOUND, 12, 1},
    /* Saves a steer-chat request's outputs: $1-$12 as in steer_chat_find; the STEERED output
     * ($13 text, $14 logprobs) unless $15 names a stored one, the DEFAULT ($16, $17) unless $18
     * does; $19 / $20 the STEERED / DEFAULT rendered prompts (inputText). outputTextChatTemplate
     * is the conversation with the generated assistant turn appended. Returns both ids. */
    [DB_STEER_CHAT_STORE] = {"steer_chat_store",
        "WITH ids AS (SELECT coalesce($15::text, gen_random_uuid()::text) AS sid, coalesce($18::text, gen_random_uuid()::text) AS did),"
        " d AS (INSERT INTO steer_outputs (id, type, \"modelId\", \"inputText\", \"inputTextMd5\", \"inputTextChatTemplate\","
        " \"inputTextChatTemplateMd5\", \"outputText\", \"outputTextChatTemplate\", logprobs, \"steerSpecialTokens\", temperature,"
        " \"numTokens\", \"freqPenalty\", seed, \"strengthMultiplier\", \"steerMethod\", version, \"nLogprobs\", \"connectedSteerOutputIds\")"
        " SELECT did, 'DEFAULT', $1, $20, md5($20), $2, md5($2), $16,"
        " ($2::jsonb || jsonb_build_array(jsonb_build_object('role', 'assistant', 'content', $16::text)))::text, $17,"
        " $12::bool, $4::float8, $5::int, $6::float8, $7::float8, $9::float8, $10, 2, $8::int, ARRAY[sid]"
        " FROM ids WHERE $18::text IS NULL),"
        " du AS (UPDATE steer_outputs SET \"connectedSteerOutputIds\" = array_append(\"connectedSteerOutputIds\", (SELECT sid FROM ids))"
        " WHERE id = $18::text AND $15::text IS NULL),"
        " s AS (INSERT INTO steer_outputs (id, type, \"modelId\", \"inputText\", \"inputTextMd5\", \"inputTextChatTemplate\","
        " \"inputTextChatTemplateMd5\", \"outputText\", \"outputTextChatTemplate\", logprobs, \"steerSpecialTokens\", temperature,"
        " \"numTokens\", \"freqPenalty\", seed, \"strengthMultiplier\", \"steerMethod\", version, \"nLogprobs\", \"connectedDefaultOutputId\")"
        " SELECT sid, 'STEERED', $1, $19, md5($19), $3, md5($3), $13,"
        " ($3::jsonb || jsonb_build_array(jsonb_build_object('role', 'assistant', 'content', $13::text)))::text, $14,"
        " $12::bool, $4::float8, $5::int, $6::float8, $7::float8, $9::float8, $10, 2, $8::int, did"
        " FROM ids WHERE $15::text IS NULL),"
        " f AS (INSERT INTO steer_output_features (\"steerOutputId\", \"modelId\", layer, index, strength)"
        " SELECT ids.sid, $1, x.layer, x.index, x.strength FROM ids,"
        " (" STEER_FEATURES("$11") ") x WHERE $15::text IS NULL)"
        " SELECT sid, did FROM ids", 20, 0},
#undef STEER_FEATURES
#undef STEER_SAME_FEATURES
#undef STEER_FOUND
#undef EXPORT_TS
#undef EXPORT_SUFFIX
#undef EXPORT_RANGE
#undef EXPORT_ACT_ORDER

    /* ---- live activations and search: where the engine loads the model and SAE from, the
     * measured densities for the density filter, and the stored feature rows that go with the
     * results (Neuronpedia's Neuron row without saed's "indexInt"). ---- */
    [DB_LIVE_SAE] = {"live_sae",
        "SELECT m.path, s.path, s.\"dSae\", m.\"contextSize\" FROM saes s JOIN models m ON m.id = s.\"modelId\""
        " WHERE s.\"modelId\" = $1 AND s.id = $2", 2, 1},
    /* The SAEs of a source set (index saes_set), in layer order as Neuronpedia lists them. */
    [DB_LIVE_SET_SAES] = {"live_set_saes",
        "SELECT s.id, m.path, s.path, s.\"dSae\", m.\"contextSize\" FROM saes s JOIN models m ON m.id = s.\"modelId\""
        " WHERE s.\"modelId\" = $1 AND s.\"setName\" = $2 ORDER BY s.layer, s.id", 2, 1},
    [DB_LIVE_DENSITY] = {"live_density",
        "SELECT \"indexInt\", frac_nonzero FROM features WHERE \"modelId\" = $1 AND layer = $2 AND \"indexInt\" IS NOT NULL",
        2, 1},
    /* search-all: the rows of ($2[i], $3[i]) pairs, each with its top activation, its
     * explanations (best scored first) and its model, as Neuronpedia's searcher includes them. */
    [DB_LIVE_NEURONS] = {"live_neurons",
        "SELECT f.layer, f.index, (to_jsonb(f) - 'indexInt' || jsonb_build_object("
        "'activations', coalesce((SELECT jsonb_agg(to_jsonb(a) - 'jobId') FROM (SELECT * FROM activations a"
        " WHERE a.\"modelId\" = f.\"modelId\" AND a.layer = f.layer AND a.index = f.index ORDER BY a.\"maxValue\" DESC LIMIT 1) a), '[]'::jsonb),"
        " 'explanations', coalesce((SELECT jsonb_agg(to_jsonb(e) - 'descriptionTsv' ORDER BY e.\"scoreV2\" DESC NULLS LAST,"
        " e.\"scoreV1\" DESC, e.\"createdAt\") FROM explanations e"
        " WHERE e.\"modelId\" = f.\"modelId\" AND e.layer = f.layer AND e.index = f.index), '[]'::jsonb),"
        " 'model', (SELECT to_jsonb(v) FROM (SELECT " MODEL_COLS " FROM models WHERE id = f.\"modelId\") v)))::text"
        " FROM unnest($2::text[], $3::text[]) AS k(layer, index)"
        " JOIN features f ON f.\"modelId\" = $1 AND f.layer = k.layer AND f.index = k.index", 3, 1},
    /* search-topk-by-token: rows of one SAE with their newest machine explanation. */
    [DB_LIVE_TOPK_FEATURES] = {"live_topk_features",
        "SELECT f.index, (to_jsonb(f) - 'indexInt' || jsonb_build_object('explanations', coalesce(("
        "SELECT jsonb_agg(to_jsonb(e) - 'descriptionTsv') FROM (SELECT * FROM explanations e"
        " WHERE e.\"modelId\" = f.\"modelId\" AND e.layer = f.layer AND e.index = f.index"
        " AND e.\"typeName\" IS DISTINCT FROM 'human' ORDER BY e.\"createdAt\" DESC LIMIT 1) e), '[]'::jsonb)))::text"
        " FROM features f WHERE f.\"modelId\" = $1 AND f.layer = $2 AND f.index = ANY($3::text[])", 3, 1},
    /* POST /initialize: every model (or model $1) with the folders of its SAEs, in layer order
     * (a model without SAEs has one row with NULL SAE columns). */
    [DB_V1_INIT_SAES] = {"v1_init_saes",
        "SELECT m.id, m.path, s.id, s.path FROM models m LEFT JOIN saes s ON s.\"modelId\" = m.id"
        " WHERE $1::text IS NULL OR m.id = $1 ORDER BY m.id, s.layer, s.id", 1, 1},
    /* ---- Neuronpedia read API ---- */
#define RA_TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
/* The Neuron columns of f (features) as Neuronpedia returns them; s = its SAE. */
#define RA_NEURON_COLS                                                                                     \
    "f.\"modelId\", f.layer, f.index, coalesce(f.\"sourceSetName\", s.\"setName\") AS \"sourceSetName\", f.\"creatorId\"," \
    " " RA_TS("f.\"createdAt\"") " AS \"createdAt\", f.\"maxActApprox\", f.\"hasVector\", f.vector, f.\"vectorLabel\","        \
    " f.\"vectorDefaultSteerStrength\", coalesce(f.\"hookName\", s.\"hookName\") AS \"hookName\", f.\"topkCosSimIndices\","      \
    " f.\"topkCosSimValues\", f.neuron_alignment_indices, f.neuron_alignment_values, f.neuron_alignment_l1,"                  \
    " f.correlated_neurons_indices, f.correlated_neurons_pearson, f.correlated_neurons_l1, f.correlated_features_indices,"    \
    " f.correlated_features_pearson, f.correlated_features_l1, f.pos_str, f.pos_values, f.neg_str, f.neg_values,"           \
    " f.frac_nonzero, f.freq_hist_data_bar_heights, f.freq_hist_data_bar_values, f.logits_hist_data_bar_heights,"           \
    " f.logits_hist_data_bar_values, f.decoder_weights_dist, f.umap_cluster, f.umap_log_feature_sparsity, f.umap_x, f.umap_y"
/* The feature's activations, maxValue descending, at most lim of them (NULL = all). */
#define RA_ACTIVATIONS(lim)                                                                                \
    "(SELECT coalesce(json_agg(ax ORDER BY ax.\"maxValue\" DESC, ax.id), '[]') FROM (SELECT a.id, a.\"modelId\", a.layer,"   \
    " a.index, a.tokens, a.values, a.\"maxValue\", a.\"maxValueTokenIndex\", a.\"minValue\", a.\"binMin\", a.\"binMax\","      \
    " a.\"binContains\", a.\"qualifyingTokenIndex\", a.\"dataIndex\", a.\"dataSource\", a.\"dfaValues\", a.\"dfaTargetIndex\","  \
    " a.\"dfaMaxValue\", a.\"zQIndices\", a.\"zKIndices\", a.\"zValues\", a.\"lossValues\", a.\"logitContributions\","         \
    " a.\"creatorId\", " RA_TS("a.\"createdAt\"") " AS \"createdAt\" FROM activations a"                                      \
    " WHERE a.\"modelId\" = f.\"modelId\" AND a.layer = f.layer AND a.index = f.index"                                      \
    " ORDER BY a.\"maxValue\" DESC, a.id LIMIT " lim ") ax)"
/* The scores of explanation e (ExplanationScore rows). */
#define RA_SCORES(e)                                                                                       \
    "(SELECT coalesce(json_agg(sc ORDER BY sc.\"createdAt\", sc.id), '[]') FROM (SELECT es.id, es.\"explanationId\", es.value," \
    " es.\"explanationScoreTypeName\", es.\"explanationScoreModelName\", es.\"initiatedByUserId\", es.\"jsonDetails\","        \
    " " RA_TS("es.\"createdAt\"") " AS \"createdAt\" FROM explanation_scores es WHERE es.\"explanationId\" = " e ".id) sc)"
/* The feature's explanations with their scores, best first (scoreV2, then scoreV1). */
#define RA_EXPLANATIONS                                                                                    \
    "(SELECT coalesce(json_agg(x ORDER BY x.\"scoreV2\" DESC NULLS LAST, x.\"scoreV1\" DESC, x.\"createdAt\", x.id), '[]')"    \
    " FROM (SELECT e.id, e.\"modelId\", e.layer, e.index, e.description, e.\"typeName\", e.\"explanationModelName\","          \
    " e.\"authorId\", e.\"triggeredByUserId\", e.\"scoreV1\", e.\"scoreV2\", e.notes, " RA_TS("e.\"createdAt\"")              \
    " AS \"createdAt\", " RA_TS("e.\"updatedAt\"") " AS \"updatedAt\", " RA_SCORES("e") " AS scores FROM explanations e"      \
    " WHERE e.\"modelId\" = f.\"modelId\" AND e.layer = f.layer AND e.index = f.index) x)"
#define RA_FEATURE_JOINS                                                                                   \
    " JOIN saes s ON s.\"modelId\" = f.\"modelId\" AND s.id = f.layer JOIN models m ON m.id = f.\"modelId\""                   \
    " JOIN source_sets ss ON ss.\"modelId\" = s.\"modelId\" AND ss.name = s.\"setName\""
/* A whole feature as GET /api/feature returns it (row v): the Neuron, its model, source and
 * source set rows (Neuronpedia columns), activations, explanations; no lists or comments. */
#define RA_FEATURE_V(lim)                                                                                  \
    " CROSS JOIN LATERAL (SELECT " RA_NEURON_COLS ","                                                                    \
    " (SELECT row_to_json(mo) FROM (SELECT m.id, m.\"displayNameShort\", m.\"displayName\", m.\"creatorId\", m.owner,"         \
    " m.website, m.\"tlensId\", m.dimension, m.layers, m.\"neuronsPerLayer\", m.thinking, m.visibility, m.\"inferenceEnabled\"," \
    " m.instruct, m.\"defaultSourceSetName\", m.\"defaultSourceId\", " RA_TS("m.\"createdAt\"") " AS \"createdAt\","            \
    " " RA_TS("m.\"updatedAt\"") " AS \"updatedAt\") mo) AS model,"                                                        \
    " (SELECT row_to_json(so) FROM (SELECT s.id, s.\"modelId\", s.\"setName\", s.\"creatorId\", s.\"hasDashboards\","           \
    " s.\"inferenceEnabled\", s.visibility, s.\"hasUmap\", s.\"hasUmapLogSparsity\", s.\"hasUmapClusters\", s.\"saelensConfig\"," \
    " s.\"saelensRelease\", s.\"saelensSaeId\", s.\"hfRepoId\", s.\"hfFolderId\", s.num_prompts, s.num_tokens_in_prompt,"       \
    " s.dataset, s.notes, s.\"defaultOfModelId\", s.\"cosSimMatchModelId\", s.\"cosSimMatchSourceId\","                      \
    " " RA_TS("s.\"createdAt\"") " AS \"createdAt\") so) AS source,"                                                        \
    " (SELECT row_to_json(st) FROM (SELECT ss.\"modelId\", ss.name, ss.description, ss.type, ss.\"creatorName\", ss.urls,"      \
    " ss.\"creatorEmail\", ss.\"creatorId\", ss.\"releaseName\", ss.\"hasDashboards\", ss.\"allowInferenceSearch\", ss.visibility," \
    " ss.\"hasGraphs\", ss.\"graphEnabled\", ss.\"similarityMatrixEnabled\", ss.\"defaultOfModelId\", ss.\"defaultGraphModelId\","  \
    " ss.\"defaultRange\", ss.\"defaultShowBreaks\", ss.\"showDfa\", ss.\"showCorrelated\", ss.\"showHeadAttribution\","          \
    " ss.\"showUmap\", " RA_TS("ss.\"createdAt\"") " AS \"createdAt\") st) AS \"sourceSet\","                                 \
    " json_build_object('name', coalesce(f.\"creatorId\", 'saed')) AS creator,"                                           \
    " " RA_ACTIVATIONS(lim) " AS activations, " RA_EXPLANATIONS " AS explanations,"                                      \
    " '[]'::json AS lists, '[]'::json AS comments) v"
    /* One feature, built by the database in one statement ($4 = most activations, NULL = all). */
    [DB_FEATURE_GET] = {"feature_get",
        "SELECT row_to_json(v)::text FROM features f" RA_FEATURE_JOINS RA_FEATURE_V("$4::int")
        " WHERE f.\"modelId\" = $1 AND f.layer = $2 AND f.index = $3", 4, 1},
    /* Many features in request order: $1 = [{modelId, layer, index, n}] (n = most activations);
     * features that do not exist are left out. */
    [DB_FEATURES_GET_MANY] = {"features_get_many",
        "SELECT coalesce(json_agg(v ORDER BY q.ord), '[]')::text FROM json_array_elements($1::json) WITH ORDINALITY AS q(e, ord)"
        " JOIN features f ON f.\"modelId\" = q.e ->> 'modelId' AND f.layer = q.e ->> 'layer' AND f.index = q.e ->> 'index'"
        RA_FEATURE_JOINS RA_FEATURE_V("(q.e ->> 'n')::int"), 1, 1},
    /* Invalidations for the feature cache (0002_read_api.sql). */
    [DB_LISTEN_FEATURES] = {"listen_features", "LISTEN saed_features", 0, 0},
    /* The SAE of a vector request and, when stored, the feature's own vector. */
    [DB_VECTOR_GET] = {"vector_get",
        "SELECT s.path, s.\"hookName\", s.\"dSae\", f.\"hasVector\", to_json(f.vector)::text, f.\"vectorLabel\","
        " f.\"vectorDefaultSteerStrength\", f.\"creatorId\", " RA_TS("f.\"createdAt\"") " FROM saes s"
        " LEFT JOIN features f ON f.\"modelId\" = s.\"modelId\" AND f.layer = s.id AND f.index = $3"
        " WHERE s.\"modelId\" = $1 AND s.id = $2", 3, 1},
    /* One explanation of an existing feature and its scores ($10: [{value,
     * explanationScoreTypeName, explanationScoreModelName, jsonDetails}]); no row = no feature. */
    [DB_EXPLANATION_NEW] = {"explanation_new",
        "WITH e AS (INSERT INTO explanations (\"modelId\", layer, index, description, \"typeName\", \"explanationModelName\","
        " \"authorId\", \"scoreV1\", \"scoreV2\") SELECT f.\"modelId\", f.layer, f.index, $4, $5, $6, $7, coalesce($8::float8, 0),"
        " $9::float8 FROM features f WHERE f.\"modelId\" = $1 AND f.layer = $2 AND f.index = $3 RETURNING *),"
        " sc AS (INSERT INTO explanation_scores (\"explanationId\", value, \"explanationScoreTypeName\", \"explanationScoreModelName\","
        " \"initiatedByUserId\", \"jsonDetails\") SELECT e.id, x.value, x.\"explanationScoreTypeName\", x.\"explanationScoreModelName\","
        " e.\"authorId\", coalesce(x.\"jsonDetails\", '') FROM e, json_to_recordset(coalesce($10::json, '[]')) AS x(value float8,"
        " \"explanationScoreTypeName\" text, \"explanationScoreModelName\" text, \"jsonDetails\" text) RETURNING *)"
        " SELECT row_to_json(v)::text FROM e CROSS JOIN LATERAL (SELECT e.id, e.\"modelId\", e.layer, e.index, e.description,"
        " e.\"typeName\", e.\"explanationModelName\", e.\"authorId\", e.\"scoreV1\", e.\"scoreV2\", " RA_TS("e.\"createdAt\"")
        " AS \"createdAt\", " RA_TS("e.\"updatedAt\"") " AS \"updatedAt\", (SELECT coalesce(json_agg(o ORDER BY o.value DESC, o.id), '[]')"
        " FROM (SELECT sc.id, sc.\"explanationId\", sc.value, sc.\"explanationScoreTypeName\", sc.\"explanationScoreModelName\","
        " sc.\"initiatedByUserId\", sc.\"jsonDetails\", " RA_TS("sc.\"createdAt\"") " AS \"createdAt\" FROM sc) o) AS scores) v", 10, 0},
    /* Full-text search over descriptions ($1 query; $2 model or NULL; $3 SAE ids or NULL; $4
     * offset; $5 page size). Any query word matches; the score puts an exact description
     * first (3), then the query as a phrase (2), then all its words (1), plus ts_rank_cd (in
     * [0, 1)); the sum is divided by 7 to lie in [0, 1). Each result carries its feature with 3 activations. */
    [DB_EXPLANATION_SEARCH] = {"explanation_search",
        "WITH q AS (SELECT phraseto_tsquery('english', $1) AS ph, plainto_tsquery('english', $1) AS al,"
        " replace(plainto_tsquery('english', $1)::text, ' & ', ' | ')::tsquery AS an, lower(btrim($1)) AS lq),"
        " h AS (SELECT e.id, e.\"modelId\", e.layer, e.index, e.description, e.\"explanationModelName\", e.\"typeName\","
        " (CASE WHEN lower(btrim(e.description)) = q.lq THEN 3 ELSE 0 END + CASE WHEN e.\"descriptionTsv\" @@ q.ph THEN 2 ELSE 0 END"
        " + CASE WHEN e.\"descriptionTsv\" @@ q.al THEN 1 ELSE 0 END + ts_rank_cd(e.\"descriptionTsv\", q.an, 32)) / 7 AS score"
        " FROM explanations e, q WHERE e.\"descriptionTsv\" @@ q.an AND ($2::text IS NULL OR e.\"modelId\" = $2)"
        " AND ($3::text[] IS NULL OR e.layer = ANY($3::text[]))"
        " ORDER BY score DESC, length(e.description), e.\"modelId\", e.layer, e.index, e.id LIMIT $5::int OFFSET $4::int)"
        " SELECT coalesce(json_agg(v ORDER BY h.score DESC, length(h.description), h.\"modelId\", h.layer, h.index, h.id), '[]')::text"
        " FROM h JOIN features f ON f.\"modelId\" = h.\"modelId\" AND f.layer = h.layer AND f.index = h.index"
        " JOIN saes s ON s.\"modelId\" = f.\"modelId\" AND s.id = f.layer"
        " CROSS JOIN LATERAL (SELECT h.\"modelId\", h.layer, h.index, h.description, h.\"explanationModelName\", h.\"typeName\","
        " h.score AS cosine_similarity, (SELECT row_to_json(n) FROM (SELECT " RA_NEURON_COLS ", " RA_ACTIVATIONS("3")
        " AS activations, " RA_EXPLANATIONS " AS explanations) n) AS neuron) v", 5, 1},
    /* Explanation export: the SAE's numeric index range (no row = unknown SAE), then its
     * explanations one index range [$3, $4) at a time, in index order. */
    [DB_EXPLANATION_EXPORT_RANGE] = {"explanation_export_range",
        "SELECT min(f.\"indexInt\"), max(f.\"indexInt\") FROM saes s"
        " LEFT JOIN features f ON f.\"modelId\" = s.\"modelId\" AND f.layer = s.id"
        " WHERE s.\"modelId\" = $1 AND s.id = $2 GROUP BY s.\"modelId\", s.id", 2, 0},
    [DB_EXPLANATION_EXPORT_ROWS] = {"explanation_export_rows",
        "SELECT row_to_json(v)::text FROM features f"
        " JOIN explanations e ON e.\"modelId\" = f.\"modelId\" AND e.layer = f.layer AND e.index = f.index"
        " CROSS JOIN LATERAL (SELECT e.id, e.\"modelId\", e.layer, e.index, e.description, e.\"typeName\", e.\"explanationModelName\","
        " e.\"authorId\", e.\"scoreV1\", e.\"scoreV2\", " RA_TS("e.\"createdAt\"") " AS \"createdAt\", " RA_SCORES("e") " AS scores) v"
        " WHERE f.\"modelId\" = $1 AND f.layer = $2 AND f.\"indexInt\" >= $3 AND f.\"indexInt\" < $4"
        " ORDER BY f.\"indexInt\", e.\"createdAt\", e.id", 4, 0},
    /* Import of explanation batch lines ($1 = [{line, modelId, layer, index, ...}]): the first
     * line whose feature does not exist, then the upsert. Lines without an id get one derived
     * from their content, so importing a file twice changes nothing; a line's scores (when it
     * has a "scores" key and they differ from the stored ones) replace the explanation's.
     * Counts: inserted, updated (explanations whose values or scores changed). */
    [DB_EXPLANATION_IMPORT_MISSING] = {"explanation_import_missing",
        "SELECT x.line, x.\"modelId\", x.layer, x.index FROM json_to_recordset($1::json) AS x(line int, \"modelId\" text,"
        " layer text, index text) WHERE NOT EXISTS (SELECT 1 FROM features f WHERE f.\"modelId\" = x.\"modelId\""
        " AND f.layer = x.layer AND f.index = x.index) ORDER BY x.line LIMIT 1", 1, 0},
    [DB_EXPLANATION_IMPORT_UPSERT] = {"explanation_import_upsert",
        "WITH r AS (SELECT DISTINCT ON (k.id) k.* FROM (SELECT coalesce(x.id, 'np-' || md5(concat_ws(chr(31), x.\"modelId\","
        " x.layer, x.index, x.description, x.\"typeName\", x.\"explanationModelName\"))) AS id, x.line, x.\"modelId\", x.layer,"
        " x.index, x.description, x.\"authorId\", x.\"triggeredByUserId\", x.\"typeName\", x.\"explanationModelName\","
        " x.\"scoreV1\", x.\"scoreV2\", x.notes, x.umap_x, x.umap_y, x.umap_cluster, x.umap_log_feature_sparsity,"
        " x.\"createdAt\", x.scores FROM json_to_recordset($1::json) AS x(line int, id text, \"modelId\" text, layer text,"
        " index text, description text, \"authorId\" text, \"triggeredByUserId\" text, \"typeName\" text,"
        " \"explanationModelName\" text, \"scoreV1\" float8, \"scoreV2\" float8, notes text, umap_x float8, umap_y float8,"
        " umap_cluster int, umap_log_feature_sparsity float8, \"createdAt\" timestamptz, scores json)) k"
        " ORDER BY k.id, k.line DESC),"
        " up AS (INSERT INTO explanations AS t (id, \"modelId\", layer, index, description, \"authorId\", \"triggeredByUserId\","
        " \"typeName\", \"explanationModelName\", \"scoreV1\", \"scoreV2\", notes, umap_x, umap_y, umap_cluster,"
        " umap_log_feature_sparsity, \"createdAt\") SELECT id, \"modelId\", layer, index, description, \"authorId\","
        " \"triggeredByUserId\", \"typeName\", \"explanationModelName\", coalesce(\"scoreV1\", 0), \"scoreV2\", notes,"
        " coalesce(umap_x, 0), coalesce(umap_y, 0), coalesce(umap_cluster, 0), coalesce(umap_log_feature_sparsity, 0),"
        " coalesce(\"createdAt\", now()) FROM r"
        " ON CONFLICT (id) DO UPDATE SET \"modelId\" = EXCLUDED.\"modelId\", layer = EXCLUDED.layer, index = EXCLUDED.index,"
        " description = EXCLUDED.description, \"authorId\" = EXCLUDED.\"authorId\","
        " \"triggeredByUserId\" = EXCLUDED.\"triggeredByUserId\", \"typeName\" = EXCLUDED.\"typeName\","
        " \"explanationModelName\" = EXCLUDED.\"explanationModelName\", \"scoreV1\" = EXCLUDED.\"scoreV1\","
        " \"scoreV2\" = EXCLUDED.\"scoreV2\", notes = EXCLUDED.notes, umap_x = EXCLUDED.umap_x, umap_y = EXCLUDED.umap_y,"
        " umap_cluster = EXCLUDED.umap_cluster, umap_log_feature_sparsity = EXCLUDED.umap_log_feature_sparsity"
        " WHERE (t.\"modelId\", t.layer, t.index, t.description, t.\"authorId\", t.\"triggeredByUserId\", t.\"typeName\","
        " t.\"explanationModelName\", t.\"scoreV1\", t.\"scoreV2\", t.notes, t.umap_x, t.umap_y, t.umap_cluster,"
        " t.umap_log_feature_sparsity) IS DISTINCT FROM (EXCLUDED.\"modelId\", EXCLUDED.layer, EXCLUDED.index,"
        " EXCLUDED.description, EXCLUDED.\"authorId\", EXCLUDED.\"triggeredByUserId\", EXCLUDED.\"typeName\","
        " EXCLUDED.\"explanationModelName\", EXCLUDED.\"scoreV1\", EXCLUDED.\"scoreV2\", EXCLUDED.notes, EXCLUDED.umap_x,"
        " EXCLUDED.umap_y, EXCLUDED.umap_cluster, EXCLUDED.umap_log_feature_sparsity) RETURNING t.id, (t.xmax = 0) AS inserted),"
        /* scores given and different (as a set) from the stored ones: replaced */
        " sc AS (SELECT r.id, r.scores FROM r WHERE r.scores IS NOT NULL AND"
        " (SELECT coalesce(jsonb_agg(o ORDER BY o), '[]') FROM (SELECT jsonb_build_object('v', es.value, 't',"
        " es.\"explanationScoreTypeName\", 'm', es.\"explanationScoreModelName\", 'u', es.\"initiatedByUserId\", 'j',"
        " es.\"jsonDetails\") AS o FROM explanation_scores es WHERE es.\"explanationId\" = r.id) q1) IS DISTINCT FROM"
        " (SELECT coalesce(jsonb_agg(o ORDER BY o), '[]') FROM (SELECT jsonb_build_object('v', y.value, 't',"
        " y.\"explanationScoreTypeName\", 'm', y.\"explanationScoreModelName\", 'u', y.\"initiatedByUserId\", 'j',"
        " coalesce(y.\"jsonDetails\", '')) AS o FROM json_to_recordset(r.scores) AS y(value float8, \"explanationScoreTypeName\" text,"
        " \"explanationScoreModelName\" text, \"initiatedByUserId\" text, \"jsonDetails\" text)) q2)),"
        " del AS (DELETE FROM explanation_scores es USING sc WHERE es.\"explanationId\" = sc.id),"
        " ins AS (INSERT INTO explanation_scores (\"explanationId\", value, \"explanationScoreTypeName\","
        " \"explanationScoreModelName\", \"initiatedByUserId\", \"jsonDetails\") SELECT sc.id, y.value, y.\"explanationScoreTypeName\","
        " y.\"explanationScoreModelName\", y.\"initiatedByUserId\", coalesce(y.\"jsonDetails\", '') FROM sc"
        " CROSS JOIN LATERAL json_to_recordset(sc.scores) AS y(value float8, \"explanationScoreTypeName\" text,"
        " \"explanationScoreModelName\" text, \"initiatedByUserId\" text, \"jsonDetails\" text))"
        " SELECT (SELECT count(*) FROM up WHERE inserted), (SELECT count(*) FROM (SELECT id FROM up WHERE NOT inserted"
        " UNION SELECT id FROM sc WHERE id NOT IN (SELECT id FROM up WHERE inserted)) u)", 1, 0},

    /* ---- autointerp (server/job_autointerp.c) ---- */
    /* Features of the range that have stored examples and no explanation of this job yet. */
    [DB_AI_TODO] = {"ai_todo",
        "SELECT f.\"indexInt\" FROM features f WHERE f.\"modelId\" = $1 AND f.layer = $2 AND f.\"indexInt\" >= $3"
        " AND f.\"indexInt\" < $4 AND EXISTS (SELECT 1 FROM activations a WHERE a.\"modelId\" = f.\"modelId\""
        " AND a.layer = f.layer AND a.index = f.index) AND NOT EXISTS (SELECT 1 FROM explanations e WHERE"
        " e.\"jobId\" = $5::bigint AND e.\"modelId\" = f.\"modelId\" AND e.layer = f.layer AND e.index = f.index)"
        " ORDER BY f.\"indexInt\"", 5, 1},
    /* One feature's inputs: its top positive logits and stored examples, strongest first,
     * one per distinct text. */
    [DB_AI_FEATURE] = {"ai_feature",
        "SELECT json_build_object('pos_str', f.pos_str, 'acts', (SELECT coalesce(json_agg(json_build_object('tokens',"
        " x.tokens, 'values', x.values) ORDER BY x.\"maxValue\" DESC, x.id), '[]') FROM (SELECT DISTINCT ON (a.tokens)"
        " a.id, a.tokens, a.values, a.\"maxValue\" FROM activations a WHERE a.\"modelId\" = f.\"modelId\" AND a.layer = f.layer"
        " AND a.index = f.index ORDER BY a.tokens, a.\"maxValue\" DESC) x))::text FROM features f"
        " WHERE f.\"modelId\" = $1 AND f.layer = $2 AND f.index = $3", 3, 1},
    /* Negatives: windows stored for other features of the SAE whose text is not among this
     * feature's examples, in a fixed pseudo-random order. */
    [DB_AI_NEGATIVES] = {"ai_negatives",
        "SELECT coalesce(json_agg(x.tokens), '[]')::text FROM (SELECT a.tokens FROM activations a"
        " WHERE a.\"modelId\" = $1 AND a.layer = $2 AND a.index <> $3 AND a.tokens NOT IN (SELECT b.tokens FROM activations b"
        " WHERE b.\"modelId\" = $1 AND b.layer = $2 AND b.index = $3) ORDER BY md5(a.id || $3) LIMIT $4::int) x", 4, 1},
    /* A job's explanation of one feature: replaces what autointerp jobs wrote for the same
     * method and explainer model (never hand-written or imported rows), with its scores. */
    [DB_AI_STORE] = {"ai_store",
        "WITH d AS (DELETE FROM explanations WHERE \"modelId\" = $1 AND layer = $2 AND index = $3 AND \"jobId\" IS NOT NULL"
        " AND \"typeName\" = $5 AND \"explanationModelName\" = $6),"
        " e AS (INSERT INTO explanations (\"modelId\", layer, index, description, \"typeName\", \"explanationModelName\","
        " \"authorId\", \"scoreV1\", \"scoreV2\", \"jobId\") VALUES ($1, $2, $3, $4, $5, $6, 'saed-autointerp', 0, $7::float8,"
        " $8::bigint) RETURNING id),"
        " sc AS (INSERT INTO explanation_scores (\"explanationId\", value, \"explanationScoreTypeName\", \"explanationScoreModelName\","
        " \"jsonDetails\") SELECT e.id, x.value, x.t, x.m, x.j FROM e, json_to_recordset(coalesce($9::json, '[]')) AS"
        " x(value float8, t text, m text, j text) RETURNING id)"
        " SELECT e.id, (SELECT count(*) FROM sc) FROM e", 9, 0},
    [DB_JOB_GET_KIND] = {"job_get_kind",
        "SELECT row_to_json(v)::text FROM (SELECT id, kind, state, priority, payload, progress, attempt,"
        " max_attempts AS \"maxAttempts\", \"modelId\", \"saeId\", worker_id AS \"workerId\","
        " cancel_requested AS \"cancelRequested\", errors,"
        " errors -> -1 ->> 'error' AS \"lastError\", created_at AS \"createdAt\", started_at AS \"startedAt\","
        " finished_at AS \"finishedAt\", run_after AS \"runAfter\" FROM jobs WHERE id = $1 AND kind = $2) v", 2, 1},
    [DB_JOB_LIST_KIND] = {"job_list_kind",
        "SELECT coalesce(json_agg(v ORDER BY v.id DESC), '[]')::text FROM (SELECT id, kind, state, priority, progress,"
        " attempt, max_attempts AS \"maxAttempts\", \"modelId\", \"saeId\", errors -> -1 ->> 'error' AS \"lastError\","
        " created_at AS \"createdAt\", started_at AS \"startedAt\", finished_at AS \"finishedAt\" FROM jobs"
        " WHERE kind = $6 AND ($1::text IS NULL OR state = $1) AND ($2::text IS NULL OR \"modelId\" = $2)"
        " AND ($3::text IS NULL OR \"saeId\" = $3) ORDER BY id DESC LIMIT $4 OFFSET $5) v", 6, 1},
#undef RA_TS
#undef RA_NEURON_COLS
#undef RA_ACTIVATIONS
#undef RA_SCORES
#undef RA_EXPLANATIONS
#undef RA_FEATURE_JOINS
#undef RA_FEATURE_V
};
