"""Profile writes checked against the tenant's schema, and the one shape a write takes
to storage (``ProfileWrite``), whoever makes it: the profile API now, Kafka and imports
later.

A body is JSON parsed with exact decimals (``parse_body``), then validated by the model
``build_write_model`` makes for the tenant's schema. Attribute names and topic ids are the
tenant's words and never become Python names: their models are ``fields.aliased_object``
(``f_<n>`` with the name as alias, and only aliases are accepted as keys), as for events.

PUT replaces the profile: a field or attribute left out is cleared, devices too. PATCH
merges: what is left out stays, ``null`` clears a field or removes an attribute. Either
way, consent and subscriptions change only where the body says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    create_model,
)

from shared.domain.consent import ConsentChange, ConsentIn, consent_changes
from shared.domain.exact import read_exact
from shared.domain.fields import INT64, EmailAddress, ExactDecimal, PhoneNumber, aliased_object
from shared.domain.profile_schema import BUILT_INS, AttributeType, ProfileSchema

PROFILE_ID = r"^[A-Za-z0-9_.@+\-]{1,128}$"
MAX_DEVICES = 10
MAX_TEXT = 10_000
MAX_LIST_ITEMS = 100


def storable_text(text: str) -> str:
    """PostgreSQL stores no NUL (U+0000); UTF-8 has no lone surrogate, which Python's JSON
    parser lets through from ``"\\ud800"``."""
    if "\x00" in text:
        raise ValueError("must not contain the NUL character (U+0000)")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must not contain a lone UTF-16 surrogate") from None
    return text


Text = Annotated[str, Field(strict=True), AfterValidator(storable_text)]
Name = Annotated[Text, StringConstraints(max_length=255)]


def _iso_text(value: Any) -> Any:
    """Dates come as ISO 8601 strings; a number is not taken for a Unix time."""
    if not isinstance(value, str | date):
        raise ValueError("must be an ISO 8601 string")
    return value


@lru_cache(maxsize=1024)  # zone names are few; what callers send is not
def _is_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _zone(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_+\-/]{0,63}", name) or not _is_zone(name):
        raise ValueError(f"{name[:64]!r} is not an IANA time zone name (e.g. Europe/Paris)")
    return name


TimeZone = Annotated[Text, AfterValidator(_zone)]
Locale = Annotated[Text, StringConstraints(pattern=r"^[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8}){0,3}$")]
DateText = Annotated[date, BeforeValidator(_iso_text)]
DateTimeText = Annotated[AwareDatetime, BeforeValidator(_iso_text)]
# The ingestion API's address rules, on storable text.
Email = Annotated[Text, *EmailAddress.__metadata__]
Phone = Annotated[Text, *PhoneNumber.__metadata__]

ATTRIBUTE_TYPES: dict[AttributeType, Any] = {
    AttributeType.STRING: Annotated[Text, StringConstraints(max_length=MAX_TEXT)],
    AttributeType.INTEGER: Annotated[int, Field(strict=True, ge=INT64[0], le=INT64[1])],
    AttributeType.DECIMAL: ExactDecimal,
    AttributeType.BOOLEAN: StrictBool,
    AttributeType.DATE: DateText,
    AttributeType.DATETIME: DateTimeText,
    AttributeType.EMAIL: Email,
    AttributeType.PHONE: Phone,
    AttributeType.STRING_LIST: Annotated[
        list[Annotated[Text, StringConstraints(max_length=1000)]],
        Field(strict=True, max_length=MAX_LIST_ITEMS)],
}

# Keys are aliases only: "a_0" in a body is an unknown key, never some attribute.
_STRICT = ConfigDict(extra="forbid", validate_by_alias=True, validate_by_name=False,
                     serialize_by_alias=True)


class PushDevice(BaseModel):
    model_config = _STRICT

    registration_token: Text = Field(alias="registrationToken", min_length=1, max_length=4096)
    application: Text = Field(min_length=1, max_length=255)
    push_platform: Literal["apns", "fcm"] = Field(alias="pushPlatform")


class _ProfileBody(BaseModel):
    """The built-in part of a profile write; python names are the profiles columns."""

    model_config = _STRICT

    email: Email | None = None
    mobile_phone: Phone | None = Field(None, alias="mobilePhone")
    first_name: Name | None = Field(None, alias="firstName")
    last_name: Name | None = Field(None, alias="lastName")
    city: Name | None = None
    birth_date: DateText | None = Field(None, alias="birthDate")
    time_zone: TimeZone | None = Field(None, alias="timeZone")
    locale: Locale | None = None
    push_devices: Annotated[list[PushDevice], Field(max_length=MAX_DEVICES)] | None = Field(
        None, alias="pushDevices")
    consent: ConsentIn | None = None
    consent_source: Annotated[Text, StringConstraints(min_length=1, max_length=200)] | None = (
        Field(None, alias="consentSource", description="where consent changes come from"))


assert set(BUILT_INS.values()) <= set(_ProfileBody.model_fields)


def build_write_model(schema: ProfileSchema, name: str = "ProfileWrite") -> type[BaseModel]:
    """The model of a profile write for this schema: built-ins, the declared attributes
    (each optional, typed) and subscriptions to the declared topics."""
    attributes = aliased_object(f"{name}Attributes", [
        (spec.name, ATTRIBUTE_TYPES[spec.type], False) for spec in schema.attributes])
    topics = aliased_object(f"{name}Topics", [
        (topic.id, StrictBool, False) for topic in schema.topics])
    nested: dict[str, Any] = {"attributes": (attributes | None, None),
                              "topics": (topics | None, None)}
    model: type[BaseModel] = create_model(name, __base__=_ProfileBody, **nested)
    return model


def parse_body(body: bytes) -> Any:
    """JSON text as Python values, numbers with a fraction or an exponent as exact Decimals
    (never through a binary float: ``exact.read_exact``). Raises ValueError for what is not
    JSON; NaN and Infinity are refused by the fields they reach."""
    return read_exact(body)


@dataclass(frozen=True)
class ProfileWrite:
    """A validated write, ready for ``profile_store.apply_profile_write``. ``fields`` holds
    the columns the write sets (None clears), ``devices`` None when left as they are."""

    profile_id: str
    replace: bool
    fields: dict[str, Any]
    attributes: dict[str, Any]
    removed: tuple[str, ...] = ()
    devices: tuple[dict[str, str], ...] | None = None
    consent: tuple[ConsentChange, ...] = ()
    source: str = "api"  # where consent changes come from


def _given(model: BaseModel | None) -> dict[str, Any]:
    """The keys a nested object actually had, by alias, with their values."""
    if model is None:
        return {}
    fields = type(model).model_fields
    return {fields[n].alias or n: getattr(model, n) for n in model.model_fields_set}


def to_write(profile_id: str, parsed: BaseModel, *, replace: bool, source: str = "api"
             ) -> ProfileWrite:
    """The write a validated body asks for (PUT: ``replace``; PATCH: merge)."""
    present = parsed.model_fields_set
    columns = set(BUILT_INS.values())
    fields = {c: getattr(parsed, c) for c in columns if replace or c in present}
    given = _given(getattr(parsed, "attributes", None))
    attributes = {k: v for k, v in given.items() if v is not None}
    removed = () if replace else tuple(sorted(k for k, v in given.items() if v is None))
    devices = None
    if replace or "push_devices" in present:
        devices = tuple(d.model_dump(by_alias=True) for d in parsed.push_devices or ())  # type: ignore[attr-defined]
    topics = {k: v for k, v in _given(getattr(parsed, "topics", None)).items() if v is not None}
    consent_source = getattr(parsed, "consent_source", None) or source
    return ProfileWrite(profile_id, replace, fields, attributes, removed, devices,
                        consent_changes(getattr(parsed, "consent", None), topics),
                        consent_source)


def profile_document(
    row: dict[str, Any], attributes: dict[str, Any], consent: dict[str, Any]
) -> dict[str, Any]:
    """A profile as the API shows it (camelCase), from its columns, typed attributes and
    ``consent.consent_view``."""
    document: dict[str, Any] = {"profileId": row["profile_id"]}
    document |= {api: row.get(column) for api, column in BUILT_INS.items()}
    written = row.get("written_at")
    return {**document, "attributes": attributes,
            "pushDevices": list(row.get("push_registrations") or []), **consent,
            "writtenAt": written.isoformat() if isinstance(written, datetime) else written}
