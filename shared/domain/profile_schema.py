"""A tenant's profile schema: the built-in fields every profile has, the custom
attributes the tenant declares with a type, and the subscription topics its profiles can
join. ``profiles`` builds the model that checks a write against it."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from pydantic.alias_generators import to_camel

from shared.domain.exact import exact_json

# Built-in fields: the API's name -> the profiles column (what templates see).
BUILT_INS: dict[str, str] = {
    "email": "email", "mobilePhone": "mobile_phone", "firstName": "first_name",
    "lastName": "last_name", "city": "city", "birthDate": "birth_date",
    "timeZone": "time_zone", "locale": "locale",
}
# Templates see a profile's attributes beside its columns (``profile.loyaltyTier``), and
# the API has these keys: an attribute may take none of these names, in any case.
RESERVED = frozenset(n.lower() for n in (
    *BUILT_INS, *BUILT_INS.values(), "profileId", "profile_id", "attributes", "pushDevices",
    "push_registrations", "consent", "topics", "consentSource", "is_test", "sample_ctx",
    "written_at", "updated_at", "writtenAt", "updatedAt"))

ATTRIBUTE_NAME = r"^[A-Za-z][A-Za-z0-9_]{0,63}$"  # at most 64 characters
TOPIC_ID = r"^[a-z][a-z0-9_-]{0,63}$"
MAX_ATTRIBUTES = 200
MAX_TOPICS = 50


class AttributeType(StrEnum):
    STRING = "string"
    INTEGER = "integer"
    DECIMAL = "decimal"
    BOOLEAN = "boolean"
    DATE = "date"
    DATETIME = "datetime"
    EMAIL = "email"
    PHONE = "phone"
    STRING_LIST = "stringList"


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel,
                              populate_by_name=True)


Label = Annotated[str, StringConstraints(max_length=200)]


class AttributeSpec(_Spec):
    name: Annotated[str, StringConstraints(pattern=ATTRIBUTE_NAME)]
    type: AttributeType
    label: Label = ""

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, name: str) -> str:
        if name.lower() in RESERVED:
            raise ValueError(f"{name!r} is a built-in field or a key of the profile API;"
                             " pick another name")
        return name


class TopicSpec(_Spec):
    """Something a profile can subscribe to: a newsletter, offers…"""

    id: Annotated[str, StringConstraints(pattern=TOPIC_ID)]
    label: Label = ""


def _unique(kind: str, names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name.lower() in seen:
            raise ValueError(f"{kind} {name!r} is declared twice (names ignore case)")
        seen.add(name.lower())


class ProfileSchema(_Spec):
    attributes: tuple[AttributeSpec, ...] = Field(default=(), max_length=MAX_ATTRIBUTES)
    topics: tuple[TopicSpec, ...] = Field(default=(), max_length=MAX_TOPICS)

    @field_validator("attributes")
    @classmethod
    def _unique_attributes(cls, specs: tuple[AttributeSpec, ...]) -> tuple[AttributeSpec, ...]:
        _unique("attribute", [s.name for s in specs])
        return specs

    @field_validator("topics")
    @classmethod
    def _unique_topics(cls, specs: tuple[TopicSpec, ...]) -> tuple[TopicSpec, ...]:
        _unique("topic", [s.id for s in specs])
        return specs

    def attribute_types(self) -> dict[str, AttributeType]:
        return {spec.name: spec.type for spec in self.attributes}


EMPTY_SCHEMA = ProfileSchema()


# --- attribute values from request to storage and back -----------------------------------
#
# attributes is jsonb. A decimal is stored as a JSON number written with its exact digits
# (jsonb keeps numbers as PostgreSQL numerics: 19.90 stays 19.90), read back as a Decimal
# (the store parses the jsonb text with decimals) and typed by the schema: a decimal
# attribute written as 12 reads as Decimal("12"). Dates and datetimes are ISO 8601 strings,
# read back as date and datetime.


def attributes_json(attributes: dict[str, Any]) -> str:
    """JSON text of typed attribute values, decimals as numbers with their exact digits."""
    return exact_json(attributes).decode()


def typed_attributes(schema: ProfileSchema, stored: dict[str, Any]) -> dict[str, Any]:
    """Attribute values as the schema types them; a value the schema no longer describes
    (attribute removed or retyped) is returned as stored."""
    types = schema.attribute_types()
    return {name: _typed(types.get(name), value) for name, value in stored.items()}


def _typed(kind: AttributeType | None, value: Any) -> Any:
    try:
        if kind is AttributeType.DECIMAL and isinstance(value, int | str | Decimal) and (
                not isinstance(value, bool)):  # a send record carries decimals as strings
            return Decimal(value)
        if kind is AttributeType.DATE and isinstance(value, str):
            return date.fromisoformat(value)
        if kind is AttributeType.DATETIME and isinstance(value, str):
            return datetime.fromisoformat(value)
    except (ValueError, ArithmeticError):  # decimal.InvalidOperation is an ArithmeticError
        pass
    return value
