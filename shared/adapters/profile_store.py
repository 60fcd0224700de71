"""Profiles in PostgreSQL: lookup by the event's target, and seeding."""

from __future__ import annotations

from typing import Any

import asyncpg

PROFILE_COLUMNS = (
    "profile_id, email, mobile_phone, first_name, last_name, city, birth_date, attributes"
)


def as_profile(row: asyncpg.Record | dict[str, Any]) -> dict[str, Any]:
    profile = dict(row)
    attributes = profile.pop("attributes") or {}
    if profile.get("birth_date") is not None:
        profile["birth_date"] = profile["birth_date"].isoformat()
    return {**attributes, **profile}


# How a target finds its profile: (target field, profiles column, normalisation).
_LOOKUPS = (
    ("email", "lower(email)", str.lower),
    ("mobilePhone", "mobile_phone", str.strip),
    ("profileId", "profile_id", str.strip),
)


def _lookup_key(target: dict[str, str]) -> tuple[int, str] | None:
    for index, (field, _column, normalise) in enumerate(_LOOKUPS):
        if field in target:
            return index, normalise(target[field])
    return None


async def find_profiles(
    connection: asyncpg.Connection, tenant: str, targets: list[dict[str, str]]
) -> list[dict[str, Any] | None]:
    """The profile of each target (or None), in order: one query per kind of target, so a
    batch of events costs a round trip, not one per event."""
    keys = [_lookup_key(t) for t in targets]
    found: dict[tuple[int, str], dict[str, Any]] = {}
    for index, (_field, column, _normalise) in enumerate(_LOOKUPS):
        values = sorted({k[1] for k in keys if k is not None and k[0] == index})
        if not values:
            continue
        # DISTINCT ON: when two profiles share an address, always the same one answers.
        # Test profiles receive proofs only: a marketer's test profile with a customer's
        # address must never stand in for the customer.
        rows = await connection.fetch(
            f"SELECT DISTINCT ON ({column}) {column} AS lookup, {PROFILE_COLUMNS} FROM profiles"
            f" WHERE tenant_id = $1 AND {column} = ANY($2::text[]) AND NOT is_test"
            f" ORDER BY {column}, profile_id",
            tenant, values,
        )
        for row in rows:
            profile = dict(row)
            found[(index, profile.pop("lookup"))] = as_profile(profile)
    return [None if k is None else found.get(k) for k in keys]


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
