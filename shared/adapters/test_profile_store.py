"""Test profiles (``profiles.is_test``): the recipients of proofs, carrying sample event
data for previews. They live beside real profiles but never replace one."""

from __future__ import annotations

from typing import Any

import asyncpg

from shared.domain.exact import exact_json, read_stored

_COLUMNS = (
    "profile_id, email, mobile_phone, first_name, last_name, city, birth_date, locale,"
    " attributes, push_registrations, sample_ctx::text AS sample_ctx, updated_at"
)
_FIELDS = ("email", "mobile_phone", "first_name", "last_name", "city", "birth_date",
           "locale", "attributes", "push_registrations", "sample_ctx")

# The WHERE keeps a real profile with the same id untouched: no row comes back then.
_UPSERT = f"""
INSERT INTO profiles (tenant_id, profile_id, is_test, {", ".join(_FIELDS)})
VALUES ($1, $2, true, {", ".join(f"${i}::text::jsonb" if f == "sample_ctx" else f"${i}"
                                 for i, f in enumerate(_FIELDS, start=3))})
ON CONFLICT (tenant_id, profile_id) DO UPDATE
   SET {", ".join(f"{f} = EXCLUDED.{f}" for f in _FIELDS)}, updated_at = now()
 WHERE profiles.is_test
RETURNING {_COLUMNS}
"""


def _row(row: asyncpg.Record) -> dict[str, Any]:
    """The row, ``sample_ctx`` read exactly: its decimals as written (19.90 stays 19.90,
    the way ingestion reads an event), since previews and proofs render it."""
    found = dict(row)
    found["sample_ctx"] = read_stored(found["sample_ctx"].encode()) if found["sample_ctx"] else {}
    return found


async def put_test_profile(
    connection: asyncpg.Connection, tenant: str, profile_id: str, fields: dict[str, Any]
) -> dict[str, Any] | None:
    """Create or replace a test profile (``fields``: every column of ``_FIELDS``); None
    when a real profile has that id."""
    values = [exact_json(fields[f]).decode() if f == "sample_ctx" else fields[f]
              for f in _FIELDS]
    row = await connection.fetchrow(_UPSERT, tenant, profile_id, *values)
    return None if row is None else _row(row)


async def get_test_profile(
    connection: asyncpg.Connection, tenant: str, profile_id: str
) -> dict[str, Any] | None:
    row = await connection.fetchrow(
        f"SELECT {_COLUMNS} FROM profiles WHERE tenant_id = $1 AND profile_id = $2"
        " AND is_test", tenant, profile_id)
    return None if row is None else _row(row)


async def list_test_profiles(connection: asyncpg.Connection, tenant: str) -> list[dict[str, Any]]:
    rows = await connection.fetch(
        f"SELECT {_COLUMNS} FROM profiles WHERE tenant_id = $1 AND is_test"
        " ORDER BY profile_id", tenant)
    return [_row(row) for row in rows]


async def delete_test_profile(connection: asyncpg.Connection, tenant: str, profile_id: str) -> bool:
    deleted = await connection.fetchval(
        "DELETE FROM profiles WHERE tenant_id = $1 AND profile_id = $2 AND is_test"
        " RETURNING profile_id", tenant, profile_id)
    return deleted is not None
