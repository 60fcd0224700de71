"""Event statuses in PostgreSQL (table ``event_status``, partitioned by week of
``accepted_day``: migration 040, shared/domain/partitions.py).

Every write names its row's day the same way, so a redelivered write meets the row it
repeats (the unique key is ``(pkey, accepted_day)``): the day a timed pKey was issued
(``pkey_day``, no lookup), else (a pKey derived from a Kafka producer's eventKey, or one
minted before migration 040) the day of the row that already holds the pKey, else today's
(the first write). The lookup probes each week's index, only for such keys."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import asyncpg

from shared.domain.pkeys import pkey_time
from shared.domain.routing import message_id
from shared.domain.status import RANK, Status, StatusWrite


# A write replaces only a lower-ranked status: redelivered records cannot move an
# event backwards (see shared.domain.status).
def accepted_day(pkey: str) -> str:
    """SQL: the partition day of the row for the pKey (the SQL expression ``pkey``)."""
    return (f"COALESCE(pkey_day({pkey}), (SELECT x.accepted_day FROM event_status x"
            f" WHERE x.pkey = {pkey} LIMIT 1), (now() AT TIME ZONE 'UTC')::date)")


_UPSERT = f"""
INSERT INTO event_status (pkey, tenant_id, event_id, status, rank, reason, message_id,
                          accepted_day)
VALUES ($1, $2, $3, $4, $5, $6, $7, {accepted_day("$1::text")})
ON CONFLICT (pkey, accepted_day) DO UPDATE
   SET status = EXCLUDED.status, rank = EXCLUDED.rank, reason = EXCLUDED.reason,
       message_id = COALESCE(EXCLUDED.message_id, event_status.message_id), updated_at = now()
 WHERE event_status.rank < EXCLUDED.rank
"""



async def record_statuses(connection: asyncpg.Connection, writes: list[StatusWrite]) -> None:
    """Many writes go in one statement (``upsert_many``: one write per pKey, the one writing
    them in turn would leave); an INSERT into a partitioned table pays its routing set-up
    per statement, so row by row (executemany) cost 15-20 µs more a status than into a
    plain table, and one statement for the batch costs less than either."""
    if len(writes) == 1:
        await connection.execute(_UPSERT, *writes[0].row())
    elif writes:
        await connection.execute(_UPSERT_MANY, *upsert_columns(writes))


def upsert_many(first: int) -> str:
    """``_UPSERT`` for many events in one statement (parameters ``$first`` to ``$first + 6``,
    as ``upsert_columns`` orders them), to run as a CTE of a larger statement."""
    n = [f"${first + i}" for i in range(7)]
    return f"""
INSERT INTO event_status AS s (pkey, tenant_id, event_id, status, rank, reason, message_id,
                               accepted_day)
SELECT u.*, {accepted_day("u.p")}
  FROM unnest({n[0]}::text[], {n[1]}::text[], {n[2]}::text[], {n[3]}::text[],
              {n[4]}::smallint[], {n[5]}::text[], {n[6]}::uuid[]) AS u(p, t, e, st, r, re, m)
ON CONFLICT (pkey, accepted_day) DO UPDATE
   SET status = EXCLUDED.status, rank = EXCLUDED.rank, reason = EXCLUDED.reason,
       message_id = COALESCE(EXCLUDED.message_id, s.message_id), updated_at = now()
 WHERE s.rank < EXCLUDED.rank
"""


_UPSERT_MANY = upsert_many(1)


def upsert_columns(writes: list[StatusWrite]) -> list[list[object]]:
    """One write per pKey (a statement cannot touch a row twice): the highest-ranked, the
    first of equals, which is what writing them one by one leaves."""
    kept: dict[str, StatusWrite] = {}
    for write in writes:
        if write.pkey not in kept or RANK[write.status] > RANK[kept[write.pkey].status]:
            kept[write.pkey] = write
    rows = [w.row() for w in kept.values()]
    return [[row[i] for row in rows] for i in range(7)]


_INSERT_FIRST = f"""
INSERT INTO event_status (pkey, tenant_id, event_id, status, rank, reason, message_id,
                          accepted_day)
VALUES ($1, $2, $3, $4, $5, $6, $7, {accepted_day("$1::text")})
ON CONFLICT (pkey, accepted_day) DO NOTHING
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


def begin_processing_sql(first: int) -> str:
    """``begin_processing``'s statement (parameters ``$first`` to ``$first + 4``, as
    ``begin_processing_args`` orders them), to run alone or as a CTE of a larger one."""
    n = [f"${first + i}" for i in range(5)]
    return f"""
INSERT INTO event_status (pkey, tenant_id, event_id, status, rank, message_id, accepted_day)
SELECT p, t, e, 'processing', {n[4]}, m, {accepted_day("p")}
  FROM unnest({n[0]}::text[], {n[1]}::text[], {n[2]}::text[], {n[3]}::uuid[]) AS u(p, t, e, m)
ON CONFLICT (pkey, accepted_day) DO UPDATE
   SET status = EXCLUDED.status, rank = EXCLUDED.rank, reason = NULL,
       message_id = EXCLUDED.message_id, updated_at = now()
 WHERE event_status.rank <= EXCLUDED.rank
RETURNING pkey
"""


def begin_processing_args(writes: Sequence[StatusWrite]) -> list[object]:
    return [[w.pkey for w in writes], [w.tenant for w in writes], [w.event_id for w in writes],
            [w.message_id for w in writes], RANK[Status.PROCESSING]]


_BEGIN_PROCESSING = begin_processing_sql(1)


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
    rows = await connection.fetch(_BEGIN_PROCESSING, *begin_processing_args(writes))
    return {row["pkey"] for row in rows}


@dataclass(frozen=True)
class StatusRow:
    status: Status
    reason: str | None
    updated_at: str
    accepted_day: date | None = None  # its partition's day


# A timed pKey names its partition: one index probe, whatever the other weeks hold.
# Another probes each week's. The tenant's own retention comes in the same round trip.
_READ = """
SELECT s.status, s.reason, s.updated_at, s.accepted_day, r.statuses_days
  FROM (SELECT $2::text AS tenant) q
  LEFT JOIN event_status s ON s.pkey = $1 AND s.tenant_id = q.tenant AND s.event_id = $3
                          {day}
  LEFT JOIN tenant_retention r ON r.tenant_id = q.tenant
"""
_READ_TIMED = _READ.format(day="AND s.accepted_day = pkey_day($1::text)")
_READ_UNTIMED = _READ.format(day="")


async def read_status_kept(
    pool: asyncpg.Pool, tenant: str, event_id: str, pkey: str
) -> tuple[StatusRow | None, int | None]:
    """The event's status row (None: none) and the tenant's own retention of statuses in
    days (None: the default's), in one round trip."""
    row = await pool.fetchrow(_READ_TIMED if pkey_time(pkey) is not None else _READ_UNTIMED,
                              pkey, tenant, event_id)
    assert row is not None
    if row["status"] is None:
        return None, row["statuses_days"]
    return StatusRow(Status(row["status"]), row["reason"], row["updated_at"].isoformat(),
                     row["accepted_day"]), row["statuses_days"]


async def read_status(
    pool: asyncpg.Pool, tenant: str, event_id: str, pkey: str
) -> StatusRow | None:
    return (await read_status_kept(pool, tenant, event_id, pkey))[0]


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


# The admin API's lookup by pKey alone (services/admin/status_routes.py): the same
# partitions as ``_READ`` (a timed pKey names its day: one index probe), the event id read
# from the row; the tenant's configured event ids come along only when there is no row, for
# the caller to tell which of them issued the pKey (``pending``) or none did (404).
_BY_PKEY = """
SELECT s.event_id, s.status, s.reason, s.updated_at, s.accepted_day, r.statuses_days,
       CASE WHEN s.pkey IS NULL THEN ARRAY(SELECT c.event_id FROM event_configs c
                                            WHERE c.tenant_id = q.tenant) END AS configured
  FROM (SELECT $2::text AS tenant) q
  LEFT JOIN event_status s ON s.pkey = $1 AND s.tenant_id = q.tenant {day}
  LEFT JOIN tenant_retention r ON r.tenant_id = q.tenant
 LIMIT 1
"""
_BY_PKEY_TIMED = _BY_PKEY.format(day="AND s.accepted_day = pkey_day($1::text)")
_BY_PKEY_UNTIMED = _BY_PKEY.format(day="")


@dataclass(frozen=True)
class FoundStatus:
    event_id: str | None  # None: no row (``configured`` says which events could own it)
    row: StatusRow | None
    tenant_days: int | None  # the tenant's own retention of statuses (None: the default's)
    configured: tuple[str, ...] = ()


async def find_status(pool: asyncpg.Pool, tenant: str, pkey: str) -> FoundStatus:
    """The tenant's status row of the pKey whatever its event, in one round trip."""
    row = await pool.fetchrow(_BY_PKEY_TIMED if pkey_time(pkey) is not None
                              else _BY_PKEY_UNTIMED, pkey, tenant)
    assert row is not None
    if row["status"] is None:
        return FoundStatus(None, None, row["statuses_days"], tuple(row["configured"] or ()))
    return FoundStatus(row["event_id"], StatusRow(
        Status(row["status"]), row["reason"], row["updated_at"].isoformat(),
        row["accepted_day"]), row["statuses_days"])
