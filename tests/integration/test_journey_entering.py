"""Set-based entering on the real PostgreSQL and the real engine: a chunk written set-wise
(``journey_store.enter_set``) stores exactly what the per-profile path stores for the same
profiles (``start`` each, ``create_many``): instances, steps, timers — with the control
group, splits, a profile erased since the audience was read, a profile listed twice and a
re-entry (a profile still in the journey skipped, one that ended entering again). Then an
audience entered by the running engine, restarted in the middle of the entry: every
profile entered exactly once, the control group exactly Python's, the counts exact, and
the instances going on as usual (their waits' timers fire, a listen's timeout path), and
every member's step on the step topic."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import orjson
import pytest

from shared.adapters import (
    erasure,
    journey_conversion_store,
    journey_goal_store,
    journey_holdout_store,
    journey_store,
    journey_version_store,
)
from shared.adapters.audience_store import create_audience
from shared.adapters.journey_profiles import read_profiles
from shared.adapters.journey_store import DOCUMENT
from shared.adapters.key_store import create_tenant
from shared.domain.conditions.sql import SqlFilter
from shared.domain.journeys.advance import start
from shared.domain.journeys.codec import instance_from_json, instance_to_json
from shared.domain.journeys.definition import parse_definition
from shared.domain.journeys.entering import routes, set_based
from shared.domain.journeys.holdout import held_out
from shared.domain.journeys.plan import compile_plan
from shared.domain.journeys.split import bucket, choose
from shared.domain.journeys.step_events import StepEvent
from shared.topics import JOURNEY_STEPS
from tests.integration.conftest import end_offsets, eventually, stack, topic_reader
from tests.integration.instance_plans import indexes_dropped, instance_scans
from tests.integration.test_journey_engine import publish_version
from tests.unit.test_journey_entering import SPLIT, WAIT_END

NOW = datetime.now(UTC).replace(microsecond=0)  # each test's own (below)


@pytest.fixture(autouse=True)
def fresh_now() -> None:
    """Each test enters at its own instant: the module's would be minutes old when a test
    runs late in the whole suite, and the stack's engine hands a cohort's timers that have
    come due (SPLIT's five-minute wait) to their instances, every tenant's, mid-test."""
    global NOW
    NOW = datetime.now(UTC).replace(microsecond=0)


async def _tenant(pool: asyncpg.Pool, profiles: list[str]) -> str:
    name = f"jset-{uuid.uuid4().hex[:10]}"
    async with pool.acquire() as connection:
        await create_tenant(connection, name, "set-based entering tests")
        await connection.copy_records_to_table(
            "profiles", records=[(name, p, "Setville") for p in profiles],
            columns=["tenant_id", "profile_id", "city"])
    return name


async def _rows(pool: asyncpg.Pool, tenant: str) -> dict[str, Any]:
    """What was written, by profile (instance ids are the tenant's)."""
    instances = [dict(r) for r in await pool.fetch(
        "SELECT instance_id, journey_id, version, profile_id, state, node, token,"
        f" {DOCUMENT}, entered_at FROM journey_instances i WHERE tenant_id = $1", tenant)]
    for row in instances:
        assert row["document"]["instanceId"] == str(row["instance_id"])
        del row["document"]["instanceId"], row["instance_id"]
    return {
        "instances": sorted(instances, key=lambda r: (r["profile_id"], r["entered_at"],
                                                      r["state"])),
        "timers": sorted(tuple(r) for r in await pool.fetch(  # its own, or its cohort's
            "SELECT i.profile_id, t.token, t.due_at FROM journey_timers t JOIN"
            " journey_instances i USING (tenant_id, instance_id) WHERE t.tenant_id = $1"
            " UNION ALL SELECT i.profile_id, c.token, c.due_at FROM journey_cohort_timers c"
            " JOIN journey_instances i ON i.tenant_id = c.tenant_id"
            "  AND i.cohort_id = c.cohort_id AND i.token = c.token AND i.state = 'waiting'"
            " WHERE c.tenant_id = $1", tenant)),
        "steps": [tuple(r) for r in await pool.fetch(
            "SELECT profile_id, journey_id, version, at, kind, node, detail"  # or its cohort's
            " FROM journey_instance_steps WHERE tenant_id = $1 ORDER BY profile_id, id",
            tenant)],
    }


async def _per_profile(connection: asyncpg.Connection, plan: Any, tenant: str,
                       ids: list[str], entry: int, holdout: Decimal) -> None:
    """``moves.enter``'s per-profile path."""
    profiles = await read_profiles(connection, tenant, ids)
    await journey_store.create_many(connection, tenant, [
        start(plan, p, entry, profiles[p].record, NOW, held_out(tenant, p, holdout))
        for p in ids if p in profiles], NOW)


async def _set_wise(connection: asyncpg.Connection, plan: Any, tenant: str,
                    ids: list[str], entry: int, holdout: Decimal) -> list[tuple[int, int]]:
    return (await journey_store.enter_set(
        connection, tenant, plan.definition.id, plan.version,
        routes(plan, tenant, ids, entry, holdout, NOW), NOW)).written


async def _forget(pool: asyncpg.Pool, tenant: str) -> None:
    for table in ("journey_timers", "journey_steps", "journey_instances", "journey_cohorts",
                  "journey_cohort_timers", "journey_cohort_steps"):
        await pool.execute(f"DELETE FROM {table} WHERE tenant_id = $1", tenant)


async def test_set_wise_entering_writes_what_the_per_profile_path_writes(
        pool: asyncpg.Pool) -> None:
    profiles = [f"p{i:03d}" for i in range(200)]
    tenant = await _tenant(pool, profiles)  # one tenant: the draws are the tenant's
    holdout = Decimal("12.5")
    plan = compile_plan(parse_definition(SPLIT), 1, {}, {}, tenant=tenant)
    assert set_based(plan)
    found: list[dict[str, Any]] = []
    written: list[list[tuple[int, int]]] = []
    async with pool.acquire() as connection:
        for enter in (_per_profile, _set_wise):
            # round 0 for the first 40, then round 1 for all: those still waiting are
            # skipped, those that ended (held out, branch C) enter again; a profile that
            # does not exist (erased) and one listed twice
            first = await enter(connection, plan, tenant, profiles[:40], 0, holdout)
            again = await enter(connection, plan, tenant,
                                ["ghost", *profiles, profiles[7]], 1, holdout)
            found.append(await _rows(pool, tenant))
            if enter is _set_wise:
                written += [first, again]
                shape = await _shape(pool, tenant)
                # the round entered again (a redelivered chunk): nothing more, no cohort
                assert not any(n for _, n in await enter(
                    connection, plan, tenant, ["ghost", *profiles, profiles[7]], 1, holdout))
                assert await _shape(pool, tenant) == shape
            await _forget(pool, tenant)
    expected, got = found
    assert got == expected
    assert 200 < len(got["instances"]) < 240 and got["timers"] and got["steps"]
    states = Counter(r["state"] for r in got["instances"])
    assert states["heldOut"] and states["finished"] and states["waiting"]
    # what enter_set says it stored, by template: the instances of each round
    assert sum(n for _, n in written[0]) == 40
    assert sum(n for _, n in written[1]) == len(got["instances"]) - 40
    # set-wise, no instance has a document of its own: each names a cohort of its chunk
    # and template, and every cohort stored has instances
    used = sum(1 for _, n in written[0] + written[1] if n)
    # and no timer or step of its own: its cohort's, one a cohort and wait or step, the
    # step's members counted
    assert shape["cohort_timers"] and shape["cohort_timers"] <= used, shape
    assert shape["cohort_steps"] >= used and shape["members"] == len(got["steps"]), shape
    assert shape == {"instances": len(got["instances"]), "slim": len(got["instances"]),
                     "cohorts": used, "stored": used, "orphans": 0, "timers": 0,
                     "cohort_timers": shape["cohort_timers"], "steps": 0,
                     "cohort_steps": shape["cohort_steps"], "members": len(got["steps"])}, shape


async def _shape(pool: asyncpg.Pool, tenant: str) -> dict[str, int]:
    return dict(await pool.fetchrow(
        "SELECT count(*) AS instances, count(*) FILTER (WHERE document IS NULL) AS slim,"
        " count(DISTINCT cohort_id) AS cohorts,"
        " (SELECT count(*) FROM journey_cohorts WHERE tenant_id = $1) AS stored,"
        " (SELECT count(*) FROM journey_timers WHERE tenant_id = $1) AS timers,"
        " (SELECT count(*) FROM journey_cohort_timers WHERE tenant_id = $1) AS cohort_timers,"
        " (SELECT count(*) FROM journey_steps WHERE tenant_id = $1) AS steps,"
        " (SELECT count(*) FROM journey_cohort_steps WHERE tenant_id = $1) AS cohort_steps,"
        " (SELECT COALESCE(sum(members), 0)::int FROM journey_cohort_steps WHERE tenant_id = $1)"
        "   AS members,"
        " count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM journey_cohorts c"
        "   WHERE c.tenant_id = i.tenant_id AND c.cohort_id = i.cohort_id)) AS orphans"
        " FROM journey_instances i WHERE tenant_id = $1", tenant))


@pytest.mark.parametrize("statement", ["_ENTER_SET_PLAIN", "_ENTER_SET_FAST", "_ENTER_SET"])
async def test_a_chunk_is_planned_for_thousands_of_rows(pool: asyncpg.Pool,
                                                        statement: str) -> None:
    """A chunk from the middle of a large audience: no nested loop (the planner guesses
    a row or two from the CTEs: a nested loop of the chunk over its stored instances was
    20 s a chunk of 10,000), and the profiles read from the chunk's range of ids only
    (not the tenant's from its first id on); the statement tried first has no ``ON
    CONFLICT`` (no arbiter, no speculative insertion), the second the live index alone
    as its arbiter."""
    people = [f"r{i:06d}" for i in range(30_000)]
    tenant = await _tenant(pool, people)
    await pool.execute("ANALYZE profiles")
    plan = compile_plan(parse_definition(SPLIT), 1, {}, {}, tenant=tenant)
    chunk = routes(plan, tenant, people[15_000:25_000], 0, Decimal(5), NOW)
    async with pool.acquire() as connection:
        # Rolled back: EXPLAIN ANALYZE writes the chunk (instances of no version, whose
        # due timers every claim of the stack's engine would walk past).
        transaction = connection.transaction()
        await transaction.start()
        try:
            # the chunk before it entered, and the journey's statistics taken (the first
            # chunks of a journey have none: see "Not done yet", P7 entering)
            await journey_store.enter_set(connection, tenant, "ab", 1, routes(
                plan, tenant, people[5_000:15_000], 0, Decimal(5), NOW), NOW)
            await connection.execute("ANALYZE journey_instances")
            await connection.execute(journey_store.ENTER_SET_PLANNING)
            explained = [r[0] for r in await connection.fetch(
                f"EXPLAIN (ANALYZE) {getattr(journey_store, statement)}",
                *journey_store.enter_set_args(tenant, "ab", 1, chunk, NOW))]
        finally:
            await transaction.rollback()
    assert not any("Nested Loop" in line for line in explained), explained
    # by the primary key (an index-only scan, or a bitmap scan when the planner prefers)
    at = next((i for i, line in enumerate(explained) if " profiles_pkey" in line), None)
    assert at is not None, explained
    assert "actual" in explained[at] and " rows=10000 " in explained[at], explained
    assert "profile_id >= " in explained[at + 1], explained  # Index Cond: the range
    assert not any("Rows Removed by Filter" in line for line in explained[at:at + 4])
    # the check of a live instance (held-out profiles: the tenant's control group),
    # within the chunk's range of ids too, not every live instance of the journey
    live = [i for i, line in enumerate(explained) if " on journey_instances live " in line]
    assert live and all("profile_id >= " in explained[i + 1] for i in live), explained
    arbiters = [line for line in explained if "Conflict Arbiter Indexes" in line]
    # the live index the second statement's only arbiter (the primary key's cost an
    # eighth); the last one's arbiters are every unique index (none named: no target)
    assert [line.split(": ", 1)[1] for line in arbiters] == (
        ["journey_instances_live"] if statement == "_ENTER_SET_FAST" else []), explained
    # the instances' insert (the cohorts' and timers' have ON CONFLICT of their own)
    at = next(i for i, line in enumerate(explained) if "Insert on journey_instances" in line)
    resolving = "Conflict Resolution" in explained[at + 1]
    assert resolving == (statement != "_ENTER_SET_PLAIN"), explained


async def test_an_audience_entered_set_wise_across_an_engine_restart(
        pool: asyncpg.Pool) -> None:
    people = [f"q{i:04d}" for i in range(1500)]
    tenant = await _tenant(pool, people)
    holdout = Decimal(10)
    async with pool.acquire() as connection:
        await journey_holdout_store.set_percent(connection, tenant, holdout)
        audience = await create_audience(connection, tenant, "set-wise",
                                         {"path": "city", "op": "eq", "value": "Setville"})
    journey = {
        "id": "setwise",
        "entry": {"type": "audience", "audienceId": audience["audience_id"], "rate": 300,
                  "next": "ab"},
        "nodes": [
            {"id": "ab", "type": "split", "branches": [
                {"name": "A", "weight": 50, "next": "pause"},
                {"name": "B", "weight": 50, "next": "listen"}]},
            {"id": "pause", "type": "wait", "duration": "PT1H", "next": "done"},
            {"id": "listen", "type": "listen",
             "branches": [{"event": {"eventId": "JEVnever"}, "next": "done"}],
             "timeout": {"after": "PT1H", "next": "late"}},
            {"id": "late", "type": "wait", "duration": "PT1M", "next": "done"},
            {"id": "done", "type": "end"}]}
    plan = replace(compile_plan(parse_definition(journey), 1, {}, {}, tenant=tenant))
    assert set_based(plan)
    before = await end_offsets(JOURNEY_STEPS)
    await publish_version(pool, tenant, journey, speed=3600)  # an hour in a second

    async def entered() -> int:
        return int(await pool.fetchval(
            "SELECT count(*) FROM journey_instances WHERE tenant_id = $1", tenant))

    async def some_but_not_all() -> int | None:
        n = await entered()
        assert n < len(people), "entered before the restart: 300/s for 1,500 is 5 s"
        return n or None
    await eventually(some_but_not_all, "the first chunks entered", 30)
    await asyncio.to_thread(stack, "restart", "journeys")

    async def all_ended() -> bool:
        return await pool.fetchval(
            "SELECT count(*) FROM journey_instances WHERE tenant_id = $1"
            " AND state <> 'waiting'", tenant) == len(people)
    await eventually(all_ended, "every profile entered and its instance ended", 90)

    held = {p for p in people if held_out(tenant, p, holdout)}
    branch = {p: choose(plan.node("ab").branches,  # type: ignore[attr-defined]
                        bucket(tenant, "setwise", 1, "ab", p)).name
              for p in people if p not in held}
    rows = await pool.fetch(
        "SELECT i.profile_id, i.state, s.node, s.kind, s.detail FROM journey_instance_steps s"
        " JOIN journey_instances i USING (tenant_id, instance_id)"
        " WHERE s.tenant_id = $1", tenant)
    steps: dict[str, Counter[tuple[str, str, str]]] = {}
    for row in rows:
        steps.setdefault(row["profile_id"], Counter())[
            (row["node"], row["kind"], row["detail"])] += 1
    assert set(steps) == set(people)
    for profile_id, done in steps.items():
        assert all(n == 1 for n in done.values()), (profile_id, done)  # nothing twice
        if profile_id in held:
            assert set(done) == {("entry", "entered", ""),
                                 ("entry", "heldOut", "the tenant's control group")}
        elif branch[profile_id] == "A":
            assert ("ab", "split", "A") in done and ("pause", "transition", "done") in done
            assert ("done", "finished", "") in done
        else:
            assert ("listen", "timedOut", "") in done and ("late", "entered", "") in done
            assert ("done", "finished", "") in done
    async with pool.acquire() as connection:
        counted, details, waiting = await journey_version_store.node_counts(
            connection, tenant, "setwise", 1)
    assert counted[("entry", "entered")] == len(people)
    assert counted[("entry", "heldOut")] == len(held) > 0
    assert details[("ab", "A")] == sum(b == "A" for b in branch.values())
    assert details[("ab", "B")] == sum(b == "B" for b in branch.values())
    assert counted[("done", "finished")] == len(people) - len(held)
    assert waiting == {}
    assert await pool.fetchval("SELECT count(*) FROM journey_timers t JOIN journey_instances"
                               " i USING (tenant_id, instance_id) WHERE t.tenant_id = $1",
                               tenant) == 0
    # Every member's step on the topic, none that is not stored: the cohorts the engine
    # entered whole with their members kept for its relay, those of the chunks in flight
    # at the restart read back from their instances (a step published twice is allowed
    # after a restart; the same stepId then)
    stored = {(r["id"], r["instance_id"]) for r in await pool.fetch(
        "SELECT id, instance_id::text FROM journey_instance_steps WHERE tenant_id = $1",
        tenant)}
    published: set[tuple[int, str]] = set()
    async with topic_reader(JOURNEY_STEPS, before) as consumer:
        async def relayed() -> bool:
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                for record in batch:
                    event = StepEvent.model_validate(orjson.loads(record.value))
                    if event.tenant == tenant:
                        published.update((s.stepId, m.instanceId) for s in event.steps
                                         for m in event.members)
            return published >= stored
        await eventually(relayed, "every member's step on parcours.journey-steps.v3", 30)
    assert published == stored


async def _entered_set_wise(pool: asyncpg.Pool, prefix: str, count: int
                            ) -> tuple[str, Any, list[str]]:
    """A tenant of ``count`` profiles, entered set-wise in SPLIT's version 1 (not
    published: the engine leaves its instances alone)."""
    profiles = [f"{prefix}{i:02d}" for i in range(count)]
    tenant = await _tenant(pool, profiles)
    plan = compile_plan(parse_definition(SPLIT), 1, {}, {}, tenant=tenant)
    async with pool.acquire() as connection:
        await _set_wise(connection, plan, tenant, profiles, 0, Decimal(0))
    return tenant, plan, profiles


async def test_instances_of_a_cohort_are_read_loaded_exported_and_stopped_whole(
        pool: asyncpg.Pool) -> None:
    """Instances entered set-wise have no document of their own: every reader gets their
    cohort's with their ids, and stopping one writes its own document, stopped."""
    tenant, plan, _ = await _entered_set_wise(pool, "k", 30)
    async with pool.acquire() as connection:
        rows = await connection.fetch(
            "SELECT profile_id, instance_id::text, document FROM journey_instances"
            " WHERE tenant_id = $1 AND state = 'waiting' ORDER BY profile_id", tenant)
        assert rows and all(r["document"] is None for r in rows)
        profile_id, instance_id = rows[0]["profile_id"], rows[0]["instance_id"]

        loaded = await journey_store.load(connection, tenant, instance_id)
        live = await journey_store.live(connection, tenant, plan.definition.id, profile_id)
        assert loaded is not None and loaded == live
        assert (loaded.profile_id, loaded.instance_id) == (profile_id, instance_id)
        exported = await erasure.export_profile(connection, tenant, profile_id)
        assert [d["instanceId"] for d in exported["journeyInstances"]] == [instance_id]
        assert exported["journeyInstances"][0] == instance_to_json(loaded)

        stopped = await journey_version_store.stop_instances(
            connection, tenant, plan.definition.id, [1], "stopped by a test", profile_id)
        assert [str(r["instance_id"]) for r in stopped] == [instance_id]
        document = await connection.fetchval(
            "SELECT document FROM journey_instances WHERE tenant_id = $1"
            " AND instance_id = $2", tenant, instance_id)
        assert document is not None  # its own now
        after = instance_from_json(document)
        assert (after.state.value, after.reason) == ("stopped", "stopped by a test")
        assert (after.profile_id, after.instance_id, after.node) == (
            profile_id, instance_id, loaded.node)
        others = await journey_store.load(connection, tenant, rows[1]["instance_id"])
        assert others is not None and others.state.value == "waiting"


async def test_a_cohorts_steps_are_each_members_history_export_and_count(
        pool: asyncpg.Pool) -> None:
    """A cohort's steps are one row a step for all its members: each member's history
    and export show them as its own, the per-node counts count every member, and erasing
    one takes its steps out of all three."""
    tenant, plan, profiles = await _entered_set_wise(pool, "h", 20)
    journey_id = plan.definition.id
    async with pool.acquire() as connection:
        async def history(profile_id: str) -> list[tuple[str, str, str]]:
            found = await journey_version_store.instances_of(
                connection, tenant, journey_id, profile_id)
            return [(s["node"], s["kind"], s["detail"]) for i in found for s in i["steps"]]

        async def entered() -> int:
            counted, _, _ = await journey_version_store.node_counts(
                connection, tenant, journey_id, 1)
            return counted[("entry", "entered")]

        first, second = await history(profiles[0]), await history(profiles[1])
        assert first and first[0] == ("entry", "entered", ""), first
        assert not await connection.fetchval(
            "SELECT count(*) FROM journey_steps WHERE tenant_id = $1", tenant)
        exported = await erasure.export_profile(connection, tenant, profiles[0])
        instance_id = exported["journeyInstances"][0]["instanceId"]
        assert [(s["node"], s["kind"], s["detail"], s["instance_id"])
                for s in exported["journeySteps"]] == [(*s, instance_id) for s in first]
        assert await entered() == len(profiles)

        removed = await erasure.erase_profile(connection, tenant, profiles[0])
        assert (removed["journeyInstances"], removed["journeySteps"]) == (1, len(first))
        assert await history(profiles[0]) == []
        assert (await erasure.export_profile(connection, tenant, profiles[0]))[
            "journeySteps"] == []
        assert await history(profiles[1]) == second
        assert await entered() == len(profiles) - 1


@pytest.mark.parametrize("enter", [_per_profile, _set_wise])
async def test_a_profile_in_the_journey_is_skipped_where_its_entry_would_end_at_once(
        pool: asyncpg.Pool, enter: Any) -> None:
    """An entry that ends as it enters (held out: the tenant's control group grown to
    everyone since the last round) is no live instance, so the unique index on live
    ones let it in beside the profile's live one: the profile counted in the control
    group while in the journey. It is skipped, as any entry of a profile in the journey."""
    profiles = [f"s{i:02d}" for i in range(6)]
    tenant = await _tenant(pool, profiles)
    plan = compile_plan(parse_definition(WAIT_END), 1, {}, {}, tenant=tenant)
    async with pool.acquire() as connection:
        await enter(connection, plan, tenant, profiles[:1], 0, Decimal(0))
        await enter(connection, plan, tenant, profiles, 1, Decimal(100))
    states = Counter((r["profile_id"], r["state"]) for r in await pool.fetch(
        "SELECT profile_id, state FROM journey_instances WHERE tenant_id = $1", tenant))
    assert states == Counter({(profiles[0], "waiting"): 1,
                              **{(p, "heldOut"): 1 for p in profiles[1:]}}), states


async def test_a_chunk_entered_again_later_puts_a_profile_it_skipped_in_a_cohort_of_its_own(
        pool: asyncpg.Pool) -> None:
    """A chunk entered again (its progress not saved before a crash) stores a profile the
    first time skipped — in the journey then, finished since — in a cohort of its own:
    not in the first one's, whose steps would then be written again for every member."""
    profiles = [f"c{i:02d}" for i in range(10)]
    tenant = await _tenant(pool, profiles)
    plan = compile_plan(parse_definition(WAIT_END), 1, {}, {}, tenant=tenant)
    none = Decimal(0)
    async with pool.acquire() as connection:
        # in the journey (its first wait) when the chunk comes
        await _per_profile(connection, plan, tenant, profiles[:1], 0, none)
        chunk = routes(plan, tenant, profiles, 1, none, NOW)  # one template, one cohort
        assert set(chunk.groups) == {0}
        first = await journey_store.enter_set(connection, tenant, plan.definition.id, 1,
                                              chunk, NOW)
        # all but the one in the journey: not whole, the relay reads its members back
        assert (first.written, first.whole) == ([(0, len(profiles) - 1)], [])
        await connection.execute(
            "UPDATE journey_instances SET state = 'finished' WHERE tenant_id = $1"
            " AND cohort_id IS NULL", tenant)
        later = NOW + timedelta(seconds=1)
        again = await journey_store.enter_set(
            connection, tenant, plan.definition.id, 1,
            routes(plan, tenant, profiles, 1, none, later), later)
        assert (again.written, again.whole) == ([(0, 1)], [])
    cohorts = {r["profile_id"]: r["cohort_id"] for r in await pool.fetch(
        "SELECT profile_id, cohort_id FROM journey_instances WHERE tenant_id = $1"
        " AND cohort_id IS NOT NULL", tenant)}
    assert len(cohorts) == len(profiles)
    assert len(set(cohorts.values())) == 2
    assert cohorts[profiles[0]] not in {cohorts[p] for p in profiles[1:]}
    steps = Counter((r["instance_id"], r["kind"], r["node"], r["detail"]) for r in await pool.fetch(
        "SELECT instance_id, kind, node, detail FROM journey_instance_steps"
        " WHERE tenant_id = $1", tenant))
    assert steps and set(steps.values()) == {1}, steps  # no step twice


async def test_a_cohorts_timer_comes_due_for_its_instances_still_waiting_on_it(
        pool: asyncpg.Pool) -> None:
    """A cohort's timer, once due, becomes a timer of each of its instances still waiting
    on its token — not of one stopped since — and the next due time sees it before."""
    tenant, plan, _ = await _entered_set_wise(pool, "w", 40)
    async with pool.acquire() as connection:
        timers = await connection.fetch(
            "SELECT cohort_id, token, due_at FROM journey_cohort_timers WHERE tenant_id = $1",
            tenant)
        waiting = {r["profile_id"]: r["instance_id"] for r in await connection.fetch(
            "SELECT profile_id, instance_id FROM journey_instances WHERE tenant_id = $1"
            " AND state = 'waiting'", tenant)}
        assert timers and waiting
        late = datetime(2999, 1, 1, tzinfo=UTC)  # no other timer is due that late
        moved = connection.transaction()  # rolled back
        await moved.start()
        try:
            await connection.execute(
                "UPDATE journey_cohort_timers SET due_at = $2 WHERE tenant_id = $1"
                " AND cohort_id = $3 AND token = $4", tenant, late,
                timers[0]["cohort_id"], timers[0]["token"])
            assert await journey_store.next_due(connection, late - timedelta(days=1)) == late
        finally:
            await moved.rollback()
        stopped = sorted(waiting)[0]
        await journey_version_store.stop_instances(
            connection, tenant, plan.definition.id, [1], "stopped by a test", stopped)
        await journey_store.expand_cohort_timers(connection, NOW)  # ours not due yet
        assert not await connection.fetchval(
            "SELECT count(*) FROM journey_timers WHERE tenant_id = $1", tenant)
        handed = (0, 0)
        while True:  # every tenant's due: ours among them
            taken = await journey_store.expand_cohort_timers(
                connection, max(t["due_at"] for t in timers))
            if taken == (0, 0):
                break
            handed = (handed[0] + taken[0], handed[1] + taken[1])
        own = {(r["instance_id"], r["token"], r["due_at"]) for r in await connection.fetch(
            "SELECT instance_id, token, due_at FROM journey_timers WHERE tenant_id = $1",
            tenant)}
        assert not await connection.fetchval(
            "SELECT count(*) FROM journey_cohort_timers WHERE tenant_id = $1", tenant)
    assert handed[0] >= len(timers) and handed[1] >= len(own)
    assert {i for i, _, _ in own} == {i for p, i in waiting.items() if p != stopped}
    assert all(due in {t["due_at"] for t in timers} for _, _, due in own)


async def test_a_versions_instances_are_read_from_its_own_rows_and_from_its_cohorts(
        pool: asyncpg.Pool) -> None:
    """A version's node and entered-at indexes hold only the instances entered one by one
    (migration 059); its cohorts' members are read through its cohorts. Every reading of
    a version's instances counts both sides — the waiting by node, the versions' counts,
    the conversion cohort, the goal sweep, a resume's look, stopping, finishing — and
    each side is answerable by its index: explained with sequential scans priced out and
    the other indexes dropped (rolled back), each scan of the instances is by the node,
    entered-at or cohort index."""
    profiles = [f"v{i:02d}" for i in range(30)]
    tenant = await _tenant(pool, profiles)
    plan = compile_plan(parse_definition(WAIT_END), 1, {}, {}, tenant=tenant)
    journey, none = plan.definition.id, Decimal(0)
    sent: list[tuple[str, tuple[object, ...]]] = []
    async with pool.acquire() as connection:
        await _per_profile(connection, plan, tenant, profiles[:10], 0, none)
        assert await _set_wise(connection, plan, tenant, profiles[10:], 0, none) == [(0, 20)]
        transaction = connection.transaction()  # the version unseen by the stack's engine
        await transaction.start()
        try:
            await journey_version_store.create_version(connection, tenant, journey,
                                                       mode="live", definition=WAIT_END)
            await connection.execute("UPDATE journey_versions SET entry_done = true"
                                     " WHERE tenant_id = $1", tenant)
            connection.add_query_logger(lambda q: sent.append((q.query, q.args)))
            _, _, waiting = await journey_version_store.node_counts(connection, tenant,
                                                                    journey, 1)
            assert waiting == {"pause": 30}
            [version] = await journey_version_store.versions_of(connection, tenant, journey)
            assert (version["instances"], version["waiting"]) == (30, 30)
            counts = await journey_conversion_store.goal_counts(
                connection, tenant, journey, 1, "g", NOW - timedelta(hours=1),
                NOW + timedelta(hours=1))
            assert counts.entered.out_of == 30 and counts.nodes["pause"].out_of == 30
            met = await journey_goal_store.meeting(
                connection, tenant, journey, 1, "g", NOW - timedelta(hours=1),
                SqlFilter("TRUE", ()), False, 100)
            assert sorted(i.profile_id for i in met) == profiles
            stopped = await journey_version_store.stop_instances(connection, tenant, journey,
                                                                 [1], "test")
            assert sorted(r["profile_id"] for r in stopped) == profiles
            await journey_version_store.settle_finished(connection, tenant, journey)
            assert await connection.fetchval(
                "SELECT state FROM journey_versions WHERE tenant_id = $1", tenant) == "finished"
        finally:
            await transaction.rollback()
        of_version = [(q, a) for q, a in sent if "journey_cohorts c JOIN journey_instances" in q]
        assert len(of_version) >= 6, sent
        # (the primary key's place taken by an index that finds an instance by its id
        # only: a stop takes each by its id, no query here may take all the tenant's)
        async with indexes_dropped(
                connection, "ALTER TABLE journey_instances DROP CONSTRAINT journey_instances_pkey;"
                " CREATE INDEX journey_instances_by_id ON journey_instances (instance_id);"
                " DROP INDEX journey_instances_live, journey_instances_ended,"
                "  journey_instances_held"):
            for query, args in of_version:
                used, explained = await instance_scans(connection, query, args)
                assert "journey_instances_cohort_of" in used, (query, explained)
                assert used <= {"journey_instances_node", "journey_instances_entered",
                                "journey_instances_cohort_of", "journey_instances_by_id"}, (
                    query, explained)
