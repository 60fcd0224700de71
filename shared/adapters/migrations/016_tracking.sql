-- Messages sent with tracked links (services/tracking): what a pixel or a click needs to
-- record its reaction, written by the email sender before it hands the message over. The
-- links are the original URLs by index: a click's token names an index, the destination
-- is read here, never from the URL (no open redirect). The address only for an
-- event-based message (no profile): a reaction is keyed by profile id, else address.
CREATE TABLE tracked_messages (
    tenant_id   text        NOT NULL,
    message_id  uuid        NOT NULL,
    channel     text        NOT NULL,
    profile_id  text,
    address     text,
    origin      jsonb       NOT NULL,
    links       text[]      NOT NULL,
    sent_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, message_id)
);
CREATE INDEX tracked_messages_profile ON tracked_messages (tenant_id, profile_id)
    WHERE profile_id IS NOT NULL;
CREATE INDEX tracked_messages_sent ON tracked_messages (sent_at);
