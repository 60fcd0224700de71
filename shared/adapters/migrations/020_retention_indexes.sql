-- Retention (issue 11, shared/adapters/retention_store.py): the purge deletes the oldest
-- rows first, a small batch at a time, each batch an index range scan from where the last
-- one stopped. tracked_messages already has tracked_messages_sent (sent_at).
-- On a large production table, build these first with CREATE INDEX CONCURRENTLY (same
-- names): this file then finds them and changes nothing, and no write waits on a build.
CREATE INDEX IF NOT EXISTS message_trace_at ON message_trace (at);
CREATE INDEX IF NOT EXISTS contact_history_contact_at ON contact_history (contact_at);
-- Only relayed reactions are ever purged; a reaction enters this index when the relay
-- marks it published, so recording one (the tracking hot path) does not pay for it.
CREATE INDEX IF NOT EXISTS reactions_published ON reactions (published_at)
    WHERE published_at IS NOT NULL;
