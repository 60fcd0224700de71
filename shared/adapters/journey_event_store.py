"""Journey event types in PostgreSQL (migration 027), as the admin API stored them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg
from pydantic import BaseModel

from shared.adapters.tenant_cache import TenantCache
from shared.domain.conditions import Checked
from shared.domain.journeys.journey_events import (
    JourneyEventType,
    checked_condition,
    payload_model,
)

_COLUMNS = "event_id, definition, created_at, updated_at"


async def put(connection: asyncpg.Connection, tenant: str, event_type: JourneyEventType
              ) -> tuple[dict[str, Any], bool]:
    """Create or replace; the row, and whether it was created."""
    row = await connection.fetchrow(
        "INSERT INTO journey_event_types (tenant_id, event_id, definition) VALUES ($1, $2, $3)"
        " ON CONFLICT (tenant_id, event_id) DO UPDATE SET definition = EXCLUDED.definition,"
        f" updated_at = now() RETURNING {_COLUMNS}, (xmax = 0) AS created",
        tenant, event_type.event_id, event_type.model_dump(mode="json", by_alias=True,
                                                           exclude_none=True))
    return {k: row[k] for k in row.keys() if k != "created"}, row["created"]


async def get(connection: asyncpg.Connection, tenant: str, event_id: str
              ) -> dict[str, Any] | None:
    row = await connection.fetchrow(
        f"SELECT {_COLUMNS} FROM journey_event_types WHERE tenant_id = $1 AND event_id = $2",
        tenant, event_id)
    return None if row is None else dict(row)


async def list_types(connection: asyncpg.Connection, tenant: str) -> list[dict[str, Any]]:
    rows = await connection.fetch(
        f"SELECT {_COLUMNS} FROM journey_event_types WHERE tenant_id = $1 ORDER BY event_id",
        tenant)
    return [dict(r) for r in rows]


async def types_of(connection: asyncpg.Connection, tenant: str
                   ) -> dict[str, JourneyEventType]:
    """The tenant's types, parsed: what journey validation and plans read."""
    return {r["event_id"]: JourneyEventType.model_validate(r["definition"])
            for r in await list_types(connection, tenant)}


async def delete(connection: asyncpg.Connection, tenant: str, event_id: str) -> bool:
    status = await connection.execute(
        "DELETE FROM journey_event_types WHERE tenant_id = $1 AND event_id = $2",
        tenant, event_id)
    return not status.endswith(" 0")


@dataclass(frozen=True)
class Compiled:
    """A journey event type ready for ingestion: its checked condition and payload model."""
    event_type: JourneyEventType
    condition: Checked | None
    model: type[BaseModel]


class JourneyEventTypesCache(TenantCache[dict[str, Compiled]]):
    """A tenant's journey event types, compiled, kept ``ttl_s`` (bounded by tenants, as
    every TenantCache): what the gateway reads per journey event."""

    def __init__(self, pool: asyncpg.Pool, ttl_s: float) -> None:
        super().__init__(pool, ttl_s, "")

    async def _load(self, tenant: str, previous: dict[str, Compiled] | None
                    ) -> dict[str, Compiled]:
        async with self._pool.acquire() as connection:
            types = await types_of(connection, tenant)
        kept = previous or {}
        return {event_id: (kept[event_id] if event_id in kept
                           and kept[event_id].event_type == event_type
                           else Compiled(event_type, checked_condition(event_type),
                                         payload_model(event_type)))
                for event_id, event_type in types.items()}
