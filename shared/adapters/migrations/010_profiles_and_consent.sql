-- Profiles written through the profile API (and later Kafka and imports): two more
-- built-in fields, and the timestamp of the write that set the row. The later write wins
-- by that timestamp (shared/adapters/profile_store.py, apply_profile_write); rows written
-- before this migration count as written when they were last updated.
ALTER TABLE profiles ADD COLUMN time_zone text;
ALTER TABLE profiles ADD COLUMN locale text;
ALTER TABLE profiles ADD COLUMN written_at timestamptz;
UPDATE profiles SET written_at = updated_at;
ALTER TABLE profiles ALTER COLUMN written_at SET NOT NULL;
ALTER TABLE profiles ALTER COLUMN written_at SET DEFAULT now();
-- Lookups by lower(email) and mobile_phone per tenant have their indexes since 001.

-- Profile keys: the profile API has a scope of its own.
ALTER TABLE api_keys DROP CONSTRAINT api_keys_scope_check;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_scope_check
    CHECK (scope IN ('admin', 'ingest', 'kafka', 'profiles'));

-- A tenant's profile schema: its custom attributes (name, type) and subscription topics
-- (shared/domain/profiles.py, ProfileSchema). Every change is announced on
-- parcours_profile_schema ("<tenant>"), delivered at commit, so the gateway drops its
-- cached copy at once.
CREATE TABLE profile_schemas (
    tenant_id   text        PRIMARY KEY,
    definition  jsonb       NOT NULL,
    version     integer     NOT NULL DEFAULT 1,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION notify_profile_schema_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('parcours_profile_schema', OLD.tenant_id);
    ELSE
        PERFORM pg_notify('parcours_profile_schema', NEW.tenant_id);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER profile_schemas_changed AFTER INSERT OR UPDATE OR DELETE ON profile_schemas
    FOR EACH ROW EXECUTE FUNCTION notify_profile_schema_change();

-- Consent and subscriptions, one row per (profile, kind, name), as they stand:
--   kind 'marketing', name a channel (email, sms, push): opted-in, opted-out or unknown;
--   kind 'block',     name a channel: blocked or unblocked (nothing at all is sent);
--   kind 'topic',     name a topic of the tenant's schema: subscribed or unsubscribed.
-- changed_at is when the value last changed (the write's timestamp; a later write wins),
-- source where the change came from. Every change is also appended to consent_history.
CREATE TABLE consents (
    tenant_id   text        NOT NULL,
    profile_id  text        NOT NULL,
    kind        text        NOT NULL CHECK (kind IN ('marketing', 'block', 'topic')),
    name        text        NOT NULL,
    value       text        NOT NULL,
    changed_at  timestamptz NOT NULL,
    source      text        NOT NULL,
    PRIMARY KEY (tenant_id, profile_id, kind, name),
    FOREIGN KEY (tenant_id, profile_id) REFERENCES profiles ON DELETE CASCADE
);

CREATE TABLE consent_history (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   text        NOT NULL,
    profile_id  text        NOT NULL,
    kind        text        NOT NULL,
    name        text        NOT NULL,
    value       text        NOT NULL,
    changed_at  timestamptz NOT NULL,
    source      text        NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, profile_id) REFERENCES profiles ON DELETE CASCADE
);
CREATE INDEX consent_history_profile ON consent_history (tenant_id, profile_id, id);
