"""Weekly partitions of event statuses and the delivery ledger (shared/domain/partitions.py)
and the timed pKeys that name their partition (shared/domain/pkeys.py)."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta

import pytest

from shared.domain import partitions as p
from shared.domain.pkeys import (
    TIMED_LENGTH,
    derive_pkey,
    mint_pkey,
    mint_timed_pkey,
    pkey_time,
    verify_pkey,
)

SECRET = b"s" * 32


def ts(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp())


def test_a_timed_pkey_carries_its_second_under_the_hmac() -> None:
    at = ts("2026-12-06T23:59:59+00:00")
    pkey = mint_timed_pkey(SECRET, "t1", "EVTa", at, os.urandom(12))
    assert len(pkey) == TIMED_LENGTH
    assert verify_pkey(SECRET, "t1", "EVTa", pkey)
    assert not verify_pkey(SECRET, "t2", "EVTa", pkey)
    assert pkey_time(pkey) == at
    # moving its time breaks the HMAC
    later = mint_timed_pkey(SECRET, "t1", "EVTa", at + 86400, os.urandom(12))
    forged = later[:7] + pkey[7:]
    assert not verify_pkey(SECRET, "t1", "EVTa", forged)


def test_pkeys_without_a_time_still_verify_and_have_none() -> None:
    old = mint_pkey(SECRET, "t1", "EVTa", os.urandom(12))
    derived = derive_pkey(SECRET, "t1", "EVTa", "order-42")
    assert len(old) == len(derived) == 32
    assert verify_pkey(SECRET, "t1", "EVTa", old) and verify_pkey(SECRET, "t1", "EVTa", derived)
    assert pkey_time(old) is None and pkey_time(derived) is None
    with pytest.raises(ValueError):
        mint_timed_pkey(SECRET, "t1", "EVTa", 0, b"short")


def test_weeks_run_monday_to_monday_in_utc() -> None:
    assert p.week_of(date(2026, 12, 6)) == date(2026, 11, 30)  # a Sunday
    assert p.week_of(date(2026, 12, 7)) == date(2026, 12, 7)  # a Monday
    assert p.utc_day(ts("2026-12-06T23:59:59+00:00")) == date(2026, 12, 6)
    assert p.utc_day(ts("2026-12-07T00:00:00+00:00")) == date(2026, 12, 7)
    assert p.weeks_to_create(date(2026, 12, 4)) == [
        date(2026, 11, 30), date(2026, 12, 7), date(2026, 12, 14)]
    assert p.partition_name("event_status", date(2026, 11, 30)) == "event_status_w20261130"


def test_upper_bounds_read_from_the_catalogue() -> None:
    assert p.upper_bound("FOR VALUES FROM ('2026-11-30') TO ('2026-12-07')") == date(2026, 12, 7)
    assert p.upper_bound("FOR VALUES FROM (MINVALUE) TO ('2026-11-30')") == date(2026, 11, 30)
    assert p.upper_bound("DEFAULT") is None


def test_floors_defaults_and_for_ever() -> None:
    assert p.STATUS_FLOOR_DAYS == 8  # reconcile reads 7 days
    assert p.LEDGER_FLOOR_DAYS == 9  # topics keep 7 days, a day of retries, a day's margin
    assert p.keep_days(None, 35, 8) == 35
    assert p.keep_days(3, 35, 8) == 8  # never under the floor
    assert p.keep_days(0, 35, 9) is None  # 0 keeps for ever
    assert p.keep_days(None, 0, 9) is None
    assert p.longest(35, [10, None, 90], 8) == 90
    assert p.longest(35, [10], 8) == 35  # tenants without their own have the default
    assert p.longest(35, [0], 8) is None  # one tenant keeping for ever keeps every week
    assert p.longest(2, [], 9) == 9


def test_expiry_is_by_day() -> None:
    today = date(2026, 12, 4)
    assert not p.expired(date(2026, 10, 30), today, 35)  # exactly 35 days
    assert p.expired(date(2026, 10, 29), today, 35)
    assert not p.expired(date(2000, 1, 1), today, None)


def weekly(*mondays: date) -> list[p.Partition]:
    return [p.Partition(p.partition_name("event_status", m), m + p.WEEK) for m in mondays]


def test_only_weeks_wholly_past_the_retention_go_oldest_first() -> None:
    today = date(2026, 12, 4)  # cut-off 35 days: 2026-10-30
    parts = [*weekly(date(2026, 10, 26), date(2026, 10, 19), date(2026, 10, 12)),
             p.Partition("event_status_default", None),
             p.Partition("event_status_legacy", date(2026, 10, 12))]
    # the week of 10-26 holds 10-29 (expired) and 10-30 (not): kept
    assert p.to_drop(parts, today, 35, None) == [
        "event_status_legacy", "event_status_w20261012", "event_status_w20261019"]
    assert p.to_drop(parts, today, None, None) == []


def test_a_week_holding_an_event_still_waiting_stays() -> None:
    today = date(2026, 12, 4)
    parts = weekly(date(2026, 10, 19), date(2026, 10, 12), date(2026, 10, 5))
    # an event accepted 10-14, scheduled for next month, is still held
    assert p.to_drop(parts, today, 35, date(2026, 10, 14)) == ["event_status_w20261005"]
    # past the scheduling horizon a week goes whatever it holds
    old = weekly(date(2025, 10, 20))
    assert p.to_drop(old, today, 35, date(2025, 10, 21)) == ["event_status_w20251020"]


def test_status_expired_answers() -> None:
    today = date(2026, 12, 4)
    old = ts("2026-10-01T12:00:00+00:00")
    recent = ts("2026-12-01T12:00:00+00:00")
    # a final row past the retention; a row still waiting (scheduled) is answered
    assert p.status_expired(date(2026, 10, 1), True, old, today, None, 35)
    assert not p.status_expired(date(2026, 10, 1), False, old, today, None, 35)
    # no row: its pKey's time decides; a pKey without one is pending as before
    assert p.status_expired(None, False, old, today, None, 35)
    assert not p.status_expired(None, False, recent, today, None, 35)
    assert not p.status_expired(None, False, None, today, None, 35)
    # the tenant's own retention, under its floor
    assert p.status_expired(date(2026, 11, 20), True, None, today, 10, 35)
    assert not p.status_expired(date(2026, 11, 27), True, None, today, 2, 35)  # floor 8
    assert not p.status_expired(date(2020, 1, 1), True, None, today, 0, 35)  # for ever


def test_utc_day_of_a_pkey_is_the_day_in_utc_not_local() -> None:
    at = datetime(2026, 12, 6, 23, 30, tzinfo=UTC)
    pkey = mint_timed_pkey(SECRET, "t", "EVTa", at.timestamp(), os.urandom(12))
    issued = pkey_time(pkey)
    assert issued is not None
    assert p.utc_day(issued) == date(2026, 12, 6)
    assert p.utc_day(issued + 1800) == date(2026, 12, 6) + timedelta(days=1)
