"""A journey action's send window: the next opening in the recipient's zone, the message
waiting for it (never dropped), and what validation refuses. Pure, no services."""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from shared.domain.journeys.advance import Plan, advance, start
from shared.domain.journeys.definition import SendWindow, parse_definition
from shared.domain.journeys.instance import Send, SetTimer, State, Step, TimerFired
from shared.domain.journeys.send_window import opens_at, recipient_zone

PARIS = ZoneInfo("Europe/Paris")
OFFICE = SendWindow(days=["mon", "tue", "wed", "thu", "fri"], start=time(9), end=time(18))


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def test_the_next_opening_in_the_recipients_zone() -> None:
    # Thursday 3 December 2026: Paris is UTC+1
    assert opens_at(OFFICE, utc(2026, 12, 3, 10), PARIS) == utc(2026, 12, 3, 10)  # inside
    assert opens_at(OFFICE, utc(2026, 12, 3, 6), PARIS) == utc(2026, 12, 3, 8)  # 07:00 local
    assert opens_at(OFFICE, utc(2026, 12, 3, 17), PARIS) == utc(2026, 12, 4, 8)  # 18:00 shut
    assert opens_at(OFFICE, utc(2026, 12, 4, 18), PARIS) == utc(2026, 12, 7, 8)  # Fri → Mon
    # the Friday before clocks go forward (Sun 29 March 2026): Monday 09:00 is UTC+2
    assert opens_at(OFFICE, utc(2026, 3, 27, 20), PARIS) == utc(2026, 3, 30, 7)
    assert opens_at(OFFICE, utc(2026, 12, 3, 10), ZoneInfo("Asia/Tokyo")) == utc(
        2026, 12, 4, 0)  # 19:00 in Tokyo: tomorrow 09:00 there


def test_the_zone_is_the_profiles_else_the_tenants() -> None:
    assert recipient_zone({"timeZone": "Asia/Tokyo"}, "Europe/Paris").key == "Asia/Tokyo"
    assert recipient_zone({"timeZone": "Mars/Base"}, "Europe/Paris").key == "Europe/Paris"
    assert recipient_zone({}, "Nowhere").key == "UTC"


def journey(window: dict[str, Any]) -> dict[str, Any]:
    return {"id": "promo", "entry": {"type": "audience", "audienceId": "all", "next": "mail"},
            "nodes": [{"id": "mail", "type": "email", "message": "JMSa", "window": window,
                       "next": "done"}, {"id": "done", "type": "end"}]}


def test_a_message_due_outside_its_window_waits_for_it_then_goes() -> None:
    plan = Plan(parse_definition(journey({"days": ["mon", "tue", "wed", "thu", "fri"],
                                          "start": "09:00", "end": "18:00"})), 1,
                tenant="t1", time_zone="Europe/Paris")
    night = utc(2026, 12, 3, 22)
    instance, effects = start(plan, "p1", 0, {}, night)
    assert instance.state == State.WAITING and instance.node == "mail"
    assert not [e for e in effects if isinstance(e, Send)]
    assert Step("deferred", "mail", "2026-12-04T08:00:00+00:00") in effects
    assert SetTimer(instance.token, utc(2026, 12, 4, 8)) in effects
    done, sent = advance(plan, instance, TimerFired(instance.token), utc(2026, 12, 4, 8))
    assert [e.node for e in sent if isinstance(e, Send)] == ["mail"]
    assert done.state == State.FINISHED and "mail" in done.sent
    # the profile's own zone first: 22:00 UTC is 07:00 the next day in Tokyo
    tokyo, _ = start(plan, "p2", 0, {"timeZone": "Asia/Tokyo"}, night)
    assert tokyo.node == "mail" and tokyo.state == State.WAITING
    inside, effects = start(plan, "p3", 0, {}, utc(2026, 12, 3, 10))
    assert inside.state == State.FINISHED and [e.node for e in effects
                                               if isinstance(e, Send)] == ["mail"]


def test_windows_are_validated() -> None:
    with pytest.raises(ValidationError, match="before `end`"):
        parse_definition(journey({"start": "18:00", "end": "09:00"}))
    with pytest.raises(ValidationError, match="without an offset"):
        parse_definition(journey({"start": "09:00+01:00", "end": "18:00+01:00"}))
    with pytest.raises(ValidationError, match="at least 1"):
        parse_definition(journey({"days": [], "start": "09:00", "end": "18:00"}))
    with pytest.raises(ValidationError, match=r"Input should be"):
        parse_definition(journey({"days": ["monday"], "start": "09:00", "end": "18:00"}))
    assert parse_definition(journey({"start": "09:00", "end": "18:00"})).node(
        "mail").window.days == ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]  # type: ignore[union-attr]
