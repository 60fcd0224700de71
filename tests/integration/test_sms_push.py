"""SMS and push through the real chain: gateway → Kafka → processor → sender → HTTP
provider (the provider sink), exactly once, with refusals sorted as for email."""

import re
import time
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer

from shared.adapters.profile_store import upsert_profiles
from shared.adapters.provider_payloads import sms_payload
from shared.domain.events import Channel
from shared.domain.push_open import open_token
from shared.domain.rendering import compile_message, render_message, template_context
from shared.domain.routing import EventOrigin, SendRequest, message_id
from shared.topics import SEND_SMS_TX
from tests.integration.conftest import (
    GATEWAY,
    PROVIDER,
    TENANT,
    eventually,
    final_status,
    provider_messages,
    publish_event,
    settings,
)

SMS_METRICS = f"http://127.0.0.1:{settings.sender_sms_metrics_port}/metrics"
SMS_TEMPLATE = {"text": "Hi {{ profile.first_name or 'there' }}, {{ ctx.item }}"
                        " x{{ ctx.quantity }}"}
PUSH_TEMPLATE = {
    "title": "{{ ctx.item }} has shipped",
    "body": "Hello {{ profile.first_name or 'there' }}, it arrives tomorrow.",
    "data": {"screen": "orders", "item": "{{ ctx.item }}"},
}


@pytest.fixture(scope="module", autouse=True)
def provider_sink_is_up() -> None:
    try:
        httpx.get(f"{PROVIDER}/health/ready", timeout=2).raise_for_status()
    except httpx.HTTPError as error:
        pytest.fail(f"the provider sink is not running ({error}); start it with `make up`")


def unique_phone() -> str:
    return f"+1555{uuid.uuid4().int % 10**7:07d}"


def push_target() -> dict[str, str]:
    return {"registrationToken": f"tok-{uuid.uuid4().hex}", "application": "shop",
            "pushPlatform": "fcm"}


async def post(http: httpx.AsyncClient, event_id: str, body: dict[str, Any]) -> str:
    response = await http.post(f"{GATEWAY}/v1/events/{event_id}", json=body)
    assert response.status_code == 202, response.text
    href: str = response.json()["href"]
    return href


async def test_an_sms_event_becomes_a_personalised_sms(
    http: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    event_id = await publish_event(pool, "event", SMS_TEMPLATE, channel="sms")
    phone = unique_phone()
    href = await post(http, event_id, {"mobilePhone": phone,
                                       "ctx": {"item": "Trail shoes", "quantity": 2}})
    assert (await final_status(http, href))["status"] == "processed"
    [sms] = await provider_messages(http, "sms", phone)
    pkey = href.rsplit("/", 1)[1]
    assert sms["payload"] == {"to": phone, "text": "Hi there, Trail shoes x2",
                              "messageId": message_id(TENANT, pkey),
                              "senderId": settings.sms_sender_id,
                              "encoding": "gsm7", "segments": 1}


async def test_a_push_event_becomes_a_push_notification(
    http: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    event_id = await publish_event(pool, "event", PUSH_TEMPLATE, channel="push")
    target = push_target()
    href = await post(http, event_id, {**target, "ctx": {"item": "Rain jacket"}})
    assert (await final_status(http, href))["status"] == "processed"
    [push] = await provider_messages(http, "push", target["registrationToken"])
    sent = message_id(TENANT, href.rsplit("/", 1)[1])
    token = open_token(settings.push_open_secret.get_secret_value(), TENANT, sent)
    assert push["payload"] == {
        "token": target["registrationToken"], "application": "shop", "platform": "fcm",
        "title": "Rain jacket has shipped", "body": "Hello there, it arrives tomorrow.",
        "data": {"screen": "orders", "item": "Rain jacket", "openToken": token},
        "messageId": sent,
    }


async def test_a_profile_sms_finds_the_profile_by_mobile_phone(
    http: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    event_id = await publish_event(pool, "profile", SMS_TEMPLATE, channel="sms")
    phone, stranger = unique_phone(), unique_phone()
    async with pool.acquire() as connection:
        await upsert_profiles(connection, TENANT, [{
            "profile_id": f"p-{uuid.uuid4().hex[:12]}", "mobile_phone": phone,
            "first_name": "Grace"}])
    known = await post(http, event_id, {"mobilePhone": phone, "ctx": {"item": "Socks",
                                                                      "quantity": 1}})
    unknown = await post(http, event_id, {"mobilePhone": stranger, "ctx": {"item": "Socks"}})
    assert (await final_status(http, known))["status"] == "processed"
    [sms] = await provider_messages(http, "sms", phone)
    assert sms["payload"]["text"] == "Hi Grace, Socks x1"
    assert (await final_status(http, unknown))["status"] == "targetingFailed"
    assert await provider_messages(http, "sms", stranger) == []


async def test_a_provider_400_ends_in_delivery_failed_with_the_reason(
    http: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    event_id = await publish_event(pool, "event", SMS_TEMPLATE, channel="sms")
    phone = unique_phone()
    await http.post(f"{PROVIDER}/reject", params={"status": 400, "count": 1, "to": phone})
    href = await post(http, event_id, {"mobilePhone": phone, "ctx": {"item": "x"}})
    status = await final_status(http, href)
    assert status["status"] == "deliveryFailed"
    assert status["reason"].startswith("provider 400") and "injected failure" in status["reason"]
    assert await provider_messages(http, "sms", phone) == []


async def retries_so_far(http: httpx.AsyncClient) -> float:
    text = (await http.get(SMS_METRICS)).text
    found = re.search(r'^parcours_sender_retries_total\{channel="sms",what="provider"\} (\S+)$',
                      text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def test_a_provider_503_is_retried_until_accepted_once(
    http: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    event_id = await publish_event(pool, "event", SMS_TEMPLATE, channel="sms")
    phone = unique_phone()
    before = await retries_so_far(http)
    await http.post(f"{PROVIDER}/reject", params={"status": 503, "count": 2, "to": phone})
    href = await post(http, event_id, {"mobilePhone": phone, "ctx": {"item": "later"}})
    assert (await final_status(http, href))["status"] == "processed"
    assert len(await provider_messages(http, "sms", phone)) == 1
    assert await retries_so_far(http) - before >= 2


async def test_a_rate_limited_message_waits_as_long_as_the_provider_asks(
    http: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    """A provider's 429 with ``Retry-After: 4``: the message is held in the retry schedule
    for those 4 s (the policy alone would try again after about a second), then sent once;
    the schedule's backlog and its age are exposed meanwhile."""
    event_id = await publish_event(pool, "event", SMS_TEMPLATE, channel="sms")
    phone = unique_phone()
    await http.post(f"{PROVIDER}/reject",
                    params={"status": 429, "count": 1, "to": phone, "retry_after": "4"})
    posted = time.monotonic()
    href = await post(http, event_id, {"mobilePhone": phone, "ctx": {"item": "throttled"}})
    message = uuid.UUID(message_id(TENANT, href.rsplit("/", 1)[1]))

    async def held() -> asyncpg.Record | None:
        return await pool.fetchrow("SELECT extract(epoch FROM due_at - first_failed_at) AS"
                                   " wait, last_error FROM send_retries WHERE message_id = $1",
                                   message)

    row = await eventually(held, "the message held in the retry schedule", 10)
    assert row["wait"] >= 3.9 and "429" in row["last_error"]
    assert (await final_status(http, href))["status"] == "processed"
    assert time.monotonic() - posted >= 3.9
    assert len(await provider_messages(http, "sms", phone)) == 1
    metrics = (await http.get(SMS_METRICS)).text
    assert re.search(r'^parcours_sender_retry_schedule_oldest_seconds\{channel="sms",'
                     r'lane="sender-sms"\} ', metrics, re.MULTILINE)


def sms_request(event_id: str, phone: str, item: str) -> SendRequest:
    pkey = uuid.uuid4().hex
    return SendRequest(messageId=message_id(TENANT, pkey), tenant=TENANT,
                       origin=EventOrigin(eventId=event_id, pKey=pkey),
                       channel=Channel.SMS, to={"mobilePhone": phone},
                       ctx={"item": item, "quantity": 1}, acceptedAt=time.time())


async def produce(producer: AIOKafkaProducer, request: SendRequest) -> None:
    await producer.send_and_wait(SEND_SMS_TX.name, request.model_dump_json().encode(),
                                 request.messageId.encode())


async def ledger_row(pool: asyncpg.Pool, request: SendRequest) -> asyncpg.Record:
    return await pool.fetchrow("SELECT state, attempts, detail FROM deliveries"
                               " WHERE message_id = $1", uuid.UUID(request.messageId))


async def test_a_redelivered_sms_is_sent_once(
    http: httpx.AsyncClient, pool: asyncpg.Pool, producer: AIOKafkaProducer
) -> None:
    event_id = await publish_event(pool, "event", SMS_TEMPLATE, channel="sms")
    phone = unique_phone()
    request = sms_request(event_id, phone, "once")
    for _ in range(3):  # what Kafka does after a crash before the offset commit
        await produce(producer, request)
    marker = sms_request(event_id, phone, "marker")  # sent after the copies
    await produce(producer, marker)

    async def both_arrived() -> list[dict[str, Any]] | None:
        messages = await provider_messages(http, "sms", phone)
        return messages if len(messages) >= 2 else None

    messages = await eventually(both_arrived, "the message and the marker")
    assert sorted(m["messageId"] for m in messages) == sorted([request.messageId,
                                                               marker.messageId])
    row = await ledger_row(pool, request)
    assert row["state"] == "sent" and row["attempts"] == 1
    assert row["detail"] == next(m["id"] for m in messages
                                 if m["messageId"] == request.messageId)


async def test_a_resend_after_a_crash_is_answered_by_the_provider_not_delivered_again(
    http: httpx.AsyncClient, pool: asyncpg.Pool, producer: AIOKafkaProducer
) -> None:
    """The window SMTP leaves open: the provider accepted, then the sender died before
    settling, so the ledger row is still ``sending`` and the record comes back. The
    resend carries the same Idempotency-Key, and the provider does not deliver it twice."""
    event_id = await publish_event(pool, "event", SMS_TEMPLATE, channel="sms")
    phone = unique_phone()
    request = sms_request(event_id, phone, "crash")
    rendered = render_message(compile_message(Channel.SMS, SMS_TEMPLATE),
                              template_context(request.ctx, None, {}))
    payload = sms_payload(request, rendered, settings.sms_sender_id)  # what the sender posts
    first = await http.post(f"{PROVIDER}/sms", headers={"Idempotency-Key": request.messageId,
                                                      "content-type": "application/json"},
                            content=payload.model_dump_json())
    assert first.status_code == 202
    await pool.execute("INSERT INTO deliveries (message_id, tenant_id, pkey, channel, state)"
                       " VALUES ($1, $2, $3, 'sms', 'sending')",
                       uuid.UUID(request.messageId), TENANT, request.origin.pKey)
    await produce(producer, request)

    async def settled() -> asyncpg.Record | None:
        row = await ledger_row(pool, request)
        return row if row["state"] != "sending" else None

    row = await eventually(settled, "the resent message to settle")
    assert row["state"] == "sent" and row["attempts"] == 2
    assert row["detail"] == first.json()["id"]  # the provider's first answer, replayed
    assert len(await provider_messages(http, "sms", phone)) == 1


async def test_the_provider_sink_saw_no_message_twice(http: httpx.AsyncClient) -> None:
    assert (await http.get(f"{PROVIDER}/duplicates")).json() == {}
