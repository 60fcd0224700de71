"""Journey messages: event configurations whose id has the prefix JMS, authored like a
transactional event's message but sent only by their journeys. The configuration's rules,
a Kafka record naming one refused with the reason, the gateway's 404 saying why."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from services.gateway.wiring import Gateway
from shared.domain.events import (
    EventConfig,
    Targeting,
    is_configured_id,
    is_event_id,
    is_journey_message_id,
)
from shared.domain.produced import Rejected, identify
from tests.unit.test_gateway_front import INGEST_KEY, Producer, _bearer
from tests.unit.test_gateway_front import gateway as gateway  # the fixture

WELCOME = {"eventId": "JMSwelcome", "label": "Welcome", "channel": "email"}


def test_the_prefixes_say_which_kind_an_id_is() -> None:
    assert is_event_id("EVTcart") and not is_event_id("JMSwelcome")
    assert is_journey_message_id("JMSwelcome") and not is_journey_message_id("EVTcart")
    assert is_configured_id("EVTcart") and is_configured_id("JMSwelcome")
    for bad in ("JEVpurchase", "JMS", "JMS" + "a" * 62, "JMS-x", "welcome"):
        assert not is_configured_id(bad), bad
    assert is_configured_id("JMS" + "a" * 61)


def test_a_journey_message_targets_a_profile_and_is_marketing_by_default() -> None:
    config = EventConfig.model_validate(WELCOME)
    assert config.targeting is Targeting.PROFILE and config.marketing is True
    assert config.journey_message
    stored = config.model_dump(mode="json", exclude={"version"})  # as admin_store keeps it
    assert EventConfig.model_validate(stored) == config
    transactional = EventConfig.model_validate({**WELCOME, "eventId": "EVTwelcome",
                                                "targeting": "profile"})
    assert transactional.marketing is False and not transactional.journey_message
    with pytest.raises(ValidationError) as missing:  # an event still says its targeting
        EventConfig.model_validate({**WELCOME, "eventId": "EVTwelcome"})
    assert missing.value.errors()[0]["loc"] == ("targeting",)


@pytest.mark.parametrize(("change", "field", "words"), [
    ({"targeting": "event"}, "targeting", 'targeting must be "profile"'),
    ({"profileKey": "customerId", "fields": [{"id": "customerId", "type": "string"}]},
     "profileKey", "it has no profileKey"),
    ({"marketing": False}, "marketing", "is marketing traffic"),
])
def test_a_journey_message_is_refused_naming_the_field(change: dict[str, Any], field: str,
                                                       words: str) -> None:
    with pytest.raises(ValidationError) as refused:
        EventConfig.model_validate({**WELCOME, **change})
    [error] = refused.value.errors()
    assert error["loc"] == (field,) and words in error["msg"]


def test_a_kafka_record_naming_a_journey_message_is_refused_saying_why() -> None:
    raw = b'{"tenant": "acme", "eventId": "JMSwelcome", "eventKey": "k1", "email": "a@b.co"}'
    rejected = identify(raw, b"secret")
    assert rejected == Rejected("invalid: eventId: JMSwelcome is a journey message: its"
                                " journey sends it; it takes no events")  # and no status


async def test_the_gateway_answers_404_saying_a_journey_message_takes_no_events(
    gateway: tuple[httpx.AsyncClient, Gateway, Producer],
) -> None:
    client, _, producer = gateway
    why = "JMSwelcome is a journey message: its journey sends it; it takes no events"
    for method, path in (("POST", "/v1/events/JMSwelcome"),
                         ("POST", "/v1/events/JMSwelcome/batch"),
                         ("GET", "/v1/events/JMSwelcome/schema"),
                         ("GET", "/v1/events/JMSwelcome/some-pkey"),
                         ("GET", "/v1/events/JMSwelcome/some-pkey/trace"),
                         ("DELETE", "/v1/events/JMSwelcome/some-pkey"),
                         ("GET", "/v1/events/JMSwelcome/keys/order-1")):
        body = {"events": []} if path.endswith("batch") else {}
        answer = await client.request(method, path, headers=_bearer(INGEST_KEY),
                                      json=body if method == "POST" else None)
        assert (answer.status_code, answer.json()) == (404, {"detail": why}), path
    assert producer.sent == []
