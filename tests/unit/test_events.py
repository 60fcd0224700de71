import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from pydantic import ValidationError

from shared.domain.events import (
    Channel,
    EventConfig,
    Targeting,
    TriggerEvent,
    build_ingest_model,
    trigger_record,
    typed_ctx,
)
from shared.domain.exact import validate_exact
from shared.domain.fields import FieldSpec, FieldType


def config(channel: Channel = Channel.EMAIL) -> EventConfig:
    return EventConfig(
        event_id="EVTcart",
        label="Cart",
        channel=channel,
        targeting=Targeting.PROFILE,
        fields=(FieldSpec(id="url", type=FieldType.STRING),),
    )


def test_event_ids_start_with_evt_and_have_at_most_64_characters() -> None:
    EventConfig(event_id="EVT" + "a" * 61, label="x", channel="email", targeting="event")
    for bad in ("cart", "EVT", "EVT" + "a" * 62, "EVT-x"):
        with pytest.raises(ValidationError):
            EventConfig(event_id=bad, label="x", channel="email", targeting="event")


def test_email_event_requires_an_email_target() -> None:
    model = build_ingest_model(config())
    with pytest.raises(ValidationError) as caught:
        model.model_validate_json('{"ctx": {"url": "u"}}')
    assert caught.value.errors()[0]["loc"] == ("email",)


def test_sms_event_takes_a_phone_and_refuses_an_email() -> None:
    model = build_ingest_model(config(Channel.SMS))
    model.model_validate_json('{"mobilePhone": "+15551234567"}')
    with pytest.raises(ValidationError):
        model.model_validate_json('{"mobilePhone": "+15551234567", "email": "a@b.co"}')


def test_push_event_takes_token_application_and_platform() -> None:
    model = build_ingest_model(config(Channel.PUSH))
    model.model_validate_json(
        '{"registrationToken": "t", "application": "shop", "pushPlatform": "fcm"}'
    )
    with pytest.raises(ValidationError):
        model.model_validate_json(
            '{"registrationToken": "t", "application": "shop", "pushPlatform": "sms"}'
        )


def test_trigger_separates_target_from_ctx() -> None:
    model = build_ingest_model(config())
    request = model.model_validate_json(
        '{"email": "a@b.co", "ctx": {"url": "u"}, "expiration": "2030-01-01T00:00:00Z"}'
    )
    trigger = TriggerEvent.model_validate(
        trigger_record(request, pkey="k", tenant="t", event_id="EVTcart", accepted_at=1.0)
    )
    assert trigger.target == {"email": "a@b.co"}
    assert trigger.ctx == {"url": "u"}
    assert trigger.expiration is not None


def test_a_profile_key_names_a_field_of_a_profile_based_event() -> None:
    fields = [{"id": "customerId", "type": "string"}]
    base = {"event_id": "EVTk", "label": "k", "channel": "email", "fields": fields}
    config = EventConfig.model_validate({**base, "targeting": "profile",
                                         "profileKey": "customerId"})
    assert config.profile_lookup({"email": "a@b.co"}, {"customerId": "C42"}) == {
        "profileId": "C42"}
    assert config.profile_lookup({"email": "a@b.co"}, {}) == {"email": "a@b.co"}
    with pytest.raises(ValidationError, match="not one of the fields"):
        EventConfig.model_validate({**base, "targeting": "profile", "profileKey": "nope"})
    with pytest.raises(ValidationError, match="profile-based"):
        EventConfig.model_validate({**base, "targeting": "event", "profileKey": "customerId"})


def test_scheduled_is_at_most_a_year_ahead_and_before_expiration() -> None:
    model = build_ingest_model(config())
    soon = datetime.now(UTC) + timedelta(hours=1)

    def body(**times: datetime) -> str:
        return json.dumps({"email": "a@b.co", **{k: v.isoformat() for k, v in times.items()}})

    model.model_validate_json(body(scheduled=soon, expiration=soon + timedelta(seconds=1)))
    with pytest.raises(ValidationError) as far:
        model.model_validate_json(body(scheduled=soon + timedelta(days=366)))
    assert far.value.errors()[0]["loc"] == ("scheduled",)
    assert "365 days" in far.value.errors()[0]["msg"]
    with pytest.raises(ValidationError) as early:
        model.model_validate_json(body(scheduled=soon, expiration=soon))
    assert early.value.errors()[0]["loc"] == ("expiration",)
    assert "after scheduled" in early.value.errors()[0]["msg"]


@pytest.mark.parametrize(
    ("body", "loc", "message"),
    [
        ({"email": "a@b.co", "ctx": {"url": "a\u0000b"}}, ("ctx", "url"), "NUL"),
        ({"email": "é@b.co"}, ("email",), "pattern"),
        ({"email": "a\u0001@b.co"}, ("email",), "pattern"),
        ({"email": "a@b@c.co"}, ("email",), "pattern"),
    ],
)
def test_what_a_relay_or_postgresql_could_not_carry_is_refused_naming_the_field(
    body: dict[str, object], loc: tuple[str, ...], message: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        build_ingest_model(config()).model_validate_json(json.dumps(body))
    assert refused.value.errors()[0]["loc"] == loc
    assert message in refused.value.errors()[0]["msg"]


def test_integers_stay_within_64_bits_and_push_targets_carry_no_nul() -> None:
    fields = [{"id": "n", "type": "integer"}]
    counted = EventConfig.model_validate({"event_id": "EVTn", "label": "n", "channel": "email",
                                          "targeting": "event", "fields": fields})
    model = build_ingest_model(counted)
    model.model_validate_json(json.dumps({"email": "a@b.co", "ctx": {"n": 2**63 - 1}}))
    with pytest.raises(ValidationError) as big:
        model.model_validate_json(json.dumps({"email": "a@b.co", "ctx": {"n": 2**63}}))
    assert big.value.errors()[0]["loc"] == ("ctx", "n")
    with pytest.raises(ValidationError) as nul:
        build_ingest_model(config(Channel.PUSH)).model_validate_json(json.dumps(
            {"registrationToken": "t\u0000", "application": "shop", "pushPlatform": "fcm"}))
    assert nul.value.errors()[0]["loc"] == ("registrationToken",)


def priced(**extra: object) -> EventConfig:
    return EventConfig.model_validate({
        "event_id": "EVTp", "label": "p", "channel": "email", "targeting": "event",
        "fields": [{"id": "total", "type": "decimal"}, {"id": "day", "type": "date"},
                   {"id": "model_dump", "type": "string"}], **extra})


@pytest.mark.parametrize(
    ("extra", "loc", "twice"),
    [({"fields": [{"id": "total", "type": "decimal"}, {"id": "total", "type": "string"}]},
      ("fields",), "total"),
     ({"collections": [{"id": "day", "fields": [{"id": "x", "type": "string"}]}]},
      ("collections",), "day"),
     ({"collections": [{"id": "c", "fields": [{"id": "x", "type": "string"}]},
                       {"id": "c", "fields": [{"id": "y", "type": "string"}]}]},
      ("collections",), "c")],
)
def test_two_fields_or_collections_with_one_id_are_refused_naming_it(
    extra: dict[str, object], loc: tuple[str, ...], twice: str
) -> None:
    """They were accepted and silently merged into one key of ctx."""
    with pytest.raises(ValidationError) as caught:
        priced(**extra)
    assert caught.value.errors()[0]["loc"] == loc
    assert f"'{twice}' is used twice" in caught.value.errors()[0]["msg"]


def test_the_record_carries_decimals_exactly_and_typed_ctx_types_them_again() -> None:
    config = priced()
    request = validate_exact(build_ingest_model(config),  # as the gateway and processor do
        b'{"email": "a@b.co", "ctx": {"total": 12345678901234567890.123456789,'
        b' "day": "2026-02-01", "model_dump": "x"}}')
    record = trigger_record(request, pkey="k", tenant="t", event_id="EVTp", accepted_at=1.0)
    assert record["ctx"] == {"total": "12345678901234567890.123456789", "day": "2026-02-01",
                             "model_dump": "x"}
    assert typed_ctx(config, json.dumps(record["ctx"]).encode()) == {
        "total": Decimal("12345678901234567890.123456789"), "day": date(2026, 2, 1),
        "model_dump": "x"}


def test_typed_ctx_refuses_what_ingestion_refuses_naming_the_field() -> None:
    with pytest.raises(ValidationError) as caught:
        typed_ctx(priced(), b'{"total": "abc", "zzz": 1}')
    assert [e["loc"] for e in caught.value.errors()] == [("total",), ("zzz",)]
