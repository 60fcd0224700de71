"""``RenewingProducer.deliver_batched`` (the /batch route's producer path) on the real
broker: every record written once, on the partition ``send`` would pick for its key, in
order; an oversized record refused alone; nothing acknowledged past the deadline."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared.adapters.producer import RenewingProducer
from shared.settings import get_settings
from tests.integration.conftest import eventually, scratch_topic

settings = get_settings()
PARTITIONS = 6


@pytest.fixture
async def topic() -> AsyncIterator[str]:
    async with scratch_topic("batched", PARTITIONS) as name:
        yield name


@pytest.fixture
async def producer() -> AsyncIterator[RenewingProducer]:
    renewing = RenewingProducer(settings, "test-batched", max_batch_size=64 * 1024)
    await renewing.start()
    try:
        yield renewing
    finally:
        await renewing.stop()


async def read_all(topic: str, count: int) -> dict[int, list[tuple[bytes, bytes]]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=settings.kafka_bootstrap,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    found: dict[int, list[tuple[bytes, bytes]]] = {}

    async def everything() -> bool | None:
        for tp, records in (await consumer.getmany(timeout_ms=200)).items():
            found.setdefault(tp.partition, []).extend((r.key, r.value) for r in records)
        return True if sum(map(len, found.values())) >= count else None

    try:
        await eventually(everything, f"{count} records on {topic}", deadline_s=30)
        extra = await consumer.getmany(timeout_ms=500)  # and no more than that
        assert not any(extra.values()), extra
    finally:
        await consumer.stop()
    return found


async def where_send_puts(topic: str, keys: list[bytes]) -> dict[bytes, int]:
    """The partition aiokafka's own ``send`` picks for each key (its default partitioner)."""
    plain = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await plain.start()
    try:
        await plain.partitions_for(topic)
        return {key: plain._partition(topic, None, None, None, key, b"") for key in keys}
    finally:
        await plain.stop()


async def test_every_record_is_written_once_on_its_keys_partition_in_order(
    topic: str, producer: RenewingProducer
) -> None:
    keys = [f"user-{i % 97}@example.com".encode() for i in range(3000)]
    records = [(topic, b"%d:" % i + b"x" * 200, key) for i, key in enumerate(keys)]
    acknowledged = await producer.deliver_batched(records, 30)
    assert acknowledged == [True] * len(records)
    found = await read_all(topic, len(records))
    expected = await where_send_puts(topic, sorted(set(keys)))
    for partition, written in found.items():
        assert {expected[key] for key, _ in written} == {partition}
        numbers = [int(value.split(b":")[0]) for _, value in written]
        assert numbers == sorted(numbers)  # in the order given
    assert sorted(int(v.split(b":")[0]) for w in found.values() for _, v in w) == list(
        range(len(records)))
    assert producer.renewals == 0


async def test_a_record_too_large_for_a_request_is_refused_alone(
    topic: str, producer: RenewingProducer
) -> None:
    records = [(topic, b"small", b"a"), (topic, b"y" * 1_100_000, b"a"), (topic, b"last", b"a")]
    assert await producer.deliver_batched(records, 30) == [True, False, True]
    found = await read_all(topic, 2)
    assert [value for w in found.values() for _, value in w] == [b"small", b"last"]
    assert producer.renewals == 0


async def test_past_the_deadline_nothing_is_acknowledged(producer: RenewingProducer) -> None:
    """A topic the broker does not have: no metadata comes, the deadline ends the wait."""
    missing = f"parcours.test.missing.{uuid.uuid4().hex[:8]}"
    started = asyncio.get_running_loop().time()
    assert await producer.deliver_batched([(missing, b"v", b"k")] * 3, 1.0) == [False] * 3
    assert asyncio.get_running_loop().time() - started < 5
    # the producer still writes elsewhere
    assert producer.ready


async def test_no_producer_no_records(producer: RenewingProducer) -> None:
    assert await producer.deliver_batched([], 1.0) == []
