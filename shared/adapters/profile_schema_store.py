"""Tenants' profile schemas in PostgreSQL (table ``profile_schemas``, migration 010), and
the cache every profile write reads them through."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from pydantic import BaseModel

from shared.adapters.postgres import Listener
from shared.bounded import BoundedDict
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


class ProfileSchemaCache:
    """A tenant's schema and write model, dropped as soon as PostgreSQL announces a change
    (``listen``); ``ttl_s`` is the safety net if that connection is lost. Bounded."""

    MAX_TENANTS = 1000

    def __init__(self, pool: asyncpg.Pool, ttl_s: float = 10.0) -> None:
        self._pool = pool
        self._ttl_s = ttl_s
        self._entries: BoundedDict[str, tuple[float, TenantSchema]] = BoundedDict(
            self.MAX_TENANTS)
        self._listener: Listener | None = None
        self._changes = 0  # a load that saw a change arrive is used once, not kept

    async def listen(self, dsn: str) -> None:
        self._listener = await Listener.open(dsn, CHANNEL, self._changed, self._missed)

    async def _missed(self) -> None:
        self._changes += 1
        self._entries.clear()

    def _changed(self, _connection: object, _pid: int, _channel: str, tenant: str) -> None:
        self._changes += 1
        self._entries.pop(tenant, None)

    async def close(self) -> None:
        if self._listener is not None:
            await self._listener.close()

    async def get(self, tenant: str) -> TenantSchema:
        now = time.monotonic()
        hit = self._entries.get(tenant)
        if hit is not None and now - hit[0] < self._ttl_s:
            return hit[1]
        changes = self._changes
        stored = await load_schema(self._pool, tenant)
        if hit is not None and hit[1].schema == stored.schema:
            entry = hit[1]  # unchanged: keep the model already built
        else:
            entry = TenantSchema(stored.schema, build_write_model(stored.schema))
        if changes == self._changes:
            self._entries[tenant] = (now, entry)
        return entry
