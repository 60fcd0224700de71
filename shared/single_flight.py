"""One read per key at a time: the callers that ask for a key while its read runs await
that same read (the caches in front of PostgreSQL: a batch asks for one entry from every
message in the same turn of the event loop). A caller cancelled leaves the others' read
running. Only reads under way are held, so it is bounded by them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    def __init__(self) -> None:
        self._running: dict[K, asyncio.Future[V]] = {}

    async def run(self, key: K, read: Callable[[], Awaitable[V]]) -> V:
        running = self._running.get(key)
        if running is None or running.get_loop() is not asyncio.get_running_loop():
            running = asyncio.ensure_future(read())
            self._running[key] = running
            running.add_done_callback(lambda done: self._done(key, done))
        return await asyncio.shield(running)

    def forget(self, key: K) -> None:
        """A read under way is left to its callers; later ones read again."""
        self._running.pop(key, None)

    def clear(self) -> None:
        self._running.clear()

    def _done(self, key: K, running: asyncio.Future[V]) -> None:
        if self._running.get(key) is running:
            del self._running[key]
        if not running.cancelled():
            running.exception()  # retrieved: its callers got it
