-- A tenant's sender identity (From, Reply-To, the domain of its VERP return path) and its
-- DKIM keys. A tenant with no identity row sends as the settings say (mail_from,
-- bounce_domain). DKIM keys: several selectors per sending domain, at most one active
-- (the one that signs); the private key is a Fernet token (PARCOURS_DKIM_MASTER_KEY),
-- never stored in clear. Every change is announced on parcours_sending (the tenant's
-- id), so the senders drop their cached copy at once.
CREATE TABLE sender_identities (
    tenant_id      text        PRIMARY KEY REFERENCES tenants ON DELETE CASCADE,
    from_address   text        NOT NULL,
    from_name      text        NOT NULL DEFAULT '',
    reply_to       text,
    bounce_domain  text        NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE dkim_keys (
    tenant_id      text        NOT NULL REFERENCES tenants ON DELETE CASCADE,
    domain         text        NOT NULL,
    selector       text        NOT NULL,
    private_key    bytea       NOT NULL,
    public_key     text        NOT NULL,
    active         boolean     NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    activated_at   timestamptz,
    PRIMARY KEY (tenant_id, domain, selector)
);
CREATE UNIQUE INDEX dkim_keys_one_active ON dkim_keys (tenant_id, domain) WHERE active;

CREATE FUNCTION notify_sending_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('parcours_sending', OLD.tenant_id);
    ELSE
        PERFORM pg_notify('parcours_sending', NEW.tenant_id);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER sender_identities_changed AFTER INSERT OR UPDATE OR DELETE ON sender_identities
    FOR EACH ROW EXECUTE FUNCTION notify_sending_change();
CREATE TRIGGER dkim_keys_changed AFTER INSERT OR UPDATE OR DELETE ON dkim_keys
    FOR EACH ROW EXECUTE FUNCTION notify_sending_change();
