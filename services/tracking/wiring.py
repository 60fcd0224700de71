"""The tracking service's resources: the group-committed recorder and lookups, a bounded
cache of tracked messages. No Kafka: the reactions service relays what is recorded
(services/reactions/relay.py), so this event loop does the requests only."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import asyncpg
import orjson

from services.tracking.batching import Batched
from services.tracking.reaction_rows import ReactionRow
from services.tracking.recorder import recorder
from shared.adapters import tracking_store
from shared.adapters.postgres import OwnConnection, create_pool
from shared.adapters.tracking_store import TrackedMessage
from shared.bounded import BoundedDict
from shared.domain.retention import days
from shared.domain.tracking_links import Keyring, parse_keyring
from shared.settings import Settings

CACHE_TTL_S = 60.0  # an erased profile's messages stop being found within a minute

# (expires, tenant, message id, channel, profile id, address, origin as JSON, links,
# sent at): nothing in it the garbage collector tracks, so neither is the tuple.
_Kept = tuple[float, str, str, str, str | None, str | None, bytes, tuple[str, ...],
              datetime | None]


def _kept(expires: float, m: TrackedMessage) -> _Kept:
    return (expires, m.tenant, m.message_id, m.channel, m.profile_id, m.address,
            orjson.dumps(m.origin), m.links, m.sent_at)


def _unkept(k: _Kept) -> TrackedMessage:
    return TrackedMessage(k[1], k[2], k[3], k[4], k[5], orjson.loads(k[6]), k[7], k[8])


@dataclass
class Tracking:
    settings: Settings
    keys: Keyring
    pool: asyncpg.Pool
    record: Batched[ReactionRow, bool]
    find: Batched[tuple[str, str], TrackedMessage | None]
    # Tracked messages never change; bounded and short-lived so erasure reaches them.
    # Each kept as a tuple of strings, numbers and a datetime (``_Kept``), which the
    # garbage collector stops tracking: 100,000 TrackedMessage objects made every full
    # collection walk them (about 80 ms each, several a minute under a click flood).
    _messages: BoundedDict[tuple[str, str], _Kept] = field(
        default_factory=lambda: BoundedDict(100_000))
    connections: list[OwnConnection] = field(default_factory=list)
    link_keep: timedelta | None = None  # links of older messages are 404 (retention)

    @classmethod
    async def open(cls, settings: Settings) -> Tracking:
        keys = parse_keyring(settings.tracking_keys.get_secret_value())
        pool = await create_pool(settings.pg_dsn, min_size=1, max_size=2)  # readiness, forms
        writer, reader = OwnConnection(settings.pg_dsn), OwnConnection(settings.pg_dsn)

        async def find_all(names: list[tuple[str, str]]) -> list[TrackedMessage | None]:
            return await tracking_store.lookup(await reader(), names)

        return cls(settings, keys, pool, recorder(writer), Batched(find_all),
                   connections=[writer, reader],
                   link_keep=days(settings.retention_tracked_messages_days))

    async def lookup(self, tenant: str, message_id: str) -> TrackedMessage | None:
        key = (tenant, message_id)
        kept = self._messages.get(key)
        if kept is not None and kept[0] > time.monotonic():
            return _unkept(kept)
        message = await self.find(key)
        if message is not None:  # an unknown one is not remembered: it may be on its way
            self._messages[key] = _kept(time.monotonic() + CACHE_TTL_S, message)
        return message

    async def close(self) -> None:
        await self.record.close()
        await self.find.close()
        for connection in self.connections:
            await connection.close()
        await self.pool.close()
