"""The processor's consume loop: one Kafka consumer over the two trigger topics, the
gateway's and the one internal systems produce to (same key, same partition count), so
both share one batch loop, one database connection and one producer.

At-least-once: a batch's offsets are committed only once its outcomes (send records,
statuses, dead letters) are durable; every write is idempotent, so what a crash or a
rebalance redelivers repeats writes, never effects. Output goes through our own
idempotent, acks=all producer and is awaited before the batch counts as handled.

A plain aiokafka loop, like the senders', not a Faust agent: Faust's consumer thread, its
stream machinery and ``take_events``' batch timer (a batch waited up to its 5 ms window,
and the window's timer woke the loop 200 times a second) were most of the processor's
CPU per message and a fixed wait of each event (README, "Where the time goes"). Scale
with partitions and workers: each worker is one member of the ``parcours-processor``
group.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Sequence
from contextlib import suppress

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from services.processor.handlers import (
    RELEASE_BATCH,
    Record,
    handle_batch,
    poisoned,
    release_deferred,
    release_held,
)
from services.processor.wiring import Processor
from shared import heap
from shared.adapters.kafka import client_security, manual_consumer
from shared.adapters.postgres import DB_UNAVAILABLE
from shared.adapters.rebalance import DrainOnRevoke, OffsetCommits, still_assigned
from shared.batches import handle_isolating_poison
from shared.resilience import retry_forever
from shared.settings import Settings, get_settings
from shared.shutdown import exit_within
from shared.topics import EVENTS_IN, EVENTS_KAFKA

log = logging.getLogger(__name__)
GROUP = "parcours-processor"
BATCH_MAX = 500
# Scheduled sends fire at most this late (plus one hop through Kafka), never early.
RELEASE_EVERY_S = 0.5
# A worker killed with -9 leaves its partitions until its session expires: 10 s, so a
# restarted worker resumes within R4's 15 s.
SESSION_TIMEOUT_MS = 10_000
HEARTBEAT_INTERVAL_MS = 1_000
REBALANCE_TIMEOUT_MS = 20_000
# Offsets are committed this often (and whenever the topics go quiet), not per batch: at
# a few events per batch a commit each was a broker round trip, and its CPU, per batch.
# What a crash leaves uncommitted is redelivered, and every write is idempotent.
COMMIT_EVERY_S = 0.5


def consumer(settings: Settings, drain: DrainOnRevoke) -> AIOKafkaConsumer:
    triggers = manual_consumer(
        settings.kafka_bootstrap, GROUP,
        max_poll_records=BATCH_MAX, session_timeout_ms=SESSION_TIMEOUT_MS,
        heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS,
        rebalance_timeout_ms=REBALANCE_TIMEOUT_MS, **client_security(settings))
    triggers.subscribe([EVENTS_IN.name, EVENTS_KAFKA.name], listener=drain)
    return triggers


def records_of(batches: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
               ) -> list[Record]:
    consumed_at = time.time()  # the messages' timeline (shared.domain.timeline)
    return [Record(r.topic, r.key, r.value,
                   r.timestamp / 1000 if r.timestamp and r.timestamp > 0 else consumed_at,
                   r.headers or (), consumed_at)
            for rs in batches.values() for r in rs]


async def release(processor: Processor) -> None:
    """Held events go again once due: their message resumed, their scheduled time come.
    Batch after batch until none is left, so a burst due at one instant is not spread
    over many ticks."""
    released = 0
    try:
        while True:
            batch, looked_at = await release_held(processor)
            deferred = await release_deferred(processor)
            released += batch + deferred
            if looked_at < RELEASE_BATCH and deferred < RELEASE_BATCH:
                break
    except (*DB_UNAVAILABLE, KafkaError) as error:
        log.warning("releasing held events failed (%s); retrying in %.1fs", error,
                    RELEASE_EVERY_S)
    except Exception:  # anything else (a table gone, a bad row): logged and tried again
        # next tick; it once ended the releasing task, silently, and held events waited for
        # a restart of the processor.
        log.exception("releasing held events failed; retrying in %.1fs", RELEASE_EVERY_S)
    if released:
        log.info("released %d held events", released)


async def _releasing(processor: Processor, stop: asyncio.Event) -> None:
    while not stop.is_set():
        await release(processor)
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), RELEASE_EVERY_S)


async def run(settings: Settings, stop: asyncio.Event) -> None:
    processor = await retry_forever(lambda: Processor.open(settings),
                                    "opening the processor's connections",
                                    (*DB_UNAVAILABLE, KafkaError))
    drain = DrainOnRevoke()
    triggers = consumer(settings, drain)
    await retry_forever(triggers.start, "connecting the processor's consumer", (KafkaError,))
    log.info("processor consuming %s, %s", EVENTS_IN.name, EVENTS_KAFKA.name)

    async def handle(records: Sequence[Record]) -> None:
        await handle_batch(processor, records)

    async def poison(record: Record, reason: str) -> None:
        await poisoned(processor, record, reason)  # with a final status, never pending

    releasing = asyncio.create_task(_releasing(processor, stop))
    commits = OffsetCommits(triggers, COMMIT_EVERY_S)
    # A rebalance waits for the batch under way and commits it (shared/adapters/rebalance.py)
    under_way = asyncio.Lock()

    async def settle() -> None:
        async with under_way:
            await commits.flush()

    drain.settle_with(settle)
    try:
        while not stop.is_set():
            batches = still_assigned(
                triggers, await triggers.getmany(timeout_ms=200, max_records=BATCH_MAX))
            if batches:
                async with under_way:
                    await handle_isolating_poison(records_of(batches), handle, poison)
                    commits.handled({tp: rs[-1].offset + 1 for tp, rs in batches.items()})
            await commits.tick(quiet=not batches)
        await commits.flush()
    finally:
        releasing.cancel()
        with suppress(asyncio.CancelledError):
            await releasing
        await triggers.stop()
        await processor.close()


def main(settings: Settings | None = None) -> None:
    async def supervised() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def stopping() -> None:
            exit_within()  # a graceful stop can wait forever on a broker that is away
            stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping)
        await run(settings or get_settings(), stop)

    heap.settle()
    asyncio.run(supervised())
