"""The tracking service's resources and background work: the group-committed recorder and
lookups, a bounded cache of tracked messages, the relay (outbox → Kafka)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta

import asyncpg

from services.tracking.batching import Batched, OwnConnection
from services.tracking.metrics import RELAYED
from services.tracking.reaction_rows import ReactionRow
from services.tracking.recorder import recorder
from shared.adapters import reaction_store, tracking_store
from shared.adapters.postgres import create_pool
from shared.adapters.producer import RenewingProducer
from shared.adapters.tracking_store import TrackedMessage
from shared.bounded import BoundedDict
from shared.domain.retention import days
from shared.domain.tracking_links import Keyring, parse_keyring
from shared.settings import Settings

log = logging.getLogger(__name__)
# Polled this often while nothing is old enough to take (reaction_store.GATHER_S: a flood
# goes to Kafka in batches of about that long, not a few rows per round trip).
RELAY_INTERVAL_S = 0.1
# A round's producing holds the event loop (aiokafka's send per record): 1,000 at once
# stalled the clicks in flight for tens of ms (TRACK p99 203-253 ms, against 159 with 250).
RELAY_BATCH = 250
CACHE_TTL_S = 60.0  # an erased profile's messages stop being found within a minute


@dataclass
class Tracking:
    settings: Settings
    keys: Keyring
    pool: asyncpg.Pool
    producer: RenewingProducer
    record: Batched[ReactionRow, bool]
    find: Batched[tuple[str, str], TrackedMessage | None]
    # Tracked messages never change; bounded and short-lived so erasure reaches them.
    _messages: BoundedDict[tuple[str, str], tuple[float, TrackedMessage]] = field(
        default_factory=lambda: BoundedDict(100_000))
    connections: list[OwnConnection] = field(default_factory=list)
    relaying: OwnConnection | None = None  # the relay's: no pool reset after each round
    link_keep: timedelta | None = None  # links of older messages are 404 (retention)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    async def open(cls, settings: Settings, background: bool = True) -> Tracking:
        keys = parse_keyring(settings.tracking_keys.get_secret_value())
        pool = await create_pool(settings.pg_dsn, min_size=1, max_size=2)  # readiness, forms
        producer = RenewingProducer(settings, "tracking")
        producer.start_in_background()
        writer, reader = OwnConnection(settings.pg_dsn), OwnConnection(settings.pg_dsn)
        relaying = OwnConnection(settings.pg_dsn)

        async def find_all(names: list[tuple[str, str]]) -> list[TrackedMessage | None]:
            return await tracking_store.lookup(await reader(), names)

        tracking = cls(settings, keys, pool, producer, recorder(writer), Batched(find_all),
                       connections=[writer, reader, relaying], relaying=relaying,
                       link_keep=days(settings.retention_tracked_messages_days))
        if background:
            tracking._tasks = [asyncio.create_task(tracking._relay())]
        return tracking

    async def lookup(self, tenant: str, message_id: str) -> TrackedMessage | None:
        key = (tenant, message_id)
        hit = self._messages.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        message = await self.find(key)
        if message is not None:  # an unknown one is not remembered: it may be on its way
            self._messages[key] = (time.monotonic() + CACHE_TTL_S, message)
        return message

    async def _relay(self) -> None:
        """Produce what was recorded, oldest first; a slow or absent Kafka delays this
        loop only, never an answer."""
        assert self.relaying is not None
        while True:
            try:
                relayed = await reaction_store.relay(await self.relaying(),
                                                     self.producer, RELAY_BATCH,
                                                     reaction_store.GATHER_S)
                RELAYED.inc(relayed)
                if relayed:
                    continue
            except Exception as error:  # PostgreSQL or Kafka away: try again shortly
                log.warning("relaying reactions failed (%s); retrying", error)
                await asyncio.sleep(1.0)
            await asyncio.sleep(RELAY_INTERVAL_S)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.record.close()
        await self.find.close()
        for connection in self.connections:
            await connection.close()
        await self.producer.stop()
        await self.pool.close()
