"""A tenant's retention of statuses and ledger through the admin API (``GET/PUT
/admin/v1/retention``), on the real stack: the same table as ``parcours maintenance
retention``, each reads what the other wrote; the floors are a 422 naming the field and
change nothing; only the admin key's own tenant is touched."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from shared.adapters.key_store import create_key, create_tenant
from shared.domain.api_keys import Scope
from tests.integration.conftest import ADMIN, ROOT, settings

DEFAULTS = {"statusesDays": settings.retention_event_status_days,
            "deliveriesDays": settings.retention_deliveries_days}


async def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "services.cli", *args], cwd=ROOT,
        capture_output=True, text=True)


@pytest.fixture
async def tenant(pool: asyncpg.Pool) -> AsyncIterator[tuple[str, httpx.AsyncClient, str]]:
    """A tenant of its own, its admin client and an ingestion key; removed afterwards."""
    name = f"retention-{uuid.uuid4().hex[:8]}"
    async with pool.acquire() as connection:
        await create_tenant(connection, name, "test_retention_admin")
        admin_key = await create_key(connection, name, Scope.ADMIN, "tests")
        ingest_key = await create_key(connection, name, Scope.INGEST, "tests")
    headers = {"authorization": f"Bearer {admin_key}"}
    async with httpx.AsyncClient(base_url=ADMIN, headers=headers, timeout=30) as client:
        try:
            yield name, client, ingest_key
        finally:
            async with pool.acquire() as connection:
                for table in ("tenant_retention", "api_keys", "tenants"):
                    await connection.execute(f"DELETE FROM {table} WHERE tenant_id = $1",
                                             name)


async def test_the_admin_api_sets_what_the_cli_shows_and_back(
    tenant: tuple[str, httpx.AsyncClient, str], pool: asyncpg.Pool
) -> None:
    name, admin, _ = tenant
    fresh = (await admin.get("/retention")).json()
    assert fresh == {"statusesDays": None, "deliveriesDays": None, "kept": DEFAULTS,
                     "defaults": DEFAULTS, "floors": {"statusesDays": 8, "deliveriesDays": 9}}

    put = await admin.put("/retention", json={"statusesDays": 10})
    assert put.status_code == 200, put.text
    assert put.json()["statusesDays"] == 10 and put.json()["deliveriesDays"] is None
    assert put.json()["kept"] == {"statusesDays": 10,
                                  "deliveriesDays": DEFAULTS["deliveriesDays"]}
    assert (await admin.get("/retention")).json() == put.json()
    shown = await cli("maintenance", "retention", name)
    assert f"{name}: statuses 10 days, ledger" in shown.stdout, shown
    async with pool.acquire() as connection:  # nobody else's row
        assert await connection.fetchval(
            "SELECT count(*) FROM tenant_retention WHERE tenant_id = $1", name) == 1

    # the CLI's change is what the API reads next
    assert (await cli("maintenance", "retention", name, "--deliveries-days", "0")).returncode == 0
    read = (await admin.get("/retention")).json()
    assert read["statusesDays"] == 10 and read["deliveriesDays"] == 0
    assert read["kept"]["deliveriesDays"] is None  # 0: for ever

    # a PUT replaces both: a key left out goes back to the default; none left: no row
    assert (await admin.put("/retention", json={})).json()["kept"] == DEFAULTS
    async with pool.acquire() as connection:
        assert await connection.fetchval(
            "SELECT count(*) FROM tenant_retention WHERE tenant_id = $1", name) == 0


async def test_under_a_floor_is_a_422_naming_the_field_and_changes_nothing(
    tenant: tuple[str, httpx.AsyncClient, str],
) -> None:
    _, admin, _ = tenant
    assert (await admin.put("/retention", json={"statusesDays": 30})).status_code == 200
    under = await admin.put("/retention", json={"statusesDays": 30, "deliveriesDays": 3})
    assert under.status_code == 422
    [problem] = under.json()["detail"]
    assert problem["loc"] == ["body", "deliveriesDays"]
    assert "under the floor of 9 days" in problem["msg"]
    both = await admin.put("/retention", json={"statusesDays": 7, "deliveriesDays": 8})
    assert [p["loc"] for p in both.json()["detail"]] == [["body", "statusesDays"],
                                                         ["body", "deliveriesDays"]]
    for body, field in (({"statusesDays": -1}, "statusesDays"),
                        ({"deliveriesDays": "10"}, "deliveriesDays"),
                        ({"statusesDays": 10**9}, "statusesDays"),
                        ({"statusesDays": 10, "ledgerDays": 10}, "ledgerDays")):
        refused = await admin.put("/retention", json=body)
        assert refused.status_code == 422, (body, refused.text)
        assert refused.json()["detail"][0]["loc"] == ["body", field], refused.text
    kept = (await admin.get("/retention")).json()
    assert kept["statusesDays"] == 30 and kept["deliveriesDays"] is None


async def test_an_ingestion_key_cannot_read_nor_set_it(
    tenant: tuple[str, httpx.AsyncClient, str],
) -> None:
    _, _, ingest_key = tenant
    headers = {"authorization": f"Bearer {ingest_key}"}
    async with httpx.AsyncClient(base_url=ADMIN, headers=headers, timeout=30) as client:
        assert (await client.get("/retention")).status_code == 403
        assert (await client.put("/retention", json={"statusesDays": 10})).status_code == 403
