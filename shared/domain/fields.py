"""Typed event fields, and the pydantic models that validate an event's ``ctx`` against them.

Models are built once per event configuration and reused for every request: building
is slow, validating is fast. Field ids are the users' words and never become Python
names: each field is ``f_<n>`` with the id as its alias, so an id such as ``model_dump``,
``model_config`` or ``json`` names a field like any other instead of shadowing pydantic.
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
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    create_model,
    field_validator,
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
# Digits of a decimal written out without an exponent: what PostgreSQL's numeric(38, s)
# and most payment systems keep; 1e-400 or 1e400 is a typo, not a price.
DECIMAL_DIGITS = 38


def within_digits(value: Decimal) -> Decimal:
    """At most DECIMAL_DIGITS digits written out: 0.001 has 3, 1E+2 (100) has 3."""
    text = str(value)  # plain, unless the exponent is positive or the value tiny
    if len(text) <= DECIMAL_DIGITS and "E" not in text:
        return value  # plain text this short has no more digits: the common case, fast
    if "E" in text:
        exponent, adjusted = value.as_tuple().exponent, value.adjusted()
        assert isinstance(exponent, int)  # allow_inf_nan=False refused NaN and Infinity
        written = (adjusted + 1 if adjusted >= 0 else 0) + (-exponent if exponent < 0 else 0)
    else:  # as fast, and no DecimalTuple to make: digits, less a leading "0."
        unsigned = text.lstrip("-")
        written = len(unsigned) - ("." in unsigned) - unsigned.startswith("0.")
    if written > DECIMAL_DIGITS:
        raise ValueError(f"a decimal has at most {DECIMAL_DIGITS} digits written out"
                         f" (this one has {written})")
    return value


FLOAT_SEEN = "float_seen"  # validation context key: a decimal was read through a float


def _note_float(value: Any, info: ValidationInfo) -> Any:
    """A JSON number with a fraction or an exponent reaches a decimal field as a float,
    maybe rounded: noted, so that ``exact.validate_exact`` reads it again from the text."""
    if isinstance(value, float) and info.context is not None:
        info.context[FLOAT_SEEN] = True
    return value


ExactDecimal = Annotated[
    Decimal, BeforeValidator(_note_float),
    Field(allow_inf_nan=False, description=f"an exact decimal of at most {DECIMAL_DIGITS}"
                                           " digits, as a JSON number or string"),
    AfterValidator(within_digits)]


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
    FieldType.DECIMAL: ExactDecimal,
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


def unique_ids(kind: str, ids: list[str]) -> None:
    """Two fields of one object with the same id would be one JSON key: refused, not merged."""
    seen: set[str] = set()
    for id_ in ids:
        if id_ in seen:
            raise ValueError(f"{kind} id {id_!r} is used twice; ids must be unique")
        seen.add(id_)


class CollectionSpec(BaseModel):
    """A list of typed items inside ``ctx``, e.g. the products of a cart."""

    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel,
                              populate_by_name=True)

    id: Annotated[str, StringConstraints(pattern=FIELD_ID_PATTERN)]
    label: str = ""
    fields: tuple[FieldSpec, ...]
    max_items: int = Field(default=100, ge=1, le=1000)

    @field_validator("fields")
    @classmethod
    def _unique(cls, fields: tuple[FieldSpec, ...]) -> tuple[FieldSpec, ...]:
        unique_ids("field", [f.id for f in fields])
        return fields


# Keys are the aliases only (validate_by_name=False): an object's key "f_0" is an unknown
# key, refused like any other, never the internal name of some field.
_STRICT_OBJECT = ConfigDict(extra="forbid", validate_by_alias=True, validate_by_name=False,
                            serialize_by_alias=True)


def _definition(python_type: Any, required: bool, alias: str) -> tuple[Any, Any]:
    if required:
        return python_type, Field(alias=alias)
    return python_type | None, Field(None, alias=alias)


def aliased_object(name: str, items: list[tuple[str, Any, bool]]) -> type[BaseModel]:
    """A strict object of (JSON key, type, required); the keys are aliases of f_0, f_1...
    (also the model of a profile's attributes: any name users choose is safe as a key)"""
    definitions = {f"f_{n}": _definition(t, required, key)
                   for n, (key, t, required) in enumerate(items)}
    model: type[BaseModel] = create_model(  # type: ignore[call-overload]
        name, __config__=_STRICT_OBJECT, **definitions)
    return model


def _fields(fields: tuple[FieldSpec, ...]) -> list[tuple[str, Any, bool]]:
    return [(f.id, _PYTHON_TYPES[f.type], f.required) for f in fields]


def build_ctx_model(
    name: str, fields: tuple[FieldSpec, ...], collections: tuple[CollectionSpec, ...] = ()
) -> type[BaseModel]:
    """A model accepting exactly the configured fields and collections; unknown keys fail.
    Dump it ``by_alias`` (its config does) to get the event's own ids back."""
    items = _fields(fields)
    for collection in collections:
        item = aliased_object(f"{name}_{collection.id}_item", _fields(collection.fields))
        items.append((collection.id,
                      Annotated[list[item], Field(max_length=collection.max_items)],  # type: ignore[valid-type]
                      False))
    return aliased_object(f"{name}_ctx", items)
