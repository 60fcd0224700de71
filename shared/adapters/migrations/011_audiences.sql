-- Audiences (segments): a named condition over a tenant's profile paths
-- (shared/domain/conditions, shared/domain/audiences.py), stored as the JSON tree the
-- admin API received and checked again against the profile schema whenever used.
CREATE TABLE audiences (
    tenant_id    text        NOT NULL,
    audience_id  text        NOT NULL,
    name         text        NOT NULL,
    definition   jsonb       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, audience_id)
);

-- Counting and reading audiences (shared/adapters/audience_reader.py): members are read
-- in profile_id order through the primary key (tenant_id, profile_id); a test of city or
-- birthDate finds its rows through these instead of scanning the tenant's profiles, and
-- an email test (compiled as lower(email COLLATE "C"), locale-independent) through the
-- last one.
CREATE INDEX profiles_city ON profiles (tenant_id, city);
CREATE INDEX profiles_birth_date ON profiles (tenant_id, birth_date);
CREATE INDEX profiles_email_c ON profiles (tenant_id, lower(email COLLATE "C"));
