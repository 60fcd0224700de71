"""Every ingestion call is authenticated with a tenant's key of the right scope."""

import asyncpg
import httpx
import pytest

from shared.adapters.key_store import create_key, create_tenant
from shared.domain.api_keys import Scope
from tests.integration.conftest import GATEWAY, final_status, unique_email


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


@pytest.mark.parametrize(
    "headers",
    [{}, {"authorization": "Basic dXNlcjpwYXNz"}, bearer("prc_ingest_abcdefghijkl_" + "x" * 43),
     bearer("not-a-key")],
)
async def test_no_or_unknown_key_is_401(profile_event: str, headers: dict[str, str]) -> None:
    async with httpx.AsyncClient(headers=headers) as anonymous:
        response = await anonymous.post(f"{GATEWAY}/v1/events/{profile_event}",
                                         json={"email": unique_email(), "ctx": {"item": "x"}})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_an_admin_key_cannot_ingest(profile_event: str, admin_key: str) -> None:
    async with httpx.AsyncClient(headers=bearer(admin_key)) as admin:
        response = await admin.post(f"{GATEWAY}/v1/events/{profile_event}",
                                    json={"email": unique_email(), "ctx": {"item": "x"}})
    assert response.status_code == 403
    assert "ingest" in response.json()["detail"]


async def test_another_tenant_sees_neither_the_event_nor_its_statuses(
    http: httpx.AsyncClient, pool: asyncpg.Pool, profile_event: str
) -> None:
    async with pool.acquire() as connection:
        await create_tenant(connection, "other", "Another company")
        other_key = await create_key(connection, "other", Scope.INGEST)
    accepted = await http.post(f"{GATEWAY}/v1/events/{profile_event}",
                               json={"email": unique_email(), "ctx": {"item": "x"}})
    await final_status(http, accepted.json()["href"])
    async with httpx.AsyncClient(headers=bearer(other_key)) as other:
        post = await other.post(f"{GATEWAY}/v1/events/{profile_event}",
                                json={"email": unique_email(), "ctx": {"item": "x"}})
        read = await other.get(GATEWAY + accepted.json()["href"])
    assert post.status_code == 404
    assert read.status_code == 404


async def test_a_revoked_key_is_refused_within_its_cache_time(pool: asyncpg.Pool,
                                                               profile_event: str) -> None:
    async with pool.acquire() as connection:
        key = await create_key(connection, "default", Scope.INGEST)
        await connection.execute("UPDATE api_keys SET revoked_at = now() WHERE key_id = $1",
                                 key.split("_")[2])
    async with httpx.AsyncClient(headers=bearer(key)) as revoked:
        response = await revoked.post(f"{GATEWAY}/v1/events/{profile_event}",
                                      json={"email": unique_email(), "ctx": {"item": "x"}})
    assert response.status_code == 401


async def test_over_its_rate_a_key_gets_429_with_retry_after(
    pool: asyncpg.Pool, profile_event: str
) -> None:
    async with pool.acquire() as connection:
        key = await create_key(connection, "default", Scope.INGEST, rate_per_s=1)
    async with httpx.AsyncClient(headers=bearer(key)) as slow:
        codes = []
        for _ in range(4):  # a burst of 2 is allowed, then refused
            response = await slow.post(f"{GATEWAY}/v1/events/{profile_event}",
                                        json={"email": unique_email(), "ctx": {"item": "x"}})
            codes.append(response.status_code)
    assert codes[:2] == [202, 202] and codes[2:] == [429, 429]
    assert int(response.headers["retry-after"]) >= 1
