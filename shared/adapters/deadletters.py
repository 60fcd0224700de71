"""Reading ``parcours.deadletter.v1`` over a time window or by id, and producing replays
(``parcours deadletters``). No consumer group: reading commits nothing and moves no one."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from shared.adapters.kafka import client_security, safe_producer, window_batches
from shared.domain.deadletter import DeadLetter, Filter, Replay
from shared.settings import Settings
from shared.topics import DEADLETTER

Progress = Callable[[int, int], None]  # (records read, records to read)


@dataclass(frozen=True)
class Found:
    """A dead letter as read: its id (``partition:offset``), its key (the original's)."""

    id: str
    key: bytes | None
    letter: DeadLetter | None  # None: not a dead letter this version can read
    raw: bytes


def _found(record: Any) -> Found:  # an aiokafka ConsumerRecord
    value: bytes = record.value or b""
    try:
        letter: DeadLetter | None = DeadLetter.model_validate_json(value)
    except ValidationError:
        letter = None
    return Found(f"{record.partition}:{record.offset}", record.key, letter, value)


def _consumer(settings: Settings) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None,
                            enable_auto_commit=False, **client_security(settings))


async def read_window(settings: Settings, selected: Filter, progress: Progress | None = None,
                      keep: int | None = None) -> tuple[list[Found], int, int]:
    """The dead letters ``selected`` selects, oldest first (only the latest ``keep``, so a
    week of letters is counted in bounded memory), how many matched and how many were
    read: every partition from the first record at or after ``since`` to the end offsets
    taken at the start (letters written meanwhile are left for the next call)."""
    consumer = _consumer(settings)
    await consumer.start()
    partitions = [TopicPartition(DEADLETTER.name, p) for p in range(DEADLETTER.partitions)]
    kept: dict[int, deque[Found]] = {tp.partition: deque(maxlen=keep) for tp in partitions}
    matched, read, total = 0, 0, 0

    def told(n: int) -> None:
        nonlocal total
        total = n

    try:
        async for tp, records in window_batches(consumer, partitions, selected.since,
                                                selected.until, on_total=told):
            for record in records:
                read += 1
                one = _found(record)
                if one.letter is not None and selected.selects(one.letter, one.key):
                    matched += 1
                    kept[tp.partition].append(one)
            if progress is not None:
                progress(read, total)
    finally:
        await consumer.stop()
    found = sorted((f for letters in kept.values() for f in letters),
                   key=lambda f: f.letter.at if f.letter else 0.0)
    return found[-keep:] if keep else found, matched, read


async def read_ids(settings: Settings, ids: Sequence[tuple[int, int]],
                   timeout_s: float = 10.0) -> dict[tuple[int, int], Found]:
    """The dead letters at these (partition, offset); an id past the end or expired is
    left out."""
    ids = [(p, o) for p, o in ids if p < DEADLETTER.partitions]  # as in shared/topics.py
    found: dict[tuple[int, int], Found] = {}
    if not ids:
        return found
    consumer = _consumer(settings)
    await consumer.start()
    try:
        for partition, offset in ids:
            tp = TopicPartition(DEADLETTER.name, partition)
            consumer.assign([tp])
            first = (await consumer.beginning_offsets([tp]))[tp]
            end = (await consumer.end_offsets([tp]))[tp]
            if not first <= offset < end:
                continue  # expired (retention) or never written
            consumer.seek(tp, offset)
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                records = (await consumer.getmany(tp, timeout_ms=500, max_records=1)).get(tp)
                if records:
                    if records[0].offset == offset:
                        found[(partition, offset)] = _found(records[0])
                    break
    finally:
        await consumer.stop()
    return found


async def produce(settings: Settings, replays: Sequence[Replay]) -> None:
    """Each record to its topic as it was (key, value, headers, timestamp), acknowledged
    by every in-sync replica before this returns; any failure raises."""
    producer = safe_producer(settings.kafka_bootstrap, settings.kafka_request_timeout_ms,
                             **client_security(settings))
    await producer.start()
    try:
        futures = [await producer.send(r.topic, r.value, key=r.key, headers=r.headers,
                                       timestamp_ms=r.timestamp_ms) for r in replays]
        for future in futures:
            await future
    finally:
        await producer.stop()
