"""The types a path can have, how a value of each is read, and what SQL holds it.

One reader per type serves both a condition's values and a record's: what Python compares
is what was sent to PostgreSQL as a parameter, so the two cannot read a value differently.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from shared.domain.fields import INT64
from shared.domain.profile_schema import ATTRIBUTE_NAME

DECIMAL_DIGITS = 38  # what numeric(38, s) and payment systems keep; 1e400 is a typo


class ValueType(StrEnum):
    STRING = "string"
    INTEGER = "integer"
    DECIMAL = "decimal"
    BOOLEAN = "boolean"
    DATE = "date"
    DATETIME = "datetime"
    EMAIL = "email"
    PHONE = "phone"
    STRING_LIST = "stringList"


# The SQL type of a path's expression and of the parameters compared with it. A list of
# strings is a jsonb array, as custom attributes store it.
SQL_TYPES: dict[ValueType, str] = {
    ValueType.STRING: "text", ValueType.EMAIL: "text", ValueType.PHONE: "text",
    ValueType.INTEGER: "bigint", ValueType.DECIMAL: "numeric", ValueType.BOOLEAN: "boolean",
    ValueType.DATE: "date", ValueType.DATETIME: "timestamptz", ValueType.STRING_LIST: "jsonb",
}


@dataclass(frozen=True)
class PathSpec:
    """A path's type and the SQL expression of its value, of the type's SQL type
    (``SQL_TYPES``) and NULL when the value is missing (``attribute_sql`` builds such
    expressions). The expression is pasted into queries: it comes from code, never from
    users."""

    type: ValueType
    sql: str


Schema = Mapping[str, PathSpec]


def _text(value: Any) -> str:
    if type(value) is not str:
        raise ValueError("must be a string")
    if "\x00" in value:  # PostgreSQL text cannot hold it
        raise ValueError("must not contain NUL characters (\\u0000)")
    return value


def _integer(value: Any) -> int:
    if type(value) is not int:
        raise ValueError("must be an integer")
    if not INT64[0] <= value <= INT64[1]:
        raise ValueError("must fit in 64 bits")
    return value


def _decimal(value: Any) -> Decimal:
    """Exact: a float is read through its shortest text (JSON 19.90 arrives as 19.9)."""
    if type(value) not in (Decimal, int, float, str):
        raise ValueError("must be a decimal number")
    try:
        number = Decimal(repr(value) if type(value) is float else value)
    except InvalidOperation:
        raise ValueError("must be a decimal number") from None
    if not number.is_finite() or len(number.as_tuple().digits) > DECIMAL_DIGITS \
            or abs(number.adjusted()) > DECIMAL_DIGITS:
        raise ValueError(f"must be a finite decimal of at most {DECIMAL_DIGITS} digits")
    return number


def _boolean(value: Any) -> bool:
    if type(value) is not bool:
        raise ValueError("must be true or false")
    return value


def _date(value: Any) -> date:
    if type(value) is date:
        return value
    if type(value) is str:
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError("must be a date, YYYY-MM-DD")


def _datetime(value: Any) -> datetime:
    moment = value
    if type(value) is str:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            pass
    if not isinstance(moment, datetime) or moment.utcoffset() is None:
        raise ValueError("must be a datetime with its offset, e.g. 2026-01-31T09:30:00Z")
    return moment


def _string_list(value: Any) -> list[Any]:
    if type(value) is not list:
        raise ValueError("must be a list of strings")
    return value


READERS: dict[ValueType, Callable[[Any], Any]] = {
    ValueType.STRING: _text, ValueType.EMAIL: _text, ValueType.PHONE: _text,
    ValueType.INTEGER: _integer, ValueType.DECIMAL: _decimal, ValueType.BOOLEAN: _boolean,
    ValueType.DATE: _date, ValueType.DATETIME: _datetime, ValueType.STRING_LIST: _string_list,
}

_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def fold_email(text: str) -> str:
    """Addresses compare without case, ASCII letters only: exactly what PostgreSQL's
    ``lower(… COLLATE "C")`` does, whatever the database's locale."""
    return text.translate(_ASCII_LOWER)


_NAME = re.compile(ATTRIBUTE_NAME)
_COLUMN = re.compile(r"[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?")


def attribute_sql(name: str, type_: ValueType, column: str = "attributes") -> str:
    """The SQL of a custom attribute kept in a jsonb column, NULL when missing or JSON null.
    Attribute names are users' words: only a name the profile schema allows (letters,
    digits, ``_``) is ever written into SQL."""
    if not _NAME.fullmatch(name) or not _COLUMN.fullmatch(column):
        raise ValueError(f"not an attribute name or column: {name!r}, {column!r}")
    if type_ is ValueType.STRING_LIST:
        return f"NULLIF({column}->'{name}', 'null'::jsonb)"
    if SQL_TYPES[type_] == "text":
        return f"({column}->>'{name}')"
    return f"({column}->>'{name}')::{SQL_TYPES[type_]}"
