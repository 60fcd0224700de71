"""Journey definitions: their shape (pydantic) and what blocks publishing (validation)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from shared.domain.journeys.definition import parse_definition
from shared.domain.journeys.validation import Problem, errors, validate
from tests.unit.test_journey_advance import SEED

MESSAGES = {"welcome": True, "welcome-push": True, "reminder": True, "thank-you": True}
EVENTS = {"purchase", "optOut"}


def problems_of(data: dict[str, Any], **known: Any) -> list[Problem]:
    return validate(parse_definition(data), **known)


def seed(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(SEED)
    nodes = {n["id"]: n for n in data["nodes"]}
    for node_id, change in changes.items():
        if change is None:
            data["nodes"].remove(nodes[node_id])
        else:
            nodes[node_id].update(change)
    return data


def test_the_seed_journey_is_valid() -> None:
    assert problems_of(SEED, messages=MESSAGES, journey_events=EVENTS) == []


def test_an_unknown_next_and_an_unreachable_node_are_errors() -> None:
    data = seed(reminder={"next": "nowhere"})
    data["nodes"].append({"id": "island", "type": "end"})
    found = errors(problems_of(data))
    assert Problem("reminder", "error", "`next` names 'nowhere', no such node") in found
    assert Problem("island", "error", "no path from the entry reaches it") in found


def test_a_loop_with_no_wait_is_an_error_and_one_through_a_wait_is_not() -> None:
    spin = seed(thanks={"next": "again"})
    spin["nodes"].append({"id": "again", "type": "email", "message": "welcome",
                          "next": "thanks"})
    loops = [p for p in errors(problems_of(spin)) if "a loop with no wait" in p.message]
    assert len(loops) == 1 and loops[0].node in {"again", "thanks"}
    through_wait = seed(thanks={"next": "buy"},  # thanks → buy (a listen) → thanks
                        buy={"timeout": {"after": "P30D", "next": "done"}})
    assert not errors(problems_of(through_wait))


def test_a_timeout_over_90_days_is_an_error() -> None:
    found = errors(problems_of(seed(buy={"timeout": {"after": "P91D"}})))
    assert found == [Problem("buy", "error", "the timeout is over 90 days")]


def test_a_reaction_must_follow_an_upstream_action_of_its_channel() -> None:
    not_upstream = seed(react={"branches": [
        {"reaction": {"action": "reminder", "kind": "opened"}, "next": "buy"}]})
    assert "not upstream" in errors(problems_of(not_upstream))[0].message
    wrong_kind = seed(react={"branches": [
        {"reaction": {"action": "push", "kind": "opened"}, "next": "buy"}]})
    assert "`opened` cannot follow a push message" in errors(problems_of(wrong_kind))[0].message
    not_action = seed(react={"branches": [
        {"reaction": {"action": "buy", "kind": "opened"}, "next": "buy"}]})
    assert "not an email, SMS or push action" in errors(problems_of(not_action))[0].message


def test_a_reaction_to_an_action_some_paths_skip_is_a_warning() -> None:
    # buy is reached from react (mail sent) and from reminder: both passed mail, so a
    # reaction to `reminder` at buy is skipped on the path where the open came first
    data = seed(buy={"branches": [
        {"reaction": {"action": "reminder", "kind": "clicked"}, "next": "thanks"}]})
    found = problems_of(data)
    assert not errors(found)
    assert any(p.node == "buy" and "skip 'reminder'" in p.message for p in found)


def test_a_listen_without_timeout_is_a_warning() -> None:
    data = seed(buy={"timeout": None})
    found = problems_of(data)
    assert not errors(found)
    assert Problem("buy", "warning", "no timeout: an instance whose branches never happen"
                   " waits for ever") in found


def test_missing_or_unpublished_messages_and_unknown_events_are_errors() -> None:
    found = errors(problems_of(SEED, messages={**MESSAGES, "reminder": False,
                                               "thank-you": None} | {},
                               journey_events={"purchase"}))
    messages = {p.message for p in found}
    assert "the message 'reminder' is not published" in messages
    assert "no journey event 'optOut'" in messages


def test_duplicate_ids_are_an_error() -> None:
    data = seed()
    data["nodes"].append({"id": "done", "type": "end"})
    assert Problem("done", "error", "two nodes are named 'done'") in problems_of(data)


@pytest.mark.parametrize("bad, where", [
    ({"nodes": []}, "nodes"),
    ({"nodes": [{"id": "x", "type": "teleport"}]}, "nodes"),
    ({"nodes": [{"id": "w", "type": "wait", "next": "d"}]}, "nodes"),  # no duration
    ({"nodes": [{"id": "l", "type": "listen", "branches": [
        {"reaction": {"action": "a", "kind": "opened"}, "event": {"eventId": "e"},
         "next": "d"}]}]}, "nodes"),
    ({"entry": {"type": "audience", "audienceId": "a", "next": "x", "rate": 0}}, "entry"),
    ({"nodes": [{"id": "1bad", "type": "end"}]}, "nodes"),
])
def test_a_malformed_definition_is_refused_where_it_is_wrong(bad: dict[str, Any],
                                                             where: str) -> None:
    with pytest.raises(ValidationError) as refused:
        parse_definition({**copy.deepcopy(SEED), **bad})
    assert refused.value.errors()[0]["loc"][0] == where


def with_journey_events() -> dict[str, Any]:
    data = copy.deepcopy(SEED)
    data["nodes"][4]["branches"][0]["event"]["eventId"] = "JEVpurchase"
    data["nodes"][5]["next"] = "big"
    data["nodes"].append({"id": "big", "type": "condition", "else": "done", "branches": [
        {"when": {"path": "waits.buy.amount", "op": "gt", "value": 100}, "next": "done"}]})
    return data


def test_conditions_on_journey_event_data_are_checked_against_the_types_fields() -> None:
    from shared.domain.journeys.journey_events import JourneyEventType
    from tests.unit.test_journey_events import PURCHASE
    types = {"JEVpurchase": JourneyEventType.model_validate(PURCHASE)}
    good = with_journey_events()
    assert not errors(problems_of(good, paths={}, event_types=types))
    bad = with_journey_events()
    bad["nodes"][4]["branches"][0]["event"]["when"] = {
        "path": "event.nope", "op": "eq", "value": "x"}
    bad["nodes"][-1]["branches"][0]["when"]["value"] = "lots"  # amount is a decimal
    found = {p.node: p.message for p in errors(problems_of(bad, paths={}, event_types=types))}
    assert set(found) == {"buy", "big"}
    assert "['event', 'when'" in found["buy"] and "branch 0" in found["big"]


def test_a_compiled_plan_runs_the_seed_journey_with_its_journey_event() -> None:
    from datetime import UTC, datetime

    from shared.domain.journeys.advance import advance, start
    from shared.domain.journeys.instance import JourneyEvent, Reaction, State
    from shared.domain.journeys.journey_events import JourneyEventType
    from shared.domain.journeys.plan import compile_plan
    from tests.unit.test_journey_events import PURCHASE
    types = {"JEVpurchase": JourneyEventType.model_validate(PURCHASE)}
    plan = compile_plan(parse_definition(with_journey_events()), 3, {}, types)
    now = datetime(2026, 12, 3, tzinfo=UTC)
    instance, _ = start(plan, "c1", 0, {}, now)
    instance, _ = advance(plan, instance, Reaction(instance.sent["mail"], "opened"), now)
    done, effects = advance(plan, instance, JourneyEvent(
        "JEVpurchase", {"customerId": "c1", "purchaseMessage": "thank you", "amount": 250}),
        now)
    assert done.state is State.FINISHED and done.version == 3
    assert [e.node for e in effects if type(e).__name__ == "Send"] == ["thanks"]


# Journey messages are event configurations JMS…: what the admin API finds of them is each
# one's (channel, published), published meaning a live version (published or paused).
JMS = {"JMSwelcome": ("email", True), "JMSwelcomePush": ("push", True),
       "JMSreminder": ("email", True), "JMSthanks": ("push", True)}


def with_jms(**messages: str) -> dict[str, Any]:
    data = copy.deepcopy(SEED)
    names = {"mail": "JMSwelcome", "push": "JMSwelcomePush", "reminder": "JMSreminder",
             "thanks": "JMSthanks", **messages}
    for node in data["nodes"]:
        if node["id"] in names:
            node["message"] = names[node["id"]]
    return data


def test_journey_messages_of_the_nodes_channels_published_are_fine() -> None:
    assert problems_of(with_jms(), messages=JMS, journey_events=EVENTS) == []


def test_a_missing_unpublished_or_other_channel_journey_message_is_an_error_at_its_node(
) -> None:
    known = {**JMS, "JMSreminder": ("email", False), "JMSthanks": ("email", True)}
    data = with_jms(mail="JMSnope")
    found = {p.node: p.message for p in errors(problems_of(data, messages=known))}
    assert found == {
        "mail": "no message 'JMSnope' in this journey",
        "reminder": "the message 'JMSreminder' is not published",
        "thanks": "the message 'JMSthanks' is an email message; this node sends a push message",
    }


def test_a_node_naming_a_transactional_event_is_told_journey_messages_are_jms() -> None:
    data = with_jms(mail="EVTcartAbandonment", reminder="reminder")
    # Even when something answers for the EVT id: an action never sends a transactional
    # event's message.
    known = {**JMS, "EVTcartAbandonment": ("email", True)}
    found = {p.node: p.message for p in errors(problems_of(data, messages=known))}
    assert set(found) == {"mail", "reminder"}
    assert found["mail"].startswith("'EVTcartAbandonment' is a transactional event: a"
                                    " journey's messages are JMS… configurations")
    assert found["reminder"] == ("no message 'reminder' in this journey: a journey's"
                                 " messages are JMS… configurations")
