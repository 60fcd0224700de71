-- Journey event types (issue 12): typed fields, an identifying condition, a profile key
-- (shared/domain/journeys/journey_events.py), as the admin API stored them.
CREATE TABLE journey_event_types (
    tenant_id   text        NOT NULL,
    event_id    text        NOT NULL,
    definition  jsonb       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, event_id)
);
