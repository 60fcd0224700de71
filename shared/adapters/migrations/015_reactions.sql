-- Reactions of recipients (opens, clicks, bounces...), recorded here first and produced to
-- parcours.reactions.v1 by a relay: the table is the outbox (published_at null: still to
-- produce) and the deduplication (one row per reaction id).
CREATE TABLE reactions (
    tenant_id     text        NOT NULL,
    reaction_id   uuid        NOT NULL,
    message_id    uuid        NOT NULL,
    kind          text        NOT NULL,
    at            timestamptz NOT NULL,
    profile_id    text,
    record        jsonb       NOT NULL,
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz,
    PRIMARY KEY (tenant_id, reaction_id)
);
CREATE INDEX reactions_unpublished ON reactions (recorded_at) WHERE published_at IS NULL;
CREATE INDEX reactions_message ON reactions (tenant_id, message_id);
CREATE INDEX reactions_profile ON reactions (tenant_id, profile_id) WHERE profile_id IS NOT NULL;
