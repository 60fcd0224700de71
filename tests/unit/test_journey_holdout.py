"""The tenant's control group (holdout): a stable share of profiles, held out of every
live journey, counted at the entry. Pure, no services."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from shared.domain.journeys.advance import Plan, start
from shared.domain.journeys.counts import node_counts
from shared.domain.journeys.definition import parse_definition
from shared.domain.journeys.holdout import held_out
from shared.domain.journeys.instance import Send, State, Step

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
JOURNEY = {"id": "news", "entry": {"type": "audience", "audienceId": "all", "next": "mail"},
           "nodes": [{"id": "mail", "type": "email", "message": "m", "next": "done"},
                     {"id": "done", "type": "end"}]}
IDS = [f"p{i}" for i in range(20_000)]


def group(tenant: str, percent: Decimal | float) -> set[str]:
    return {p for p in IDS if held_out(tenant, p, percent)}


def test_the_share_held_out_is_the_percent_asked() -> None:
    assert group("t1", 0) == set()
    assert abs(len(group("t1", 5)) / len(IDS) - 0.05) < 0.005
    assert abs(len(group("t1", Decimal("2.5"))) / len(IDS) - 0.025) < 0.004


def test_the_same_profiles_whatever_the_journey_and_raising_the_share_keeps_them() -> None:
    five, ten = group("t1", 5), group("t1", 10)
    assert five < ten  # 5 % → 10 % adds profiles, removes none
    assert group("t2", 5) != five  # each tenant draws its own


def test_a_profile_held_out_enters_nothing_and_is_counted_at_the_entry() -> None:
    plan = Plan(parse_definition(JOURNEY), 1, tenant="t1")
    instance, effects = start(plan, "p1", 0, {}, NOW, held_out=True)
    assert instance.state == State.HELD_OUT and instance.ended and instance.node == "entry"
    assert not [e for e in effects if isinstance(e, Send)]
    assert effects == [Step("entered", "entry"),
                       Step("heldOut", "entry", "the tenant's control group")]
    others, sent = start(plan, "p2", 0, {}, NOW)
    assert others.state == State.FINISHED and [e.node for e in sent if isinstance(e, Send)] \
        == ["mail"]
    counts = node_counts(plan.definition, {("entry", "entered"): 10, ("entry", "heldOut"): 1,
                                           ("entry", "transition"): 9}, {}, {})
    assert counts[0] | {"heldOut": 1, "entered": 10, "passed": 9, "exited": 1} == counts[0]
