-- The hosts a tenant's journeys may call with an http action (issue 12): each entry as
-- shared/domain/journeys/http_hosts.py normalised it (`api.crm.example.com`,
-- `*.crm.example.com`, `203.0.113.7`, `host:port`), in the order the admin API was given.
-- No row: no host may be called. The journeys engine re-reads the list when it calls.
CREATE TABLE journey_http_hosts (
    tenant_id   text        NOT NULL,
    host        text        NOT NULL,
    position    int         NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, host)
);
