"""``kafka.gathered_fetch`` on the real broker: under a stream of produce requests a
consumer fetching in bulk gets the records in fewer, larger fetches than one with
aiokafka's defaults (each fetch, and the commit after it, costs the broker about the
same whatever it holds), and a lone record still arrives about the wait later, not once
256 KB have gathered."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from shared.adapters.kafka import gathered_fetch
from shared.adapters.producer import RenewingProducer
from shared.settings import get_settings
from tests.integration.conftest import scratch_topic

settings = get_settings()
PARTITIONS = 6
ROUNDS, PER_ROUND = 20, 60  # a relay-like stream: a produce request every 50 ms
VALUE = b"x" * 500


@pytest.fixture
async def topic() -> AsyncIterator[str]:
    async with scratch_topic("gathered", PARTITIONS) as name:
        yield name


async def started(topic: str, **options: Any) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=settings.kafka_bootstrap,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                **options)
    await consumer.start()
    return consumer


async def fetches_for(consumer: AIOKafkaConsumer, count: int, deadline_s: float) -> int:
    """How many non-empty answers ``getmany`` gave until ``count`` records were read."""
    read = answers = 0
    end = time.monotonic() + deadline_s
    while read < count:
        assert time.monotonic() < end, f"{read} of {count} records read in {deadline_s} s"
        batches = await consumer.getmany(timeout_ms=500)
        got = sum(len(records) for records in batches.values())
        read += got
        answers += bool(got)
    return answers


async def test_a_stream_comes_in_fewer_fetches_and_a_lone_record_comes_soon(
    topic: str
) -> None:
    bulk = await started(topic, **gathered_fetch(100))
    eager = await started(topic)
    producer = RenewingProducer(settings, "test-gathered")
    await producer.start()
    try:
        total = ROUNDS * PER_ROUND
        counting = [asyncio.create_task(fetches_for(c, total, 60)) for c in (bulk, eager)]
        for n in range(ROUNDS):
            written = await producer.deliver_batched(
                [(topic, VALUE, f"k-{n}-{i}".encode(), []) for i in range(PER_ROUND)], 30.0)
            assert all(written)
            await asyncio.sleep(0.05)  # the stream's pace, not a wait for a result
        bulk_answers, eager_answers = await asyncio.gather(*counting)
        assert bulk_answers < eager_answers, (bulk_answers, eager_answers)

        assert all(await producer.deliver_batched([(topic, VALUE, b"lone", [])], 30.0))
        started_at = time.monotonic()
        assert await fetches_for(bulk, 1, 10) == 1
        # the fetch's wait (0.1 s) and the loop's; far from the 256 KB it never reaches
        assert time.monotonic() - started_at < 2.0
    finally:
        await producer.stop()
        await bulk.stop()
        await eager.stop()
