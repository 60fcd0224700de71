"""Internal systems produce straight to parcours.events.kafka.v1: validated like HTTP
requests, a status readable with the derived pKey, copies sent once, invalid records
dead-lettered with the reason while the partition keeps flowing. Every record is signed
with a kafka key of its tenant (test_kafka_signing.py tests the signatures)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from shared.domain.pkeys import derive_pkey
from shared.kafka_signing import RecordSigner
from shared.topics import DEADLETTER, EVENTS_KAFKA, SEND_EMAIL_TX
from tests.integration.conftest import (
    GATEWAY,
    SINK,
    TENANT,
    add_profile,
    dead_letter_of,
    drained,
    end_offsets,
    eventually,
    final_status,
    mails_to,
    publish_event,
    settings,
    unique_email,
)


def produced(event_id: str, to: str, **fields: Any) -> dict[str, Any]:
    """A record of an email event; a field set to None is left out."""
    record = {"tenant": TENANT, "eventId": event_id, "eventKey": f"order-{uuid.uuid4().hex}",
              "email": to, "ctx": {"item": "shoes", "price": 89.9}, **fields}
    return {k: v for k, v in record.items() if v is not None}


Produce = Callable[[dict[str, Any] | bytes, str], Awaitable[None]]


@pytest.fixture
def produce(producer: AIOKafkaProducer, signer: RecordSigner) -> Produce:
    """Produce a record (or raw bytes) signed with a kafka key of the default tenant."""

    async def send(record: dict[str, Any] | bytes, key: str) -> None:
        value = record if isinstance(record, bytes) else orjson.dumps(record)
        await producer.send_and_wait(EVENTS_KAFKA.name, value, key.lower().encode(),
                                     headers=signer.headers(value))

    return send


def href(record: dict[str, Any]) -> str:
    pkey = derive_pkey(settings.pkey_secret.encode(), record["tenant"], record["eventId"],
                       record["eventKey"])
    return f"/v1/events/{record['eventId']}/{pkey}"




async def test_a_record_produced_to_kafka_becomes_an_email_with_a_readable_status(
    http: httpx.AsyncClient, pool: asyncpg.Pool, produce: Produce
) -> None:
    event_id = await publish_event(pool, "profile")
    email = unique_email("kafka")
    await add_profile(pool, email, "Ada")
    record = produced(event_id, email)
    await produce(record, email)
    status = await final_status(http, href(record))
    assert status["status"] == "processed", status
    [mail] = await mails_to(http, email)
    assert mail["subject"] == "Hello Ada, about shoes"
    # The producer reads it by its own key, without knowing the pKey secret.
    by_key = await http.get(f"{GATEWAY}/v1/events/{event_id}/keys/{record['eventKey']}")
    assert by_key.json() == status


async def test_a_record_produced_three_times_is_sent_once(
    http: httpx.AsyncClient, pool: asyncpg.Pool, produce: Produce
) -> None:
    event_id = await publish_event(pool, "event")
    email, marker_email = unique_email("thrice"), unique_email("marker")
    record = produced(event_id, email)
    for _ in range(3):
        await produce(record, email)
    marker = produced(event_id, marker_email)  # behind the copies, on the same partition
    await produce(marker, email)
    assert (await final_status(http, href(marker)))["status"] == "processed"
    assert (await final_status(http, href(record)))["status"] == "processed"
    await eventually(lambda: drained("parcours-sender-email", SEND_EMAIL_TX),
                     "the email sender to drain")
    assert len(await mails_to(http, email)) == 1
    assert (await http.get(f"{SINK}/duplicates")).json() == {}


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"ctx": {"item": "x", "price": "cheap"}},
         "invalid: ctx.price: Input should be a valid decimal"),
        ({"ctx": {"item": "x", "quantity": "2"}},
         "invalid: ctx.quantity: Input should be a valid integer"),
        ({"ctx": {"item": "x", "colour": "red"}},
         "invalid: ctx.colour: Extra inputs are not permitted"),
        ({"source": "billing"}, "invalid: source: Extra inputs are not permitted"),
        ({"ctx": {"price": 1}}, "invalid: ctx.item: Field required"),
        ({"email": None}, "invalid: email: Field required"),
        ({"eventId": "EVTneverPublished"},
         "unknown_event: event EVTneverPublished is not published"),
    ],
)
async def test_an_invalid_record_is_dead_lettered_with_a_status_and_the_partition_flows(
    http: httpx.AsyncClient, pool: asyncpg.Pool, produce: Produce,
    fields: dict[str, Any], reason: str,
) -> None:
    event_id = await publish_event(pool, "event")
    email = unique_email("bad")
    before = await end_offsets(DEADLETTER)
    bad = produced(event_id, email, **fields)
    await produce(bad, email)
    good = produced(event_id, email)  # same key: same partition, behind the bad one
    await produce(good, email)

    assert (await final_status(http, href(good)))["status"] == "processed"
    status = await final_status(http, href(bad))
    assert status["status"] == "routingFailed" and status["reason"] == reason, status
    letter = await dead_letter_of(before, bad["eventKey"])
    assert letter["stage"] == "processor" and letter["reason"] == reason
    assert orjson.loads(letter["original"]) == bad  # replayable as is
    assert len(await mails_to(http, email)) == 1


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"tenant": "default", "eventKey": "%s"', "invalid: Invalid JSON"),
        (b'{"tenant": "default", "eventId": "EVTx", "note": "%s"}',
         "invalid: eventKey: Field required"),
    ],
)
async def test_a_record_that_names_no_event_is_dead_lettered_and_the_partition_flows(
    http: httpx.AsyncClient, pool: asyncpg.Pool, produce: Produce,
    raw: bytes, reason: str,
) -> None:
    event_id = await publish_event(pool, "event")
    email, marker = unique_email("unnamed"), uuid.uuid4().hex
    before = await end_offsets(DEADLETTER)
    await produce(raw.replace(b"%s", marker.encode()), email)
    good = produced(event_id, email)
    await produce(good, email)
    assert (await final_status(http, href(good)))["status"] == "processed"
    letter = await dead_letter_of(before, marker)
    assert letter["reason"].startswith(reason)


async def test_a_burst_of_invalid_records_does_not_hold_up_a_valid_one(
    http: httpx.AsyncClient, pool: asyncpg.Pool, producer: AIOKafkaProducer,
    signer: RecordSigner, produce: Produce,
) -> None:
    event_id = await publish_event(pool, "event")
    email = unique_email("burst")
    for _ in range(200):
        value = orjson.dumps(produced(event_id, email, ctx={"item": 1}))
        await producer.send(EVENTS_KAFKA.name, value, email.encode(),
                            headers=signer.headers(value))
    good = produced(event_id, email)
    await produce(good, email)
    status = await final_status(http, href(good), deadline_s=10)
    assert status["status"] == "processed"


async def test_an_invalid_copy_of_a_processed_event_leaves_its_status(
    http: httpx.AsyncClient, pool: asyncpg.Pool, produce: Produce
) -> None:
    event_id = await publish_event(pool, "event")
    email = unique_email("copy")
    record = produced(event_id, email)
    await produce(record, email)
    assert (await final_status(http, href(record)))["status"] == "processed"
    before = await end_offsets(DEADLETTER)
    copy = {**record, "ctx": {"item": "x", "colour": "red"}}
    await produce(copy, email)
    letter = await dead_letter_of(before, '"colour"')
    assert record["eventKey"] in letter["original"]
    assert (await http.get(GATEWAY + href(record))).json()["status"] == "processed"
    assert len(await mails_to(http, email)) == 1
