"""A tenant's sender identity and DKIM keys (migration 017): written by the admin API,
read by the email senders through ``SendingCache``."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from shared.adapters.dkim import SigningKey, Vault
from shared.adapters.tenant_cache import TenantCache
from shared.domain.sender_identity import SenderIdentity, domain_of

log = logging.getLogger(__name__)
CHANNEL = "parcours_sending"  # see migration 017
_KEY = "domain, selector, public_key, active, created_at, activated_at"


async def load_identity(connection: asyncpg.Connection | asyncpg.Pool, tenant: str
                        ) -> SenderIdentity | None:
    row = await connection.fetchrow(
        "SELECT from_address, from_name, reply_to, bounce_domain FROM sender_identities"
        " WHERE tenant_id = $1", tenant)
    return row and SenderIdentity(fromAddress=row["from_address"], fromName=row["from_name"],
                                  replyTo=row["reply_to"], bounceDomain=row["bounce_domain"])


async def save_identity(connection: asyncpg.Connection, tenant: str,
                        identity: SenderIdentity) -> None:
    await connection.execute(
        "INSERT INTO sender_identities (tenant_id, from_address, from_name, reply_to,"
        " bounce_domain) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id) DO UPDATE SET"
        " from_address = $2, from_name = $3, reply_to = $4, bounce_domain = $5,"
        " updated_at = now()",
        tenant, identity.fromAddress, identity.fromName, identity.replyTo,
        identity.bounceDomain)


async def add_key(connection: asyncpg.Connection, tenant: str, domain: str, selector: str,
                  sealed: bytes, public_b64: str) -> dict[str, Any] | None:
    """None when the domain already has that selector."""
    row = await connection.fetchrow(
        f"INSERT INTO dkim_keys (tenant_id, domain, selector, private_key, public_key)"
        f" VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING {_KEY}",
        tenant, domain, selector, sealed, public_b64)
    return row and dict(row)


async def list_keys(connection: asyncpg.Connection, tenant: str, domain: str | None
                    ) -> list[dict[str, Any]]:
    rows = await connection.fetch(
        f"SELECT {_KEY} FROM dkim_keys WHERE tenant_id = $1 AND ($2::text IS NULL"
        f" OR domain = $2) ORDER BY domain, created_at, selector", tenant, domain)
    return [dict(row) for row in rows]


async def activate_key(connection: asyncpg.Connection, tenant: str, domain: str,
                       selector: str) -> dict[str, Any] | None:
    """The one that signs from now on for ``domain``; the domain's others stay, inactive."""
    exists = await connection.fetchval(
        "SELECT true FROM dkim_keys WHERE tenant_id = $1 AND domain = $2 AND selector = $3"
        " FOR UPDATE", tenant, domain, selector)
    if not exists:
        return None
    await connection.execute(
        "UPDATE dkim_keys SET active = false WHERE tenant_id = $1 AND domain = $2 AND active"
        " AND selector <> $3", tenant, domain, selector)
    row = await connection.fetchrow(
        f"UPDATE dkim_keys SET active = true, activated_at = coalesce(activated_at, now())"
        f" WHERE tenant_id = $1 AND domain = $2 AND selector = $3 RETURNING {_KEY}",
        tenant, domain, selector)
    return dict(row)


async def delete_key(connection: asyncpg.Connection, tenant: str, domain: str,
                     selector: str) -> bool:
    deleted = await connection.fetchval(
        "DELETE FROM dkim_keys WHERE tenant_id = $1 AND domain = $2 AND selector = $3"
        " RETURNING true", tenant, domain, selector)
    return bool(deleted)


async def _active_key(connection: asyncpg.Pool, tenant: str, domain: str
                      ) -> asyncpg.Record | None:
    return await connection.fetchrow(
        "SELECT selector, private_key FROM dkim_keys WHERE tenant_id = $1 AND domain = $2"
        " AND active", tenant, domain)


@dataclass(frozen=True)
class Sending:
    """How a tenant's email goes out: as whom, and signed with which key (None: unsigned)."""

    identity: SenderIdentity
    key: SigningKey | None
    # the From header made once per load, not per message (formataddr: 1 % of the email
    # sender's CPU under P6)
    header_from: str = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "header_from", self.identity.header_from)


class SendingCache(TenantCache[Sending]):
    """Per tenant (shared.adapters.tenant_cache): dropped as soon as PostgreSQL announces a
    change to its identity or keys. The private key is decrypted once per load, not per
    message."""

    def __init__(self, pool: asyncpg.Pool, ttl_s: float, vault: Vault,
                 default: SenderIdentity) -> None:
        super().__init__(pool, ttl_s, CHANNEL)
        self.pool = pool  # its owner closes it
        self.vault = vault
        self.default = default

    async def _load(self, tenant: str, previous: Sending | None) -> Sending:
        identity = await load_identity(self.pool, tenant) or self.default
        domain = domain_of(identity.fromAddress)
        row = await _active_key(self.pool, tenant, domain)
        if row is None:
            return Sending(identity, None)
        if not self.vault.ready:
            log.error("tenant %s has an active DKIM key for %s but PARCOURS_DKIM_MASTER_KEY"
                      " is not set: its email goes unsigned", tenant, domain)
            return Sending(identity, None)
        try:
            private_pem = self.vault.open(row["private_key"])
        except ValueError as error:
            log.error("tenant %s: DKIM key %s of %s unusable (%s): its email goes unsigned",
                      tenant, row["selector"], domain, error)
            return Sending(identity, None)
        return Sending(identity, SigningKey(domain, row["selector"], private_pem))
