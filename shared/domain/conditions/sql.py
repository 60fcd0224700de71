"""Compiles a checked condition to a boolean SQL expression for PostgreSQL.

Every value a user wrote travels as a parameter (``$n``, asyncpg's style, cast to its SQL
type); the only text pasted in is this module's own and the schema's expressions, which
come from code. Each operator is the SQL its Python twin (``evaluation.OPERATORS``) agrees
with, NULL for a missing value included.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.domain.conditions.checking import Checked, Negation, Test
from shared.domain.conditions.values import SQL_TYPES, ValueType

Bind = Callable[[Any, str], str]
COMPARISONS = {"eq": "=", "ne": "<>", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}


@dataclass(frozen=True)
class SqlFilter:
    """A boolean SQL expression and its parameters, numbered from ``first_param``: write
    ``text`` into a WHERE clause and pass ``params`` after the query's own."""

    text: str
    params: tuple[Any, ...]


def compile_sql(condition: Checked, *, now: datetime, first_param: int = 1) -> SqlFilter:
    params: list[Any] = []

    def bind(value: Any, sql_type: str) -> str:
        params.append(value)
        return f"${first_param + len(params) - 1}::{sql_type}"

    return SqlFilter(_sql(condition, bind, now), tuple(params))


def _sql(condition: Checked, bind: Bind, now: datetime) -> str:
    if isinstance(condition, Test):
        return _test(condition, bind, now)
    if isinstance(condition, Negation):
        return f"(NOT {_sql(condition.item, bind, now)})"
    glue = " AND " if condition.every else " OR "
    return "(" + glue.join(_sql(item, bind, now) for item in condition.items) + ")"


def _value(test: Test) -> str:
    """The SQL of the compared value: the path's, folded if an address, or its part."""
    value = f"({test.sql})"
    if test.type is ValueType.EMAIL:
        return f'lower({value} COLLATE "C")'
    if test.part is not None:
        utc = " AT TIME ZONE 'UTC'" if test.type is ValueType.DATETIME else ""
        return f"CAST(EXTRACT({test.part.upper()} FROM {value}{utc}) AS bigint)"
    return value


def _test(test: Test, bind: Bind, now: datetime) -> str:
    if test.op == "exists":
        return f"(({test.sql}) IS {'NOT ' if test.operands[0] else ''}NULL)"
    value, operands = _value(test), test.operands_at(now)
    sql_type = "bigint" if test.part is not None else SQL_TYPES[test.type]
    if test.op in COMPARISONS:
        return f"({value} {COMPARISONS[test.op]} {bind(operands[0], sql_type)})"
    if test.op == "between":
        low, high = bind(operands[0], sql_type), bind(operands[1], sql_type)
        return f"({value} BETWEEN {low} AND {high})"
    if test.op in ("in", "notIn"):
        array = bind(list(operands), f"{sql_type}[]")
        return f"({value} = ANY({array}))" if test.op == "in" else f"({value} <> ALL({array}))"
    needle = bind(operands[0], "text")
    if test.type is ValueType.STRING_LIST:  # contains: an item of a jsonb array
        return f"({value} @> jsonb_build_array({needle}))"
    if test.op == "contains":
        return f"(strpos({value}, {needle}) > 0)"
    if test.op == "startsWith":
        return f"starts_with({value}, {needle})"
    return f"(right({value}, length({needle})) = {needle})"
