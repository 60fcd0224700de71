"""Audiences on the real stack (admin API, PostgreSQL, the CLI), each test in a tenant of
its own; profiles are written by ``apply_profile_writes``, the profile API's own path.
The seed audience ("customers in Atlanta, San Francisco or Seattle born after 1980")
counted and previewed exactly with its decoys, CRUD, 422 naming the place in the tree,
409 when the schema changed under a stored audience, tenants apart, the admin key, the
CLI, and the read a journey's entry calls resumed after a crash."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest

from shared.adapters.audience_reader import audience_query, check_definition, read_members
from shared.adapters.key_store import create_key, create_tenant
from shared.adapters.profile_schema_store import load_schema
from shared.adapters.profile_store import apply_profile_writes
from shared.domain.api_keys import Scope
from shared.domain.profiles import build_write_model, to_write
from tests.integration.conftest import ADMIN, GATEWAY, ROOT

pytestmark = pytest.mark.integration
SCHEMA = {"attributes": [{"name": "orders", "type": "integer"}],
          "topics": [{"id": "newsletter"}]}
SEED = {"all": [{"path": "city", "op": "in", "value": ["Atlanta", "San Francisco", "Seattle"]},
                {"path": "birthDate", "part": "year", "op": "gt", "value": 1980}]}
PEOPLE = [  # (profile id, city, birth date): the first three are members
    ("m-atl-2000", "Atlanta", "2000-12-31"), ("m-sea-1990", "Seattle", "1990-01-01"),
    ("m-sfo-1981", "San Francisco", "1981-01-01"),
    ("d-sea-1980", "Seattle", "1980-12-31"),  # born in 1980: not after
    ("d-pdx-1990", "Portland", "1990-05-05"),  # Portland
    ("d-atl-1975", "Atlanta", "1975-03-03"),  # Atlanta, born 1975
    ("d-sea-none", "Seattle", None),  # no birth date: unknown, not a member
    ("d-none-1990", None, "1990-05-05"),  # no city
]


@dataclass
class Tenant:
    name: str
    admin: httpx.AsyncClient
    profiles: httpx.AsyncClient
    admin_key: str
    pool: asyncpg.Pool


async def _tenant(pool: asyncpg.Pool) -> tuple[str, dict[str, str]]:
    name = f"aud-{uuid.uuid4().hex[:10]}"
    async with pool.acquire() as connection:
        await create_tenant(connection, name, "audience tests")
        keys = {scope.value: await create_key(connection, name, scope, "tests")
                for scope in (Scope.PROFILES, Scope.ADMIN)}
    return name, keys


@pytest.fixture
async def tenant(pool: asyncpg.Pool) -> AsyncIterator[Tenant]:
    name, keys = await _tenant(pool)
    async with httpx.AsyncClient(base_url=ADMIN, timeout=30, headers={
            "authorization": f"Bearer {keys['admin']}"}) as admin, httpx.AsyncClient(
            base_url=f"{GATEWAY}/v1/profiles", timeout=30,
            headers={"authorization": f"Bearer {keys['profiles']}"}) as profiles:
        declared = await admin.put("/profile-schema", json=SCHEMA)
        assert declared.status_code == 200, declared.text
        yield Tenant(name, admin, profiles, keys["admin"], pool)


async def write(tenant: Tenant, items: list[dict[str, Any]]) -> None:
    """As the profile API writes them: checked by the schema's write model, then
    ``apply_profile_writes`` in one transaction."""
    async with tenant.pool.acquire() as connection, connection.transaction():
        model = build_write_model((await load_schema(connection, tenant.name)).schema)
        writes = [to_write(item["profileId"], model.model_validate(
            {k: v for k, v in item.items() if k != "profileId"}), replace=False)
            for item in items]
        now = datetime.now(UTC)
        results = await apply_profile_writes(connection, tenant.name,
                                             [(w, now) for w in writes])
    assert {r.outcome for r in results} <= {"created", "updated"}, results


async def seed(tenant: Tenant) -> None:
    await write(tenant, [{"profileId": pid, "city": city, "birthDate": born,
                          "attributes": {"orders": i}}
                         for i, (pid, city, born) in enumerate(PEOPLE)])
    # a test profile that would match is never a member
    test = await tenant.admin.put("/test-profiles/t-sea-1990",
                                  json={"city": "Seattle", "birthDate": "1990-01-01"})
    assert test.status_code == 200, test.text


async def create(tenant: Tenant, definition: Any, name: str = "seed") -> httpx.Response:
    return await tenant.admin.post("/audiences", json={"name": name, "definition": definition})


async def test_the_seed_audience_counts_and_previews_exactly_its_members(tenant: Tenant
                                                                        ) -> None:
    await seed(tenant)
    created = await create(tenant, SEED)
    assert created.status_code == 201, created.text
    audience = created.json()
    assert audience["definition"] == SEED and audience["audienceId"].startswith("aud_")
    base = f"/audiences/{audience['audienceId']}"

    count = await tenant.admin.get(f"{base}/count")
    assert count.status_code == 200, count.text
    assert count.json()["count"] == 3
    preview = await tenant.admin.get(f"{base}/preview")
    assert preview.status_code == 200, preview.text
    assert preview.json()["profiles"] == [
        {"profileId": "m-atl-2000", "fields": {"city": "Atlanta", "birthDate": "2000-12-31"}},
        {"profileId": "m-sea-1990", "fields": {"city": "Seattle", "birthDate": "1990-01-01"}},
        {"profileId": "m-sfo-1981",
         "fields": {"city": "San Francisco", "birthDate": "1981-01-01"}}]
    first = await tenant.admin.get(f"{base}/preview", params={"limit": 1})
    assert [p["profileId"] for p in first.json()["profiles"]] == ["m-atl-2000"]
    assert (await tenant.admin.get(f"{base}/preview", params={"limit": 0})).status_code == 422


async def test_create_list_get_update_delete(tenant: Tenant) -> None:
    await seed(tenant)
    audience = (await create(tenant, SEED)).json()
    other = (await create(tenant, {"path": "city", "op": "eq", "value": "Portland"},
                          "portland")).json()
    listed = (await tenant.admin.get("/audiences")).json()
    assert [a["audienceId"] for a in listed] == [other["audienceId"], audience["audienceId"]]
    base = f"/audiences/{audience['audienceId']}"
    assert (await tenant.admin.get(base)).json() == audience

    broader = {"path": "city", "op": "startsWith", "value": "S"}
    updated = await tenant.admin.put(base, json={"name": "S cities", "definition": broader})
    assert updated.status_code == 200, updated.text
    assert updated.json()["name"] == "S cities" and updated.json()["definition"] == broader
    # Seattle ×3 (one born 1980, one without a birth date), San Francisco
    assert (await tenant.admin.get(f"{base}/count")).json()["count"] == 4

    assert (await tenant.admin.delete(base)).status_code == 204
    for answer in (await tenant.admin.get(base), await tenant.admin.get(f"{base}/count"),
                   await tenant.admin.delete(base),
                   await tenant.admin.put(base, json={"name": "x", "definition": SEED})):
        assert answer.status_code == 404, answer.text
    assert [a["audienceId"] for a in (await tenant.admin.get("/audiences")).json()] == [
        other["audienceId"]]


async def test_a_bad_definition_is_a_422_naming_its_place_in_the_tree(tenant: Tenant) -> None:
    cases = [
        ({"all": [{"path": "cty", "op": "eq", "value": "Seattle"}]}, ["all", 0, "path"]),
        ({"all": [SEED["all"][0], {"path": "birthDate", "op": "gt", "value": "soon"}]},
         ["all", 1, "value"]),
        ({"any": [{"not": {"path": "city", "op": "gt", "value": "A"}}]}, ["any", 0, "not", "op"]),
        ({"all": [{"path": "attributes.orders", "op": "eq", "value": "3"}]},
         ["all", 0, "value"]),
        ({"path": "attributes.Orders", "op": "eq", "value": 3}, ["path"]),  # exact names
        ({"path": "topics.offers.subscribed", "op": "eq", "value": True}, ["path"]),
    ]
    for definition, loc in cases:
        refused = await create(tenant, definition)
        assert refused.status_code == 422, refused.text
        assert [p["loc"] for p in refused.json()["detail"]] == [["body", "definition", *loc]], (
            definition, refused.text)
    shape = await create(tenant, {"all": [{"path": "city", "op": "like", "value": "x"}]})
    assert shape.status_code == 422
    assert shape.json()["detail"][0]["loc"][:4] == ["body", "definition", "all", 0]
    assert (await tenant.admin.get("/audiences")).json() == []


async def test_consent_and_attribute_paths_count_with_the_api_defaults(tenant: Tenant) -> None:
    await seed(tenant)
    await write(tenant, [{"profileId": "m-sea-1990", "consent": {"email": {
        "marketing": "opted-in"}}, "topics": {"newsletter": True}}])
    for definition, expected in (
            ({"path": "consent.email.marketing", "op": "eq", "value": "opted-in"}, 1),
            ({"path": "consent.email.marketing", "op": "eq", "value": "unknown"}, 7),
            ({"path": "consent.sms.blocked", "op": "eq", "value": False}, 8),
            ({"path": "topics.newsletter.subscribed", "op": "eq", "value": True}, 1),
            ({"path": "attributes.orders", "op": "ge", "value": 6}, 2)):
        audience = (await create(tenant, definition)).json()
        count = await tenant.admin.get(f"/audiences/{audience['audienceId']}/count")
        assert count.json()["count"] == expected, (definition, count.text)


async def test_a_schema_change_under_a_stored_audience_is_a_409_naming_the_path(
        tenant: Tenant) -> None:
    await seed(tenant)
    audience = (await create(tenant, {"all": [
        SEED["all"][0], {"path": "attributes.orders", "op": "ge", "value": 1}]})).json()
    base = f"/audiences/{audience['audienceId']}"
    assert (await tenant.admin.get(f"{base}/count")).json()["count"] == 5  # orders 1,2,3,5,6
    # retyped: the stored definition no longer fits the path's new type
    retyped = {**SCHEMA, "attributes": [{"name": "orders", "type": "date"}]}
    assert (await tenant.admin.put("/profile-schema", json=retyped)).status_code == 200
    mismatch = await tenant.admin.get(f"{base}/count")
    assert mismatch.status_code == 409, mismatch.text
    assert mismatch.json()["detail"][0]["loc"] == ["definition", "all", 1, "value"]
    # a new audience on the retyped path: the stale integers cannot be read as dates,
    # a 409 saying so, never a 500
    cast = (await create(tenant, {"path": "attributes.orders", "op": "gt",
                                  "value": "2020-01-01"})).json()
    refused = await tenant.admin.get(f"/audiences/{cast['audienceId']}/count")
    assert refused.status_code == 409, refused.text
    assert "retyped" in refused.json()["detail"]
    # removed: the path is gone
    assert (await tenant.admin.put("/profile-schema", json={"topics": []})).status_code == 200
    gone = await tenant.admin.get(f"{base}/preview")
    assert gone.status_code == 409, gone.text
    assert gone.json()["detail"][0]["loc"] == ["definition", "all", 1, "path"]
    assert "attributes.orders" in gone.json()["detail"][0]["msg"]


async def test_another_tenant_sees_nothing_and_an_admin_key_is_needed(
        tenant: Tenant, pool: asyncpg.Pool) -> None:
    await seed(tenant)
    audience = (await create(tenant, SEED)).json()
    base = f"/audiences/{audience['audienceId']}"
    _, keys = await _tenant(pool)
    async with httpx.AsyncClient(base_url=ADMIN, timeout=30, headers={
            "authorization": f"Bearer {keys['admin']}"}) as stranger:
        assert (await stranger.get("/audiences")).json() == []
        for answer in (await stranger.get(base), await stranger.get(f"{base}/count"),
                       await stranger.get(f"{base}/preview"), await stranger.delete(base)):
            assert answer.status_code == 404, answer.text
        own = (await stranger.post("/audiences", json={"name": "x", "definition": SEED})).json()
        count = await stranger.get(f"/audiences/{own['audienceId']}/count")
        assert count.json()["count"] == 0  # the first tenant's profiles are not theirs
    async with httpx.AsyncClient(base_url=ADMIN, timeout=30) as anonymous:
        assert (await anonymous.get("/audiences")).status_code == 401
        wrong = await anonymous.get("/audiences", headers={
            "authorization": f"Bearer {keys['profiles']}"})
        assert wrong.status_code == 403
    assert (await tenant.admin.get(f"{base}/count")).json()["count"] == 3


async def test_the_cli_creates_lists_counts_and_previews(tenant: Tenant, tmp_path: Any
                                                         ) -> None:
    await seed(tenant)
    env = {**os.environ, "PARCOURS_ADMIN_KEY": tenant.admin_key,
           "PARCOURS_ADMIN_URL": ADMIN}

    def cli(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "services.cli", "audiences", *args],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    file = tmp_path / "seed.json"
    file.write_text(json.dumps({"name": "Seed audience", "definition": SEED}))
    created = cli("create", str(file)).splitlines()
    assert created[0].split() == ["audience", "name", "updated"]
    audience_id = created[1].split()[0]
    assert "Seed audience" in cli("list")
    assert cli("count", audience_id).splitlines()[1].split()[:2] == [audience_id, "3"]
    lines = cli("preview", audience_id, "--limit", "2").splitlines()
    assert lines[0].split() == ["profile", "city", "birthDate"]
    assert [line.split()[0] for line in lines[1:]] == ["m-atl-2000", "m-sea-1990"]


async def test_reading_an_audience_resumes_after_a_crash_without_loss_or_duplicates(
        tenant: Tenant, pool: asyncpg.Pool) -> None:
    await write(tenant, [{"profileId": f"r-{i:03d}", "city": "Seattle",
                          "birthDate": "1990-01-01" if i % 3 else "1970-01-01"}
                         for i in range(60)])
    schema = (await load_schema(pool, tenant.name)).schema
    query = audience_query(tenant.name, check_definition(SEED, schema), datetime.now(UTC))
    whole = [r["profile_id"] async for batch in read_members(pool, query, batch=7)
             for r in batch]
    assert whole == sorted(f"r-{i:03d}" for i in range(60) if i % 3)

    saved: str | None = None  # what a caller persists after handling each batch
    handled: list[str] = []
    reader = read_members(pool, query, batch=7)
    async for batch in reader:
        handled += [r["profile_id"] for r in batch]
        saved = batch[-1]["profile_id"]
        if len(handled) >= 14:
            break
    await reader.aclose()  # the crash: the reader is gone mid-way
    assert saved == handled[-1] and len(handled) == 14
    async for batch in read_members(pool, query, after=saved, batch=7):
        assert len(batch) <= 7
        handled += [r["profile_id"] for r in batch]
    assert handled == whole and len(set(handled)) == 40
