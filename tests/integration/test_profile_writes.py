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
        await consent_store.apply_changes(connection, TENANT, [(profile_id, opt_in,
                                                                 "old import")],
                                          now - timedelta(minutes=1))
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


async def test_many_writes_at_once_tell_each_outcome(pool: asyncpg.Pool) -> None:
    tag = uuid.uuid4().hex[:8]
    new, old, later, tester = (f"{k}-{tag}" for k in ("new", "old", "later", "tp"))
    now = datetime.now(UTC)
    async with pool.acquire() as connection:
        await profile_store.apply_profile_write(connection, TENANT, write(old, city="A"),
                                                now - timedelta(days=1))
        await profile_store.apply_profile_write(connection, TENANT, write(later, city="B"),
                                                now + timedelta(days=1))
        await connection.execute("INSERT INTO profiles (tenant_id, profile_id, is_test)"
                                 " VALUES ($1, $2, true)", TENANT, tester)
        sms_out = ConsentChange(ConsentKind.MARKETING, "sms", "opted-out")
        async with connection.transaction():
            results = await profile_store.apply_profile_writes(connection, TENANT, [
                (w, now) for w in (
                    write(new, city="N1"), write(old, city="O"),
                    write(new, first_name="Twice"), write(later, city="Lost"),
                    write(tester, city="T"),
                    ProfileWrite(new, False, {}, {}, consent=(sms_out,), source="batch"))])
        assert [r.outcome for r in results] == [
            "created", "updated", "updated", "stale", "test", "updated"]
        assert results[3].written_at == now + timedelta(days=1)
        first = await profile_store.read_profile(connection, TENANT, new)
        assert first is not None and (first["city"], first["first_name"]) == ("N1", "Twice")
        stale = await profile_store.read_profile(connection, TENANT, later)
        assert stale is not None and stale["city"] == "B"
        assert await connection.fetchval(
            "SELECT city FROM profiles WHERE tenant_id = $1 AND profile_id = $2",
            TENANT, tester) is None
        [consent] = await consent_store.read_consent(connection, TENANT, new)
        assert (consent.value, consent.source) == ("opted-out", "batch")


async def test_writes_of_one_call_each_at_its_own_time_as_if_one_by_one(
    pool: asyncpg.Pool
) -> None:
    """A poll of Kafka records: each write at its record's time, in one call. The same
    profile twice, the older after the newer, is "stale"; the newer after the older wins;
    consent changes are dated by their writes, each change made kept in the history."""
    tag = uuid.uuid4().hex[:8]
    a, b, c = (f"{k}-{tag}" for k in ("a", "b", "c"))
    t0 = datetime.now(UTC)
    at = [t0 + timedelta(seconds=i) for i in range(6)]
    opt_out = ConsentChange(ConsentKind.MARKETING, "email", "opted-out")
    opt_in = ConsentChange(ConsentKind.MARKETING, "email", "opted-in")
    async with pool.acquire() as connection:
        await profile_store.apply_profile_write(connection, TENANT, write(c, city="C0"), at[3])
        async with connection.transaction():
            results = await profile_store.apply_profile_writes(connection, TENANT, [
                (write(a, city="A-new"), at[2]),
                (write(a, city="A-old", first_name="Old"), at[1]),  # out of order
                (write(b, city="B-old"), at[0]),
                (ProfileWrite(b, False, {"city": "B-new"}, {}, consent=(opt_out,),
                              source="kafka"), at[4]),
                (ProfileWrite(b, False, {}, {}, consent=(opt_in,), source="kafka"), at[5]),
                (ProfileWrite(b, False, {}, {}, consent=(opt_out,), source="late"), at[1]),
                (write(c, city="C-old"), at[2]),
                (write(c, city="C-new"), at[4]),
            ])
        assert [r.outcome for r in results] == [
            "created", "stale", "created", "updated", "updated", "stale", "stale", "updated"]
        assert results[1].written_at == at[2] and results[6].written_at == at[4]
        rows = {p: await profile_store.read_profile(connection, TENANT, p) for p in (a, b, c)}
        assert {p: (r["city"], r["first_name"], r["written_at"]) for p, r in rows.items()
                if r is not None} == {a: ("A-new", None, at[2]), b: ("B-new", None, at[5]),
                                      c: ("C-new", None, at[4])}
        [consent] = await consent_store.read_consent(connection, TENANT, b)
        assert (consent.value, consent.changed_at, consent.source) == (
            "opted-in", at[5], "kafka")
        history = await consent_store.read_history(connection, TENANT, b)
        assert [(h["value"], h["changedAt"]) for h in history] == [
            ("opted-out", at[4]), ("opted-in", at[5])]


async def test_dated_consent_changes_against_the_stored_value(pool: asyncpg.Pool) -> None:
    """Older than the stored change: ignored; the same value again: nothing (the date of
    the first kept); a change away and back within one call: both in the history."""
    tag = uuid.uuid4().hex[:8]
    kept, back = f"kept-{tag}", f"back-{tag}"
    t0 = datetime.now(UTC)
    opt_out = ConsentChange(ConsentKind.MARKETING, "sms", "opted-out")
    opt_in = ConsentChange(ConsentKind.MARKETING, "sms", "opted-in")
    async with pool.acquire() as connection, connection.transaction():
        for profile_id in (kept, back):
            await profile_store.apply_profile_write(connection, TENANT, ProfileWrite(
                profile_id, False, {}, {}, consent=(opt_out,), source="first"), t0)
        await consent_store.apply_dated_changes(connection, TENANT, [
            ((kept, opt_in, "older"), t0 - timedelta(seconds=1)),
            ((kept, opt_out, "again"), t0 + timedelta(seconds=1)),
            ((back, opt_in, "in"), t0 + timedelta(seconds=1)),
            ((back, opt_out, "out"), t0 + timedelta(seconds=2)),
        ])
        [row] = await consent_store.read_consent(connection, TENANT, kept)
        assert (row.value, row.changed_at, row.source) == ("opted-out", t0, "first")
        [row] = await consent_store.read_consent(connection, TENANT, back)
        assert (row.value, row.changed_at, row.source) == (
            "opted-out", t0 + timedelta(seconds=2), "out")
        assert [h["source"] for h in await consent_store.read_history(
            connection, TENANT, back)] == ["first", "in", "out"]
        assert [h["source"] for h in await consent_store.read_history(
            connection, TENANT, kept)] == ["first"]
