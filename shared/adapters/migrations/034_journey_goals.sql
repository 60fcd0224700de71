-- Journey goals (issue 13): reaching a goal is a step row of kind 'goal' (node: the goal's
-- id; detail: the action node of the last message the instance had been sent, or ''), so
-- it is erased, exported and relayed to Kafka with the instance's other steps. Once per
-- instance and goal, whatever redelivers the event that reached it.
CREATE UNIQUE INDEX journey_steps_goal_once ON journey_steps (tenant_id, instance_id, node)
    WHERE kind = 'goal';
