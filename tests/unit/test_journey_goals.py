"""Journey goals: which events reach them and when, the exit they may carry, what a
conversion is credited to, and the report's shares. Pure, no services."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from scipy.stats import binomtest

from shared.domain.journeys.advance import advance, last_message, reached_goals, start
from shared.domain.journeys.conversion import GoalCounts, Share, report
from shared.domain.journeys.definition import parse_definition
from shared.domain.journeys.instance import JourneyEvent, State, TimerFired
from shared.domain.journeys.journey_events import JourneyEventType
from shared.domain.journeys.plan import compile_plan
from shared.domain.journeys.validation import validate

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
ORDER = JourneyEventType.model_validate({
    "eventId": "JEVorder", "profileKey": "customerId",
    "fields": [{"id": "customerId", "type": "string", "required": True},
               {"id": "amount", "type": "decimal"}]})


def journey(**goal: Any) -> dict[str, Any]:
    return {"id": "promo", "entry": {"type": "audience", "audienceId": "all", "next": "mail"},
            "nodes": [{"id": "mail", "type": "email", "message": "JMSa", "next": "wait"},
                      {"id": "wait", "type": "wait", "duration": "P2D", "next": "push"},
                      {"id": "push", "type": "push", "message": "JMSb", "next": "done"},
                      {"id": "done", "type": "end"}],
            "goals": [{"id": "buy", "eventId": "JEVorder", "within": "P7D", **goal}]}


def plan(data: dict[str, Any], speed: float = 1.0) -> Any:
    return compile_plan(parse_definition(data), 1, {}, {"JEVorder": ORDER}, speed, "t1")


def order(amount: str = "20") -> JourneyEvent:
    return JourneyEvent("JEVorder", {"customerId": "p1", "amount": amount})


def test_a_goal_is_its_event_within_its_time_from_the_entry_and_its_condition() -> None:
    p = plan(journey(when={"path": "event.amount", "op": "ge", "value": 10}))
    instance, _ = start(p, "p1", 0, {}, NOW)
    assert [g.id for g in reached_goals(p, instance, order(), NOW + timedelta(days=7))] \
        == ["buy"]
    assert reached_goals(p, instance, order(), NOW + timedelta(days=7, seconds=1)) == []
    assert reached_goals(p, instance, order("5"), NOW) == []  # its `when` does not hold
    assert reached_goals(p, instance, JourneyEvent("JEVother", {}), NOW) == []
    fast = plan(journey(), speed=1440)  # a test run: a day in a minute
    assert reached_goals(fast, start(fast, "p1", 0, {}, NOW)[0], order(),
                         NOW + timedelta(minutes=8)) == []


def test_an_ended_instance_still_converts_and_credits_its_last_message() -> None:
    p = plan(journey())
    instance, _ = start(p, "p1", 0, {}, NOW)
    assert last_message(instance) == "mail"
    ended, _ = advance(p, instance, TimerFired(instance.token), NOW + timedelta(days=2))
    assert ended.state == State.FINISHED and last_message(ended) == "push"
    assert [g.id for g in reached_goals(p, ended, order(), NOW + timedelta(days=3))] \
        == ["buy"]


def test_a_goal_that_exits_takes_the_profile_out_wherever_it_waits() -> None:
    p = plan(journey(exit=True))
    instance, _ = start(p, "p1", 0, {}, NOW)
    out, _ = advance(p, instance, order(), NOW + timedelta(hours=1))
    assert out.state == State.EXITED and out.reason == "goal buy"
    stays, _ = advance(plan(journey()), instance, order(), NOW + timedelta(hours=1))
    assert stays.state == State.WAITING  # without exit, the goal changes nothing here


def test_goals_are_validated() -> None:
    with pytest.raises(ValidationError, match=r"less than or equal"):
        parse_definition(journey(within="P91D"))
    data = journey()
    data["goals"].append(dict(data["goals"][0]))
    with pytest.raises(ValidationError, match="two goals have the same id"):
        parse_definition(data)
    problems = validate(parse_definition(journey(eventId="JEVnone")), journey_events=set())
    assert [(p.node, p.message) for p in problems if p.node.startswith("goal")] == [
        ("goal buy", "no journey event 'JEVnone'")]
    bad = validate(parse_definition(journey(when={"path": "event.nope", "op": "eq",
                                                  "value": 1})),
                   event_types={"JEVorder": ORDER})
    assert [p.node for p in bad if p.severity == "error"] == ["goal buy"]


def test_the_report_gives_each_share_with_wilsons_interval() -> None:
    counts = GoalCounts(entered=Share(200, 30), held_out=Share(10, 1),
                        branches={"ab": {"A": Share(100, 10), "B": Share(100, 20)}},
                        nodes={"mail": Share(200, 30)}, messages={"push": Share(0, 0)})
    out = report("buy", counts)
    expected = binomtest(30, 200).proportion_ci(confidence_level=0.95, method="wilson")
    assert out["entered"] == 200 and out["converted"] == 30 and out["rate"] == 0.15
    assert out["ci95"] == [round(expected.low, 4), round(expected.high, 4)]
    assert out["branches"]["ab"]["B"]["rate"] == 0.2 and out["heldOut"]["entered"] == 10
    assert out["messages"]["push"] == {"sent": 0, "converted": 0, "rate": None,
                                       "ci95": None}


def test_the_cli_shows_a_table_per_goal() -> None:
    from services.cli.journey_lifecycle import conversion_tables
    counts = GoalCounts(entered=Share(12, 4), held_out=Share(0, 0),
                        branches={"ab": {"A": Share(7, 3), "B": Share(5, 1)}},
                        nodes={}, messages={"mail": Share(12, 2)})
    text = conversion_tables({"journeyId": "exp", "version": 1, "mode": "live",
                              "goals": [report("buy", counts)]})
    lines = [line.split() for line in text.splitlines()]
    assert ["branch", "ab.A", "7", "3", "42.9%", "15.8%", "–", "75.0%"] in lines
    assert ["control", "group", "(heldOut)", "0", "0", "-", "-"] in lines
    assert ["message", "mail", "(sent)", "12", "2", "16.7%", "4.7%", "–", "44.8%"] in lines
    assert "no goals" in conversion_tables({"journeyId": "x", "version": 1, "mode": "live",
                                            "goals": []})
