-- A cohort's timers (issue 12, P7 entering): the instances of a cohort (migration 054)
-- wait on the same timers, due at the same instant, so a set-wise chunk writes one timer
-- a cohort and token here instead of one a profile in journey_timers (heap, primary key
-- and due index: about a fifth of the entering statement's time). When one comes due the
-- engine hands it to the cohort's instances still waiting on that token, as timers of
-- their own in journey_timers (journey_store.expand_cohort_timers), and they fire as
-- any do (paused, stopped and moved instances as any timer's). Those instances are
-- found by journey_instances_cohort: one small index entry an entering profile.
CREATE TABLE IF NOT EXISTS journey_cohort_timers (
    tenant_id    text        NOT NULL,
    cohort_id    uuid        NOT NULL,
    token        integer     NOT NULL,
    due_at       timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, cohort_id, token)
);
CREATE INDEX IF NOT EXISTS journey_cohort_timers_due ON journey_cohort_timers (due_at);
CREATE INDEX IF NOT EXISTS journey_instances_cohort ON journey_instances (tenant_id, cohort_id, token)
    WHERE cohort_id IS NOT NULL AND state = 'waiting';
