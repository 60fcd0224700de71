-- Kafka keys: a tenant's producers sign the records they write to Kafka's input topics
-- with a key of scope 'kafka' (shared/domain/record_signing.py). Its secret is derived
-- from the key id with the server's PARCOURS_KAFKA_SIGNING_SECRET, never stored; the row
-- keeps a SHA-256 of it like any key's, and revoking the row ends the secret's use.
ALTER TABLE api_keys DROP CONSTRAINT api_keys_scope_check;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_scope_check
    CHECK (scope IN ('admin', 'ingest', 'kafka'));

-- Every change to a key (creation, revocation, deletion, its tenant's deletion) is
-- announced on the channel parcours_keys ("<key id>"), delivered at commit: the processor
-- drops its cached copy at once, so a revocation stops signed records within a moment.
CREATE FUNCTION notify_key_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('parcours_keys', OLD.key_id);
    ELSE
        PERFORM pg_notify('parcours_keys', NEW.key_id);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER api_keys_changed AFTER INSERT OR UPDATE OR DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION notify_key_change();
