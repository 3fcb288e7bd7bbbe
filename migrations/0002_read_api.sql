-- 0002_read_api.sql: what the Neuronpedia read API needs from the schema.
--
-- saed caches GET /api/feature responses in memory (server/fcache.c). Rows that make up a
-- feature's response can be written by other processes too (`saed worker` on another host,
-- `saed import-explanations`), so every write to them announces the SAE it touched:
--
--   NOTIFY saed_features, '<modelId>/<saeId>'   features, activations, explanations,
--                                               explanation_scores, saes rows of that SAE
--   NOTIFY saed_features, '<modelId>/'          models and source_sets rows (every SAE of
--                                               the model embeds them)
--
-- Notifications are sent at commit and merged per transaction, so a dashboard job that
-- writes thousands of rows in one transaction sends one. The triggers are statement-level
-- with transition tables: one pass over the changed rows per statement, not one call per row.
--
-- What this file does not do: cache anything itself, or keep a version counter in a table
-- (a LISTENing server drops what it cached for the SAE; one that lost its LISTEN connection
-- stops caching until it has reconnected).

CREATE FUNCTION saed_features_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    k text;
BEGIN
    IF TG_TABLE_NAME IN ('features', 'activations', 'explanations') THEN
        FOR k IN SELECT DISTINCT c."modelId" || '/' || c.layer FROM changed c LOOP
            PERFORM pg_notify('saed_features', k);
        END LOOP;
        IF TG_OP = 'UPDATE' THEN
            FOR k IN SELECT DISTINCT o."modelId" || '/' || o.layer FROM old_changed o LOOP
                PERFORM pg_notify('saed_features', k);
            END LOOP;
        END IF;
    ELSIF TG_TABLE_NAME = 'explanation_scores' THEN
        -- Scores of an explanation deleted with it: the explanations trigger has announced it.
        FOR k IN SELECT DISTINCT e."modelId" || '/' || e.layer FROM changed c
                 JOIN explanations e ON e.id = c."explanationId" LOOP
            PERFORM pg_notify('saed_features', k);
        END LOOP;
    ELSIF TG_TABLE_NAME = 'saes' THEN
        FOR k IN SELECT DISTINCT c."modelId" || '/' || c.id FROM changed c LOOP
            PERFORM pg_notify('saed_features', k);
        END LOOP;
    ELSIF TG_TABLE_NAME = 'source_sets' THEN
        FOR k IN SELECT DISTINCT c."modelId" || '/' FROM changed c LOOP
            PERFORM pg_notify('saed_features', k);
        END LOOP;
    ELSIF TG_TABLE_NAME = 'models' THEN
        FOR k IN SELECT DISTINCT c.id || '/' FROM changed c LOOP
            PERFORM pg_notify('saed_features', k);
        END LOOP;
    END IF;
    RETURN NULL;
END;
$$;

-- A trigger with transition tables can have one event only, hence three per table.
CREATE TRIGGER features_notify_ins AFTER INSERT ON features REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION saed_features_notify();
CREATE TRIGGER features_notify_upd AFTER UPDATE ON features REFERENCING OLD TABLE AS old_changed NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION saed_features_notify();
CREATE TRIGGER features_notify_del AFTER DELETE ON features REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION saed_features_notify();

CREATE TRIGGER activations_notify_ins AFTER INSERT ON activations REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION saed_features_notify();
CREATE TRIGGER activations_notify_upd AFTER UPDATE ON activations REFERENCING OLD TABLE AS old_changed NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION saed_features_notify();
CREATE TRIGGER activations_notify_del AFTER DELETE ON activations REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION saed_features_notify();

CREATE TRIGGER explanations_notify_ins AFTER INSERT ON explanations REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION saed_features_notify();
CREATE TRIGGER explanations_notify_upd AFTER UPDATE ON explanations REFERENCING OLD TABLE AS old_changed NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION saed_features_notify();
CREATE TRIGGER explanations_notify_del AFTER DELETE ON explanations REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION saed_features_notify();

CREATE TRIGGER explanation_scores_notify_ins AFTER INSERT ON explanation_scores REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION saed_features_notify();
CREATE TRIGGER explanation_scores_notify_upd AFTER UPDATE ON explanation_scores REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION saed_features_notify();
CREATE TRIGGER explanation_scores_notify_del AFTER DELETE ON explanation_scores REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION saed_features_notify();

-- The SAE, set and model rows are embedded in every feature response (source, sourceSet,
-- model). New rows have no cached features yet, so only updates and deletes announce.
CREATE TRIGGER saes_notify_upd AFTER UPDATE ON saes REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION saed_features_notify();
CREATE TRIGGER saes_notify_del AFTER DELETE ON saes REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION saed_features_notify();
CREATE TRIGGER source_sets_notify_upd AFTER UPDATE ON source_sets REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION saed_features_notify();
CREATE TRIGGER source_sets_notify_del AFTER DELETE ON source_sets REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION saed_features_notify();
CREATE TRIGGER models_notify_upd AFTER UPDATE ON models REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION saed_features_notify();
CREATE TRIGGER models_notify_del AFTER DELETE ON models REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION saed_features_notify();

-- No new indexes: explanation search uses explanations_tsv (GIN, 0001), the export and the
-- import walk one SAE's features by features_index_int and explanations_feature (0001).
