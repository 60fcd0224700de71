"""Tenants' profile schemas in PostgreSQL (table ``profile_schemas``, migration 010), and
the cache every profile write reads them through."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg
from pydantic import BaseModel

from shared.adapters.tenant_cache import TenantCache
from shared.domain.profile_schema import EMPTY_SCHEMA, ProfileSchema
from shared.domain.profiles import build_write_model

CHANNEL = "parcours_profile_schema"  # payload: the tenant; see migration 010


@dataclass(frozen=True)
class StoredSchema:
    schema: ProfileSchema
    version: int  # 0: never declared
    updated_at: datetime | None


async def load_schema(connection: asyncpg.Connection | asyncpg.Pool, tenant: str
                      ) -> StoredSchema:
    row = await connection.fetchrow(
        "SELECT definition, version, updated_at FROM profile_schemas WHERE tenant_id = $1",
        tenant)
    if row is None:
        return StoredSchema(EMPTY_SCHEMA, 0, None)
    return StoredSchema(ProfileSchema.model_validate(row["definition"]), row["version"],
                        row["updated_at"])


async def save_schema(connection: asyncpg.Connection, tenant: str, schema: ProfileSchema
                      ) -> StoredSchema:
    row = await connection.fetchrow(
        "INSERT INTO profile_schemas (tenant_id, definition) VALUES ($1, $2)"
        " ON CONFLICT (tenant_id) DO UPDATE SET definition = EXCLUDED.definition,"
        " version = profile_schemas.version + 1, updated_at = now()"
        " RETURNING version, updated_at",
        tenant, schema.model_dump(mode="json", by_alias=True))
    return StoredSchema(schema, row["version"], row["updated_at"])


@dataclass(frozen=True)
class TenantSchema:
    schema: ProfileSchema
    model: type[BaseModel]  # the write model built for it (building is slow)


class ProfileSchemaCache(TenantCache[TenantSchema]):
    """A tenant's schema and the write model built for it (building is slow: an unchanged
    schema read again keeps its model)."""

    def __init__(self, pool: asyncpg.Pool, ttl_s: float = 10.0) -> None:
        super().__init__(pool, ttl_s, CHANNEL)

    async def _load(self, tenant: str, previous: TenantSchema | None) -> TenantSchema:
        stored = await load_schema(self._pool, tenant)
        if previous is not None and previous.schema == stored.schema:
            return previous
        return TenantSchema(stored.schema, build_write_model(stored.schema))
