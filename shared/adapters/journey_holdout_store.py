"""A tenant's control group share (migration 033), read by the journeys engine in the
transaction that enters profiles, so a change applies from the next batch on."""

from __future__ import annotations

from decimal import Decimal

import asyncpg


async def percent(connection: asyncpg.Connection, tenant: str) -> Decimal:
    found: Decimal | None = await connection.fetchval(
        "SELECT percent FROM journey_holdouts WHERE tenant_id = $1", tenant)
    return found if found is not None else Decimal(0)


async def set_percent(connection: asyncpg.Connection, tenant: str, value: Decimal) -> None:
    await connection.execute(
        "INSERT INTO journey_holdouts (tenant_id, percent) VALUES ($1, $2)"
        " ON CONFLICT (tenant_id) DO UPDATE SET percent = EXCLUDED.percent,"
        " updated_at = now()", tenant, value)
