"""Opens and clicks recorded in PostgreSQL before the answer goes, group-committed: one
statement (``tracking_store.record_hits``: the messages looked up, the reactions, their
trace rows and outbox rows written) for all the requests arriving while the previous one
ran."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

import asyncpg

from services.tracking.batching import Batched
from services.tracking.reaction_rows import SCANNER_WINDOW
from shared.adapters.tracking_store import Hit, Recorded, record_hits


def recorder(connection: Callable[[], Awaitable[asyncpg.Connection]],
             keep: timedelta | None) -> Batched[Hit, Recorded]:
    """``keep``: a message's links answer that long after its sending (retention)."""

    async def record(hits: list[Hit]) -> list[Recorded]:
        return await record_hits(await connection(), hits, keep, SCANNER_WINDOW)

    return Batched(record)
