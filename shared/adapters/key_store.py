"""Tenants and API keys in PostgreSQL."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import asyncpg

from shared.domain.api_keys import Scope, format_key, secret_digest

_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


@dataclass(frozen=True)
class KeyRow:
    key_id: str
    tenant: str
    scope: Scope
    digest: bytes
    rate_per_s: int
    revoked: bool


async def create_tenant(connection: asyncpg.Connection, tenant: str, name: str) -> None:
    await connection.execute(
        "INSERT INTO tenants (tenant_id, name) VALUES ($1, $2)"
        " ON CONFLICT (tenant_id) DO UPDATE SET name = EXCLUDED.name", tenant, name,
    )


async def create_key(
    connection: asyncpg.Connection, tenant: str, scope: Scope, label: str = "",
    rate_per_s: int = 2000,
) -> str:
    """A new key, returned once: only its digest is kept."""
    key_id = "".join(secrets.choice(_ID_ALPHABET) for _ in range(12))
    secret = secrets.token_urlsafe(32)  # 43 characters, 256 bits
    await connection.execute(
        "INSERT INTO api_keys (key_id, tenant_id, scope, secret_sha256, label, rate_per_s)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        key_id, tenant, scope.value, secret_digest(secret), label, rate_per_s,
    )
    return format_key(scope, key_id, secret)


async def find_key(pool: asyncpg.Pool, key_id: str) -> KeyRow | None:
    row = await pool.fetchrow(
        "SELECT key_id, tenant_id, scope, secret_sha256, rate_per_s, revoked_at IS NOT NULL"
        " AS revoked FROM api_keys WHERE key_id = $1", key_id,
    )
    if row is None:
        return None
    return KeyRow(row["key_id"], row["tenant_id"], Scope(row["scope"]),
                  bytes(row["secret_sha256"]), row["rate_per_s"], row["revoked"])


async def revoke_key(connection: asyncpg.Connection, key_id: str) -> bool:
    status = await connection.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE key_id = $1 AND revoked_at IS NULL", key_id
    )
    return bool(status.endswith(" 1"))
