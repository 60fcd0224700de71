-- Events that arrived while their message was paused, kept until it is resumed.
CREATE TABLE held_events (
    pkey        text        PRIMARY KEY,
    tenant_id   text        NOT NULL,
    event_id    text        NOT NULL,
    trigger     jsonb       NOT NULL,
    held_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX held_events_event ON held_events (tenant_id, event_id, held_at);
