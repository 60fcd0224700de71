"""The reactions outbox on real PostgreSQL and Kafka: a reaction recorded twice is one row
and one record; the relay produces each once, keyed by profile (else address), and takes
it out of the outbox; machine and human opens of one message are two reactions; one
erased before it was relayed is never produced; a reaction twice in one batch is traced
once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
from aiokafka import TopicPartition

from shared.adapters import reaction_store, tracking_store
from shared.adapters.producer import RenewingProducer
from shared.domain.reactions import Link, Reaction, ReactionKind, reaction_id
from shared.topics import REACTIONS
from tests.integration.conftest import end_offsets, eventually, settings, topic_reader


def reaction(tenant: str, message: str, kind: ReactionKind, *, machine: bool = False,
             link: Link | None = None, profile: str | None = "p-1") -> Reaction:
    return Reaction(
        reactionId=reaction_id(tenant, message, kind, link=link and link.index,
                               machine=machine),
        tenant=tenant, messageId=message, kind=kind, at=datetime.now(UTC), channel="email",
        profileId=profile, address=None if profile else "a@example.com", link=link,
        machine=machine, source="tracking")


async def outbox_empty(pool: asyncpg.Pool, tenant: str) -> bool:
    return await pool.fetchval("SELECT count(*) FROM reaction_outbox WHERE tenant_id = $1",
                               tenant) == 0


async def mine_on_the_topic(tenant: str, before: dict[int, int]
                            ) -> list[tuple[bytes, dict[str, Any]]]:
    """The tenant's records on the reactions topic from ``before`` to its end now: once its
    rows left the outbox, all it will ever produce is there (a relay produces before its
    transaction deletes them)."""
    end = await end_offsets(REACTIONS)
    seen: list[tuple[bytes, dict[str, Any]]] = []
    async with topic_reader(REACTIONS, before) as consumer:
        async def read_to_the_end() -> bool:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for r in records:
                    value = orjson.loads(r.value)
                    if value["tenant"] == tenant and r.offset < end[r.partition]:
                        assert reaction_store.TRACED_HEADER in r.headers  # traced already
                        seen.append((r.key, value))
            partitions = [TopicPartition(REACTIONS.name, p) for p in before]
            positions = [await consumer.position(tp) for tp in partitions]
            return all(at >= end[tp.partition]
                       for at, tp in zip(positions, partitions, strict=True))

        await eventually(read_to_the_end, "the reactions topic read to its end")
    return seen


async def test_a_reaction_is_recorded_once_and_relayed_once_keyed_by_profile(
    pool: asyncpg.Pool,
):
    tenant, message = f"react-{uuid.uuid4().hex[:8]}", str(uuid.uuid4())
    opened = reaction(tenant, message, ReactionKind.OPENED)
    proxy = reaction(tenant, message, ReactionKind.OPENED, machine=True)
    clicks = [reaction(tenant, message, ReactionKind.CLICKED, link=Link(index=i, url=u))
              for i, u in ((0, "https://shop.example/a"), (1, "https://shop.example/b"))]
    unknown = reaction(tenant, message, ReactionKind.BOUNCED, profile=None)
    before = await end_offsets(REACTIONS)  # the stack's relays may produce them at once
    first = await reaction_store.record(pool, [opened, proxy, *clicks, unknown])
    assert len(first) == 5
    again = await reaction_store.record(pool, [opened, clicks[0]])  # a pixel loaded again
    assert again == []
    # Each got its trace row as it was recorded, once (none for the repeats).
    traced = await pool.fetch(
        "SELECT outcome, reason, verdicts ->> 'reactionId' AS r FROM message_trace"
        " WHERE tenant_id = $1 AND message_id = $2 AND stage = 'reaction'", tenant,
        uuid.UUID(message))
    assert sorted((t["outcome"], t["reason"] or "") for t in traced) == [
        ("bounced", ""), ("clicked", "link 0: https://shop.example/a"),
        ("clicked", "link 1: https://shop.example/b"), ("opened", ""),
        ("opened", "machine: flagged")]
    assert {t["r"] for t in traced} == {r.reactionId for r in first}

    producer = RenewingProducer(settings, "reactions-test")
    await producer.start()
    try:
        relayed = 0
        while (batch := await reaction_store.relay(pool, producer)) > 0:
            relayed += batch
    finally:
        await producer.stop()
    # The stack's own relays (reactions, gateway, bounces) may take some first, and may still hold
    # them in their open transaction when ours finds nothing left to claim (SKIP LOCKED):
    # what matters is that all leave the outbox, and each is on the topic once (below).
    await eventually(lambda: outbox_empty(pool, tenant), "every reaction out of the outbox", 10)

    seen = await mine_on_the_topic(tenant, before)
    assert sorted((v["kind"], v["machine"]) for _, v in seen) == [
        ("bounced", False), ("clicked", False), ("clicked", False), ("opened", False),
        ("opened", True)]
    assert {k for k, v in seen if v["profileId"]} == {b"p-1"}
    assert [k for k, v in seen if not v["profileId"]] == [b"a@example.com"]
    await pool.execute("DELETE FROM reactions WHERE tenant_id = $1", tenant)
    await pool.execute("DELETE FROM message_trace WHERE tenant_id = $1", tenant)


async def test_a_reaction_erased_before_it_was_relayed_leaves_the_outbox_unproduced(
    pool: asyncpg.Pool,
):
    """Erasing a profile deletes its reactions (``reaction_store._erase``); one not relayed
    yet still has its outbox row, which a relay takes without producing anything."""
    tenant, message = f"react-{uuid.uuid4().hex[:8]}", str(uuid.uuid4())
    erased = reaction(tenant, message, ReactionKind.OPENED, profile="p-erased")
    kept = reaction(tenant, message, ReactionKind.OPENED, machine=True)
    before = await end_offsets(REACTIONS)
    async with pool.acquire() as connection, connection.transaction():
        # in one transaction: no relay of the stack's sees the erased one before it goes
        assert len(await reaction_store.record(connection, [erased, kept])) == 2
        await connection.execute("DELETE FROM reactions WHERE tenant_id = $1 AND profile_id"
                                 " = 'p-erased'", tenant)

    await eventually(lambda: outbox_empty(pool, tenant), "both rows out of the outbox", 10)
    seen = await mine_on_the_topic(tenant, before)
    assert [v["reactionId"] for _, v in seen] == [kept.reactionId]
    await pool.execute("DELETE FROM reactions WHERE tenant_id = $1", tenant)


async def test_a_reaction_twice_in_one_batch_is_traced_once(pool: asyncpg.Pool) -> None:
    """A relay killed after producing and before its commit produces its rows again; both
    copies can reach the reactions consumer in one fetch. The batch's check against the
    trace sees only rows stored before it: one trace row, one counted."""
    tenant = f"trace-twice-{uuid.uuid4().hex[:8]}"
    opened = reaction(tenant, str(uuid.uuid4()), ReactionKind.OPENED)
    try:
        async with pool.acquire() as connection:
            traced = await tracking_store.trace(connection, [opened, opened])
            assert [r.reactionId for r in traced] == [opened.reactionId]
            assert await tracking_store.trace(connection, [opened]) == []
        assert await pool.fetchval(
            "SELECT count(*) FROM message_trace WHERE tenant_id = $1", tenant) == 1
    finally:
        await pool.execute("DELETE FROM message_trace WHERE tenant_id = $1", tenant)


async def test_a_reaction_produced_straight_to_the_topic_is_traced_by_the_reactions_service(
    pool: asyncpg.Pool,
) -> None:
    """Without the relay's mark, the reactions service traces a record itself, once: the
    same reaction produced twice, then another behind them on the same partition (same
    profile), whose trace row says the two before it were read."""
    tenant, message = f"straight-{uuid.uuid4().hex[:8]}", str(uuid.uuid4())
    delivered = reaction(tenant, message, ReactionKind.DELIVERED)
    behind = reaction(tenant, message, ReactionKind.OPENED)
    producer = RenewingProducer(settings, "reactions-test")
    await producer.start()
    try:
        await producer.deliver_all([(REACTIONS.name, r.model_dump_json().encode(), r.key)
                                    for r in (delivered, delivered, behind)])
    finally:
        await producer.stop()

    async def behind_traced() -> bool:
        return await pool.fetchval(
            "SELECT count(*) FROM message_trace WHERE tenant_id = $1"
            " AND verdicts ->> 'reactionId' = $2", tenant, behind.reactionId) == 1

    try:
        await eventually(behind_traced, "the reaction behind the two traced", 15)
        rows = await pool.fetch(
            "SELECT outcome FROM message_trace WHERE tenant_id = $1 AND stage = 'reaction'",
            tenant)
        assert sorted(r["outcome"] for r in rows) == ["delivered", "opened"]
    finally:
        await pool.execute("DELETE FROM message_trace WHERE tenant_id = $1", tenant)
