-- 0005_autointerp.sql: AutoInterp jobs write explanations and their scores.
--   * explanations."jobId": the autointerp job that wrote the row (NULL for explanations
--     written by hand or imported). A resumed job skips features that already hold one of its
--     rows; a new job of the same method and explainer model replaces only rows that some
--     autointerp job wrote. No foreign key: the mark outlives the job row.
--   * explanation_scores.value may be NULL: an undefined score (a constant simulation, one
--     class only) is stored as null, never as 0.
ALTER TABLE explanations ADD COLUMN "jobId" bigint;
ALTER TABLE explanation_scores ALTER COLUMN value DROP NOT NULL;

-- resume: SELECT ... FROM explanations WHERE "jobId" = $1 (and the feature range)
CREATE INDEX explanations_job ON explanations ("jobId", "modelId", layer) WHERE "jobId" IS NOT NULL;
