-- Scheduled sends share the table of held events: a row is released once its message is
-- published and its due time has come. Paused events are due at once (the instant they
-- were held); scheduled ones at their `scheduled` instant. The due-time index keeps the
-- release poll cheap however many sends are scheduled for later.
ALTER TABLE held_events ADD COLUMN due_at timestamptz;
UPDATE held_events SET due_at = held_at;
ALTER TABLE held_events ALTER COLUMN due_at SET NOT NULL;
ALTER TABLE held_events ALTER COLUMN due_at SET DEFAULT now();
CREATE INDEX held_events_due ON held_events (due_at);
