-- Delivery rules (the decision every outgoing message passes), what they read, and what
-- they leave behind. No foreign key to tenants: rows are the tenant's like every table's.

-- Every decided message: fatigue counts it, capacity counts it, reports read it. One row
-- per message; its outcome moves on as the message does (deferred -> sent -> delivered).
-- contact_at is when it goes (its due time while deferred or scheduled): fatigue counts
-- both sides of it.
CREATE TABLE contact_history (
    tenant_id      text        NOT NULL,
    message_id     uuid        NOT NULL,
    profile_id     text,                   -- null for an event-based message
    channel        text        NOT NULL,
    origin_kind    text        NOT NULL CHECK (origin_kind IN ('event', 'journey')),
    origin_id      text        NOT NULL,   -- the event's id, or the journey's
    transactional  boolean     NOT NULL,
    contact_at     timestamptz NOT NULL,
    decided_at     timestamptz NOT NULL DEFAULT now(),
    outcome        text        NOT NULL
                   CHECK (outcome IN ('sent', 'excluded', 'deferred', 'delivered', 'failed')),
    rule_id        text,                   -- the rule that excluded or deferred it
    reason         text,
    PRIMARY KEY (tenant_id, message_id)
);
-- Fatigue: a profile's contacts around an instant. Capacity: a message's or a channel's.
CREATE INDEX contact_history_profile ON contact_history (tenant_id, profile_id, contact_at)
    WHERE profile_id IS NOT NULL;
CREATE INDEX contact_history_origin ON contact_history (tenant_id, origin_id, contact_at);
CREATE INDEX contact_history_channel ON contact_history (tenant_id, channel, contact_at);

-- What happened to a message, step by step (decided with each rule's verdict, deferred,
-- controlled, handed over...): the per-message trace the API serves.
CREATE TABLE message_trace (
    tenant_id   text        NOT NULL,
    message_id  uuid        NOT NULL,
    at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    stage       text        NOT NULL,
    outcome     text        NOT NULL,
    rule_id     text,
    reason      text,
    verdicts    jsonb
);
CREATE INDEX message_trace_message ON message_trace (tenant_id, message_id, at);

-- Rules. Ids are the store's (r1, r2... per tenant), so metrics and reasons never carry
-- a name a user typed.
CREATE TABLE delivery_rules (
    tenant_id   text        NOT NULL,
    rule_id     text        NOT NULL,
    kind        text        NOT NULL,
    definition  jsonb       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, rule_id)
);
-- A typology is an ordered list of filtering, capacity and control rules.
CREATE TABLE typologies (
    tenant_id    text        NOT NULL,
    typology_id  text        NOT NULL,
    name         text        NOT NULL,
    rule_ids     text[]      NOT NULL DEFAULT '{}',
    is_default   boolean     NOT NULL DEFAULT false,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, typology_id)
);
CREATE UNIQUE INDEX typologies_one_default ON typologies (tenant_id) WHERE is_default;
CREATE TABLE rule_counters (
    tenant_id  text    NOT NULL PRIMARY KEY,
    next_rule  integer NOT NULL DEFAULT 1,
    next_typology integer NOT NULL DEFAULT 1
);
-- Per-tenant settings of the rules: the time zone for profiles without one, quarantine's
-- thresholds.
CREATE TABLE rule_settings (
    tenant_id  text  NOT NULL PRIMARY KEY,
    settings   jsonb NOT NULL DEFAULT '{}'
);

-- Addresses that must receive nothing: an address, or every address of a domain (email).
CREATE TABLE denylist (
    tenant_id  text        NOT NULL,
    channel    text        NOT NULL CHECK (channel IN ('email', 'sms', 'push')),
    entry      text        NOT NULL,   -- normalised: a lower-cased email or domain, a phone
    kind       text        NOT NULL CHECK (kind IN ('address', 'domain')),
    reason     text,
    added_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, channel, entry)
);

-- Addresses that failed: quarantined at once by a hard failure, after repeated soft
-- failures on distinct days; released at release_at or by the admin.
CREATE TABLE quarantine (
    tenant_id       text        NOT NULL,
    channel         text        NOT NULL CHECK (channel IN ('email', 'sms', 'push')),
    address         text        NOT NULL,   -- normalised like the denylist's entries
    soft_failures   integer     NOT NULL DEFAULT 0,
    last_failure_at timestamptz,
    quarantined_at  timestamptz,
    release_at      timestamptz,
    reason          text,
    PRIMARY KEY (tenant_id, channel, address)
);

-- Messages waiting for their time: deferred by a rule (fatigue, quiet hours), decided
-- again when due. Several per event; journey messages have no pKey.
CREATE TABLE held_messages (
    tenant_id   text        NOT NULL,
    message_id  uuid        NOT NULL,
    pkey        text,
    event_id    text,
    due_at      timestamptz NOT NULL,
    record      jsonb       NOT NULL,
    held_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, message_id)
);
CREATE INDEX held_messages_due ON held_messages (due_at);
CREATE INDEX held_messages_by_pkey ON held_messages (pkey) WHERE pkey IS NOT NULL;

-- A journey's message has no pKey: the delivery ledger keys on the message id alone.
ALTER TABLE deliveries ALTER COLUMN pkey DROP NOT NULL;
