"""Profiles in PostgreSQL: lookup by the event's target, writes (last writer wins),
reads, erasure, and seeding."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import asyncpg

from shared.adapters import consent_store, erasure
from shared.domain.conditions.values import fold_email
from shared.domain.exact import read_stored
from shared.domain.profile_schema import BUILT_INS, attributes_json
from shared.domain.profiles import ProfileWrite

# Attributes as jsonb text, read with read_stored: a decimal attribute reaches the template
# as the Decimal that was written (the connection's jsonb codec would make it a float),
# and a wide one jsonb wrote as digits (1e25) as a Decimal too, not an integer orjson
# cannot write (a 500 once its attribute had left the schema).
PROFILE_COLUMNS = (
    "profile_id, email, mobile_phone, first_name, last_name, city, birth_date, time_zone,"
    " locale, attributes::text AS attributes"
)


def as_profile(row: asyncpg.Record | dict[str, Any]) -> dict[str, Any]:
    profile = dict(row)
    text = profile.pop("attributes")
    attributes = read_stored(text.encode()) if text else {}
    if profile.get("birth_date") is not None:
        profile["birth_date"] = profile["birth_date"].isoformat()
    return {**attributes, **profile}


# Addresses compare without case, ASCII letters only, through the index profiles_email_c
# (the audiences' too: one email index, not two, for every profile write to keep up).
_EMAIL = 'lower(email COLLATE "C")'
# How a target finds its profile: (target field, profiles column, normalisation).
_LOOKUPS = (
    ("email", _EMAIL, fold_email),
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


# --- writes: the profile API now, Kafka and imports later --------------------------------

_COLUMNS = tuple(BUILT_INS.values())
_SET = ",\n       ".join(
    f"{c} = CASE WHEN '{c}' = ANY($15::text[]) THEN EXCLUDED.{c} ELSE p.{c} END"
    for c in _COLUMNS)
# One statement: insert, or update only a real profile last written no later than this
# write (last writer wins by the write's timestamp; a test profile is the admin API's).
_WRITE = f"""
INSERT INTO profiles AS p (tenant_id, profile_id, {", ".join(_COLUMNS)}, attributes,
                           push_registrations, written_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::text::jsonb,
        coalesce($12::jsonb, '[]'::jsonb), $13)
ON CONFLICT (tenant_id, profile_id) DO UPDATE
   SET {_SET},
       attributes = CASE WHEN $14 THEN EXCLUDED.attributes
                         ELSE (p.attributes || EXCLUDED.attributes) - $16::text[] END,
       push_registrations = CASE WHEN $12::jsonb IS NULL THEN p.push_registrations
                                 ELSE EXCLUDED.push_registrations END,
       written_at = EXCLUDED.written_at, updated_at = now()
 WHERE NOT p.is_test AND p.written_at <= EXCLUDED.written_at
RETURNING xmax = 0 AS created
"""

Outcome = Literal["created", "updated", "stale", "test"]


@dataclass(frozen=True)
class WriteResult:
    outcome: Outcome
    written_at: datetime | None = None  # for "stale": the later write's timestamp


def _arguments(tenant: str, write: ProfileWrite, written_at: datetime) -> tuple[Any, ...]:
    devices = None if write.devices is None else list(write.devices)
    return (tenant, write.profile_id, *(write.fields.get(c) for c in _COLUMNS),
            attributes_json(write.attributes), devices, written_at, write.replace,
            list(write.fields), list(write.removed))


def _consent(writes: list[ProfileWrite]) -> list[consent_store.Change]:
    return [(w.profile_id, change, w.source) for w in writes for change in w.consent]


async def apply_profile_write(
    connection: asyncpg.Connection, tenant: str, write: ProfileWrite, written_at: datetime
) -> WriteResult:
    """Apply a validated write made at ``written_at``: the profile in one statement (a
    write older than the stored one loses: "stale"; a test profile's id: "test", nothing
    written), then its consent changes, each against the value it would replace, by the
    same timestamp. Call it in a transaction."""
    created = await connection.fetchval(_WRITE, *_arguments(tenant, write, written_at))
    if created is None:
        row = await connection.fetchrow(
            "SELECT is_test, written_at FROM profiles WHERE tenant_id = $1 AND profile_id = $2",
            tenant, write.profile_id)
        if row is None:  # cannot happen: the row the statement saw is still locked
            raise RuntimeError(f"profile {write.profile_id!r} vanished during its write")
        if row["is_test"]:
            return WriteResult("test")
    # Consent changes are judged one by one, by their own timestamps: an unsubscribe made
    # before the profile's last write, but after the last consent change, still counts.
    await consent_store.apply_changes(connection, tenant, _consent([write]), written_at)
    if created is None:
        return WriteResult("stale", row["written_at"])
    return WriteResult("created" if created else "updated")


_LOCK = ("SELECT profile_id, is_test, written_at FROM profiles WHERE tenant_id = $1"
         " AND profile_id = ANY($2::text[]) ORDER BY profile_id FOR UPDATE")
# ``_WRITE`` answering one row whatever happened: created (true), updated (false), or
# nothing written (null: a later write holds the row, or a test profile's id), so that the
# answers of a pipelined batch line up with its writes.
_WRITE_ONE = f"WITH w AS ({_WRITE}) SELECT (SELECT created FROM w) AS created"

Dated = tuple[ProfileWrite, datetime]  # a write and when it was made


async def apply_profile_writes(
    connection: asyncpg.Connection, tenant: str, writes: Sequence[Dated]
) -> list[WriteResult]:
    """``apply_profile_write`` for many writes, each made at its own time (a batch of the
    API, all at the request's; a poll of Kafka records, each at its record's), in order,
    as if one by one — the same profile twice, the older after the newer, is "stale" — in
    four round trips whatever their number: the rows are locked, the same statement runs
    for each write (pipelined, each answering whether it created, updated or wrote
    nothing), the rows not written are read again to tell "stale" from "test", and the
    consent changes go in one statement, each by its write's time. Call it in a
    transaction."""
    ids = sorted({w.profile_id for w, _ in writes})
    await connection.fetch(_LOCK, tenant, ids)
    answers = await connection.fetchmany(
        _WRITE_ONE, [_arguments(tenant, w, at) for w, at in writes])
    unwritten = sorted({w.profile_id for (w, _), a in zip(writes, answers, strict=True)
                        if a["created"] is None})
    after = {row["profile_id"]: row for row in await connection.fetch(
        _LOCK, tenant, unwritten)} if unwritten else {}
    results: list[WriteResult] = []
    for (write, _at), answer in zip(writes, answers, strict=True):
        created = answer["created"]  # a row this transaction inserted, updated: false
        if created is None:
            row = after[write.profile_id]
            results.append(WriteResult("test") if row["is_test"]
                           else WriteResult("stale", row["written_at"]))
        else:
            results.append(WriteResult("created" if created else "updated"))
    await consent_store.apply_dated_changes(connection, tenant, [
        (change, at) for (write, at), result in zip(writes, results, strict=True)
        if result.outcome != "test" for change in _consent([write])])
    return results


# --- reads ------------------------------------------------------------------------------

_READ = (f"SELECT profile_id, {', '.join(_COLUMNS)}, attributes::text AS attributes_text,"
         " push_registrations, written_at, updated_at FROM profiles")


def _stored(row: asyncpg.Record) -> dict[str, Any]:
    """A row with its attributes read exactly: decimals as Decimal, not binary floats."""
    stored = dict(row)
    stored["attributes"] = read_stored(stored.pop("attributes_text").encode())
    return stored


async def read_profile(
    connection: asyncpg.Connection, tenant: str, profile_id: str
) -> dict[str, Any] | None:
    """A real profile's row (never a test profile's)."""
    row = await connection.fetchrow(
        f"{_READ} WHERE tenant_id = $1 AND profile_id = $2 AND NOT is_test", tenant, profile_id)
    return None if row is None else _stored(row)


async def is_test_profile(connection: asyncpg.Connection, tenant: str, profile_id: str) -> bool:
    return bool(await connection.fetchval(
        "SELECT is_test FROM profiles WHERE tenant_id = $1 AND profile_id = $2",
        tenant, profile_id))


async def lookup_profiles(
    connection: asyncpg.Connection, tenant: str, *, email: str | None = None,
    mobile_phone: str | None = None, limit: int = 100,
) -> list[dict[str, Any]]:
    """Real profiles with this email address (in any case) or mobile phone, by id."""
    column, value = ((_EMAIL, fold_email(email.strip())) if email is not None
                     else ("mobile_phone", (mobile_phone or "").strip()))
    rows = await connection.fetch(
        f"{_READ} WHERE tenant_id = $1 AND {column} = $2 AND NOT is_test"
        " ORDER BY profile_id LIMIT $3", tenant, value, limit)
    return [_stored(row) for row in rows]


# The admin API's profile search (services/admin/profile_routes.py): the exact id first,
# then the exact email address (any case) or mobile phone, then ids, addresses and phones
# starting with the text. The database's collation is C (byte order), so each is a range
# of one btree index (profiles_pkey, profiles_email_c, profiles_phone), each branch
# limited on its own: no branch reads more than ``limit`` entries.
_SEARCH_BRANCHES = (
    ("profile_id = $2", "profile_id"),
    (f"{_EMAIL} = $3", "profile_id"),
    ("mobile_phone = ANY($4::text[])", "profile_id"),
    ("profile_id >= $2 AND profile_id < $5", "profile_id"),
    (f"{_EMAIL} >= $3 AND {_EMAIL} < $6", _EMAIL),
    ("mobile_phone >= $7 AND mobile_phone < $8", "mobile_phone"),
)
_SEARCH = "SELECT * FROM (" + " UNION ALL ".join(
    f"(SELECT {rank} AS rank, p.* FROM ({_READ} WHERE tenant_id = $1 AND {where}"
    f" AND NOT is_test ORDER BY {order} LIMIT $9) p)"
    for rank, (where, order) in enumerate(_SEARCH_BRANCHES)) + ") u ORDER BY rank, profile_id"
_PAST = "\U0010ffff"  # after every string that starts with the prefix (byte order)
PREFIX_MIN = 3  # characters: shorter texts match exactly only


async def search_profiles(connection: asyncpg.Connection, tenant: str, text: str,
                          limit: int = 20) -> list[dict[str, Any]]:
    """Real profiles whose id is ``text``, then whose email address (any case) or mobile
    phone is, then (``text`` of ``PREFIX_MIN`` characters or more) whose id, address or
    phone starts with it; each profile once, at most ``limit``. A phone given without its
    "+" (a "+" in a URL's query reads as a space) matches with it too."""
    text = text.strip()
    email = fold_email(text)
    phones = [text, f"+{text}"] if text.isdigit() else [text]
    phone_prefix = phones[-1]
    prefixed = len(text) >= PREFIX_MIN

    def upper(value: str) -> str:  # short: an empty range, the prefix branches read nothing
        return value + _PAST if prefixed else value

    rows = await connection.fetch(
        _SEARCH, tenant, text, email, phones, upper(text), upper(email), phone_prefix,
        upper(phone_prefix), limit)
    seen: set[str] = set()
    found: list[dict[str, Any]] = []
    for row in rows:
        if row["profile_id"] not in seen and len(found) < limit:
            seen.add(row["profile_id"])
            stored = dict(row)
            stored.pop("rank")
            found.append(_stored_dict(stored))
    return found


def _stored_dict(stored: dict[str, Any]) -> dict[str, Any]:
    stored["attributes"] = read_stored(stored.pop("attributes_text").encode())
    return stored


# --- erasure and export -------------------------------------------------------------------

async def _erase(connection: asyncpg.Connection, tenant: str, profile_id: str
                 ) -> dict[str, int]:
    devices = await connection.fetch(
        "DELETE FROM profiles WHERE tenant_id = $1 AND profile_id = $2 AND NOT is_test"
        " RETURNING jsonb_array_length(push_registrations) AS devices", tenant, profile_id)
    return {"profile": len(devices), "pushDevices": sum(r["devices"] for r in devices)}


async def _export(connection: asyncpg.Connection, tenant: str, profile_id: str
                  ) -> dict[str, Any]:
    return {"profile": await read_profile(connection, tenant, profile_id)}


erasure.register(erasure.PersonalData("profile", _erase, _export, order=erasure.LAST))
