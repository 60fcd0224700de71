-- Journey versions, their steps and the engine's outbox (issue 12).
--
-- Publishing a journey's draft, or starting a test run of it, freezes the definition as a
-- new version; running instances stay on theirs. A version is live (taking entries and
-- advancing), paused (its instances hold where they are), stopped (its instances ended
-- `stopped`) or finished (no instance left and no entry to come). A test run is a version
-- of mode 'test': only the test profiles it names enter, and its waits are divided by
-- ``speed``.
CREATE TABLE journey_versions (
    tenant_id      text             NOT NULL,
    journey_id     text             NOT NULL,
    version        integer          NOT NULL,
    mode           text             NOT NULL CHECK (mode IN ('live', 'test')),
    state          text             NOT NULL
                   CHECK (state IN ('live', 'paused', 'stopped', 'finished')),
    definition     jsonb            NOT NULL,
    speed          double precision NOT NULL DEFAULT 1 CHECK (speed >= 1),
    test_profiles  text[]           NOT NULL DEFAULT '{}',
    -- The audience entry's progress: the last profile id handed over (keyset), and
    -- whether the read is done; a restarted engine resumes from it.
    entry_after    text,
    entry_done     boolean          NOT NULL DEFAULT false,
    entry_started  timestamptz,
    published_at   timestamptz      NOT NULL DEFAULT now(),
    updated_at     timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, journey_id, version)
);
CREATE INDEX journey_versions_running ON journey_versions (state) WHERE state IN ('live', 'paused');

-- A step of an instance: what the per-node counts are counted from, and an instance's
-- history. Written in the transaction that stores the instance's move.
CREATE TABLE journey_steps (
    id           bigserial   PRIMARY KEY,
    tenant_id    text        NOT NULL,
    journey_id   text        NOT NULL,
    version      integer     NOT NULL,
    instance_id  uuid        NOT NULL,
    profile_id   text        NOT NULL,
    at           timestamptz NOT NULL,
    kind         text        NOT NULL,
    node         text        NOT NULL,
    detail       text        NOT NULL DEFAULT ''
);
CREATE INDEX journey_steps_instance ON journey_steps (tenant_id, instance_id, id);
CREATE INDEX journey_steps_counts ON journey_steps (tenant_id, journey_id, version, node, kind);
CREATE INDEX journey_steps_profile ON journey_steps (tenant_id, profile_id);

-- Effects a move asked for (messages, profile updates, HTTP calls), written in the same
-- transaction as the move: applied right after the commit and deleted once done; a crash
-- in between leaves them here for the next engine. Each is idempotent on its id.
CREATE TABLE journey_outbox (
    tenant_id    text        NOT NULL,
    effect_id    uuid        NOT NULL,
    instance_id  uuid        NOT NULL,
    kind         text        NOT NULL CHECK (kind IN ('send', 'updateProfile', 'http')),
    body         jsonb       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, effect_id)
);
CREATE INDEX journey_outbox_age ON journey_outbox (created_at);

