-- Event statuses and the delivery ledger by week (issue 15, "Data that grows with traffic"):
-- both tables become partitioned by range of accepted_day (a date, UTC), one partition
-- a week (Monday to Monday), dropped whole once past their retention, never DELETEd
-- (shared/domain/partitions.py, shared/adapters/retention_store.py).
--
-- The partition key is deterministic, so deduplication still holds across partitions:
-- a unique key must include it ((pkey, accepted_day), (message_id, accepted_day)), and
-- every copy of a write must compute the same day. It is the day of the pKey's own
-- issue time: pKeys the gateway mints from now on carry it (39 characters, the first
-- 32 bits of the nonce are unix seconds, under the HMAC; shared/domain/pkeys.py), read by
-- pkey_day() below. A key without one (a pKey derived from a Kafka producer's eventKey,
-- or one minted before this migration: 32 characters) takes the day of the row that
-- already holds it, else the day of its first write (shared/adapters/status_store.py).
-- A journey's message (no pKey) likewise in the ledger.
--
-- Rows that are here already: the old table becomes the partition event_status_legacy
-- (deliveries_legacy) of every day before this week, all its rows with the day before
-- this week's Monday, so it goes whole once that day is past the retention. Its one
-- costly step is the unique index (pkey, accepted_day) (see the README: on a large
-- production table build it first, CONCURRENTLY, with the same name; then this finds it).

CREATE FUNCTION pkey_day(pkey text) RETURNS date
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
SELECT CASE WHEN length(pkey) = 39 THEN date '1970-01-01' + (((
         ((strpos('abcdefghijklmnopqrstuvwxyz234567', substr(pkey, 1, 1)) - 1)::bigint << 30)
       | ((strpos('abcdefghijklmnopqrstuvwxyz234567', substr(pkey, 2, 1)) - 1)::bigint << 25)
       | ((strpos('abcdefghijklmnopqrstuvwxyz234567', substr(pkey, 3, 1)) - 1)::bigint << 20)
       | ((strpos('abcdefghijklmnopqrstuvwxyz234567', substr(pkey, 4, 1)) - 1)::bigint << 15)
       | ((strpos('abcdefghijklmnopqrstuvwxyz234567', substr(pkey, 5, 1)) - 1)::bigint << 10)
       | ((strpos('abcdefghijklmnopqrstuvwxyz234567', substr(pkey, 6, 1)) - 1)::bigint << 5)
       |  (strpos('abcdefghijklmnopqrstuvwxyz234567', substr(pkey, 7, 1)) - 1)::bigint
       ) >> 3) / 86400)::integer END
$$;

-- Per-tenant retention (days; NULL: the setting's default; 0: for ever), under floors
-- (shared/domain/partitions.py). Set with `parcours maintenance retention`.
CREATE TABLE tenant_retention (
    tenant_id       text        PRIMARY KEY,
    statuses_days   integer     CHECK (statuses_days >= 0),
    deliveries_days integer     CHECK (deliveries_days >= 0),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

DO $$
DECLARE
    monday date := date_trunc('week', now() AT TIME ZONE 'UTC')::date;
    legacy_day date := monday - 1;
    week date;
BEGIN
    ------------------------------------------------------------------ event_status
    ALTER TABLE event_status RENAME TO event_status_legacy;
    ALTER INDEX event_status_reason_trgm RENAME TO event_status_legacy_reason_trgm;
    DROP TRIGGER event_status_inserted_webhooks ON event_status_legacy;
    DROP TRIGGER event_status_changed_webhooks ON event_status_legacy;
    EXECUTE format('ALTER TABLE event_status_legacy ADD COLUMN accepted_day date NOT NULL'
                   ' DEFAULT %L', legacy_day);
    IF to_regclass('event_status_legacy_key') IS NULL THEN
        CREATE UNIQUE INDEX event_status_legacy_key ON event_status_legacy (pkey, accepted_day);
    END IF;
    ALTER TABLE event_status_legacy DROP CONSTRAINT event_status_pkey;

    CREATE TABLE event_status (
        pkey         text        NOT NULL,
        tenant_id    text        NOT NULL,
        event_id     text        NOT NULL,
        status       text        NOT NULL,
        rank         smallint    NOT NULL,
        reason       text,
        message_id   uuid,
        created_at   timestamptz NOT NULL DEFAULT now(),
        updated_at   timestamptz NOT NULL DEFAULT now(),
        accepted_day date        NOT NULL DEFAULT ((now() AT TIME ZONE 'UTC')::date),
        PRIMARY KEY (pkey, accepted_day)
    ) PARTITION BY RANGE (accepted_day);
    CREATE INDEX event_status_reason_trgm ON event_status USING gin (reason gin_trgm_ops)
        WHERE reason IS NOT NULL;
    EXECUTE format('ALTER TABLE event_status ATTACH PARTITION event_status_legacy'
                   ' FOR VALUES FROM (MINVALUE) TO (%L)', monday);
    CREATE TABLE event_status_default PARTITION OF event_status DEFAULT;
    FOR i IN 0..2 LOOP
        week := monday + 7 * i;
        EXECUTE format('CREATE TABLE %I PARTITION OF event_status FOR VALUES FROM (%L) TO (%L)',
                       'event_status_w' || to_char(week, 'YYYYMMDD'), week, week + 7);
    END LOOP;
    CREATE TRIGGER event_status_inserted_webhooks AFTER INSERT ON event_status
        FOR EACH ROW EXECUTE FUNCTION webhook_status_changed();
    CREATE TRIGGER event_status_changed_webhooks AFTER UPDATE ON event_status
        FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
        EXECUTE FUNCTION webhook_status_changed();

    ------------------------------------------------------------------ deliveries
    ALTER TABLE deliveries RENAME TO deliveries_legacy;
    ALTER INDEX deliveries_detail_trgm RENAME TO deliveries_legacy_detail_trgm;
    EXECUTE format('ALTER TABLE deliveries_legacy ADD COLUMN accepted_day date NOT NULL'
                   ' DEFAULT %L', legacy_day);
    IF to_regclass('deliveries_legacy_key') IS NULL THEN
        CREATE UNIQUE INDEX deliveries_legacy_key ON deliveries_legacy (message_id, accepted_day);
    END IF;
    ALTER TABLE deliveries_legacy DROP CONSTRAINT deliveries_pkey;

    CREATE TABLE deliveries (
        message_id   uuid        NOT NULL,
        tenant_id    text        NOT NULL,
        pkey         text,
        channel      text        NOT NULL,
        state        text        NOT NULL,
        attempts     integer     NOT NULL DEFAULT 1,
        detail       text,
        updated_at   timestamptz NOT NULL DEFAULT now(),
        accepted_day date        NOT NULL DEFAULT ((now() AT TIME ZONE 'UTC')::date),
        PRIMARY KEY (message_id, accepted_day),
        CONSTRAINT deliveries_state_check
            CHECK (state IN ('sending', 'waiting', 'sent', 'failed'))
    ) PARTITION BY RANGE (accepted_day);
    CREATE INDEX deliveries_detail_trgm ON deliveries USING gin (detail gin_trgm_ops)
        WHERE detail IS NOT NULL;
    EXECUTE format('ALTER TABLE deliveries ATTACH PARTITION deliveries_legacy'
                   ' FOR VALUES FROM (MINVALUE) TO (%L)', monday);
    CREATE TABLE deliveries_default PARTITION OF deliveries DEFAULT;
    FOR i IN 0..2 LOOP
        week := monday + 7 * i;
        EXECUTE format('CREATE TABLE %I PARTITION OF deliveries FOR VALUES FROM (%L) TO (%L)',
                       'deliveries_w' || to_char(week, 'YYYYMMDD'), week, week + 7);
    END LOOP;
END $$;
