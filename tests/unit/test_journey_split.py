"""The random split (experiment) node: weights, a stable assignment, what it records and
how it is counted. Pure, no services."""

from __future__ import annotations

import dataclasses
import hashlib
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from shared.domain.journeys.advance import Plan, advance, start
from shared.domain.journeys.codec import instance_from_json, instance_to_json
from shared.domain.journeys.counts import node_counts
from shared.domain.journeys.definition import SplitBranch, parse_definition, successors
from shared.domain.journeys.instance import Send, Step, TimerFired
from shared.domain.journeys.split import BUCKETS, bucket, choose

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def journey(*weights: int) -> dict[str, Any]:
    names = ["A", "B", "C", "D"][:len(weights)]
    return {
        "id": "exp", "entry": {"type": "audience", "audienceId": "all", "next": "ab"},
        "nodes": [
            {"id": "ab", "type": "split",
             "branches": [{"name": n, "weight": w, "next": f"mail{n}"}
                          for n, w in zip(names, weights, strict=True)]},
            *({"id": f"mail{n}", "type": "email", "message": f"m{n}", "next": "pause"}
              for n in names),
            {"id": "pause", "type": "wait", "duration": "PT1H", "next": "done"},
            {"id": "done", "type": "end"}]}


def plan(data: dict[str, Any], version: int = 1) -> Plan:
    return Plan(parse_definition(data), version, tenant="t1")


def test_weights_must_add_up_to_100_and_names_be_unique() -> None:
    with pytest.raises(ValidationError, match="add up to 90, not 100"):
        parse_definition(journey(40, 50))
    data = journey(50, 50)
    data["nodes"][0]["branches"][1]["name"] = "a"
    with pytest.raises(ValidationError, match="same name"):
        parse_definition(data)
    data = journey(100)
    with pytest.raises(ValidationError, match="at least 2"):
        parse_definition(data)
    assert successors(parse_definition(journey(30, 70)).node("ab")) == ["mailA", "mailB"]


def test_the_bucket_is_a_hash_the_same_everywhere() -> None:
    # a fixed value: sha256 of the key, not Python's per-process salted hash()
    assert bucket("t1", "exp", 1, "ab", "p1") == bucket("t1", "exp", 1, "ab", "p1")
    assert bucket("t1", "exp", 1, "ab", "p1") == int.from_bytes(
        hashlib.sha256(b"t1\x00exp\x001\x00ab\x00p1").digest()[:8],
        "big") % BUCKETS
    # each part of the key counts: version, tenant, node and profile each draw anew
    assert len({bucket("t1", "exp", 1, "ab", "p1"), bucket("t1", "exp", 2, "ab", "p1"),
                bucket("t2", "exp", 1, "ab", "p1"), bucket("t1", "exp", 1, "cd", "p1"),
                bucket("t1", "exp", 1, "ab", "p2")}) == 5


def test_choose_cuts_the_buckets_by_weight_in_order() -> None:
    branches = [SplitBranch(name="A", weight=30, next="a"),
                SplitBranch(name="Z", weight=0, next="z"),
                SplitBranch(name="B", weight=70, next="b")]
    assert choose(branches, 0).name == "A"
    assert choose(branches, 2_999).name == "A"
    assert choose(branches, 3_000).name == "B"
    assert choose(branches, BUCKETS - 1).name == "B"
    with pytest.raises(ValueError, match="past the branches"):
        choose(branches[:2], 5_000)


def test_shares_follow_the_weights() -> None:
    p = plan(journey(20, 30, 50))
    taken = Counter(start(p, f"p{i}", 0, {}, NOW)[0].branches["ab"] for i in range(20_000))
    for name, weight in (("A", 20), ("B", 30), ("C", 50)):
        assert abs(taken[name] / 20_000 - weight / 100) < 0.015, taken


def test_a_profile_takes_the_same_branch_on_every_redo_and_reentry() -> None:
    p = plan(journey(50, 50))
    first, effects = start(p, "p7", 0, {}, NOW)
    branch = first.branches["ab"]
    assert Step("split", "ab", branch) in effects
    assert [e.node for e in effects if isinstance(e, Send)] == [f"mail{branch}"]
    # the same input again (a redelivery, a redo after a lost race), a later entry
    assert start(p, "p7", 0, {}, NOW) == (first, effects)
    again, _ = start(p, "p7", 3, {}, NOW)
    assert again.branches == {"ab": branch}
    # recorded on the instance, kept through its moves and its storage
    moved, _ = advance(p, first, TimerFired(first.token), NOW)
    assert moved.state.value == "finished" and moved.branches == {"ab": branch}
    assert instance_from_json(instance_to_json(moved)) == moved
    old = instance_to_json(moved)
    del old["branches"]  # an instance stored before splits existed
    assert instance_from_json(old) == dataclasses.replace(moved, branches={})


def test_another_version_draws_anew() -> None:
    one, two = plan(journey(50, 50), 1), plan(journey(50, 50), 2)
    differ = [i for i in range(200) if start(one, f"p{i}", 0, {}, NOW)[0].branches
              != start(two, f"p{i}", 0, {}, NOW)[0].branches]
    assert 60 < len(differ) < 140  # about half: independent draws


def test_counts_show_each_branch() -> None:
    definition = parse_definition(journey(30, 70))
    counts = node_counts(definition, {("ab", "entered"): 10, ("ab", "transition"): 10},
                         {("ab", "A"): 3, ("ab", "B"): 7}, {})
    ab = next(n for n in counts if n["node"] == "ab")
    assert ab["branches"] == {"A": 3, "B": 7}
    assert ab["entered"] == 10 and ab["passed"] == 10
