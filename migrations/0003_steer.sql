-- 0003_steer.sql: what POST /api/steer needs from steer_outputs and steer_output_features.
--
-- * steer_output_features pointed at features rows, which exist only once a dashboard job has
--   written them. Steering works with any feature of a registered SAE, so the link now goes to
--   the SAE (saes) and keeps the index in the canonical form features use. Deleting the SAE
--   deletes the links: its STEERED outputs then match no request (a request always names
--   features), so a re-registered SAE of the same id is never answered from old outputs.
-- * "nLogprobs": how many alternatives per token the stored logprobs hold (0: none). It is part
--   of the cache key, since an output stored without logprobs cannot answer a request for them.

ALTER TABLE steer_output_features
    DROP CONSTRAINT "steer_output_features_modelId_layer_index_fkey",
    ADD CONSTRAINT steer_output_features_sae_fkey
        FOREIGN KEY ("modelId", layer) REFERENCES saes ("modelId", id) ON DELETE CASCADE,
    ADD CONSTRAINT steer_output_features_index_canonical
        CHECK (index ~ '^(0|[1-9][0-9]{0,8})$');

-- ON DELETE CASCADE from saes: WHERE "modelId"=$1 AND layer=$2 (the feature index above serves
-- it through its leading columns).

ALTER TABLE steer_outputs
    ADD COLUMN "nLogprobs" integer NOT NULL DEFAULT 0 CHECK ("nLogprobs" BETWEEN 0 AND 20);
