"""Set-based entering (shared/domain/journeys/entering.py), pure: which versions may enter
set-wise, and that a chunk's templates and ids make, for every profile, exactly what
``start`` makes for it (holdout, splits, a fixed moment gone, a listen)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from shared.domain.journeys.advance import instance_id, start
from shared.domain.journeys.codec import instance_from_json
from shared.domain.journeys.entering import (
    HELD_OUT,
    InstanceIds,
    routes,
    set_based,
    step_counts,
)
from shared.domain.journeys.holdout import held_out
from shared.domain.journeys.instance import SetTimer, Step
from tests.unit.test_journey_advance import SEED, plan_of

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
ENTRY = {"type": "audience", "audienceId": "all", "next": "pause"}
WAIT_END: dict[str, Any] = {
    "id": "plain", "entry": ENTRY,
    "nodes": [{"id": "pause", "type": "wait", "duration": "P3D", "next": "done"},
              {"id": "done", "type": "end"}]}
SPLIT: dict[str, Any] = {
    "id": "ab", "entry": {**ENTRY, "next": "gone"},
    "nodes": [{"id": "gone", "type": "wait", "until": "2020-01-01T00:00:00Z", "next": "ab"},
              {"id": "ab", "type": "split",
               "branches": [{"name": "A", "weight": 30, "next": "pause"},
                            {"name": "B", "weight": 50, "next": "listen"},
                            {"name": "C", "weight": 20, "next": "done"}]},
              {"id": "pause", "type": "wait", "duration": "PT5M", "next": "done"},
              {"id": "listen", "type": "listen",
               "branches": [{"event": {"eventId": "purchase"}, "next": "done"}],
               "timeout": {"after": "P2D", "next": "done"}},
              {"id": "done", "type": "end"}]}


def _with(data: dict[str, Any], first: dict[str, Any]) -> dict[str, Any]:
    return {**data, "entry": {**ENTRY, "next": first["id"]},
            "nodes": [first, *data["nodes"]]}


@pytest.mark.parametrize("data", [WAIT_END, SPLIT, _with(WAIT_END, {
    "id": "later", "type": "wait", "until": "2030-01-01T00:00:00Z", "next": "pause"})])
def test_a_way_to_the_first_wait_that_reads_no_profile_and_acts_not_is_set_based(
        data: dict[str, Any]) -> None:
    assert set_based(plan_of(data))


@pytest.mark.parametrize("first", [
    {"id": "mail", "type": "email", "message": "m", "next": "pause"},
    {"id": "set", "type": "updateProfile", "set": {"city": "Paris"}, "next": "pause"},
    {"id": "ask", "type": "condition", "branches": [
        {"when": {"path": "city", "op": "eq", "value": "Paris"}, "next": "done"}],
     "otherwise": "pause"},
    {"id": "renewal", "type": "wait", "untilField": "attributes.renewal", "next": "pause"},
])
def test_a_way_that_reads_the_profile_or_acts_is_left_to_start(first: dict[str, Any]) -> None:
    assert not set_based(plan_of(_with(WAIT_END, first)))


def test_the_seed_journey_sends_first_so_it_is_entered_per_profile() -> None:
    assert not set_based(plan_of(SEED))


@pytest.mark.parametrize("profile_id", ["p1", "é-ü-ß", "x" * 200, "", "a\x00b"])
def test_instance_ids_are_advance_s_for_every_profile(profile_id: str) -> None:
    ids = InstanceIds("t1", "j", 3, 2)
    assert ids(profile_id) == instance_id("t1", "j", 3, profile_id, 2)


@pytest.mark.parametrize("data", [WAIT_END, SPLIT])
@pytest.mark.parametrize("holdout", [Decimal(0), Decimal("12.5")])
def test_a_chunk_makes_for_each_profile_what_start_makes(data: dict[str, Any],
                                                         holdout: Decimal) -> None:
    plan = replace(plan_of(data), tenant="t1")
    profiles = [f"p{i}" for i in range(400)]
    chunk = routes(plan, "t1", profiles + profiles[:3], 1, holdout, NOW)
    assert chunk.profile_ids == profiles  # a profile twice in a chunk enters once
    assert len(chunk.templates) <= (4 if data is SPLIT else 2)
    counted: dict[int, int] = {}
    texts = [chunk.instance_id(n) for n in range(len(chunk.profile_ids))]
    for profile_id, iid, at in zip(chunk.profile_ids, texts, chunk.groups, strict=True):
        counted[at] = counted.get(at, 0) + 1
        held = held_out("t1", profile_id, holdout)
        instance, effects = start(plan, profile_id, 1, {}, NOW, held)
        t = chunk.templates[at]
        assert instance_from_json({**t.document, "profileId": profile_id,
                                   "instanceId": iid}) == instance
        assert (t.state, t.node, t.token) == (instance.state.value, instance.node,
                                              instance.token)
        assert list(t.steps) == [e for e in effects if isinstance(e, Step)]
        assert list(t.timers) == [(e.token, e.due) for e in effects
                                  if isinstance(e, SetTimer)]
        assert (t.route == HELD_OUT) == held
    if holdout:
        assert any(t.route == HELD_OUT for t in chunk.templates)
    if data is SPLIT:
        assert {t.route for t in chunk.templates} - {HELD_OUT} == {("A",), ("B",), ("C",)}
    # the counts of the steps written, as count_steps counts them one profile at a time
    expected: dict[Step, int] = {}
    for profile_id in profiles:
        for e in start(plan, profile_id, 1, {}, NOW, held_out("t1", profile_id, holdout))[1]:
            if isinstance(e, Step):
                key = Step(e.kind, e.node, e.detail if e.kind == "split" else "")
                expected[key] = expected.get(key, 0) + 1
    assert step_counts(chunk.templates, counted.items()) == expected


def test_a_wait_until_a_moment_to_come_waits_there_and_one_gone_goes_on() -> None:
    later = {"id": "later", "type": "wait", "until": (NOW + timedelta(hours=1)).isoformat(),
             "next": "pause"}
    chunk = routes(replace(plan_of(_with(WAIT_END, later)), tenant="t"), "t", ["p"], 0,
                   Decimal(0), NOW)
    assert (chunk.templates[0].node, chunk.templates[0].timers) == (
        "later", ((1, NOW + timedelta(hours=1)),))
    gone = {**later, "until": (NOW - timedelta(hours=1)).isoformat()}
    chunk = routes(replace(plan_of(_with(WAIT_END, gone)), tenant="t"), "t", ["p"], 0,
                   Decimal(0), NOW)
    assert (chunk.templates[0].node, chunk.templates[0].timers) == (
        "pause", ((1, NOW + timedelta(days=3)),))
