-- Timers of a paused version, set aside (issue 12). The engine claims due timers walking
-- journey_timers_due; a paused version's timers coming due stayed there, unclaimable,
-- and every claim (ten a second) went past all of them again — or, planned the other
-- way round, past every instance of every live version, finished ones included (21 ms a
-- claim with 16,000 such instances on the dev stack, growing with them). Now a claim
-- that meets a due timer of a paused version moves it here, once; resuming the version
-- puts its timers back (they are due: they fire at once), stopping it or erasing the
-- profile deletes them. journey_id and version say whose they are, for the resume.
CREATE TABLE IF NOT EXISTS journey_timers_held (
    tenant_id    text        NOT NULL,
    instance_id  uuid        NOT NULL,
    token        integer     NOT NULL,
    due_at       timestamptz NOT NULL,
    journey_id   text        NOT NULL,
    version      integer     NOT NULL,
    PRIMARY KEY (tenant_id, instance_id, token)
);
CREATE INDEX IF NOT EXISTS journey_timers_held_version
    ON journey_timers_held (tenant_id, journey_id, version);
