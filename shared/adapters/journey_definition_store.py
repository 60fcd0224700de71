"""Journey definitions in PostgreSQL (migration 025): the draft of each journey, kept as
the user wrote it (JSON) once its shape is valid."""

from __future__ import annotations

from typing import Any

import asyncpg

_COLUMNS = "journey_id, name, state, draft, created_at, updated_at"


async def put_draft(connection: asyncpg.Connection, tenant: str, journey_id: str,
                    name: str, draft: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Create or replace the draft; the row, and whether it was created."""
    row = await connection.fetchrow(
        "INSERT INTO journeys (tenant_id, journey_id, name, draft) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (tenant_id, journey_id) DO UPDATE SET name = EXCLUDED.name,"
        " draft = EXCLUDED.draft, updated_at = now()"
        f" RETURNING {_COLUMNS}, (xmax = 0) AS created", tenant, journey_id, name, draft)
    created = row["created"]
    return {k: row[k] for k in row.keys() if k != "created"}, created


async def get(connection: asyncpg.Connection, tenant: str, journey_id: str
              ) -> dict[str, Any] | None:
    row = await connection.fetchrow(
        f"SELECT {_COLUMNS} FROM journeys WHERE tenant_id = $1 AND journey_id = $2",
        tenant, journey_id)
    return None if row is None else dict(row)


async def list_journeys(connection: asyncpg.Connection, tenant: str) -> list[dict[str, Any]]:
    rows = await connection.fetch(
        f"SELECT {_COLUMNS} FROM journeys WHERE tenant_id = $1 ORDER BY journey_id", tenant)
    return [dict(r) for r in rows]


async def delete_draft(connection: asyncpg.Connection, tenant: str, journey_id: str) -> bool:
    status = await connection.execute(
        "DELETE FROM journeys WHERE tenant_id = $1 AND journey_id = $2 AND state = 'draft'",
        tenant, journey_id)
    return not status.endswith(" 0")
