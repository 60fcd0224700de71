"""The reactions service counts what the relay produced by kind and machine, one
increment a series per batch: the same totals as one a record, nothing for a record that
is not a reaction (the consumer dead-letters those)."""

from __future__ import annotations

import orjson
from prometheus_client import REGISTRY

from services.reactions.consumer import count_traced


def _value(kind: str, machine: bool) -> bytes:
    return orjson.dumps({"v": 1, "kind": kind, "machine": machine,
                         "origin": {"kind": "event"}})


def _count(kind: str, machine: str) -> float:
    value = REGISTRY.get_sample_value("parcours_reactions_total",
                                      {"kind": kind, "machine": machine})
    return value or 0.0


def test_a_batch_is_counted_by_kind_and_machine() -> None:
    series = [("clicked", "false"), ("opened", "true"), ("opened", "false")]
    before = {s: _count(*s) for s in series}
    count_traced([_value("clicked", False), _value("clicked", False), _value("opened", True),
                  b"not json", orjson.dumps(["a list"]), _value("no such kind", False)])
    assert {s: _count(*s) - before[s] for s in series} == {
        ("clicked", "false"): 2, ("opened", "true"): 1, ("opened", "false"): 0}
