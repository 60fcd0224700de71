"""Profile schemas, writes checked against them, consent: the pure parts."""

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import jiter
import pytest
from pydantic import BaseModel, ValidationError

from shared.domain.consent import (
    ConsentKind,
    ConsentRow,
    consent_view,
    may_receive,
    unsubscribe,
)
from shared.domain.profile_schema import (
    MAX_ATTRIBUTES,
    ProfileSchema,
    attributes_json,
    typed_attributes,
)
from shared.domain.profiles import build_write_model, parse_body, to_write

SCHEMA = ProfileSchema.model_validate({
    "attributes": [
        {"name": "loyaltyTier", "type": "string"}, {"name": "orders", "type": "integer"},
        {"name": "lifetimeValue", "type": "decimal"}, {"name": "vip", "type": "boolean"},
        {"name": "joined", "type": "date"}, {"name": "lastSeen", "type": "datetime"},
        {"name": "workEmail", "type": "email"}, {"name": "workPhone", "type": "phone"},
        {"name": "interests", "type": "stringList"},
        # names that would shadow pydantic's own, were they Python names
        {"name": "model_config", "type": "string"}, {"name": "model_dump", "type": "integer"},
        {"name": "a_0", "type": "string"},
    ],
    "topics": [{"id": "newsletter"}, {"id": "offers"}],
})
MODEL = build_write_model(SCHEMA)


def parse(body: str) -> BaseModel:
    return MODEL.model_validate(parse_body(body.encode()))


def loc_of(body: str) -> tuple[Any, ...]:
    with pytest.raises(ValidationError) as caught:
        parse(body)
    loc: tuple[Any, ...] = caught.value.errors()[0]["loc"]
    return loc


def test_every_attribute_type_is_kept_typed() -> None:
    parsed = parse('{"email": " Ada@Example.com", "timeZone": "Europe/Paris", "locale": "fr-FR",'
                   ' "birthDate": "1990-05-01", "attributes": {"loyaltyTier": "gold",'
                   ' "orders": 3, "lifetimeValue": 12345678901234567890.123456789,'
                   ' "vip": true, "joined": "2020-01-02", "lastSeen": "2026-01-01T10:00:00Z",'
                   ' "workEmail": "ada@work.example.com", "workPhone": "+33 1 23 45 67 89",'
                   ' "interests": ["tea", "maths"], "model_config": "x", "model_dump": 7,'
                   ' "a_0": "plain"}}')
    write = to_write("p1", parsed, replace=True)
    assert write.fields["email"] == "Ada@Example.com" and write.fields["time_zone"] == (
        "Europe/Paris") and write.fields["birth_date"] == date(1990, 5, 1)
    assert write.fields["city"] is None  # PUT: what is left out is cleared
    assert write.attributes == {
        "loyaltyTier": "gold", "orders": 3,
        "lifetimeValue": Decimal("12345678901234567890.123456789"), "vip": True,
        "joined": date(2020, 1, 2), "lastSeen": datetime(2026, 1, 1, 10, tzinfo=UTC),
        "workEmail": "ada@work.example.com", "workPhone": "+33 1 23 45 67 89",
        "interests": ["tea", "maths"], "model_config": "x", "model_dump": 7, "a_0": "plain"}
    assert write.devices == () and write.removed == ()


@pytest.mark.parametrize(("body", "loc"), [
    ('{"attributes": {"orders": "3"}}', ("attributes", "orders")),
    ('{"attributes": {"orders": 3.0}}', ("attributes", "orders")),
    ('{"attributes": {"orders": 9223372036854775808}}', ("attributes", "orders")),
    ('{"attributes": {"vip": "true"}}', ("attributes", "vip")),
    ('{"attributes": {"joined": 1700000000}}', ("attributes", "joined")),
    ('{"attributes": {"lastSeen": "2026-01-01T10:00:00"}}', ("attributes", "lastSeen")),
    ('{"attributes": {"lifetimeValue": 1e400}}', ("attributes", "lifetimeValue")),
    ('{"attributes": {"interests": "tea"}}', ("attributes", "interests")),
    ('{"attributes": {"workEmail": "nope"}}', ("attributes", "workEmail")),
    ('{"attributes": {"unknown": 1}}', ("attributes", "unknown")),
    ('{"attributes": {"a_1": 1}}', ("attributes", "a_1")),  # an internal name is no key
    ('{"attributes": {"loyaltyTier": "nul\\u0000"}}', ("attributes", "loyaltyTier")),
    ('{"timeZone": "Mars/Olympus"}', ("timeZone",)),
    ('{"timeZone": "../../etc/passwd"}', ("timeZone",)),
    ('{"locale": "not a locale"}', ("locale",)),
    ('{"mobile_phone": "+15551234567"}', ("mobile_phone",)),
    ('{"email": "ada"}', ("email",)),
    ('{"topics": {"weekly": true}}', ("topics", "weekly")),
    ('{"consent": {"fax": {"marketing": "opted-in"}}}', ("consent", "fax")),
    ('{"consent": {"email": {"marketing": "maybe"}}}', ("consent", "email", "marketing")),
    ('{"pushDevices": [{"registrationToken": "t", "application": "a",'
     ' "pushPlatform": "wap"}]}', ("pushDevices", 0, "pushPlatform")),
])
def test_a_bad_write_names_the_field(body: str, loc: tuple[Any, ...]) -> None:
    assert loc_of(body) == loc


def test_nan_infinity_and_lone_surrogates_are_refused() -> None:
    assert loc_of('{"attributes": {"lifetimeValue": NaN}}') == ("attributes", "lifetimeValue")
    assert loc_of('{"attributes": {"lifetimeValue": -Infinity}}') == (
        "attributes", "lifetimeValue")
    with pytest.raises(ValueError, match="hex escape"):
        parse_body(b'{"attributes": {"loyaltyTier": "\\ud800"}}')
    with pytest.raises(ValidationError, match="surrogate"):
        MODEL.model_validate({"attributes": {"loyaltyTier": "\ud800"}})


def test_patch_merges_and_null_clears() -> None:
    parsed = parse('{"city": "Lyon", "firstName": null, "attributes": {"orders": 4,'
                   ' "vip": null}, "topics": {"newsletter": true, "offers": false},'
                   ' "consent": {"sms": {"marketing": "opted-out", "blocked": true}},'
                   ' "consentSource": "preference-center"}')
    write = to_write("p1", parsed, replace=False)
    assert write.fields == {"city": "Lyon", "first_name": None}
    assert write.attributes == {"orders": 4} and write.removed == ("vip",)
    assert write.devices is None  # left as they are
    assert {(c.kind, c.name, c.value) for c in write.consent} == {
        (ConsentKind.MARKETING, "sms", "opted-out"), (ConsentKind.BLOCK, "sms", "blocked"),
        (ConsentKind.TOPIC, "newsletter", "subscribed"),
        (ConsentKind.TOPIC, "offers", "unsubscribed")}
    assert write.source == "preference-center"
    cleared = to_write("p1", parse('{"pushDevices": null}'), replace=False)
    assert cleared.devices == () and cleared.fields == {}


def test_devices_are_kept_as_the_api_spells_them() -> None:
    parsed = parse('{"pushDevices": [{"registrationToken": "t1", "application": "shop",'
                   ' "pushPlatform": "fcm"}]}')
    assert to_write("p", parsed, replace=False).devices == (
        {"registrationToken": "t1", "application": "shop", "pushPlatform": "fcm"},)


@pytest.mark.parametrize(("attributes", "why"), [
    ([{"name": "email", "type": "string"}], "built-in"),
    ([{"name": "FirstName", "type": "string"}], "built-in"),
    ([{"name": "birth_date", "type": "date"}], "built-in"),
    ([{"name": "consent", "type": "string"}], "built-in"),
    ([{"name": "x" * 65, "type": "string"}], "pattern"),
    ([{"name": "1st", "type": "string"}], "pattern"),
    ([{"name": "tier", "type": "string"}, {"name": "Tier", "type": "integer"}], "twice"),
    ([{"name": "tier", "type": "money"}], "Input should be"),
    ([{"name": f"a{n}", "type": "string"} for n in range(MAX_ATTRIBUTES + 1)], "at most"),
])
def test_schemas_refuse_bad_attributes(attributes: list[dict[str, str]], why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        ProfileSchema.model_validate({"attributes": attributes})


def test_attributes_are_stored_exactly_and_read_back_typed() -> None:
    values = {"lifetimeValue": Decimal("19.90"), "joined": date(2020, 1, 2),
              "lastSeen": datetime(2026, 1, 1, 10, tzinfo=UTC), "orders": 3,
              "interests": ["a"]}
    text = attributes_json(values)
    assert '"lifetimeValue":19.90' in text
    stored = jiter.from_json(text.encode(), float_mode="decimal")
    assert typed_attributes(SCHEMA, stored) == values
    # a decimal written as a whole number, and a value whose attribute was dropped
    assert typed_attributes(SCHEMA, {"lifetimeValue": 12, "gone": "x"}) == {
        "lifetimeValue": Decimal(12), "gone": "x"}


def _row(kind: str, name: str, value: str) -> ConsentRow:
    return ConsentRow(kind, name, value, datetime(2026, 1, 1, tzinfo=UTC), "api")


def test_consent_view_shows_every_channel_and_topic() -> None:
    view = consent_view([_row("marketing", "email", "opted-in"), _row("block", "sms", "blocked"),
                         _row("topic", "newsletter", "subscribed")], ("newsletter", "offers"))
    assert view["consent"]["email"]["marketing"] == "opted-in"
    assert view["consent"]["push"] == {
        "marketing": "unknown", "marketingChangedAt": None, "marketingSource": None,
        "blocked": False, "blockedChangedAt": None, "blockedSource": None}
    assert view["consent"]["sms"]["blocked"] is True
    assert view["topics"]["newsletter"]["subscribed"] is True
    assert view["topics"]["offers"] == {"subscribed": False, "changedAt": None, "source": None}


def test_an_unsubscribe_stops_marketing_never_transactional_messages() -> None:
    change = unsubscribe("email")
    view = consent_view([_row("marketing", "email", "opted-in"),
                         _row(change.kind, change.name, change.value)], ())
    assert not may_receive(view, "email", transactional=False)
    assert may_receive(view, "email", transactional=True)
    blocked = consent_view([_row("block", "email", "blocked")], ())
    assert not may_receive(blocked, "email", transactional=True)
    assert not may_receive(consent_view([], ()), "sms", transactional=False)  # unknown
