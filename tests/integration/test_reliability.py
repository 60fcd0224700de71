"""Poison records, redeliveries and SMTP refusals: nothing lost, nothing sent twice."""

import asyncio
import time
import uuid

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer

from shared.domain.routing import EventOrigin, SendRequest, message_id
from shared.topics import DEADLETTER, EVENTS_IN, SEND_EMAIL_TX
from tests.integration.conftest import (
    GATEWAY,
    SINK,
    dead_letter_of,
    end_offsets,
    eventually,
    final_status,
    mails_to,
    publish_event,
    settings,
    unique_email,
)


async def test_poison_record_goes_to_dead_letter_and_the_partition_keeps_flowing(
    http: httpx.AsyncClient, pool: asyncpg.Pool, producer: AIOKafkaProducer
) -> None:
    event_id = await publish_event(pool, "event")
    email = unique_email("poison")
    before = await end_offsets(DEADLETTER)
    poison = b'{"this is": "not a trigger event"' + uuid.uuid4().hex.encode()
    # Same key as the valid event below, so both land on the same partition.
    await producer.send_and_wait(EVENTS_IN.name, poison, email.encode())
    response = await http.post(f"{GATEWAY}/v1/events/{event_id}",
                               json={"email": email, "ctx": {"item": "after poison"}})
    assert (await final_status(http, response.json()["href"]))["status"] == "processed"

    letter = await dead_letter_of(before, poison.decode())
    assert letter["stage"] == "processor"
    assert str(letter["reason"]).startswith("invalid")


def send_request(event_id: str, email: str) -> SendRequest:
    pkey = uuid.uuid4().hex
    return SendRequest(messageId=message_id("default", pkey), tenant="default",
                       origin=EventOrigin(eventId=event_id, pKey=pkey),
                       channel="email", to={"email": email},
                       ctx={"item": "once"}, acceptedAt=time.time())


async def test_a_redelivered_message_is_sent_once(
    http: httpx.AsyncClient, pool: asyncpg.Pool, producer: AIOKafkaProducer
) -> None:
    event_id = await publish_event(pool, "event")
    email = unique_email("once")
    request = send_request(event_id, email)
    for _ in range(3):  # what Kafka does after a crash before the offset commit
        await producer.send_and_wait(SEND_EMAIL_TX.name, request.model_dump_json().encode(),
                                     request.messageId.encode())
    marker = send_request(event_id, email)  # sent after the copies, on its own key
    await producer.send_and_wait(SEND_EMAIL_TX.name, marker.model_dump_json().encode(),
                                 request.messageId.encode())

    async def both_delivered() -> list[dict[str, object]] | None:
        mails = await mails_to(http, email)
        return mails if len(mails) >= 2 else None

    mails = await eventually(both_delivered, "the message and the marker")
    assert len(mails) == 2
    ids = sorted(str(m["message_id"]) for m in mails)
    assert ids == sorted(f"<{r.messageId}@parcours.localhost>" for r in (request, marker))
    row = await pool.fetchrow("SELECT state, attempts FROM deliveries WHERE message_id = $1",
                              uuid.UUID(request.messageId))
    assert row["state"] == "sent" and row["attempts"] == 1


async def test_a_copy_in_the_next_batch_is_not_sent_while_the_first_is_under_way(
    http: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    """The sender has two batches under way at once (shared.sending.app): a record
    produced twice, the copies a batch apart, goes once; the ledger alone would let the
    second batch claim the message again while the first is still sending it."""
    event_id = await publish_event(pool, "event")
    email = unique_email("twice")
    request = send_request(event_id, email)
    fillers = [send_request(event_id, unique_email("filler")) for _ in range(250)]
    # One partition, one produce request: the sender reads them 200 to a batch, so the
    # copies are in two batches one after the other.
    key = request.messageId.encode()
    together = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all",
                                linger_ms=500, max_batch_size=1024 * 1024)
    await together.start()
    try:
        pending = [await together.send(SEND_EMAIL_TX.name, r.model_dump_json().encode(), key)
                   for r in (request, *fillers, request)]
        await asyncio.gather(*pending)
    finally:
        await together.stop()

    async def settled() -> asyncpg.Record | None:
        row = await pool.fetchrow(
            "SELECT count(*) FILTER (WHERE state = 'sending') AS sending, count(*) AS all"
            " FROM deliveries WHERE message_id = ANY($1::uuid[])",
            [uuid.UUID(r.messageId) for r in (request, *fillers)])
        return row if row["all"] == 251 and row["sending"] == 0 else None

    await eventually(settled, "every message settled", 60)
    assert len(await mails_to(http, email)) == 1
    row = await pool.fetchrow("SELECT state, attempts FROM deliveries WHERE message_id = $1",
                              uuid.UUID(request.messageId))
    assert row["state"] == "sent" and row["attempts"] == 1


async def test_smtp_permanent_refusal_ends_in_delivery_failed(
    http: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    event_id = await publish_event(pool, "event")
    email = unique_email("refused")
    await http.post(f"{SINK}/reject",
                    params={"reply": "550 5.1.1 no such user", "count": 1, "to": email})
    response = await http.post(f"{GATEWAY}/v1/events/{event_id}",
                               json={"email": email, "ctx": {"item": "x"}})
    status = await final_status(http, response.json()["href"])
    assert status["status"] == "deliveryFailed"
    assert "550" in status["reason"]
    assert await mails_to(http, email) == []


async def test_smtp_temporary_refusal_is_retried_until_delivered(
    http: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    event_id = await publish_event(pool, "event")
    email = unique_email("later")
    await http.post(f"{SINK}/reject",
                    params={"reply": "451 4.3.0 try again later", "count": 2, "to": email})
    response = await http.post(f"{GATEWAY}/v1/events/{event_id}",
                               json={"email": email, "ctx": {"item": "x"}})
    assert (await final_status(http, response.json()["href"]))["status"] == "processed"
    assert len(await mails_to(http, email)) == 1


async def test_deliveries_ledger_and_sink_agree_that_nothing_was_sent_twice(
    http: httpx.AsyncClient,
) -> None:
    response = await http.get(f"{SINK}/duplicates")
    assert response.json() == {}
