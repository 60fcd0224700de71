"""The audience paths (shared/domain/audiences.py): every path a profile shows, typed, with
SQL from code only; consent defaults as the API shows them; the paths a condition uses."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.domain.audiences import jsonable, paths_used, profile_paths
from shared.domain.conditions import (
    ConditionError,
    ValueType,
    check_condition,
    compile_sql,
    parse_condition,
)
from shared.domain.profile_schema import ProfileSchema, TopicSpec

SCHEMA = ProfileSchema.model_validate({
    "attributes": [{"name": "tier", "type": "string"}, {"name": "orders", "type": "integer"},
                   {"name": "interests", "type": "stringList"}],
    "topics": [{"id": "newsletter"}, {"id": "hot-deals"}]})


def test_every_path_a_profile_shows_is_typed() -> None:
    paths = profile_paths(SCHEMA)
    assert paths["profileId"].sql == "profile_id"
    assert paths["email"].type is ValueType.EMAIL and paths["mobilePhone"].type is ValueType.PHONE
    assert paths["birthDate"].type is ValueType.DATE and paths["birthDate"].sql == "birth_date"
    assert paths["city"].type is ValueType.STRING and paths["timeZone"].sql == "time_zone"
    assert paths["attributes.orders"].type is ValueType.INTEGER
    assert paths["attributes.orders"].sql == "(attributes->>'orders')::bigint"
    assert paths["attributes.interests"].type is ValueType.STRING_LIST
    assert set(paths) >= {f"consent.{c}.{k}" for c in ("email", "sms", "push")
                          for k in ("marketing", "blocked")}
    assert paths["topics.hot-deals.subscribed"].type is ValueType.BOOLEAN
    assert "attributes.Orders" not in paths and "topics.offers.subscribed" not in paths


def test_consent_defaults_agree_with_the_api() -> None:
    paths = profile_paths(SCHEMA)
    marketing = paths["consent.email.marketing"].sql
    assert marketing.startswith("COALESCE((SELECT consents.value FROM consents")
    assert marketing.endswith(", 'unknown')") and "consents.name = 'email'" in marketing
    assert paths["consent.sms.blocked"].sql.endswith(", false)")
    topic = paths["topics.newsletter.subscribed"].sql
    assert "consents.kind = 'topic'" in topic and topic.endswith(", false)")


def test_a_topic_id_sql_would_not_hold_is_refused() -> None:
    evil = ProfileSchema.model_construct(attributes=(), topics=(
        TopicSpec.model_construct(id="x') OR true --", label=""),))
    with pytest.raises(ValueError, match="not a topic id"):
        profile_paths(evil)


def test_values_travel_as_parameters_and_paths_used_come_once_in_order() -> None:
    checked = check_condition(parse_condition({"all": [
        {"path": "city", "op": "in", "value": ["O'Hare", "Seattle"]},
        {"not": {"path": "birthDate", "part": "year", "op": "gt", "value": 1980}},
        {"path": "city", "op": "ne", "value": "x"}]}), profile_paths(SCHEMA))
    where = compile_sql(checked, now=datetime(2026, 1, 1, tzinfo=UTC), first_param=2)
    assert "O'Hare" not in where.text and where.params[0] == ["O'Hare", "Seattle"]
    assert [t.path for t in paths_used(checked)] == ["city", "birthDate"]


def test_unknown_paths_and_type_mismatches_name_their_place() -> None:
    with pytest.raises(ConditionError) as error:
        check_condition(parse_condition({"any": [
            {"path": "cty", "op": "eq", "value": "x"},
            {"path": "attributes.orders", "op": "eq", "value": "3"}]}), profile_paths(SCHEMA))
    assert [p.loc for p in error.value.problems] == [("any", 0, "path"), ("any", 1, "value")]


def test_jsonable() -> None:
    assert jsonable(datetime(2026, 1, 1, tzinfo=UTC)) == "2026-01-01T00:00:00+00:00"
    assert jsonable("x") == "x" and jsonable(None) is None
