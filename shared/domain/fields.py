"""Typed event fields, and the pydantic models that validate an event's ``ctx`` against them.

Models are built once per event configuration and reused for every request: building
is slow, validating is fast.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    create_model,
)
from pydantic.alias_generators import to_camel

FIELD_ID_PATTERN = r"^[A-Za-z][A-Za-z0-9_]{0,29}$"  # ids at most 30 characters

# Printable ASCII only: SMTP without SMTPUTF8 cannot carry anything else, and an address
# a relay would refuse must be a 422 at the door, not a dead letter downstream.
_ADDRESS_PART = r"[!#-;=?A-~]+"  # printable ASCII but space, '"', '<', '>' and '@'
EmailAddress = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=254,
                      pattern=rf"^{_ADDRESS_PART}@{_ADDRESS_PART}\.{_ADDRESS_PART}$"),
]
PhoneNumber = Annotated[str, StringConstraints(pattern=r"^\+?[0-9][0-9 .\-]{5,19}$")]


def _no_nul(text: str) -> str:
    """PostgreSQL cannot store U+0000 in text or jsonb: an accepted event carrying one
    could never be held or recorded, so it is refused at the door."""
    if "\x00" in text:
        raise ValueError("must not contain NUL characters (\\u0000)")
    return text


Text = Annotated[str, AfterValidator(_no_nul)]
INT64 = (-(2**63), 2**63 - 1)  # what Kafka records (orjson) and PostgreSQL can carry


class FieldType(StrEnum):
    STRING = "string"
    INTEGER = "integer"
    DECIMAL = "decimal"
    BOOLEAN = "boolean"
    DATE = "date"
    DATETIME = "datetime"
    EMAIL = "email"
    PHONE = "phone"


# Strict where JSON has a native type, so "3" is not silently taken for 3;
# dates and decimals arrive as strings or numbers in JSON and are parsed.
_PYTHON_TYPES: dict[FieldType, Any] = {
    FieldType.STRING: Annotated[Text, Field(strict=True, max_length=10_000)],
    FieldType.INTEGER: Annotated[int, Field(strict=True, ge=INT64[0], le=INT64[1])],
    FieldType.DECIMAL: Annotated[Decimal, Field(allow_inf_nan=False)],
    FieldType.BOOLEAN: Annotated[bool, Field(strict=True)],
    FieldType.DATE: date,
    FieldType.DATETIME: AwareDatetime,
    FieldType.EMAIL: EmailAddress,
    FieldType.PHONE: PhoneNumber,
}


class FieldSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, StringConstraints(pattern=FIELD_ID_PATTERN)]
    type: FieldType
    label: str = ""
    required: bool = False


class CollectionSpec(BaseModel):
    """A list of typed items inside ``ctx``, e.g. the products of a cart."""

    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel,
                              populate_by_name=True)

    id: Annotated[str, StringConstraints(pattern=FIELD_ID_PATTERN)]
    label: str = ""
    fields: tuple[FieldSpec, ...]
    max_items: int = Field(default=100, ge=1, le=1000)


_STRICT_OBJECT = ConfigDict(extra="forbid")


def _field_definitions(fields: tuple[FieldSpec, ...]) -> dict[str, Any]:
    return {
        f.id: (_PYTHON_TYPES[f.type], ...) if f.required else (_PYTHON_TYPES[f.type] | None, None)
        for f in fields
    }


def build_ctx_model(
    name: str, fields: tuple[FieldSpec, ...], collections: tuple[CollectionSpec, ...] = ()
) -> type[BaseModel]:
    """A model accepting exactly the configured fields and collections; unknown keys fail."""
    definitions = _field_definitions(fields)
    for collection in collections:
        item = create_model(
            f"{name}_{collection.id}_item",
            __config__=_STRICT_OBJECT,
            **_field_definitions(collection.fields),
        )
        definitions[collection.id] = (
            Annotated[list[item], Field(max_length=collection.max_items)] | None,
            None,
        )
    model: type[BaseModel] = create_model(
        f"{name}_ctx", __config__=_STRICT_OBJECT, **definitions
    )
    return model
