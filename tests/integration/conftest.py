"""Fixtures for tests on the real local stack (``make up``): Kafka, PostgreSQL, the SMTP
sink and the services, reached over their real protocols. Nothing here is mocked."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from shared.adapters.catalog_store import save_event
from shared.adapters.kafka import safe_producer
from shared.adapters.key_store import create_key
from shared.adapters.postgres import create_pool
from shared.adapters.profile_store import upsert_profiles
from shared.domain.api_keys import Scope
from shared.domain.events import EventConfig
from shared.domain.status import TERMINAL
from shared.kafka_signing import RecordSigner
from shared.settings import get_settings
from shared.topics import DEADLETTER, Topic

settings = get_settings()
ROOT = Path(__file__).resolve().parents[2]
GATEWAY = f"http://127.0.0.1:{settings.gateway_port}"
SINK = f"http://127.0.0.1:{settings.smtp_sink_http_port}"
BULK_SINK = f"http://127.0.0.1:{settings.smtp_bulk_sink_http_port}"  # the bulk relay's
ADMIN = f"http://127.0.0.1:{settings.admin_port}/admin/v1"
PROVIDER = f"http://127.0.0.1:{settings.provider_sink_port}"  # the SMS and push providers'

TENANT = "default"
T = TypeVar("T")

pytestmark = pytest.mark.integration


async def eventually(
    probe: Callable[[], Awaitable[T | None]], what: str, deadline_s: float = 15
) -> T:
    """Poll until ``probe`` returns something truthy; fail with ``what`` at the deadline."""
    end = time.monotonic() + deadline_s
    while True:
        result = await probe()
        if result:
            return result
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {deadline_s}s waiting for {what}")
        await asyncio.sleep(0.05)


def stack(*args: str) -> None:
    subprocess.run([sys.executable, str(ROOT / "deploy/local/stack.py"), *args], check=True)


@pytest.fixture(scope="session", autouse=True)
def stack_is_up() -> None:
    try:
        httpx.get(f"{GATEWAY}/health/ready", timeout=2).raise_for_status()
        httpx.get(f"{SINK}/health/ready", timeout=2).raise_for_status()
    except httpx.HTTPError as error:
        pytest.fail(f"the local stack is not running ({error}); start it with `make up`")


@pytest.fixture(scope="session")
async def pool() -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(settings.pg_dsn)
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
async def ingest_key(pool: asyncpg.Pool) -> str:
    async with pool.acquire() as connection:
        return await create_key(connection, TENANT, Scope.INGEST, "tests")


@pytest.fixture(scope="session")
async def admin_key(pool: asyncpg.Pool) -> str:
    async with pool.acquire() as connection:
        return await create_key(connection, TENANT, Scope.ADMIN, "tests")


async def kafka_signer(pool: asyncpg.Pool, tenant: str = TENANT) -> RecordSigner:
    """A new kafka key of ``tenant``, to sign records produced straight to Kafka."""
    async with pool.acquire() as connection:
        return RecordSigner(await create_key(
            connection, tenant, Scope.KAFKA, "tests",
            kafka_signing_secret=settings.kafka_signing_secret.encode()))


@pytest.fixture(scope="session")
async def signer(pool: asyncpg.Pool) -> RecordSigner:
    """Signs records of the default tenant for parcours.events.kafka.v1."""
    return await kafka_signer(pool)


@pytest.fixture(scope="session")
async def admin(admin_key: str) -> AsyncIterator[httpx.AsyncClient]:
    """The admin API, with an admin key of the default tenant."""
    headers = {"authorization": f"Bearer {admin_key}"}
    async with httpx.AsyncClient(base_url=ADMIN, headers=headers, timeout=30) as client:
        yield client


@pytest.fixture(scope="session")
async def http(ingest_key: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the ingestion API with an ingestion key (and of the sinks)."""
    headers = {"authorization": f"Bearer {ingest_key}"}
    async with httpx.AsyncClient(timeout=30, headers=headers) as client:
        yield client


def unique_email(label: str = "user") -> str:
    return f"{label}-{uuid.uuid4().hex[:12]}@example.com"


DEFAULT_TEMPLATE = {
    "subject": "Hello {{ profile.first_name or 'there' }}, about {{ ctx.item }}",
    "html": "<p>{{ ctx.item }} for {{ profile.first_name }}</p>",
    "text": "{{ ctx.item }} for {{ profile.first_name }} at {{ ctx.price }}",
}


async def publish_event(
    pool: asyncpg.Pool, targeting: str = "profile", template: dict[str, Any] | None = None,
    channel: str = "email", tenant: str = TENANT,
) -> str:
    event_id = f"EVTtest{uuid.uuid4().hex[:10]}"
    config = EventConfig.model_validate({
        "event_id": event_id, "label": "test", "channel": channel, "targeting": targeting,
        "fields": [{"id": "item", "type": "string", "required": True},
                   {"id": "price", "type": "decimal"},
                   {"id": "quantity", "type": "integer"}],
    })
    await save_event(pool, tenant, config, template or DEFAULT_TEMPLATE)
    return event_id


@pytest.fixture
async def profile_event(pool: asyncpg.Pool) -> str:
    return await publish_event(pool, "profile")


async def add_profile(pool: asyncpg.Pool, email: str, first_name: str) -> None:
    async with pool.acquire() as connection:
        await upsert_profiles(connection, TENANT, [
            {"profile_id": f"p-{uuid.uuid4().hex[:12]}", "email": email, "first_name": first_name}
        ])


async def final_status(
    http: httpx.AsyncClient, href: str, deadline_s: float = 15
) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        body: dict[str, Any] = (await http.get(GATEWAY + href)).json()
        return body if body["status"] in TERMINAL else None

    return await eventually(probe, f"a final status at {href}", deadline_s)


async def mails_to(
    http: httpx.AsyncClient, email: str, sink: str = SINK
) -> list[dict[str, Any]]:
    response = await http.get(f"{sink}/messages", params={"to": email})
    response.raise_for_status()
    messages: list[dict[str, Any]] = response.json()
    return messages


async def provider_messages(
    http: httpx.AsyncClient, channel: str, to: str
) -> list[dict[str, Any]]:
    """What the provider sink received on ``channel`` (sms, push) for ``to``."""
    response = await http.get(f"{PROVIDER}/messages", params={"channel": channel, "to": to})
    response.raise_for_status()
    messages: list[dict[str, Any]] = response.json()
    return messages


async def drained(group: str, topic: Topic) -> bool:
    """Whether ``group`` has committed every record of ``topic`` written so far."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    ends = await end_offsets(topic)
    return all(
        committed.get(TopicPartition(topic.name, p)) is not None
        and committed[TopicPartition(topic.name, p)].offset >= end
        for p, end in ends.items()
    )


@asynccontextmanager
async def scratch_topic(label: str, partitions: int) -> AsyncIterator[str]:
    """A topic of the test's own (``parcours.test.<label>.<random>``), deleted after it."""
    name = f"parcours.test.{label}.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
        yield name
    finally:
        await admin.delete_topics([name])
        await admin.close()


async def end_offsets(topic: Topic) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic.name, p) for p in range(topic.partitions)]
        offsets = await consumer.end_offsets(partitions)
        assert len(offsets) == topic.partitions
        return {tp.partition: offset for tp, offset in offsets.items()}
    finally:
        await consumer.stop()


@pytest.fixture(scope="session")
async def producer() -> AsyncIterator[AIOKafkaProducer]:
    """A safe producer, for tests that write straight to Kafka."""
    producer = safe_producer(settings.kafka_bootstrap, 10_000)
    await producer.start()
    yield producer
    await producer.stop()


@asynccontextmanager
async def topic_reader(topic: Topic, before: dict[int, int]
                       ) -> AsyncIterator[AIOKafkaConsumer]:
    """A consumer of ``topic`` (no group) from the offsets ``before`` (end_offsets)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic.name, p) for p in before]
        consumer.assign(partitions)
        for tp in partitions:
            consumer.seek(tp, before[tp.partition])
        yield consumer
    finally:
        await consumer.stop()


def dead_letter_reader(before: dict[int, int]
                       ) -> AbstractAsyncContextManager[AIOKafkaConsumer]:
    """A consumer of the dead-letter topic from the offsets ``before`` (end_offsets)."""
    return topic_reader(DEADLETTER, before)


async def dead_letter_where(
    before: dict[int, int], wanted: Callable[[ConsumerRecord[Any, Any], dict[str, Any]], bool],
    what: str,
) -> dict[str, Any]:
    """The first dead letter written after ``before`` that is ``wanted`` (record, letter)."""
    async with dead_letter_reader(before) as consumer:
        async def found() -> dict[str, Any] | None:
            batches = await consumer.getmany(timeout_ms=200)
            letters = [(r, orjson.loads(r.value)) for rs in batches.values() for r in rs]
            return next((letter for r, letter in letters if wanted(r, letter)), None)

        return await eventually(found, what)


async def dead_letter_of(before: dict[int, int], marker: str) -> dict[str, Any]:
    """The dead letter whose original record contains ``marker``, written after ``before``."""
    return await dead_letter_where(before, lambda _r, letter: marker in letter["original"],
                                   f"a dead letter for {marker}")
