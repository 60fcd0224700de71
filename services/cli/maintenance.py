"""``parcours maintenance purge [--batch N]``: the retention purge once, as the reactions
service runs it every PARCOURS_RETENTION_INTERVAL_S (shared/domain/retention.py; settings
PARCOURS_RETENTION_*_DAYS). Prints the rows deleted per table; exits 3 when another purge
holds the lock (nothing done), for a cron job to tell."""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime
from typing import Any

from shared.adapters.postgres import connect
from shared.adapters.retention_store import purge, retention_of
from shared.domain.retention import TABLES
from shared.settings import get_settings

BUSY = 3


def add_verbs(nouns: Any) -> None:
    verbs = nouns.add_parser("maintenance").add_subparsers(dest="verb", required=True)
    purging = verbs.add_parser("purge", help="delete what the retention settings no longer"
                                             " keep, in small batches")
    purging.add_argument("--batch", type=int, default=None,
                         help="rows per DELETE (default PARCOURS_RETENTION_BATCH)")


async def _purge(args: argparse.Namespace) -> int:
    settings = get_settings()
    connection = await connect(settings.pg_dsn)
    try:
        purged = await purge(connection, retention_of(settings), datetime.now(UTC),
                             args.batch or settings.retention_batch)
    finally:
        await connection.close()
    if purged is None:
        print("another purge is running; nothing done")
        return BUSY
    for table in TABLES:
        print(f"{table:<18}{purged.rows.get(table, 0):>12,} rows deleted")
    print(f"{'seconds':<18}{purged.seconds:>12.1f}")
    return 0


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_purge(args))
