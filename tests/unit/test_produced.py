import json
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from shared.domain.deadletter import invalid_reason
from shared.domain.events import (
    TARGET_KEYS,
    Channel,
    EventConfig,
    TriggerEvent,
    build_ingest_model,
)
from shared.domain.pkeys import derive_pkey, verify_pkey
from shared.domain.produced import (
    Identified,
    ProducedEvent,
    Rejected,
    admit,
    build_produced_model,
    identify,
    trigger_identity,
)

SECRET = b"s3cret"
IDENTITY = {"tenant": "acme", "eventId": "EVTcart", "eventKey": "order-1"}
TARGETS: dict[Channel, dict[str, str]] = {
    Channel.EMAIL: {"email": "ada@example.com"},
    Channel.SMS: {"mobilePhone": "+15551234567"},
    Channel.PUSH: {"registrationToken": "tok", "application": "shop", "pushPlatform": "fcm"},
}


def config(channel: Channel = Channel.EMAIL) -> EventConfig:
    return EventConfig.model_validate({
        "event_id": "EVTcart", "label": "Cart", "channel": channel, "targeting": "event",
        "fields": [{"id": "item", "type": "string", "required": True},
                   {"id": "price", "type": "decimal"},
                   {"id": "quantity", "type": "integer"}],
        "collections": [{"id": "products", "fields": [{"id": "name", "type": "string"}]}],
    })


def record(**fields: Any) -> bytes:
    body = {**IDENTITY, "email": "ada@example.com", "ctx": {"item": "shoes"}, **fields}
    return json.dumps({k: v for k, v in body.items() if v is not None}).encode()


def outcome(raw: bytes, model: type[BaseModel] | None = None) -> TriggerEvent | Rejected:
    event = identify(raw, SECRET)
    assert isinstance(event, Identified)
    return admit(raw, event, model or build_produced_model(config()), accepted_at=5.0)


def test_a_valid_record_becomes_a_trigger_event_with_a_derived_pkey() -> None:
    trigger = outcome(record(ctx={"item": "shoes", "price": 89.9},
                             expiration="2030-01-01T00:00:00Z"))
    assert isinstance(trigger, TriggerEvent)
    assert trigger.pKey == derive_pkey(SECRET, "acme", "EVTcart", "order-1")
    assert verify_pkey(SECRET, "acme", "EVTcart", trigger.pKey)
    assert (trigger.tenant, trigger.eventId, trigger.source) == ("acme", "EVTcart", "kafka")
    assert trigger.target == {"email": "ada@example.com"}
    assert trigger.ctx == {"item": "shoes", "price": "89.9"}
    assert trigger.acceptedAt == 5.0 and trigger.expiration is not None


def test_the_same_record_produced_again_is_the_same_event() -> None:
    first, again = outcome(record()), outcome(record(ctx={"item": "boots"}))
    assert isinstance(first, TriggerEvent) and isinstance(again, TriggerEvent)
    assert first.pKey == again.pKey
    other = outcome(record(eventKey="order-2"))
    assert isinstance(other, TriggerEvent) and other.pKey != first.pKey


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "invalid: Invalid JSON"),
        (b"[1, 2]", "invalid: Input should be an object"),
        (record(eventKey=None), "invalid: eventKey: Field required"),
        (record(eventKey=""), "invalid: eventKey: String should have at least 1 character"),
        (record(tenant=7), "invalid: tenant: Input should be a valid string"),
        (record(eventId="cart"), "invalid: eventId: String should match pattern"),
        (record(v=2), "invalid: v: Input should be 1"),
    ],
)
def test_a_record_that_does_not_say_whose_event_it_is_has_no_status(
    raw: bytes, reason: str
) -> None:
    rejected = identify(raw, SECRET)
    assert isinstance(rejected, Rejected) and rejected.event is None
    assert rejected.reason.startswith(reason)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (record(ctx={"item": "x", "price": "cheap"}),
         "invalid: ctx.price: Input should be a valid decimal"),
        (record(ctx={"item": "x", "quantity": "2"}),
         "invalid: ctx.quantity: Input should be a valid integer"),
        (record(ctx={"item": "x", "colour": "red"}),
         "invalid: ctx.colour: Extra inputs are not permitted"),
        (record(ctx={"item": "x", "products": [{"name": "a", "size": 3}]}),
         "invalid: ctx.products.0.size: Extra inputs are not permitted"),
        (record(ctx={}), "invalid: ctx.item: Field required"),
        (record(email=None), "invalid: email: Field required"),
        (record(email="not an email"), "invalid: email: String should match pattern"),
        (record(mobilePhone="+15551234567"), "invalid: mobilePhone: Extra inputs are not"),
        (record(source="billing"), "invalid: source: Extra inputs are not permitted"),
        (record(expiration="tomorrow"), "invalid: expiration: Input should be a valid datetime"),
        (record(scheduled="2999-01-01T00:00:00Z"),
         "invalid: scheduled: Value error, must be at most 365 days ahead"),
    ],
)
def test_an_invalid_record_is_rejected_naming_the_field_with_a_status(
    raw: bytes, reason: str
) -> None:
    rejected = outcome(raw)
    assert isinstance(rejected, Rejected), rejected
    assert rejected.reason.startswith(reason)
    assert rejected.event == identify(raw, SECRET)


def test_a_record_for_an_unpublished_event_is_rejected_with_a_status() -> None:
    raw = record()
    event = identify(raw, SECRET)
    assert isinstance(event, Identified)
    rejected = admit(raw, event, None, accepted_at=5.0)
    assert rejected == Rejected("unknown_event: event EVTcart is not published", event)


@pytest.mark.parametrize(
    "body",
    [
        {"email": "ada@example.com", "ctx": {"item": "x", "price": 1.5, "quantity": 2}},
        {"email": "ada@example.com", "ctx": {"item": "x", "quantity": 2.0}},
        {"email": "ada@example.com", "ctx": {"item": 3}},
        {"email": "ada@example.com", "ctx": {"item": "x", "price": "NaN"}},
        {"email": "ada@example.com", "ctx": {"item": "x"}, "scheduled": "2030-01-01T00:00:00"},
        {"email": "ada@example.com", "ctx": {"item": "x", "products": [{"name": "a"}] * 101}},
        {"email": "ada@example.com", "ctx": {"item": "x"}, "extra": True},
        {"email": "ada@example.com"},
    ],
)
def test_a_record_is_judged_exactly_as_the_same_http_body(body: dict[str, Any]) -> None:
    http = build_ingest_model(config())
    kafka = build_produced_model(config())
    try:
        http.model_validate_json(json.dumps(body))
        http_errors: list[Any] = []
    except ValidationError as error:
        http_errors = error.errors(include_url=False)
    try:
        kafka.model_validate_json(json.dumps({**IDENTITY, **body}))
        kafka_errors: list[Any] = []
    except ValidationError as error:
        kafka_errors = error.errors(include_url=False)
    assert kafka_errors == http_errors


@pytest.mark.parametrize("channel", list(Channel))
def test_every_record_an_event_accepts_fits_the_published_topic_schema(
    channel: Channel,
) -> None:
    raw = json.dumps({**IDENTITY, **TARGETS[channel], "ctx": {"item": "x"}}).encode()
    build_produced_model(config(channel)).model_validate_json(raw)
    ProducedEvent.model_validate_json(raw)


def test_the_topic_schema_names_every_target_field() -> None:
    identity = {"v", *IDENTITY}
    fields = set(ProducedEvent.model_fields) - identity - {"ctx", "scheduled", "expiration",
                                                            "locale"}
    assert fields == set(TARGET_KEYS)


def test_a_reason_names_five_errors_at_most() -> None:
    ctx = {f"f{i}": 1 for i in range(8)} | {"item": "x"}
    rejected = outcome(record(ctx=ctx))
    assert isinstance(rejected, Rejected)
    assert rejected.reason.count("Extra inputs") == 5
    assert rejected.reason.endswith("; and 3 more")


def test_invalid_reason_names_the_location() -> None:
    with pytest.raises(ValidationError) as caught:
        build_ingest_model(config()).model_validate_json('{"ctx": {"item": "x"}}')
    assert invalid_reason(caught.value) == "invalid: email: Field required"


def test_a_produced_record_keeps_its_decimals_exactly() -> None:
    """It went through a float: 12345678901234567890.123456789 became 12345678901234567000."""
    exact = b"12345678901234567890.123456789"
    raw = record(ctx={"item": "x"}).replace(b'"x"}', b'"x", "price": ' + exact + b"}")
    trigger = outcome(raw)
    assert isinstance(trigger, TriggerEvent)
    assert trigger.ctx["price"] == "12345678901234567890.123456789"
    too_small = outcome(record(ctx={"item": "x"}).replace(b'"x"}', b'"x", "price": 1e-400}'))
    assert isinstance(too_small, Rejected) and too_small.reason.startswith("invalid: ctx.price")


def test_a_gateway_record_names_its_event_only_with_a_pkey_the_gateway_minted() -> None:
    pkey = derive_pkey(SECRET, "acme", "EVTcart", "x")
    trigger = {"pKey": pkey, "tenant": "acme", "eventId": "EVTcart", "ctx": {"a": "\u0000"}}
    assert trigger_identity(json.dumps(trigger).encode(), SECRET) == Identified(
        "acme", "EVTcart", pkey)
    assert trigger_identity(json.dumps({**trigger, "tenant": "other"}).encode(), SECRET) is None
    assert trigger_identity(b"{not json", SECRET) is None
