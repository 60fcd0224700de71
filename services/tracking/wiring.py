"""The tracking service's resources: the group-committed recorder on a connection of its
own. No Kafka: the reactions service relays what is recorded (services/reactions/
relay.py), so this event loop does the requests only. No cache of tracked messages: each
hit reads its message in the statement that records it (an erased profile's messages
stop answering at once)."""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg

from services.tracking.batching import Batched
from services.tracking.recorder import recorder
from shared.adapters.postgres import OwnConnection, create_pool
from shared.adapters.tracking_store import Hit, Recorded
from shared.domain.retention import days
from shared.domain.tracking_links import Keyring, parse_keyring
from shared.settings import Settings


@dataclass
class Tracking:
    settings: Settings
    keys: Keyring
    pool: asyncpg.Pool
    record: Batched[Hit, Recorded]
    connections: list[OwnConnection] = field(default_factory=list)

    @classmethod
    async def open(cls, settings: Settings) -> Tracking:
        keys = parse_keyring(settings.tracking_keys.get_secret_value())
        pool = await create_pool(settings.pg_dsn, min_size=1, max_size=2)  # readiness, forms
        writer = OwnConnection(settings.pg_dsn)
        return cls(settings, keys, pool,
                   recorder(writer, days(settings.retention_tracked_messages_days)),
                   connections=[writer])

    async def close(self) -> None:
        await self.record.close()
        for connection in self.connections:
            await connection.close()
        await self.pool.close()
