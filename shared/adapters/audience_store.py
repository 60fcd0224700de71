"""Audiences in PostgreSQL (table ``audiences``, migration 011): a name and the condition
tree as JSON, per tenant."""

from __future__ import annotations

import secrets
from typing import Any

import asyncpg

_COLUMNS = "audience_id, name, definition, created_at, updated_at"


def new_audience_id() -> str:
    return "aud_" + secrets.token_hex(6)


async def create_audience(connection: asyncpg.Connection, tenant: str, name: str,
                          definition: dict[str, Any]) -> dict[str, Any]:
    row = await connection.fetchrow(
        f"INSERT INTO audiences (tenant_id, audience_id, name, definition)"
        f" VALUES ($1, $2, $3, $4) RETURNING {_COLUMNS}",
        tenant, new_audience_id(), name, definition)
    return dict(row)


async def update_audience(connection: asyncpg.Connection, tenant: str, audience_id: str,
                          name: str, definition: dict[str, Any]) -> dict[str, Any] | None:
    row = await connection.fetchrow(
        f"UPDATE audiences SET name = $3, definition = $4, updated_at = now()"
        f" WHERE tenant_id = $1 AND audience_id = $2 RETURNING {_COLUMNS}",
        tenant, audience_id, name, definition)
    return None if row is None else dict(row)


async def get_audience(connection: asyncpg.Connection | asyncpg.Pool, tenant: str,
                       audience_id: str) -> dict[str, Any] | None:
    row = await connection.fetchrow(
        f"SELECT {_COLUMNS} FROM audiences WHERE tenant_id = $1 AND audience_id = $2",
        tenant, audience_id)
    return None if row is None else dict(row)


async def list_audiences(connection: asyncpg.Connection, tenant: str) -> list[dict[str, Any]]:
    rows = await connection.fetch(
        f"SELECT {_COLUMNS} FROM audiences WHERE tenant_id = $1 ORDER BY name, audience_id",
        tenant)
    return [dict(row) for row in rows]


async def delete_audience(connection: asyncpg.Connection, tenant: str, audience_id: str
                          ) -> bool:
    return await connection.fetchval(
        "DELETE FROM audiences WHERE tenant_id = $1 AND audience_id = $2 RETURNING true",
        tenant, audience_id) is not None
