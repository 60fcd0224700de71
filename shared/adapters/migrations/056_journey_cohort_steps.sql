-- A cohort's steps (issue 12, P7 entering): the instances of a cohort (migration 054)
-- enter through the same steps (entered, the transitions to the first wait, a split's
-- branch), so a set-wise chunk writes one row a cohort and step here, with the number of
-- its members, instead of one a profile in journey_steps (three rows a profile, half of
-- the entering statement's time: 30,000 rows and 626 bytes of WAL each for a chunk of
-- 10,000). Ids come from journey_steps' own sequence, so the relay reads both tables in
-- one (tx, id) order; it publishes a cohort step as one step event a member, as it does
-- any step (services/journeys/step_relay.py). journey_instance_steps reads every step
-- of an instance, its cohort's included (history, export); the per-node counts add up
-- ``members``, which erasing a member takes one from.
CREATE TABLE IF NOT EXISTS journey_cohort_steps (
    id           bigint      PRIMARY KEY DEFAULT nextval('journey_steps_id_seq'),
    tx           xid8        NOT NULL DEFAULT pg_current_xact_id(),
    tenant_id    text        NOT NULL,
    cohort_id    uuid        NOT NULL,
    journey_id   text        NOT NULL,
    version      integer     NOT NULL,
    at           timestamptz NOT NULL,
    kind         text        NOT NULL,
    node         text        NOT NULL,
    detail       text        NOT NULL DEFAULT '',
    members      integer     NOT NULL
);
CREATE INDEX IF NOT EXISTS journey_cohort_steps_relay ON journey_cohort_steps (tx, id);
CREATE INDEX IF NOT EXISTS journey_cohort_steps_cohort ON journey_cohort_steps (tenant_id, cohort_id, id);
CREATE INDEX IF NOT EXISTS journey_cohort_steps_counts
    ON journey_cohort_steps (tenant_id, journey_id, version, node, kind);
-- A cohort's members in any state, in id order (the relay names them all, moved on or
-- not, each by its place); the timer expansion's index, which kept only those waiting,
-- gives way to it (it read each instance's row anyway, for its id).
CREATE INDEX IF NOT EXISTS journey_instances_cohort_members
    ON journey_instances (tenant_id, cohort_id, instance_id) WHERE cohort_id IS NOT NULL;
DROP INDEX IF EXISTS journey_instances_cohort;
CREATE OR REPLACE VIEW journey_instance_steps AS
    SELECT id, tenant_id, journey_id, version, instance_id, profile_id, at, kind, node, detail
      FROM journey_steps
    UNION ALL
    SELECT s.id, s.tenant_id, s.journey_id, s.version, i.instance_id, i.profile_id, s.at,
           s.kind, s.node, s.detail
      FROM journey_cohort_steps s JOIN journey_instances i
        ON i.tenant_id = s.tenant_id AND i.cohort_id = s.cohort_id;
