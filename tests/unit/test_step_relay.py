"""The step relay's records (services/journeys/step_relay.py), without I/O: a profile's
consecutive steps are a record of one member; a cohort's consecutive steps a record for
each partition its members go to and each MEMBERS_PER_RECORD of them, joined from encoded
pieces — each as StepEvent reads it, keyed so that every member lands on its own
profile's partition —, the steps in commit order; and a batch cut at the member budget,
never empty."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson

from services.journeys.step_relay import MEMBERS_AT_ONCE, _events, parts, runs, within_budget
from shared.adapters.producer import key_partition
from shared.domain.journeys.step_events import MEMBERS_PER_RECORD, STEPS_PER_RECORD, StepEvent

AT = datetime(2026, 12, 5, 14, 0, tzinfo=UTC)


def _row(step_id: int, cohort: uuid.UUID | None = None, members: int = 0,
         **fields: Any) -> dict[str, Any]:
    return {"id": step_id, "tx": "900", "tenant_id": "t1", "journey_id": "j", "version": 2,
            "instance_id": None, "profile_id": None, "at": AT, "kind": "entered",
            "node": "entry", "detail": "", "cohort_id": cohort, "members": members,
            **fields}


def test_a_profiles_step_is_a_record_of_one_member() -> None:
    plain = _row(7, instance_id="i9", profile_id='so"lo', kind="transition", detail="next")
    [(topic, value, key)] = _events([plain], {})  # type: ignore[list-item]
    event = StepEvent.model_validate(orjson.loads(value))
    assert topic == "parcours.journey-steps.v3" and key == b'so"lo'
    [step] = event.steps
    assert (event.v, event.version, step.stepId, step.kind, step.node, step.detail,
            step.at) == (3, 2, 7, "transition", "entry", "next", AT)
    assert [(m.instanceId, m.profileId) for m in event.members] == [("i9", 'so"lo')]


def _step_ids(value: bytes) -> list[int]:
    return [s.stepId for s in StepEvent.model_validate(orjson.loads(value)).steps]


def test_consecutive_steps_of_the_same_members_are_one_record_in_commit_order() -> None:
    cohort, other = uuid.uuid4(), uuid.uuid4()
    mine = {"instance_id": "i1", "profile_id": "p1"}
    rows = [_row(1, **mine), _row(2, kind="transition", detail="x", **mine),
            _row(3, cohort, 2), _row(4, cohort, 2, kind="transition"),
            _row(5, instance_id="i2", profile_id="p2"),
            _row(6, cohort, 2, kind="finished"),  # its cohort's again, after another's
            _row(7, **mine), _row(8, other, 1)]
    members = {("t1", cohort): parts([("c1", "q1")], 6), ("t1", other): parts([("o1", "q2")], 6)}
    events = _events(rows, members)  # type: ignore[arg-type]
    assert [_step_ids(value) for _, value, _ in events] == [
        [1, 2], [3, 4], [5], [6], [7], [8]]
    assert [key for _, _, key in events] == [b"p1", b"q1", b"p2", b"q1", b"p1", b"q2"]
    assert [r[0]["id"] for r in runs([_row(n, **mine) for n in range(  # type: ignore[misc]
        STEPS_PER_RECORD + 1)])] == [0, STEPS_PER_RECORD]


def test_a_cohorts_step_is_a_record_a_partition_each_member_on_its_own_partition() -> None:
    cohort = uuid.uuid4()
    # a quote and a non-ASCII letter, escaped as JSON; enough to fill several partitions
    members = [(f"i{n}", f'p"{n}' if n % 2 else f"p\u00e9{n}") for n in range(40)]
    events = _events([_row(8, cohort, 40, detail='a "branch"'),  # type: ignore[list-item]
                      _row(9, cohort, 40, kind="transition")],
                     {("t1", cohort): parts(members, 6)})
    seen: list[tuple[str, str]] = []
    for _, value, key in events:
        event = StepEvent.model_validate(orjson.loads(value))
        assert [(s.stepId, s.kind, s.node, s.detail) for s in event.steps] == [
            (8, "entered", "entry", 'a "branch"'), (9, "transition", "entry", "")]
        assert event.version == 2
        assert key == event.members[0].profileId.encode()
        assert {key_partition(m.profileId.encode(), 6) for m in event.members} == {
            key_partition(key, 6)}
        seen += [(m.instanceId, m.profileId) for m in event.members]
    assert sorted(seen) == sorted(members) and len(seen) == len(members)
    assert 1 < len(events) <= 6


def test_a_part_holds_at_most_members_per_record_in_id_order() -> None:
    members = [(f"i{n:05d}", "same") for n in range(MEMBERS_PER_RECORD * 2 + 1)]
    split = parts(members, 6)
    assert [len(orjson.loads(b"[" + joined + b"]")) for joined, _ in split] == [
        MEMBERS_PER_RECORD, MEMBERS_PER_RECORD, 1]
    assert [m["instanceId"] for joined, _ in split
            for m in orjson.loads(b"[" + joined + b"]")] == [i for i, _ in members]


def test_a_cohort_whose_members_are_all_gone_publishes_nothing() -> None:
    assert _events([_row(3, uuid.uuid4(), 5)], {}) == []  # type: ignore[list-item]
    assert parts([], 6) == []


def test_a_batch_stops_at_the_member_budget_but_takes_at_least_one_row() -> None:
    big = MEMBERS_AT_ONCE // 2 + 1
    rows = [_row(n, uuid.uuid4(), big) for n in range(3)]
    assert within_budget(rows) == rows[:1]  # type: ignore[arg-type]
    huge = [_row(1, uuid.uuid4(), MEMBERS_AT_ONCE * 3), _row(2)]
    assert within_budget(huge) == huge[:1]  # type: ignore[arg-type]
    small = [_row(n) for n in range(5)]
    assert within_budget(small) == small  # type: ignore[arg-type]


def test_a_cohorts_steps_stay_in_one_batch_its_members_counted_once() -> None:
    """Its members are read once a batch: a step of it cut off to the next batch read
    them all again."""
    first, second = uuid.uuid4(), uuid.uuid4()
    size = MEMBERS_AT_ONCE // 2  # three steps: 1.5 budgets of member-steps, half counted
    rows = ([_row(n, first, size) for n in range(3)]
            + [_row(n, second, size) for n in range(3, 6)] + [_row(6, uuid.uuid4(), 1)])
    assert within_budget(rows) == rows[:6]  # type: ignore[arg-type]
