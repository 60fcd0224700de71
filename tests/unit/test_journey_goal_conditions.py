"""Journey goals on a profile condition (issue 13) and the difference of two conversion
rates: the definition's shape, validation naming the field, the plan's compiled
condition, the exit a swept goal makes, and the interval and p-value against published
values. Pure, no services."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from services.cli.journey_lifecycle import conversion_tables
from shared.domain.audiences import profile_paths
from shared.domain.conditions import compile_sql
from shared.domain.journeys.advance import advance, goal_deadline, reached_goals, start
from shared.domain.journeys.conversion import GoalCounts, Share, compare, differences, report
from shared.domain.journeys.definition import parse_definition
from shared.domain.journeys.instance import CancelTimer, GoalExit, JourneyEvent, State, Step
from shared.domain.journeys.plan import compile_plan
from shared.domain.journeys.validation import validate
from shared.domain.profile_schema import ProfileSchema

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
SCHEMA = ProfileSchema.model_validate({
    "attributes": [{"name": "purchases", "type": "integer"}, {"name": "tier", "type": "string"}]})
BOUGHT = {"path": "attributes.purchases", "op": "ge", "value": 1}


def journey(**goal: Any) -> dict[str, Any]:
    return {"id": "promo", "entry": {"type": "audience", "audienceId": "all", "next": "mail"},
            "nodes": [{"id": "mail", "type": "email", "message": "JMSa", "next": "wait"},
                      {"id": "wait", "type": "wait", "duration": "P2D", "next": "done"},
                      {"id": "done", "type": "end"}],
            "goals": [{"id": "buy", "within": "P7D", **goal}]}


def plan(data: dict[str, Any], speed: float = 1.0) -> Any:
    return compile_plan(parse_definition(data), 1, profile_paths(SCHEMA), {}, speed, "t1")


def test_a_goal_is_an_event_or_a_profile_condition_never_both() -> None:
    goal = parse_definition(journey(condition=BOUGHT)).goals[0]
    assert goal.event_id is None and goal.condition is not None
    for wrong in ({}, {"condition": BOUGHT, "eventId": "JEVorder"}):
        with pytest.raises(ValidationError, match="exactly one of `eventId`"):
            parse_definition(journey(**wrong))
    with pytest.raises(ValidationError, match="`when` tests a goal's journey event"):
        parse_definition(journey(condition=BOUGHT, when=BOUGHT))
    with pytest.raises(ValidationError, match=r"goals\.0\.condition"):
        parse_definition(journey(condition={"path": "attributes.purchases", "op": "nope"}))


def test_a_condition_is_checked_against_the_profiles_paths_naming_the_goal() -> None:
    problems = validate(parse_definition(journey(condition={
        "path": "attributes.nope", "op": "eq", "value": 1})), paths=profile_paths(SCHEMA))
    assert [(p.node, p.message.split(":")[0]) for p in problems if p.severity == "error"] \
        == [("goal buy", "at ['condition', 'path']")]
    typed = validate(parse_definition(journey(condition={
        "path": "attributes.purchases", "op": "ge", "value": "many"})),
        paths=profile_paths(SCHEMA))
    assert [p.node for p in typed if p.severity == "error"] == ["goal buy"]
    fine = validate(parse_definition(journey(condition=BOUGHT)), paths=profile_paths(SCHEMA))
    assert [p for p in fine if p.node.startswith("goal")] == []


def test_the_plan_compiles_the_condition_to_sql_over_profiles() -> None:
    p = plan(journey(condition=BOUGHT))
    where = compile_sql(p.profile_goals["buy"], now=NOW, first_param=7)
    assert "attributes" in where.text and "$7" in where.text and where.params == (1,)
    assert p.goal_conditions == {}
    instance, _ = start(p, "p1", 0, {}, NOW)  # an event never reaches a condition goal
    assert reached_goals(p, instance, JourneyEvent("JEVorder", {}), NOW) == []


def test_the_goal_is_reachable_within_its_time_divided_by_a_test_runs_speed() -> None:
    goal = parse_definition(journey(condition=BOUGHT)).goals[0]
    assert goal_deadline(plan(journey(condition=BOUGHT)), goal, NOW) \
        == NOW - timedelta(days=7)
    assert goal_deadline(plan(journey(condition=BOUGHT), speed=1440), goal, NOW) \
        == NOW - timedelta(minutes=7)


def test_a_swept_exit_goal_takes_the_instance_out_wherever_it_waits() -> None:
    p = plan(journey(condition=BOUGHT, exit=True))
    instance, _ = start(p, "p1", 0, {}, NOW)
    assert instance.state == State.WAITING and instance.node == "wait"
    out, effects = advance(p, instance, GoalExit("buy"), NOW + timedelta(hours=1))
    assert out.state == State.EXITED and out.reason == "goal buy"
    assert CancelTimer(instance.token) in effects
    assert [e.kind for e in effects if isinstance(e, Step)] == ["exited"]
    assert advance(p, out, GoalExit("buy"), NOW) == (out, [])  # ended: nothing more


def test_the_difference_of_two_rates_matches_published_values() -> None:
    # Newcombe (1998), Statistics in Medicine 17:873-890, table II example (a): 56/70
    # against 48/80, method 10 (hybrid score): 0.0524 to 0.3339.
    found = compare(Share(70, 56), Share(80, 48))
    assert found is not None
    assert round(found.difference, 4) == 0.2
    assert (round(found.low, 4), round(found.high, 4)) == (0.0524, 0.3339)
    # Fisher's lady tasting tea, 3 of 4 right each way: two-sided p = 0.4857.
    tea = compare(Share(4, 3), Share(4, 1))
    assert tea is not None and round(tea.p_value, 4) == 0.4857
    assert compare(Share(0, 0), Share(5, 1)) is None
    same = compare(Share(10, 0), Share(10, 0))
    assert same is not None and same.p_value == 1.0 and same.low < 0 < same.high
    all_or_none = compare(Share(10, 10), Share(10, 0))
    assert all_or_none is not None and all_or_none.high == 1.0 and all_or_none.low > 0.5


def test_differences_for_two_branch_splits_and_the_control_group() -> None:
    counts = GoalCounts(entered=Share(150, 104), held_out=Share(0, 0),
                        branches={"ab": {"B": Share(80, 48), "A": Share(70, 56)},
                                  "abc": {"x": Share(1, 0), "y": Share(1, 1), "z": Share(1, 0)}},
                        nodes={}, messages={})
    out = differences(counts, {"ab": ["A", "B"], "abc": ["x", "y", "z"], "unused": ["P", "Q"]})
    assert out["heldOut"] == {"a": "entered", "b": "heldOut", "difference": None,
                              "ci95": None, "pValue": None}
    assert out["splits"]["ab"]["a"] == "A" and out["splits"]["ab"]["ci95"] == [0.0524, 0.3339]
    assert "abc" not in out["splits"]  # three branches: no single difference
    assert out["splits"]["unused"]["difference"] is None  # nobody passed it yet
    assert differences(counts)["splits"]["ab"]["a"] == "A"  # no order: by name
    assert report("buy", counts)["differences"]["splits"]["ab"]["pValue"] \
        == round(compare(Share(70, 56), Share(80, 48)).p_value, 4)  # type: ignore[union-attr]


def test_the_cli_shows_the_differences() -> None:
    counts = GoalCounts(entered=Share(70, 56), held_out=Share(80, 48),
                        branches={"ab": {"A": Share(4, 3), "B": Share(4, 1)}},
                        nodes={}, messages={})
    text = conversion_tables({"journeyId": "exp", "version": 1, "mode": "live",
                              "goals": [report("buy", counts, {"ab": ["A", "B"]})]})
    lines = [line.split() for line in text.splitlines()]
    assert ["all", "−", "control", "group", "+20.0", "pts", "+5.2", "–", "+33.4", "pts",
            "0.013"] in lines
    assert ["ab:", "A", "−", "B", "+50.0", "pts", "-13.6", "–", "+78.9", "pts", "0.486"] \
        in lines
