"""The reactions relay under a flood, on real PostgreSQL and Kafka: with ``gather_s`` it
takes nothing until the oldest reaction waiting is that old (a flood goes to Kafka in a
few large batches), the services' own relays still publish every reaction soon, and a
relay on a connection of its own (the reactions service's) relays like one on a pool.
A click finds the message the email senders remembered by tenant and id."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg

from services.tracking.reaction_rows import SCANNER_WINDOW, hit_of
from shared.adapters import reaction_store, tracking_store
from shared.adapters.postgres import connect
from shared.adapters.producer import RenewingProducer
from shared.adapters.tracking_store import TrackedMessage
from shared.domain.reactions import Reaction, ReactionKind, reaction_id
from shared.domain.routing import EventOrigin
from shared.domain.tracking_links import Tracked
from tests.integration.conftest import eventually, settings


def opened(tenant: str, message: str, machine: bool = False) -> Reaction:
    return Reaction(
        reactionId=reaction_id(tenant, message, ReactionKind.OPENED, machine=machine),
        tenant=tenant, messageId=message, kind=ReactionKind.OPENED, at=datetime.now(UTC),
        channel="email", profileId="p-1", machine=machine, source="tracking")


async def unpublished(pool: asyncpg.Pool, tenant: str) -> int:
    return int(await pool.fetchval(
        "SELECT count(*) FROM reaction_outbox WHERE tenant_id = $1", tenant))


async def test_a_gathering_relay_waits_for_the_oldest_and_the_services_publish_all(
    pool: asyncpg.Pool,
):
    tenant = f"gather-{uuid.uuid4().hex[:8]}"
    reactions = [opened(tenant, str(uuid.uuid4())) for _ in range(20)]
    producer = RenewingProducer(settings, "relay-gather-test")
    await producer.start()
    try:
        assert len(await reaction_store.record(pool, reactions)) == 20
        # Nothing waiting is an hour old: this relay takes none of them (nor anyone's).
        assert await reaction_store.relay(pool, producer, gather_s=3600) == 0
        # The stack's relays (reactions service, gateway: gather_s 0.1) publish them all.
        await eventually(lambda: _none_left(pool, tenant), "the stack's relays publish all",
                         10)
        # A relay on its own connection, not gathering, takes what is there at once.
        more = [opened(tenant, r.messageId, machine=True) for r in reactions]
        assert len(await reaction_store.record(pool, more)) == 20
        connection = await connect(settings.pg_dsn)
        try:
            while await reaction_store.relay(connection, producer) > 0:
                pass
            assert not connection.is_in_transaction()
        finally:
            await connection.close()
        await eventually(lambda: _none_left(pool, tenant), "every reaction published", 10)
    finally:
        await producer.stop()
        await pool.execute("DELETE FROM reactions WHERE tenant_id = $1", tenant)


async def _none_left(pool: asyncpg.Pool, tenant: str) -> bool:
    return await unpublished(pool, tenant) == 0


async def test_a_hit_finds_a_remembered_message_by_tenant_and_id(pool: asyncpg.Pool):
    tenant = f"lookup-{uuid.uuid4().hex[:8]}"
    first, second, unknown = (str(uuid.uuid4()) for _ in range(3))
    messages = [TrackedMessage(tenant, m, "email", "p-1", None,
                               {"kind": "event", "eventId": "EVT1", "pKey": "k"},
                               (f"https://shop.example/{m}",)) for m in (first, second)]
    await tracking_store.remember(pool, messages)  # as the email senders store them

    def click(who: str, message: str) -> tracking_store.Hit:
        return hit_of(Tracked("click", who, message, 0), "GET", "Firefox/120.0",
                      datetime.now(UTC))

    try:
        connection = await connect(settings.pg_dsn)
        try:
            found = await tracking_store.record_hits(
                connection, [click(tenant, second), click(tenant, unknown),
                             click("another-tenant", first), click(tenant, first),
                             click(tenant, second)], None, SCANNER_WINDOW)
        finally:
            await connection.close()
        assert [a.url for a in found] == [f"https://shop.example/{second}", None, None,
                                          f"https://shop.example/{first}",
                                          f"https://shop.example/{second}"]
        assert [a.refused for a in found] == [None, "unknown", "unknown", None, None]
        assert [a.new for a in found] == [True, False, False, True, False]
        record = await pool.fetchval(
            "SELECT record::text FROM reactions WHERE tenant_id = $1 AND message_id = $2",
            tenant, uuid.UUID(first))
        assert Reaction.model_validate_json(record).origin == EventOrigin(eventId="EVT1",
                                                                           pKey="k")
    finally:
        for table in ("reaction_outbox", "message_trace", "reactions", "tracked_messages"):
            await pool.execute(f"DELETE FROM {table} WHERE tenant_id = $1", tenant)
