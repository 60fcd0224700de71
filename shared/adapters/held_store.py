"""Events held until their message is published again (it is paused) and their due time
has come (``scheduled``): table ``held_events``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from shared.adapters.status_store import record_statuses
from shared.domain.status import StatusWrite

_RELEASABLE = """
SELECT h.pkey, h.trigger FROM held_events h
 WHERE h.due_at <= $2
   AND EXISTS (SELECT 1 FROM messages m
                WHERE m.tenant_id = h.tenant_id AND m.event_id = h.event_id
                  AND m.state = 'published')
 ORDER BY h.due_at
 LIMIT $1
 FOR UPDATE OF h SKIP LOCKED
"""


Held = tuple[dict[str, Any], datetime | None, StatusWrite]  # trigger, due (None: now), status


async def hold(connection: asyncpg.Connection, held: list[Held]) -> None:
    """Keep the events and record their status (``paused``, or ``pending`` until their
    scheduled time), together."""
    if not held:
        return
    async with connection.transaction():
        await connection.executemany(
            "INSERT INTO held_events (pkey, tenant_id, event_id, trigger, due_at)"
            " VALUES ($1, $2, $3, $4, coalesce($5, now())) ON CONFLICT (pkey) DO NOTHING",
            [(s.pkey, s.tenant, s.event_id, trigger, due) for trigger, due, s in held],
        )
        await record_statuses(connection, [s for _, _, s in held])


async def releasable(
    connection: asyncpg.Connection, limit: int, now: datetime
) -> list[tuple[str, Any]]:
    """Held events that are due by ``now`` (the caller's clock, the one it routes by, so
    a release is never early for it) and whose message is published, earliest first,
    locked until the transaction ends (several workers can release at once without taking
    the same events)."""
    rows = await connection.fetch(_RELEASABLE, limit, now)
    return [(row["pkey"], row["trigger"]) for row in rows]


async def forget(connection: asyncpg.Connection, pkeys: list[str]) -> None:
    await connection.execute("DELETE FROM held_events WHERE pkey = ANY($1::text[])", pkeys)


# --- messages deferred by a delivery rule ---------------------------------------------

HeldMessage = tuple[dict[str, Any], datetime]  # the send record (JSON), due


async def hold_messages(connection: asyncpg.Connection, held: list[HeldMessage],
                        statuses: list[StatusWrite]) -> None:
    """Keep deferred messages until due (a message deferred again moves its due time), and
    record their events' statuses, together."""
    if not held:
        return
    async with connection.transaction():
        await connection.executemany(
            "INSERT INTO held_messages (tenant_id, message_id, pkey, event_id, due_at, record)"
            " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, message_id)"
            " DO UPDATE SET due_at = EXCLUDED.due_at, record = EXCLUDED.record",
            [(r["tenant"], r["messageId"], r["origin"].get("pKey"), r["origin"].get("eventId"),
              due, r) for r, due in held])
        await record_statuses(connection, statuses)


async def due_messages(connection: asyncpg.Connection, limit: int, now: datetime
                       ) -> list[dict[str, Any]]:
    """Deferred messages due by ``now``, earliest first, locked until the transaction ends
    (workers release different ones)."""
    rows = await connection.fetch(
        "SELECT record FROM held_messages WHERE due_at <= $2 ORDER BY due_at LIMIT $1"
        " FOR UPDATE SKIP LOCKED", limit, now)
    return [row["record"] for row in rows]


async def forget_messages(connection: asyncpg.Connection, keys: list[tuple[str, str]]) -> None:
    await connection.execute(
        "DELETE FROM held_messages h USING unnest($1::text[], $2::uuid[]) AS k(t, m)"
        " WHERE h.tenant_id = k.t AND h.message_id = k.m",
        [t for t, _ in keys], [m for _, m in keys])
