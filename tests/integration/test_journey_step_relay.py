"""The step relay's read (services/journeys/step_relay.py) on the real PostgreSQL: steps
come in transaction-id order as numbers (9 before 10, 99 before 100; as text they came
the other way, and the watermark then skipped the smaller), read through the
(tx, id) index rather than by sorting the table, a profile's steps and its cohort's in
one order. And a cohort's steps as the running engine's relay publishes them: each member
once a step, in records keyed to the members' own partitions (a cohort's consecutive steps in
one record a partition)."""

from __future__ import annotations

import uuid
from collections import Counter
from decimal import Decimal

import asyncpg
import orjson

from services.journeys.step_relay import _MEMBERS, _READ
from shared.adapters import journey_store
from shared.adapters.producer import key_partition
from shared.domain.journeys.definition import parse_definition
from shared.domain.journeys.entering import routes
from shared.domain.journeys.plan import compile_plan
from shared.domain.journeys.step_events import StepEvent
from shared.topics import JOURNEY_STEPS
from tests.integration.conftest import end_offsets, eventually, topic_reader
from tests.integration.instance_plans import instance_scans
from tests.integration.test_journey_entering import NOW, _entered_set_wise, _tenant
from tests.unit.test_journey_entering import SPLIT


async def test_steps_are_read_in_transaction_id_order_through_the_index(
        pool: asyncpg.Pool) -> None:
    tenant = f"jrelay-{uuid.uuid4().hex[:10]}"
    # Long committed, below every real one: initdb and the migrations alone use several
    # hundred transaction ids before the first step exists (a fresh database's real steps
    # came at 823: 999 and 1,000 were not below them).
    txs = [99, 100, 9, 10]
    try:
        for tx in txs:
            await pool.execute(
                "INSERT INTO journey_steps (tenant_id, journey_id, version, instance_id,"
                " profile_id, at, kind, node, tx) VALUES ($1, 'j', 1, $2, 'p', now(),"
                " 'entered', 'entry', $3::text::xid8)", tenant, uuid.uuid4(), str(tx))
        await pool.execute(  # a cohort's step, between them
            "INSERT INTO journey_cohort_steps (tenant_id, cohort_id, journey_id, version,"
            " at, kind, node, members, tx) VALUES ($1, $2, 'j', 1, now(), 'entered',"
            " 'entry', 3, '50'::xid8)", tenant, uuid.uuid4())
        rows = await pool.fetch(_READ, 8, 0, 5)  # after (8, 0): these five, nothing else
        assert [int(r["tx"]) for r in rows] == [9, 10, 50, 99, 100]
        assert [r["members"] for r in rows] == [0, 0, 3, 0, 0]
        plan = "\n".join(r[0] for r in await pool.fetch(f"EXPLAIN {_READ}", 8, 0, 2000))
        # the profiles' steps through their index, merged with the cohorts' (a small
        # table may be sorted), never the whole union sorted
        assert "journey_steps_relay" in plan and "Merge Append" in plan, plan
        assert plan.index("Merge Append") < plan.index("journey_steps_relay"), plan
        assert "Sort" not in plan.split("Merge Append")[0], plan
    finally:
        await pool.execute("DELETE FROM journey_steps WHERE tenant_id = $1", tenant)
        await pool.execute("DELETE FROM journey_cohort_steps WHERE tenant_id = $1", tenant)


async def test_a_cohorts_members_are_read_by_its_index_for_a_tenant_new_to_the_statistics(
        pool: asyncpg.Pool) -> None:
    """A tenant the statistics do not know yet (its first million entering): its rows
    estimated a handful, the planner read a cohort's members by an index that starts
    with the tenant (the primary key, the entered-at index), filtering on the cohort:
    every instance of the tenant a cohort (16-21 µs a member for P7J's million)."""
    async with pool.acquire() as connection:  # an index scan or a bitmap one, by it alone
        scans, plan = await instance_scans(
            connection, _MEMBERS, (f"unseen-{uuid.uuid4().hex}", uuid.uuid4()))
    assert scans == {"journey_instances_cohort_of"}, plan


async def test_a_chunk_stored_whole_gives_its_cohorts_members_as_the_relay_reads_them(
        pool: asyncpg.Pool) -> None:
    """What the engine keeps for its relay instead of a read of the members back: the
    cohorts a chunk stored every profile of, each with its members' instance ids and
    profile ids in the order they entered — the relay's read gives the same, in the same
    order, so a step's records are the same whichever way its members come."""
    profiles = [f"w{i:02d}" for i in range(40)]
    tenant = await _tenant(pool, profiles)
    plan = compile_plan(parse_definition(SPLIT), 1, {}, {}, tenant=tenant)
    chunk = routes(plan, tenant, profiles, 0, Decimal(0), NOW)
    async with pool.acquire() as connection:
        entered = await journey_store.enter_set(connection, tenant, plan.definition.id, 1,
                                                chunk, NOW)
        assert len(entered.whole) == len(entered.written) == len(chunk.templates) > 1
        for whole, (g, n) in zip(entered.whole, entered.written, strict=True):
            kept = [(str(i), p) for i, p in zip(whole.instance_ids, whole.profile_ids,
                                                   strict=True)]
            read = [tuple(r) for r in await connection.fetch(_MEMBERS, tenant,
                                                              whole.cohort_id)]
            assert kept == read and len(kept) == n
            assert whole.cohort_id == journey_store.cohort_ids(chunk, NOW)[g]
        assert sorted(p for w in entered.whole for p in w.profile_ids) == profiles


async def test_a_cohorts_steps_are_published_once_for_each_member(
        pool: asyncpg.Pool) -> None:
    before = await end_offsets(JOURNEY_STEPS)
    tenant, _, profiles = await _entered_set_wise(pool, "r", 30)
    expected = Counter(
        (r["id"], r["instance_id"], r["profile_id"], r["kind"], r["node"], r["detail"])
        for r in await pool.fetch(
            "SELECT id, instance_id::text, profile_id, kind, node, detail"
            " FROM journey_instance_steps WHERE tenant_id = $1", tenant))
    assert len(expected) >= 2 * len(profiles)
    published: Counter[tuple[int, str, str, str, str, str]] = Counter()
    records, several = 0, False
    async with topic_reader(JOURNEY_STEPS, before) as consumer:
        async def relayed() -> bool:
            nonlocal records, several
            for tp, batch in (await consumer.getmany(timeout_ms=200)).items():
                for record in batch:
                    event = StepEvent.model_validate(orjson.loads(record.value))
                    if event.tenant != tenant:
                        continue
                    records += 1
                    several = several or len(event.steps) > 1
                    assert record.key == event.members[0].profileId.encode()
                    for m in event.members:  # each on its own profile's partition
                        assert key_partition(m.profileId.encode(), 6) == tp.partition
                        for step in event.steps:
                            published[(step.stepId, m.instanceId, m.profileId, step.kind,
                                       step.node, step.detail)] += 1
            return sum(published.values()) >= sum(expected.values())
        await eventually(relayed, "the cohort's steps on parcours.journey-steps.v3", 30)
    assert published == expected
    # a record a partition for the cohort's consecutive steps, not one a step or a member:
    # 30 profiles over 6 partitions (a batch's end may fall between two of its steps)
    assert records <= 6 * len({k[0] for k in expected}) < sum(expected.values())
    assert several, "no record held more than one of the cohort's steps"
