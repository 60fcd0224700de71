-- The reactions outbox as a table of its own (issue 11, TRACK). The relay used to mark
-- every relayed row of `reactions` published: an UPDATE that could not be HOT
-- (published_at is in two partial indexes), so a second version of the ~700-byte row
-- with an entry in every index, and a dead one for vacuum — 27-31 µs a row against 21-22
-- to insert it (migration 038's measure). Now a new reaction also gets a small row here,
-- in the same statement, and the relay deletes the rows it produces (DELETE … RETURNING,
-- in the transaction that produces them): no second version of any reactions row.
--
-- A row here names its reaction; the record produced is read from `reactions` when it is
-- relayed. A reaction erased before it was relayed (its profile's data deleted) leaves
-- its row here unmatched: the relay deletes it and produces nothing.
CREATE TABLE reaction_outbox (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   text        NOT NULL,
    reaction_id uuid        NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);

-- What was still to relay goes to the outbox, oldest first.
INSERT INTO reaction_outbox (tenant_id, reaction_id, recorded_at)
SELECT tenant_id, reaction_id, recorded_at FROM reactions
 WHERE published_at IS NULL ORDER BY recorded_at;

-- The retention purge keys on recorded_at now (reactions_recorded, entered at the insert
-- instead of at the relay's update: the same number of index entries a click), skipping
-- a reaction still in the outbox. On a large production table build reactions_recorded
-- first, CONCURRENTLY, with the same name; this file then finds it.
CREATE INDEX IF NOT EXISTS reactions_recorded ON reactions (recorded_at);
DROP INDEX IF EXISTS reactions_unpublished;
DROP INDEX IF EXISTS reactions_published;
ALTER TABLE reactions DROP COLUMN published_at;
