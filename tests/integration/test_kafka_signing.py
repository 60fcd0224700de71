"""A record produced straight to Kafka acts for a tenant only when signed with a kafka key
of that tenant (shared/domain/record_signing.py): on the real processor, a forged,
unsigned, tampered or revoked record is dead-lettered with the reason, writes no status
for the tenant it names and sends nothing, while the records behind it flow."""

from __future__ import annotations

import asyncio
import re
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared.adapters.key_store import create_key, create_tenant, revoke_key
from shared.domain.api_keys import Scope, format_key, parse_key
from shared.domain.pkeys import derive_pkey
from shared.domain.record_signing import signed_headers
from shared.kafka_signing import RecordSigner
from shared.topics import DEADLETTER, EVENTS_KAFKA
from tests.integration.conftest import (
    ROOT,
    dead_letter_of,
    dead_letter_reader,
    end_offsets,
    eventually,
    kafka_signer,
    mails_to,
    publish_event,
    settings,
    unique_email,
)

PROCESSOR_METRICS = f"http://127.0.0.1:{settings.processor_metrics_port}/metrics"


class Tenant:
    def __init__(self, tenant: str, event_id: str, signer: RecordSigner) -> None:
        self.tenant, self.event_id, self.signer = tenant, event_id, signer

    def record(self, to: str, **fields: Any) -> dict[str, Any]:
        return {"tenant": self.tenant, "eventId": self.event_id,
                "eventKey": f"order-{uuid.uuid4().hex}", "email": to,
                "ctx": {"item": "shoes", "price": 89.9}, **fields}


async def new_tenant(pool: asyncpg.Pool, label: str) -> Tenant:
    tenant = f"{label}-{uuid.uuid4().hex[:8]}"
    async with pool.acquire() as connection:
        await create_tenant(connection, tenant, f"Tenant {label}")
    event_id = await publish_event(pool, "event", tenant=tenant)
    return Tenant(tenant, event_id, await kafka_signer(pool, tenant))


@pytest.fixture
async def acme(pool: asyncpg.Pool) -> Tenant:
    return await new_tenant(pool, "acme")


@pytest.fixture
async def globex(pool: asyncpg.Pool) -> Tenant:
    return await new_tenant(pool, "globex")


async def send(producer: AIOKafkaProducer, value: bytes, to: str,
               headers: list[tuple[str, bytes]] | None) -> None:
    await producer.send_and_wait(EVENTS_KAFKA.name, value, to.lower().encode(),
                                 headers=headers or None)


async def send_signed(producer: AIOKafkaProducer, record: dict[str, Any],
                      signer: RecordSigner) -> bytes:
    value = orjson.dumps(record)
    await send(producer, value, record["email"], signer.headers(value))
    return value


def pkey_of(record: dict[str, Any]) -> str:
    return derive_pkey(settings.pkey_secret.encode(), record["tenant"], record["eventId"],
                       record["eventKey"])


async def status_of(pool: asyncpg.Pool, record: dict[str, Any]) -> str | None:
    status: str | None = await pool.fetchval(
        "SELECT status FROM event_status WHERE pkey = $1 AND tenant_id = $2",
        pkey_of(record), record["tenant"])
    return status


async def processed(pool: asyncpg.Pool, record: dict[str, Any]) -> None:
    async def done() -> bool:
        return await status_of(pool, record) == "processed"

    await eventually(done, f"{record['eventKey']} processed")


async def refused_quietly(
    pool: asyncpg.Pool, http: httpx.AsyncClient, producer: AIOKafkaProducer,
    before: dict[int, int], record: dict[str, Any], behind: Tenant,
) -> dict[str, Any]:
    """The dead letter of ``record`` (already produced), once a valid record of ``behind``
    produced after it to the same partition is processed; ``record`` has no status and
    nothing was sent to its address."""
    marker = behind.record(record["email"])
    await send_signed(producer, marker, behind.signer)
    await processed(pool, marker)
    letter = await dead_letter_of(before, record["eventKey"])
    assert letter["stage"] == "processor"
    assert await status_of(pool, record) is None
    assert await pool.fetchval("SELECT count(*) FROM event_status WHERE pkey = $1",
                               pkey_of(record)) == 0
    assert await eventually(lambda: mails_to(http, record["email"]), "the marker's mail")
    assert [m["subject"] for m in await mails_to(http, record["email"])] == [
        "Hello there, about shoes"]  # the marker's only
    return letter


async def test_a_record_for_another_tenant_signed_with_my_key_is_refused_and_writes_nothing(
    pool: asyncpg.Pool, http: httpx.AsyncClient, producer: AIOKafkaProducer,
    acme: Tenant, globex: Tenant,
) -> None:
    before = await end_offsets(DEADLETTER)
    forged = globex.record(unique_email("forged"))
    value = await send_signed(producer, forged, acme.signer)  # globex's record, acme's key
    letter = await refused_quietly(pool, http, producer, before, forged, behind=acme)
    assert letter["reason"] == ("forbidden: the record names a tenant its signing key does "
                                "not belong to")
    assert acme.tenant not in letter["reason"] and globex.tenant not in letter["reason"]
    assert orjson.loads(letter["original"]) == forged

    # The forger burnt nothing: the very same bytes, signed by globex, are globex's event.
    await send(producer, value, forged["email"], globex.signer.headers(value))
    await processed(pool, forged)
    assert len(await eventually(
        lambda: _mails_at_least(http, forged["email"], 2), "globex's mail")) == 2


async def _mails_at_least(http: httpx.AsyncClient, to: str, count: int) -> list[Any] | None:
    mails = await mails_to(http, to)
    return mails if len(mails) >= count else None


def _tampered(record: dict[str, Any], signer: RecordSigner) -> tuple[bytes, Any]:
    value = orjson.dumps(record)
    return value.replace(b"89.9", b"0.01"), signer.headers(value)


def _another_secret(record: dict[str, Any], signer: RecordSigner) -> tuple[bytes, Any]:
    value = orjson.dumps(record)  # the right key id, a secret that is not its own
    return value, signed_headers(signer.key_id, "A" * 43, value)


def _made_up_key(record: dict[str, Any], signer: RecordSigner) -> tuple[bytes, Any]:
    value = orjson.dumps(record)
    return value, signed_headers("zzzz" + uuid.uuid4().hex[:8], "A" * 43, value)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda r, s: (orjson.dumps(r), None),
         "unsigned: the record has no parcours-key-id header"),
        (lambda r, s: (orjson.dumps(r), s.headers(orjson.dumps(r))[:1]),
         "unsigned: the record has no parcours-signature header"),
        (_tampered, "unauthenticated: the signature does not match the record's value"),
        (_another_secret, "unauthenticated: the signature does not match the record's value"),
        (_made_up_key, "unauthenticated: the signature does not match the record's value"),
    ],
    ids=["unsigned", "no-signature", "tampered", "another-secret", "made-up-key"],
)
async def test_an_unsigned_or_badly_signed_record_is_refused_saying_why(
    pool: asyncpg.Pool, http: httpx.AsyncClient, producer: AIOKafkaProducer,
    acme: Tenant, make: Any, reason: str,
) -> None:
    before = await end_offsets(DEADLETTER)
    record = acme.record(unique_email("unsigned"))
    value, headers = make(record, acme.signer)
    await send(producer, value, record["email"], headers)
    letter = await refused_quietly(pool, http, producer, before, record, behind=acme)
    assert letter["reason"].startswith(reason), letter


async def test_an_ingest_key_cannot_sign(
    pool: asyncpg.Pool, http: httpx.AsyncClient, producer: AIOKafkaProducer, acme: Tenant,
) -> None:
    """An ingest key's secret is random, not derived: its signature never verifies."""
    async with pool.acquire() as connection:
        ingest = parse_key(await create_key(connection, acme.tenant, Scope.INGEST, "tests"))
    assert ingest is not None
    before = await end_offsets(DEADLETTER)
    record = acme.record(unique_email("ingest-key"))
    value = orjson.dumps(record)
    await send(producer, value, record["email"],
               RecordSigner(format_key(Scope.KAFKA, ingest.key_id, ingest.secret))
               .headers(value))
    letter = await refused_quietly(pool, http, producer, before, record, behind=acme)
    assert letter["reason"].startswith("unauthenticated: the signature does not match")


async def test_a_revoked_key_stops_signing_within_the_refresh_time(
    pool: asyncpg.Pool, http: httpx.AsyncClient, producer: AIOKafkaProducer,
    acme: Tenant,
) -> None:
    doomed = await kafka_signer(pool, acme.tenant)
    to = unique_email("revoked")
    first = acme.record(to)
    await send_signed(producer, first, doomed)
    await processed(pool, first)  # the key works, and the processor has it cached
    async with pool.acquire() as connection:
        assert await revoke_key(connection, doomed.key_id)
    revoked_at = time.monotonic()
    async with dead_letters() as letters:

        async def a_record_is_refused() -> tuple[dict[str, Any], dict[str, Any]] | None:
            """Produce one more record with the revoked key: its dead letter, or None if
            it was still accepted (the processor had not heard of the revocation)."""
            record = acme.record(to)
            await send_signed(producer, record, doomed)
            end = time.monotonic() + 5
            while time.monotonic() < end:
                await letters.poll()
                letter = letters.find(record["eventKey"])
                if letter is not None:
                    return record, letter
                if await status_of(pool, record) is not None:
                    return None
            return None

        record, letter = await eventually(a_record_is_refused,
                                          "a record of the revoked key refused",
                                          deadline_s=15)  # the cache's 10 s, and a margin
    print(f"revocation effective within {time.monotonic() - revoked_at:.2f} s")
    assert letter["reason"] == "unauthenticated: the signing key is revoked"
    marker = acme.record(to)
    await send_signed(producer, marker, acme.signer)  # the tenant's other key still signs
    await processed(pool, marker)
    assert await status_of(pool, record) is None


class DeadLetters:
    """Dead letters written since it started, read without blocking for long."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self._consumer = consumer
        self._seen: list[dict[str, Any]] = []

    async def poll(self) -> None:
        batches = await self._consumer.getmany(timeout_ms=100)
        self._seen += [orjson.loads(r.value) for rs in batches.values() for r in rs]

    def find(self, marker: str) -> dict[str, Any] | None:
        return next((d for d in self._seen if marker in d["original"]), None)


@asynccontextmanager
async def dead_letters() -> AsyncIterator[DeadLetters]:
    async with dead_letter_reader(await end_offsets(DEADLETTER)) as consumer:
        yield DeadLetters(consumer)


async def processor_key_queries() -> float:
    async with httpx.AsyncClient(timeout=10) as client:
        text = (await client.get(PROCESSOR_METRICS)).text
    match = re.search(r"^parcours_processor_signing_key_queries_total (\S+)$", text, re.M)
    assert match, "the processor exports parcours_processor_signing_key_queries_total"
    return float(match[1])


async def test_a_flood_of_made_up_key_ids_costs_no_key_lookup(
    pool: asyncpg.Pool, producer: AIOKafkaProducer, acme: Tenant,
) -> None:
    to = unique_email("flood")
    warm = acme.record(to)
    await send_signed(producer, warm, acme.signer)
    await processed(pool, warm)  # acme's key is cached now
    queries = await processor_key_queries()
    for _ in range(500):
        value, headers = _made_up_key(acme.record(to), acme.signer)
        await producer.send(EVENTS_KAFKA.name, value, to.encode(), headers=headers)
    marker = acme.record(to)
    await send_signed(producer, marker, acme.signer)
    await processed(pool, marker)
    # The flood costs none: 500 records, at most the marker's key again (it may have left
    # the cache) and a few of tests running beside this one, never one per record.
    assert await processor_key_queries() - queries <= 5


async def test_a_kafka_key_from_the_cli_signs_records_its_tenant_s_events(
    pool: asyncpg.Pool, http: httpx.AsyncClient, producer: AIOKafkaProducer, acme: Tenant,
) -> None:
    cli = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.cli", "keys", "create", "--tenant", acme.tenant,
        "--scope", "kafka", "--label", "billing", cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(cli.communicate(), 60)
    assert cli.returncode == 0, err
    credential = out.decode().strip()
    assert credential.startswith("prc_kafka_") and b"parcours-signature" in err
    record = acme.record(unique_email("cli"))
    await send_signed(producer, record, RecordSigner(credential))
    await processed(pool, record)
    assert await eventually(lambda: mails_to(http, record["email"]), "the mail")
