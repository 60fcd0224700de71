"""profile-ingest: the consumer of ``parcours.profiles.v1``, in its own process with its
own consumer group, PostgreSQL connection and producer.

Not an agent of the processor: the processor's one event loop and one Kafka consumer
carry every trigger event, and a burst of profile writes (a CRM's nightly sync: schema
validation, four round trips per batch, erasures scanning statuses) would queue in front
of them there, and share its rebalances. Here it costs the event path nothing but CPU,
which this process yields (it runs at a lower priority: ``PARCOURS_PROFILE_INGEST_NICE``).

A batch is read, applied in one transaction, dead letters written, then its offsets are
committed (at-least-once); PostgreSQL and Kafka outages are waited out.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Sequence

from aiokafka.errors import KafkaError

from services.profile_ingest.handlers import Record, handle_batch, poisoned
from services.profile_ingest.wiring import BATCH, Ingest
from shared import heap
from shared.adapters.kafka import commit_or_redeliver
from shared.adapters.postgres import DB_UNAVAILABLE
from shared.batches import handle_isolating_poison
from shared.resilience import retry_forever
from shared.settings import Settings
from shared.shutdown import exit_within
from shared.topics import PROFILES

log = logging.getLogger(__name__)



async def run(settings: Settings, stop: asyncio.Event) -> None:
    ingest = await retry_forever(lambda: Ingest.open(settings), "opening profile-ingest",
                                 (*DB_UNAVAILABLE, KafkaError))
    log.info("profile-ingest consuming %s", PROFILES.name)

    async def handle(records: Sequence[Record]) -> None:
        await handle_batch(ingest, records)

    async def poison(record: Record, reason: str) -> None:
        await poisoned(ingest, record, reason)

    try:
        while not stop.is_set():
            batches = await ingest.consumer.getmany(timeout_ms=200, max_records=BATCH)
            if batches:
                records = [Record(r.key, r.value, r.timestamp, tuple(r.headers or ()))
                           for rs in batches.values() for r in rs]
                await handle_isolating_poison(records, handle, poison)
                await commit_or_redeliver(ingest.consumer)
    finally:
        await ingest.close()


def main(settings: Settings) -> None:
    async def supervised() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def stopping() -> None:
            exit_within()
            stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping)
        await run(settings, stop)

    heap.settle()
    asyncio.run(supervised())
