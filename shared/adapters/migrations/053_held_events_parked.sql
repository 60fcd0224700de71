-- Held events whose message is not published when they come due (paused, unpublished),
-- parked (issue 12's review of what polls walk; the transactional half's pause). The
-- processor's release poll (twice a second) walked the due index past every held event
-- of a paused message, each with a look-up of its message: 235 ms a poll with 200,000
-- held for one paused message on the dev stack, growing with them, while the message
-- stayed paused. Now a poll that meets one parks it (once); publishing or resuming the
-- message unparks its events (in the transaction that changes its state), and the poll
-- finds them again. On a large production table build held_events_releasable first,
-- CONCURRENTLY, with the same name; this file then finds it.
ALTER TABLE held_events ADD COLUMN IF NOT EXISTS parked boolean NOT NULL DEFAULT false;
CREATE INDEX IF NOT EXISTS held_events_releasable ON held_events (due_at) WHERE NOT parked;
CREATE INDEX IF NOT EXISTS held_events_parked ON held_events (tenant_id, event_id) WHERE parked;
DROP INDEX IF EXISTS held_events_due;
