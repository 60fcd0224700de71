"""B1: the raw aiokafka producer, batched, acks=all, idempotent — the ceiling for ingestion.

Records are the gateway's own trigger records (same size and keys), written to a
bench-only topic that no service reads; it keeps 15 minutes of data so runs don't pile up.
"""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.common import BENCH_TOPIC, RUNS, Row, ingest_bodies, progress, settings, trigger_record
from bench.stats import median

PARTITIONS = 6  # as parcours.events.in.v1
TOPIC_ALREADY_EXISTS = 36


async def ensure_bench_topic() -> None:
    # Broker auto-creation is off, so the topic is created here, once.
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap,
                                request_timeout_ms=10_000)
    await admin.start()
    try:
        if BENCH_TOPIC in await admin.list_topics():
            return
        response = await admin.create_topics([NewTopic(
            BENCH_TOPIC, PARTITIONS, 1,
            topic_configs={"retention.ms": "900000", "segment.bytes": "16777216"},
        )])
        for topic, code, *rest in response.topic_errors:
            if code not in (0, TOPIC_ALREADY_EXISTS):
                raise RuntimeError(f"creating {topic}: error {code} {rest}")
        progress(f"  created topic {BENCH_TOPIC} ({PARTITIONS} partitions)")
    finally:
        await admin.close()


async def _produce(producer: AIOKafkaProducer, records: list[tuple[bytes, bytes]],
                   count: int) -> float:
    began = time.perf_counter()
    pending = []
    for i in range(count):
        key, value = records[i % len(records)]
        # send() only queues into the batch accumulator (it waits when a batch is full);
        # every record is acknowledged by the broker before the clock stops.
        pending.append(await producer.send(BENCH_TOPIC, value, key=key))
    await asyncio.gather(*pending)
    return count / (time.perf_counter() - began)


async def _measure(count: int) -> list[float]:
    await ensure_bench_topic()
    records = [trigger_record(body) for body in ingest_bodies()]
    # Explicit instead of shared.adapters.kafka.safe_producer: same guarantees (acks=all,
    # idempotent) but with linger and large batches, which is what "batched" means here.
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", enable_idempotence=True,
        linger_ms=5, max_batch_size=256 * 1024, request_timeout_ms=30_000,
    )
    await producer.start()
    try:
        await producer.send_and_wait(BENCH_TOPIC, records[0][1], key=records[0][0])  # metadata
        rates = []
        for run in range(1, RUNS + 1):
            rate = await _produce(producer, records, count)
            progress(f"  B1 run {run}/{RUNS}: {count:,} records, {rate:,.0f} records/s")
            rates.append(rate)
        return rates
    finally:
        await producer.stop()


def run(quick: bool) -> Row:
    count = 20_000 if quick else 100_000
    record_bytes = len(trigger_record(ingest_bodies(1)[0])[1])
    progress(f"B1 raw aiokafka producer: {RUNS} × {count:,} records of {record_bytes} bytes "
             f"to {BENCH_TOPIC}")
    rates = asyncio.run(asyncio.wait_for(_measure(count), timeout=60 + count / 500))
    figure = median(rates)
    return Row(
        "B1", "raw aiokafka producer, batched, acks=all, idempotent", figure, "records/s",
        details={"runs": rates, "records": count, "record_bytes": record_bytes,
                 "mb_per_s": figure * record_bytes / 1e6},
    )
