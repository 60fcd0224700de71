"""A tenant's journey HTTP allow-list in PostgreSQL (migration 031), and the engine's
bounded TTL cache of it (the list may change after a journey was published: the engine
re-checks each call's URL against it)."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from shared.adapters.tenant_cache import TenantCache
from shared.domain.journeys.http_hosts import HostEntry, parse_entry


async def read(connection: asyncpg.Connection, tenant: str) -> list[str]:
    """The entries, in the order they were given."""
    rows = await connection.fetch("SELECT host FROM journey_http_hosts WHERE tenant_id = $1"
                                  " ORDER BY position", tenant)
    return [r["host"] for r in rows]


async def entries(connection: asyncpg.Connection, tenant: str) -> list[HostEntry]:
    """The entries parsed (each was stored normalised by ``replace``)."""
    return [parse_entry(host) for host in await read(connection, tenant)]


async def replace(connection: asyncpg.Connection, tenant: str,
                  hosts: Sequence[HostEntry]) -> None:
    """The tenant's list becomes ``hosts`` (call inside a transaction)."""
    await connection.execute("DELETE FROM journey_http_hosts WHERE tenant_id = $1", tenant)
    await connection.executemany(
        "INSERT INTO journey_http_hosts (tenant_id, host, position) VALUES ($1, $2, $3)",
        [(tenant, str(host), index) for index, host in enumerate(hosts)])


class HttpHostsCache(TenantCache[tuple[HostEntry, ...]]):
    """A tenant's allow-list, kept ``ttl_s`` at most (bounded by tenants)."""

    def __init__(self, pool: asyncpg.Pool, ttl_s: float) -> None:
        super().__init__(pool, ttl_s, "")

    async def _load(self, tenant: str, previous: tuple[HostEntry, ...] | None
                    ) -> tuple[HostEntry, ...]:
        async with self._pool.acquire() as connection:
            return tuple(await entries(connection, tenant))


_cache: HttpHostsCache | None = None


def cache(pool: asyncpg.Pool, ttl_s: float) -> HttpHostsCache:
    """The process's cache over ``pool`` (made on first use: the engine's effects ask it
    for each call)."""
    global _cache
    if _cache is None or _cache._pool is not pool:
        _cache = HttpHostsCache(pool, ttl_s)
    return _cache
