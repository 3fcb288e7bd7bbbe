-- 0001_core.sql: saed's core schema.
--
-- The tables behind Neuronpedia-shaped feature dashboards (models, source_sets, saes,
-- features, activations, explanations, explanation_scores, steer_outputs,
-- steer_output_features) and the job queue the workers pull from (jobs).
--
-- Column names match Neuronpedia's Prisma schema where a column exists there. They are quoted
-- camelCase ("maxActApprox") or plain snake_case (frac_nonzero), so that rows export to the
-- Neuronpedia JSONL layout with the same keys and the API can return rows as they are. Columns
-- added by saed are listed after the Neuronpedia ones in each table.
--
-- What this file does not do:
--   * BEGIN/COMMIT and the schema_migrations row: the migration runner handles both.
--   * Explanation.embedding (pgvector vector(256)): left out because saed runs on plain
--     PostgreSQL 15 with no extensions. Full-text search on description is used instead.
--   * Neuronpedia's user, list, comment, release and lookup tables (ExplanationType etc.).
--     Their names are stored as plain text with no foreign key ("typeName", "creatorId", ...).
--
-- Ids: Neuronpedia uses cuid strings. The app generates its own ids, and the
-- gen_random_uuid()::text defaults (built into PostgreSQL 13+) are only a fallback.
-- Timestamps are timestamptz DEFAULT now(). The "updatedAt" columns are also kept current by
-- the saed_touch_updated_at trigger.
-- Arrays are NOT NULL DEFAULT '{}', so clients always get [] and never null.

-- ---------------------------------------------------------------------------------------------
-- Shared trigger function: "updatedAt" := now() on every UPDATE.
CREATE FUNCTION saed_touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW."updatedAt" := now();
    RETURN NEW;
END;
$$;

-- ---------------------------------------------------------------------------------------------
-- models: Neuronpedia "Model" (a base LM, e.g. gpt2-small), plus where saed loads it from.
-- "defaultSourceSetName"/"defaultSourceId" are plain text on purpose. A foreign key to saes
-- would form a cycle with saes."modelId" and complicate deletes.
CREATE TABLE models (
    id                      text        PRIMARY KEY
                                        CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$'),
    "displayName"           text        NOT NULL DEFAULT '',
    "displayNameShort"      text        NOT NULL DEFAULT '',
    "creatorId"             text,
    owner                   text        NOT NULL DEFAULT '',
    website                 text,
    "tlensId"               text,
    dimension               integer,                         -- d_model
    layers                  integer     NOT NULL,
    "neuronsPerLayer"       integer     NOT NULL,
    thinking                boolean     NOT NULL DEFAULT false,
    visibility              text        NOT NULL DEFAULT 'PUBLIC'
                                        CHECK (visibility IN ('PUBLIC','UNLISTED','PRIVATE')),
    "inferenceEnabled"      boolean     NOT NULL DEFAULT true,
    instruct                boolean     NOT NULL DEFAULT false,
    "defaultSourceSetName"  text,
    "defaultSourceId"       text,
    -- saed
    architecture            text        NOT NULL,            -- model family, e.g. 'gpt2'
    path                    text        NOT NULL,            -- weights directory / file
    config                  jsonb       NOT NULL,            -- parsed model config
    "contextSize"           integer     NOT NULL,
    "vocabSize"             integer     NOT NULL,
    "createdAt"             timestamptz NOT NULL DEFAULT now(),
    "updatedAt"             timestamptz NOT NULL DEFAULT now()
);

CREATE TRIGGER models_touch BEFORE UPDATE ON models
    FOR EACH ROW EXECUTE FUNCTION saed_touch_updated_at();

-- ---------------------------------------------------------------------------------------------
-- source_sets: Neuronpedia "SourceSet", a family of SAEs over layers, e.g. 'res-jb'.
-- "releaseName" would point at SourceRelease, which saed does not have, so it is plain text.
CREATE TABLE source_sets (
    "modelId"               text        NOT NULL REFERENCES models (id) ON DELETE RESTRICT,
    name                    text        NOT NULL
                                        CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$'),
    description             text        NOT NULL DEFAULT '',
    type                    text        NOT NULL DEFAULT '',
    "creatorName"           text        NOT NULL DEFAULT '',
    urls                    text[]      NOT NULL DEFAULT '{}',
    "creatorEmail"          text,
    "creatorId"             text,
    "releaseName"           text,
    "hasDashboards"         boolean     NOT NULL DEFAULT true,
    "allowInferenceSearch"  boolean     NOT NULL DEFAULT true,
    visibility              text        NOT NULL DEFAULT 'PRIVATE'
                                        CHECK (visibility IN ('PUBLIC','UNLISTED','PRIVATE')),
    "hasGraphs"             boolean     NOT NULL DEFAULT false,
    "graphEnabled"          boolean     NOT NULL DEFAULT false,
    "similarityMatrixEnabled" boolean   NOT NULL DEFAULT false,
    "defaultOfModelId"      text,
    "defaultGraphModelId"   text,
    "defaultRange"          integer     NOT NULL DEFAULT 1,
    "defaultShowBreaks"     boolean     NOT NULL DEFAULT true,
    "showDfa"               boolean     NOT NULL DEFAULT false,
    "showCorrelated"        boolean     NOT NULL DEFAULT false,
    "showHeadAttribution"   boolean     NOT NULL DEFAULT false,
    "showUmap"              boolean     NOT NULL DEFAULT false,
    "createdAt"             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY ("modelId", name)
);

-- ---------------------------------------------------------------------------------------------
-- saes: Neuronpedia "Source", one SAE. id is the Neuronpedia layer string,
-- "{layer}-{setName}[__{suffix}]", e.g. '6-res-jb'.
-- The RESTRICT on "modelId" makes deleting a model that still has SAEs fail with SQLSTATE
-- 23503, which the API returns as 409.
CREATE TABLE saes (
    "modelId"               text        NOT NULL REFERENCES models (id) ON DELETE RESTRICT,
    id                      text        NOT NULL
                                        CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$'),
    "setName"               text        NOT NULL,
    "creatorId"             text,
    "hasDashboards"         boolean     NOT NULL DEFAULT true,
    "inferenceEnabled"      boolean     NOT NULL DEFAULT false,
    visibility              text        NOT NULL DEFAULT 'PRIVATE'
                                        CHECK (visibility IN ('PUBLIC','UNLISTED','PRIVATE')),
    "hasUmap"               boolean     NOT NULL DEFAULT false,
    "hasUmapLogSparsity"    boolean     NOT NULL DEFAULT false,
    "hasUmapClusters"       boolean     NOT NULL DEFAULT false,
    "saelensConfig"         jsonb,
    "saelensRelease"        text,
    "saelensSaeId"          text,
    "hfRepoId"              text,
    "hfFolderId"            text,
    num_prompts             integer,
    num_tokens_in_prompt    integer,
    dataset                 text,
    notes                   text,
    "defaultOfModelId"      text,
    "cosSimMatchModelId"    text,
    "cosSimMatchSourceId"   text,
    -- saed
    path                    text        NOT NULL,            -- SAE weights directory / file
    "hookName"              text        NOT NULL,            -- TL hook, e.g. blocks.6.hook_resid_pre
    architecture            text        NOT NULL,            -- standard, gated, jumprelu, topk, ...
    "dIn"                   integer     NOT NULL CHECK ("dIn" > 0),
    "dSae"                  integer     NOT NULL CHECK ("dSae" > 0),
    layer                   integer     CHECK (layer >= 0),  -- model layer of the hook
    "createdAt"             timestamptz NOT NULL DEFAULT now(),
    "updatedAt"             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY ("modelId", id),
    FOREIGN KEY ("modelId", "setName") REFERENCES source_sets ("modelId", name) ON DELETE RESTRICT
);

CREATE TRIGGER saes_touch BEFORE UPDATE ON saes
    FOR EACH ROW EXECUTE FUNCTION saed_touch_updated_at();

-- SAEs of a set: SELECT ... FROM saes WHERE "modelId"=$1 AND "setName"=$2; also the RESTRICT
-- check when a source set is deleted.
CREATE INDEX saes_set ON saes ("modelId", "setName");

-- ---------------------------------------------------------------------------------------------
-- features: Neuronpedia "Neuron", one SAE latent. layer = saes.id. index is a decimal string,
-- as in Neuronpedia. It must be in canonical form (no leading zeros, at most 9 digits) so that
-- '7' and '007' cannot both exist. "indexInt" holds the same number as an integer for numeric
-- ordering and ranges, since text order is '0','1','10','100',... Its expression only casts
-- strings the CHECK accepts. Generated columns are computed before CHECKs run, so a bare cast
-- would turn a bad index into 22P02/22003 instead of the CHECK's 23514.
CREATE TABLE features (
    "modelId"               text        NOT NULL,
    layer                   text        NOT NULL,
    index                   text        NOT NULL CHECK (index ~ '^(0|[1-9][0-9]{0,8})$'),
    "sourceSetName"         text,
    "creatorId"             text,
    "createdAt"             timestamptz NOT NULL DEFAULT now(),
    "maxActApprox"          double precision DEFAULT 0,
    "hasVector"             boolean     NOT NULL DEFAULT false,
    vector                  double precision[] NOT NULL DEFAULT '{}',
    "vectorLabel"           text,
    "vectorDefaultSteerStrength" double precision DEFAULT 10,
    "hookName"              text,
    "topkCosSimIndices"     integer[]   NOT NULL DEFAULT '{}',
    "topkCosSimValues"      double precision[] NOT NULL DEFAULT '{}',
    neuron_alignment_indices    integer[]          NOT NULL DEFAULT '{}',
    neuron_alignment_values     double precision[] NOT NULL DEFAULT '{}',
    neuron_alignment_l1         double precision[] NOT NULL DEFAULT '{}',
    correlated_neurons_indices  integer[]          NOT NULL DEFAULT '{}',
    correlated_neurons_pearson  double precision[] NOT NULL DEFAULT '{}',
    correlated_neurons_l1       double precision[] NOT NULL DEFAULT '{}',
    correlated_features_indices integer[]          NOT NULL DEFAULT '{}',
    correlated_features_pearson double precision[] NOT NULL DEFAULT '{}',
    correlated_features_l1      double precision[] NOT NULL DEFAULT '{}',
    pos_str                 text[]      NOT NULL DEFAULT '{}',
    pos_values              double precision[] NOT NULL DEFAULT '{}',
    neg_str                 text[]      NOT NULL DEFAULT '{}',
    neg_values              double precision[] NOT NULL DEFAULT '{}',
    frac_nonzero            double precision NOT NULL DEFAULT 0,
    freq_hist_data_bar_heights   double precision[] NOT NULL DEFAULT '{}',
    freq_hist_data_bar_values    double precision[] NOT NULL DEFAULT '{}',
    logits_hist_data_bar_heights double precision[] NOT NULL DEFAULT '{}',
    logits_hist_data_bar_values  double precision[] NOT NULL DEFAULT '{}',
    decoder_weights_dist    double precision[] NOT NULL DEFAULT '{}',
    umap_cluster            integer,
    umap_log_feature_sparsity double precision,
    umap_x                  double precision,
    umap_y                  double precision,
    -- saed
    "indexInt"              integer     GENERATED ALWAYS AS
                            (CASE WHEN index ~ '^[0-9]{1,9}$' THEN index::integer END) STORED,
    PRIMARY KEY ("modelId", layer, index),
    FOREIGN KEY ("modelId", layer) REFERENCES saes ("modelId", id) ON DELETE CASCADE
);

-- list / export / range: SELECT ... FROM features WHERE "modelId"=$1 AND layer=$2
--   AND "indexInt" BETWEEN $3 AND $4 ORDER BY "indexInt" (also the numeric activations batches)
CREATE UNIQUE INDEX features_index_int ON features ("modelId", layer, "indexInt");

-- top features of an SAE: SELECT ... WHERE "modelId"=$1 AND layer=$2 ORDER BY "maxActApprox" DESC
CREATE INDEX features_max_act ON features ("modelId", layer, "maxActApprox");

-- ---------------------------------------------------------------------------------------------
-- jobs: the work queue (River / graphile-worker pattern, see DESIGN.md "Job queue").
--   claim:    UPDATE ... WHERE id = (SELECT id ... WHERE state='available' AND run_after<=now()
--             ORDER BY priority DESC, run_after, id FOR UPDATE SKIP LOCKED LIMIT 1)
--   complete: UPDATE ... WHERE id=$1 AND state='running' AND attempt=$n
--   sweeper:  running jobs whose lease expired go back to 'available'.
-- "modelId"/"saeId" are optional links used for filtering. Their RESTRICT foreign keys make
-- deleting a model or SAE that still has jobs fail with 23503, which the API returns as 409.
-- Created before activations, which point at it.
CREATE TABLE jobs (
    id                      bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind                    text        NOT NULL CHECK (kind <> ''),
    state                   text        NOT NULL DEFAULT 'available'
                                        CHECK (state IN ('available','running','completed',
                                                         'failed','cancelled')),
    priority                smallint    NOT NULL DEFAULT 0,
    payload                 jsonb       NOT NULL DEFAULT '{}',
    progress                jsonb       NOT NULL DEFAULT '{}',
    attempt                 integer     NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts            integer     NOT NULL DEFAULT 5 CHECK (max_attempts > 0),
    run_after               timestamptz NOT NULL DEFAULT now(),
    lease_expires_at        timestamptz,
    heartbeat_at            timestamptz,
    worker_id               text,
    errors                  jsonb       NOT NULL DEFAULT '[]',   -- [{attempt, at, error}, ...]
    cancel_requested        boolean     NOT NULL DEFAULT false,
    "modelId"               text        REFERENCES models (id) ON DELETE RESTRICT,
    "saeId"                 text,
    created_at              timestamptz NOT NULL DEFAULT now(),
    started_at              timestamptz,
    finished_at             timestamptz,
    FOREIGN KEY ("modelId", "saeId") REFERENCES saes ("modelId", id) ON DELETE RESTRICT,
    -- A composite FK with a NULL column is not checked (MATCH SIMPLE). Require the model
    -- whenever an SAE is named, so that "saeId" is always checked.
    CONSTRAINT jobs_sae_needs_model CHECK ("saeId" IS NULL OR "modelId" IS NOT NULL),
    CONSTRAINT jobs_running_has_lease
        CHECK (state <> 'running' OR (lease_expires_at IS NOT NULL AND worker_id IS NOT NULL)),
    CONSTRAINT jobs_finished_has_time
        CHECK (state NOT IN ('completed','failed','cancelled') OR finished_at IS NOT NULL)
);

-- claim: SELECT id FROM jobs WHERE state='available' AND run_after<=now()
--   ORDER BY priority DESC, run_after, id FOR UPDATE SKIP LOCKED LIMIT 1
CREATE INDEX jobs_claim ON jobs (priority DESC, run_after, id) WHERE state = 'available';

-- sweeper: UPDATE jobs SET state='available' ... WHERE state='running' AND lease_expires_at<now()
CREATE INDEX jobs_lease ON jobs (lease_expires_at) WHERE state = 'running';

-- job list for a model / SAE: SELECT ... WHERE "modelId"=$1 [AND "saeId"=$2] [AND state=$3];
-- also the RESTRICT checks when a model or SAE is deleted.
CREATE INDEX jobs_model_sae_state ON jobs ("modelId", "saeId", state);

-- Wake idle workers. LISTEN saed_jobs; the payload is the job kind. This fires when a job is
-- inserted as available or goes back to available (retry, sweeper). PostgreSQL merges
-- identical notifications within one transaction, so a bulk insert of one kind sends only
-- one. saed_jobs_cancel (payload: job id) fires when cancellation is requested on a job that
-- is still live. Workers otherwise check cancel_requested between batches.
CREATE FUNCTION saed_jobs_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state = 'available'
       AND (TG_OP = 'INSERT' OR OLD.state IS DISTINCT FROM 'available') THEN
        PERFORM pg_notify('saed_jobs', NEW.kind);
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.cancel_requested AND NOT OLD.cancel_requested
       AND NEW.state IN ('available','running') THEN
        PERFORM pg_notify('saed_jobs_cancel', NEW.id::text);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER jobs_notify_insert AFTER INSERT ON jobs
    FOR EACH ROW WHEN (NEW.state = 'available')
    EXECUTE FUNCTION saed_jobs_notify();

CREATE TRIGGER jobs_notify_update AFTER UPDATE OF state, cancel_requested ON jobs
    FOR EACH ROW EXECUTE FUNCTION saed_jobs_notify();

-- ---------------------------------------------------------------------------------------------
-- activations: Neuronpedia "Activation", one top-activating example (a whole prompt window)
-- of a feature. "jobId" is the dashboard job that wrote the row. A retried job deletes its
-- own rows before inserting again, so a retry replaces and never duplicates.
CREATE TABLE activations (
    id                      text        PRIMARY KEY DEFAULT gen_random_uuid()::text,
    "modelId"               text        NOT NULL,
    layer                   text        NOT NULL,
    index                   text        NOT NULL,
    tokens                  text[]      NOT NULL,
    values                  double precision[] NOT NULL,
    "maxValue"              double precision NOT NULL,
    "maxValueTokenIndex"    integer     NOT NULL,
    "minValue"              double precision NOT NULL,
    "dfaValues"             double precision[] NOT NULL DEFAULT '{}',
    "dfaTargetIndex"        integer,
    "dfaMaxValue"           double precision,
    "zQIndices"             integer[]   NOT NULL DEFAULT '{}',
    "zKIndices"             integer[]   NOT NULL DEFAULT '{}',
    "zValues"               double precision[] NOT NULL DEFAULT '{}',
    "lossValues"            double precision[] NOT NULL DEFAULT '{}',
    "logitContributions"    text,                            -- JSON string, as in Neuronpedia
    "binMin"                double precision,
    "binMax"                double precision,
    "binContains"           double precision,
    "qualifyingTokenIndex"  integer,
    "dataIndex"             text,
    "dataSource"            text,
    "creatorId"             text,
    "createdAt"             timestamptz NOT NULL DEFAULT now(),
    -- saed
    "jobId"                 bigint      REFERENCES jobs (id) ON DELETE SET NULL,
    CONSTRAINT activations_tokens_values CHECK (cardinality(tokens) = cardinality(values)),
    FOREIGN KEY ("modelId", layer, index)
        REFERENCES features ("modelId", layer, index) ON DELETE CASCADE
);

-- feature page: SELECT ... FROM activations WHERE "modelId"=$1 AND layer=$2 AND index=$3
--   ORDER BY "maxValue" DESC; also the cascade when a feature is deleted.
CREATE INDEX activations_feature ON activations ("modelId", layer, index, "maxValue" DESC);

-- retry: DELETE FROM activations WHERE "jobId"=$1; also ON DELETE SET NULL from jobs.
CREATE INDEX activations_job ON activations ("jobId") WHERE "jobId" IS NOT NULL;

-- ---------------------------------------------------------------------------------------------
-- explanations: Neuronpedia "Explanation", minus the pgvector embedding column (see the top
-- of this file). "descriptionTsv" is saed's full-text search column.
CREATE TABLE explanations (
    id                      text        PRIMARY KEY DEFAULT gen_random_uuid()::text,
    "modelId"               text        NOT NULL,
    layer                   text        NOT NULL,
    index                   text        NOT NULL,
    description             text        NOT NULL,
    "authorId"              text,
    "triggeredByUserId"     text,
    "typeName"              text,                            -- ExplanationType.name
    "explanationModelName"  text,                            -- ExplanationModelType.name
    "scoreV1"               double precision NOT NULL DEFAULT 0,
    "scoreV2"               double precision,
    notes                   text,
    umap_x                  double precision DEFAULT 0,
    umap_y                  double precision DEFAULT 0,
    umap_cluster            integer DEFAULT 0,
    umap_log_feature_sparsity double precision DEFAULT 0,
    "createdAt"             timestamptz NOT NULL DEFAULT now(),
    "updatedAt"             timestamptz NOT NULL DEFAULT now(),
    -- saed
    "descriptionTsv"        tsvector    GENERATED ALWAYS AS (to_tsvector('english', description)) STORED,
    FOREIGN KEY ("modelId", layer, index)
        REFERENCES features ("modelId", layer, index) ON DELETE CASCADE
);

CREATE TRIGGER explanations_touch BEFORE UPDATE ON explanations
    FOR EACH ROW EXECUTE FUNCTION saed_touch_updated_at();

-- feature page: SELECT ... FROM explanations WHERE "modelId"=$1 AND layer=$2 AND index=$3
--   ORDER BY "scoreV2" DESC, "scoreV1" DESC; also the cascade when a feature is deleted.
CREATE INDEX explanations_feature ON explanations ("modelId", layer, index);

-- search: SELECT ... FROM explanations WHERE "descriptionTsv" @@ websearch_to_tsquery('english', $1)
CREATE INDEX explanations_tsv ON explanations USING gin ("descriptionTsv");

-- ---------------------------------------------------------------------------------------------
-- explanation_scores: Neuronpedia "ExplanationScore", one scorer's result for one explanation.
CREATE TABLE explanation_scores (
    id                      text        PRIMARY KEY DEFAULT gen_random_uuid()::text,
    "explanationId"         text        NOT NULL REFERENCES explanations (id) ON DELETE CASCADE,
    value                   double precision NOT NULL,
    "explanationScoreTypeName"  text    NOT NULL,            -- e.g. eleuther_fuzz
    "explanationScoreModelName" text    NOT NULL,
    "initiatedByUserId"     text,
    "jsonDetails"           text        NOT NULL DEFAULT '', -- scorer-specific JSON string
    "createdAt"             timestamptz NOT NULL DEFAULT now()
);

-- scores of explanations: SELECT ... FROM explanation_scores WHERE "explanationId" = ANY($1);
-- also the cascade when an explanation is deleted.
CREATE INDEX explanation_scores_explanation ON explanation_scores ("explanationId");

-- ---------------------------------------------------------------------------------------------
-- steer_outputs: Neuronpedia "SteerOutput", one saved DEFAULT or STEERED generation. Identical
-- settings are served from here instead of being generated again. Outputs are a cache, so
-- they are deleted with their model.
CREATE TABLE steer_outputs (
    id                      text        PRIMARY KEY DEFAULT gen_random_uuid()::text,
    type                    text        NOT NULL CHECK (type IN ('DEFAULT','STEERED')),
    "modelId"               text        NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    "creatorId"             text,
    "inputText"             text        NOT NULL,
    "inputTextMd5"          text,
    "inputTextChatTemplate" text,
    "inputTextChatTemplateMd5" text,
    "outputText"            text        NOT NULL,
    "outputTextChatTemplate" text,
    logprobs                text,                            -- JSON string
    "steerSpecialTokens"    boolean     NOT NULL,
    temperature             double precision NOT NULL,
    "numTokens"             integer     NOT NULL,
    "freqPenalty"           double precision NOT NULL,
    seed                    double precision NOT NULL,
    "strengthMultiplier"    double precision NOT NULL,
    "steerMethod"           text        NOT NULL DEFAULT 'SIMPLE_ADDITIVE',
    version                 integer     NOT NULL DEFAULT 1,
    "connectedDefaultOutputId" text     REFERENCES steer_outputs (id) ON DELETE SET NULL,
    "connectedSteerOutputIds" text[]    NOT NULL DEFAULT '{}',
    "capMonitorOutput"      text,
    "createdAt"             timestamptz NOT NULL DEFAULT now()
);

-- steer cache: SELECT ... FROM steer_outputs WHERE "modelId"=$1 AND type=$2 AND "inputTextMd5"=$3
--   AND temperature=$4 AND "numTokens"=$5 AND seed=$6 ... (the rest filtered on the few hits)
CREATE INDEX steer_outputs_cache ON steer_outputs ("modelId", type, "inputTextMd5");

-- ON DELETE SET NULL from steer_outputs: WHERE "connectedDefaultOutputId"=$1
CREATE INDEX steer_outputs_default ON steer_outputs ("connectedDefaultOutputId")
    WHERE "connectedDefaultOutputId" IS NOT NULL;

-- steer_output_features: Neuronpedia "SteerOutputToNeuron", the features (and strengths) a
-- STEERED output was generated with.
CREATE TABLE steer_output_features (
    "steerOutputId"         text        NOT NULL REFERENCES steer_outputs (id) ON DELETE CASCADE,
    "modelId"               text        NOT NULL,
    layer                   text        NOT NULL,
    index                   text        NOT NULL,
    strength                double precision NOT NULL,
    PRIMARY KEY ("steerOutputId", "modelId", layer, index, strength),
    FOREIGN KEY ("modelId", layer, index)
        REFERENCES features ("modelId", layer, index) ON DELETE CASCADE
);

-- steer cache: outputs steered with feature X at strength s:
--   SELECT "steerOutputId" FROM steer_output_features WHERE "modelId"=$1 AND layer=$2
--   AND index=$3 AND strength=$4; also the cascade when a feature is deleted.
CREATE INDEX steer_output_features_feature
    ON steer_output_features ("modelId", layer, index, strength);
