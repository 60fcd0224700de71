-- Tenants and their API keys. A key is shown once at creation; only a SHA-256 of its
-- secret part is stored (the secret is 256 random bits, so a slow hash adds nothing).

CREATE TABLE tenants (
    tenant_id   text        PRIMARY KEY,
    name        text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    key_id         text        PRIMARY KEY,
    tenant_id      text        NOT NULL REFERENCES tenants ON DELETE CASCADE,
    scope          text        NOT NULL CHECK (scope IN ('admin', 'ingest')),
    secret_sha256  bytea       NOT NULL,
    label          text        NOT NULL DEFAULT '',
    -- Requests per second allowed for this key, with bursts of twice as many.
    rate_per_s     integer     NOT NULL DEFAULT 2000 CHECK (rate_per_s > 0),
    created_at     timestamptz NOT NULL DEFAULT now(),
    revoked_at     timestamptz
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

-- The tenant every row created before tenants existed belongs to.
INSERT INTO tenants (tenant_id, name) VALUES ('default', 'Default tenant');
