-- Every change to an event configuration or its messages is announced on the channel
-- parcours_catalog ("<tenant>/<event id>"), delivered at commit: the services drop their
-- cached copy at once instead of serving it until their cache time runs out.
CREATE FUNCTION notify_catalog_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('parcours_catalog', OLD.tenant_id || '/' || OLD.event_id);
    ELSE
        PERFORM pg_notify('parcours_catalog', NEW.tenant_id || '/' || NEW.event_id);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER event_configs_changed AFTER INSERT OR UPDATE OR DELETE ON event_configs
    FOR EACH ROW EXECUTE FUNCTION notify_catalog_change();
CREATE TRIGGER messages_changed AFTER INSERT OR UPDATE OR DELETE ON messages
    FOR EACH ROW EXECUTE FUNCTION notify_catalog_change();
