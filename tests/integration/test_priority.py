"""Transactional first: a bulk backlog on ``parcours.send.email.bulk.v1`` never sits in
front of a transactional email. Both lanes deliver, each message exactly once."""

import asyncio
import time
import uuid

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer

from shared.domain.routing import EventOrigin, SendRequest, message_id
from shared.topics import SEND_EMAIL_BULK
from tests.integration.conftest import (
    BULK_SINK,
    GATEWAY,
    drained,
    eventually,
    final_status,
    mails_to,
    publish_event,
    settings,
    unique_email,
)

BULK_GROUP = "parcours-sender-email-bulk"
BACKLOG = 3_000
BULK_RECIPIENTS = 30  # the sink is read back one recipient at a time
BULK_METRICS = f"http://127.0.0.1:{settings.sender_email_bulk_metrics_port}/metrics"


def bulk_request(event_id: str, recipient: str) -> SendRequest:
    pkey = uuid.uuid4().hex
    return SendRequest(messageId=message_id("default", pkey, "bulk"), tenant="default",
                       origin=EventOrigin(eventId=event_id, pKey=pkey),
                       channel="email", priority="bulk",
                       to={"email": recipient}, ctx={"item": "newsletter"},
                       acceptedAt=time.time())


async def produce_backlog(producer: AIOKafkaProducer, requests: list[SendRequest]) -> None:
    sent = [await producer.send(SEND_EMAIL_BULK.name, r.model_dump_json().encode(),
                                r.messageId.encode()) for r in requests]
    await asyncio.gather(*sent)


async def test_transactional_mail_overtakes_a_bulk_backlog_and_both_arrive_once(
    http: httpx.AsyncClient, pool: asyncpg.Pool, producer: AIOKafkaProducer
) -> None:
    event_id = await publish_event(pool, "event")
    label = f"bulk-{uuid.uuid4().hex[:8]}"
    recipients = [f"{label}-{n:02d}@example.com" for n in range(BULK_RECIPIENTS)]
    backlog = [bulk_request(event_id, recipients[i % BULK_RECIPIENTS]) for i in range(BACKLOG)]
    await produce_backlog(producer, backlog)
    assert not await drained(BULK_GROUP, SEND_EMAIL_BULK)

    began = time.monotonic()
    tx_emails = [unique_email("tx-first") for _ in range(5)]
    responses = await asyncio.gather(*(
        http.post(f"{GATEWAY}/v1/events/{event_id}", json={"email": e, "ctx": {"item": "tx"}})
        for e in tx_emails))
    assert [r.status_code for r in responses] == [202] * len(tx_emails)

    async def all_tx_arrived() -> bool:
        return all([len(await mails_to(http, e)) == 1 for e in tx_emails])

    await eventually(all_tx_arrived, "the transactional emails in the SMTP sink", 15)
    tx_seconds = time.monotonic() - began
    # The backlog went in first and is still there: tx did not wait behind it.
    assert not await drained(BULK_GROUP, SEND_EMAIL_BULK), (
        f"the bulk backlog drained before the tx mails arrived ({tx_seconds:.1f}s)")
    for response in responses:
        assert (await final_status(http, response.json()["href"]))["status"] == "processed"

    async def backlog_drained() -> bool:
        return await drained(BULK_GROUP, SEND_EMAIL_BULK)

    await eventually(backlog_drained, f"{BACKLOG} bulk messages sent", 180)
    received = [str(m["message_id"]) for r in recipients
                for m in await mails_to(http, r, BULK_SINK)]
    assert len(received) == BACKLOG
    # Each through its own relay: bulk never queued at the transactional one.
    assert [m for r in recipients for m in await mails_to(http, r)] == []
    assert [m for e in tx_emails for m in await mails_to(http, e, BULK_SINK)] == []
    assert set(received) == {f"<{r.messageId}@parcours.localhost>" for r in backlog}

    metrics = (await http.get(BULK_METRICS)).text
    assert 'parcours_sender_sent_total{channel="email",priority="bulk"}' in metrics
    assert ('parcours_sender_accepted_to_provider_seconds_bucket'
            '{channel="email",le="1.0",priority="bulk"}') in metrics
