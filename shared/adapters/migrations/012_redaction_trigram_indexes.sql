-- Erasure redacts a profile's addresses wherever statuses' reasons and the delivery
-- ledger's replies quote them (shared/adapters/event_redaction.py: `reason ~* pattern`).
-- Trigram indexes let it find those rows instead of reading every status and delivery;
-- only rows with a text are indexed (a status without a reason costs nothing more).
-- pg_trgm ships with PostgreSQL (contrib) and is a trusted extension: the database's
-- owner may create it. Building them blocks writes to the tables meanwhile (seconds a
-- million rows): on a large database, create them first with CREATE INDEX CONCURRENTLY
-- under these names and this migration leaves them as they are.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX IF NOT EXISTS event_status_reason_trgm
    ON event_status USING gin (reason gin_trgm_ops) WHERE reason IS NOT NULL;
CREATE INDEX IF NOT EXISTS deliveries_detail_trgm
    ON deliveries USING gin (detail gin_trgm_ops) WHERE detail IS NOT NULL;
