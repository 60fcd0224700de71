"""Retention's deletes (the cut-offs are shared/domain/retention.py's): the oldest rows of
``message_trace``, ``contact_history``, ``reactions`` (relayed ones only) and
``tracked_messages``, a small batch per statement, oldest first.

Each batch is one short autocommitted ``DELETE`` of at most ``batch`` rows found by a
range scan of the table's time index (migration 020; ``tracked_messages_sent`` for
tracked messages) from where the previous batch stopped, so no batch rescans what was
deleted before it and no lock is held past a batch: a writer waits at most for one
batch's row locks (milliseconds), never for a purge. A row changed meanwhile (a contact
history row settling from ``sent`` to ``delivered``) has moved and is left for the next
purge. Only one purge runs at a time across processes (an advisory lock)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg

from shared.domain.retention import (
    COUNTING_KINDS,
    Retention,
    cutoff,
    history_cutoffs,
    longest_periods,
)
from shared.settings import Settings

log = logging.getLogger(__name__)
PURGE_LOCK = 7061727  # pg_try_advisory_lock: one purge at a time (migrations take 7061726)
_EPOCH = datetime.fromisoformat("0001-01-01T00:00:00+00:00")

# table -> (time column, the condition every purged row meets besides its age)
_TABLES: dict[str, tuple[str, str]] = {
    "message_trace": ("at", "TRUE"),
    "contact_history": ("contact_at", "TRUE"),
    "reactions": ("published_at", "published_at IS NOT NULL"),  # never one still to relay
    "tracked_messages": ("sent_at", "TRUE"),
}


def _batch_sql(table: str, tenant_filter: str) -> str:
    """The DELETE names its rows by ctid alone, so it is a TID scan whatever the planner
    believes of the time range (a range condition there let it scan the whole remaining
    range again for each batch). A row updated meanwhile has another ctid: left."""
    column, condition = _TABLES[table]
    where = (f"{column} >= $1 AND {column} < $2 AND {condition}"
             f"{tenant_filter}")
    return f"""
WITH gone AS (
  DELETE FROM {table}
   WHERE ctid = ANY(ARRAY(SELECT ctid FROM {table} WHERE {where}
                           ORDER BY {column} LIMIT $3))
  RETURNING {column} AS t)
SELECT count(*) AS n, max(t) AS last FROM gone
"""


_ALL = {table: _batch_sql(table, "") for table in _TABLES}
_HISTORY_BUT = _batch_sql("contact_history", " AND tenant_id <> ALL($4::text[])")
_HISTORY_OF = _batch_sql("contact_history", " AND tenant_id = $4")


@dataclass
class Purged:
    """Rows deleted by table, and the seconds the purge took."""

    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def add(self, table: str, count: int) -> None:
        self.rows[table] = self.rows.get(table, 0) + count


Progress = Callable[[str, int], None]


async def _batches(connection: asyncpg.Connection, table: str, sql: str, before: datetime,
                   batch: int, pause_s: float, progress: Progress | None,
                   *extra: object) -> int:
    total, after = 0, _EPOCH
    while True:
        row = await connection.fetchrow(sql, after, before, batch, *extra)
        count = int(row["n"])
        total += count
        if count and progress is not None:
            progress(table, count)
        if count < batch:
            return total
        after = row["last"]
        if pause_s:
            await asyncio.sleep(pause_s)  # let the writers in between two batches


async def counting_periods(connection: asyncpg.Connection) -> list[tuple[str, dict[str, object]]]:
    rows = await connection.fetch(
        "SELECT tenant_id, definition FROM delivery_rules WHERE kind = ANY($1::text[])",
        list(COUNTING_KINDS))
    return [(row["tenant_id"], row["definition"]) for row in rows
            if isinstance(row["definition"], dict)]


async def purge(connection: asyncpg.Connection, retention: Retention, now: datetime,
                batch: int = 2000, pause_s: float = 0.02,
                progress: Progress | None = None) -> Purged | None:
    """Delete what ``retention`` no longer keeps, as of ``now``; None when another purge
    holds the lock (nothing done). ``progress(table, rows)`` is called after each batch
    (the metrics)."""
    if not await connection.fetchval("SELECT pg_try_advisory_lock($1)", PURGE_LOCK):
        return None
    started, purged = time.monotonic(), Purged()
    try:
        for table in ("message_trace", "reactions", "tracked_messages"):
            before = cutoff(now, getattr(retention, table))
            if before is not None:
                purged.add(table, await _batches(connection, table, _ALL[table], before,
                                                 batch, pause_s, progress))
        history = history_cutoffs(
            now, retention.contact_history,
            longest_periods(await counting_periods(connection)))
        if history is not None:
            purged.add("contact_history", await _batches(
                connection, "contact_history", _HISTORY_BUT, history.default, batch, pause_s,
                progress, list(history.longer)))
            for tenant, before in sorted(history.longer.items()):
                purged.add("contact_history", await _batches(
                    connection, "contact_history", _HISTORY_OF, before, batch, pause_s,
                    progress, tenant))
    finally:
        await connection.execute("SELECT pg_advisory_unlock($1)", PURGE_LOCK)
    purged.seconds = time.monotonic() - started
    return purged


def retention_of(settings: Settings) -> Retention:
    """The days each table keeps, as the settings say (PARCOURS_RETENTION_*_DAYS): the
    reactions service's hourly job and ``parcours maintenance purge`` read the same."""
    return Retention.of(settings.retention_message_trace_days,
                        settings.retention_contact_history_days,
                        settings.retention_reactions_days,
                        settings.retention_tracked_messages_days)
