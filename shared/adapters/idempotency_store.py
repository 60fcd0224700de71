"""Idempotency keys in PostgreSQL (table ``idempotency_keys``)."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True)
class KeyHolder:
    event_id: str
    body_sha256: bytes
    pkey: str
    accepted: bool


async def claim(
    pool: asyncpg.Pool, tenant: str, key: str, event_id: str, body_sha256: bytes, pkey: str
) -> KeyHolder | None:
    """None when this request now owns the key; otherwise the request that does.

    Two statements on purpose: the INSERT waits for a concurrent owner to commit, and
    only a statement started after that sees its row (read committed)."""
    while True:
        inserted = await pool.fetchval(
            "INSERT INTO idempotency_keys (tenant_id, idem_key, event_id, body_sha256, pkey,"
            " state) VALUES ($1, $2, $3, $4, $5, 'producing') ON CONFLICT DO NOTHING"
            " RETURNING 1", tenant, key, event_id, body_sha256, pkey,
        )
        if inserted:
            return None
        found = await holder(pool, tenant, key)
        if found is not None:  # else its owner gave it up in between: try again
            return found


async def holder(pool: asyncpg.Pool, tenant: str, key: str) -> KeyHolder | None:
    row = await pool.fetchrow(
        "SELECT event_id, body_sha256, pkey, state FROM idempotency_keys"
        " WHERE tenant_id = $1 AND idem_key = $2", tenant, key,
    )
    if row is None:
        return None
    return KeyHolder(row["event_id"], bytes(row["body_sha256"]), row["pkey"],
                     row["state"] == "accepted")


async def settle(pool: asyncpg.Pool, tenant: str, key: str, accepted: bool) -> None:
    """Accepted: the key keeps its pKey. Refused: the key is free for a retry."""
    if accepted:
        await pool.execute("UPDATE idempotency_keys SET state = 'accepted'"
                           " WHERE tenant_id = $1 AND idem_key = $2", tenant, key)
    else:
        await pool.execute("DELETE FROM idempotency_keys WHERE tenant_id = $1 AND idem_key = $2",
                           tenant, key)


async def forget_older_than(pool: asyncpg.Pool, hours: float) -> int:
    status = await pool.execute(
        "DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(secs => $1)",
        hours * 3600,
    )
    return int(status.rsplit(" ", 1)[-1])
