"""Profiles, a schema of their paths, and hypothesis strategies of profiles and conditions,
shared by the unit tests of the condition language and its test on PostgreSQL.

Values come from small pools so that equalities hit; the pools hold what tends to break
SQL built from text (quotes, ``%``, ``_``, backslashes), case and accents that fold
differently, decimals equal with other digits, instants written in other offsets.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from random import Random
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import strategies as st

from shared.domain.conditions import PathSpec, ValueType, attribute_sql
from shared.domain.conditions.checking import APPLIES, DATED

V = ValueType
NOW = datetime(2026, 3, 29, 9, 30, tzinfo=ZoneInfo("Europe/Paris"))  # the day clocks change

# The profiles table's built-in columns, and custom attributes in its jsonb column.
BUILT_INS = {
    "profileId": PathSpec(V.STRING, "profile_id"),
    "email": PathSpec(V.EMAIL, "email"),
    "mobilePhone": PathSpec(V.PHONE, "mobile_phone"),
    "firstName": PathSpec(V.STRING, "first_name"),
    "lastName": PathSpec(V.STRING, "last_name"),
    "city": PathSpec(V.STRING, "city"),
    "birthDate": PathSpec(V.DATE, "birth_date"),
}
ATTRIBUTES = {"tier": V.INTEGER, "ltv": V.DECIMAL, "vip": V.BOOLEAN, "since": V.DATE,
              "lastPurchaseAt": V.DATETIME, "tags": V.STRING_LIST, "workEmail": V.EMAIL}
SCHEMA = {**BUILT_INS, **{f"attributes.{name}": PathSpec(type_, attribute_sql(name, type_))
                          for name, type_ in ATTRIBUTES.items()}}
COLUMNS = {"firstName": "first_name", "lastName": "last_name", "mobilePhone": "mobile_phone",
           "birthDate": "birth_date"}

TEXT = ["Atlanta", "atlanta", "San Francisco", "Seattle", "Portland", "Zoë", "ZOË", "O'Brien",
        "50%_off", "a\\b", "'); DROP TABLE profiles; --", "", " ", "Ada", "ada", "Ad"]
EMAILS = ["ada@example.com", "Ada@Example.COM", "grace@example.org", "ÀDA@example.com",
          "àda@example.com", "x_%@example.com", "@example.com", "example.com"]
PHONES = ["+15551234567", "+1 555 123 4567", "+4930123456", "555"]
DATES = [date(1975, 6, 1), date(1980, 1, 1), date(1980, 12, 31), date(1981, 1, 1),
         date(1999, 2, 28), date(2000, 2, 29), date(2026, 3, 1), date(2026, 3, 28),
         date(2026, 3, 29), date(2026, 3, 30), date(2026, 4, 28), date(2025, 3, 29)]
_ZONES = [UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=5, minutes=30)),
          ZoneInfo("Europe/Paris")]
MOMENTS = [NOW + timedelta(hours=h) for h in (-24 * 60, -24 * 30, -720, -25, -24, -1, 0, 1, 23,
                                             24 * 30, 24 * 400)] + [
    datetime(2025, 12, 31, 23, 30, tzinfo=UTC), datetime(2026, 1, 1, 2, tzinfo=UTC)]  # parts

INTEGERS = [-1, 0, 1, 2, 3, 10, 2**62]
DECIMALS = [Decimal(d) for d in ("0", "0.00", "19.9", "19.90", "-5.5", "100", "1E+2")]
TAGS = ["vip", "VIP", "new", "a b", "'"]

VALUES: dict[ValueType, list[Any]] = {
    V.STRING: TEXT, V.EMAIL: EMAILS, V.PHONE: PHONES, V.INTEGER: INTEGERS,
    V.DECIMAL: DECIMALS, V.BOOLEAN: [True, False], V.DATE: DATES,
    V.DATETIME: [moment.astimezone(zone) for moment in MOMENTS for zone in _ZONES],
    V.STRING_LIST: [[], ["vip"], ["VIP", "new"], ["a b", "'"], ["new", "vip", "'"]],
}
POOLS = {type_: st.sampled_from(values) for type_, values in VALUES.items()}


def random_profile(rng: Random, profile_id: str) -> dict[str, Any]:
    """A profile as a record: built-ins at the top, custom attributes under ``attributes``;
    any value may be missing (absent, or null)."""
    def maybe(type_: ValueType) -> Any:
        return None if rng.random() < 0.2 else rng.choice(VALUES[type_])

    record: dict[str, Any] = {path: maybe(spec.type) for path, spec in BUILT_INS.items()}
    attributes = {name: maybe(type_) for name, type_ in ATTRIBUTES.items() if rng.random() < 0.8}
    return {**record, "profileId": profile_id, "attributes": attributes}


@st.composite
def profiles(draw: st.DrawFn) -> dict[str, Any]:
    return random_profile(draw(st.randoms(use_true_random=False)), "p")


def as_json(value: Any) -> Any:
    """A value as JSON carries it, and as the profile API would store an attribute in
    jsonb: decimals, dates and datetimes as text (``->>`` reads a string and a number
    alike)."""
    if isinstance(value, date):
        return value.isoformat()
    return str(value) if isinstance(value, Decimal) else value


def as_row(record: dict[str, Any]) -> tuple[Any, ...]:
    """The profiles row of a record: (profile_id, email, mobile_phone, first_name,
    last_name, city, birth_date, attributes)."""
    built_ins = [record.get(path) for path in BUILT_INS]
    return (*built_ins, {k: as_json(v) for k, v in record["attributes"].items()})


PARTS = st.sampled_from([1, 2, 3, 12, 28, 29, 31, 1980, 1981, 2025, 2026])


@st.composite
def tests(draw: st.DrawFn) -> dict[str, Any]:
    """One test of a path, well-typed: an operator its type takes, values of that type."""
    path = draw(st.sampled_from(sorted(SCHEMA)))
    type_ = SCHEMA[path].type
    part = draw(st.none() | st.sampled_from(["year", "month", "day"])) \
        if type_ in DATED else None
    compared = V.INTEGER if part else type_
    ops = sorted(op for op, types in APPLIES.items() if compared in types
                 and (part is None or op not in ("exists", "within")))
    op = draw(st.sampled_from(ops))
    test: dict[str, Any] = {"path": path, "op": op} | ({"part": part} if part else {})
    if op == "within":
        units = ["days", "months", "years"] + (["hours"] if type_ is V.DATETIME else [])
        unit, count = draw(st.sampled_from(units)), draw(st.sampled_from([0, 1, 24, 30]))
        return test | {draw(st.sampled_from(["last", "next"])): {unit: count}}
    if op == "exists":
        return test | {"value": draw(st.booleans())}
    if op in ("contains", "startsWith", "endsWith"):
        pool = TAGS if type_ is V.STRING_LIST else TEXT + EMAILS + ["a", "@", "Z", "%", "_"]
        return test | {"value": draw(st.sampled_from([t for t in pool if t]))}
    value = PARTS if part else POOLS[type_]
    if op in ("in", "notIn"):
        return test | {"value": [as_json(v) for v in draw(st.lists(value, min_size=1,
                                                                   max_size=4))]}
    if op == "between":
        return test | {"value": [as_json(v) for v in sorted(draw(st.lists(value, min_size=2,
                                                                          max_size=2)))]}
    return test | {"value": as_json(draw(value))}


conditions: st.SearchStrategy[dict[str, Any]] = st.recursive(
    tests(),
    lambda children: st.one_of(
        st.builds(lambda items: {"all": items}, st.lists(children, min_size=1, max_size=3)),
        st.builds(lambda items: {"any": items}, st.lists(children, min_size=1, max_size=3)),
        st.builds(lambda item: {"not": item}, children),
    ),
    max_leaves=8,
)
