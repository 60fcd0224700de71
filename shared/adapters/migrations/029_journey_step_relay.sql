-- Step events to Kafka (issue 12): a relay publishes journey_steps in commit order. Ids
-- (bigserial) are taken at insert, not at commit, so a watermark on the id alone would
-- skip a step whose transaction commits after a later id's. Each row records its
-- transaction id instead, and the relay reads only rows of transactions older than every
-- transaction still running (pg_snapshot_xmin): those can no longer change.
ALTER TABLE journey_steps ADD COLUMN tx xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX journey_steps_relay ON journey_steps (tx, id);

CREATE TABLE journey_step_relay (
    relay    text    PRIMARY KEY,
    last_tx  xid8    NOT NULL,
    last_id  bigint  NOT NULL
);
