"""IMPORT: bulk profile import through the gateway (``POST /v1/profiles/import``) beside
the raw ``COPY`` of the same CSV file into a scratch table, in the same run.

A throwaway tenant with a profiles key and a schema of two attributes; two generated CSV
files of ``rows`` profiles, ids in order (an export sorted by id):

- ``plain``: profileId, email, firstName, lastName, city, tier, orders — emails in no
  order (as real addresses are: each adds an entry at a random place in the email index);
- ``full``: the same plus a mobilePhone (in no order either) and a birthDate on every
  row: every row adds entries at random places in three indexes (email, phone, birth
  date), PostgreSQL's dearest work here.

Each run imports a file into an empty tenant (every row inserted), timed from the first
byte sent to the summary; the tenant's rows are then deleted and the table vacuumed, so
that the next run meets the table a first import meets, not the dead index entries of the
one before. Then the file is imported once more (every row unchanged) and the raw ``COPY``
of the file into a temporary table of text columns is timed. The tenant's profiles, keys
and schema are deleted at the end, whatever happens.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from bench.common import GATEWAY, RUNS, Row, progress
from bench.stats import median, ratio
from shared.adapters.key_store import create_key, create_tenant
from shared.adapters.postgres import connect
from shared.domain.api_keys import Scope
from shared.settings import get_settings

TARGET = 50_000
SCHEMA = {"attributes": [{"name": "tier", "type": "string"},
                         {"name": "orders", "type": "integer"}]}
_CITIES = ("Paris", "Lyon", "Leeds", "Atlanta", "Seattle", "Osaka", "Lagos", "Lima")


_HEADERS = {"plain": "profileId,email,firstName,lastName,city,tier,orders",
            "full": "profileId,email,firstName,lastName,city,tier,orders,mobilePhone,birthDate"}


def write_csv(path: Path, rows: int, shape: str = "plain") -> int:
    with path.open("w") as out:
        out.write(_HEADERS[shape] + "\n")
        for i in range(rows):
            names = f"First{i % 977},Last{i % 1013},{_CITIES[i % 8]},{('gold', 'silver')[i % 2]}"
            # multiplying by a number prime to 10 permutes the residues: unique, unordered
            email = f"u{i * 2654435761 % 10**10:010d}@bench.example.com"
            if shape == "plain":
                out.write(f"bi-{i:08d},{email},{names},{i % 50}\n")
                continue
            out.write(f"bi-{i:08d},{email},{names},{i % 50},+336{i * 48271 % 10**8:08d},"
                      f"{1940 + i % 67}-{1 + i * 7 % 12:02d}-{1 + i * 13 % 28:02d}\n")
    return path.stat().st_size


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as source:
        while chunk := source.read(1024 * 1024):
            yield chunk


def _import(path: Path, key: str) -> tuple[float, dict[str, Any]]:
    began = time.monotonic()
    with httpx.Client(timeout=httpx.Timeout(600, connect=10)) as client:
        response = client.post(f"{GATEWAY}/v1/profiles/import", content=_chunks(path),
                               headers={"authorization": f"Bearer {key}",
                                        "content-type": "text/csv"})
        response.raise_for_status()
        summary = json.loads(response.text.partition("\n")[0])["summary"]
    return time.monotonic() - began, summary


async def _setup(tenant: str) -> tuple[str, str]:
    connection = await connect(get_settings().pg_dsn)
    try:
        await create_tenant(connection, tenant, "bench import (throwaway)")
        return (await create_key(connection, tenant, Scope.PROFILES, "bench import"),
                await create_key(connection, tenant, Scope.ADMIN, "bench import"))
    finally:
        await connection.close()


async def _sql(statement: str, *args: Any) -> None:
    connection = await connect(get_settings().pg_dsn)
    try:
        await connection.execute(statement, *args)
    finally:
        await connection.close()


_RAW_COLUMNS = {"plain": ["profile_id", "email", "first_name", "last_name", "city", "tier",
                           "orders"]}
_RAW_COLUMNS["full"] = [*_RAW_COLUMNS["plain"], "mobile_phone", "birth_date"]


async def _raw_copy(path: Path, shape: str, indexed: bool = False) -> float:
    """``COPY`` of the file into a temporary table of text columns, or (``indexed``) into
    one shaped like profiles with its indexes: the floor of index upkeep."""
    columns = _RAW_COLUMNS[shape]
    connection = await connect(get_settings().pg_dsn)
    try:
        # a temporary table lives in the session's own buffers (8 MB by default): as many
        # as the server's shared buffers, so that its indexes are not written out and read
        # back as they grow (set before the session's first temporary table)
        await connection.execute("SET temp_buffers = '2GB'")
        async with connection.transaction():
            if indexed:
                await connection.execute(
                    "CREATE TEMPORARY TABLE bench_import_scratch (LIKE profiles INCLUDING"
                    " DEFAULTS INCLUDING INDEXES) ON COMMIT DROP;"
                    " ALTER TABLE bench_import_scratch ALTER tenant_id SET DEFAULT 'bench',"
                    " ADD COLUMN tier text, ADD COLUMN orders text")
            else:
                await connection.execute(
                    "CREATE TEMPORARY TABLE bench_import_scratch"
                    f" ({', '.join(f'{c} text' for c in columns)}) ON COMMIT DROP")
            began = time.monotonic()
            await connection.copy_to_table("bench_import_scratch", source=str(path),
                                           format="csv", header=True, columns=columns)
            return time.monotonic() - began
    finally:
        await connection.close()


async def _emptied(tenant: str) -> None:
    """The tenant's profiles deleted, and the table vacuumed (VACUUM runs outside a
    transaction: a connection of its own)."""
    connection = await connect(get_settings().pg_dsn)
    try:
        if await connection.execute("DELETE FROM profiles WHERE tenant_id = $1",
                                    tenant) != "DELETE 0":
            await connection.execute("VACUUM profiles")
    finally:
        await connection.close()


async def _cleanup(tenant: str) -> None:
    connection = await connect(get_settings().pg_dsn)
    try:
        await connection.execute("DELETE FROM profiles WHERE tenant_id = $1", tenant)
        await connection.execute("DELETE FROM profile_schemas WHERE tenant_id = $1", tenant)
        await connection.execute("DELETE FROM api_keys WHERE tenant_id = $1", tenant)
    finally:
        await connection.close()


def _schema_declared(admin_key: str, profiles_key: str) -> None:
    admin = f"http://127.0.0.1:{get_settings().admin_port}/admin/v1"
    httpx.put(f"{admin}/profile-schema", json=SCHEMA, timeout=30,
              headers={"authorization": f"Bearer {admin_key}"}).raise_for_status()
    deadline = time.monotonic() + 15  # the schema and the keys reach the gateway shortly
    probe = "profileId,orders\nbi-probe,1\n"
    while True:
        answer = httpx.post(f"{GATEWAY}/v1/profiles/import", content=probe, timeout=30,
                            headers={"authorization": f"Bearer {profiles_key}",
                                     "content-type": "text/csv"})
        if answer.status_code == 200 and json.loads(
                answer.text.partition("\n")[0])["summary"]["rejected"] == 0:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the import endpoint never took the schema: {answer.text}")
        time.sleep(0.2)


def run(rows: int) -> list[Row]:
    tenant = f"bench-import-{uuid.uuid4().hex[:8]}"
    folder = Path(tempfile.mkdtemp(prefix="parcours-bench-import-"))
    progress(f"IMPORT {rows:,} profiles through POST /v1/profiles/import, tenant {tenant}")
    results = []
    try:
        profiles_key, admin_key = asyncio.run(_setup(tenant))
        _schema_declared(admin_key, profiles_key)
        for shape in ("plain", "full"):
            path = folder / f"profiles-{shape}.csv"
            size = write_csv(path, rows, shape)
            progress(f"  {shape}: generated {path} ({size / 1e6:.0f} MB)")
            results.append(_measure(path, shape, size, rows, tenant, profiles_key))
            path.unlink()
    finally:
        asyncio.run(_emptied(tenant))
        asyncio.run(_cleanup(tenant))
        for leftover in folder.iterdir():
            leftover.unlink()
        os.rmdir(folder)
    return results


_WHAT = {"plain": "id, email in no order, names, city, two attributes",
         "full": "the same, and a phone in no order and a birth date"}


def _measure(path: Path, shape: str, size: int, rows: int, tenant: str,
             profiles_key: str) -> Row:
    rates, summaries = [], []
    for attempt in range(RUNS):
        asyncio.run(_emptied(tenant))
        seconds, summary = _import(path, profiles_key)
        assert summary["inserted"] == rows, summary
        rates.append(rows / seconds)
        summaries.append(summary)
        progress(f"  {shape} run {attempt + 1}: {rows / seconds:,.0f} profiles/s"
                 f" ({seconds:.1f} s; copy {summary['copySeconds']} s,"
                 f" merge {summary['mergeSeconds']} s)")
    again_s, again = _import(path, profiles_key)
    assert again["unchanged"] == rows, again
    progress(f"  {shape} re-import: {rows / again_s:,.0f} profiles/s, all {rows:,} unchanged")
    copies = [asyncio.run(_raw_copy(path, shape)) for _ in range(RUNS)]
    raw = rows / median(copies)
    progress(f"  {shape} raw COPY of the same file: {raw:,.0f} rows/s")
    indexed = rows / median([asyncio.run(_raw_copy(path, shape, True)) for _ in range(RUNS)])
    progress(f"  {shape} raw COPY into a table with the profiles' indexes: {indexed:,.0f}"
             " rows/s")
    asyncio.run(_emptied(tenant))
    figure = median(rates)
    return Row("IMPORT", f"profile import, {rows:,}-row CSV ({_WHAT[shape]}), through the"
               " gateway", figure, "profiles/s", baseline=f"raw COPY {raw:,.0f} rows/s",
               ratio=ratio(figure, raw), target=f"≥ {TARGET:,}/s", met=figure >= TARGET,
               details={"shape": shape, "rows": rows, "bytes": size, "runs": summaries,
                        "reimport_profiles_per_s": rows / again_s, "reimport": again,
                        "raw_copy_s": copies, "raw_copy_indexed_rows_per_s": indexed})
