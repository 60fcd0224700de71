"""Profiles in PostgreSQL: lookup by the event's target, and seeding."""

from __future__ import annotations

from typing import Any

import asyncpg

_COLUMNS = "profile_id, email, mobile_phone, first_name, last_name, city, birth_date, attributes"


def _as_profile(row: asyncpg.Record) -> dict[str, Any]:
    profile = dict(row)
    attributes = profile.pop("attributes") or {}
    if profile.get("birth_date") is not None:
        profile["birth_date"] = profile["birth_date"].isoformat()
    return {**attributes, **profile}


async def find_profile(
    connection: asyncpg.Connection, tenant: str, target: dict[str, str]
) -> dict[str, Any] | None:
    if "email" in target:
        where, value = "lower(email) = lower($2)", target["email"]
    elif "mobilePhone" in target:
        where, value = "mobile_phone = $2", target["mobilePhone"]
    elif "profileId" in target:
        where, value = "profile_id = $2", target["profileId"]
    else:
        return None
    row = await connection.fetchrow(
        f"SELECT {_COLUMNS} FROM profiles WHERE tenant_id = $1 AND {where} LIMIT 1", tenant, value
    )
    return None if row is None else _as_profile(row)


async def upsert_profiles(
    connection: asyncpg.Connection, tenant: str, profiles: list[dict[str, Any]]
) -> None:
    await connection.executemany(
        "INSERT INTO profiles (tenant_id, profile_id, email, mobile_phone, first_name,"
        " last_name, city, birth_date) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        " ON CONFLICT (tenant_id, profile_id) DO UPDATE SET email = EXCLUDED.email,"
        " mobile_phone = EXCLUDED.mobile_phone, first_name = EXCLUDED.first_name,"
        " last_name = EXCLUDED.last_name, city = EXCLUDED.city,"
        " birth_date = EXCLUDED.birth_date, updated_at = now()",
        [
            (
                tenant, p["profile_id"], p.get("email"), p.get("mobile_phone"),
                p.get("first_name"), p.get("last_name"), p.get("city"), p.get("birth_date"),
            )
            for p in profiles
        ],
    )
