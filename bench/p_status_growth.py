"""GROWTH: event status writes and ``GET`` status latency beside 0 and beside 10,000,000
existing statuses, in the same run (issue 15: the cost must not grow with the table).

The statuses live in weekly partitions of ``accepted_day``, the day their pKey was issued
(migration 040). The bench makes two weeks of its own, far ahead of the real ones (a week
of 2031 kept empty, the next one loaded with ``--rows`` statuses by COPY, random-looking
39-character keys like real pKeys), for a tenant of its own with an ingestion key, and
drops both weeks and the tenant at the end whatever happens (and first, what an aborted
run left). Nothing of the shared weeks is touched.

Each run, for each week in turn (the order alternates between runs):

- writes: ``--events`` new events with timed pKeys of that week, each written as the
  stages write it: ``begin_processing`` (the processor, batches of 500) then
  ``record_statuses`` ``processed`` (the sender's settle, batches of 500); µs per event;
- reads: ``--gets`` ``GET /v1/events/{eventId}/{pKey}`` through the gateway, one at a
  time, of those events (random order); p50 and p99 in ms; and the same lookup straight
  in SQL (``status_store.read_status_kept``), p50 in µs.

    python -m bench.p_status_growth [--rows 10000000] [--events 20000] [--gets 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from bench.common import GATEWAY, RUNS, Row, progress, settings
from bench.stats import latency_summary, median, ratio
from shared.adapters import status_store
from shared.adapters.key_store import create_key
from shared.adapters.postgres import connect
from shared.domain.api_keys import Scope
from shared.domain.partitions import WEEK, partition_name
from shared.domain.pkeys import mint_timed_pkey
from shared.domain.routing import message_id
from shared.domain.status import Status, StatusWrite

TENANT = "bench-growth"
EVENT = "EVTgrowth"
EMPTY, FULL = date(2031, 1, 6), date(2031, 1, 13)  # two Mondays far ahead of real weeks
BATCH = 500
CHUNK = 200_000
_B32 = "abcdefghijklmnopqrstuvwxyz234567"


async def _drop(connection: asyncpg.Connection) -> None:
    for monday in (EMPTY, FULL):
        await connection.execute(
            f"DROP TABLE IF EXISTS {partition_name('event_status', monday)}")
    await connection.execute("DELETE FROM api_keys WHERE tenant_id = $1", TENANT)
    await connection.execute("DELETE FROM tenants WHERE tenant_id = $1", TENANT)


async def _prepare(connection: asyncpg.Connection, rows: int) -> str:
    await _drop(connection)
    await connection.execute("INSERT INTO tenants (tenant_id, name) VALUES ($1, $1)", TENANT)
    key = await create_key(connection, TENANT, Scope.INGEST, "bench p_status_growth",
                           rate_per_s=100_000)
    for monday in (EMPTY, FULL):
        await connection.execute(
            f"CREATE TABLE {partition_name('event_status', monday)} PARTITION OF event_status"
            f" FOR VALUES FROM ('{monday}') TO ('{monday + WEEK}')")
    full = partition_name("event_status", FULL)
    rng = random.Random(15)
    started = time.monotonic()
    for start in range(0, rows, CHUNK):
        count = min(CHUNK, rows - start)
        records = [("".join(rng.choices(_B32, k=39)), TENANT, EVENT, "processed", 3, None,
                    FULL + timedelta(days=(start + i) % 7)) for i in range(count)]
        await connection.copy_records_to_table(
            full, records=records, columns=["pkey", "tenant_id", "event_id", "status", "rank",
                                            "reason", "accepted_day"])
        progress(f"  GROWTH loaded {start + count:,}/{rows:,} statuses"
                 f" ({time.monotonic() - started:.0f} s)")
    await connection.execute(f"ANALYZE {full}")
    return key


def _pkeys(monday: date, count: int) -> list[str]:
    base = datetime.combine(monday, datetime.min.time(), UTC).timestamp()
    secret = settings.pkey_secret.encode()
    return [mint_timed_pkey(secret, TENANT, EVENT, base + random.uniform(0, 7 * 86399),
                            os.urandom(12)) for _ in range(count)]


async def _writes(connection: asyncpg.Connection, pkeys: list[str]) -> float:
    started = time.perf_counter()
    for at in range(0, len(pkeys), BATCH):
        batch = pkeys[at:at + BATCH]
        await status_store.begin_processing(connection, [
            StatusWrite(p, TENANT, EVENT, Status.PROCESSING, message_id=message_id(TENANT, p))
            for p in batch])
        await status_store.record_statuses(connection, [
            StatusWrite(p, TENANT, EVENT, Status.PROCESSED) for p in batch])
    return time.perf_counter() - started


async def _gets(client: httpx.AsyncClient, pool: asyncpg.Pool, pkeys: list[str],
                count: int) -> tuple[list[float], list[float]]:
    chosen = random.sample(pkeys, min(count, len(pkeys)))
    http, sql = [], []
    for pkey in chosen:
        started = time.perf_counter()
        answer = await client.get(f"/v1/events/{EVENT}/{pkey}")
        http.append(time.perf_counter() - started)
        assert answer.status_code == 200 and answer.json()["status"] == "processed", answer.text
    for pkey in chosen:
        started = time.perf_counter()
        row, _ = await status_store.read_status_kept(pool, TENANT, EVENT, pkey)
        sql.append(time.perf_counter() - started)
        assert row is not None
    return http, sql


async def _measure(rows: int, events: int, gets: int) -> dict[str, Any]:
    connection = await connect(settings.pg_dsn)
    pool = await asyncpg.create_pool(settings.pg_dsn, min_size=1, max_size=2)
    runs: dict[str, list[float]] = {}
    result: dict[str, Any] = {"rows": rows, "events": events, "gets": gets}
    try:
        key = await _prepare(connection, rows)
        headers = {"authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=GATEWAY, headers=headers, timeout=30) as client:
            await client.get(f"/v1/events/{EVENT}/{_pkeys(EMPTY, 1)[0]}")  # warm the key
            for n in range(1, RUNS + 1):
                order = [("empty", EMPTY), ("full", FULL)]
                for label, monday in order if n % 2 else order[::-1]:
                    pkeys = _pkeys(monday, events)
                    seconds = await _writes(connection, pkeys)
                    http, sql = await _gets(client, pool, pkeys, gets)
                    summary = latency_summary(http)
                    for name, value in (("write_us", seconds / events * 1e6),
                                        ("get_p50_ms", summary["p50_ms"]),
                                        ("get_p99_ms", summary["p99_ms"]),
                                        ("sql_p50_us", median(sql) * 1e6)):
                        runs.setdefault(f"{label}_{name}", []).append(value)
                    progress(f"  GROWTH run {n}/{RUNS} {label:>5} week: write"
                             f" {runs[f'{label}_write_us'][-1]:.1f} µs/event, GET p50"
                             f" {runs[f'{label}_get_p50_ms'][-1]:.2f} ms p99"
                             f" {runs[f'{label}_get_p99_ms'][-1]:.2f} ms, SQL p50"
                             f" {runs[f'{label}_sql_p50_us'][-1]:.0f} µs")
        result["runs"] = runs
        result |= {k: median(v) for k, v in runs.items()}
        result["partition_rows"] = {
            "empty": await connection.fetchval(
                f"SELECT count(*) FROM {partition_name('event_status', EMPTY)}"),
            "full": await connection.fetchval(
                f"SELECT count(*) FROM {partition_name('event_status', FULL)}")}
    finally:
        progress("  GROWTH: dropping the bench weeks and tenant")
        await _drop(connection)
        await connection.close()
        await pool.close()
    return result


def run(rows: int = 10_000_000, events: int = 20_000, gets: int = 2_000) -> list[Row]:
    progress(f"GROWTH: status writes and GET beside 0 and {rows:,} statuses, {RUNS} runs")
    r = asyncio.run(_measure(rows, events, gets))
    load = open("/proc/loadavg").read().split()[0]
    r["load"] = load
    beside = f"beside {rows:,} statuses"
    return [
        Row("GROWTH", f"status write (begin_processing + processed) {beside}",
            r["full_write_us"], "µs/event", baseline=f"empty week {r['empty_write_us']:.1f} µs",
            ratio=ratio(r["full_write_us"], r["empty_write_us"]), target="≤ 1.25 × empty",
            met=r["full_write_us"] <= 1.25 * r["empty_write_us"], details=r),
        Row("GROWTH", f"GET status p50 {beside}", r["full_get_p50_ms"], "ms",
            baseline=f"empty week {r['empty_get_p50_ms']:.2f} ms",
            ratio=ratio(r["full_get_p50_ms"], r["empty_get_p50_ms"]), target="≤ 1.25 × empty",
            met=r["full_get_p50_ms"] <= 1.25 * r["empty_get_p50_ms"], details=r),
        Row("GROWTH", f"GET status p99 {beside}", r["full_get_p99_ms"], "ms",
            baseline=f"empty week {r['empty_get_p99_ms']:.2f} ms",
            ratio=ratio(r["full_get_p99_ms"], r["empty_get_p99_ms"]), details=r),
        Row("GROWTH", f"status lookup in SQL p50 {beside}", r["full_sql_p50_us"], "µs",
            baseline=f"empty week {r['empty_sql_p50_us']:.0f} µs",
            ratio=ratio(r["full_sql_p50_us"], r["empty_sql_p50_us"]), details=r),
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.p_status_growth",
                                     description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--gets", type=int, default=2_000)
    args = parser.parse_args()
    for row in run(args.rows, args.events, args.gets):
        print(f"{row.id:<8}{row.what:<70}{row.figure:>10.2f} {row.unit:<10}"
              f" {row.baseline:<24} ratio {row.ratio if row.ratio is None else f'{row.ratio:.2f}'}"
              f" load {row.details.get('load')}")
