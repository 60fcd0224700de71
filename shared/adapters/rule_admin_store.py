"""Writing a tenant's delivery rules (tables of migration 013) for the admin API; the
services read them through ``rules_store``.

Every write of rules or typologies first locks the tenant's ``rule_counters`` row
(``lock_rules``), so two admins cannot race: a rule deleted while a typology naming it is
saved, two typologies made default at once. Ids come from the same row (``r1``, ``r2``…,
``t1``, ``t2``… per tenant), allocated in the transaction of the insert: an id is never
given twice, nor reused after a delete.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg

_RULE = "rule_id, kind, definition, created_at, updated_at"
_TYPOLOGY = "typology_id, name, rule_ids, is_default, updated_at"
_QUARANTINE = ("channel, address, soft_failures, last_failure_at, quarantined_at, release_at,"
               " reason")
# In quarantine now: quarantined, and not yet past its release.
QUARANTINED = "quarantined_at IS NOT NULL AND release_at > now()"


async def lock_rules(connection: asyncpg.Connection, tenant: str) -> None:
    await connection.execute(
        "INSERT INTO rule_counters (tenant_id) VALUES ($1) ON CONFLICT (tenant_id)"
        " DO UPDATE SET tenant_id = EXCLUDED.tenant_id", tenant)


async def _next_id(connection: asyncpg.Connection, tenant: str, counter: str) -> int:
    number: int = await connection.fetchval(
        f"INSERT INTO rule_counters (tenant_id, {counter}) VALUES ($1, 2)"
        f" ON CONFLICT (tenant_id) DO UPDATE SET {counter} = rule_counters.{counter} + 1"
        f" RETURNING {counter} - 1", tenant)
    return number


# --- rules -------------------------------------------------------------------------------

async def create_rule(connection: asyncpg.Connection, tenant: str, kind: str,
                      definition: dict[str, Any]) -> dict[str, Any]:
    rule_id = f"r{await _next_id(connection, tenant, 'next_rule')}"
    row = await connection.fetchrow(
        f"INSERT INTO delivery_rules (tenant_id, rule_id, kind, definition)"
        f" VALUES ($1, $2, $3, $4) RETURNING {_RULE}", tenant, rule_id, kind, definition)
    return dict(row)


async def list_rules(connection: asyncpg.Connection, tenant: str) -> list[dict[str, Any]]:
    rows = await connection.fetch(
        f"SELECT {_RULE} FROM delivery_rules WHERE tenant_id = $1"
        " ORDER BY length(rule_id), rule_id", tenant)
    return [dict(row) for row in rows]


async def get_rule(connection: asyncpg.Connection, tenant: str, rule_id: str
                   ) -> dict[str, Any] | None:
    row = await connection.fetchrow(
        f"SELECT {_RULE} FROM delivery_rules WHERE tenant_id = $1 AND rule_id = $2",
        tenant, rule_id)
    return None if row is None else dict(row)


async def rule_kinds(connection: asyncpg.Connection, tenant: str, rule_ids: list[str]
                     ) -> dict[str, str]:
    rows = await connection.fetch(
        "SELECT rule_id, kind FROM delivery_rules WHERE tenant_id = $1 AND rule_id = ANY($2)",
        tenant, rule_ids)
    return {row["rule_id"]: row["kind"] for row in rows}


async def replace_rule(connection: asyncpg.Connection, tenant: str, rule_id: str,
                       definition: dict[str, Any]) -> dict[str, Any]:
    row = await connection.fetchrow(
        f"UPDATE delivery_rules SET definition = $3, updated_at = now()"
        f" WHERE tenant_id = $1 AND rule_id = $2 RETURNING {_RULE}",
        tenant, rule_id, definition)
    return dict(row)


async def delete_rule(connection: asyncpg.Connection, tenant: str, rule_id: str) -> bool:
    return await connection.fetchval(
        "DELETE FROM delivery_rules WHERE tenant_id = $1 AND rule_id = $2 RETURNING true",
        tenant, rule_id) is not None


async def typologies_with(connection: asyncpg.Connection, tenant: str, rule_id: str
                          ) -> list[str]:
    rows = await connection.fetch(
        "SELECT typology_id FROM typologies WHERE tenant_id = $1 AND $2 = ANY(rule_ids)"
        " ORDER BY length(typology_id), typology_id", tenant, rule_id)
    return [row["typology_id"] for row in rows]


# --- typologies --------------------------------------------------------------------------

async def _clear_default(connection: asyncpg.Connection, tenant: str, keep: str) -> None:
    await connection.execute(
        "UPDATE typologies SET is_default = false, updated_at = now()"
        " WHERE tenant_id = $1 AND is_default AND typology_id <> $2", tenant, keep)


async def create_typology(connection: asyncpg.Connection, tenant: str, name: str,
                          rule_ids: list[str], is_default: bool) -> dict[str, Any]:
    typology_id = f"t{await _next_id(connection, tenant, 'next_typology')}"
    if is_default:
        await _clear_default(connection, tenant, typology_id)
    row = await connection.fetchrow(
        f"INSERT INTO typologies (tenant_id, typology_id, name, rule_ids, is_default)"
        f" VALUES ($1, $2, $3, $4, $5) RETURNING {_TYPOLOGY}",
        tenant, typology_id, name, rule_ids, is_default)
    return dict(row)


async def replace_typology(connection: asyncpg.Connection, tenant: str, typology_id: str,
                           name: str, rule_ids: list[str], is_default: bool
                           ) -> dict[str, Any] | None:
    if is_default:
        await _clear_default(connection, tenant, typology_id)
    row = await connection.fetchrow(
        f"UPDATE typologies SET name = $3, rule_ids = $4, is_default = $5, updated_at = now()"
        f" WHERE tenant_id = $1 AND typology_id = $2 RETURNING {_TYPOLOGY}",
        tenant, typology_id, name, rule_ids, is_default)
    return None if row is None else dict(row)


async def list_typologies(connection: asyncpg.Connection, tenant: str) -> list[dict[str, Any]]:
    rows = await connection.fetch(
        f"SELECT {_TYPOLOGY} FROM typologies WHERE tenant_id = $1"
        " ORDER BY length(typology_id), typology_id", tenant)
    return [dict(row) for row in rows]


async def get_typology(connection: asyncpg.Connection, tenant: str, typology_id: str
                       ) -> dict[str, Any] | None:
    row = await connection.fetchrow(
        f"SELECT {_TYPOLOGY} FROM typologies WHERE tenant_id = $1 AND typology_id = $2",
        tenant, typology_id)
    return None if row is None else dict(row)


async def typology_exists(connection: asyncpg.Connection, tenant: str, typology_id: str
                          ) -> bool:
    """Whether it exists, kept so until the transaction ends (an event configuration
    naming it is saved before a delete can look for the events that name it)."""
    return await connection.fetchval(
        "SELECT true FROM typologies WHERE tenant_id = $1 AND typology_id = $2 FOR SHARE",
        tenant, typology_id) is not None


async def delete_typology(connection: asyncpg.Connection, tenant: str, typology_id: str
                          ) -> bool:
    return await connection.fetchval(
        "DELETE FROM typologies WHERE tenant_id = $1 AND typology_id = $2 RETURNING true",
        tenant, typology_id) is not None


async def events_naming(connection: asyncpg.Connection, tenant: str, typology_id: str
                        ) -> list[str]:
    """The draft and published event configurations whose messages pass the typology."""
    rows = await connection.fetch(
        "SELECT event_id FROM event_configs WHERE tenant_id = $1"
        " AND state IN ('draft', 'published') AND definition->>'typology' = $2"
        " ORDER BY event_id", tenant, typology_id)
    return [row["event_id"] for row in rows]


# --- settings ----------------------------------------------------------------------------

async def load_settings(connection: asyncpg.Connection, tenant: str) -> dict[str, Any]:
    settings: dict[str, Any] | None = await connection.fetchval(
        "SELECT settings FROM rule_settings WHERE tenant_id = $1", tenant)
    return settings or {}


async def save_settings(connection: asyncpg.Connection, tenant: str, settings: dict[str, Any]
                        ) -> None:
    await connection.execute(
        "INSERT INTO rule_settings (tenant_id, settings) VALUES ($1, $2)"
        " ON CONFLICT (tenant_id) DO UPDATE SET settings = EXCLUDED.settings",
        tenant, settings)


# --- denylist ----------------------------------------------------------------------------

async def add_denylisted(connection: asyncpg.Connection, tenant: str, channel: str,
                         entry: str, kind: str, reason: str | None
                         ) -> tuple[dict[str, Any], bool]:
    """The entry, and whether it is new (an entry already there is left as it was)."""
    row = await connection.fetchrow(
        "INSERT INTO denylist (tenant_id, channel, entry, kind, reason)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING"
        " RETURNING channel, entry, kind, reason, added_at",
        tenant, channel, entry, kind, reason)
    if row is not None:
        return dict(row), True
    row = await connection.fetchrow(
        "SELECT channel, entry, kind, reason, added_at FROM denylist"
        " WHERE tenant_id = $1 AND channel = $2 AND entry = $3", tenant, channel, entry)
    return dict(row), False


async def list_denylisted(connection: asyncpg.Connection, tenant: str, channel: str | None,
                          after: tuple[str, str] | None, limit: int) -> list[dict[str, Any]]:
    """By channel then entry, from just after ``after`` (a page's last (channel, entry))."""
    rows = await connection.fetch(
        "SELECT channel, entry, kind, reason, added_at FROM denylist WHERE tenant_id = $1"
        " AND ($2::text IS NULL OR channel = $2)"
        " AND ($3::text IS NULL OR (channel, entry) > ($3, $4))"
        " ORDER BY channel, entry LIMIT $5",
        tenant, channel, *(after or (None, None)), limit)
    return [dict(row) for row in rows]


async def remove_denylisted(connection: asyncpg.Connection, tenant: str, channel: str,
                            entry: str) -> bool:
    return await connection.fetchval(
        "DELETE FROM denylist WHERE tenant_id = $1 AND channel = $2 AND entry = $3"
        " RETURNING true", tenant, channel, entry) is not None


# --- quarantine --------------------------------------------------------------------------

async def list_quarantine(connection: asyncpg.Connection, tenant: str, channel: str | None,
                          watched: bool, after: tuple[str, str] | None, limit: int
                          ) -> list[dict[str, Any]]:
    """Addresses in quarantine now; with ``watched``, those with soft failures too."""
    rows = await connection.fetch(
        f"SELECT {_QUARANTINE}, ({QUARANTINED}) AS quarantined FROM quarantine"
        f" WHERE tenant_id = $1 AND ($2::text IS NULL OR channel = $2)"
        f" AND ($3::text IS NULL OR (channel, address) > ($3, $4))"
        f" AND ($5 OR ({QUARANTINED})) ORDER BY channel, address LIMIT $6",
        tenant, channel, *(after or (None, None)), watched, limit)
    return [dict(row) for row in rows]


async def quarantine_address(connection: asyncpg.Connection, tenant: str, channel: str,
                             address: str, reason: str, release_after: timedelta
                             ) -> dict[str, Any]:
    row = await connection.fetchrow(
        f"INSERT INTO quarantine (tenant_id, channel, address, quarantined_at, release_at,"
        f" reason) VALUES ($1, $2, $3, now(), now() + $4::interval, $5)"
        f" ON CONFLICT (tenant_id, channel, address) DO UPDATE SET quarantined_at = now(),"
        f" release_at = EXCLUDED.release_at, reason = EXCLUDED.reason"
        f" RETURNING {_QUARANTINE}, true AS quarantined",
        tenant, channel, address, release_after, reason)
    return dict(row)


async def release_address(connection: asyncpg.Connection, tenant: str, channel: str,
                          address: str) -> bool:
    """Out of quarantine, its soft failures forgotten: counting starts again."""
    return await connection.fetchval(
        f"DELETE FROM quarantine WHERE tenant_id = $1 AND channel = $2 AND address = $3"
        f" AND {QUARANTINED} RETURNING true", tenant, channel, address) is not None
