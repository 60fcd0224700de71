-- A handed-over message's timeline (shared/domain/timeline.py): when it was accepted,
-- consumed, decided and produced by the processor, consumed, claimed, rendered and handed
-- over by the sender, as Unix seconds in that order (NULL where a stage was not seen);
-- the row's own `at` is when it settled. Written by the settle statement that already
-- writes the row: no write of its own. Nullable and without a default: adding it
-- rewrites nothing.
ALTER TABLE message_trace ADD COLUMN IF NOT EXISTS timeline double precision[];
