"""The journey state machine on the seed journey and on every activity: pure, no services."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.domain.conditions import PathSpec, ValueType, check_condition
from shared.domain.journeys.advance import EARLY_WINDOW, Plan, advance, hold, start
from shared.domain.journeys.definition import parse_definition
from shared.domain.journeys.instance import (
    CallHttp,
    CancelTimer,
    Effect,
    Instance,
    JourneyEvent,
    Reaction,
    Resume,
    Send,
    SetTimer,
    State,
    Step,
    Stop,
    TimerFired,
    UpdateProfile,
)

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
SCHEMA = {"city": PathSpec(ValueType.STRING, "city"),
          "event.purchaseMessage": PathSpec(ValueType.STRING, "x"),
          "waits.buy.amount": PathSpec(ValueType.INTEGER, "x")}
THANK_YOU = {"path": "event.purchaseMessage", "op": "eq", "value": "thank you"}

SEED: dict[str, Any] = {
    "id": "seed", "entry": {"type": "audience", "audienceId": "atl-sf-sea", "next": "mail"},
    "nodes": [
        {"id": "mail", "type": "email", "message": "welcome", "next": "push"},
        {"id": "push", "type": "push", "message": "welcome-push", "next": "react"},
        {"id": "react", "type": "listen",
         "branches": [{"reaction": {"action": "mail", "kind": "opened"}, "next": "buy"},
                      {"reaction": {"action": "push", "kind": "pushOpened"}, "next": "buy"}],
         "timeout": {"after": "P1D", "next": "reminder"}},
        {"id": "reminder", "type": "email", "message": "reminder", "next": "buy"},
        {"id": "buy", "type": "listen",
         "branches": [{"event": {"eventId": "purchase", "when": THANK_YOU}, "next": "thanks"}],
         "timeout": {"after": "P30D"}},
        {"id": "thanks", "type": "push", "message": "thank-you", "next": "done"},
        {"id": "done", "type": "end"}],
    "exit": [{"eventId": "optOut"}]}


def plan_of(data: dict[str, Any], speed: float = 1.0) -> Plan:
    definition = parse_definition(data)
    conditions = {n.id: [check_condition(c.when, SCHEMA) for c in n.branches]
                  for n in definition.nodes if n.type == "condition"}
    events = {n.id: {i: check_condition(b.event.when, SCHEMA)
                     for i, b in enumerate(n.branches) if b.event and b.event.when}
              for n in definition.nodes if n.type == "listen"}
    return Plan(definition, 1, conditions, events, speed)


def of(effects: list[Effect], kind: type) -> list[Any]:
    return [e for e in effects if isinstance(e, kind)]


def sent(effects: list[Effect]) -> list[str]:
    return [e.node for e in of(effects, Send)]


def started(data: dict[str, Any] = SEED, **plan: Any) -> tuple[Plan, Instance, list[Effect]]:
    p = plan_of(data, **plan)
    instance, effects = start(p, "p1", 0, {"city": "Seattle"}, NOW)
    return p, instance, effects


def test_entering_sends_the_email_and_the_push_then_waits_a_day() -> None:
    _plan, instance, effects = started()
    assert sent(effects) == ["mail", "push"]
    assert instance.state is State.WAITING and instance.node == "react"
    assert of(effects, SetTimer) == [SetTimer(instance.token, NOW + timedelta(days=1))]
    assert set(instance.sent) == {"mail", "push"}


def test_an_open_takes_the_reaction_path_and_the_timeout_then_finds_a_stale_token() -> None:
    plan, instance, _ = started()
    opened, effects = advance(plan, instance, Reaction(instance.sent["mail"], "opened"),
                              NOW + timedelta(hours=2))
    assert opened.node == "buy" and CancelTimer(instance.token) in effects
    assert opened.token == instance.token + 1 and not sent(effects)
    late, nothing = advance(plan, opened, TimerFired(instance.token), NOW + timedelta(days=1))
    assert (late, nothing) == (opened, [])  # never both paths


def test_the_timeout_sends_the_reminder_and_a_late_open_changes_nothing() -> None:
    plan, instance, _ = started()
    timed, effects = advance(plan, instance, TimerFired(instance.token), NOW + timedelta(days=1))
    assert sent(effects) == ["reminder"] and timed.node == "buy"
    assert Step("timedOut", "react") in effects
    late, more = advance(plan, timed, Reaction(instance.sent["mail"], "opened"), NOW)
    assert late.node == "buy" and more == []


def test_only_a_thank_you_purchase_sends_the_thank_you_push() -> None:
    plan, instance, _ = started()
    at_buy, _ = advance(plan, instance, Reaction(instance.sent["push"], "pushOpened"), NOW)
    other, effects = advance(plan, at_buy, JourneyEvent("purchase", {"purchaseMessage": "ok"}),
                             NOW)
    assert other.node == "buy" and not sent(effects)
    done, effects = advance(plan, other, JourneyEvent(
        "purchase", {"purchaseMessage": "thank you"}), NOW)
    assert sent(effects) == ["thanks"] and done.state is State.FINISHED
    assert done.waits["buy"] == {"purchaseMessage": "thank you"}


def test_a_listen_timing_out_with_no_path_ends_timed_out() -> None:
    plan, instance, _ = started()
    at_buy, effects = advance(plan, instance, TimerFired(instance.token), NOW)
    ended, effects = advance(plan, at_buy, TimerFired(at_buy.token), NOW + timedelta(days=30))
    assert ended.state is State.TIMED_OUT and effects[-1].kind == "timedOut"


def test_a_machine_open_does_not_count_unless_the_branch_says_so() -> None:
    plan, instance, _ = started()
    still, _ = advance(plan, instance, Reaction(instance.sent["mail"], "opened", machine=True),
                       NOW)
    assert still.node == "react"
    data = {**SEED, "nodes": [dict(n) for n in SEED["nodes"]]}
    data["nodes"][2] = {**data["nodes"][2], "branches": [
        {"reaction": {"action": "mail", "kind": "opened", "humanOnly": False},
         "next": "buy"}]}
    plan2, instance2, _ = started(data)
    moved, _ = advance(plan2, instance2, Reaction(instance2.sent["mail"], "opened",
                                                  machine=True), NOW)
    assert moved.node == "buy"


def test_a_reaction_to_another_message_or_kind_is_not_the_awaited_one() -> None:
    plan, instance, _ = started()
    for reaction in (Reaction("someone-else", "opened"),
                     Reaction(instance.sent["mail"], "clicked"),
                     Reaction(instance.sent["push"], "opened")):
        after, effects = advance(plan, instance, reaction, NOW)
        assert after.node == "react" and effects == []


def test_a_purchase_before_the_wait_is_not_lost_within_the_window() -> None:
    plan, instance, _ = started()
    early, effects = advance(plan, instance, JourneyEvent(
        "purchase", {"purchaseMessage": "thank you"}), NOW + timedelta(minutes=1))
    assert effects == [] and len(early.seen) == 1  # kept: the journey listens for it
    done, effects = advance(plan, early, Reaction(instance.sent["mail"], "opened"),
                            NOW + timedelta(minutes=5))
    assert sent(effects) == ["thanks"] and done.state is State.FINISHED
    # past the window it is forgotten
    late, _ = advance(plan, early, Reaction(instance.sent["mail"], "opened"),
                      NOW + timedelta(minutes=1) + EARLY_WINDOW + timedelta(seconds=1))
    assert late.node == "buy" and late.state is State.WAITING  # still waiting to buy


def test_an_event_the_journey_never_listens_for_is_not_kept() -> None:
    plan, instance, _ = started()
    after, effects = advance(plan, instance, JourneyEvent("unrelated"), NOW)
    assert after == instance and effects == []


def test_an_exit_event_takes_the_profile_out_wherever_it_is() -> None:
    plan, instance, _ = started()
    out, effects = advance(plan, instance, JourneyEvent("optOut"), NOW)
    assert out.state is State.EXITED and CancelTimer(instance.token) in effects
    assert advance(plan, out, TimerFired(instance.token), NOW) == (out, [])


def test_stop_ends_the_instance_stopped() -> None:
    plan, instance, _ = started()
    stopped, effects = advance(plan, instance, Stop(), NOW)
    assert stopped.state is State.STOPPED and effects[-1].kind == "stopped"


def test_redoing_an_input_on_the_stored_instance_gives_the_same_effects() -> None:
    plan, instance, _ = started()
    first = advance(plan, instance, TimerFired(instance.token), NOW)
    again = advance(plan, instance, TimerFired(instance.token), NOW)
    assert first == again
    assert start(plan, "p1", 0, {}, NOW)[0].sent == instance.sent  # same message ids
    assert start(plan, "p1", 1, {}, NOW)[0].sent != instance.sent  # a re-entry: new ones


CONDITIONAL: dict[str, Any] = {
    "id": "cond", "entry": {"type": "event", "eventId": "signup", "next": "where"},
    "nodes": [
        {"id": "where", "type": "condition",
         "branches": [{"when": {"path": "city", "op": "eq", "value": "Seattle"},
                       "next": "tag"}], "else": "call"},
        {"id": "tag", "type": "updateProfile", "set": {"tier": "gold"}, "next": "pause"},
        {"id": "call", "type": "http", "url": "https://crm.example.com/hook", "next": "pause"},
        {"id": "pause", "type": "wait", "duration": "PT2H", "next": "sms"},
        {"id": "sms", "type": "sms", "message": "hello", "next": "done"},
        {"id": "done", "type": "end"}]}


def test_a_condition_branches_on_the_profile_and_the_else_path_is_taken_otherwise() -> None:
    plan = plan_of(CONDITIONAL)
    seattle, effects = start(plan, "p1", 0, {"city": "Seattle"}, NOW)
    assert of(effects, UpdateProfile)[0].values == {"tier": "gold"} and not of(effects, CallHttp)
    portland, effects = start(plan, "p2", 0, {"city": "Portland"}, NOW)
    assert of(effects, CallHttp)[0].url == "https://crm.example.com/hook"
    _nowhere, effects = start(plan, "p3", 0, {}, NOW)  # unknown city: not true, so else
    assert of(effects, CallHttp)
    assert seattle.node == portland.node == "pause"


def test_a_wait_sets_its_timer_and_goes_on_when_it_fires() -> None:
    plan = plan_of(CONDITIONAL)
    waiting, effects = start(plan, "p1", 0, {"city": "Seattle"}, NOW)
    assert of(effects, SetTimer) == [SetTimer(waiting.token, NOW + timedelta(hours=2))]
    done, effects = advance(plan, waiting, TimerFired(waiting.token), NOW + timedelta(hours=2))
    assert sent(effects) == ["sms"] and done.state is State.FINISHED


def test_test_mode_compresses_waits_and_timeouts() -> None:
    _plan, _instance, effects = started(speed=1440)  # a day a minute
    assert of(effects, SetTimer)[0].due == NOW + timedelta(minutes=1)
    plan = plan_of(CONDITIONAL, speed=60)
    _w, effects = start(plan, "p1", 0, {"city": "Seattle"}, NOW)
    assert of(effects, SetTimer)[0].due == NOW + timedelta(minutes=2)


def test_a_wait_until_a_profile_date_goes_on_at_once_when_it_is_past_or_missing() -> None:
    data = {**CONDITIONAL, "nodes": [
        {"id": "where", "type": "wait", "untilField": "renewal", "next": "done"},
        {"id": "done", "type": "end"}]}
    plan = plan_of(data)
    future, effects = start(plan, "p1", 0, {"renewal": "2026-12-10T00:00:00+00:00"}, NOW)
    assert future.state is State.WAITING
    assert of(effects, SetTimer)[0].due == datetime(2026, 12, 10, tzinfo=UTC)
    for profile in ({"renewal": "2020-01-01"}, {}):
        ended, _ = start(plan, "p2", 0, profile, NOW)
        assert ended.state is State.FINISHED


def test_a_profile_date_ends_the_wait_at_the_profiles_midnight() -> None:
    data = {**CONDITIONAL, "nodes": [
        {"id": "where", "type": "wait", "untilField": "renewal", "next": "done"},
        {"id": "done", "type": "end"}]}
    plan = plan_of(data)
    for zone, due in (("America/New_York", datetime(2026, 12, 10, 5, tzinfo=UTC)),
                      ("Asia/Tokyo", datetime(2026, 12, 9, 15, tzinfo=UTC)),
                      (None, datetime(2026, 12, 10, tzinfo=UTC)),  # none: UTC
                      ("Not/AZone", datetime(2026, 12, 10, tzinfo=UTC))):
        profile = {"renewal": "2026-12-10", **({"timeZone": zone} if zone else {})}
        _i, effects = start(plan, "p1", 0, profile, NOW)
        assert of(effects, SetTimer)[0].due == due, zone
    # An offset given wins over the profile's zone.
    _i, effects = start(plan, "p1", 0, {"renewal": "2026-12-10T08:00:00+01:00",
                                        "timeZone": "Asia/Tokyo"}, NOW)
    assert of(effects, SetTimer)[0].due == datetime(2026, 12, 10, 7, tzinfo=UTC)


def test_a_condition_on_data_of_the_wrong_type_ends_the_instance_in_error() -> None:
    data = {"id": "bad", "entry": {"type": "event", "eventId": "e", "next": "buy"},
            "nodes": [
                {"id": "buy", "type": "listen", "branches": [
                    {"event": {"eventId": "purchase"}, "next": "check"}]},
                {"id": "check", "type": "condition", "branches": [
                    {"when": {"path": "waits.buy.amount", "op": "gt", "value": 10},
                     "next": "done"}], "else": "done"},
                {"id": "done", "type": "end"}]}
    plan = plan_of(data)
    waiting, _ = start(plan, "p1", 0, {}, NOW)
    failed, _effects = advance(plan, waiting, JourneyEvent("purchase", {"amount": "ten"}), NOW)
    assert failed.state is State.ERROR and "check" in (failed.reason or "")
    fine, _ = advance(plan, waiting, JourneyEvent("purchase", {"amount": 12}), NOW)
    assert fine.state is State.FINISHED


@pytest.mark.parametrize("kind", ["opened", "clicked"])
def test_a_reaction_before_its_listen_counts_when_the_listen_is_entered(kind: str) -> None:
    data = {"id": "late", "entry": {"type": "event", "eventId": "e", "next": "mail"},
            "nodes": [
                {"id": "mail", "type": "email", "message": "m", "next": "pause"},
                {"id": "pause", "type": "wait", "duration": "PT1H", "next": "react"},
                {"id": "react", "type": "listen", "branches": [
                    {"reaction": {"action": "mail", "kind": kind}, "next": "done"}],
                 "timeout": {"after": "P1D", "next": "done"}},
                {"id": "done", "type": "end"}]}
    plan = plan_of(data)
    waiting, _ = start(plan, "p1", 0, {}, NOW)
    reacted, _ = advance(plan, waiting, Reaction(waiting.sent["mail"], kind), NOW)
    assert reacted.node == "pause" and len(reacted.seen) == 1
    done, effects = advance(plan, reacted, TimerFired(reacted.token), NOW + timedelta(hours=5))
    assert done.state is State.FINISHED and Step("reaction", "react", kind) in effects
    assert not of(effects, SetTimer)  # resolved on entering: no timeout set
    for when in (NOW + timedelta(minutes=1),):
        assert advance(plan, done, TimerFired(reacted.token + 1), when) == (done, [])


def test_a_paused_instance_keeps_an_open_and_takes_it_on_resume() -> None:
    p, instance, _ = started()
    held = hold(p, instance, Reaction(instance.sent["mail"], "opened"), NOW)
    assert (held.node, held.token, len(held.seen)) == ("react", instance.token, 1)
    resumed, effects = advance(p, held, Resume(), NOW + timedelta(minutes=1))
    assert resumed.node == "buy" and resumed.seen == ()
    assert of(effects, CancelTimer) == [CancelTimer(instance.token)]
    assert next((s.kind, s.node) for s in of(effects, Step)) == ("reaction", "react")
    # Nothing kept: a resume changes nothing.
    assert advance(p, instance, Resume(), NOW) == (instance, [])
