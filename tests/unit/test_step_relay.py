"""The step relay's records (services/journeys/step_relay.py), without I/O: a profile's
step is one event; a cohort's step one event a member, joined from encoded pieces — each
as StepEvent reads it, with its member's ids, key and a step id of its own — and a batch
cut at the member budget, never empty."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson

from services.journeys.step_relay import (
    MEMBER_IDS,
    MEMBERS_AT_ONCE,
    _events,
    member_step_id,
    within_budget,
)
from shared.adapters.kafka import encode
from shared.domain.journeys.step_events import StepEvent

AT = datetime(2026, 12, 5, 14, 0, tzinfo=UTC)


def _row(step_id: int, cohort: uuid.UUID | None = None, members: int = 0,
         **fields: Any) -> dict[str, Any]:
    return {"id": step_id, "tx": "900", "tenant_id": "t1", "journey_id": "j", "version": 2,
            "instance_id": None, "profile_id": None, "at": AT, "kind": "entered",
            "node": "entry", "detail": "", "cohort_id": cohort, "members": members,
            **fields}


def test_a_cohort_step_is_one_event_a_member_as_its_schema_reads_it() -> None:
    cohort = uuid.uuid4()
    names = ['p"1', "p2", "p\u00e93"]  # a quote and a non-ASCII letter, escaped as JSON
    members = [(encode(f"i{n}"), encode(name), name.encode()) for n, name in enumerate(names)]
    plain = _row(7, instance_id="i9", profile_id="solo", kind="transition", detail="next")
    events = _events([plain, _row(8, cohort, 3, detail='a "branch"')],  # type: ignore[list-item]
                     {("t1", cohort): members})
    read = [StepEvent.model_validate(orjson.loads(value)) for _, value, _ in events]
    assert [e.profileId for e in read] == ["solo", *names]
    assert [key for _, _, key in events] == [b"solo", *(n.encode() for n in names)]
    assert [e.instanceId for e in read] == ["i9", "i0", "i1", "i2"]
    assert [e.stepId for e in read] == [7, *(member_step_id(8, p) for p in range(3))]
    assert all(MEMBER_IDS < e.stepId < 2 ** 53 for e in read[1:])
    assert {(e.kind, e.node, e.detail, e.version, e.at) for e in read[1:]} == {
        ("entered", "entry", 'a "branch"', 2, AT)}


def test_a_cohort_whose_members_are_all_gone_publishes_nothing() -> None:
    assert _events([_row(3, uuid.uuid4(), 5)], {}) == []  # type: ignore[list-item]


def test_a_batch_stops_at_the_member_budget_but_takes_at_least_one_row() -> None:
    big = MEMBERS_AT_ONCE // 2 + 1
    rows = [_row(n, uuid.uuid4(), big) for n in range(3)]
    assert within_budget(rows) == rows[:1]  # type: ignore[arg-type]
    huge = [_row(1, uuid.uuid4(), MEMBERS_AT_ONCE * 3), _row(2)]
    assert within_budget(huge) == huge[:1]  # type: ignore[arg-type]
    small = [_row(n) for n in range(5)]
    assert within_budget(small) == small  # type: ignore[arg-type]
