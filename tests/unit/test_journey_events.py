"""Journey event types: their shape, the identifying condition checked against their
fields, and which records are events of the type for which profile."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from shared.domain.conditions import ConditionError
from shared.domain.journeys.journey_events import (
    JourneyEventType,
    checked_condition,
    event_paths,
    identify,
)

NOW = datetime(2026, 12, 3, tzinfo=UTC)
PURCHASE: dict[str, Any] = {
    "eventId": "JEVpurchase",
    "fields": [{"id": "customerId", "type": "string", "required": True},
               {"id": "purchaseMessage", "type": "string"},
               {"id": "amount", "type": "decimal"}],
    "condition": {"path": "event.purchaseMessage", "op": "eq", "value": "thank you"},
    "profileKey": "customerId"}


def purchase(**changes: Any) -> JourneyEventType:
    return JourneyEventType.model_validate({**PURCHASE, **changes})


def test_only_records_whose_condition_holds_are_events_of_the_type() -> None:
    event_type = purchase()
    condition = checked_condition(event_type)
    thanks = {"customerId": "c1", "purchaseMessage": "thank you"}
    assert identify(event_type, condition, thanks, NOW) == "c1"
    for other in ({"customerId": "c1", "purchaseMessage": "ok"}, {"customerId": "c1"},
                  {"purchaseMessage": "thank you"}, {"customerId": "", "purchaseMessage":
                                                      "thank you"}):
        assert identify(event_type, condition, other, NOW) is None


def test_without_a_condition_every_record_naming_a_profile_is_one() -> None:
    event_type = purchase(condition=None)
    assert identify(event_type, checked_condition(event_type), {"customerId": "c2"},
                    NOW) == "c2"


def test_a_condition_on_an_unknown_field_or_of_the_wrong_type_is_refused() -> None:
    with pytest.raises(ConditionError):
        checked_condition(purchase(condition={"path": "event.nope", "op": "eq",
                                              "value": "x"}))
    with pytest.raises(ConditionError):
        checked_condition(purchase(condition={"path": "event.amount", "op": "eq",
                                              "value": "ten"}))


@pytest.mark.parametrize("changes", [
    {"eventId": "EVTpurchase"},  # a transactional event's prefix
    {"profileKey": "amount"},  # not a string field
    {"profileKey": "missing"},
    {"fields": [{"id": "a", "type": "string"}, {"id": "a", "type": "string"}]},
])
def test_a_malformed_type_is_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        purchase(**changes)


def test_paths_follow_the_fields_types_under_a_prefix() -> None:
    paths = event_paths(purchase(), prefix="waits.buy")
    assert set(paths) == {"waits.buy.customerId", "waits.buy.purchaseMessage",
                          "waits.buy.amount"}
    assert paths["waits.buy.amount"].type == "decimal"
