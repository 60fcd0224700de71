"""``parcours maintenance purge [--batch N]``: the retention purge once, as the reactions
service runs it every PARCOURS_RETENTION_INTERVAL_S (shared/domain/retention.py; settings
PARCOURS_RETENTION_*_DAYS). Prints the rows deleted per table; exits 3 when another purge
holds the lock (nothing done), for a cron job to tell. It first keeps the weekly partitions
of event statuses and the delivery ledger, as ``partitions`` does.

``parcours maintenance partitions [--ahead N]``: the partition manager once
(shared/domain/partitions.py): this week's partitions of ``event_status`` and
``deliveries`` and N more (default 2) made where missing, those wholly past the longest
retention dropped; prints what it did and the rows the default partitions hold.

``parcours maintenance retention [TENANT] [--statuses-days N] [--deliveries-days N]
[--default]``: a tenant's own retention of statuses and ledger rows (0: for ever;
``--default``: back to the settings'), or every tenant's; never under the floors."""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime
from typing import Any

import asyncpg

from shared.adapters.postgres import connect
from shared.adapters.retention_store import (
    PartitionReport,
    maintain_partitions,
    purge,
    retention_of,
    table_defaults,
    tenant_retention,
)
from shared.domain.partitions import FLOORS, keep_days
from shared.domain.partitions import TABLES as PARTITIONED
from shared.domain.retention import TABLES
from shared.settings import get_settings

BUSY = 3


def add_verbs(nouns: Any) -> None:
    verbs = nouns.add_parser("maintenance").add_subparsers(dest="verb", required=True)
    purging = verbs.add_parser("purge", help="delete what the retention settings no longer"
                                             " keep, in small batches")
    purging.add_argument("--batch", type=int, default=None,
                         help="rows per DELETE (default PARCOURS_RETENTION_BATCH)")
    parts = verbs.add_parser("partitions", help="make the weekly partitions of statuses and"
                                                " the ledger ahead, drop those past retention")
    parts.add_argument("--ahead", type=int, default=2, help="weeks made ahead (default 2)")
    kept = verbs.add_parser("retention", help="a tenant's retention of statuses and ledger")
    kept.add_argument("tenant", nargs="?")
    kept.add_argument("--statuses-days", type=int, default=None)
    kept.add_argument("--deliveries-days", type=int, default=None)
    kept.add_argument("--default", action="store_true",
                      help="the tenant keeps the settings' defaults again")


def _print_partitions(report: PartitionReport) -> None:
    for table in PARTITIONED:
        kept = report.kept_days.get(table)
        print(f"{table:<14} kept {'for ever' if kept is None else f'{kept} days'};"
              f" made {', '.join(report.created.get(table, [])) or 'none'};"
              f" dropped {', '.join(report.dropped.get(table, [])) or 'none'};"
              f" {report.weeks_ahead.get(table, 0)} weeks ahead;"
              f" {report.default_rows.get(table, 0):,} rows in the default partition")


async def _partitions(connection: asyncpg.Connection, ahead: int) -> int:
    report = await maintain_partitions(connection, table_defaults(get_settings()),
                                       datetime.now(UTC).date(), ahead)
    if report is None:
        print("another partition manager is running; nothing done")
        return BUSY
    _print_partitions(report)
    return 0


async def _purge(connection: asyncpg.Connection, batch: int | None) -> int:
    settings = get_settings()
    if await _partitions(connection, 2) == BUSY:
        return BUSY
    purged = await purge(connection, retention_of(settings), datetime.now(UTC),
                         batch or settings.retention_batch)
    if purged is None:
        print("another purge is running; nothing done")
        return BUSY
    for table in TABLES:
        print(f"{table:<18}{purged.rows.get(table, 0):>12,} rows deleted")
    print(f"{'seconds':<18}{purged.seconds:>12.1f}")
    return 0


async def _retention(connection: asyncpg.Connection, args: argparse.Namespace) -> int:
    defaults = table_defaults(get_settings())
    if args.tenant and args.default:
        await connection.execute("DELETE FROM tenant_retention WHERE tenant_id = $1",
                                 args.tenant)
    elif args.tenant and (args.statuses_days is not None or args.deliveries_days is not None):
        for value, table in ((args.statuses_days, "event_status"),
                             (args.deliveries_days, "deliveries")):
            if value is not None and 0 < value < FLOORS[table]:
                print(f"{table}: {value} days is under the floor of {FLOORS[table]} days"
                      f" (shared/domain/partitions.py); nothing changed")
                return 2
        await connection.execute(
            "INSERT INTO tenant_retention (tenant_id, statuses_days, deliveries_days)"
            " VALUES ($1, $2, $3) ON CONFLICT (tenant_id) DO UPDATE SET"
            " statuses_days = COALESCE($2, tenant_retention.statuses_days),"
            " deliveries_days = COALESCE($3, tenant_retention.deliveries_days),"
            " updated_at = now()", args.tenant, args.statuses_days, args.deliveries_days)
    own = await tenant_retention(connection)
    shown = [args.tenant] if args.tenant else sorted(own) or []

    def days(value: int | None, table: str) -> str:
        kept = keep_days(value, defaults[table], FLOORS[table])
        return ("for ever" if kept is None else f"{kept} days") + (
            "" if value is not None else " (default)")

    print(f"default: statuses {days(None, 'event_status')}, ledger {days(None, 'deliveries')}")
    for tenant in shown:
        statuses, ledger = own.get(tenant, (None, None))
        print(f"{tenant}: statuses {days(statuses, 'event_status')},"
              f" ledger {days(ledger, 'deliveries')}")
    return 0


async def _run(args: argparse.Namespace) -> int:
    connection = await connect(get_settings().pg_dsn)
    try:
        if args.verb == "partitions":
            return await _partitions(connection, args.ahead)
        if args.verb == "retention":
            return await _retention(connection, args)
        return await _purge(connection, args.batch)
    finally:
        await connection.close()


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_run(args))
