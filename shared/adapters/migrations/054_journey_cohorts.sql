-- Cohorts (issue 12, P7 entering): profiles entering set-wise (shared/domain/journeys/
-- entering.py) from one template in one chunk share its instance document but for their
-- two ids. The document is written once, in the chunk's cohort row, and each instance
-- row names its cohort instead of carrying a copy (NULL document): a jsonb of a few
-- hundred bytes a profile was 12 of the 65 µs PostgreSQL spent on an entering profile
-- (bench/p7j_shapes.py). Readers take the instance's own document, else its cohort's with
-- the ids added (journey_store.DOCUMENT); an instance's first move writes its own.
-- The cohort carries no personal data (no profile id): erasing a profile leaves it.
-- No foreign key from the instances: its check would cost each entering row a look-up.
CREATE TABLE IF NOT EXISTS journey_cohorts (
    tenant_id    text        NOT NULL,
    cohort_id    uuid        NOT NULL,
    journey_id   text        NOT NULL,
    version      integer     NOT NULL,
    document     jsonb       NOT NULL,  -- an instance's, without profileId and instanceId
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, cohort_id)
);
ALTER TABLE journey_instances ADD COLUMN IF NOT EXISTS cohort_id uuid;
ALTER TABLE journey_instances ALTER COLUMN document DROP NOT NULL;
DO $$ BEGIN
    ALTER TABLE journey_instances ADD CONSTRAINT journey_instances_document_or_cohort
        CHECK (document IS NOT NULL OR cohort_id IS NOT NULL);
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;
