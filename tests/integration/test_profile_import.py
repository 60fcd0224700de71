"""Bulk import (``POST /v1/profiles/import`` and ``parcours profiles import``) on the real
stack, each test in a tenant of its own: CSV and NDJSON, rejects with their line and
reason and nothing of them loaded, exact counts, re-import changing nothing, test
profiles' ids refused, other tenants untouched, and a failure part-way (the upload broken
off, the database connection killed between the merge's statements) leaving nothing."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from shared.adapters import profile_import_store
from shared.adapters.key_store import create_key, create_tenant
from shared.adapters.postgres import apply_migrations
from shared.domain.api_keys import Scope
from shared.domain.profile_import import COLUMNS
from shared.settings import get_settings
from tests.integration.conftest import ADMIN, GATEWAY, eventually

SCHEMA = {"attributes": [{"name": "tier", "type": "string"},
                         {"name": "orders", "type": "integer"},
                         {"name": "ltv", "type": "decimal"}],
          "topics": [{"id": "news"}]}
IMPORT = "/v1/profiles/import"
CSV_HEADERS = {"content-type": "text/csv"}


@dataclass
class Tenant:
    name: str
    profiles: httpx.AsyncClient
    admin: httpx.AsyncClient
    keys: dict[str, str]


async def _tenant(pool: asyncpg.Pool) -> AsyncIterator[Tenant]:
    name = f"imp-{uuid.uuid4().hex[:10]}"
    async with pool.acquire() as connection:
        await create_tenant(connection, name, "import tests")
        keys = {scope.value: await create_key(connection, name, scope, "tests")
                for scope in (Scope.PROFILES, Scope.ADMIN, Scope.INGEST)}
    async with httpx.AsyncClient(base_url=GATEWAY, timeout=60, headers={
            "authorization": f"Bearer {keys['profiles']}"}) as profiles, \
            httpx.AsyncClient(base_url=ADMIN, timeout=30, headers={
                "authorization": f"Bearer {keys['admin']}"}) as admin:
        declared = await admin.put("/profile-schema", json=SCHEMA)
        assert declared.status_code == 200, declared.text
        tenant = Tenant(name, profiles, admin, keys)

        async def schema_known() -> bool:  # keys and schema reach the gateway in a moment
            answer = await profiles.post(IMPORT, content="profileId,orders\n",
                                         headers=CSV_HEADERS)
            return answer.status_code == 200
        await eventually(schema_known, "the gateway knowing the key and the schema")
        yield tenant


tenant = pytest.fixture(_tenant)
other = pytest.fixture(_tenant)


def answer_of(response: httpx.Response) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    assert response.status_code == 200, response.text
    lines = [json.loads(line) for line in response.text.splitlines() if line]
    return lines[0]["summary"], lines[1:]


def counts(summary: dict[str, Any]) -> tuple[int, int, int, int, int]:
    return (summary["read"], summary["inserted"], summary["updated"], summary["unchanged"],
            summary["rejected"])


async def post_csv(tenant: Tenant, text: str | bytes) -> httpx.Response:
    return await tenant.profiles.post(IMPORT, content=text, headers=CSV_HEADERS)


async def stored(pool: asyncpg.Pool, tenant: str) -> dict[str, dict[str, Any]]:
    rows = await pool.fetch("SELECT profile_id, email, first_name, city, attributes::text AS a,"
                            " written_at FROM profiles WHERE tenant_id = $1", tenant)
    return {r["profile_id"]: {**dict(r), "a": json.loads(r["a"])} for r in rows}


GOOD_CSV = ("profileId,email,firstName,city,tier,orders,ltv,topics.news\n"
            "c1,c1@example.com,Ada,Paris,gold,3,19.90,true\n"
            "c2,not-an-address,Bob,Lyon,silver,2,,\n"
            "c3,c3@example.com,\"Cee, the third\",Leeds,,x,1.5,\n"
            "c4,c4@example.com,Dee,,,,,false\n")


async def test_csv_import_counts_rejects_and_values(tenant: Tenant, pool: asyncpg.Pool
                                                    ) -> None:
    summary, rejects = answer_of(await post_csv(tenant, GOOD_CSV))
    assert counts(summary) == (4, 2, 0, 0, 2)
    assert [(r["line"], r["profileId"], r["field"]) for r in rejects] == [
        (3, "c2", "email"), (4, "c3", "attributes.orders")]
    assert "integer" in rejects[1]["reason"]
    profiles = await stored(pool, tenant.name)
    assert set(profiles) == {"c1", "c4"}  # nothing of a rejected row
    ada = (await tenant.profiles.get("/v1/profiles/c1")).json()
    assert ada["firstName"] == "Ada" and ada["city"] == "Paris"
    assert ada["attributes"] == {"tier": "gold", "orders": 3, "ltv": 19.90}
    assert '"ltv":19.90' in (await tenant.profiles.get("/v1/profiles/c1")).text  # exact
    assert ada["topics"]["news"]["subscribed"] is True
    assert ada["topics"]["news"]["source"] == "import"
    dee = (await tenant.profiles.get("/v1/profiles/c4")).json()
    assert dee["city"] is None and dee["topics"]["news"]["subscribed"] is False


async def test_reimporting_the_same_file_changes_nothing(tenant: Tenant, pool: asyncpg.Pool
                                                         ) -> None:
    answer_of(await post_csv(tenant, GOOD_CSV))
    before = await stored(pool, tenant.name)
    history = await pool.fetchval(
        "SELECT count(*) FROM consent_history WHERE tenant_id = $1", tenant.name)
    summary, rejects = answer_of(await post_csv(tenant, GOOD_CSV))
    assert counts(summary) == (4, 0, 0, 2, 2) and len(rejects) == 2
    assert await stored(pool, tenant.name) == before  # written_at included
    assert await pool.fetchval(
        "SELECT count(*) FROM consent_history WHERE tenant_id = $1", tenant.name) == history


async def test_a_changed_file_updates_only_what_changed_and_merges(
        tenant: Tenant, pool: asyncpg.Pool) -> None:
    answer_of(await post_csv(tenant, GOOD_CSV))
    before = await stored(pool, tenant.name)
    summary, _ = answer_of(await post_csv(tenant, "profileId,city,tier\n"
                                                  "c1,Paris,platinum\nc4,,\nc9,Oslo,\n"))
    assert counts(summary) == (3, 1, 1, 1, 0)
    after = await stored(pool, tenant.name)
    assert after["c1"]["city"] == "Paris" and after["c1"]["first_name"] == "Ada"  # merged
    assert after["c1"]["a"] == {"tier": "platinum", "orders": 3, "ltv": 19.90}
    assert after["c1"]["written_at"] > before["c1"]["written_at"]
    assert after["c4"] == before["c4"]  # already so: unchanged, not rewritten
    assert after["c9"]["city"] == "Oslo" and after["c9"]["email"] is None


async def test_ndjson_import(tenant: Tenant, pool: asyncpg.Pool) -> None:
    lines = [{"profileId": "n1", "email": "n1@example.com", "attributes": {"ltv": 12.5},
              "consent": {"email": {"marketing": "opted-in"}}, "consentSource": "crm"},
             {"profileId": "n2", "attributes": {"shoeSize": 42}},
             {"profileId": "n3", "pushDevices": []}]
    body = "\n".join(json.dumps(line) for line in lines) + "\n\nnot json\n"
    response = await tenant.profiles.post(IMPORT, content=body,
                                          headers={"content-type": "application/x-ndjson"})
    summary, rejects = answer_of(response)
    assert counts(summary) == (4, 1, 0, 0, 3)
    assert [(r["line"], r["field"]) for r in rejects] == [
        (2, "attributes.shoeSize"), (3, "pushDevices"), (5, None)]
    assert set(await stored(pool, tenant.name)) == {"n1"}
    n1 = (await tenant.profiles.get("/v1/profiles/n1")).json()
    assert n1["consent"]["email"]["marketing"] == "opted-in"
    assert n1["consent"]["email"]["marketingSource"] == "crm"


async def test_test_profiles_and_repeated_ids_are_rejected(tenant: Tenant, pool: asyncpg.Pool
                                                           ) -> None:
    made = await tenant.admin.put("/test-profiles/tp-tess", json={"firstName": "Tess"})
    assert made.status_code in (200, 201), made.text
    summary, rejects = answer_of(await post_csv(
        tenant, "profileId,firstName\ntp-tess,Mallory\nr1,First\nr2,Two\nr1,Second\n"))
    assert counts(summary) == (4, 2, 0, 0, 2)
    by_line = {r["line"]: r for r in rejects}
    assert by_line[2]["profileId"] == "tp-tess" and "test profile" in by_line[2]["reason"]
    assert by_line[3]["profileId"] == "r1" and "line 5" in by_line[3]["reason"]
    assert (await tenant.admin.get("/test-profiles/tp-tess")).json()["firstName"] == "Tess"
    assert (await stored(pool, tenant.name))["r1"]["first_name"] == "Second"


async def test_another_tenants_profiles_are_untouched(tenant: Tenant, other: Tenant,
                                                      pool: asyncpg.Pool) -> None:
    answer_of(await post_csv(other, GOOD_CSV))
    theirs = await stored(pool, other.name)
    summary, _ = answer_of(await post_csv(tenant, "profileId,firstName\nc1,Mine\nc4,Mine\n"))
    assert counts(summary) == (2, 2, 0, 0, 0)  # inserted in this tenant, not updated there
    assert await stored(pool, other.name) == theirs


async def test_a_file_that_cannot_be_read_imports_nothing(tenant: Tenant, pool: asyncpg.Pool
                                                          ) -> None:
    valid = "".join(f"u{i},u{i}@example.com\n" for i in range(5000)).encode()
    broken = await post_csv(tenant, b"profileId,email\n" + valid + b"u-bad,\xff\xfe\n")
    assert broken.status_code == 400 and "nothing was imported" in broken.text
    unknown = await post_csv(tenant, "profileId,nickname\nu1,x\n")
    assert unknown.status_code == 422 and "'nickname'" in unknown.text
    wrong = await tenant.profiles.post(IMPORT, content="{}", headers={
        "content-type": "application/json"})
    assert wrong.status_code == 415
    async with httpx.AsyncClient(base_url=GATEWAY, headers={
            "authorization": f"Bearer {tenant.keys['ingest']}"}) as ingest:
        assert (await ingest.post(IMPORT, content="profileId\nu1\n",
                                  headers=CSV_HEADERS)).status_code == 403
    assert await stored(pool, tenant.name) == {}


async def _copying(pool: asyncpg.Pool, state: str = "active") -> int | None:
    return await pool.fetchval(
        "SELECT pid FROM pg_stat_activity WHERE query LIKE 'COPY%profile_import_%'"
        " AND state = $1", state)


async def test_staging_tables_a_crashed_import_left_are_dropped_by_the_next(
        tenant: Tenant, pool: asyncpg.Pool) -> None:
    """An import's staging tables hold personal data and outlive a gateway that died
    mid-import; the next import drops them — and not those of an import still running
    (its connection holds their lock)."""
    dsn = get_settings().pg_dsn
    crashed, running = await asyncpg.connect(dsn), await asyncpg.connect(dsn)
    try:
        left = await profile_import_store.open_staging(crashed, tenant.name)
        live = await profile_import_store.open_staging(running, tenant.name)
        blank = (None,) * len(COLUMNS)

        async def rows() -> AsyncIterator[tuple[Any, ...]]:
            yield (2, "orphan-1", *blank, 0, "{}", [])
        await profile_import_store.stage(left, 0, rows())
        await crashed.close()  # the connection is gone, and its lock with it
        answer_of(await post_csv(tenant, "profileId,city\nz-1,Paris\n"))
        assert await pool.fetchval("SELECT to_regclass($1)", left.parent) is None
        assert await pool.fetchval("SELECT to_regclass($1)", f"{left.parent}_0") is None
        assert await pool.fetchval("SELECT to_regclass($1)", live.parent) is not None
        await profile_import_store.close_staging(live)
        assert await pool.fetchval("SELECT to_regclass($1)", live.parent) is None
    finally:
        await running.close()
        await crashed.close()


async def test_an_upload_broken_off_imports_nothing(tenant: Tenant, pool: asyncpg.Pool
                                                    ) -> None:
    host, port = GATEWAY.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write((f"POST {IMPORT} HTTP/1.1\r\nhost: {host}\r\n"
                  f"authorization: Bearer {tenant.keys['profiles']}\r\n"
                  "content-type: text/csv\r\ntransfer-encoding: chunked\r\n\r\n").encode())

    def chunk(data: bytes) -> bytes:
        return f"{len(data):x}\r\n".encode() + data + b"\r\n"

    writer.write(chunk(b"profileId,city\n"))
    for n in range(20):
        writer.write(chunk("".join(f"d{n}-{i},Paris\n" for i in range(500)).encode()))
    await writer.drain()
    copying = await eventually(lambda: _copying(pool), "the import's COPY under way")
    writer.close()  # the client goes away mid-file: no last chunk
    await writer.wait_closed()

    async def ended() -> bool:
        return await pool.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1"
                                   " AND state LIKE 'idle%' AND backend_xid IS NULL",
                                   copying) == 1
    await eventually(ended, "the import's COPY ended")

    async def dropped() -> bool:  # the staging tables, once the transaction rolled back
        return await pool.fetchval("SELECT count(*) FROM pg_class WHERE relkind = 'r'"
                                   " AND relname ~ '^profile_import_[0-9a-f]{16}'") == 0
    await eventually(dropped, "the import's staging tables dropped")
    assert await stored(pool, tenant.name) == {}
    del reader


async def test_a_failure_between_the_merge_statements_leaves_nothing_half_written(
        tenant: Tenant, pool: asyncpg.Pool) -> None:
    answer_of(await post_csv(tenant, "profileId,city\nold-1,Paris\n"))
    before = await stored(pool, tenant.name)
    async with pool.acquire() as blocker:
        block = blocker.transaction()
        await block.start()
        # an uncommitted row the import's INSERT must wait for (after its UPDATE ran)
        await blocker.execute("INSERT INTO profiles (tenant_id, profile_id) VALUES ($1, $2)",
                              tenant.name, "new-9")
        importing = asyncio.create_task(post_csv(
            tenant, "profileId,city\nold-1,Lyon\nnew-1,Oslo\nnew-9,Rome\n"))

        async def waiting() -> int | None:
            return await pool.fetchval(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND query LIKE '%INSERT INTO profiles%profile_import_%'")
        pid = await eventually(waiting, "the import's INSERT waiting, its UPDATE done")
        assert await pool.fetchval("SELECT pg_terminate_backend($1)", pid)
        failed = await importing
        await block.rollback()
    assert failed.status_code == 503 and "nothing was imported" in failed.text
    assert await stored(pool, tenant.name) == before  # old-1 still in Paris, no new-1


async def test_a_profile_created_meanwhile_by_an_earlier_write_gets_the_import_merged(
        tenant: Tenant, pool: asyncpg.Pool) -> None:
    async with pool.acquire() as writer:
        earlier = writer.transaction()
        await earlier.start()  # its written_at (now()) is before the import's
        await writer.execute("INSERT INTO profiles (tenant_id, profile_id, first_name)"
                             " VALUES ($1, 'late-1', 'Kept')", tenant.name)
        importing = asyncio.create_task(post_csv(tenant, "profileId,city\nlate-1,Rome\n"))

        async def waiting() -> bool:
            return bool(await pool.fetchval(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND query LIKE '%INSERT INTO profiles%profile_import_%'"))
        await eventually(waiting, "the import's INSERT waiting for the other writer")
        await earlier.commit()
        summary, _ = answer_of(await importing)
    assert summary["inserted"] == 1
    late = (await stored(pool, tenant.name))["late-1"]
    assert (late["first_name"], late["city"]) == ("Kept", "Rome")  # merged, not skipped


def parcours(*args: str, key: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "services.cli", *args],
                          env={**os.environ, "PARCOURS_PROFILES_KEY": key},
                          capture_output=True, text=True, timeout=120, check=False)


async def test_the_cli_imports_with_a_summary_table_and_a_rejects_file(
        tenant: Tenant, pool: asyncpg.Pool, tmp_path: Path) -> None:
    source = tmp_path / "customers.csv"
    source.write_text(GOOD_CSV)
    done = parcours("profiles", "import", str(source), key=tenant.keys["profiles"])
    assert done.returncode == 0, done.stderr
    table = {line.split()[0]: line.split()[1] for line in done.stdout.splitlines()[1:6]}
    assert table == {"read": "4", "inserted": "2", "updated": "0", "unchanged": "0",
                     "rejected": "2"}
    with (tmp_path / "customers.csv.rejects.csv").open() as rejects:
        rows = list(csv.DictReader(rejects))
    assert [(r["line"], r["profileId"], r["field"]) for r in rows] == [
        ("3", "c2", "email"), ("4", "c3", "attributes.orders")]
    assert set(await stored(pool, tenant.name)) == {"c1", "c4"}
    again = parcours("profiles", "import", str(source), "--rejects",
                     str(tmp_path / "r.csv"), key=tenant.keys["profiles"])
    assert "unchanged            2" in again.stdout and (tmp_path / "r.csv").exists()
    refused = parcours("profiles", "import", str(tmp_path / "missing.csv"),
                       key=tenant.keys["profiles"])
    assert refused.returncode == 1 and "no file" in refused.stderr


async def test_a_profile_in_two_slices_is_imported_from_its_last_line_alone(
        tenant: Tenant, pool: asyncpg.Pool) -> None:
    """The gateway merges 50,000-row slices as it reads: a profile on a line of the first
    slice and again in the second is as if only its last line were in the file."""
    answer_of(await post_csv(tenant, "profileId,city\nx-00005,Old\n"))
    others = "".join(f"x-{i:05d},Somewhere\n" for i in range(60_000) if i != 5)
    summary, rejects = answer_of(await post_csv(
        tenant, "profileId,city\nx-00005,Between\n" + others + "x-00005,Old\n"))
    assert summary["slices"] == 2 and summary["remerged"]
    assert counts(summary) == (60_001, 59_999, 0, 1, 1)  # x-00005 is as it was: unchanged
    assert [(r["line"], r["profileId"]) for r in rejects] == [(2, "x-00005")]
    assert "line 60002" in rejects[0]["reason"]
    profiles = await stored(pool, tenant.name)
    assert len(profiles) == 60_000 and profiles["x-00005"]["city"] == "Old"
    assert profiles["x-59999"]["city"] == "Somewhere"


async def test_slices_of_a_sorted_file_are_merged_once_each(tenant: Tenant,
                                                            pool: asyncpg.Pool) -> None:
    answer_of(await post_csv(tenant, "profileId,city\ny-50001,Old\ny-00003,Old\n"))
    rows = "".join(f"y-{i:05d},Here\n" for i in range(60_000))
    summary, rejects = answer_of(await post_csv(tenant, "profileId,city\n" + rows
                                                + "y-59999,Last\n"))
    assert summary["slices"] == 2 and not summary["remerged"]
    assert counts(summary) == (60_001, 59_998, 2, 0, 1)
    assert [r["line"] for r in rejects] == [60_001]
    profiles = await stored(pool, tenant.name)
    assert (profiles["y-50001"]["city"], profiles["y-59999"]["city"]) == ("Here", "Last")


@pytest.fixture
async def young_database() -> AsyncIterator[str]:
    """A database of its own, just migrated (as a clean CI run's is), dropped after."""
    settings = get_settings()
    name = f"plans_{uuid.uuid4().hex[:8]}"
    superuser = settings.pg_dsn.replace("parcours@/parcours", "postgres@/postgres")
    server = await asyncpg.connect(superuser)
    try:
        await server.execute(f"CREATE DATABASE {name} OWNER parcours")
        dsn = settings.pg_dsn.replace("@/parcours", f"@/{name}")
        await apply_migrations(dsn)
        yield dsn
    finally:
        await server.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await server.close()


async def test_a_slice_looks_profiles_up_by_primary_key_whatever_the_statistics(
        young_database: str) -> None:
    """Statistics taken while thousands of one-profile tenants share ids such as 'c1' (a
    young or a test database: CI's) rated a tenant at about one row, and the slice's
    statements looked a staged row up through a secondary index on (tenant_id, …) with a
    filter on profile_id: a scan of the tenant per row, minutes for 60,000 rows."""
    connection = await asyncpg.connect(young_database)
    stager = await asyncpg.connect(young_database)  # the staging tables' own, as the gateway's
    staging: list[profile_import_store.Staging] = []
    try:
        async with connection.transaction():
            await _read_slice_plans(connection, stager, staging)
    finally:
        for opened in staging:  # once the transaction that read them has ended
            await profile_import_store.close_staging(opened)
        await stager.close()
        await connection.close()


async def _read_slice_plans(connection: asyncpg.Connection, stager: asyncpg.Connection,
                            staging: list[profile_import_store.Staging]) -> None:
    prefix = f"stat-{uuid.uuid4().hex[:8]}"
    await connection.execute(
        "INSERT INTO profiles (tenant_id, profile_id, email) SELECT $1 || g, 'c1',"
        " 'a' || g || '@example.com' FROM generate_series(1, 20000) g", prefix)
    await connection.execute("ANALYZE profiles")
    tenant = prefix + "-new"
    await connection.execute(
        "INSERT INTO profiles (tenant_id, profile_id, city) SELECT $1,"
        " 'y-' || lpad(g::text, 5, '0'), 'Here' FROM generate_series(0, 59999) g", tenant)
    await profile_import_store.begin(connection)
    blank = (None,) * len(COLUMNS)

    async def rows() -> AsyncIterator[tuple[Any, ...]]:
        for line in range(50_000):
            yield (line + 2, f"y-{line * 7919 % 60_000:05d}", *blank, 0, "{}", [])

    staging.append(await profile_import_store.open_staging(stager, tenant))
    table = await profile_import_store.stage(staging[0], 0, rows())
    await _explain_slice(connection, table, tenant)


async def _explain_slice(connection: asyncpg.Connection, table: str, tenant: str) -> None:
    written_at = datetime.now(UTC)
    statements = [(profile_import_store._UPDATE, (written_at,)),
                  (profile_import_store._INSERT, (tenant, written_at)),
                  (profile_import_store._TEST_IDS, ())]
    for statement, arguments in statements:
        plan = "\n".join(r[0] for r in await connection.fetch(
            "EXPLAIN " + statement.format(table=table), *arguments))
        looked_up = [line for line in plan.splitlines()
                     if " on profiles p" in line and "Scan" in line]
        assert looked_up and all("profiles_pkey" in line for line in looked_up), plan
        assert "Index Cond: ((tenant_id = s.tenant_id) AND (profile_id = s.profile_id))" \
            in plan, plan
