-- A cohort's members by its id alone (P7 entering, issue 12). With the tenant first
-- (migration 056), a tenant the statistics did not know yet — its first million profiles
-- entering — was estimated a handful of rows, and the planner read a cohort's members by
-- any index that starts with the tenant (the primary key, the entered-at index) with a
-- filter on the cohort: every instance of the tenant for each cohort of 10,000, 16-21 µs
-- a member in the step relay. A cohort id is a uuid5 of its first instance's id, which
-- names the tenant: no two tenants share one, and the readers still check the tenant.
-- One key a cohort: its members' entries are a posting list, not 10,000 keys each put at
-- a random place among the cohort's by their random instance ids.
CREATE INDEX IF NOT EXISTS journey_instances_cohort_of
    ON journey_instances (cohort_id) WHERE cohort_id IS NOT NULL;
DROP INDEX IF EXISTS journey_instances_cohort_members;
