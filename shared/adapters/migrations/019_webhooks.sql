-- Outbound webhooks (services/webhooks): a tenant's endpoints, subscribed to status
-- changes and reactions; the durable delivery schedule and its log.

CREATE TABLE webhook_subscriptions (
    subscription_id       text        PRIMARY KEY,
    tenant_id             text        NOT NULL REFERENCES tenants ON DELETE CASCADE,
    url                   text        NOT NULL,
    description           text        NOT NULL DEFAULT '',
    -- NULL: any. statuses or kinds '{}': none of that type.
    event_ids             text[],
    channels              text[],
    statuses              text[],
    kinds                 text[],
    enabled               boolean     NOT NULL DEFAULT true,
    -- The signing secret is needed in clear to sign (HMAC), like the providers' secrets.
    secret                text        NOT NULL,
    -- After a rotation the previous secret signs too (a second v1) until then.
    previous_secret       text,
    previous_secret_until timestamptz,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_subscriptions_tenant ON webhook_subscriptions (tenant_id);

-- The webhooks service caches each tenant's subscriptions and drops them when told.
CREATE FUNCTION notify_webhooks_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('parcours_webhooks',
                      CASE WHEN TG_OP = 'DELETE' THEN OLD.tenant_id ELSE NEW.tenant_id END);
    RETURN NULL;
END $$;
CREATE TRIGGER webhook_subscriptions_changed
    AFTER INSERT OR UPDATE OR DELETE ON webhook_subscriptions
    FOR EACH ROW EXECUTE FUNCTION notify_webhooks_change();

-- Status changes to notify: written by a trigger on event_status only for a tenant with an
-- enabled subscription that could want it (its status and event id). Measured
-- (bench/webhooks_trigger.py: backend CPU, alternately with the trigger off): 5-6 µs more
-- per status write in a many-row statement and 7-11 µs in a one-row statement for a
-- tenant without subscriptions, 12-21 µs for a subscribed one (the outbox row). A
-- statement-level trigger with transition tables costs 1.5 µs per row in bulk but 19 µs
-- per one-row statement (the senders' executemany), so more per event. The webhooks service drains the outbox
-- (FOR UPDATE SKIP LOCKED) into webhook_deliveries.
CREATE TABLE webhook_status_outbox (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id  text        NOT NULL,
    pkey       text        NOT NULL,
    event_id   text        NOT NULL,
    status     text        NOT NULL,
    reason     text,
    message_id uuid,
    at         timestamptz NOT NULL
);

CREATE FUNCTION webhook_status_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM webhook_subscriptions s
                WHERE s.tenant_id = NEW.tenant_id AND s.enabled
                  AND (s.statuses IS NULL OR NEW.status = ANY (s.statuses))
                  AND (s.event_ids IS NULL OR NEW.event_id = ANY (s.event_ids))) THEN
        INSERT INTO webhook_status_outbox (tenant_id, pkey, event_id, status, reason,
                                           message_id, at)
        VALUES (NEW.tenant_id, NEW.pkey, NEW.event_id, NEW.status, NEW.reason,
                NEW.message_id, NEW.updated_at);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER event_status_inserted_webhooks AFTER INSERT ON event_status
    FOR EACH ROW EXECUTE FUNCTION webhook_status_changed();
CREATE TRIGGER event_status_changed_webhooks AFTER UPDATE ON event_status
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION webhook_status_changed();

-- One row per (subscription, notification): the schedule (state pending, next_attempt_at)
-- and the log. body is exactly what is signed and sent, the same on every attempt.
CREATE TABLE webhook_deliveries (
    delivery_id      uuid        PRIMARY KEY,
    subscription_id  text        NOT NULL
                                 REFERENCES webhook_subscriptions ON DELETE CASCADE,
    tenant_id        text        NOT NULL,
    notification_id  uuid        NOT NULL,
    type             text        NOT NULL,
    body             text        NOT NULL,
    -- A reaction's profile, so an erasure finds its notifications (they carry its id).
    profile_id       text,
    state            text        NOT NULL DEFAULT 'pending'
                                 CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts         integer     NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now(),
    give_up_after    timestamptz NOT NULL DEFAULT now() + interval '1 day',
    next_attempt_at  timestamptz,
    last_http_status integer,
    last_error       text,
    last_latency_ms  integer,
    delivered_at     timestamptz
);
-- What is due, per subscription (each gets at most its share of calls in flight).
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (subscription_id, next_attempt_at)
    WHERE state = 'pending';
CREATE INDEX webhook_deliveries_log ON webhook_deliveries (subscription_id, created_at DESC);
-- The log is kept 7 days: the service deletes what is done and older.
CREATE INDEX webhook_deliveries_done ON webhook_deliveries (created_at) WHERE state <> 'pending';
CREATE INDEX webhook_deliveries_profile ON webhook_deliveries (tenant_id, profile_id)
    WHERE profile_id IS NOT NULL;

CREATE TABLE webhook_attempts (
    delivery_id  uuid        NOT NULL REFERENCES webhook_deliveries ON DELETE CASCADE,
    attempt      integer     NOT NULL,
    at           timestamptz NOT NULL,
    http_status  integer,
    latency_ms   integer     NOT NULL,
    error        text,
    next_attempt_at timestamptz,
    PRIMARY KEY (delivery_id, attempt)
);
