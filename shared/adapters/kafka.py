"""Kafka producers, consumers and topic creation (aiokafka)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from aiokafka.helpers import create_ssl_context

from shared.domain.deadletter import Source, dead_letter
from shared.settings import Settings, get_settings
from shared.topics import ALL_TOPICS, DEADLETTER, Topic

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # the renewing producer is built on safe_producer, below
    from shared.adapters.producer import RenewingProducer


def client_security(settings: Settings) -> dict[str, Any]:
    """aiokafka's options for authenticating to the broker, for every client we make:
    producers, consumers and the admin client (deploy/kafka/SECURITY.md)."""
    options: dict[str, Any] = {"security_protocol": settings.kafka_security_protocol}
    if settings.kafka_security_protocol.startswith("SASL"):
        password = settings.kafka_sasl_password
        options.update(
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=password.get_secret_value() if password else None,
        )
    if settings.kafka_security_protocol.endswith("SSL"):
        options["ssl_context"] = create_ssl_context(
            cafile=settings.kafka_ssl_cafile, certfile=settings.kafka_ssl_certfile,
            keyfile=settings.kafka_ssl_keyfile)
    return options


def safe_producer(bootstrap: str, request_timeout_ms: int, **options: object) -> AIOKafkaProducer:
    """acks=all and idempotence: a write is acknowledged once it is safe, and retries
    never duplicate it. aiokafka expires unsent batches after ``request_timeout_ms``, so a
    send to a dead broker fails in bounded time instead of hanging."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        request_timeout_ms=request_timeout_ms,
        linger_ms=0,
        **options,  # type: ignore[arg-type]
    )


# What a consumer of a busy topic fetches at least, or after how long (its max_wait_ms):
# a fetch wakes as soon as one byte is there by default, so under a flood every produce
# request costs each group a fetch and a commit — the broker's work a record about the
# same whatever a fetch holds. Measured on a click flood (bench TRACK): the journey
# inputs' consumer at 1 byte cost Kafka 49-61 µs of CPU a click, 7-15 with this.
GATHERED_FETCH_BYTES = 256 * 1024


def gathered_fetch(max_wait_ms: int) -> dict[str, int]:
    """A consumer's options for fetching in bulk: a record waits at most ``max_wait_ms``
    more for company."""
    return {"fetch_min_bytes": GATHERED_FETCH_BYTES, "fetch_max_wait_ms": max_wait_ms}


def manual_consumer(
    bootstrap: str, group: str, *topics: str, **options: object
) -> AIOKafkaConsumer:
    """Offsets are committed by the caller, only after the work is done (at-least-once)."""
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **options,  # type: ignore[arg-type]
    )


async def commit_or_redeliver(consumer: AIOKafkaConsumer,
                              offsets: dict[TopicPartition, int] | None = None) -> None:
    """Commit what the consumer handled (``offsets``: up to these, when it has already
    read further). A refused commit (a rebalance took the partitions away) is no loss:
    the records come again to their new owner, whose writes are idempotent (the delivery
    ledger; last writer wins)."""
    try:
        await consumer.commit(offsets)
    except KafkaError as error:  # CommitFailedError is one
        log.warning("offset commit failed (%s); records will be redelivered", error)


async def window_batches(
    consumer: AIOKafkaConsumer, partitions: Sequence[TopicPartition], since: float,
    until: float, *, max_records: int = 5000, quiet_s: float = 15.0,
    on_total: Callable[[int], None] | None = None,
) -> AsyncIterator[tuple[TopicPartition, list[Any]]]:
    """The records of ``partitions`` written in [``since``, ``until``] (epoch seconds), as
    (partition, records) batches, read by ``consumer`` (started, no group: nothing is
    committed). Each partition is sought to its first record at or after ``since``
    (``offsets_for_times``) and read up to the end offset taken at the start, or to its
    first record past ``until``, whichever comes first: records written meanwhile are left
    for the next reader. ``on_total`` is told once how many records that is at most. No
    record for ``quiet_s`` before the ends: TimeoutError (the broker is away)."""
    consumer.assign(list(partitions))
    starts = await consumer.offsets_for_times({tp: int(since * 1000) for tp in partitions})
    ends = await consumer.end_offsets(list(partitions))
    remaining: dict[TopicPartition, int] = {}
    total = 0
    for tp in partitions:
        start = starts.get(tp)
        if start is not None and start.offset < ends[tp]:
            consumer.seek(tp, start.offset)
            remaining[tp] = ends[tp]
            total += ends[tp] - start.offset
    if on_total is not None:
        on_total(total)
    until_ms, last = until * 1000, time.monotonic()
    while remaining:
        batches = await consumer.getmany(*remaining, timeout_ms=500, max_records=max_records)
        if batches:
            last = time.monotonic()
        elif time.monotonic() - last > quiet_s:
            raise TimeoutError(f"Kafka sent nothing for {quiet_s:.0f} s before the end of"
                               f" {sorted(str(tp) for tp in remaining)[:3]}")
        for tp, records in batches.items():
            end = remaining.get(tp)
            if end is None or not records:
                continue
            kept = len(records)
            for i, record in enumerate(records):
                if record.offset >= end or record.timestamp > until_ms:
                    kept = i  # written after the window, or after the reader started
                    del remaining[tp]
                    break
            else:
                if records[-1].offset + 1 >= end:
                    del remaining[tp]
            if kept:
                yield tp, records[:kept] if kept < len(records) else records


def encode(value: object) -> bytes:
    """``value`` as JSON, in a bytes object of its own size. orjson (3.12 on) answers in
    its working buffer, 4 kB or more whatever the JSON's length: kept by the thousand (a
    batch's records, a cohort's members) each cost a page of memory and its fault, 3 µs
    where the copy costs 0.1 (``python -m bench.encode_cost``)."""
    return b"".join((orjson.dumps(value), b""))


DeadLetterInput = (tuple[bytes | None, bytes, str]
                   | tuple[bytes | None, bytes, str, Source])


async def publish_dead_letters(
    producer: RenewingProducer, stage: str, letters: Sequence[DeadLetterInput],
    topic: str | None = None,
) -> None:
    """(key, original record, reason), and where it was read (a ``Source``: its topic, its
    headers such as a signature, its timestamp) when the stage reads several topics or
    signed ones; else ``topic``, the stage's one input. Kept so that ``parcours
    deadletters replay`` can produce the record again as it was. Sent together and awaited
    together, so a burst of bad records costs a few produce requests, not one round trip
    each."""
    at = time.time()
    records = []
    for letter in letters:
        key, raw, reason = letter[:3]
        source = letter[3] if len(letter) == 4 else Source(topic) if topic else None
        records.append((DEADLETTER.name, encode(
            dead_letter(stage, reason, raw, at, source).model_dump(exclude_none=True)), key))
    await producer.deliver_all(records)


async def ensure_topics(
    settings: Settings, topics: tuple[Topic, ...] = ALL_TOPICS
) -> list[str]:
    """Create the catalogue's missing topics with their configs (``Topic.config``:
    cleanup.policy, retention); existing ones are left as they are."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap,
                                **client_security(settings))
    replication_factor = settings.kafka_replication_factor
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t.name not in existing]
        if missing:
            try:
                await admin.create_topics(
                    [NewTopic(t.name, t.partitions, replication_factor,
                              topic_configs=dict(t.config)) for t in missing]
                )
            except TopicAlreadyExistsError:
                pass  # a concurrent creator won the race; the topic is there
        return [t.name for t in missing]
    finally:
        await admin.close()


def main() -> None:
    settings = get_settings()
    created = asyncio.run(ensure_topics(settings))
    print(f"topics created: {', '.join(created) or 'none (all present)'}")


if __name__ == "__main__":
    main()
