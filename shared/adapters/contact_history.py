"""What the decision step reads and writes in PostgreSQL (tables of migration 013): the
contact history, the message trace, and the address lists (denylist, quarantine), each a
statement per batch whatever its size: what is known of a batch (already decided, denied,
quarantined) is one read, its decisions and trace rows one write. The step calls them in
its transaction when it takes locks.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from shared.adapters import erasure
from shared.adapters.status_store import (
    begin_processing_args,
    begin_processing_sql,
    record_statuses,
)
from shared.domain.status import Status, StatusWrite

COUNTED = ("sent", "delivered", "deferred")  # what fatigue and capacity count

_LOCK = """
SELECT pg_advisory_xact_lock(h)
  FROM (SELECT DISTINCT hashtextextended(k, 0) AS h FROM unnest($1::text[]) AS k ORDER BY h) s
"""


async def lock(connection: asyncpg.Connection, keys: Sequence[str]) -> None:
    """Transaction-scoped advisory locks, taken in one order by every worker (no deadlock):
    two decisions about one profile (or one capacity rule) wait for each other, across
    workers, partitions and processes."""
    if keys:
        await connection.execute(_LOCK, sorted(set(keys)))


@dataclass(frozen=True)
class Recorded:
    """A message already decided (a redelivered record, or a deferred one come due)."""

    outcome: str
    contact_at: datetime
    rule_id: str | None
    reason: str | None


# What the step must know of a batch before deciding, in one round trip: the messages
# already decided, and the denylist entries and quarantined addresses among their
# addresses (every channel at once).
_KNOWN = """
SELECT 'recorded' AS kind, message_id::text AS a, outcome AS b, contact_at, rule_id, reason
  FROM contact_history WHERE tenant_id = $1 AND message_id = ANY($2::uuid[])
UNION ALL
SELECT 'denied', d.channel, d.entry, NULL, NULL, NULL
  FROM denylist d JOIN unnest($3::text[], $4::text[]) AS k(channel, entry)
    ON d.channel = k.channel AND d.entry = k.entry
 WHERE d.tenant_id = $1
UNION ALL
SELECT 'quarantined', q.channel, q.address, NULL, NULL, coalesce(q.reason, 'quarantined')
  FROM quarantine q JOIN unnest($5::text[], $6::text[]) AS k(channel, address)
    ON q.channel = k.channel AND q.address = k.address
 WHERE q.tenant_id = $1 AND q.quarantined_at IS NOT NULL AND q.release_at > $7
"""

Key = tuple[str, str]  # (channel, normalised address or domain)


@dataclass(frozen=True)
class Known:
    recorded: dict[str, Recorded]  # by message id
    denied: dict[Key, str]  # the denylist's entries among the keys
    quarantined: dict[Key, str]  # the addresses quarantined at the instant asked, with why


async def known(connection: asyncpg.Connection, tenant: str, message_ids: Sequence[str],
                keys: Sequence[Key], addresses: Sequence[Key], now: datetime) -> Known:
    """The messages among ``message_ids`` already decided; the denylist's entries among
    ``keys`` (addresses and domains); the ``addresses`` quarantined at ``now``."""
    rows = await connection.fetch(
        _KNOWN, tenant, [uuid.UUID(m) for m in message_ids],
        [c for c, _ in keys], [e for _, e in keys],
        [c for c, _ in addresses], [a for _, a in addresses], now)
    found = Known({}, {}, {})
    for r in rows:
        if r["kind"] == "recorded":
            found.recorded[r["a"]] = Recorded(r["b"], r["contact_at"], r["rule_id"],
                                              r["reason"])
        elif r["kind"] == "denied":
            found.denied[(r["a"], r["b"])] = r["b"]
        else:
            found.quarantined[(r["a"], r["b"])] = r["reason"]
    return found


async def contacts(connection: asyncpg.Connection, tenant: str, profile_ids: Sequence[str],
                   since: datetime, until: datetime, excluding: Sequence[str]
                   ) -> list[asyncpg.Record]:
    """The profiles' counted contacts strictly between ``since`` and ``until``, but for
    the messages being decided."""
    return await connection.fetch(
        "SELECT profile_id, channel, contact_at, transactional FROM contact_history"
        " WHERE tenant_id = $1 AND profile_id = ANY($2::text[])"
        "   AND contact_at > $3 AND contact_at < $4 AND outcome = ANY($5::text[])"
        "   AND message_id <> ALL($6::uuid[])",
        tenant, list(profile_ids), since, until, list(COUNTED),
        [uuid.UUID(m) for m in excluding])


def _counted(column: str) -> str:
    """The counted messages of an origin (``origin_id``) or a channel in ``($3, $4]``, but
    for those being decided ($6): what ``used`` counts and ``nth_counted`` orders."""
    assert column in ("origin_id", "channel")  # from code, never from a user
    return (f" FROM contact_history WHERE tenant_id = $1 AND {column} = $2"
            "   AND contact_at > $3 AND contact_at <= $4 AND outcome = ANY($5::text[])"
            "   AND message_id <> ALL($6::uuid[])")


async def used(connection: asyncpg.Connection, tenant: str, column: str, value: str,
               since: datetime, until: datetime, excluding: Sequence[str]) -> int:
    """Counted messages of an origin (``origin_id``) or a channel in ``(since, until]``."""
    count: int = await connection.fetchval(
        "SELECT count(*)" + _counted(column),
        tenant, value, since, until, list(COUNTED), [uuid.UUID(m) for m in excluding])
    return count


async def nth_counted(connection: asyncpg.Connection, tenant: str, column: str, value: str,
                      since: datetime, until: datetime, excluding: Sequence[str], nth: int
                      ) -> datetime | None:
    """When the ``nth`` (0: the oldest) of the messages ``used`` counts was counted: a
    capacity at its cap frees one more slot a period after it."""
    at: datetime | None = await connection.fetchval(
        "SELECT contact_at" + _counted(column) + " ORDER BY contact_at OFFSET $7 LIMIT 1",
        tenant, value, since, until, list(COUNTED), [uuid.UUID(m) for m in excluding], nth)
    return at


async def consents(connection: asyncpg.Connection, tenant: str, profile_ids: Sequence[str]
                   ) -> dict[str, list[asyncpg.Record]]:
    rows = await connection.fetch(
        "SELECT profile_id, kind, name, value FROM consents"
        " WHERE tenant_id = $1 AND profile_id = ANY($2::text[])", tenant, list(profile_ids))
    found: dict[str, list[asyncpg.Record]] = {}
    for row in rows:
        found.setdefault(row["profile_id"], []).append(row)
    return found


@dataclass(frozen=True)
class HistoryRow:
    message_id: str
    profile_id: str | None
    channel: str
    origin_kind: str
    origin_id: str
    transactional: bool
    contact_at: datetime
    outcome: str  # sent, excluded, deferred
    rule_id: str | None
    reason: str | None
    verdicts: list[dict[str, Any]]


# The decisions and their trace rows, in one statement.
_WRITE = """
WITH u AS (
    SELECT * FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[],
                         $7::boolean[], $8::timestamptz[], $9::text[], $10::text[],
                         $11::text[], $12::text[])
           AS u(message_id, profile_id, channel, origin_kind, origin_id, transactional,
                contact_at, outcome, rule_id, reason, verdicts)
), history AS (
    INSERT INTO contact_history AS h (tenant_id, message_id, profile_id, channel, origin_kind,
                                      origin_id, transactional, contact_at, outcome, rule_id,
                                      reason)
    SELECT $1, message_id, profile_id, channel, origin_kind, origin_id, transactional,
           contact_at, outcome, rule_id, reason FROM u
    ON CONFLICT (tenant_id, message_id) DO UPDATE
       SET contact_at = EXCLUDED.contact_at, outcome = EXCLUDED.outcome,
           rule_id = EXCLUDED.rule_id, reason = EXCLUDED.reason, decided_at = now()
)
INSERT INTO message_trace (tenant_id, message_id, stage, outcome, rule_id, reason, verdicts)
SELECT $1, message_id, $13, outcome, rule_id, reason, verdicts::jsonb FROM u
"""
# The same, and the events of the messages going out marked ``processing`` (the
# processor's ``begin_processing``) in the same statement: one round trip fewer before the
# send records go, on every event's path (README, Benchmarks: "Where the time goes").
_WRITE_AND_BEGIN = _WRITE.replace(
    "\nINSERT INTO message_trace", ", trace AS (\n    INSERT INTO message_trace", 1
).rstrip() + f"""
), begun AS ({begin_processing_sql(14)})
SELECT pkey FROM begun
"""


async def reserve(connection: asyncpg.Connection,
                  rows: Sequence[tuple[str, HistoryRow]]) -> None:
    """Scheduled sends' places in the history (``deferred`` at their due instant), by
    tenant, traced as ``scheduled``."""
    tenants = sorted({tenant for tenant, _ in rows})
    for tenant in tenants:
        await write(connection, tenant, [row for t, row in rows if t == tenant],
                    stage="scheduled")


async def write(connection: asyncpg.Connection, tenant: str, rows: Sequence[HistoryRow],
                stage: str = "decided", begin: Sequence[StatusWrite] = ()) -> set[str]:
    """The decisions, in the history and in each message's trace; and with ``begin``, those
    events marked ``processing`` (``status_store.begin_processing``): the pKeys that may go
    on."""
    if not rows and not begin:
        return set()
    args = (
        tenant, [uuid.UUID(r.message_id) for r in rows], [r.profile_id for r in rows],
        [r.channel for r in rows], [r.origin_kind for r in rows], [r.origin_id for r in rows],
        [r.transactional for r in rows], [r.contact_at for r in rows],
        [r.outcome for r in rows], [r.rule_id for r in rows], [r.reason for r in rows],
        # As text: asyncpg would read a list in an array parameter as another dimension.
        [orjson.dumps(r.verdicts).decode() for r in rows], stage)
    if not begin:
        await connection.execute(_WRITE, *args)
        return set()
    found = await connection.fetch(_WRITE_AND_BEGIN, *args, *begin_processing_args(begin))
    return {row["pkey"] for row in found}


async def unsend(connection: asyncpg.Connection, messages: Sequence[tuple[str, str]]) -> None:
    """Messages decided ``sent`` whose event ended before they went (cancelled, or refused
    by the gateway): excluded, so fatigue and capacity do not count them."""
    if messages:
        await connection.execute(
            "UPDATE contact_history h SET outcome = 'excluded', reason = 'cancelled'"
            "  FROM unnest($1::text[], $2::uuid[]) AS m(t, id)"
            " WHERE h.tenant_id = m.t AND h.message_id = m.id AND h.outcome = 'sent'",
            [t for t, _ in messages], [uuid.UUID(m) for _, m in messages])


async def trace(pool: asyncpg.Pool, tenant: str, message_id: str) -> list[dict[str, Any]]:
    """What happened to a message, step by step, oldest first."""
    rows = await pool.fetch(
        "SELECT at, stage, outcome, rule_id, reason, verdicts FROM message_trace"
        " WHERE tenant_id = $1 AND message_id = $2 ORDER BY at", tenant, uuid.UUID(message_id))
    return [{"at": r["at"].isoformat(), "stage": r["stage"], "outcome": r["outcome"],
             **({"rule": r["rule_id"]} if r["rule_id"] else {}),
             **({"reason": r["reason"]} if r["reason"] else {}),
             # a decision's rules' verdicts (a list), or what a later stage noted (an object:
             # a reaction's id)
             **({"verdicts": r["verdicts"]} if isinstance(r["verdicts"], list) else
                {"detail": r["verdicts"]} if r["verdicts"] is not None else {})}
            for r in rows]


# --- erasure and access requests (shared/adapters/erasure.py) ---------------------------

_HELD_OF = """
SELECT message_id, pkey, event_id FROM held_messages
 WHERE tenant_id = $1 AND record->>'profileId' = $2
"""


async def _erase(connection: asyncpg.Connection, tenant: str, profile_id: str
                 ) -> dict[str, int]:
    """The profile's contact history and its messages' traces go; its deferred messages
    (which carry its data) go too, their events ending ``targetingFailed``."""
    held = await connection.fetch(_HELD_OF + " FOR UPDATE", tenant, profile_id)
    await connection.execute(
        "DELETE FROM held_messages WHERE tenant_id = $1 AND message_id = ANY($2::uuid[])",
        tenant, [r["message_id"] for r in held])
    await record_statuses(connection, [
        StatusWrite(r["pkey"], tenant, r["event_id"], Status.TARGETING_FAILED,
                    "its profile was erased") for r in held if r["pkey"]])
    traces = await connection.execute(
        "DELETE FROM message_trace t USING contact_history h"
        " WHERE t.tenant_id = $1 AND h.tenant_id = $1 AND h.profile_id = $2"
        "   AND t.message_id = h.message_id", tenant, profile_id)
    contacts = await connection.execute(
        "DELETE FROM contact_history WHERE tenant_id = $1 AND profile_id = $2",
        tenant, profile_id)
    return {"contactHistory": int(contacts.split()[-1]),
            "messageTraces": int(traces.split()[-1]), "deferredMessages": len(held)}


async def _export(connection: asyncpg.Connection, tenant: str, profile_id: str
                  ) -> dict[str, Any]:
    rows = await connection.fetch(
        "SELECT message_id, channel, origin_kind, origin_id, contact_at, outcome, reason"
        "  FROM contact_history WHERE tenant_id = $1 AND profile_id = $2 ORDER BY contact_at",
        tenant, profile_id)
    return {"contactHistory": [
        {"messageId": str(r["message_id"]), "channel": r["channel"],
         "origin": {"kind": r["origin_kind"], "id": r["origin_id"]},
         "contactAt": r["contact_at"].isoformat(), "outcome": r["outcome"],
         **({"reason": r["reason"]} if r["reason"] else {})} for r in rows]}


erasure.register(erasure.PersonalData("contactHistory", _erase, _export))
