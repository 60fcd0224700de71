"""The reactions outbox on real PostgreSQL and Kafka: a reaction recorded twice is one row
and one record; the relay produces each once, keyed by profile (else address), and marks
it published; machine and human opens of one message are two reactions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.adapters import reaction_store
from shared.adapters.producer import RenewingProducer
from shared.domain.reactions import Link, Reaction, ReactionKind, reaction_id
from shared.topics import REACTIONS
from tests.integration.conftest import end_offsets, eventually, settings


def reaction(tenant: str, message: str, kind: ReactionKind, *, machine: bool = False,
             link: Link | None = None, profile: str | None = "p-1") -> Reaction:
    return Reaction(
        reactionId=reaction_id(tenant, message, kind, link=link and link.index,
                               machine=machine),
        tenant=tenant, messageId=message, kind=kind, at=datetime.now(UTC), channel="email",
        profileId=profile, address=None if profile else "a@example.com", link=link,
        machine=machine, source="tracking")


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

    producer = RenewingProducer(settings, "reactions-test")
    await producer.start()
    try:
        relayed = 0
        while (batch := await reaction_store.relay(pool, producer)) > 0:
            relayed += batch
    finally:
        await producer.stop()
    # The stack's own relays (tracking, bounces) may take some first, and may still hold
    # them in their open transaction when ours finds nothing left to claim (SKIP LOCKED):
    # what matters is that all end published, and each is on the topic once (below).

    async def all_published() -> bool:
        return await pool.fetchval(
            "SELECT count(*) FROM reactions WHERE tenant_id = $1 AND published_at IS NULL",
            tenant) == 0

    await eventually(all_published, "every reaction marked published", 10)

    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await consumer.start()
    seen: list[tuple[bytes, dict[str, Any]]] = []
    try:
        partitions = [TopicPartition(REACTIONS.name, p) for p in before]
        consumer.assign(partitions)
        for tp in partitions:
            consumer.seek(tp, before[tp.partition])

        async def all_mine() -> bool:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for r in records:
                    value = orjson.loads(r.value)
                    if value["tenant"] == tenant:
                        seen.append((r.key, value))
            return len(seen) >= 5

        await eventually(all_mine, "the tenant's five reactions on the topic")
    finally:
        await consumer.stop()
    assert sorted((v["kind"], v["machine"]) for _, v in seen) == [
        ("bounced", False), ("clicked", False), ("clicked", False), ("opened", False),
        ("opened", True)]
    assert {k for k, v in seen if v["profileId"]} == {b"p-1"}
    assert [k for k, v in seen if not v["profileId"]] == [b"a@example.com"]
    await pool.execute("DELETE FROM reactions WHERE tenant_id = $1", tenant)
