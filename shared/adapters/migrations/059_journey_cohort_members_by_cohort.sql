-- A version's instances entered in a cohort (P7 entering, issue 12) are found through
-- their cohorts, no longer by the version's own node and entered-at indexes: those hold
-- the instances entered one by one only. All of a cohort's members have one key in each
-- (the version, the node it entered at, the instant it entered); with a heap whose free
-- space is reused, their row ids arrive out of order and each entry rewrote a posting
-- list in the middle of its page: the two indexes were 3.5-6 µs of a backend a profile
-- entering (EXPLAIN ANALYZE of the statement, seven rounds at 500,000 in). Queries of a
-- version's instances read both sides (journey_store.of_versions): its own rows by these
-- indexes, its cohorts by journey_cohorts_version and their members by
-- journey_instances_cohort_of (migration 057).
ALTER TABLE journey_cohorts ADD COLUMN IF NOT EXISTS entered_at timestamptz;
UPDATE journey_cohorts c SET entered_at = coalesce(
    (SELECT min(i.entered_at) FROM journey_instances i WHERE i.cohort_id = c.cohort_id),
    c.created_at)
 WHERE c.entered_at IS NULL;
ALTER TABLE journey_cohorts ALTER COLUMN entered_at SET NOT NULL;
CREATE INDEX IF NOT EXISTS journey_cohorts_version
    ON journey_cohorts (tenant_id, journey_id, version, entered_at);

CREATE INDEX IF NOT EXISTS journey_instances_node_own
    ON journey_instances (tenant_id, journey_id, version, node)
    WHERE state = 'waiting' AND cohort_id IS NULL;
DROP INDEX IF EXISTS journey_instances_node;
ALTER INDEX journey_instances_node_own RENAME TO journey_instances_node;

CREATE INDEX IF NOT EXISTS journey_instances_entered_own
    ON journey_instances (tenant_id, journey_id, version, entered_at)
    WHERE cohort_id IS NULL;
DROP INDEX IF EXISTS journey_instances_entered;
ALTER INDEX journey_instances_entered_own RENAME TO journey_instances_entered;
