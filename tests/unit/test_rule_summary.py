"""The one-line summaries ``GET /admin/v1/rules`` and ``parcours rules list`` show, and the
locations a refused rule's 422 names."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from services.admin.rule_routes import _rule_problems, summary
from shared.domain.delivery_rules.tenant import RULE


def rule(**body: Any) -> Any:
    return RULE.validate_python(body)


@pytest.mark.parametrize(("body", "line"), [
    ({"kind": "filtering", "condition": {"path": "birthDate", "op": "within",
                                         "last": {"years": 18}}},
     "excludes birthDate within the last 18 years"),
    ({"kind": "filtering", "condition": {"all": [
        {"path": "city", "op": "in", "value": ["Lyon", "Nice"]},
        {"not": {"path": "consent.email.marketing", "op": "eq", "value": "opted-in"}}]}},
     "excludes (city in ['Lyon', 'Nice'] and not consent.email.marketing eq opted-in)"),
    ({"kind": "capacity", "max": 500, "period": "PT1H", "scope": "channel"},
     "at most 500 per channel per 1 hour"),
    ({"kind": "control", "checks": ["subjectPresent", "maxBytes"], "maxBytes": 1000},
     "subjectPresent, maxBytes 1000"),
    ({"kind": "fatigue", "max": 3, "maxFrom": "attributes.weekly", "period": "P1D"},
     "at most 3 (or attributes.weekly) on all channels per 1 day, drop at the cap,"
     " transactional exempt"),
    ({"kind": "quietHours", "channels": ["sms"], "start": "22:30", "end": "07:00",
      "transactional": "applies"},
     "sms: quiet 22:30-07:00 local, transactional applies"),
])
def test_summaries(body: dict[str, Any], line: str) -> None:
    assert summary(rule(name="r", **body)) == line


@pytest.mark.parametrize(("body", "locs"), [
    ({"name": "r"}, [["body", "kind"]]),
    ({"kind": "control", "name": "r", "checks": ["maxBytes"]}, [["body", "maxBytes"]]),
    ({"kind": "filtering", "name": "r", "condition": {"any": [
        {"path": "city", "op": "eq", "value": "Lyon"}, {"path": "city", "op": "eq"}]}},
     [["body", "condition", "any", 1, "value"]]),
    ({"kind": "fatigue", "name": "r", "max": 1, "period": "P1D", "maxFrom": "city"},
     [["body", "maxFrom"]]),
])
def test_problems_are_located_as_the_body_reads(body: dict[str, Any],
                                                locs: list[list[Any]]) -> None:
    with pytest.raises(ValidationError) as refused:
        RULE.validate_python(body)
    assert [p["loc"] for p in _rule_problems(body, refused.value)] == locs
