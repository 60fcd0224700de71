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


# Changes each made at its own time (a poll of Kafka records), in one statement. The
# caller keeps, per value, a chain of changes no older than the one before and each saying
# something else; here the chain is cut to the changes no older than the stored value (the
# first of them only if it says something else), every change left goes to the history and
# the last to ``consents`` — as if applied one by one, the history keeping each step.
_APPLY_DATED = """
WITH given AS (
    SELECT u.*, c.value AS stored
      FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                  $7::timestamptz[], $8::int[])
           AS u(profile_id, kind, name, value, source, changed_at, step)
      LEFT JOIN consents c ON c.tenant_id = $1 AND c.profile_id = u.profile_id
                          AND c.kind = u.kind AND c.name = u.name
     WHERE c.changed_at IS NULL OR c.changed_at <= u.changed_at),
made AS (
    SELECT * FROM (
        SELECT *, row_number() OVER (PARTITION BY profile_id, kind, name ORDER BY step) AS n
          FROM given) g
     WHERE n > 1 OR value IS DISTINCT FROM stored),
changed AS (
    INSERT INTO consents AS c (tenant_id, profile_id, kind, name, value, changed_at, source)
    SELECT DISTINCT ON (profile_id, kind, name) $1, profile_id, kind, name, value,
           changed_at, source
      FROM made ORDER BY profile_id, kind, name, step DESC
    ON CONFLICT (tenant_id, profile_id, kind, name) DO UPDATE
       SET value = EXCLUDED.value, changed_at = EXCLUDED.changed_at, source = EXCLUDED.source
     WHERE c.changed_at <= EXCLUDED.changed_at
       AND (c.value <> EXCLUDED.value
            OR EXISTS (SELECT 1 FROM made m WHERE m.profile_id = EXCLUDED.profile_id
                          AND m.kind = EXCLUDED.kind AND m.name = EXCLUDED.name AND m.n > 1))
    RETURNING profile_id, kind, name)
INSERT INTO consent_history (tenant_id, profile_id, kind, name, value, changed_at, source)
SELECT $1, profile_id, kind, name, value, changed_at, source
  FROM made JOIN changed USING (profile_id, kind, name) ORDER BY step
"""


async def apply_dated_changes(
    connection: asyncpg.Connection, tenant: str, changes: list[tuple[Change, datetime]]
) -> None:
    """Consent changes of one or many profiles, each made at its own time, in one
    statement, as if applied one by one in the list's order: a change wins when it is no
    older than the value it replaces and says something else; each change made is in the
    history (an opt-out and the opt-in after it, of one poll, are both kept)."""
    chains: dict[tuple[str, str, str], list[tuple[Change, datetime]]] = {}
    for change, at in changes:
        profile_id, c, _source = change
        chain = chains.setdefault((profile_id, c.kind.value, c.name), [])
        if not chain or (chain[-1][1] <= at and chain[-1][0][1].value != c.value):
            chain.append((change, at))
    rows = [row for chain in chains.values() for row in chain]
    if rows:
        await connection.execute(
            _APPLY_DATED, tenant, [r[0][0] for r in rows], [r[0][1].kind.value for r in rows],
            [r[0][1].name for r in rows], [r[0][1].value for r in rows],
            [r[0][2] for r in rows], [r[1] for r in rows], list(range(len(rows))))


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
