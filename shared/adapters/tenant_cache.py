"""A per-tenant cache that PostgreSQL keeps honest: an entry lives ``ttl_s`` at most and
is dropped as soon as a change to its tenant is announced on ``channel`` (``listen``; the
TTL is the safety net while that connection is lost, and after it comes back everything is
dropped, since what was announced meanwhile never arrives). A read that began before an
announcement is used once, not kept: it may hold what the change replaced. Bounded.

One read per tenant at a time: the callers that miss while it runs wait for it. A sender's
batch asks for its tenant's entry from every message in the same turn of the event loop;
each of them read it when the entry expired (every ``ttl_s``), through a pool of two
connections, stalling the batch."""

from __future__ import annotations

import time
from typing import Generic, TypeVar

import asyncpg

from shared.adapters.postgres import Listener
from shared.bounded import BoundedDict
from shared.single_flight import SingleFlight

T = TypeVar("T")


class TenantCache(Generic[T]):
    MAX_TENANTS = 1000

    def __init__(self, pool: asyncpg.Pool, ttl_s: float, channel: str) -> None:
        self._pool = pool
        self._ttl_s = ttl_s
        self._channel = channel
        self._entries: BoundedDict[str, tuple[float, T]] = BoundedDict(self.MAX_TENANTS)
        self._listener: Listener | None = None
        self._changes = 0  # announcements heard
        self._reading: SingleFlight[str, T] = SingleFlight()  # the read under way, per tenant

    async def _load(self, tenant: str, previous: T | None) -> T:
        """The tenant's entry, read now (``previous``: what the cache held, to reuse)."""
        raise NotImplementedError

    async def listen(self, dsn: str) -> None:
        self._listener = await Listener.open(dsn, self._channel, self._changed, self._missed)

    async def _missed(self) -> None:
        self._changes += 1
        self._entries.clear()
        self._reading.clear()

    def _changed(self, _connection: object, _pid: int, _channel: str, tenant: str) -> None:
        self._changes += 1
        self.forget(tenant)

    def forget(self, tenant: str) -> None:
        """A read under way is left to its callers; later ones read again."""
        self._entries.pop(tenant, None)
        self._reading.forget(tenant)

    async def close(self) -> None:
        if self._listener is not None:
            await self._listener.close()

    async def get(self, tenant: str) -> T:
        now = time.monotonic()
        hit = self._entries.get(tenant)
        if hit is not None and now - hit[0] < self._ttl_s:
            return hit[1]
        return await self._reading.run(tenant, lambda: self._read(tenant, hit, now))

    async def _read(self, tenant: str, hit: tuple[float, T] | None, now: float) -> T:
        changes = self._changes
        entry = await self._load(tenant, hit[1] if hit is not None else None)
        if changes == self._changes:
            self._entries[tenant] = (now, entry)
        return entry
