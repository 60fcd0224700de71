"""An event entry's rate: a profile past it is held at the entry until its slot, then
runs the journey; nothing is dropped. Pure, no services."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from shared.domain.journeys.advance import Plan, advance, start
from shared.domain.journeys.definition import parse_definition
from shared.domain.journeys.instance import Send, SetTimer, State, Step, TimerFired

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
JOURNEY = {"id": "welcome",
           "entry": {"type": "event", "eventId": "JEVsignup", "rate": 2, "next": "mail"},
           "nodes": [{"id": "mail", "type": "email", "message": "JMSa", "next": "done"},
                     {"id": "done", "type": "end"}]}


def test_a_profile_held_by_the_rate_waits_at_the_entry_then_runs() -> None:
    plan = Plan(parse_definition(JOURNEY), 1, tenant="t1")
    slot = NOW + timedelta(seconds=1.5)
    held, effects = start(plan, "p1", 0, {}, NOW, hold_until=slot)
    assert (held.state, held.node) == (State.WAITING, "entry")
    assert effects == [Step("entered", "entry"), Step("held", "entry", slot.isoformat()),
                       SetTimer(held.token, slot)]
    ran, effects = advance(plan, held, TimerFired(held.token), slot)
    assert ran.state == State.FINISHED
    assert [e.node for e in effects if isinstance(e, Send)] == ["mail"]
    # a slot already come: at once, as without a rate
    now, effects = start(plan, "p2", 0, {}, NOW, hold_until=NOW)
    assert now.state == State.FINISHED and any(isinstance(e, Send) for e in effects)


def test_the_rate_is_bounded() -> None:
    for rate in (0, 20_001):
        with pytest.raises(ValidationError):
            parse_definition({**JOURNEY, "entry": {**JOURNEY["entry"], "rate": rate}})
