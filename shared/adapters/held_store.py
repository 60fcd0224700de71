"""Events held while their message is paused (table ``held_events``)."""

from __future__ import annotations

from typing import Any

import asyncpg

from shared.adapters.status_store import StatusWrite, record_statuses

_RELEASABLE = """
SELECT h.pkey, h.trigger FROM held_events h
 WHERE EXISTS (SELECT 1 FROM messages m
                WHERE m.tenant_id = h.tenant_id AND m.event_id = h.event_id
                  AND m.state = 'published')
 ORDER BY h.held_at
 LIMIT $1
 FOR UPDATE OF h SKIP LOCKED
"""


async def hold(
    connection: asyncpg.Connection, held: list[tuple[dict[str, Any], StatusWrite]]
) -> None:
    """Keep the events and mark them ``paused``, together."""
    if not held:
        return
    async with connection.transaction():
        await connection.executemany(
            "INSERT INTO held_events (pkey, tenant_id, event_id, trigger)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT (pkey) DO NOTHING",
            [(s.pkey, s.tenant, s.event_id, trigger) for trigger, s in held],
        )
        await record_statuses(connection, [s for _, s in held])


async def releasable(connection: asyncpg.Connection, limit: int) -> list[tuple[str, Any]]:
    """Held events whose message is published again, locked until the transaction ends
    (several workers can release at once without taking the same events)."""
    rows = await connection.fetch(_RELEASABLE, limit)
    return [(row["pkey"], row["trigger"]) for row in rows]


async def forget(connection: asyncpg.Connection, pkeys: list[str]) -> None:
    await connection.execute("DELETE FROM held_events WHERE pkey = ANY($1::text[])", pkeys)
