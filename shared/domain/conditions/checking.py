"""Checks a condition against a schema of paths and types, and gives the typed tree that
Python evaluates and SQL compiles: every path known, every operator fitting its path's
type, every value read as that type, or a ConditionError naming each place."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.domain.conditions.model import (
    AllOf,
    AnyOf,
    Between,
    Compare,
    Condition,
    Exists,
    Match,
    Member,
    Node,
    NotOf,
    Part,
    Span,
    Within,
)
from shared.domain.conditions.problems import ConditionError, Loc, Problem
from shared.domain.conditions.spans import today_or_now, window
from shared.domain.conditions.values import READERS, Schema, ValueType, fold_email

V = ValueType
TEXT = frozenset({V.STRING, V.EMAIL, V.PHONE})
ORDERED = frozenset({V.INTEGER, V.DECIMAL, V.DATE, V.DATETIME})
DATED = frozenset({V.DATE, V.DATETIME})
SCALAR = frozenset(V) - {V.STRING_LIST}

# The types each operator applies to. Strings have no order: PostgreSQL's depends on the
# database's collation and Python's would not follow it.
APPLIES: dict[str, frozenset[ValueType]] = {
    **dict.fromkeys(("eq", "ne", "in", "notIn"), SCALAR),
    **dict.fromkeys(("gt", "ge", "lt", "le", "between"), ORDERED),
    **dict.fromkeys(("startsWith", "endsWith"), TEXT),
    "contains": TEXT | {V.STRING_LIST},
    "exists": frozenset(V),
    "within": DATED,
}


@dataclass(frozen=True)
class Test:
    """One test, typed: ``operands`` are read as the compared type (emails folded). A
    ``within`` is a ``between`` whose bounds come from ``now`` (``span``, ``ahead``)."""

    path: str
    keys: tuple[str, ...]
    type: ValueType
    sql: str
    op: str
    part: Part | None
    operands: tuple[Any, ...]
    span: Span | None = None
    ahead: bool = False

    def operands_at(self, now: datetime) -> tuple[Any, ...]:
        if self.span is None:
            return self.operands
        return window(today_or_now(now, self.type is V.DATE), self.span, self.ahead)


@dataclass(frozen=True)
class Junction:
    every: bool  # all (True) or any (False)
    items: tuple[Checked, ...]


@dataclass(frozen=True)
class Negation:
    item: Checked


Checked = Test | Junction | Negation
_REFUSED = Junction(True, ())  # stands in for a refused test; never evaluated or compiled


def check_condition(condition: Condition, schema: Schema) -> Checked:
    problems: list[Problem] = []
    checked = _check(condition.root, schema, (), problems)
    if problems:
        raise ConditionError(problems)
    return checked


def _check(node: Node, schema: Schema, loc: Loc, problems: list[Problem]) -> Checked:
    if isinstance(node, AllOf | AnyOf):
        key, items = ("all", node.all) if isinstance(node, AllOf) else ("any", node.any)
        return Junction(key == "all", tuple(
            _check(item, schema, (*loc, key, i), problems) for i, item in enumerate(items)))
    if isinstance(node, NotOf):
        return Negation(_check(node.not_, schema, (*loc, "not"), problems))
    return _check_test(node, schema, loc, problems)


def _check_test(
    test: Compare | Member | Between | Match | Exists | Within, schema: Schema, loc: Loc,
    problems: list[Problem],
) -> Checked:
    spec = schema.get(test.path)
    if spec is None:
        problems.append(Problem((*loc, "path"), f"unknown path {test.path!r}"))
        return _REFUSED
    part = getattr(test, "part", None)
    if part is not None and spec.type not in DATED:
        problems.append(Problem((*loc, "part"), f"{test.path} is a {spec.type}: only dates"
                                                " and datetimes have a year, month or day"))
        return _REFUSED
    compared = V.INTEGER if part is not None else spec.type
    if compared not in APPLIES[test.op]:
        kinds = ", ".join(sorted(APPLIES[test.op]))
        problems.append(Problem((*loc, "op"), f"{test.op} does not apply to {test.path}, a"
                                              f" {compared}; it applies to {kinds}"))
        return _REFUSED
    start = len(problems)
    operands, span, ahead = _operands(test, compared, (*loc, "value"), problems)
    if isinstance(test, Within) and spec.type is V.DATE and span and span.hours is not None:
        problems.append(Problem((*loc, "last" if span is test.last else "next", "hours"),
                                f"{test.path} is a date: use days, months or years"))
    if len(problems) > start:
        return _REFUSED
    return Test(test.path, tuple(test.path.split(".")), spec.type, spec.sql,
                "between" if isinstance(test, Within) else test.op, part, operands, span, ahead)


def _operands(
    test: Compare | Member | Between | Match | Exists | Within, compared: ValueType,
    loc: Loc, problems: list[Problem],
) -> tuple[tuple[Any, ...], Span | None, bool]:
    if isinstance(test, Within):
        return (), test.last or test.next, test.next is not None
    if isinstance(test, Exists):
        return (test.value,), None, False
    if isinstance(test, Match):  # a piece of text, even of an address or in a list
        return (_read(V.EMAIL if compared is V.EMAIL else V.STRING, test.value, loc, problems),
                ), None, False
    if isinstance(test, Compare):
        return (_read(compared, test.value, loc, problems),), None, False
    values = tuple(_read(compared, v, (*loc, i), problems) for i, v in enumerate(test.value))
    if isinstance(test, Between) and None not in values and values[0] > values[1]:
        problems.append(Problem(loc, "between needs the lower bound first"))
    return values, None, False


def _read(type_: ValueType, value: Any, loc: Loc, problems: list[Problem]) -> Any:
    try:
        read = READERS[type_](value)
    except ValueError as error:
        problems.append(Problem(loc, f"{error} (the path is a {type_})"))
        return None
    return fold_email(read) if type_ is V.EMAIL else read
