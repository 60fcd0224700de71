"""The one write path every profile writer shares (the profile API now, Kafka and imports
later): ``apply_profile_write`` on the real PostgreSQL, last writer wins by timestamp."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg

from shared.adapters import consent_store, profile_store
from shared.domain.consent import ConsentChange, ConsentKind
from shared.domain.profiles import ProfileWrite

TENANT = "default"


def write(profile_id: str, replace: bool = False, **fields: object) -> ProfileWrite:
    return ProfileWrite(profile_id, replace, dict(fields), {})


async def test_the_later_write_wins_whatever_order_they_arrive_in(pool: asyncpg.Pool) -> None:
    profile_id = f"lww-{uuid.uuid4().hex[:10]}"
    now = datetime.now(UTC)
    async with pool.acquire() as connection:
        first = await profile_store.apply_profile_write(
            connection, TENANT, write(profile_id, city="Paris"), now)
        assert first.outcome == "created"
        # A write made earlier (a Kafka record produced before the API call) arrives later.
        late = await profile_store.apply_profile_write(
            connection, TENANT, write(profile_id, city="Lyon", first_name="Old"),
            now - timedelta(seconds=5))
        assert late.outcome == "stale" and late.written_at == now
        row = await profile_store.read_profile(connection, TENANT, profile_id)
        assert row is not None and row["city"] == "Paris" and row["first_name"] is None
        newer = await profile_store.apply_profile_write(
            connection, TENANT, ProfileWrite(profile_id, False, {"city": "Nice"},
                                             {"ltv": Decimal("19.90")}),
            now + timedelta(seconds=1))
        assert newer.outcome == "updated"
        row = await profile_store.read_profile(connection, TENANT, profile_id)
        assert row is not None and row["city"] == "Nice"
        assert row["attributes"] == {"ltv": Decimal("19.90")}  # exact, not 19.9


async def test_an_older_consent_change_does_not_undo_a_newer_one(pool: asyncpg.Pool) -> None:
    profile_id = f"lww-{uuid.uuid4().hex[:10]}"
    now = datetime.now(UTC)
    opt_out = ConsentChange(ConsentKind.MARKETING, "email", "opted-out")
    opt_in = ConsentChange(ConsentKind.MARKETING, "email", "opted-in")
    async with pool.acquire() as connection:
        await profile_store.apply_profile_write(connection, TENANT, ProfileWrite(
            profile_id, False, {}, {}, consent=(opt_out,), source="unsubscribe"), now)
        await consent_store.apply_changes(connection, TENANT, profile_id, (opt_in,),
                                          now - timedelta(minutes=1), "old import")
        [row] = await consent_store.read_consent(connection, TENANT, profile_id)
        assert (row.value, row.source, row.changed_at) == ("opted-out", "unsubscribe", now)
        history = await consent_store.read_history(connection, TENANT, profile_id)
        assert [h["value"] for h in history] == ["opted-out"]


async def test_a_stale_write_still_brings_a_consent_change_newer_than_the_consent(
    pool: asyncpg.Pool
) -> None:
    """An unsubscribe produced before the profile's last write (which said nothing of
    consent) must not be lost with the rest of its write."""
    profile_id = f"lww-{uuid.uuid4().hex[:10]}"
    now = datetime.now(UTC)
    async with pool.acquire() as connection:
        await profile_store.apply_profile_write(connection, TENANT,
                                                write(profile_id, city="Paris"), now)
        stale = await profile_store.apply_profile_write(connection, TENANT, ProfileWrite(
            profile_id, False, {"city": "Lyon"}, {},
            consent=(ConsentChange(ConsentKind.MARKETING, "sms", "opted-out"),),
            source="kafka"), now - timedelta(seconds=1))
        assert stale.outcome == "stale"
        [row] = await consent_store.read_consent(connection, TENANT, profile_id)
        assert (row.name, row.value) == ("sms", "opted-out")
        profile = await profile_store.read_profile(connection, TENANT, profile_id)
        assert profile is not None and profile["city"] == "Paris"
