"""An updateProfile node's values are what the nodes after it read in the same move (a
condition on the field it set, a wait until the date it set): the write is applied only
after the move is stored, so the move reads them from the node, not from the store."""

from __future__ import annotations

from typing import Any

from shared.domain.journeys.advance import updated
from shared.domain.journeys.instance import SetTimer
from tests.unit.test_journey_advance import NOW, of, plan_of, start

JOURNEY: dict[str, Any] = {
    "id": "then", "entry": {"type": "audience", "audienceId": "a", "next": "move"},
    "nodes": [
        {"id": "move", "type": "updateProfile", "set": {"city": "Lyon"}, "next": "check"},
        {"id": "check", "type": "condition", "branches": [
            {"when": {"path": "city", "op": "eq", "value": "Lyon"}, "next": "lyon"}],
         "else": "other"},
        {"id": "lyon", "type": "wait", "untilField": "attributes.due", "next": "done"},
        {"id": "other", "type": "end"}, {"id": "done", "type": "end"}]}


def test_a_condition_after_an_update_reads_the_value_it_set() -> None:
    instance, _ = start(plan_of(JOURNEY), "p1", 0, {"city": "Paris"}, NOW)
    assert instance.node == "done"  # not "other": the condition saw Lyon (no date: on)


def test_a_wait_after_an_update_waits_until_the_date_it_set() -> None:
    journey = {**JOURNEY, "nodes": [
        {**JOURNEY["nodes"][0], "set": {"city": "Lyon",
                                        "attributes": {"due": "2026-12-05T00:00:00+00:00"}}},
        *JOURNEY["nodes"][1:]]}
    instance, effects = start(plan_of(journey), "p1", 0,
                              {"city": "Paris", "attributes": {"other": 1}}, NOW)
    assert instance.node == "lyon"
    assert [t.due.isoformat() for t in of(effects, SetTimer)] == ["2026-12-05T00:00:00+00:00"]


def test_updated_merges_as_the_write_does() -> None:
    record = {"city": "Paris", "email": None,
              "attributes": {"tier": "bronze", "orders": 3},
              "consent": {"email": {"marketing": "unknown", "blocked": False},
                          "sms": {"marketing": "opted-in", "blocked": False}},
              "topics": {"offers": {"subscribed": True}}}
    merged = updated(record, {"email": "a@b.c", "attributes": {"tier": "gold", "orders": None},
                              "consent": {"email": {"marketing": "opted-in"}},
                              "topics": {"offers": False}})
    assert merged == {"city": "Paris", "email": "a@b.c", "attributes": {"tier": "gold"},
                      "consent": {"email": {"marketing": "opted-in", "blocked": False},
                                  "sms": {"marketing": "opted-in", "blocked": False}},
                      "topics": {"offers": {"subscribed": True}}}
    assert record["attributes"] == {"tier": "bronze", "orders": 3}  # not changed in place
