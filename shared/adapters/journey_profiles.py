"""What the journey engine reads of its profiles, many to a query: the profile as the
senders take it (``profile_store.as_profile``), its push devices, and the record its
journey's conditions and waits read (``condition_record``: built-in fields by their
names, ``attributes.<name>``, consent). A test run's instances are test profiles'."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from shared.adapters.contact_history import consents
from shared.adapters.profile_store import PROFILE_COLUMNS, as_profile
from shared.domain.delivery_rules.recipient import condition_record


@dataclass(frozen=True)
class JourneyProfile:
    profile: dict[str, Any]
    devices: list[dict[str, Any]]
    record: dict[str, Any]
    is_test: bool


async def read_profiles(connection: asyncpg.Connection, tenant: str, ids: Sequence[str]
                        ) -> dict[str, JourneyProfile]:
    if not ids:
        return {}
    rows = await connection.fetch(
        f"SELECT {PROFILE_COLUMNS}, push_registrations, is_test FROM profiles"
        " WHERE tenant_id = $1 AND profile_id = ANY($2::text[])", tenant, sorted(set(ids)))
    consent = await consents(connection, tenant, [r["profile_id"] for r in rows])
    found = {}
    for row in rows:
        data = dict(row)
        devices, is_test = list(data.pop("push_registrations") or []), data.pop("is_test")
        profile = as_profile(data)
        found[row["profile_id"]] = JourneyProfile(
            profile, devices,
            condition_record(profile, [(c["kind"], c["name"], c["value"])
                                       for c in consent.get(row["profile_id"], [])]),
            is_test)
    return found
