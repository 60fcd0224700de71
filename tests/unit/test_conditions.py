"""The condition language: shape and bounds, checking against a schema (errors naming their
place in the tree), every operator on every type in Python, three-valued logic, relative
dates, and the SQL it compiles to. That SQL and Python agree is tested on PostgreSQL
(tests/integration/test_conditions_sql.py); here, the laws each side must keep."""

from __future__ import annotations

import re
import time
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.domain.conditions import (
    APPLIES,
    ConditionDataError,
    ConditionError,
    PathSpec,
    ValueType,
    attribute_sql,
    check_condition,
    compile_sql,
    evaluate,
    matches,
    parse_condition,
)
from shared.domain.conditions.model import MAX_DEPTH, MAX_NODES, MAX_VALUES
from shared.domain.fields import FieldType
from shared.domain.profile_schema import AttributeType
from tests.condition_cases import EMAILS, NOW, SCHEMA, TAGS, TEXT, conditions, profiles

V = ValueType
SEED_AUDIENCE = {"all": [
    {"path": "city", "op": "in", "value": ["Atlanta", "San Francisco", "Seattle"]},
    {"path": "birthDate", "part": "year", "op": "gt", "value": 1980},
]}
# One path of every type, each holding the record value of the evaluation table below.
TYPED = {f"{t}Path": PathSpec(t, f"{t}_column") for t in V}


def checked(definition: Any, schema: Any = None) -> Any:
    return check_condition(parse_condition(definition), schema or SCHEMA)


def problems(definition: Any, schema: Any = None) -> list[tuple[list[str | int], str]]:
    with pytest.raises(ConditionError) as caught:
        checked(definition, schema)
    return [(list(p.loc), p.msg) for p in caught.value.problems]


def truth(path_type: ValueType, test: dict[str, Any], value: Any, now: datetime = NOW) -> Any:
    path = f"{path_type}Path"
    return evaluate(checked({"path": path, **test}, TYPED), {path: value}, now=now)


# --- shape and bounds -------------------------------------------------------------------

def test_the_seed_audience_reads_and_round_trips_as_json() -> None:
    condition = parse_condition(SEED_AUDIENCE)
    assert condition.model_dump(mode="json", exclude_none=True) == SEED_AUDIENCE
    members = [{"city": "Seattle", "birthDate": date(1981, 1, 1)},
               {"city": "Atlanta", "birthDate": "1990-06-01"}]
    decoys = [{"city": "Seattle", "birthDate": date(1980, 12, 31)},
              {"city": "Portland", "birthDate": date(1990, 6, 1)},
              {"city": "Atlanta", "birthDate": date(1975, 6, 1)}]
    audience = check_condition(condition, SCHEMA)
    assert [matches(audience, r, now=NOW) for r in members + decoys] == [True] * 2 + [False] * 3


@pytest.mark.parametrize(("definition", "loc", "message"), [
    ({"all": [{"path": "city", "op": "like", "value": "x"}]}, ["all", 0], "'op'"),
    ({"any": [{"path": "city", "op": "eq"}]}, ["any", 0, "value"], "Field required"),
    ({"not": {"path": "city", "op": "in", "value": "Seattle"}}, ["not", "value"], "valid list"),
    ({"all": [{"paths": "city"}]}, ["all", 0], "a node is"),
    ({"all": []}, ["all"], "at least 1 item"),
    ({"path": "city", "op": "eq", "value": "x", "extra": 1}, ["extra"], "Extra inputs"),
    ({"path": "city", "op": "eq", "value": None}, ["value"], "a string, a number"),
    ({"path": "city name", "op": "eq", "value": "x"}, ["path"], "pattern"),
    ({"path": "city", "op": "in", "value": ["Zoë", "\ud800"]}, ["value", 1], "unicode"),
    ({"path": "city", "op": "startsWith", "value": ""}, ["value"], "at least 1 character"),
    ({"path": "city", "op": "exists", "value": True, "part": "year"}, ["part"], "Extra"),
    ({"path": "d", "op": "within", "last": {"days": 1, "hours": 1}}, ["last"], "exactly one"),
    ({"path": "d", "op": "within", "last": {"days": 1}, "next": {"days": 1}}, [], "exactly one"),
    ({"path": "d", "op": "within", "last": {"days": -1}}, ["last", "days"], "greater than"),
    ({"path": "d", "op": "within", "last": {"days": "1"}}, ["last", "days"], "integer"),
])
def test_a_malformed_condition_is_refused_naming_the_place(
    definition: Any, loc: list[str | int], message: str,
) -> None:
    (found,) = problems(definition)
    assert found[0] == loc and message in found[1]


def _nested(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {"path": "city", "op": "exists", "value": True}
    for _ in range(depth - 1):
        node = {"not": node}
    return node


def test_bounds_depth_nodes_values_and_text() -> None:
    leaf = {"path": "city", "op": "eq", "value": "x"}
    parse_condition(_nested(MAX_DEPTH))
    parse_condition({"all": [leaf] * (MAX_NODES - 1)})
    parse_condition({"path": "city", "op": "in", "value": ["x"] * MAX_VALUES})
    assert problems(_nested(MAX_DEPTH + 1))[0][1].endswith("at most 10 levels deep")
    assert problems({"all": [leaf] * MAX_NODES})[0][1].endswith("at most 200 nodes")
    assert problems({"path": "city", "op": "in", "value": ["x"] * (MAX_VALUES + 1)})[0][0] \
        == ["value"]
    assert problems({"path": "city", "op": "eq", "value": "x" * 1001})[0][0] == ["value"]


def test_a_hostile_definition_is_refused_before_it_is_built() -> None:
    """Measured: 0.2-0.5 ms each; the bound is generous for a loaded machine."""
    leaf = {"path": "city", "op": "eq", "value": "x"}
    for hostile in ({"all": [leaf] * 100_000}, {"all": [{"any": [leaf] * 200}] * 200},
                    _nested(150), {"path": "city", "op": "in", "value": ["x"] * 1_000_000}):
        started = time.perf_counter()
        with pytest.raises(ConditionError):
            parse_condition(hostile)
        assert time.perf_counter() - started < 0.1


# --- checking against the schema ---------------------------------------------------------

_SAMPLE: dict[ValueType, Any] = {
    V.STRING: "a", V.EMAIL: "a@b.c", V.PHONE: "+1555", V.INTEGER: 1, V.DECIMAL: "1.5",
    V.BOOLEAN: True, V.DATE: "2026-01-01", V.DATETIME: "2026-01-01T00:00:00Z",
    V.STRING_LIST: "a",
}
_VALID_OPERAND: dict[str, Any] = {
    **{op: lambda t: {"value": _SAMPLE[t]} for op in ("eq", "ne", "gt", "ge", "lt", "le")},
    **{op: lambda t: {"value": [_SAMPLE[t]]} for op in ("in", "notIn")},
    "between": lambda t: {"value": [_SAMPLE[t], _SAMPLE[t]]},
    **{op: lambda t: {"value": "a"} for op in ("contains", "startsWith", "endsWith")},
    "exists": lambda t: {"value": True},
    "within": lambda t: {"last": {"days": 30}},
}


def test_every_operator_applies_to_exactly_its_types() -> None:
    for op, types in APPLIES.items():
        for type_ in V:
            test = {"path": f"{type_}Path", "op": op, **_VALID_OPERAND[op](type_)}
            if type_ in types:
                checked(test, TYPED)
            else:
                ((loc, message),) = problems(test, TYPED)
                assert loc == ["op"] and f"{op} does not apply to {type_}Path" in message


def test_every_problem_is_named_at_its_place_all_at_once() -> None:
    found = problems({"all": [
        {"path": "cty", "op": "eq", "value": "Atlanta"},
        {"path": "city", "op": "gt", "value": "A"},
        {"any": [{"path": "birthDate", "op": "eq", "value": "yesterday"},
                 {"not": {"path": "city", "part": "year", "op": "eq", "value": 1980}}]},
        {"path": "attributes.tier", "op": "in", "value": [1, "2", 3.0, True]},
        {"path": "birthDate", "op": "between", "value": ["2000-01-01", "1990-01-01"]},
        {"path": "birthDate", "op": "within", "next": {"hours": 24}},
        {"path": "attributes.lastPurchaseAt", "op": "eq", "value": "2026-01-01T10:00:00"},
        {"path": "attributes.ltv", "op": "eq", "value": "1e400"},
        {"path": "city", "op": "eq", "value": "a\x00b"},
    ]})
    assert [loc for loc, _ in found] == [
        ["all", 0, "path"], ["all", 1, "op"], ["all", 2, "any", 0, "value"],
        ["all", 2, "any", 1, "not", "part"], ["all", 3, "value", 1],
        ["all", 3, "value", 2], ["all", 3, "value", 3], ["all", 4, "value"],
        ["all", 5, "next", "hours"], ["all", 6, "value"], ["all", 7, "value"],
        ["all", 8, "value"],
    ]
    assert "unknown path 'cty'" in found[0][1]
    assert "must be a datetime with its offset" in found[9][1]


def test_the_types_are_the_profile_attribute_types_and_include_the_event_field_types() -> None:
    assert {t.value for t in AttributeType} == {t.value for t in V}
    assert {t.value for t in FieldType} <= {t.value for t in V}


def test_paths_take_attribute_names_and_topic_ids() -> None:
    long_name = "a" * 64
    schema = {f"attributes.{long_name}": PathSpec(V.INTEGER, attribute_sql(long_name, V.INTEGER)),
              "topics.weekly-news.subscribed": PathSpec(V.BOOLEAN, "subscribed")}
    checked({"path": f"attributes.{long_name}", "op": "eq", "value": 1}, schema)
    checked({"path": "topics.weekly-news.subscribed", "op": "eq", "value": True}, schema)
    assert problems({"path": "a" * 65, "op": "eq", "value": 1})[0][0] == ["path"]
    with pytest.raises(ValueError, match="not an attribute name"):
        attribute_sql("a" * 65, V.INTEGER)


def test_attribute_sql_is_null_when_missing_and_refuses_what_is_not_a_name() -> None:
    assert attribute_sql("tier", V.INTEGER) == "(attributes->>'tier')::bigint"
    assert attribute_sql("city", V.STRING, "p.attributes") == "(p.attributes->>'city')"
    assert attribute_sql("tags", V.STRING_LIST) == "NULLIF(attributes->'tags', 'null'::jsonb)"
    for name, column in (("x'; DROP", "attributes"), ("tier", "a; b"), ("1x", "attributes")):
        with pytest.raises(ValueError, match="not an attribute name"):
            attribute_sql(name, V.INTEGER, column)


# --- evaluation: every operator on every type ---------------------------------------------

@pytest.mark.parametrize(("type_", "test", "value", "expected"), [
    (V.STRING, {"op": "eq", "value": "Seattle"}, "Seattle", True),
    (V.STRING, {"op": "eq", "value": "Seattle"}, "seattle", False),  # case-sensitive
    (V.STRING, {"op": "ne", "value": "Seattle"}, "Portland", True),
    (V.STRING, {"op": "in", "value": ["Atlanta", "Seattle"]}, "Seattle", True),
    (V.STRING, {"op": "notIn", "value": ["Atlanta", "Seattle"]}, "Seattle", False),
    (V.STRING, {"op": "contains", "value": "ttl"}, "Seattle", True),
    (V.STRING, {"op": "contains", "value": "%"}, "Seattle", False),  # no LIKE wildcards
    (V.STRING, {"op": "startsWith", "value": "Sea"}, "Seattle", True),
    (V.STRING, {"op": "startsWith", "value": "sea"}, "Seattle", False),
    (V.STRING, {"op": "endsWith", "value": "tle"}, "Seattle", True),
    (V.STRING, {"op": "endsWith", "value": "Seattle!"}, "Seattle", False),
    (V.EMAIL, {"op": "eq", "value": "Ada@Example.COM"}, "ada@example.com", True),
    (V.EMAIL, {"op": "eq", "value": "àda@example.com"}, "ÀDA@example.com", False),  # ASCII
    (V.EMAIL, {"op": "endsWith", "value": "@EXAMPLE.com"}, "ada@example.com", True),
    (V.EMAIL, {"op": "in", "value": ["GRACE@x.org", "ADA@X.ORG"]}, "ada@x.org", True),
    (V.PHONE, {"op": "startsWith", "value": "+1"}, "+15551234567", True),
    (V.PHONE, {"op": "eq", "value": "+1 555 123 4567"}, "+15551234567", False),  # as written
    (V.INTEGER, {"op": "gt", "value": 2}, 3, True),
    (V.INTEGER, {"op": "ge", "value": 3}, 3, True),
    (V.INTEGER, {"op": "lt", "value": 3}, 3, False),
    (V.INTEGER, {"op": "le", "value": 3}, 3, True),
    (V.INTEGER, {"op": "between", "value": [1, 3]}, 3, True),
    (V.INTEGER, {"op": "between", "value": [1, 2]}, 3, False),
    (V.INTEGER, {"op": "in", "value": [2**62, 3]}, 2**62, True),
    (V.DECIMAL, {"op": "eq", "value": "19.9"}, Decimal("19.90"), True),
    (V.DECIMAL, {"op": "eq", "value": 19.9}, "19.90", True),
    (V.DECIMAL, {"op": "gt", "value": "0.1"}, Decimal("0.10000000000000000001"), True),
    (V.DECIMAL, {"op": "in", "value": [100]}, Decimal("1E+2"), True),
    (V.BOOLEAN, {"op": "eq", "value": True}, True, True),
    (V.BOOLEAN, {"op": "ne", "value": True}, False, True),
    (V.BOOLEAN, {"op": "in", "value": [False]}, True, False),
    (V.DATE, {"op": "gt", "value": "1980-12-31"}, date(1981, 1, 1), True),
    (V.DATE, {"op": "between", "value": ["1980-01-01", "1980-12-31"]}, "1980-12-31", True),
    (V.DATE, {"op": "eq", "part": "year", "value": 1980}, date(1980, 12, 31), True),
    (V.DATE, {"op": "in", "part": "month", "value": [2]}, date(2000, 2, 29), True),
    (V.DATE, {"op": "ge", "part": "day", "value": 29}, date(2000, 2, 29), True),
    (V.DATETIME, {"op": "eq", "value": "2026-01-01T10:00:00+02:00"},
     datetime(2026, 1, 1, 8, tzinfo=UTC), True),  # the same instant
    (V.DATETIME, {"op": "lt", "value": "2026-01-01T10:00:00+02:00"},
     "2026-01-01T09:00:00+02:00", True),
    (V.DATETIME, {"op": "eq", "part": "year", "value": 2025},
     datetime(2026, 1, 1, 1, tzinfo=timezone(timedelta(hours=2))), True),  # parts in UTC
    (V.STRING_LIST, {"op": "contains", "value": "vip"}, ["new", "vip"], True),
    (V.STRING_LIST, {"op": "contains", "value": "vip"}, ["VIP", "vip tier"], False),
    (V.STRING_LIST, {"op": "contains", "value": "vip"}, [], False),
])
def test_an_operator_on_a_type(
    type_: ValueType, test: dict[str, Any], value: Any, expected: bool,
) -> None:
    assert truth(type_, test, value) is expected


@pytest.mark.parametrize("absent", [True, False], ids=["absent", "null"])
def test_a_missing_value_is_unknown_to_every_operator_but_exists(absent: bool) -> None:
    for type_ in V:
        path = f"{type_}Path"
        for op, types in APPLIES.items():
            if type_ in types:
                test = checked({"path": path, "op": op, **_VALID_OPERAND[op](type_)}, TYPED)
                record = {} if absent else {path: None}
                expected = False if op == "exists" else None
                assert evaluate(test, record, now=NOW) is expected, (type_, op)
        absent = checked({"path": path, "op": "exists", "value": False}, TYPED)
        assert matches(absent, {}, now=NOW) and not matches(absent, {path: "x"}, now=NOW)


def test_three_valued_logic_as_sql() -> None:
    true, false = {"path": "city", "op": "exists", "value": True}, \
        {"path": "city", "op": "exists", "value": False}
    unknown = {"path": "lastName", "op": "eq", "value": "x"}  # the record has no last name
    record = {"city": "Seattle"}

    def of(definition: Any) -> bool | None:
        return evaluate(checked(definition), record, now=NOW)

    assert of({"not": unknown}) is None
    assert (of({"all": [true, unknown]}), of({"all": [false, unknown]})) == (None, False)
    assert (of({"any": [true, unknown]}), of({"any": [false, unknown]})) == (True, None)
    assert of({"any": [{"not": unknown}, unknown]}) is None  # x or not x is not always true


def test_a_value_not_of_its_type_is_a_data_error_naming_the_path() -> None:
    test = checked({"path": "attributes.tier", "op": "gt", "value": 1})
    for bad in ("3", 3.0, True):
        with pytest.raises(ConditionDataError, match=r"^attributes\.tier: must be an integer"):
            matches(test, {"attributes": {"tier": bad}}, now=NOW)
    later = checked({"path": "attributes.lastPurchaseAt", "op": "gt",
                     "value": "2026-01-01T00:00:00Z"})
    with pytest.raises(ConditionDataError, match="offset"):
        matches(later, {"attributes": {"lastPurchaseAt": "2026-01-01T00:00:00"}}, now=NOW)
    # a path through something that is not an object is missing, not an error
    assert evaluate(test, {"attributes": "none"}, now=NOW) is None


# --- relative dates --------------------------------------------------------------------

def test_within_the_last_days_counts_calendar_days_of_nows_zone() -> None:
    last_30 = {"op": "within", "last": {"days": 30}}
    tokyo = datetime(2026, 4, 1, 8, tzinfo=ZoneInfo("Asia/Tokyo"))  # 31 March 23:00 UTC
    assert truth(V.DATE, last_30, date(2026, 4, 1), now=tokyo) is True  # today included
    assert truth(V.DATE, last_30, date(2026, 4, 1), now=tokyo.astimezone(UTC)) is False
    assert truth(V.DATE, last_30, date(2026, 3, 1), now=tokyo) is False
    assert truth(V.DATE, last_30, date(2026, 3, 1), now=tokyo.astimezone(UTC)) is True


def test_within_on_datetimes_hours_elapse_and_days_follow_the_wall_clock() -> None:
    paris = datetime(2026, 3, 29, 12, tzinfo=ZoneInfo("Europe/Paris"))  # clocks went forward
    earlier = datetime(2026, 3, 28, 11, 30, tzinfo=ZoneInfo("Europe/Paris"))  # 23.5 h before
    assert truth(V.DATETIME, {"op": "within", "last": {"days": 1}}, earlier, now=paris) is False
    assert truth(V.DATETIME, {"op": "within", "last": {"hours": 24}}, earlier, now=paris) is True
    assert truth(V.DATETIME, {"op": "within", "next": {"hours": 1}}, paris, now=paris) is True


@pytest.mark.parametrize(("span", "today", "first"), [
    ({"months": 1}, date(2026, 3, 31), date(2026, 2, 28)),
    ({"years": 1}, date(2028, 2, 29), date(2027, 2, 28)),
    ({"years": 18}, date(2026, 6, 15), date(2008, 6, 15)),  # "under 18"
    ({"days": 0}, date(2026, 6, 15), date(2026, 6, 15)),  # today
])
def test_months_and_years_clamp_to_the_months_last_day(
    span: dict[str, int], today: date, first: date,
) -> None:
    now = datetime.combine(today, datetime.min.time(), UTC)
    last = {"op": "within", "last": span}
    assert truth(V.DATE, last, first, now=now) is True
    assert truth(V.DATE, last, first - timedelta(days=1), now=now) is False


def test_relative_dates_need_an_aware_now() -> None:
    with pytest.raises(ValueError, match="aware"):
        truth(V.DATE, {"op": "within", "last": {"days": 1}}, date(2026, 1, 1),
              now=datetime(2026, 1, 1))


# --- SQL --------------------------------------------------------------------------------

def test_the_seed_audience_compiles_to_parameters_after_the_querys_own() -> None:
    where = compile_sql(checked(SEED_AUDIENCE), now=NOW, first_param=2)
    assert where.text == ("(((city) = ANY($2::text[]))"
                          " AND (CAST(EXTRACT(YEAR FROM (birth_date)) AS bigint) > $3::bigint))")
    assert where.params == (["Atlanta", "San Francisco", "Seattle"], 1980)


def test_each_operator_compiles_to_its_sql() -> None:
    def sql(test: dict[str, Any]) -> str:
        return compile_sql(checked(test), now=NOW).text

    assert sql({"path": "email", "op": "eq", "value": "A@B.C"}) \
        == '(lower((email) COLLATE "C") = $1::text)'
    assert sql({"path": "city", "op": "notIn", "value": ["x"]}) == "((city) <> ALL($1::text[]))"
    assert sql({"path": "city", "op": "contains", "value": "x"}) == "(strpos((city), $1::text) > 0)"
    assert sql({"path": "city", "op": "startsWith", "value": "x"}) \
        == "starts_with((city), $1::text)"
    assert sql({"path": "city", "op": "endsWith", "value": "x"}) \
        == "(right((city), length($1::text)) = $1::text)"
    assert sql({"not": {"path": "city", "op": "exists", "value": False}}) \
        == "(NOT ((city) IS NULL))"
    assert sql({"path": "attributes.tags", "op": "contains", "value": "x"}) \
        == "((NULLIF(attributes->'tags', 'null'::jsonb)) @> jsonb_build_array($1::text))"
    assert sql({"path": "attributes.lastPurchaseAt", "op": "le", "part": "month", "value": 3}) \
        == ("(CAST(EXTRACT(MONTH FROM ((attributes->>'lastPurchaseAt')::timestamptz)"
            " AT TIME ZONE 'UTC') AS bigint) <= $1::bigint)")
    within = compile_sql(checked({"path": "birthDate", "op": "within", "next": {"days": 7}}),
                         now=NOW)
    assert within.text == "((birth_date) BETWEEN $1::date AND $2::date)"
    assert within.params == (date(2026, 3, 29), date(2026, 4, 5))


_PLACEHOLDER = re.compile(r"\$(\d+)::")
_USERS_WORDS = [w for w in TEXT + EMAILS + TAGS
                if len(w) >= 3 and not any(w in spec.sql for spec in SCHEMA.values())]


@settings(max_examples=300, deadline=None)
@given(condition=conditions, first=st.integers(1, 50))
def test_values_never_enter_the_sql_text_and_parameters_are_numbered_in_order(
    condition: dict[str, Any], first: int,
) -> None:
    where = compile_sql(checked(condition), now=NOW, first_param=first)
    numbers = [int(n) for n in _PLACEHOLDER.findall(where.text)]
    assert sorted(set(numbers)) == list(range(first, first + len(where.params)))
    assert not [w for w in _USERS_WORDS if w in where.text]


@settings(max_examples=300, deadline=None)
@given(condition=conditions, other=conditions, record=profiles())
def test_the_evaluator_keeps_the_laws_of_three_valued_logic(
    condition: dict[str, Any], other: dict[str, Any], record: dict[str, Any],
) -> None:
    def of(definition: Any) -> bool | None:
        return evaluate(checked(definition), record, now=NOW)

    a, b = of(condition), of(other)
    assert of({"not": {"not": condition}}) is a
    assert of({"not": {"all": [condition, other]}}) is of({"any": [{"not": condition},
                                                                   {"not": other}]})
    assert of({"all": [condition, other]}) is of({"all": [other, condition]})
    assert of({"any": [condition, other]}) is (
        True if True in (a, b) else None if None in (a, b) else False)


@settings(max_examples=200, deadline=None)
@given(condition=conditions)
def test_a_condition_round_trips_through_json(condition: dict[str, Any]) -> None:
    parsed = parse_condition(condition)
    assert parse_condition(parsed.model_dump(mode="json")) == parsed
