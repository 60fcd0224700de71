"""The durable retry schedule of the senders: table ``send_retries`` (migration 018).

A message a provider refused for now waits here, its ledger row ``waiting`` (a
redelivered copy of its send record is then not claimed), until the sender lane that
scheduled it takes it again. Taking it gives it a lease (its ``due_at`` moves past the
hand-over's longest time), not a delete: a sender that crashes mid-retry leaves the row
to be taken again when the lease ends, so a waiting message is never lost. The row goes
in the transaction that settles the message (sent or failed for good).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from shared.adapters import erasure
from shared.adapters.status_store import record_statuses
from shared.domain.status import Status, StatusWrite

_SCHEDULE = """
INSERT INTO send_retries (message_id, lane, due_at, attempts, record, last_error, soft_error)
SELECT m, $2, now() + d * interval '1 second', a, r, e, s
  FROM unnest($1::uuid[], $3::float8[], $4::int[], $5::jsonb[], $6::text[], $7::text[])
       AS u(m, d, a, r, e, s)
ON CONFLICT (message_id) DO UPDATE
   SET due_at = EXCLUDED.due_at, attempts = EXCLUDED.attempts,
       last_error = EXCLUDED.last_error,
       soft_error = coalesce(send_retries.soft_error, EXCLUDED.soft_error)
"""

_WAITING = """
UPDATE deliveries SET state = 'waiting', attempts = u.a, detail = u.e, updated_at = now()
  FROM unnest($1::uuid[], $2::int[], $3::text[]) AS u(m, a, e)
 WHERE deliveries.message_id = u.m
"""

_TRACE = """
INSERT INTO message_trace (tenant_id, message_id, stage, outcome, reason)
SELECT t, m, 'retry', 'waiting', r FROM unnest($1::text[], $2::uuid[], $3::text[]) AS u(t, m, r)
"""

# Due rows of one lane, leased: ``due_at`` moves to the lease's end. Their ledger rows go
# back to 'sending' (a crash mid-send then resends, as for any claimed message); a row
# whose message is already settled is dropped.
_TAKE = """
WITH due AS (
    SELECT message_id FROM send_retries
     WHERE lane = $1 AND due_at <= now()
     ORDER BY due_at LIMIT $2
     FOR UPDATE SKIP LOCKED
), leased AS (
    UPDATE send_retries r SET due_at = now() + $3 * interval '1 second'
      FROM due WHERE r.message_id = due.message_id
    RETURNING r.message_id, r.attempts, r.record, r.soft_error
), claimed AS (
    UPDATE deliveries d SET state = 'sending', attempts = leased.attempts + 1,
                            updated_at = now()
      FROM leased WHERE d.message_id = leased.message_id AND d.state IN ('waiting', 'sending')
    RETURNING d.message_id
)
SELECT l.message_id, l.attempts, l.record, l.soft_error,
       l.message_id IN (SELECT message_id FROM claimed) AS claimed
  FROM leased l
"""


@dataclass(frozen=True)
class Waiting:
    """A message to try again in ``delay_s``; ``attempts`` hand-overs failed so far."""

    tenant: str
    message_id: str
    record: dict[str, Any]
    attempts: int
    delay_s: float
    error: str
    soft_error: str | None  # the first refusal that blamed the address, if any
    note: str  # the trace row's reason


@dataclass(frozen=True)
class Due:
    message_id: str
    attempts: int
    record: dict[str, Any]
    soft_error: str | None


async def schedule(connection: asyncpg.Connection, lane: str, waiting: list[Waiting]) -> None:
    """Within the caller's transaction: the rows, the ledger, a trace row each."""
    if not waiting:
        return
    ids = [uuid.UUID(w.message_id) for w in waiting]
    await connection.execute(
        _SCHEDULE, ids, lane, [w.delay_s for w in waiting], [w.attempts for w in waiting],
        [w.record for w in waiting], [w.error for w in waiting],
        [w.soft_error for w in waiting])
    await connection.execute(_WAITING, ids, [w.attempts for w in waiting],
                             [w.error for w in waiting])
    await connection.execute(_TRACE, [w.tenant for w in waiting], ids,
                             [w.note for w in waiting])


async def take_due(connection: asyncpg.Connection, lane: str, limit: int, lease_s: float
                   ) -> list[Due]:
    async with connection.transaction():
        rows = await connection.fetch(_TAKE, lane, limit, lease_s)
        settled = [row["message_id"] for row in rows if not row["claimed"]]
        if settled:
            await connection.execute(
                "DELETE FROM send_retries WHERE message_id = ANY($1::uuid[])", settled)
    return [Due(str(row["message_id"]), row["attempts"], row["record"], row["soft_error"])
            for row in rows if row["claimed"]]


async def forget(connection: asyncpg.Connection, message_ids: list[str]) -> None:
    if message_ids:
        await connection.execute("DELETE FROM send_retries WHERE message_id = ANY($1::uuid[])",
                                 [uuid.UUID(m) for m in message_ids])


async def waiting_count(connection: asyncpg.Connection, lane: str) -> int:
    return (await backlog(connection, lane))[0]


async def backlog(connection: asyncpg.Connection, lane: str) -> tuple[int, float]:
    """The lane's waiting messages, and how long ago the oldest was first refused (0 when
    none): what a provider's rate limit or outage holds back, and since when."""
    row = await connection.fetchrow(
        "SELECT count(*) AS n, coalesce(extract(epoch FROM now() - min(first_failed_at)), 0)"
        " AS oldest FROM send_retries WHERE lane = $1", lane)
    return int(row["n"]), float(row["oldest"])


# --- erasure and access requests (shared/adapters/erasure.py) ---------------------------

_ERASED = "the profile was erased while its message waited for a retry"


async def _erase(connection: asyncpg.Connection, tenant: str, profile_id: str
                 ) -> dict[str, int]:
    """A profile erased while its message waits: the send record (its address, its data)
    goes, the message is never sent (its ledger row failed) and its event ends
    ``deliveryFailed``."""
    rows = await connection.fetch(
        "DELETE FROM send_retries WHERE record->>'tenant' = $1 AND record->>'profileId' = $2"
        " RETURNING message_id, record->'origin' AS origin", tenant, profile_id)
    if rows:
        await connection.execute(
            "UPDATE deliveries SET state = 'failed', detail = $2, updated_at = now()"
            " WHERE message_id = ANY($1::uuid[]) AND state IN ('waiting', 'sending')",
            [r["message_id"] for r in rows], _ERASED)
        await record_statuses(connection, [
            StatusWrite(origin["pKey"], tenant, origin["eventId"], Status.DELIVERY_FAILED,
                        _ERASED, str(r["message_id"]))
            for r in rows if (origin := r["origin"]) and origin.get("kind") == "event"])
    return {"waitingRetries": len(rows)}


async def _export(connection: asyncpg.Connection, tenant: str, profile_id: str
                  ) -> dict[str, object]:
    rows = await connection.fetch(
        "SELECT message_id::text, attempts, last_error, first_failed_at FROM send_retries"
        " WHERE record->>'tenant' = $1 AND record->>'profileId' = $2 ORDER BY first_failed_at",
        tenant, profile_id)
    return {"waitingRetries": [{"messageId": r["message_id"], "attempts": r["attempts"],
                                "lastError": r["last_error"],
                                "firstFailedAt": r["first_failed_at"].isoformat()}
                               for r in rows]}


erasure.register(erasure.PersonalData("waitingRetries", _erase, _export))
