"""The partition manager's hourly question "the oldest event still waiting" (scheduled,
deferred by a rule, in the retry schedule: ``retention_store._OLDEST_WAITING``), with and
without migration 048's indexes on each held table's ``acceptedAt``, in the same run.

Scratch copies of ``held_events``, ``held_messages`` and ``send_retries`` (their columns
and indexes) in a schema of their own, ``rows`` rows each with a record of about 600
bytes, dropped at the end. For each variant: the query's median and p90 over ``reads``
runs, and what the index costs on the writes (µs per row inserted, batches of 500).

``python -m bench.held_oldest [rows] [reads]`` runs it alone.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid

from bench.common import Row, machine_load, progress
from shared.adapters.postgres import connect
from shared.adapters.retention_store import _OLDEST_WAITING
from shared.settings import get_settings

TABLES = {"held_events": "trigger", "held_messages": "record", "send_retries": "record"}
INDEXES = {  # migration 048's
    "held_events": "((trigger->>'acceptedAt')::float8)",
    "held_messages": "((record->>'acceptedAt')::float8)",
    "send_retries": "((record->>'acceptedAt')::float8)",
}
FILLER = "x" * 500

_INSERT = {
    "held_events": "INSERT INTO held_events (pkey, tenant_id, event_id, trigger)"
                   " SELECT 'p' || $1::int + g, 't', 'EVTx', jsonb_build_object("
                   "'acceptedAt', $2::float8 + g, 'ctx', $3::text) FROM generate_series(1, $4) g",
    "held_messages": "INSERT INTO held_messages (tenant_id, message_id, due_at, record)"
                     " SELECT 't', gen_random_uuid(), now(), jsonb_build_object("
                     "'acceptedAt', $2::float8 + g, 'ctx', $3::text, 'n', $1::int)"
                     " FROM generate_series(1, $4) g",
    "send_retries": "INSERT INTO send_retries (message_id, lane, due_at, attempts, record,"
                    " last_error) SELECT gen_random_uuid(), 'tx', now(), 1, jsonb_build_object("
                    "'acceptedAt', $2::float8 + g, 'ctx', $3::text, 'n', $1::int), ''"
                    " FROM generate_series(1, $4) g",
}


async def main(rows: int, reads: int) -> list[Row]:
    connection = await connect(get_settings().pg_dsn)
    schema = f"held_{uuid.uuid4().hex[:8]}"
    out: list[Row] = []
    try:
        await connection.execute(f"CREATE SCHEMA {schema}")
        # The schema alone on the path (never public: a DROP here must not reach the real
        # tables), every statement below on the scratch copies.
        await connection.execute(f"SET search_path = {schema}")
        figures: dict[str, dict[str, float]] = {}
        for variant in ("without", "with"):
            for table in TABLES:
                await connection.execute(f"DROP TABLE IF EXISTS {schema}.{table}")
                await connection.execute(f"CREATE TABLE {schema}.{table} (LIKE public.{table}"
                                         " INCLUDING DEFAULTS INCLUDING INDEXES)")
                copied = await connection.fetch(  # 048's, copied from the real table
                    "SELECT indexname FROM pg_indexes WHERE schemaname = $1 AND tablename = $2"
                    " AND indexdef LIKE '%acceptedAt%'", schema, table)
                for index in copied:
                    await connection.execute(f"DROP INDEX {schema}.{index['indexname']}")
                if variant == "with":
                    await connection.execute(
                        f"CREATE INDEX ON {schema}.{table} ({INDEXES[table]})")
            start = time.perf_counter()
            for offset in range(0, rows, 500):
                for table in TABLES:
                    await connection.execute(_INSERT[table], offset, 1.7e9 + offset, FILLER,
                                             min(500, rows - offset))
            insert_us = (time.perf_counter() - start) / (rows * len(TABLES)) * 1e6
            for table in TABLES:
                await connection.execute(f"ANALYZE {schema}.{table}")
            times = []
            for _ in range(reads):
                start = time.perf_counter()
                await connection.fetchval(_OLDEST_WAITING)
                times.append((time.perf_counter() - start) * 1e3)
            plan = "\n".join(r[0] for r in await connection.fetch("EXPLAIN " + _OLDEST_WAITING))
            figures[variant] = {"median_ms": statistics.median(times),
                                "p90_ms": statistics.quantiles(times, n=10)[-1],
                                "insert_us": insert_us}
            progress(f"{variant} the indexes: oldest waiting {figures[variant]['median_ms']:.2f}"
                     f" ms median, {figures[variant]['p90_ms']:.2f} ms p90; insert"
                     f" {insert_us:.1f} µs a row; load {machine_load()}")
            progress("  " + plan.replace("\n", "\n  "))
        for key, what, unit in (("median_ms", "oldest waiting, median", "ms"),
                                ("insert_us", "held row insert", "µs")):
            out.append(Row("held_oldest", f"{what}, {rows:,} rows a table",
                           round(figures["with"][key], 2), unit,
                           baseline=f"{figures['without'][key]:.2f} {unit} without the index",
                           ratio=round(figures["with"][key] / figures["without"][key], 3),
                           details={"load": machine_load()}))
    finally:
        await connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await connection.close()
    return out


def run(rows: int = 100_000, reads: int = 20) -> list[Row]:
    return asyncio.run(main(rows, reads))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("rows", type=int, nargs="?", default=100_000)
    parser.add_argument("reads", type=int, nargs="?", default=20)
    args = parser.parse_args()
    for row in run(args.rows, args.reads):
        progress(f"{row.what}: {row.figure} {row.unit} (before: {row.baseline}; ×{row.ratio})")
