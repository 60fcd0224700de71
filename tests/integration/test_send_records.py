"""A send record the sender cannot read, which still names its event, ends that event
``deliveryFailed`` with the reason (dead-lettered too), instead of leaving it
``processing`` for ever."""

from __future__ import annotations

import uuid

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer

from shared.adapters.status_store import record_statuses
from shared.domain.status import Status, StatusWrite
from shared.topics import SEND_SMS_TX
from tests.integration.conftest import eventually


async def test_an_unreadable_send_record_ends_its_event(
    pool: asyncpg.Pool, producer: AIOKafkaProducer,
) -> None:
    pkey, tenant = f"unreadable-{uuid.uuid4().hex}", "default"
    async with pool.acquire() as connection:
        await record_statuses(connection, [StatusWrite(pkey, tenant, "EVTunreadable",
                                                       Status.PROCESSING)])
    record = {"v": 2, "messageId": str(uuid.uuid4()), "tenant": tenant,
              "origin": {"kind": "event", "eventId": "EVTunreadable", "pKey": pkey},
              "channel": "pigeon", "to": {}, "ctx": {}, "acceptedAt": 0}
    await producer.send_and_wait(SEND_SMS_TX.name, orjson.dumps(record), b"k")

    async def ended() -> asyncpg.Record | None:
        row = await pool.fetchrow("SELECT status, reason FROM event_status WHERE pkey = $1",
                                  pkey)
        return row if row["status"] != "processing" else None

    row = await eventually(ended, "the event ended", 20)
    assert row["status"] == "deliveryFailed"
    assert row["reason"].startswith("the send record could not be read (invalid:")
