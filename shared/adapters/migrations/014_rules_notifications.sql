-- Every change to a tenant's delivery rules, typologies, rule settings, denylist or
-- quarantine is announced on the channel parcours_rules (the tenant's id), delivered at
-- commit: services drop their cached copy (TenantRulesCache.listen) instead of serving it
-- until their cache time runs out. A soft failure counted on a watched address changes
-- no decision, so it announces nothing; a quarantine or a release does.
CREATE FUNCTION notify_rules_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('parcours_rules', OLD.tenant_id);
    ELSE
        PERFORM pg_notify('parcours_rules', NEW.tenant_id);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER delivery_rules_changed AFTER INSERT OR UPDATE OR DELETE ON delivery_rules
    FOR EACH ROW EXECUTE FUNCTION notify_rules_change();
CREATE TRIGGER typologies_changed AFTER INSERT OR UPDATE OR DELETE ON typologies
    FOR EACH ROW EXECUTE FUNCTION notify_rules_change();
CREATE TRIGGER rule_settings_changed AFTER INSERT OR UPDATE OR DELETE ON rule_settings
    FOR EACH ROW EXECUTE FUNCTION notify_rules_change();
CREATE TRIGGER denylist_changed AFTER INSERT OR UPDATE OR DELETE ON denylist
    FOR EACH ROW EXECUTE FUNCTION notify_rules_change();
CREATE TRIGGER quarantine_added AFTER INSERT ON quarantine
    FOR EACH ROW WHEN (NEW.quarantined_at IS NOT NULL) EXECUTE FUNCTION notify_rules_change();
CREATE TRIGGER quarantine_removed AFTER DELETE ON quarantine
    FOR EACH ROW WHEN (OLD.quarantined_at IS NOT NULL) EXECUTE FUNCTION notify_rules_change();
CREATE TRIGGER quarantine_moved AFTER UPDATE ON quarantine
    FOR EACH ROW WHEN (OLD.quarantined_at IS DISTINCT FROM NEW.quarantined_at
                       OR OLD.release_at IS DISTINCT FROM NEW.release_at)
    EXECUTE FUNCTION notify_rules_change();
