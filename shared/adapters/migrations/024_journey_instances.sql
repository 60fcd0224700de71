-- Journey instances and their timers (issue 12). An instance is stored whole (document,
-- as shared/domain/journeys/codec.py writes it); the columns beside it are what queries
-- look for. Every change is one conditional write on the instance's token: an awaited
-- input and its timeout race there, and exactly one wins.
CREATE TABLE journey_instances (
    tenant_id    text        NOT NULL,
    instance_id  uuid        NOT NULL,
    journey_id   text        NOT NULL,
    version      integer     NOT NULL,
    profile_id   text        NOT NULL,
    state        text        NOT NULL,
    node         text        NOT NULL,
    token        integer     NOT NULL,
    document     jsonb       NOT NULL,
    entered_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, instance_id)
);
-- One live instance per profile per journey (of any version).
CREATE UNIQUE INDEX journey_instances_live ON journey_instances (tenant_id, journey_id, profile_id)
    WHERE state = 'waiting';
CREATE INDEX journey_instances_profile ON journey_instances (tenant_id, profile_id);
CREATE INDEX journey_instances_node ON journey_instances (tenant_id, journey_id, version, node)
    WHERE state = 'waiting';

-- Durable timers: millions pending cost an index, not memory. A timer names the wait
-- (token) it was set for; claimed with FOR UPDATE SKIP LOCKED and deleted as produced.
CREATE TABLE journey_timers (
    tenant_id    text        NOT NULL,
    instance_id  uuid        NOT NULL,
    token        integer     NOT NULL,
    due_at       timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, instance_id, token)
);
CREATE INDEX journey_timers_due ON journey_timers (due_at);
