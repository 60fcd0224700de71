"""Reactions recorded in PostgreSQL before the answer goes (the outbox, migration 015),
many requests to a statement: while one insert is under way, the reactions arriving
meanwhile queue and go together in the next one (group commit), so a burst of clicks
costs a round trip per batch, not per click."""

from __future__ import annotations

import asyncio

import asyncpg

from shared.adapters import reaction_store
from shared.domain.reactions import Reaction


class Recorder:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._pending: list[tuple[Reaction, asyncio.Future[bool]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def record(self, reaction: Reaction) -> bool:
        """True when it is new, False when it was recorded before; raises what PostgreSQL
        raised."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append((reaction, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write())
        return await future

    async def _write(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            unique = list({r.reactionId: r for r, _ in batch}.values())
            try:
                new = {r.reactionId for r in await reaction_store.record(self._pool, unique)}
            except Exception as error:  # each waiting request answers it
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            for reaction, future in batch:
                if not future.done():
                    future.set_result(reaction.reactionId in new)
                new.discard(reaction.reactionId)  # a repeat within the batch is not new

    async def close(self) -> None:
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)
