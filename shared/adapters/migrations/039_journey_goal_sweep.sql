-- Journey goals on a profile condition (issue 13): the engine's sweep reads, per version
-- and goal, the instances that entered within the goal's time; conversion reports read
-- the same cohort (a version's instances entered in a window).
CREATE INDEX IF NOT EXISTS journey_instances_entered
    ON journey_instances (tenant_id, journey_id, version, entered_at);
