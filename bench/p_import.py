"""IMPORT: bulk profile import through the gateway (``POST /v1/profiles/import``) beside
the raw ``COPY`` of the same CSV file into a scratch table, in the same run.

A throwaway tenant with a profiles key and a schema of two attributes; a generated CSV of
``rows`` profiles (profileId, email, firstName, lastName, city, tier, orders). Each run
imports it into an empty tenant (every row inserted) and is timed from the first byte sent
to the summary; then the same file is imported once more (every row unchanged) and the
raw ``COPY`` of the file into a temporary table of text columns is timed. The tenant's
profiles, keys and schema are deleted at the end, whatever happens.
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


def write_csv(path: Path, rows: int) -> int:
    with path.open("w") as out:
        out.write("profileId,email,firstName,lastName,city,tier,orders\n")
        for i in range(rows):
            out.write(f"bi-{i:08d},bi-{i:08d}@bench.example.com,First{i % 977},"
                      f"Last{i % 1013},{_CITIES[i % 8]},{('gold', 'silver')[i % 2]},{i % 50}\n")
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


async def _raw_copy(path: Path, indexed: bool = False) -> float:
    """``COPY`` of the file into a temporary table of text columns, or (``indexed``) into
    one shaped like profiles with its indexes: the floor of index upkeep."""
    connection = await connect(get_settings().pg_dsn)
    try:
        async with connection.transaction():
            if indexed:
                await connection.execute(
                    "CREATE TEMPORARY TABLE bench_import_scratch (LIKE profiles INCLUDING"
                    " DEFAULTS INCLUDING INDEXES) ON COMMIT DROP;"
                    " ALTER TABLE bench_import_scratch ALTER tenant_id SET DEFAULT 'bench',"
                    " ADD COLUMN tier text, ADD COLUMN orders text")
            else:
                await connection.execute(
                    "CREATE TEMPORARY TABLE bench_import_scratch (profile_id text, email text,"
                    " first_name text, last_name text, city text, tier text, orders text)"
                    " ON COMMIT DROP")
            began = time.monotonic()
            await connection.copy_to_table(
                "bench_import_scratch", source=str(path), format="csv", header=True,
                columns=["profile_id", "email", "first_name", "last_name", "city", "tier",
                         "orders"])
            return time.monotonic() - began
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
    path = folder / "profiles.csv"
    progress(f"IMPORT {rows:,} profiles through POST /v1/profiles/import, tenant {tenant}")
    try:
        size = write_csv(path, rows)
        progress(f"  generated {path} ({size / 1e6:.0f} MB)")
        profiles_key, admin_key = asyncio.run(_setup(tenant))
        _schema_declared(admin_key, profiles_key)
        rates, summaries = [], []
        for attempt in range(RUNS):
            asyncio.run(_sql("DELETE FROM profiles WHERE tenant_id = $1", tenant))
            seconds, summary = _import(path, profiles_key)
            assert summary["inserted"] == rows, summary
            rates.append(rows / seconds)
            summaries.append(summary)
            progress(f"  run {attempt + 1}: {rows / seconds:,.0f} profiles/s ({seconds:.1f} s;"
                     f" copy {summary['copySeconds']} s, merge {summary['mergeSeconds']} s)")
        again_s, again = _import(path, profiles_key)
        assert again["unchanged"] == rows, again
        progress(f"  re-import: {rows / again_s:,.0f} profiles/s, all {rows:,} unchanged")
        copies = [asyncio.run(_raw_copy(path)) for _ in range(RUNS)]
        raw = rows / median(copies)
        progress(f"  raw COPY of the same file: {raw:,.0f} rows/s")
        indexed = rows / median([asyncio.run(_raw_copy(path, True)) for _ in range(RUNS)])
        progress(f"  raw COPY into a table with the profiles' indexes: {indexed:,.0f} rows/s")
    finally:
        asyncio.run(_cleanup(tenant))
        for leftover in folder.iterdir():
            leftover.unlink()
        os.rmdir(folder)
    figure = median(rates)
    return [Row("IMPORT", f"profile import, {rows:,}-row CSV, through the gateway", figure,
                "profiles/s", baseline=f"raw COPY {raw:,.0f} rows/s",
                ratio=ratio(figure, raw), target=f"≥ {TARGET:,}/s", met=figure >= TARGET,
                details={"rows": rows, "bytes": size, "runs": summaries,
                         "reimport_profiles_per_s": rows / again_s, "reimport": again,
                         "raw_copy_s": copies, "raw_copy_indexed_rows_per_s": indexed})]
