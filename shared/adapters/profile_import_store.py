"""Bulk import of profiles into PostgreSQL: valid rows are streamed with ``COPY`` into a
temporary staging table, then merged into ``profiles`` by two set statements, all in the
caller's transaction (nothing is half-written: on any failure the whole import rolls back).

Why an UPDATE then an INSERT rather than one ``INSERT … ON CONFLICT DO UPDATE``: a row
sets only some columns (its mask) and removes some attributes, which ``EXCLUDED`` cannot
carry, and merging from a join read before the conflict would use a snapshot a concurrent
write may have moved past. ``UPDATE … FROM`` re-reads a row changed meanwhile and
re-checks it (PostgreSQL's EvalPlanQual), so the merge and the last-writer-wins test see
the row as it stands. A row already as the file says is not touched ("unchanged"), so
re-importing a file changes nothing, not even ``written_at``.
"""

from __future__ import annotations

from collections.abc import AsyncIterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from shared.adapters import consent_store
from shared.domain.profile_import import COLUMNS

STAGING = "profile_import_staging"
_STAGING_COLUMNS = ("line", "profile_id", *COLUMNS, "given", "attributes", "removed")
_CREATE = f"""
CREATE TEMPORARY TABLE {STAGING} (
    line integer NOT NULL, profile_id text NOT NULL,
    email text, mobile_phone text, first_name text, last_name text, city text,
    birth_date date, time_zone text, locale text,
    given integer NOT NULL, attributes text NOT NULL, removed text[] NOT NULL
) ON COMMIT DROP
"""
# Test profiles are the admin API's: their rows leave the staging table as rejects.
_TEST_IDS = f"""
DELETE FROM {STAGING} s USING profiles p
 WHERE p.tenant_id = $1 AND p.profile_id = s.profile_id AND p.is_test
RETURNING s.line, s.profile_id
"""
# A profile on several lines: the last line is the one written, the others are refused.
_REPEATED = f"""
DELETE FROM {STAGING} s USING (
    SELECT profile_id, max(line) AS last FROM {STAGING}
     GROUP BY profile_id HAVING count(*) > 1) d
 WHERE s.profile_id = d.profile_id AND s.line < d.last
RETURNING s.line, s.profile_id, d.last
"""
_MERGED = [f"CASE WHEN s.given & {1 << n} <> 0 THEN s.{c} ELSE p.{c} END"
           for n, c in enumerate(COLUMNS)]
_MERGED_ATTRIBUTES = "(p.attributes || s.attributes::jsonb) - s.removed"
_SET = ",\n       ".join(f"{c} = {m}" for c, m in zip(COLUMNS, _MERGED, strict=True))
_UPDATE = f"""
UPDATE profiles p
   SET {_SET},
       attributes = {_MERGED_ATTRIBUTES}, written_at = $2, updated_at = now()
  FROM {STAGING} s
 WHERE p.tenant_id = $1 AND p.profile_id = s.profile_id AND NOT p.is_test
   AND p.written_at <= $2
   AND ({", ".join(_MERGED)}, {_MERGED_ATTRIBUTES})
       IS DISTINCT FROM ({", ".join(f"p.{c}" for c in COLUMNS)}, p.attributes)
"""
# A profile another writer created meanwhile (after the UPDATE's snapshot) is merged as
# the UPDATE would have, when this import is the later write.
_INSERT = f"""
INSERT INTO profiles AS p (tenant_id, profile_id, {", ".join(COLUMNS)}, attributes,
                           written_at)
SELECT $1, s.profile_id, {", ".join(f"s.{c}" for c in COLUMNS)}, s.attributes::jsonb, $2
  FROM {STAGING} s
 WHERE NOT EXISTS (SELECT FROM profiles p WHERE p.tenant_id = $1
                                            AND p.profile_id = s.profile_id)
ON CONFLICT (tenant_id, profile_id) DO UPDATE
   SET ({", ".join(COLUMNS)}, attributes, written_at, updated_at) = (
       SELECT {", ".join(_MERGED)}, {_MERGED_ATTRIBUTES}, $2, now()
         FROM {STAGING} s WHERE s.profile_id = EXCLUDED.profile_id)
 WHERE NOT p.is_test AND p.written_at <= $2
"""


@dataclass(frozen=True)
class Loaded:
    staged: int
    inserted: int
    updated: int
    test_ids: list[tuple[int, str]]  # (line, profile id)
    repeated: list[tuple[int, str, int]]  # (line, profile id, the line that wins)

    @property
    def unchanged(self) -> int:
        return (self.staged - len(self.test_ids) - len(self.repeated) - self.inserted
                - self.updated)


async def stage(connection: asyncpg.Connection,
                records: AsyncIterable[tuple[Any, ...]]) -> None:
    """Create the staging table (attributes as JSON text: asyncpg has no binary jsonb
    encoder for COPY) and ``COPY`` the records into it as they come."""
    await connection.execute(_CREATE)
    await connection.copy_records_to_table(STAGING, records=records,
                                           columns=_STAGING_COLUMNS)


def _count(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])


async def merge(connection: asyncpg.Connection, tenant: str, written_at: datetime,
                consent: list[tuple[int, consent_store.Change]]) -> Loaded:
    """Merge the staging table into the tenant's profiles (call it in the transaction
    ``stage`` ran in), then apply the rows' consent changes in one statement."""
    staged = await connection.fetchval(f"SELECT count(*) FROM {STAGING}")
    test_ids = [(r["line"], r["profile_id"]) for r in await connection.fetch(_TEST_IDS, tenant)]
    repeated = [(r["line"], r["profile_id"], r["last"])
                for r in await connection.fetch(_REPEATED)]
    await connection.execute(f"ANALYZE {STAGING}")
    updated = _count(await connection.execute(_UPDATE, tenant, written_at))
    inserted = _count(await connection.execute(_INSERT, tenant, written_at))
    if consent:
        refused = {line for line, _id in test_ids} | {line for line, _id, _last in repeated}
        await consent_store.apply_changes(
            connection, tenant, [c for line, c in consent if line not in refused], written_at)
    return Loaded(staged, inserted, updated, test_ids, repeated)
