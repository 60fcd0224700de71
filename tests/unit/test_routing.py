from datetime import UTC, datetime, timedelta

from shared.domain.events import EventConfig, TriggerEvent
from shared.domain.lifecycle import MessageState
from shared.domain.routing import Ended, Hold, SendRequest, decide, message_id
from shared.domain.status import Status

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
LIVE = MessageState.PUBLISHED


def config(targeting: str) -> EventConfig:
    return EventConfig(event_id="EVTx", label="x", channel="email", targeting=targeting)


def trigger(**overrides: object) -> TriggerEvent:
    fields: dict[str, object] = {"pKey": "k1", "tenant": "t", "eventId": "EVTx",
                                 "target": {"email": "a@b.co"}, "ctx": {"n": 1},
                                 "acceptedAt": 1.0}
    return TriggerEvent.model_validate({**fields, **overrides})


def test_unpublished_event_fails_routing() -> None:
    decision = decide(None, LIVE, trigger(), None, NOW)
    assert isinstance(decision, Ended) and decision.status is Status.ROUTING_FAILED


def test_event_without_a_published_message_fails_routing() -> None:
    decision = decide(config("event"), None, trigger(), None, NOW)
    assert isinstance(decision, Ended) and decision.status is Status.ROUTING_FAILED
    assert "message" in decision.reason


def test_expired_event_is_too_old() -> None:
    expired = trigger(expiration=NOW - timedelta(seconds=1))
    decision = decide(config("event"), LIVE, expired, None, NOW)
    assert isinstance(decision, Ended) and decision.status is Status.TOO_OLD


def test_profile_event_without_profile_fails_targeting() -> None:
    decision = decide(config("profile"), LIVE, trigger(), None, NOW)
    assert isinstance(decision, Ended) and decision.status is Status.TARGETING_FAILED


def test_profile_event_carries_the_profile() -> None:
    decision = decide(config("profile"), LIVE, trigger(), {"first_name": "Ada"}, NOW)
    assert isinstance(decision, SendRequest)
    assert decision.profile == {"first_name": "Ada"}
    assert decision.to == {"email": "a@b.co"}


def test_event_based_event_uses_no_profile_data() -> None:
    decision = decide(config("event"), LIVE, trigger(), {"first_name": "Ada"}, NOW)
    assert isinstance(decision, SendRequest) and decision.profile is None


def test_message_id_is_stable_and_distinct_per_event() -> None:
    assert message_id("t", "k1") == message_id("t", "k1")
    assert message_id("t", "k1") != message_id("t", "k2")
    assert message_id("t", "k1") != message_id("u", "k1")
    assert decide(config("event"), LIVE, trigger(), None, NOW) == decide(
        config("event"), LIVE, trigger(), None, NOW
    )


def test_an_event_whose_message_is_paused_is_held_unless_already_expired() -> None:
    assert isinstance(decide(config("event"), MessageState.PAUSED, trigger(), None, NOW), Hold)
    expired = trigger(expiration=NOW - timedelta(seconds=1))
    decision = decide(config("event"), MessageState.PAUSED, expired, None, NOW)
    assert isinstance(decision, Ended) and decision.status is Status.TOO_OLD


def test_a_draft_or_unpublished_message_fails_routing() -> None:
    for state in (MessageState.DRAFT, MessageState.UNPUBLISHED, None):
        decision = decide(config("event"), state, trigger(), None, NOW)
        assert isinstance(decision, Ended) and decision.status is Status.ROUTING_FAILED


def test_an_event_scheduled_for_later_is_held_until_then_and_goes_once_due() -> None:
    later = trigger(scheduled=NOW + timedelta(minutes=5))
    assert decide(config("profile"), LIVE, later, None, NOW) == Hold(
        until=NOW + timedelta(minutes=5), paused=False)
    due = NOW + timedelta(minutes=5)
    assert isinstance(decide(config("event"), LIVE, later, None, due), SendRequest)
    past = trigger(scheduled=NOW - timedelta(minutes=5))
    assert isinstance(decide(config("event"), LIVE, past, None, NOW), SendRequest)


def test_a_scheduled_event_whose_message_is_paused_waits_for_both() -> None:
    later = trigger(scheduled=NOW + timedelta(minutes=5))
    assert decide(config("event"), MessageState.PAUSED, later, None, NOW) == Hold(
        until=NOW + timedelta(minutes=5), paused=True)
    expired = trigger(scheduled=NOW - timedelta(minutes=5), expiration=NOW)
    decision = decide(config("event"), LIVE, expired, None, NOW)
    assert isinstance(decision, Ended) and decision.status is Status.TOO_OLD
