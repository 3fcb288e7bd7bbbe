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

    /* ---- dashboard results: a job replaces its feature range, never duplicates it ---- */
    [DB_FEATURES_DELETE_RANGE] = {"features_delete_range",
        "DELETE FROM features WHERE \"modelId\" = $1 AND layer = $2 AND \"indexInt\" >= $3 AND \"indexInt\" < $4", 4, 0},
    /* Rows arrive as one JSON array per batch: one round trip, one prepared statement. */
    [DB_FEATURES_INSERT] = {"features_insert",
        "INSERT INTO features (\"modelId\", layer, index, \"sourceSetName\", \"creatorId\", \"maxActApprox\", \"hasVector\", vector, \"vectorLabel\", \"vectorDefaultSteerStrength\", \"hookName\", \"topkCosSimIndices\", \"topkCosSimValues\", neuron_alignment_indices, neuron_alignment_values, neuron_alignment_l1, correlated_neurons_indices, correlated_neurons_pearson, correlated_neurons_l1, correlated_features_indices, correlated_features_pearson, correlated_features_l1, pos_str, pos_values, neg_str, neg_values, frac_nonzero, freq_hist_data_bar_heights, freq_hist_data_bar_values, logits_hist_data_bar_heights, logits_hist_data_bar_values, decoder_weights_dist) SELECT \"modelId\", layer, index, \"sourceSetName\", \"creatorId\", \"maxActApprox\", \"hasVector\", vector, \"vectorLabel\", \"vectorDefaultSteerStrength\", \"hookName\", \"topkCosSimIndices\", \"topkCosSimValues\", neuron_alignment_indices, neuron_alignment_values, neuron_alignment_l1, correlated_neurons_indices, correlated_neurons_pearson, correlated_neurons_l1, correlated_features_indices, correlated_features_pearson, correlated_features_l1, pos_str, pos_values, neg_str, neg_values, frac_nonzero, freq_hist_data_bar_heights, freq_hist_data_bar_values, logits_hist_data_bar_heights, logits_hist_data_bar_values, decoder_weights_dist FROM json_populate_recordset(NULL::features, $1::json)", 1, 0},
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
};
