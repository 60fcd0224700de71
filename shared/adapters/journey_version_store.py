"""Journey versions in PostgreSQL (migration 028): a published (or test-run) journey's
frozen definition, its state, and its audience entry's progress.

The engine reads versions here; the admin API creates them and moves their state.
"""

from __future__ import annotations

from typing import Any

import asyncpg

_COLUMNS = ("tenant_id, journey_id, version, mode, state, definition, speed, test_profiles,"
            " entry_after, entry_done, entry_started, published_at, updated_at")


async def get_version(connection: asyncpg.Connection | asyncpg.Pool, tenant: str,
                      journey_id: str, version: int) -> dict[str, Any] | None:
    row = await connection.fetchrow(
        f"SELECT {_COLUMNS} FROM journey_versions"
        " WHERE tenant_id = $1 AND journey_id = $2 AND version = $3",
        tenant, journey_id, version)
    return None if row is None else dict(row)


async def states(connection: asyncpg.Connection | asyncpg.Pool,
                 keys: set[tuple[str, str, int]]) -> dict[tuple[str, str, int], str]:
    """The state of each version (absent: no such version)."""
    if not keys:
        return {}
    ordered = sorted(keys)
    rows = await connection.fetch(
        "SELECT v.tenant_id, v.journey_id, v.version, v.state FROM journey_versions v"
        " JOIN unnest($1::text[], $2::text[], $3::int[]) AS k(t, j, n)"
        "   ON v.tenant_id = k.t AND v.journey_id = k.j AND v.version = k.n",
        [k[0] for k in ordered], [k[1] for k in ordered], [k[2] for k in ordered])
    return {(r["tenant_id"], r["journey_id"], r["version"]): r["state"] for r in rows}


async def entering(connection: asyncpg.Connection | asyncpg.Pool) -> list[dict[str, Any]]:
    """Live versions whose entry still has profiles to read (an audience or a test run's
    chosen test profiles), oldest first."""
    rows = await connection.fetch(
        f"SELECT {_COLUMNS} FROM journey_versions WHERE state = 'live' AND NOT entry_done"
        " ORDER BY published_at")
    return [dict(r) for r in rows]


async def save_entry_progress(connection: asyncpg.Connection, tenant: str, journey_id: str,
                              version: int, after: str | None, done: bool) -> None:
    await connection.execute(
        "UPDATE journey_versions SET entry_after = $4, entry_done = $5,"
        " entry_started = COALESCE(entry_started, now()), updated_at = now()"
        " WHERE tenant_id = $1 AND journey_id = $2 AND version = $3",
        tenant, journey_id, version, after, done)
