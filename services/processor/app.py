"""The Faust application: one agent over the two trigger topics, the gateway's and the one
internal systems produce to (same key, same partition count), so both share one batch
loop, one database connection and one producer.

Faust runs at-least-once with ``concurrency=1`` per agent (higher concurrency has lost
messages, faust-streaming issue 606): scale with partitions and workers instead.
Output goes through our own idempotent, acks=all producer and is awaited before the
record is acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

import faust
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
from shared.adapters.kafka import client_security
from shared.adapters.postgres import DB_UNAVAILABLE
from shared.batches import handle_isolating_poison
from shared.resilience import retry_forever
from shared.settings import Settings, get_settings
from shared.topics import EVENTS_IN, EVENTS_KAFKA

log = logging.getLogger(__name__)
settings = get_settings()
BATCH_MAX = 500
BATCH_WINDOW_S = 0.005
# Scheduled sends fire at most this late (plus one hop through Kafka), never early.
RELEASE_EVERY_S = 0.5

def broker_credentials(settings: Settings) -> faust.types.auth.CredentialsT | None:
    """Faust's form of the client security every other Kafka client gets."""
    options = client_security(settings)
    if settings.kafka_security_protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=options["sasl_plain_username"], password=options["sasl_plain_password"],
            ssl_context=options.get("ssl_context"), mechanism=settings.kafka_sasl_mechanism)
    if settings.kafka_security_protocol == "SSL":
        return faust.SSLCredentials(options["ssl_context"])
    return None


app = faust.App(
    "parcours-processor",
    broker=f"kafka://{settings.kafka_bootstrap}",
    broker_credentials=broker_credentials(settings),
    web_enabled=False,
    topic_disable_leader=True,  # the broker does not create topics; we need no leader topic
    consumer_auto_offset_reset="earliest",
    broker_commit_interval=0.5,
    # A worker killed with -9 leaves its partitions until its session expires: 10 s,
    # not Faust's 60 s, so a restarted worker resumes within R4's 15 s.
    broker_session_timeout=10.0,
    broker_heartbeat_interval=1.0,
    broker_rebalance_timeout=20.0,
    producer_acks=-1,
    store="memory://",
    datadir=settings.faust_datadir,
)
triggers = app.topic(
    EVENTS_IN.name, EVENTS_KAFKA.name, key_type=bytes, value_type=bytes,
    key_serializer="raw", value_serializer="raw", internal=False,
)


_processor: asyncio.Future[Processor] | None = None


async def _open() -> Processor:
    """One set of connections per worker, shared by the agent and the release timer."""
    global _processor
    if _processor is None:
        _processor = asyncio.ensure_future(retry_forever(
            lambda: Processor.open(settings), "opening the processor's connections",
            (*DB_UNAVAILABLE, KafkaError),
        ))
    return await _processor


@app.timer(interval=RELEASE_EVERY_S)
async def release() -> None:
    """Held events go again once due: their message resumed, their scheduled time come.
    Batch after batch until none is left, so a burst due at one instant is not spread
    over many ticks."""
    processor = await _open()
    released = 0
    try:
        while True:
            batch = await release_held(processor)
            deferred = await release_deferred(processor)
            released += batch + deferred
            if batch < RELEASE_BATCH and deferred < RELEASE_BATCH:
                break
    except (*DB_UNAVAILABLE, KafkaError) as error:
        log.warning("releasing held events failed (%s); retrying in %.1fs", error,
                    RELEASE_EVERY_S)
    if released:
        log.info("released %d held events", released)


@app.agent(triggers, concurrency=1)
async def process(stream: faust.StreamT[Any]) -> None:
    processor = await _open()

    async def handle(records: Sequence[Record]) -> None:
        await handle_batch(processor, records)

    async def poison(record: Record, reason: str) -> None:
        await poisoned(processor, record, reason)  # with a final status, never pending

    # take_events acknowledges a batch only after this body has handled it. The window
    # bounds the latency it adds; at load, batches fill before it ends.
    async for events in stream.take_events(BATCH_MAX, within=BATCH_WINDOW_S):
        consumed_at = time.time()
        records = [Record(e.message.topic, e.key, e.value, e.message.timestamp or time.time(),
                          e.message.headers or (), consumed_at)
                   for e in events]
        await handle_isolating_poison(records, handle, poison)
