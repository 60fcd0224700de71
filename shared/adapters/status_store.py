"""Event statuses in PostgreSQL (table ``event_status``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg

from shared.domain.routing import message_id
from shared.domain.status import RANK, Status, StatusWrite

# A write replaces only a lower-ranked status: redelivered records cannot move an
# event backwards (see shared.domain.status).
_UPSERT = """
INSERT INTO event_status (pkey, tenant_id, event_id, status, rank, reason, message_id)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (pkey) DO UPDATE
   SET status = EXCLUDED.status, rank = EXCLUDED.rank, reason = EXCLUDED.reason,
       message_id = COALESCE(EXCLUDED.message_id, event_status.message_id), updated_at = now()
 WHERE event_status.rank < EXCLUDED.rank
"""



async def record_statuses(connection: asyncpg.Connection, writes: list[StatusWrite]) -> None:
    if writes:
        await connection.executemany(_UPSERT, [w.row() for w in writes])


def upsert_many(first: int) -> str:
    """``_UPSERT`` for many events in one statement (parameters ``$first`` to ``$first + 6``,
    as ``upsert_columns`` orders them), to run as a CTE of a larger statement."""
    n = [f"${first + i}" for i in range(7)]
    return f"""
INSERT INTO event_status AS s (pkey, tenant_id, event_id, status, rank, reason, message_id)
SELECT * FROM unnest({n[0]}::text[], {n[1]}::text[], {n[2]}::text[], {n[3]}::text[],
                     {n[4]}::smallint[], {n[5]}::text[], {n[6]}::uuid[])
ON CONFLICT (pkey) DO UPDATE
   SET status = EXCLUDED.status, rank = EXCLUDED.rank, reason = EXCLUDED.reason,
       message_id = COALESCE(EXCLUDED.message_id, s.message_id), updated_at = now()
 WHERE s.rank < EXCLUDED.rank
"""


def upsert_columns(writes: list[StatusWrite]) -> list[list[object]]:
    """One write per pKey (a statement cannot touch a row twice): the highest-ranked, the
    first of equals, which is what writing them one by one leaves."""
    kept: dict[str, StatusWrite] = {}
    for write in writes:
        if write.pkey not in kept or RANK[write.status] > RANK[kept[write.pkey].status]:
            kept[write.pkey] = write
    rows = [w.row() for w in kept.values()]
    return [[row[i] for row in rows] for i in range(7)]


_INSERT_FIRST = """
INSERT INTO event_status (pkey, tenant_id, event_id, status, rank, reason, message_id)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (pkey) DO NOTHING
"""


async def record_first_statuses(
    connection: asyncpg.Connection, writes: list[StatusWrite]
) -> None:
    """Record statuses only for events no stage has recorded yet. For a rejected record
    produced to Kafka under an eventKey that already names an event, in flight or done:
    the event stands, the copy only goes to the dead letters."""
    if writes:
        await connection.executemany(_INSERT_FIRST, [w.row() for w in writes])


# Only an event that failed before any message was decided for it (no message id): one
# that got as far as a message stays as it ended.
_REOPEN = """
UPDATE event_status SET status = 'pending', rank = $2, reason = NULL, updated_at = now()
 WHERE pkey = ANY($1::text[]) AND status = 'routingFailed' AND message_id IS NULL
"""


async def reopen_failed(connection: asyncpg.Connection, pkeys: list[str]) -> None:
    """Give events refused for their first record (``routingFailed``: not published,
    invalid) a second chance, for a record replayed from the dead letters that is valid
    now (``parcours deadletters replay``): ``pending`` again, so it is routed."""
    if pkeys:
        await connection.execute(_REOPEN, pkeys, RANK[Status.PENDING])


_BEGIN_PROCESSING = """
INSERT INTO event_status (pkey, tenant_id, event_id, status, rank, message_id)
SELECT p, t, e, 'processing', $5, m
  FROM unnest($1::text[], $2::text[], $3::text[], $4::uuid[]) AS u(p, t, e, m)
ON CONFLICT (pkey) DO UPDATE
   SET status = EXCLUDED.status, rank = EXCLUDED.rank, reason = NULL,
       message_id = EXCLUDED.message_id, updated_at = now()
 WHERE event_status.rank <= EXCLUDED.rank
RETURNING pkey
"""


async def begin_processing(connection: asyncpg.Connection, writes: list[StatusWrite]) -> set[str]:
    """Mark events ``processing`` unless they already have a final status (a held one
    leaves ``paused`` or ``pending … scheduled``); returns the pKeys that may go on.
    ``writes`` must not repeat a pKey.

    Written before the send records are produced, so an event the gateway refused after
    all (its 503 path records it ``ignored``) is never sent; a redelivery of a half-done
    event goes ahead.
    """
    if not writes:
        return set()
    rows = await connection.fetch(
        _BEGIN_PROCESSING,
        [w.pkey for w in writes], [w.tenant for w in writes], [w.event_id for w in writes],
        [w.message_id for w in writes], RANK[Status.PROCESSING],
    )
    return {row["pkey"] for row in rows}


@dataclass(frozen=True)
class StatusRow:
    status: Status
    reason: str | None
    updated_at: str


async def read_status(
    pool: asyncpg.Pool, tenant: str, event_id: str, pkey: str
) -> StatusRow | None:
    row = await pool.fetchrow(
        "SELECT status, reason, updated_at FROM event_status"
        " WHERE pkey = $1 AND tenant_id = $2 AND event_id = $3",
        pkey, tenant, event_id,
    )
    if row is None:
        return None
    return StatusRow(Status(row["status"]), row["reason"], row["updated_at"].isoformat())


CANCELLED = "cancelled"


async def cancel(connection: asyncpg.Connection, tenant: str, event_id: str, pkey: str
                 ) -> Status | None:
    """Cancel an event not yet on its way: pending (in Kafka, scheduled, or deferred by a
    delivery rule) or paused. It ends ``ignored`` with the reason ``cancelled`` and its
    held copies go, in one transaction that holds the status row: the processor, about to
    mark it ``processing``, waits for it and then finds it final, so nothing is sent.
    Returns None once cancelled, else the status that stands in the way."""
    async with connection.transaction():
        await connection.execute(_INSERT_FIRST, *StatusWrite(
            pkey, tenant, event_id, Status.PENDING).row())
        current = Status(await connection.fetchval(
            "SELECT status FROM event_status WHERE pkey = $1 AND tenant_id = $2"
            " AND event_id = $3 FOR UPDATE", pkey, tenant, event_id))
        if RANK[current] >= RANK[Status.PROCESSING]:
            return current
        await connection.execute("DELETE FROM held_events WHERE pkey = $1", pkey)
        await connection.execute(
            "DELETE FROM held_messages WHERE tenant_id = $1 AND pkey = $2", tenant, pkey)
        # A deferred or scheduled send's place in the contact history is given up.
        await connection.execute(
            "UPDATE contact_history SET outcome = 'excluded', reason = $3"
            " WHERE tenant_id = $1 AND message_id = $2 AND outcome = 'deferred'",
            tenant, uuid.UUID(message_id(tenant, pkey)), CANCELLED)
        await record_statuses(connection, [
            StatusWrite(pkey, tenant, event_id, Status.IGNORED, CANCELLED)])
    return None
