"""Journey goals on a profile condition (issue 13) on the real stack: profiles enter a
journey (a 50/50 split, then a long wait), some are changed through the profile API to
meet a goal's condition, and the engine's goal sweep (every PARCOURS_JOURNEY_GOAL_SWEEP_S,
10 s by default) writes their goal steps: the conversion report counts each profile once
per goal, an ``exit`` goal takes its profile out of the wait, and a profile meeting the
condition after the goal's ``within`` does not convert (while the same condition with a
longer ``within`` does: the proof that a sweep saw it). The report's differences (the
split's A against B) agree with scipy on the branch counts it gives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson

from shared.domain.journeys.conversion import Share, compare
from tests.integration.conftest import eventually
from tests.integration.test_journey_activities import (
    COHORT,
    declare,
    instance,
    person,
    put_profile,
    reaches,
    run,
)
from tests.integration.test_journey_engine import Tenant
from tests.integration.test_journey_engine import tenant as tenant  # the fixture

SOON_S = 40  # the `buy` goal's within: long enough for a sweep or two after the updates
SWEEP_DEADLINE_S = 45  # a sweep every 10 s, and the engine's other work beside it


async def change(t: Tenant, profile_id: str, **attributes: Any) -> None:
    """Through the profile API (PATCH), as any client would: nothing tells the engine."""
    response = await t.profiles.patch(f"/v1/profiles/{profile_id}",
                                      json={"attributes": attributes})
    assert response.status_code == 200, response.text


async def conversion(t: Tenant) -> dict[str, dict[str, Any]]:
    answer = await t.admin.get("/journeys/gc/conversion")
    assert answer.status_code == 200, answer.text
    return {g["goal"]: g for g in answer.json()["goals"]}


async def goal_steps(pool: asyncpg.Pool, t: Tenant) -> list[tuple[str, str]]:
    rows = await pool.fetch(
        "SELECT profile_id, node FROM journey_steps WHERE tenant_id = $1"
        " AND journey_id = 'gc' AND kind = 'goal' ORDER BY profile_id, node", t.name)
    return [(r["profile_id"], r["node"]) for r in rows]


async def test_profile_condition_goals_convert_once_exit_and_respect_within(
        pool: asyncpg.Pool, tenant: Tenant) -> None:
    await declare(tenant, {"purchases": "integer", "tier": "string"})
    profile_ids = [f"c{i}" for i in range(8)]
    for profile_id in profile_ids:
        await put_profile(tenant, profile_id, person(profile_id, attributes={"purchases": 0}))
    bought = {"path": "attributes.purchases", "op": "ge", "value": 1}
    await run(pool, tenant, "gc", "ab", [
        {"id": "ab", "type": "split", "branches": [{"name": "A", "weight": 50, "next": "hold"},
                                                   {"name": "B", "weight": 50, "next": "hold"}]},
        {"id": "hold", "type": "wait", "duration": "PT1H", "next": "done"},
        {"id": "done", "type": "end"}], speed=1, goals=(
        {"id": "buy", "condition": bought, "within": f"PT{SOON_S}S"},
        {"id": "buyEver", "condition": bought, "within": "P7D"},
        {"id": "gold", "condition": {"path": "attributes.tier", "op": "eq", "value": "gold"},
         "within": "P7D", "exit": True}))
    await reaches(pool, tenant, "gc", {p: ("waiting", "hold") for p in profile_ids}, 30)
    entered = max(r["entered_at"] for r in await pool.fetch(
        "SELECT entered_at FROM journey_instances WHERE tenant_id = $1 AND journey_id = 'gc'",
        tenant.name))

    for profile_id in ("c0", "c1", "c2"):
        await change(tenant, profile_id, purchases=1)
    await change(tenant, "c3", tier="gold")

    async def swept() -> dict[str, dict[str, Any]] | None:
        found = await conversion(tenant)
        return found if (found["buy"]["converted"], found["gold"]["converted"]) == (3, 1) \
            else None
    report = await eventually(swept, "the sweep's first conversions", SWEEP_DEADLINE_S)
    assert datetime.now(UTC) < entered + timedelta(seconds=SOON_S), \
        "the sweep came after the goal's within: the test's timing does not hold"
    assert report["buy"]["entered"] == 8 and report["buy"]["rate"] == round(3 / 8, 4)
    gold = await instance(pool, tenant, "gc", "c3")
    assert gold is not None and gold["state"] == "exited"
    document = gold["document"]
    assert (orjson.loads(document) if isinstance(document, str) else document)["reason"] \
        == "goal gold"
    for profile_id in ("c0", "c1", "c2", "c4"):  # a goal without exit moves nothing
        row = await instance(pool, tenant, "gc", profile_id)
        assert row is not None and (row["state"], row["node"]) == ("waiting", "hold")

    # c0 buys again (still meets the condition), c4 buys once `buy`'s within has passed.
    await change(tenant, "c0", purchases=2)
    await eventually(lambda: _after(entered + timedelta(seconds=SOON_S + 1)),
                     "the `buy` goal's within passed", SOON_S + 5)
    await change(tenant, "c4", purchases=1)

    async def late() -> dict[str, dict[str, Any]] | None:
        found = await conversion(tenant)
        return found if found["buyEver"]["converted"] == 4 else None
    report = await eventually(late, "c4 reaching the longer goal", SWEEP_DEADLINE_S)
    assert report["buy"]["converted"] == 3  # the same sweep found c4 past `buy`'s within
    assert report["gold"]["converted"] == 1
    assert await goal_steps(pool, tenant) == sorted(
        [(p, "buy") for p in ("c0", "c1", "c2")] + [(p, "buyEver") for p in
                                                     ("c0", "c1", "c2", "c4")]
        + [("c3", "gold")])  # once each, c0's second purchase included

    # The split's difference, A against B, as scipy gives it on the report's own counts.
    buy = report["buy"]
    a, b = (buy["branches"]["ab"].get(n, {"entered": 0, "converted": 0}) for n in "AB")
    assert a["entered"] + b["entered"] == 8
    expected = compare(Share(a["entered"], a["converted"]), Share(b["entered"], b["converted"]))
    found = buy["differences"]["splits"]["ab"]
    assert (found["a"], found["b"]) == ("A", "B")
    if expected is None:
        assert found["difference"] is None
    else:
        assert found["difference"] == round(expected.difference, 4)
        assert found["pValue"] == round(expected.p_value, 4)
    assert buy["differences"]["heldOut"]["difference"] is None  # no control group here


async def _after(moment: datetime) -> bool:
    return datetime.now(UTC) > moment


async def test_a_goal_condition_on_an_unknown_profile_path_is_refused_naming_the_goal(
        tenant: Tenant) -> None:
    draft = await tenant.admin.put("/journeys/bad", json={
        "id": "bad", "entry": {"type": "audience", "audienceId": "x", "next": "done"},
        "nodes": [{"id": "done", "type": "end"}],
        "goals": [{"id": "buy", "within": "P7D",
                   "condition": {"path": "attributes.nope", "op": "eq", "value": 1}}]})
    assert draft.status_code == 201, draft.text
    problems = [p for p in draft.json()["problems"] if p["node"] == "goal buy"]
    assert problems and "condition" in problems[0]["message"], draft.json()["problems"]
    both = await tenant.admin.put("/journeys/bad", json={
        "id": "bad", "entry": {"type": "audience", "audienceId": "x", "next": "done"},
        "nodes": [{"id": "done", "type": "end"}],
        "goals": [{"id": "buy", "within": "P7D", "eventId": "JEVorder",
                   "condition": {"path": "lastName", "op": "eq", "value": COHORT}}]})
    assert both.status_code == 422, both.text
    assert "goals" in str(both.json()) and "exactly one of" in str(both.json())


async def test_a_profile_the_engine_updates_reaches_its_goal_without_waiting_for_the_period(
        pool: asyncpg.Pool, tenant: Tenant) -> None:
    """updateProfile wakes the sweep: the goal step follows the profile's update within a
    few seconds, where the period alone (10 s) would most often take longer."""
    await declare(tenant, {"purchases": "integer"})
    profile_ids = [f"u{i}" for i in range(3)]
    for profile_id in profile_ids:
        await put_profile(tenant, profile_id, person(profile_id, attributes={"purchases": 0}))
    await run(pool, tenant, "gu", "mark", [
        {"id": "mark", "type": "updateProfile", "set": {"attributes": {"purchases": 1}},
         "next": "hold"},
        {"id": "hold", "type": "wait", "duration": "PT1H", "next": "done"},
        {"id": "done", "type": "end"}], speed=1, goals=(
        {"id": "buy", "condition": {"path": "attributes.purchases", "op": "ge", "value": 1},
         "within": "P7D"},))

    async def reached() -> list[asyncpg.Record] | None:
        rows = await pool.fetch(
            "SELECT profile_id, min(at) FILTER (WHERE kind = 'profileUpdated') AS updated,"
            " min(at) FILTER (WHERE kind = 'goal') AS goal FROM journey_steps"
            " WHERE tenant_id = $1 AND journey_id = 'gu' GROUP BY profile_id", tenant.name)
        # both steps: the profileUpdated step is written after the profile is (its own
        # transaction), which wakes the sweep — the goal's step may be committed first
        return rows if len(rows) == 3 and all(r["goal"] and r["updated"] for r in rows) \
            else None
    rows = await eventually(reached, "the goal reached after updateProfile", SWEEP_DEADLINE_S)
    lags = [(r["goal"] - r["updated"]).total_seconds() for r in rows]
    assert max(lags) < 4, lags
