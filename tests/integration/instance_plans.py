"""What a query of ``journey_instances`` is planned to read when only some of its indexes
are left: the others dropped in a transaction rolled back afterwards, sequential scans
priced out. The planner's pick among indexes that all start with a tenant its statistics
do not know yet is a toss-up (each is estimated a row), so a test asks instead whether
the indexes a query is meant for can answer it; one they cannot shows a sequential scan."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

_SCANS = re.compile(r"(Seq Scan on journey_instances|using (\w+) on journey_instances"
                    r"|Bitmap Index Scan on (journey_instances\w*))")


@asynccontextmanager
async def indexes_dropped(connection: asyncpg.Connection, ddl: str) -> AsyncIterator[None]:
    """``ddl`` (drop the indexes not asked about) in a transaction rolled back after."""
    transaction = connection.transaction()
    await transaction.start()
    try:
        await connection.execute(f"SET LOCAL enable_seqscan = off; {ddl}")
        yield
    finally:
        await transaction.rollback()


async def instance_scans(connection: asyncpg.Connection, query: str,
                         args: tuple[object, ...]) -> tuple[set[str], str]:
    """The indexes of ``journey_instances`` the query's plan reads ('' for a sequential
    scan), and the plan."""
    explained = "\n".join(r[0] for r in await connection.fetch(f"EXPLAIN {query}", *args))
    return {using or bitmap for _, using, bitmap in _SCANS.findall(explained)}, explained
