"""Journey instances and timers on the real PostgreSQL: one conditional write decides a
race between an awaited reaction and its timeout, timers are claimed once by concurrent
claimers and never early, one live instance per profile and journey, and erasure."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from shared.adapters import journey_store, journey_version_store, personal_data
from shared.domain.journeys.advance import advance, start
from shared.domain.journeys.instance import (
    Effect,
    Instance,
    Reaction,
    SetTimer,
    State,
    TimerFired,
)
from tests.integration.instance_plans import indexes_dropped, instance_scans
from tests.unit.test_journey_advance import SEED, plan_of

NOW = datetime.now(UTC).replace(microsecond=0)


def tenant() -> str:
    return f"jrn-{uuid.uuid4().hex[:10]}"


async def test_a_reaction_and_its_timeout_racing_take_exactly_one_path(pool: asyncpg.Pool
                                                                       ) -> None:
    plan, name = plan_of(SEED), tenant()
    for round_ in range(10):
        instance, effects = start(plan, f"p{round_}", 0, {}, NOW)
        assert await _create(pool, name, instance, effects)
        opened = advance(plan, instance, Reaction(instance.sent["mail"], "opened"), NOW)
        timed = advance(plan, instance, TimerFired(instance.token), NOW)
        results = await asyncio.gather(*(
            _save(pool, name, instance.token, *outcome) for outcome in (opened, timed)))
        assert sorted(results) == [False, True], round_
        stored = await _load(pool, name, instance.instance_id)
        winner = opened[0] if results[0] else timed[0]
        assert stored == winner  # the loser left no trace
        timers = await pool.fetch("SELECT token, due_at FROM journey_timers"
                                  " WHERE tenant_id = $1 AND instance_id = $2",
                                  name, instance.instance_id)
        assert [r["token"] for r in timers] == [winner.token]  # the old wait's timer gone


async def test_a_batch_write_loses_to_a_timer_that_stored_first_and_writes_the_rest(
        pool: asyncpg.Pool) -> None:
    """save_many: the instances still at their read token are written with their
    effects; one a timer moved first comes back as lost, nothing of the batch's written."""
    plan, name = plan_of(SEED), tenant()
    started = [start(plan, f"b{n}", 0, {}, NOW) for n in range(3)]
    for instance, effects in started:
        assert await _create(pool, name, instance, effects)
    first, raced, third = (i for i, _ in started)
    timed = advance(plan, raced, TimerFired(raced.token), NOW)
    assert await _save(pool, name, raced.token, *timed)  # the timer got there first
    moves = [(i.token, *advance(plan, i, Reaction(i.sent["mail"], "opened"), NOW))
             for i in (first, raced, third)]
    async with pool.acquire() as connection:
        written, lost = await journey_store.save_many(connection, name, moves, NOW)
    assert lost == {raced.instance_id}
    assert {i.instance_id for i, _, _ in written} == {first.instance_id, third.instance_id}
    assert await _load(pool, name, raced.instance_id) == timed[0]  # untouched
    for _token, moved, _ in moves:
        if moved.instance_id != raced.instance_id:
            assert await _load(pool, name, moved.instance_id) == moved
    steps = await pool.fetch("SELECT instance_id::text, kind, node FROM journey_steps"
                             " WHERE tenant_id = $1 AND kind = 'reaction'", name)
    assert sorted(r["instance_id"] for r in steps) == sorted(
        [first.instance_id, third.instance_id])


async def _save(pool: asyncpg.Pool, name: str, token: int, instance: Instance,
                effects: list[Effect]) -> bool:
    async with pool.acquire() as connection:
        return await journey_store.save(connection, name, token, instance, effects) is not None


async def _create(pool: asyncpg.Pool, name: str, instance: Instance,
                  effects: list[Effect]) -> bool:
    async with pool.acquire() as connection:
        return await journey_store.create(connection, name, instance, effects) is not None


async def _load(pool: asyncpg.Pool, name: str, instance_id: str) -> Instance | None:
    async with pool.acquire() as connection:
        return await journey_store.load(connection, name, instance_id)


async def _live(pool: asyncpg.Pool, name: str) -> Instance | None:
    async with pool.acquire() as connection:
        return await journey_store.live(connection, name, "seed", "p1")


async def test_timers_are_claimed_once_by_concurrent_claimers_and_never_early(
        pool: asyncpg.Pool) -> None:
    plan, name = plan_of(SEED), tenant()
    due_ids = set()
    for n in range(60):
        instance, effects = start(plan, f"t{n}", 0, {}, NOW - timedelta(days=2))
        early = n % 3 == 0  # a third are due in the future
        effects = [SetTimer(instance.token, NOW + (timedelta(hours=1) if early else
                                                   -timedelta(seconds=n)))]
        assert await _create(pool, name, instance, effects)
        if not early:
            due_ids.add(instance.instance_id)

    async def claimer() -> list[str]:
        taken: list[str] = []
        async with pool.acquire() as connection:
            while True:
                async with connection.transaction():
                    claimed = (await journey_store.claim_due(connection, NOW, 7,
                                                             live_only=False)).timers
                    # Other tests' timers may be due too: claimed, but not counted here.
                    batch = [t for t in claimed if t.tenant == name]
                    taken += [t.instance_id for t in batch]
                    assert all(t.due_at <= NOW for t in claimed)
                if not claimed:
                    return taken
    claims = await asyncio.gather(claimer(), claimer(), claimer())
    every = [i for claim in claims for i in claim]
    assert len(every) == len(set(every)) and set(every) == due_ids
    left = await pool.fetchval("SELECT count(*) FROM journey_timers WHERE tenant_id = $1", name)
    assert left == 20


async def test_one_live_instance_per_profile_and_journey(pool: asyncpg.Pool) -> None:
    plan, name = plan_of(SEED), tenant()
    first, effects = start(plan, "p1", 0, {}, NOW)
    assert await _create(pool, name, first, effects)
    assert not await _create(pool, name, first, effects)  # redelivered
    again, effects = start(plan, "p1", 1, {}, NOW)
    assert not await _create(pool, name, again, effects)  # still live
    assert await _live(pool, name) == first
    ended, effects = advance(plan, first, TimerFired(first.token), NOW)  # → buy
    ended, effects = advance(plan, ended, TimerFired(ended.token), NOW)  # → timed out
    assert ended.state is State.TIMED_OUT
    assert await _save(pool, name, first.token, ended, effects)  # as read
    assert await _create(pool, name, again, [])  # now it may enter again


async def test_erasing_a_profile_removes_its_instances_and_timers(pool: asyncpg.Pool) -> None:
    plan, name = plan_of(SEED), tenant()
    instance, effects = start(plan, "gone", 0, {}, NOW)
    await _create(pool, name, instance, effects)
    async with pool.acquire() as connection:
        exported = await personal_data.export_profile(connection, name, "gone")
        assert [d["instanceId"] for d in exported["journeyInstances"]] == [instance.instance_id]
        removed = await personal_data.erase_profile(connection, name, "gone")
    assert removed["journeyInstances"] == 1
    assert await pool.fetchval("SELECT count(*) FROM journey_timers WHERE tenant_id = $1",
                               name) == 0


async def test_a_profiles_instances_in_any_state_are_found_by_an_index(
        pool: asyncpg.Pool) -> None:
    """Waiting instances are in the live index, ended ones in the ended index (migration
    058): neither has them all, so every look-up of a profile's instances in any state
    (and the waiting ones) must be answerable by them — else it reads every instance of
    every journey. Each query the adapters send is explained with sequential scans
    priced out: a query no index can answer by the profile shows one, or the primary
    key's scan of the tenant."""
    plan, name = plan_of(SEED), tenant()
    first, effects = start(plan, "p1", 0, {}, NOW)
    await _create(pool, name, first, effects)
    keys = [(name, "p1"), (name, "p2")]
    sent: list[tuple[str, tuple[object, ...]]] = []
    async with pool.acquire() as connection:
        connection.add_query_logger(lambda q: sent.append((q.query, q.args)))
        transaction = connection.transaction(isolation="repeatable_read")  # the export's
        await transaction.start()
        try:
            await journey_store.recent_of(connection, keys, NOW - timedelta(days=1))
            await journey_store.waiting_of(connection, keys)
            await journey_store.entry_history(connection, name, SEED["id"], "p1")
            await journey_version_store.instances_of(connection, name, SEED["id"], "p1")
            await journey_version_store.waiting_instances(connection, name, SEED["id"], ["p1"])
            await personal_data.export_profile(connection, name, "p1")
            await personal_data.erase_profile(connection, name, "p1")
        finally:
            await transaction.rollback()
        by_profile = [(q, a) for q, a in sent
                      if "journey_instances" in q and "profile_id = " in q]
        assert len(by_profile) >= 7, sent
        # Which index the planner picks for a tenant its statistics do not know yet (a
        # row estimated whichever index) is a toss-up: the others dropped (rolled back)
        # for the question asked here, whether these two can answer each query.
        async with indexes_dropped(
                connection, "ALTER TABLE journey_instances DROP CONSTRAINT journey_instances_pkey;"
                " DROP INDEX journey_instances_entered, journey_instances_node,"
                "  journey_instances_held, journey_instances_cohort_of"):
            for query, args in by_profile:
                used, explained = await instance_scans(connection, query, args)
                assert used, (query, explained)
                assert used <= {"journey_instances_live", "journey_instances_ended"}, (
                    query, explained)


async def _version_row(pool: asyncpg.Pool, name: str, journey: str, version: int,
                       state: str) -> None:
    await pool.execute(
        "INSERT INTO journey_versions (tenant_id, journey_id, version, mode, state, definition)"
        " VALUES ($1, $2, $3, 'live', $4, '{}')", name, journey, version, state)


async def _count(db: asyncpg.Pool | asyncpg.Connection, table: str, name: str) -> int:
    return int(await db.fetchval(f"SELECT count(*) FROM {table} WHERE tenant_id = $1", name))


async def _claim_until_none_due(connection: asyncpg.Connection, name: str) -> None:
    """Claim until none of the tenant's timers is left to claim (the stack's engine may
    claim some too), firing none of them."""
    for _ in range(20):
        async with connection.transaction():
            claimed = await journey_store.claim_due(connection, NOW, 500)
        assert not [t for t in claimed.timers if t.tenant == name]
        if not await _count(connection, "journey_timers", name):
            return


async def test_a_paused_versions_due_timers_are_set_aside_then_erased_stopped_or_put_back(
        pool: asyncpg.Pool) -> None:
    """claim_due sets a paused version's due timers aside (journey_timers_held, migration
    052) instead of leaving them for every claim to walk past; erasure and a stop delete
    them, a resume puts them back in the resuming transaction."""
    plan, name = plan_of(SEED), tenant()
    journey, version = plan.definition.id, plan.version
    await _version_row(pool, name, journey, version, "paused")
    for n in range(4):
        instance, _ = start(plan, f"h{n}", 0, {}, NOW - timedelta(days=2))
        assert await _create(pool, name, instance, [SetTimer(instance.token,
                                                             NOW - timedelta(seconds=n))])

    async with pool.acquire() as connection:
        await _claim_until_none_due(connection, name)
        assert await _count(pool, "journey_timers_held", name) == 4
        await personal_data.erase_profile(connection, name, "h0")
        assert await _count(pool, "journey_timers_held", name) == 3
        resuming = connection.transaction()  # rolled back: the stop below as well
        await resuming.start()
        try:
            await journey_version_store.move_versions(connection, name, journey, "live",
                                                      ["paused"], "live")
            assert (await _count(connection, "journey_timers", name),
                    await _count(connection, "journey_timers_held", name)) == (3, 0)
        finally:
            await resuming.rollback()
        assert await _count(pool, "journey_timers_held", name) == 3
        async with connection.transaction():
            await journey_version_store.move_versions(connection, name, journey, "live",
                                                      ["paused"], "stopped")
            stopped = await journey_version_store.stop_instances(
                connection, name, journey, [version], "the journey was stopped")
        assert len(stopped) == 3
        assert (await _count(pool, "journey_timers_held", name),
                await _count(pool, "journey_timers", name)) == (0, 0)


async def test_a_due_timer_of_a_stopped_version_is_claimed_and_dropped(pool: asyncpg.Pool
                                                                       ) -> None:
    """A straggler (a move racing the stop set it after the stop deleted the others): no
    claim fires it, and none walks past it again."""
    plan, name = plan_of(SEED), tenant()
    await _version_row(pool, name, plan.definition.id, plan.version, "stopped")
    instance, _ = start(plan, "late", 0, {}, NOW - timedelta(days=2))
    assert await _create(pool, name, instance, [SetTimer(instance.token, NOW)])
    async with pool.acquire() as connection:
        await _claim_until_none_due(connection, name)
    assert await _count(pool, "journey_timers", name) == 0
    assert await _count(pool, "journey_timers_held", name) == 0
