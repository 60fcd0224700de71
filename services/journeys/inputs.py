"""The engine's consumer of reactions (``parcours.reactions.v1``) and journey events
(``parcours.journey-events.v1`` from the gateway, ``parcours.journey-events.kafka.v1``
from internal systems, signed: ``produced.py``): all keyed by profile id with as many
partitions, so one consumer of the group holds a profile's reactions and events, read in order
(co-partitioned: the range assignor gives a consumer the same partitions of each).

At-least-once: offsets are committed once the batch's moves are stored; a redelivered
input finds its wait resolved (dropped) or is kept once more (a duplicate of what the
early rule holds is harmless: the first resolves the wait). A record that is neither is
dead-lettered."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from services.journeys import effects
from services.journeys.metrics import INPUTS, RETRIES
from services.journeys.moves import Arrival, arrive
from services.journeys.produced import Produced, admit
from services.journeys.wiring import Engine
from shared.adapters.kafka import (
    client_security,
    commit_or_redeliver,
    gathered_fetch,
    manual_consumer,
    publish_dead_letters,
)
from shared.adapters.postgres import DB_UNAVAILABLE
from shared.domain.deadletter import Source, invalid_reason
from shared.domain.journeys.instance import JourneyEvent, Reaction
from shared.domain.journeys.journey_events import JourneyEventRecord
from shared.domain.reactions import Reaction as ReactionRecord
from shared.domain.reactions import unvalidated_fields
from shared.domain.routing import EventOrigin
from shared.resilience import retry_forever
from shared.topics import JOURNEY_EVENTS, JOURNEY_EVENTS_KAFKA, REACTIONS

log = logging.getLogger(__name__)
GROUP = "parcours-journeys"
STAGE = "journeys"
BATCH = 500
FETCH_MAX_WAIT_MS = 100  # see _consume

Letter = tuple[bytes | None, bytes, str, Source]
_IGNORED_REACTIONS = INPUTS.labels("reaction", "ignored")
_TRANSACTIONAL = EventOrigin.model_fields["kind"].default  # "event"


def _for_no_journey(value: bytes) -> bool:
    """A reaction no instance can take, told from its JSON without validating it: one of a
    transactional message (its origin an event: only a reaction to one of an instance's
    own messages moves it or is kept, ``advance._keep``), or of an event-based message (no
    profile). Most reactions are; validating each was most of this consumer's work per
    click (TRACK). What is not a reaction at all the reactions service dead-letters."""
    record = unvalidated_fields(value)
    if record is None:
        return False  # validation says what is wrong with it
    origin = record.get("origin")
    return record.get("profileId") is None or (
        isinstance(origin, dict) and origin.get("kind") == _TRANSACTIONAL)


def read(records: Sequence[tuple[str, bytes | None, bytes]]
         ) -> tuple[list[Arrival], list[Letter]]:
    """(topic, key, value) → arrivals in order, and what is not one."""
    arrivals: list[Arrival] = []
    letters: list[Letter] = []
    for topic, key, value in records:
        try:
            if topic == REACTIONS.name:
                if _for_no_journey(value):
                    _IGNORED_REACTIONS.inc()
                    continue
                reaction = ReactionRecord.model_validate_json(value)
                arrivals.append(Arrival(reaction.tenant, reaction.profileId, Reaction(
                    reaction.messageId, reaction.kind.value,
                    reaction.link.index if reaction.link else None, reaction.machine,
                    {"kind": reaction.kind.value, "at": reaction.at.isoformat(),
                     **({"link": reaction.link.url} if reaction.link else {})})))
            else:
                event = JourneyEventRecord.model_validate_json(value)
                arrivals.append(Arrival(
                    event.tenant, event.profileId, JourneyEvent(event.eventId, event.payload),
                    f"{event.eventId}|{event.acceptedAt!r}|"
                    f"{orjson.dumps(event.payload, option=orjson.OPT_SORT_KEYS).decode()}",
                    event.acceptedAt))
        except ValidationError as error:
            letters.append((key, value, invalid_reason(error), Source(topic)))
    return arrivals, letters


async def handle(engine: Engine, records: Sequence[tuple[str, bytes | None, bytes]],
                 produced: Sequence[Produced] = ()) -> None:
    """``records`` (topic, key, value) from the gateway's topics, in order; ``produced``:
    the signed journey events of internal systems."""
    arrivals, letters = read(records)
    if produced:
        admitted, refused = await admit(engine, produced)
        arrivals += admitted
        letters += refused

    async def attempt() -> list[effects.Outboxed]:
        async with engine.pool.acquire() as connection:
            return await arrive(engine, connection, arrivals)

    # A batch of reactions no instance can take (a click flood on transactional mail)
    # costs no connection and no statement.
    if arrivals:
        outbox = await retry_forever(attempt, "moving journey instances", DB_UNAVAILABLE,
                                     on_retry=RETRIES.labels("inputs").inc)
        await _apply_behind(engine, outbox)
    if letters:
        await retry_forever(lambda: publish_dead_letters(engine.producer, STAGE, letters),
                            "dead-lettering journey inputs", (KafkaError,))


_applying: asyncio.Task[None] | None = None


async def _apply_behind(engine: Engine, outbox: list[effects.Outboxed]) -> None:
    """A batch's effects are in the outbox, durable, once its moves are stored: they are
    applied (messages decided and handed to the bulk lanes) while the next batch is read
    and moved, one batch's at a time. A crash leaves them to the outbox's recovery."""
    global _applying
    if _applying is not None:
        await _applying  # its failure stops this consumer: the batch comes again
    _applying = asyncio.create_task(effects.apply_retrying(engine, outbox)) \
        if outbox else None


async def run(engine: Engine) -> None:
    """Until cancelled; anything unexpected restarts the consumer (its records come again:
    offsets are committed only after their moves are stored)."""
    while True:
        try:
            await _consume(engine)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("the journey inputs consumer stopped; restarting it")
            await asyncio.sleep(1.0)


async def _consume(engine: Engine) -> None:
    settings = engine.settings
    consumer: AIOKafkaConsumer = manual_consumer(
        settings.kafka_bootstrap, GROUP, REACTIONS.name, JOURNEY_EVENTS.name,
        JOURNEY_EVENTS_KAFKA.name, max_poll_records=BATCH, **client_security(settings),
        # Range, not aiokafka's default round robin: partition n of both topics goes to
        # the same consumer, so a profile's reactions and events meet in one engine.
        partition_assignment_strategy=(RangePartitionAssignor,),
        # 100 ms, not the reactions service's 200: P9 (input → next action) at 500/s,
        # p50 / p99 82 / 196 ms → 119 / 210 ms (200 ms: 212 / 350).
        **gathered_fetch(FETCH_MAX_WAIT_MS))
    await retry_forever(consumer.start, "starting the journey inputs consumer", (KafkaError,))
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=BATCH)
            records = [(r.topic, r.key, r.value) for rs in batches.values() for r in rs
                       if r.topic != JOURNEY_EVENTS_KAFKA.name]
            produced = [Produced(r.key, r.value, r.headers, r.timestamp)
                        for rs in batches.values() for r in rs
                        if r.topic == JOURNEY_EVENTS_KAFKA.name]
            if records or produced:
                await handle(engine, records, produced)
                await commit_or_redeliver(consumer)
    finally:
        await consumer.stop()
