"""The keys that sign Kafka records, cached by the processor.

Only keys of records whose signature already verified are looked up (the secret derives
from the key id, ``shared/domain/record_signing.py``), so records with invented key ids
cost no query at all; real keys are read once, many to a query, and kept ``ttl_s`` at most
(the safety net), dropped as soon as PostgreSQL announces a change to the key (``listen``;
migration 009), and at most ``MAX_ENTRIES`` of them.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import asyncpg

from shared.adapters.key_store import find_signing_keys
from shared.adapters.postgres import Listener
from shared.domain.record_signing import SigningKey

CHANNEL = "parcours_keys"  # see migration 009


class SigningKeyCache:
    MAX_ENTRIES = 4096

    def __init__(self, pool: asyncpg.Pool, ttl_s: float = 10.0,
                 on_query: Callable[[], object] | None = None) -> None:
        self._pool = pool
        self._on_query = on_query  # called for each lookup that reaches PostgreSQL
        self._ttl_s = ttl_s
        self._entries: dict[str, tuple[float, SigningKey | None]] = {}
        self._listener: Listener | None = None
        # Bumped by every announced change: a lookup that was in flight meanwhile may have
        # read the row before the change, so its answer is used once but not kept.
        self._changes = 0

    async def listen(self, dsn: str) -> None:
        self._listener = await Listener.open(dsn, CHANNEL, self._changed, self._missed)

    async def _missed(self) -> None:
        self._changes += 1
        self._entries = {}

    def _changed(self, _connection: object, _pid: int, _channel: str, key_id: str) -> None:
        self._changes += 1
        self._entries.pop(key_id, None)

    async def close(self) -> None:
        if self._listener is not None:
            await self._listener.close()

    async def get_many(self, key_ids: set[str]) -> dict[str, SigningKey | None]:
        """Each key by id; None for one that does not exist."""
        now = time.monotonic()
        found: dict[str, SigningKey | None] = {}
        missing = []
        for key_id in key_ids:
            hit = self._entries.get(key_id)
            if hit is not None and now - hit[0] < self._ttl_s:
                found[key_id] = hit[1]
            else:
                missing.append(key_id)
        if not missing:
            return found
        changes = self._changes
        if self._on_query is not None:
            self._on_query()
        rows = await find_signing_keys(self._pool, missing)
        keep = changes == self._changes
        if keep and len(self._entries) + len(missing) > self.MAX_ENTRIES:
            self._entries = {k: v for k, v in self._entries.items() if now - v[0] < self._ttl_s}
            if len(self._entries) + len(missing) > self.MAX_ENTRIES:
                self._entries.clear()
        for key_id in missing:
            found[key_id] = rows.get(key_id)
            if keep:
                self._entries[key_id] = (now, found[key_id])
        return found
