"""Bulk lanes for SMS and push (issue 11), like email's: journey and marketing messages
(priority bulk) go to ``parcours.send.{sms,push}.bulk.v1`` and are sent by their own
senders (``services.sender_sms_bulk``, ``services.sender_push_bulk``), never by the
transactional ones. On the real stack: Kafka, the processor, the senders, the provider
sink."""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer

from shared.adapters import held_store
from shared.domain.events import Channel
from shared.domain.routing import EventOrigin, SendRequest, message_id
from shared.topics import SEND_PUSH_BULK, SEND_SMS_BULK, Topic
from tests.integration.conftest import (
    drained,
    eventually,
    provider_messages,
    publish_event,
    settings,
)

LANES = {
    "sms": (SEND_SMS_BULK, "parcours-sender-sms-bulk",
            f"http://127.0.0.1:{settings.sender_sms_bulk_metrics_port}/metrics",
            f"http://127.0.0.1:{settings.sender_sms_metrics_port}/metrics"),
    "push": (SEND_PUSH_BULK, "parcours-sender-push-bulk",
             f"http://127.0.0.1:{settings.sender_push_bulk_metrics_port}/metrics",
             f"http://127.0.0.1:{settings.sender_push_metrics_port}/metrics"),
}
TEMPLATES = {"sms": {"text": "{{ ctx.item }} is back in stock"},
             "push": {"title": "{{ ctx.item }}", "body": "back in stock", "data": {}}}


def target(channel: str) -> dict[str, str]:
    if channel == "sms":
        return {"mobilePhone": f"+1555{uuid.uuid4().int % 10**7:07d}"}
    return {"registrationToken": f"tok-{uuid.uuid4().hex}", "application": "shop",
            "pushPlatform": "fcm"}


def address(to: dict[str, str]) -> str:
    return to.get("mobilePhone") or to["registrationToken"]


def bulk_request(event_id: str, channel: str) -> SendRequest:
    pkey = uuid.uuid4().hex
    return SendRequest(messageId=message_id("default", pkey, "bulk"), tenant="default",
                       origin=EventOrigin(eventId=event_id, pKey=pkey),
                       channel=Channel(channel), priority="bulk", to=target(channel),
                       ctx={"item": "Boots"}, acceptedAt=time.time())


async def sent_total(http: httpx.AsyncClient, url: str, channel: str) -> float:
    """parcours_sender_sent_total{channel, priority="bulk"} as the process exports it."""
    text = (await http.get(url)).text
    pattern = (rf'^parcours_sender_sent_total\{{(?=[^}}]*channel="{channel}")'
               r'(?=[^}]*priority="bulk")[^}]*\} (\S+)$')
    return sum(float(m.group(1)) for m in re.finditer(pattern, text, re.MULTILINE))


@pytest.mark.parametrize("channel", ["sms", "push"])
async def test_bulk_messages_are_sent_by_the_bulk_sender(
    channel: str, http: httpx.AsyncClient, pool: asyncpg.Pool, producer: AIOKafkaProducer
) -> None:
    topic, group, bulk_metrics, tx_metrics = LANES[channel]
    event_id = await publish_event(pool, "event", TEMPLATES[channel], channel=channel)
    bulk_before = await sent_total(http, bulk_metrics, channel)
    tx_before = await sent_total(http, tx_metrics, channel)
    requests = [bulk_request(event_id, channel) for _ in range(20)]
    for r in requests:
        await producer.send(topic.name, r.model_dump_json().encode(), r.messageId.encode())
    await producer.flush()

    async def all_arrived() -> bool:
        return all([len(await provider_messages(http, channel, address(r.to))) == 1
                    for r in requests])

    await eventually(all_arrived, f"20 bulk {channel} at the provider", 30)

    async def counted() -> bool:
        return await sent_total(http, bulk_metrics, channel) >= bulk_before + 20

    await eventually(counted, f"the bulk {channel} sender counting them", 10)

    async def committed() -> bool:
        return await drained(group, topic)

    await eventually(committed, f"the bulk {channel} sender's group committing them", 10)
    assert await sent_total(http, tx_metrics, channel) == tx_before  # not the tx sender


@pytest.mark.parametrize("channel", ["sms", "push"])
async def test_the_processor_routes_a_bulk_message_to_its_channels_bulk_lane(
    channel: str, http: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    """A journey's or marketing message (priority bulk) the processor sends on — here one
    deferred by a rule and come due, decided again — goes to the bulk topic."""
    _topic, _group, bulk_metrics, _tx = LANES[channel]
    event_id = await publish_event(pool, "event", TEMPLATES[channel], channel=channel)
    request = bulk_request(event_id, channel)
    before = await sent_total(http, bulk_metrics, channel)
    async with pool.acquire() as connection:
        await held_store.hold_messages(
            connection, [(request.model_dump(mode="json"), datetime.now(UTC))], [])

    async def arrived() -> bool:
        return len(await provider_messages(http, channel, address(request.to))) == 1

    await eventually(arrived, f"the bulk {channel} released and sent", 30)

    async def counted() -> bool:
        return await sent_total(http, bulk_metrics, channel) >= before + 1

    await eventually(counted, f"the bulk {channel} sender counting it", 10)


def test_every_channel_has_a_bulk_lane() -> None:
    from shared.topics import SEND_BULK_TOPICS, SEND_TX_TOPICS, send_topic

    assert set(SEND_BULK_TOPICS) == set(SEND_TX_TOPICS) == {"email", "sms", "push"}
    lanes: set[Topic] = {send_topic(c, p) for c in SEND_TX_TOPICS for p in ("tx", "bulk")}
    assert len(lanes) == 6
    assert send_topic("push", "bulk") is SEND_PUSH_BULK
