-- The partition manager (shared/adapters/retention_store.py, hourly) drops a week only
-- if it is wholly before the oldest event still waiting: scheduled (held_events),
-- deferred by a rule (held_messages) or in the retry schedule (send_retries). It asked
-- min(acceptedAt) of each table, a scan of the three tables whole (90 ms at 100,000 rows
-- each, python -m bench.held_oldest). With these, each min is one index probe (0.2 ms).
-- The same expressions as the query: ((<record>->>'acceptedAt')::float8).
-- On a large production table, build them first with CREATE INDEX CONCURRENTLY (same
-- names): this file then finds them and changes nothing.
CREATE INDEX IF NOT EXISTS held_events_accepted
    ON held_events (((trigger->>'acceptedAt')::float8));
CREATE INDEX IF NOT EXISTS held_messages_accepted
    ON held_messages (((record->>'acceptedAt')::float8));
CREATE INDEX IF NOT EXISTS send_retries_accepted
    ON send_retries (((record->>'acceptedAt')::float8));
