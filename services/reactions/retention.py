"""The retention purge, a periodic job of the reactions service: every
``retention_interval_s`` (first a few seconds after start) it deletes, in small batches,
what shared/domain/retention.py says is no longer kept (shared/adapters/retention_store.py).

Here rather than in a service on a request path (the tracking service's one event loop
answers redirects, the gateway ingestion) or a new deployable: the reactions service is
long-running, off every request path, and already owns the reactions' afterlife. Replicas
are harmless: an advisory lock lets one purge at a time. ``parcours maintenance purge``
runs the same purge once (a cron job, or by hand after lowering a setting).

The same job keeps the weekly partitions of event statuses and the delivery ledger
(shared/domain/partitions.py): this week's and two more made ahead, those wholly past the
longest retention dropped, and the rows their default partitions caught counted (a
write no partition covered: ``parcours_partition_default_rows`` should stay 0)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import asyncpg
from prometheus_client import Counter, Gauge

from services.reactions.metrics import PURGE_RUNS, PURGE_SECONDS, PURGED
from shared.adapters.postgres import connect
from shared.adapters.retention_store import (
    PartitionReport,
    maintain_partitions,
    purge,
    retention_of,
    table_defaults,
)
from shared.settings import Settings

log = logging.getLogger(__name__)
FIRST_DELAY_S = 5.0

DEFAULT_ROWS = Gauge("parcours_partition_default_rows",
                     "Rows a default partition caught (a write no weekly partition covered;"
                     " should be 0): event_status, deliveries", ["table"])
WEEKS_AHEAD = Gauge("parcours_partition_weeks_ahead",
                    "Weekly partitions made beyond the current week (2 expected)", ["table"])
PARTITIONS_DROPPED = Counter("parcours_partitions_dropped_total",
                             "Weekly partitions dropped past their retention", ["table"])
PARTITIONS_CREATED = Counter("parcours_partitions_created_total",
                             "Weekly partitions made ahead", ["table"])


def export(report: PartitionReport) -> None:
    for table, rows in report.default_rows.items():
        DEFAULT_ROWS.labels(table).set(rows)
        WEEKS_AHEAD.labels(table).set(report.weeks_ahead.get(table, 0))
        PARTITIONS_DROPPED.labels(table).inc(len(report.dropped.get(table, [])))
        PARTITIONS_CREATED.labels(table).inc(len(report.created.get(table, [])))


async def purge_once(connection: asyncpg.Connection, settings: Settings) -> None:
    def counted(table: str, rows: int) -> None:
        PURGED.labels(table).inc(rows)

    now = datetime.now(UTC)
    partitions = await maintain_partitions(connection, table_defaults(settings), now.date())
    if partitions is not None:
        export(partitions)
        if any(partitions.dropped.values()) or any(partitions.created.values()):
            log.info("partitions: created %s, dropped %s", partitions.created,
                     partitions.dropped)
    purged = await purge(connection, retention_of(settings), now,
                         settings.retention_batch, progress=counted)
    if purged is None:
        PURGE_RUNS.labels("skipped").inc()  # another process is purging
        return
    PURGE_RUNS.labels("done").inc()
    PURGE_SECONDS.set(purged.seconds)
    if any(purged.rows.values()):
        log.info("retention purge: %s in %.1f s", purged.rows, purged.seconds)


async def run(settings: Settings) -> None:
    """Until cancelled; a failed purge (PostgreSQL away) is tried again next interval."""
    await asyncio.sleep(FIRST_DELAY_S)
    connection: asyncpg.Connection | None = None
    while True:
        try:
            if connection is None or connection.is_closed():
                connection = await connect(settings.pg_dsn)
            await purge_once(connection, settings)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            PURGE_RUNS.labels("failed").inc()
            log.warning("retention purge failed (%s); next in %.0f s", error,
                        settings.retention_interval_s)
            if connection is not None:
                connection.terminate()
                connection = None
        await asyncio.sleep(settings.retention_interval_s)
