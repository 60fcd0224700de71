-- Idempotency-Key: the first request with a key owns it ('producing' until the broker
-- acknowledged, then 'accepted'); later requests with the same key and body get the same
-- pKey, with another body a 422. Rows are kept at least 24 hours.
CREATE TABLE idempotency_keys (
    tenant_id    text        NOT NULL,
    idem_key     text        NOT NULL,
    event_id     text        NOT NULL,
    body_sha256  bytea       NOT NULL,
    pkey         text        NOT NULL,
    state        text        NOT NULL CHECK (state IN ('producing', 'accepted')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, idem_key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
