"""Tenants and API keys in PostgreSQL."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import asyncpg

from shared.domain.api_keys import Scope, format_key, secret_digest
from shared.domain.record_signing import SigningKey, signing_secret

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
    rate_per_s: int = 2000, kafka_signing_secret: bytes | None = None,
) -> str:
    """A new key, returned once: only its digest is kept. A ``kafka`` key's secret is
    derived from its id with ``kafka_signing_secret`` (the server's), so the processor can
    verify signatures without storing it."""
    key_id = "".join(secrets.choice(_ID_ALPHABET) for _ in range(12))
    if scope is Scope.KAFKA:
        if not kafka_signing_secret:
            raise ValueError("a kafka key needs the server's kafka signing secret")
        secret = signing_secret(kafka_signing_secret, key_id)
    else:
        secret = secrets.token_urlsafe(32)  # 43 characters, 256 bits
    await connection.execute(
        "INSERT INTO api_keys (key_id, tenant_id, scope, secret_sha256, label, rate_per_s)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        key_id, tenant, scope.value, secret_digest(secret), label, rate_per_s,
    )
    return format_key(scope, key_id, secret)


CHANNEL = "parcours_keys"  # the changed key's id; see migration 009


async def load_key_ids(pool: asyncpg.Pool) -> set[str]:
    """The ids of every key not revoked: a few thousand short strings at most."""
    rows = await pool.fetch("SELECT key_id FROM api_keys WHERE revoked_at IS NULL")
    return {row["key_id"] for row in rows}


async def find_key(pool: asyncpg.Pool, key_id: str) -> KeyRow | None:
    row = await pool.fetchrow(
        "SELECT key_id, tenant_id, scope, secret_sha256, rate_per_s, revoked_at IS NOT NULL"
        " AS revoked FROM api_keys WHERE key_id = $1", key_id,
    )
    if row is None:
        return None
    return KeyRow(row["key_id"], row["tenant_id"], Scope(row["scope"]),
                  bytes(row["secret_sha256"]), row["rate_per_s"], row["revoked"])


async def find_signing_keys(pool: asyncpg.Pool, key_ids: list[str]) -> dict[str, SigningKey]:
    """The rows of those keys that exist, by id (of any scope: the caller checks)."""
    rows = await pool.fetch(
        "SELECT key_id, tenant_id, scope, revoked_at IS NOT NULL AS revoked"
        " FROM api_keys WHERE key_id = ANY($1::text[])", key_ids,
    )
    return {row["key_id"]: SigningKey(row["key_id"], row["tenant_id"], Scope(row["scope"]),
                                      row["revoked"]) for row in rows}


async def revoke_key(connection: asyncpg.Connection, key_id: str) -> bool:
    status = await connection.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE key_id = $1 AND revoked_at IS NULL", key_id
    )
    return bool(status.endswith(" 1"))
