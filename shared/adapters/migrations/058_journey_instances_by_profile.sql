-- A profile's instances (P7 entering, issue 12): the waiting ones by the live index, now
-- (tenant, profile, journey) — the same unique set of columns, so the same rule and the
-- same ON CONFLICT target —, the others by an index of ended instances only. A profile
-- entering a journey then writes one index entry for both (the live one), where every
-- entry wrote two: ~3.5 µs of a backend a profile of a million entering (the statement
-- alone, ten rounds). Queries of a profile in any state say so,
-- ``(state = 'waiting' OR state <> 'waiting')`` (journey_store.ANY_STATE): the planner
-- answers each side by its index (a BitmapOr).
CREATE UNIQUE INDEX IF NOT EXISTS journey_instances_live_by_profile
    ON journey_instances (tenant_id, profile_id, journey_id) WHERE state = 'waiting';
DROP INDEX IF EXISTS journey_instances_live;
ALTER INDEX journey_instances_live_by_profile RENAME TO journey_instances_live;
CREATE INDEX IF NOT EXISTS journey_instances_ended
    ON journey_instances (tenant_id, profile_id) WHERE state <> 'waiting';
DROP INDEX IF EXISTS journey_instances_profile;
