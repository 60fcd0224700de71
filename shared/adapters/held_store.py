"""Events held until their message is published again (it is paused) and their due time
has come (``scheduled``): table ``held_events``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from shared.adapters.status_store import record_statuses
from shared.domain.status import StatusWrite

# The first ``$1`` held events due by ``$2`` that are not parked, each with the state of
# its message's live version (none: unpublished), walking the due index: the LATERAL
# look-up (OFFSET 0 keeps it one) probes the unique live-version index once an event.
_DUE = """
SELECT h.pkey, h.tenant_id, h.event_id, h.trigger, s.state
  FROM held_events h
  LEFT JOIN LATERAL (SELECT m.state FROM messages m
                      WHERE m.tenant_id = h.tenant_id AND m.event_id = h.event_id
                        AND m.state IN ('published', 'paused') OFFSET 0) s ON true
 WHERE NOT h.parked AND h.due_at <= $2
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
) -> tuple[list[tuple[str, Any]], int]:
    """Held events that are due by ``now`` (the caller's clock, the one it routes by, so
    a release is never early for it) and whose message is published, earliest first,
    locked until the transaction ends (several workers can release at once without taking
    the same events); and how many due events were looked at (``limit``: more may be
    due). Those met whose message is not published are parked (migration 053): no later
    poll walks past them until the message is published or resumed (``unpark``)."""
    rows = await connection.fetch(_DUE, limit, now)
    ready = [(row["pkey"], row["trigger"]) for row in rows if row["state"] == "published"]
    waiting = [row for row in rows if row["state"] != "published"]
    if waiting:
        ready += await _park(connection, waiting)
    return ready, len(rows)


async def _park(connection: asyncpg.Connection, waiting: list[asyncpg.Record]
                ) -> list[tuple[str, Any]]:
    """Park the events whose message is still not published; those published meanwhile
    are returned. The events' configurations are share-locked first (every change of a
    message's state locks its configuration's row for update), then the states read again
    in a statement of their own, so it sees a change committed meanwhile, and a change
    coming waits for this transaction, its ``unpark`` finding what is parked here."""
    keys = sorted({(row["tenant_id"], row["event_id"]) for row in waiting})
    tenants, events = [t for t, _ in keys], [e for _, e in keys]
    await connection.execute(
        "SELECT 1 FROM event_configs c JOIN unnest($1::text[], $2::text[]) AS k(t, e)"
        "   ON c.tenant_id = k.t AND c.event_id = k.e"
        " ORDER BY c.tenant_id, c.event_id FOR SHARE OF c", tenants, events)
    published = {(r["tenant_id"], r["event_id"]) for r in await connection.fetch(
        "SELECT m.tenant_id, m.event_id FROM messages m"
        "  JOIN unnest($1::text[], $2::text[]) AS k(t, e)"
        "    ON m.tenant_id = k.t AND m.event_id = k.e WHERE m.state = 'published'",
        tenants, events)}
    parked = [row["pkey"] for row in waiting
              if (row["tenant_id"], row["event_id"]) not in published]
    if parked:
        await connection.execute(
            "UPDATE held_events SET parked = true WHERE pkey = ANY($1::text[])", parked)
    return [(row["pkey"], row["trigger"]) for row in waiting
            if (row["tenant_id"], row["event_id"]) in published]


async def unpark(connection: asyncpg.Connection, tenant: str, event_id: str) -> int:
    """The parked events of a message being published or resumed, back to the release
    poll (call in the transaction that changes its state, under its configuration's
    lock); how many."""
    return int((await connection.execute(
        "UPDATE held_events SET parked = false"
        " WHERE tenant_id = $1 AND event_id = $2 AND parked", tenant, event_id)).split()[-1])


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
