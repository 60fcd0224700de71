-- Recurring audience entries (issue 12): an audience entry with `every` reads its audience
-- again each period; each read is a round, numbered (instances of a round have ids of
-- their own, so a profile that finished may enter again), the next one due at
-- next_entry_at.
ALTER TABLE journey_versions ADD COLUMN entry_round integer NOT NULL DEFAULT 0;
ALTER TABLE journey_versions ADD COLUMN next_entry_at timestamptz;
