"""Bulk import of profiles into PostgreSQL: valid rows are streamed with ``COPY`` into
staging tables, a slice of the file at a time, and each slice is merged into ``profiles``
by two set statements while the next one is copied; the merges all in the caller's
transaction (nothing is half-written: on any failure the whole import rolls back).

Why staging tables of their own (unlogged, dropped at the end) written by a second
connection rather than temporary tables of the merging one: a connection does one thing
at a time, so the ``COPY`` of a slice waited for the merge of the one before; on a second
connection the two overlap (the gateway encoding the rows, PostgreSQL merging). The
staging rows are committed by that connection, so the merging transaction reads them; the
profiles themselves are only ever written by it. A staging table outlives a crash of the
gateway: each import holds a session advisory lock named by its tables, and the next
import drops the tables of any import whose lock is free (its connection is gone).

Why an UPDATE then an INSERT rather than one ``INSERT … ON CONFLICT DO UPDATE``: a row
sets only some columns (its mask) and removes some attributes, which ``EXCLUDED`` cannot
carry, and merging from a join read before the conflict would use a snapshot a concurrent
write may have moved past. ``UPDATE … FROM`` re-reads a row changed meanwhile and
re-checks it (PostgreSQL's EvalPlanQual), so the merge and the last-writer-wins test see
the row as it stands. A row already as the file says is not touched ("unchanged"), so
re-importing a file changes nothing, not even ``written_at``.

A profile on several lines: the last line is the one imported, the others are refused.
Within a slice the staging table settles it before the merge. A profile in two slices
would have been merged twice, the earlier line first: when the slices' ranges of ids
overlap, ``finish`` looks for such ids, and if there is one, it rolls the merges back (to
a savepoint taken before the first), and merges the whole file's staged rows at once.
"""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import AsyncIterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from shared.adapters import consent_store
from shared.adapters.postgres import PLAN_BY_INDEX
from shared.domain.profile_import import COLUMNS

STAGING = "profile_import_"  # + a hex id: an import's parent of its slices' tables
_LOCKS = 7061728  # advisory locks (classid, hashtext(table)): an import's tables in use
_STAGING_COLUMNS = ("line", "profile_id", *COLUMNS, "given", "attributes", "removed")
_SAVEPOINT = "profile_import_merge"
# tenant_id: the import's tenant, a column so that the merge's statements join on it and
# the planner cannot read the tenant's profiles by their primary key's tenant prefix.
_CREATE = """
CREATE UNLOGGED TABLE {parent} (
    tenant_id text NOT NULL DEFAULT {tenant},
    line integer NOT NULL, profile_id text NOT NULL,
    email text, mobile_phone text, first_name text, last_name text, city text,
    birth_date date, time_zone text, locale text,
    given integer NOT NULL, attributes text NOT NULL, removed text[] NOT NULL
)
"""
# Parents left by an import whose connection is gone (its lock is free): dropped with
# their slices. The lock is taken to drop, then let go.
_ORPHANS = f"""
SELECT c.relname FROM pg_class c
 WHERE c.relname ~ '^{STAGING}[0-9a-f]{{16}}$' AND c.relkind = 'r'
   AND c.relnamespace = 'public'::regnamespace
   AND pg_try_advisory_lock({_LOCKS}, hashtext(c.relname))
"""
# Test profiles are the admin API's: their rows leave the staging table as rejects.
_TEST_IDS = """
DELETE FROM {table} s
 WHERE (SELECT p.is_test FROM profiles p  -- a look-up per row, never a scan of profiles
         WHERE p.tenant_id = s.tenant_id AND p.profile_id = s.profile_id)
RETURNING s.line, s.profile_id
"""
# A profile on several lines: the last line is the one written, the others are refused.
_REPEATED = """
DELETE FROM {table} s USING (
    SELECT profile_id, max(line) AS last FROM {table}
     GROUP BY profile_id HAVING count(*) > 1) d
 WHERE s.profile_id = d.profile_id AND s.line < d.last
RETURNING s.line, s.profile_id, d.last
"""
# A slice's statements look its profiles up one by one in the primary key (a nested loop
# from the staging table): a hash join would read all the profiles (of every tenant) for
# each slice, which grows with the square of the file. Sequential scans off too, and the
# staging table gets an index on profile_id, so that whichever side the planner puts
# outside the loop, the inside is an index look-up. That the look-up is the primary key's,
# not a secondary index's on (tenant_id, …) with a filter on profile_id (a scan of the
# tenant per row), is what migration 022's statistics overrides make sure of.
_INDEXED = "CREATE INDEX ON {table} (profile_id)"
_BY_PLAN = ("SET LOCAL enable_hashjoin TO DEFAULT; SET LOCAL enable_mergejoin TO DEFAULT;"
            " SET LOCAL enable_seqscan TO DEFAULT")
_ANY_REPEATED = """
SELECT EXISTS (SELECT FROM {parent} GROUP BY profile_id HAVING count(*) > 1)
"""
_MERGED = [f"CASE WHEN s.given & {1 << n} <> 0 THEN s.{c} ELSE p.{c} END"
           for n, c in enumerate(COLUMNS)]
_MERGED_ATTRIBUTES = "(p.attributes || s.attributes::jsonb) - s.removed"
_SET = ",\n       ".join(f"{c} = {m}" for c, m in zip(COLUMNS, _MERGED, strict=True))
_UPDATE = f"""
UPDATE profiles p
   SET {_SET},
       attributes = {_MERGED_ATTRIBUTES}, written_at = $1, updated_at = now()
  FROM {{table}} s
 WHERE p.tenant_id = s.tenant_id AND p.profile_id = s.profile_id AND NOT p.is_test
   AND p.written_at <= $1
   AND ({", ".join(_MERGED)}, {_MERGED_ATTRIBUTES})
       IS DISTINCT FROM ({", ".join(f"p.{c}" for c in COLUMNS)}, p.attributes)
"""
# A profile another writer created meanwhile (after the UPDATE's snapshot) is merged as
# the UPDATE would have, when this import is the later write.
_INSERT = f"""
INSERT INTO profiles AS p (tenant_id, profile_id, {", ".join(COLUMNS)}, attributes,
                           written_at)
SELECT $1, s.profile_id, {", ".join(f"s.{c}" for c in COLUMNS)}, s.attributes::jsonb, $2
  FROM {{table}} s
 WHERE NOT EXISTS (SELECT FROM profiles p WHERE p.tenant_id = s.tenant_id
                                            AND p.profile_id = s.profile_id)
ON CONFLICT (tenant_id, profile_id) DO UPDATE
   SET ({", ".join(COLUMNS)}, attributes, written_at, updated_at) = (
       SELECT {", ".join(_MERGED)}, {_MERGED_ATTRIBUTES}, $2, now()
         FROM {{table}} s WHERE s.profile_id = EXCLUDED.profile_id)
 WHERE NOT p.is_test AND p.written_at <= $2
"""


# The tenant has no profile in the range of a slice's ids (a new tenant, or a file sorted
# by id adding profiles): the slice is inserted without looking its rows up one by one.
_RANGE_FREE = """
SELECT NOT EXISTS (
    SELECT FROM profiles p, (SELECT min(profile_id) AS low, max(profile_id) AS high
                               FROM {table}) r
     WHERE p.tenant_id = $1 AND p.profile_id BETWEEN r.low AND r.high)
"""
_INSERT_NEW = _INSERT.replace("""
 WHERE NOT EXISTS (SELECT FROM profiles p WHERE p.tenant_id = s.tenant_id
                                            AND p.profile_id = s.profile_id)""", "")
assert _INSERT_NEW != _INSERT
# Without ON CONFLICT (a fifth cheaper: no speculative insertion), in a savepoint: a
# profile another writer made meanwhile fails it, and the slice goes by _INSERT_NEW.
_INSERT_PLAIN = _INSERT_NEW.partition("ON CONFLICT")[0]


@dataclass
class Loaded:
    staged: int = 0
    inserted: int = 0
    updated: int = 0
    test_ids: list[tuple[int, str]] = field(default_factory=list)  # (line, profile id)
    repeated: list[tuple[int, str, int]] = field(default_factory=list)  # (…, line that wins)
    slices: int = 0
    remerged: bool = False  # a profile in two slices: the whole file merged at once

    @property
    def unchanged(self) -> int:
        return (self.staged - len(self.test_ids) - len(self.repeated) - self.inserted
                - self.updated)


def _count(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])


@dataclass
class Staging:
    """An import's staging tables, written through ``connection`` (autocommit, not the
    merging transaction's), under the parent table ``parent``."""
    connection: asyncpg.Connection
    parent: str


async def open_staging(connection: asyncpg.Connection, tenant: str) -> Staging:
    """Drop what crashed imports left, lock a new parent's name (held while the
    connection lives) and create the parent (attributes as JSON text: asyncpg has no
    binary jsonb encoder for COPY)."""
    for orphan in await connection.fetch(_ORPHANS):
        await connection.execute(f"DROP TABLE IF EXISTS {orphan['relname']} CASCADE")
        await connection.execute("SELECT pg_advisory_unlock($1, hashtext($2))", _LOCKS,
                                 orphan["relname"])
    parent = STAGING + secrets.token_hex(8)
    await connection.execute("SELECT pg_advisory_lock($1, hashtext($2))", _LOCKS, parent)
    literal = "'" + tenant.replace("'", "''") + "'"
    await connection.execute(_CREATE.format(parent=parent, tenant=literal))
    return Staging(connection, parent)


async def close_staging(staging: Staging) -> None:
    """Drop the import's tables (after its transaction ended: it holds locks on them)."""
    await staging.connection.execute(f"DROP TABLE IF EXISTS {staging.parent} CASCADE")
    await staging.connection.execute("SELECT pg_advisory_unlock($1, hashtext($2))",
                                     _LOCKS, staging.parent)


async def begin(connection: asyncpg.Connection) -> None:
    """In the merging transaction: index look-ups, and the savepoint ``finish`` may roll
    back to."""
    await connection.execute(PLAN_BY_INDEX)
    await connection.execute(f"SAVEPOINT {_SAVEPOINT}")


async def stage(staging: Staging, number: int,
                records: AsyncIterable[tuple[Any, ...]]) -> str:
    """``COPY`` the records, as they come, into a new staging table (slice ``number``),
    committed when this returns."""
    table = f"{staging.parent}_{number}"
    connection = staging.connection
    await connection.execute(f"CREATE UNLOGGED TABLE {table} () INHERITS ({staging.parent})")
    await connection.copy_records_to_table(table, records=records, columns=_STAGING_COLUMNS)
    await connection.execute(_INDEXED.format(table=table))
    return table


async def merge(connection: asyncpg.Connection, table: str, tenant: str,
                written_at: datetime, loaded: Loaded, rows: int | None = None,
                repeats: bool = True) -> None:
    """Merge a staging table of ``rows`` rows into the tenant's profiles (in the
    transaction ``begin`` ran in), adding to ``loaded``; ``repeats`` False: the caller
    knows the table holds each profile once."""
    loaded.slices += 1
    loaded.staged += (rows if rows is not None else
                      await connection.fetchval(f"SELECT count(*) FROM ONLY {table}"))
    if await connection.fetchval(_RANGE_FREE.format(table=table), tenant):
        # none of the rows is a profile yet (nor a test profile); one made meanwhile by
        # another writer is a conflict, merged as below
        if repeats:
            loaded.repeated += [(r["line"], r["profile_id"], r["last"]) for r in
                                await connection.fetch(_REPEATED.format(table=table))]
        await connection.execute("SAVEPOINT profile_import_slice")
        try:
            inserted = _count(await connection.execute(
                _INSERT_PLAIN.format(table=table), tenant, written_at))
            await connection.execute("RELEASE SAVEPOINT profile_import_slice")
        except asyncpg.UniqueViolationError:
            await connection.execute("ROLLBACK TO SAVEPOINT profile_import_slice")
            inserted = _count(await connection.execute(
                _INSERT_NEW.format(table=table), tenant, written_at))
        loaded.inserted += inserted
        return
    loaded.test_ids += [(r["line"], r["profile_id"])
                        for r in await connection.fetch(_TEST_IDS.format(table=table))]
    if repeats:
        loaded.repeated += [(r["line"], r["profile_id"], r["last"])
                            for r in await connection.fetch(_REPEATED.format(table=table))]
    loaded.updated += _count(await connection.execute(_UPDATE.format(table=table),
                                                      written_at))
    loaded.inserted += _count(await connection.execute(_INSERT.format(table=table), tenant,
                                                       written_at))


async def finish(connection: asyncpg.Connection, staging: Staging, tenant: str,
                 written_at: datetime, loaded: Loaded, overlapping: bool,
                 consent: list[tuple[int, consent_store.Change]]) -> Loaded:
    """After the last slice: when slices may share a profile (``overlapping``) and do, roll
    the merges back and merge all the staged rows at once; then the rows' consent changes
    in one statement."""
    parent = staging.parent
    if (overlapping and loaded.slices > 1
            and await connection.fetchval(_ANY_REPEATED.format(parent=parent))):
        with tempfile.TemporaryFile() as spool:  # on disk, not in memory
            await connection.copy_from_query(  # the parent's rows are its slices'
                f"SELECT {', '.join(_STAGING_COLUMNS)} FROM {parent}", output=spool,
                format="binary")
            await connection.execute(f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}")
            spool.seek(0)
            table = f"{parent}_all"  # the merging transaction's own: gone at its end
            await connection.execute(f"CREATE TEMPORARY TABLE {table}"
                                     f" (LIKE {parent} INCLUDING DEFAULTS) ON COMMIT DROP")
            await connection.copy_to_table(table, source=spool, format="binary",
                                           columns=_STAGING_COLUMNS)
            await connection.execute(_INDEXED.format(table=table))
        gone = len(loaded.test_ids) + len(loaded.repeated)  # deleted from the slices
        again = Loaded(staged=gone, test_ids=list(loaded.test_ids),
                       repeated=list(loaded.repeated))
        await merge(connection, table, tenant, written_at, again)
        again.slices, again.remerged = loaded.slices, True
        loaded = again
    await connection.execute(_BY_PLAN)
    if consent:
        refused = ({line for line, _id in loaded.test_ids}
                   | {line for line, _id, _last in loaded.repeated})
        await consent_store.apply_changes(
            connection, tenant, [c for line, c in consent if line not in refused], written_at)
    return loaded
