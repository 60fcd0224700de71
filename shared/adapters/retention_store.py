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
from datetime import date, datetime

import asyncpg

from shared.domain.partitions import (
    AHEAD_WEEKS,
    FLOORS,
    TABLES,
    WEEK,
    Partition,
    longest,
    partition_name,
    to_drop,
    upper_bound,
    utc_day,
    week_of,
    weeks_to_create,
)
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
    # never one still to relay (the outbox is small: only what the relays have not taken)
    "reactions": ("recorded_at", "NOT EXISTS (SELECT 1 FROM reaction_outbox o"
                                 " WHERE o.tenant_id = reactions.tenant_id"
                                 " AND o.reaction_id = reactions.reaction_id)"),
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


# ---------------------------------------------------------------------------------------
# Event statuses and the delivery ledger: weekly partitions (migration 040), created
# ahead and dropped whole once past the longest tenant retention (shared/domain/
# partitions.py). Never a DELETE of their rows, but for the few a default partition caught
# (a write with a day no partition covered), moved into their week's new partition.

PARTITION_LOCK = 7061728  # one partition manager at a time across processes
_LOCK_TIMEOUT = "2s"  # a DROP or ATTACH that would wait longer tries again next run

_PARTITIONS = """
SELECT c.relname AS name, pg_get_expr(c.relpartbound, c.oid) AS bound
  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
 WHERE i.inhparent = $1::regclass
"""

# The oldest acceptance among events still waiting: held until their scheduled time or
# by a rule (deferred, paused) or in the retry schedule. Their rows must stay.
# Each min() is one probe of migration 048's index on the same expression (the planner's
# min/max rewrite), not a scan of the table: keep the expressions identical.
_OLDEST_WAITING = """
SELECT min(d) FROM (
  SELECT min((trigger->>'acceptedAt')::float8) AS d FROM held_events
  UNION ALL SELECT min((record->>'acceptedAt')::float8) FROM held_messages
  UNION ALL SELECT min((record->>'acceptedAt')::float8) FROM send_retries) w
"""


@dataclass
class PartitionReport:
    """What one run of the partition manager did, by table."""

    created: dict[str, list[str]] = field(default_factory=dict)
    dropped: dict[str, list[str]] = field(default_factory=dict)
    default_rows: dict[str, int] = field(default_factory=dict)
    weeks_ahead: dict[str, int] = field(default_factory=dict)
    kept_days: dict[str, int | None] = field(default_factory=dict)
    seconds: float = 0.0


async def partitions_of(connection: asyncpg.Connection, table: str) -> list[Partition]:
    rows = await connection.fetch(_PARTITIONS, table)
    return [Partition(row["name"], upper_bound(row["bound"])) for row in rows]


async def _create_week(connection: asyncpg.Connection, table: str, monday: date) -> None:
    """This week's partition. Rows the default partition caught for it move in, in the
    same transaction (an ATTACH checks the default holds none of the range)."""
    name, default = partition_name(table, monday), f"{table}_default"
    upper = monday + WEEK
    async with connection.transaction():
        await connection.execute(f"SET LOCAL lock_timeout = '{_LOCK_TIMEOUT}'")
        caught = await connection.fetchval(
            f"SELECT count(*) FROM {default} WHERE accepted_day >= $1 AND accepted_day < $2",
            monday, upper)
        if not caught:
            await connection.execute(
                f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF {table}"
                f" FOR VALUES FROM ('{monday}') TO ('{upper}')")
            return
        await connection.execute(
            f"CREATE TABLE {name} (LIKE {table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
        await connection.execute(
            f"WITH moved AS (DELETE FROM {default} WHERE accepted_day >= $1"
            f" AND accepted_day < $2 RETURNING *) INSERT INTO {name} SELECT * FROM moved",
            monday, upper)
        await connection.execute(
            f"ALTER TABLE {table} ATTACH PARTITION {name}"
            f" FOR VALUES FROM ('{monday}') TO ('{upper}')")


async def oldest_waiting(connection: asyncpg.Connection) -> date | None:
    at = await connection.fetchval(_OLDEST_WAITING)
    return None if at is None else utc_day(at)


async def tenant_retention(connection: asyncpg.Connection) -> dict[str, tuple[int | None,
                                                                          int | None]]:
    """Each tenant's own retention (statuses, ledger) in days; None: the default."""
    rows = await connection.fetch(
        "SELECT tenant_id, statuses_days, deliveries_days FROM tenant_retention")
    return {row["tenant_id"]: (row["statuses_days"], row["deliveries_days"]) for row in rows}


async def retention_of_tenant(connection: asyncpg.Connection, tenant: str
                              ) -> tuple[int | None, int | None]:
    """One tenant's own retention (statuses, ledger) in days; None: the default."""
    row = await connection.fetchrow(
        "SELECT statuses_days, deliveries_days FROM tenant_retention WHERE tenant_id = $1",
        tenant)
    return (None, None) if row is None else (row["statuses_days"], row["deliveries_days"])


async def set_tenant_retention(connection: asyncpg.Connection, tenant: str,
                               statuses_days: int | None, deliveries_days: int | None) -> None:
    """Replace a tenant's own retention (None: the default; both None: the row goes).
    The floors are the caller's to check (``FLOORS``): the table only refuses negatives."""
    if statuses_days is None and deliveries_days is None:
        await connection.execute("DELETE FROM tenant_retention WHERE tenant_id = $1", tenant)
        return
    await connection.execute(
        "INSERT INTO tenant_retention (tenant_id, statuses_days, deliveries_days)"
        " VALUES ($1, $2, $3) ON CONFLICT (tenant_id) DO UPDATE SET"
        " statuses_days = $2, deliveries_days = $3, updated_at = now()",
        tenant, statuses_days, deliveries_days)


def table_defaults(settings: Settings) -> dict[str, int]:
    return {"event_status": settings.retention_event_status_days,
            "deliveries": settings.retention_deliveries_days}


async def maintain_partitions(connection: asyncpg.Connection, defaults: dict[str, int],
                              today: date, ahead: int = AHEAD_WEEKS) -> PartitionReport | None:
    """Create this week's partitions and ``ahead`` more where missing, drop those wholly
    past the longest retention (and older than any event still waiting), count the rows
    default partitions hold. None when another process holds the lock (nothing done)."""
    if not await connection.fetchval("SELECT pg_try_advisory_lock($1)", PARTITION_LOCK):
        return None
    started, report = time.monotonic(), PartitionReport()
    try:
        tenants = await tenant_retention(connection)
        waiting = await oldest_waiting(connection)
        for index, table in enumerate(TABLES):
            existing = {p.name for p in await partitions_of(connection, table)}
            report.created[table] = []
            for monday in weeks_to_create(today, ahead):
                if partition_name(table, monday) not in existing:
                    await _create_week(connection, table, monday)
                    report.created[table].append(partition_name(table, monday))
            keep = longest(defaults[table], (v[index] for v in tenants.values()),
                           FLOORS[table])
            report.kept_days[table] = keep
            report.dropped[table] = []
            current = await partitions_of(connection, table)
            for name in to_drop(current, today, keep, waiting):
                await connection.execute(f"SET lock_timeout = '{_LOCK_TIMEOUT}'")
                try:
                    await connection.execute(f"DROP TABLE {name}")
                finally:
                    await connection.execute("RESET lock_timeout")
                report.dropped[table].append(name)
            report.default_rows[table] = await connection.fetchval(
                f"SELECT count(*) FROM {table}_default")
            this_week = week_of(today)
            report.weeks_ahead[table] = sum(
                1 for p in await partitions_of(connection, table)
                if p.upper is not None and p.upper > this_week + WEEK)
    finally:
        await connection.execute("SELECT pg_advisory_unlock($1)", PARTITION_LOCK)
    report.seconds = time.monotonic() - started
    return report
