"""P7: reading an audience (what a journey's entry calls) out of 1,000,000 profiles.

The profiles are written with COPY (``copy_records_to_table``, chunks of 100,000, one
progress line each) into a throwaway tenant of their own and deleted at the end whatever
happens (rows left by an aborted run are deleted first). Cities cycle over 16 (Atlanta,
San Francisco and Seattle among them), birth years over 1960–2004, so:

- selective: the seed audience (city in Atlanta, San Francisco, Seattle and born after
  1980): 3/16 × 24/45 = 10.0 %;
- broad: born on or after 1965-01-01: 40/45 = 88.9 %.

For each audience, each run times, on one connection:

- keyset: ``audience_reader.read_members`` (the shipped read: a query per batch of 5,000,
  ``profile_id > $last ORDER BY profile_id``, restartable from the last id);
- cursor: the same query as one server-side cursor (``connection.cursor``, 5,000 rows a
  fetch) in one transaction (restartable the same way, but holds a transaction open);
- raw: ``COPY (SELECT <same columns> FROM profiles WHERE <same condition>) TO STDOUT``
  (no order, nothing decoded in Python): the ceiling.

and the seed audience's ``count`` (the admin API's query) with its EXPLAIN ANALYZE.
The process's peak RSS is kept before and after the reads (memory flat: it does not grow
with the audience).
"""

from __future__ import annotations

import asyncio
import resource
import time
from datetime import UTC, date, datetime
from typing import Any

import asyncpg

from bench.common import RUNS, Row, progress, settings
from bench.stats import median, ratio
from shared.adapters.audience_reader import (
    BATCH,
    MEMBER_COLUMNS,
    AudienceQuery,
    audience_query,
    check_definition,
    count_members,
    read_members,
)
from shared.adapters.postgres import connect
from shared.domain.profile_schema import EMPTY_SCHEMA

TENANT = "bench-p7"
CHUNK = 100_000
TARGET_RATE = 50_000
TARGET_RATIO = 0.3
CITIES = ("Atlanta", "San Francisco", "Seattle", "Portland", "Boston", "Chicago", "Denver",
          "Austin", "Miami", "Dallas", "Phoenix", "Detroit", "Houston", "Tampa", "Omaha",
          "Tulsa")
AUDIENCES = {
    "selective": {"all": [
        {"path": "city", "op": "in", "value": ["Atlanta", "San Francisco", "Seattle"]},
        {"path": "birthDate", "part": "year", "op": "gt", "value": 1980}]},
    "broad": {"path": "birthDate", "op": "ge", "value": "1965-01-01"},
}


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _load(connection: asyncpg.Connection, total: int) -> float:
    began = time.monotonic()
    for start in range(0, total, CHUNK):
        records = [(TENANT, f"p7-{i:08d}", f"p7-{i}@bench.example.com", CITIES[i % 16],
                    date(1960 + (i // 16) % 45, 1 + i % 12, 1 + i % 28))
                   for i in range(start, min(start + CHUNK, total))]
        await connection.copy_records_to_table(
            "profiles", records=records,
            columns=["tenant_id", "profile_id", "email", "city", "birth_date"])
        progress(f"  P7 loaded {min(start + CHUNK, total):,}/{total:,} profiles")
    await connection.execute("ANALYZE profiles")
    return time.monotonic() - began


async def _drop(connection: asyncpg.Connection) -> int:
    status = await connection.execute("DELETE FROM profiles WHERE tenant_id = $1", TENANT)
    return int(status.split()[-1])


async def _keyset(connection: asyncpg.Connection, query: AudienceQuery) -> int:
    return sum([len(batch) async for batch in read_members(connection, query)])


async def _cursor(connection: asyncpg.Connection, query: AudienceQuery) -> int:
    read = 0
    async with connection.transaction():
        cursor = await connection.cursor(
            f"SELECT {MEMBER_COLUMNS} FROM profiles WHERE {query.where}"
            " ORDER BY profile_id", *query.params)
        while rows := await cursor.fetch(BATCH):
            read += len(rows)
    return read


class _Counter:
    def __init__(self) -> None:
        self.lines = 0

    async def __call__(self, data: bytes) -> None:
        self.lines += data.count(b"\n")


async def _raw(connection: asyncpg.Connection, query: AudienceQuery) -> int:
    sink = _Counter()
    await connection.copy_from_query(
        f"SELECT {MEMBER_COLUMNS} FROM profiles WHERE {query.where}", *query.params,
        output=sink)
    return sink.lines


async def _timed(how: Any, connection: asyncpg.Connection, query: AudienceQuery
                 ) -> tuple[int, float]:
    began = time.perf_counter()
    read = await how(connection, query)
    return read, time.perf_counter() - began


async def _count(connection: asyncpg.Connection, query: AudienceQuery) -> dict[str, Any]:
    times, count = [], 0
    for _ in range(RUNS):
        began = time.perf_counter()
        count = await count_members(connection, query)
        times.append((time.perf_counter() - began) * 1000)
    plan = await connection.fetchval(
        f"EXPLAIN (ANALYZE, FORMAT JSON) SELECT count(*) FROM profiles WHERE {query.where}",
        *query.params)
    plan = plan if isinstance(plan, list) else __import__("json").loads(plan)
    top = plan[0]
    return {"count": count, "ms": median(times), "runs_ms": times,
            "explain_ms": top["Execution Time"], "plan": _shape(top["Plan"])}


def _shape(node: dict[str, Any]) -> str:
    inner = ", ".join(_shape(child) for child in node.get("Plans", []))
    name = node["Node Type"] + (f" on {node['Index Name']}" if "Index Name" in node else "")
    return f"{name}({inner})" if inner else name


async def _measure(total: int) -> dict[str, Any]:
    connection = await connect(settings.pg_dsn)
    result: dict[str, Any] = {"profiles": total}
    try:
        left = await _drop(connection)
        if left:
            progress(f"  P7 deleted {left:,} profiles an earlier run left")
        result["load_s"] = await _load(connection, total)
        now = datetime.now(UTC)
        queries = {name: audience_query(TENANT, check_definition(d, EMPTY_SCHEMA), now)
                   for name, d in AUDIENCES.items()}
        result["count"] = await _count(connection, queries["selective"])
        progress(f"  P7 count of the seed audience: {result['count']['count']:,} in "
                 f"{result['count']['ms']:.0f} ms ({result['count']['plan']})")
        rss_before = _maxrss_mb()
        for name, query in queries.items():
            runs: dict[str, list[float]] = {"keyset": [], "cursor": [], "raw": []}
            members = 0
            for n in range(1, RUNS + 1):
                for how, fn in (("raw", _raw), ("keyset", _keyset), ("cursor", _cursor)):
                    read, seconds = await _timed(fn, connection, query)
                    members = members or read
                    if read != members:
                        raise AssertionError(f"{how} read {read:,}, expected {members:,}")
                    runs[how].append(read / seconds)
                progress(f"  P7 {name} run {n}/{RUNS}: {members:,} members; keyset "
                         f"{runs['keyset'][-1]:,.0f}/s, cursor {runs['cursor'][-1]:,.0f}/s,"
                         f" raw COPY {runs['raw'][-1]:,.0f}/s")
            result[name] = {"members": members, "runs_per_s": runs,
                            **{how: median(rates) for how, rates in runs.items()}}
        result["maxrss_mb"] = {"before_reads": rss_before, "after_reads": _maxrss_mb()}
    finally:
        progress(f"  P7: deleting the {total:,} bench profiles")
        result["deleted"] = await _drop(connection)
        await connection.close()
    return result


def run(total: int) -> list[Row]:
    progress(f"P7 read audience: {total:,} profiles in tenant {TENANT}, {RUNS} runs")
    result = asyncio.run(_measure(total))
    count = result["count"]
    rows = [Row("P7", f"count, seed audience of {total:,} ({count['count']:,} members)",
                count["ms"], "ms", target="≤ 1 s", met=count["ms"] <= 1000,
                details=result)]
    for name in AUDIENCES:
        r = result[name]
        share = r["members"] / total
        rows.append(Row(
            "P7", f"read {name} audience ({r['members']:,} = {share:.0%}), keyset; "
                  f"cursor {r['cursor']:,.0f}/s", r["keyset"], "members/s",
            baseline=f"raw COPY {r['raw']:,.0f}/s", ratio=ratio(r["keyset"], r["raw"]),
            target=f"≥ {TARGET_RATE:,}/s, ≥ {TARGET_RATIO} × raw",
            met=r["keyset"] >= TARGET_RATE and r["keyset"] >= TARGET_RATIO * r["raw"]))
    return rows
