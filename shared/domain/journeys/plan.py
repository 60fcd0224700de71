"""A journey version made ready to run: its conditions checked once against the paths they
may read, so ``advance`` only evaluates.

- a condition node reads the profile (the tenant's profile paths) and the data of the
  listens resolved before it: ``waits.<listen>.<field>`` for a journey event's fields,
  ``waits.<listen>.kind`` for a reaction;
- a listen's event branch's ``when`` reads ``event.<field>`` of its journey event type,
  and so does a goal's;
- a goal's ``condition`` reads the profile's paths only (the engine compiles it to SQL
  over ``profiles``, as an audience's).
"""

from __future__ import annotations

from collections.abc import Mapping

from shared.domain.conditions import Checked, PathSpec, Schema, ValueType, check_condition
from shared.domain.journeys.advance import Plan
from shared.domain.journeys.definition import Decision, JourneyDefinition, Listen
from shared.domain.journeys.journey_events import JourneyEventType, event_paths


def wait_paths(definition: JourneyDefinition,
               event_types: Mapping[str, JourneyEventType]) -> Schema:
    """What the data of the journey's resolved listens offers to conditions."""
    paths: dict[str, PathSpec] = {}
    for node in definition.nodes:
        if not isinstance(node, Listen):
            continue
        for branch in node.branches:
            if branch.reaction is not None:
                paths.setdefault(f"waits.{node.id}.kind", PathSpec(ValueType.STRING, "NULL"))
            elif branch.event is not None and branch.event.event_id in event_types:
                for path, spec in event_paths(event_types[branch.event.event_id],
                                              prefix=f"waits.{node.id}").items():
                    paths.setdefault(path, spec)  # two types naming one field: the first
    return paths


def compile_plan(definition: JourneyDefinition, version: int, profile_paths: Schema,
                 event_types: Mapping[str, JourneyEventType], speed: float = 1.0,
                 tenant: str = "", time_zone: str = "UTC") -> Plan:
    """Raises ConditionError (its problems name the place in the tree) when a condition
    does not fit its paths: validation reports those with their node first."""
    paths = {**profile_paths, **wait_paths(definition, event_types)}
    conditions: dict[str, list[Checked]] = {}
    event_conditions: dict[str, dict[int, Checked]] = {}
    for node in definition.nodes:
        if isinstance(node, Decision):
            conditions[node.id] = [check_condition(c.when, paths) for c in node.branches]
        elif isinstance(node, Listen):
            for index, branch in enumerate(node.branches):
                if branch.event is not None and branch.event.when is not None:
                    event_type = event_types[branch.event.event_id]
                    event_conditions.setdefault(node.id, {})[index] = check_condition(
                        branch.event.when, event_paths(event_type))
    goal_conditions = {goal.id: check_condition(goal.when,
                                                event_paths(event_types[goal.event_id]))
                       for goal in definition.goals
                       if goal.when is not None and goal.event_id is not None
                       and goal.event_id in event_types}
    profile_goals = {goal.id: check_condition(goal.condition, profile_paths)
                     for goal in definition.goals if goal.condition is not None}
    return Plan(definition, version, conditions, event_conditions, speed, tenant,
                goal_conditions, time_zone, profile_goals)
