"""Consent and subscriptions in PostgreSQL (tables ``consents``, ``consent_history``;
migration 010): the value as it stands per (profile, kind, name), and every change."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from shared.adapters import erasure
from shared.domain.consent import ConsentChange, ConsentRow

# One statement: a change wins when it is no older than the value it replaces and says
# something else (a repeated opt-in keeps the date of the first); what changed is
# appended to the history.
_APPLY = """
WITH changed AS (
    INSERT INTO consents AS c (tenant_id, profile_id, kind, name, value, changed_at, source)
    SELECT $1, profile_id, kind, name, value, $7, source
      FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
           AS u(profile_id, kind, name, value, source)
    ON CONFLICT (tenant_id, profile_id, kind, name) DO UPDATE
       SET value = EXCLUDED.value, changed_at = EXCLUDED.changed_at, source = EXCLUDED.source
     WHERE c.changed_at <= EXCLUDED.changed_at AND c.value <> EXCLUDED.value
    RETURNING profile_id, kind, name, value, source)
INSERT INTO consent_history (tenant_id, profile_id, kind, name, value, changed_at, source)
SELECT $1, profile_id, kind, name, value, $7, source FROM changed
"""

Change = tuple[str, ConsentChange, str]  # profile id, change, source


async def apply_changes(
    connection: asyncpg.Connection, tenant: str, changes: list[Change], changed_at: datetime
) -> None:
    """Consent changes of one or many profiles, made at ``changed_at``, in one statement;
    of two changes of the same value, the later in the list is the one made."""
    last = {(profile_id, c.kind, c.name): (profile_id, c, source)
            for profile_id, c, source in changes}
    if last:
        rows = list(last.values())
        await connection.execute(
            _APPLY, tenant, [r[0] for r in rows], [r[1].kind.value for r in rows],
            [r[1].name for r in rows], [r[1].value for r in rows], [r[2] for r in rows],
            changed_at)


async def read_consent(
    connection: asyncpg.Connection, tenant: str, profile_id: str
) -> list[ConsentRow]:
    rows = await connection.fetch(
        "SELECT kind, name, value, changed_at, source FROM consents"
        " WHERE tenant_id = $1 AND profile_id = $2 ORDER BY kind, name", tenant, profile_id)
    return [ConsentRow(**row) for row in rows]


async def read_history(
    connection: asyncpg.Connection, tenant: str, profile_id: str, limit: int = 1000
) -> list[dict[str, Any]]:
    """The changes, oldest first (those of one write by kind and name)."""
    rows = await connection.fetch(
        "SELECT kind, name, value, changed_at AS \"changedAt\", source,"
        " recorded_at AS \"recordedAt\" FROM consent_history"
        " WHERE tenant_id = $1 AND profile_id = $2 ORDER BY changed_at, kind, name, id"
        " LIMIT $3",
        tenant, profile_id, limit)
    return [dict(row) for row in rows]


async def _erase(connection: asyncpg.Connection, tenant: str, profile_id: str
                 ) -> dict[str, int]:
    consents = await connection.execute(
        "DELETE FROM consents WHERE tenant_id = $1 AND profile_id = $2", tenant, profile_id)
    history = await connection.execute(
        "DELETE FROM consent_history WHERE tenant_id = $1 AND profile_id = $2",
        tenant, profile_id)
    return {"consents": int(consents.split()[-1]), "consentHistory": int(history.split()[-1])}


async def _export(connection: asyncpg.Connection, tenant: str, profile_id: str
                  ) -> dict[str, Any]:
    current = await read_consent(connection, tenant, profile_id)
    return {"consents": [{"kind": r.kind, "name": r.name, "value": r.value,
                          "changedAt": r.changed_at, "source": r.source} for r in current],
            "consentHistory": await read_history(connection, tenant, profile_id, 100_000)}


erasure.register(erasure.PersonalData("consent", _erase, _export))
