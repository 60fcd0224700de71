-- Foundation schema: event configurations and their messages, profiles, statuses,
-- and the delivery ledger that makes sending idempotent.

CREATE TABLE event_configs (
    tenant_id   text        NOT NULL,
    event_id    text        NOT NULL,
    version     integer     NOT NULL DEFAULT 1,
    state       text        NOT NULL CHECK (state IN ('draft', 'published', 'unpublished')),
    definition  jsonb       NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, event_id)
);

CREATE TABLE messages (
    tenant_id   text        NOT NULL,
    event_id    text        NOT NULL,
    version     integer     NOT NULL,
    state       text        NOT NULL CHECK (state IN ('draft', 'published', 'paused', 'unpublished')),
    template    jsonb       NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, event_id, version),
    FOREIGN KEY (tenant_id, event_id) REFERENCES event_configs ON DELETE CASCADE
);

CREATE TABLE profiles (
    tenant_id    text        NOT NULL,
    profile_id   text        NOT NULL,
    email        text,
    mobile_phone text,
    first_name   text,
    last_name    text,
    city         text,
    birth_date   date,
    attributes   jsonb       NOT NULL DEFAULT '{}',
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, profile_id)
);
CREATE INDEX profiles_email ON profiles (tenant_id, lower(email));
CREATE INDEX profiles_phone ON profiles (tenant_id, mobile_phone);

-- One row per accepted event, written by the stages (never by the gateway). A write
-- only replaces a lower-ranked status, so late or repeated writes cannot undo a
-- terminal one.
CREATE TABLE event_status (
    pkey        text        PRIMARY KEY,
    tenant_id   text        NOT NULL,
    event_id    text        NOT NULL,
    status      text        NOT NULL,
    rank        smallint    NOT NULL,
    reason      text,
    message_id  uuid,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- The deduplication ledger: a message is handed to a provider only after its row
-- is claimed, and marked sent in the same transaction as the event's status.
CREATE TABLE deliveries (
    message_id   uuid        PRIMARY KEY,
    tenant_id    text        NOT NULL,
    pkey         text        NOT NULL,
    channel      text        NOT NULL,
    state        text        NOT NULL CHECK (state IN ('sending', 'sent', 'failed')),
    attempts     integer     NOT NULL DEFAULT 1,
    detail       text,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
