"""Evaluates a checked condition for one record, with SQL's three-valued logic.

A test of a missing value (absent, or null) is unknown, not false, as in SQL: only
``exists`` looks at presence. ``not`` of unknown is unknown; ``all`` is false if any item
is false, else unknown if any is unknown; ``any`` is true if any item is true, else unknown
if any is unknown. A record is a member only when the condition is true, so a profile
without a city is in neither ``city eq "Seattle"`` nor ``city ne "Seattle"`` nor
``not (city eq "Seattle")``: exactly the rows ``WHERE <compiled SQL>`` selects.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from shared.domain.conditions.checking import Checked, Negation, Test
from shared.domain.conditions.values import READERS, ValueType, fold_email

Truth = bool | None  # None: unknown


class ConditionDataError(ValueError):
    """A record's value is not of its path's type: PostgreSQL would fail its cast too."""


OPERATORS: dict[str, Callable[[Any, tuple[Any, ...]], bool]] = {
    "eq": lambda value, o: bool(value == o[0]),
    "ne": lambda value, o: bool(value != o[0]),
    "gt": lambda value, o: bool(value > o[0]),
    "ge": lambda value, o: bool(value >= o[0]),
    "lt": lambda value, o: bool(value < o[0]),
    "le": lambda value, o: bool(value <= o[0]),
    "between": lambda value, o: bool(o[0] <= value <= o[1]),
    "in": lambda value, o: value in o,
    "notIn": lambda value, o: value not in o,
    "contains": lambda value, o: o[0] in value,  # a substring, or an item of a list
    "startsWith": lambda value, o: bool(value.startswith(o[0])),
    "endsWith": lambda value, o: bool(value.endswith(o[0])),
}


def matches(condition: Checked, record: Mapping[str, Any], *, now: datetime) -> bool:
    """Whether ``record`` (nested as its paths are: ``{"city": …, "attributes": {"tier":
    …}}``) is a member, as ``WHERE <compiled SQL>`` would say of its row."""
    return evaluate(condition, record, now=now) is True


def evaluate(condition: Checked, record: Mapping[str, Any], *, now: datetime) -> Truth:
    if isinstance(condition, Test):
        return _test(condition, record, now)
    if isinstance(condition, Negation):
        truth = evaluate(condition.item, record, now=now)
        return None if truth is None else not truth
    decisive = not condition.every  # false decides an `all`, true an `any`
    unknown = False
    for item in condition.items:
        truth = evaluate(item, record, now=now)
        if truth is decisive:
            return decisive
        unknown = unknown or truth is None
    return None if unknown else not decisive


def _lookup(record: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    value: Any = record
    for key in keys:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _test(test: Test, record: Mapping[str, Any], now: datetime) -> Truth:
    raw = _lookup(record, test.keys)
    if test.op == "exists":
        return (raw is not None) is test.operands[0]
    if raw is None:
        return None
    try:
        value = READERS[test.type](raw)
    except ValueError as error:
        raise ConditionDataError(f"{test.path}: {error}") from None
    if test.type is ValueType.EMAIL:
        value = fold_email(value)
    if test.part is not None:
        value = getattr(value.astimezone(UTC) if isinstance(value, datetime) else value, test.part)
    return OPERATORS[test.op](value, test.operands_at(now))
