"""Every ingestion call is authenticated with a tenant's key of the right scope."""

import asyncio
import collections
import secrets
import time
from pathlib import Path

import asyncpg
import httpx
import pytest

from shared.adapters.key_store import create_key, create_tenant
from shared.domain.api_keys import Scope, format_key
from tests.integration.conftest import (
    ADMIN,
    GATEWAY,
    ROOT,
    eventually,
    final_status,
    unique_email,
)


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


@pytest.mark.parametrize("scheme", ["bearer", "BEARER"])
async def test_the_bearer_scheme_is_case_insensitive(
    ingest_key: str, admin_key: str, profile_event: str, scheme: str
) -> None:
    async with httpx.AsyncClient(headers={"authorization": f"{scheme} {ingest_key}"}) as client:
        response = await client.post(f"{GATEWAY}/v1/events/{profile_event}",
                                      json={"email": unique_email(), "ctx": {"item": "x"}})
    assert response.status_code == 202, response.text
    async with httpx.AsyncClient(headers={"authorization": f"{scheme} {admin_key}"}) as client:
        assert (await client.get(f"{ADMIN}/events")).status_code == 200


def gateway_rss_kb() -> tuple[str, int]:
    """The gateway's pid and resident memory."""
    pid = (ROOT / ".run/pids/gateway.pid").read_text().strip()
    status = Path(f"/proc/{pid}/status").read_text()
    return pid, int(next(line.split()[1] for line in status.splitlines()
                         if line.startswith("VmRSS:")))


async def key_lookups_and_commits(pool: asyncpg.Pool) -> tuple[int, int]:
    """Scans of api_keys (each key lookup is one) and commits in the database, once
    PostgreSQL's statistics have caught up: backends flush them about every second, so
    the count must hold still for longer than that."""
    last: list[float] = [-1, 0.0]  # the lookups seen, since when

    async def settled() -> tuple[int, int] | None:
        async with pool.acquire() as connection:
            await connection.execute("SELECT pg_stat_clear_snapshot()")
            lookups, commits = await connection.fetchrow(_STATS)
        now = time.monotonic()
        if lookups != last[0]:
            last[:] = [lookups, now]
            return None
        return (lookups, commits) if now - last[1] > 1.5 else None

    return await eventually(settled, "PostgreSQL's statistics to settle", deadline_s=20)


_STATS = """
SELECT (SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0) FROM pg_stat_user_tables
         WHERE relname = 'api_keys'),
       (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database())
"""


async def test_a_flood_of_unknown_key_ids_costs_no_query_and_no_memory(
    pool: asyncpg.Pool, profile_event: str
) -> None:
    """3,000 well-formed keys with random ids, 50 at a time, to 127.0.0.1: refused without
    a key lookup each (there were 3,000), and the gateway's memory stays flat. The
    database's commits are printed, not checked: they count every service's and test's
    work; a lookup is a scan of api_keys, counted exactly."""
    lookups_before, commits_before = await key_lookups_and_commits(pool)
    pid_before, rss_before = gateway_rss_kb()
    url = f"{GATEWAY}/v1/events/{profile_event}"
    codes: collections.Counter[int] = collections.Counter()
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=50)) as client:
        async def attempt(_: int) -> None:
            key = format_key(Scope.INGEST, secrets.token_hex(6), secrets.token_urlsafe(32))
            response = await client.post(url, headers=bearer(key), json={})
            codes[response.status_code] += 1

        for start in range(0, 3000, 50):
            await asyncio.gather(*map(attempt, range(start, start + 50)))
    lookups_after, commits_after = await key_lookups_and_commits(pool)
    pid_after, rss_after = gateway_rss_kb()
    if pid_after != pid_before:
        pytest.skip("the gateway was restarted during the flood: nothing to compare")
    print(f"flood: {dict(codes)}; api_keys lookups {lookups_after - lookups_before}, "
          f"commits {commits_after - commits_before}, gateway RSS {rss_before} -> "
          f"{rss_after} kB")
    assert set(codes) <= {401, 429} and codes[429] > 0  # failures rate-limited per address
    assert lookups_after - lookups_before <= 30  # a few before the address was failing
    assert rss_after - rss_before < 8 * 1024

    async def budget_back() -> bool:  # the address's failure budget refills: 401 again
        async with httpx.AsyncClient(headers=bearer("prc_ingest_abcdefghijkl_" + "x" * 43)) as c:
            return (await c.post(url, json={})).status_code == 401

    await eventually(budget_back, "401 again once the failures stop", deadline_s=30)
