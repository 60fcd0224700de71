-- Journey definitions (issue 12): a draft per journey, as written (JSON), until versions
-- are published (the engine's session). State: draft for now.
CREATE TABLE journeys (
    tenant_id   text        NOT NULL,
    journey_id  text        NOT NULL,
    name        text        NOT NULL DEFAULT '',
    state       text        NOT NULL DEFAULT 'draft',
    draft       jsonb       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, journey_id)
);
