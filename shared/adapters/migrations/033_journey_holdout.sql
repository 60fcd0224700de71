-- A tenant's global control group (issue 13): the share of its profiles, in percent, held
-- out of every live marketing journey (never out of transactional messages), so that the
-- lift of its marketing as a whole can be measured against them. No row: none held out.
-- Which profiles: shared/domain/journeys/holdout.py (a hash of tenant and profile id).
CREATE TABLE journey_holdouts (
    tenant_id   text          PRIMARY KEY,
    percent     numeric(4, 2) NOT NULL CHECK (percent >= 0 AND percent <= 50),
    updated_at  timestamptz   NOT NULL DEFAULT now()
);
