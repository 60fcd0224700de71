-- Message versions: a published version is superseded when a newer one is published.
ALTER TABLE messages DROP CONSTRAINT messages_state_check;
ALTER TABLE messages ADD CONSTRAINT messages_state_check
    CHECK (state IN ('draft', 'published', 'paused', 'unpublished', 'superseded'));
-- At most one draft and one live (published or paused) version per event.
CREATE UNIQUE INDEX messages_one_draft ON messages (tenant_id, event_id) WHERE state = 'draft';
CREATE UNIQUE INDEX messages_one_live ON messages (tenant_id, event_id)
    WHERE state IN ('published', 'paused');

ALTER TABLE event_configs ADD COLUMN created_at timestamptz NOT NULL DEFAULT now();

-- Test profiles: used for previews and proofs, and carry sample event data.
ALTER TABLE profiles ADD COLUMN is_test boolean NOT NULL DEFAULT false;
ALTER TABLE profiles ADD COLUMN sample_ctx jsonb NOT NULL DEFAULT '{}';
