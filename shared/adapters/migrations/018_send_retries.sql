-- Retries off the partition (issue 11): a message a provider refused for now (SMTP 4xx,
-- HTTP 408/409/429/5xx, a timeout) waits here for its next hand-over, so the records
-- behind it on its partition go on at once (shared/sending/retries.py). Its ledger row
-- is 'waiting' meanwhile: a redelivered copy of its send record is not claimed, only the
-- sender lane that scheduled it takes it again when due.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_state_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_state_check
    CHECK (state IN ('sending', 'waiting', 'sent', 'failed')) NOT VALID;
ALTER TABLE deliveries VALIDATE CONSTRAINT deliveries_state_check;

CREATE TABLE send_retries (
    message_id   uuid        PRIMARY KEY,
    lane         text        NOT NULL,  -- the sender that retries it: 'sender-email', …
    due_at       timestamptz NOT NULL,  -- while a sender tries it: the end of its lease
    attempts     integer     NOT NULL,  -- hand-overs tried so far, the first included
    record       jsonb       NOT NULL,  -- the send record
    last_error   text        NOT NULL,
    soft_error   text,                  -- the first refusal that blamed the address
    first_failed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX send_retries_due ON send_retries (lane, due_at);
