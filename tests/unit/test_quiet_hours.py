from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

from shared.domain.delivery_rules.quiet_hours import quiet_until

PARIS = ZoneInfo("Europe/Paris")
NIGHT, MORNING = time(21, 0), time(8, 0)


def test_outside_the_window_nothing_waits():
    assert quiet_until(datetime(2026, 6, 1, 12, 0, tzinfo=UTC), NIGHT, MORNING, PARIS) is None


def test_before_midnight_waits_for_the_next_morning():
    at = datetime(2026, 6, 1, 20, 30, tzinfo=UTC)  # 22:30 in Paris (CEST, +2)
    assert quiet_until(at, NIGHT, MORNING, PARIS) == datetime(2026, 6, 2, 6, 0, tzinfo=UTC)


def test_after_midnight_waits_for_the_same_morning():
    at = datetime(2026, 6, 2, 1, 0, tzinfo=UTC)  # 03:00 in Paris
    assert quiet_until(at, NIGHT, MORNING, PARIS) == datetime(2026, 6, 2, 6, 0, tzinfo=UTC)


def test_the_night_clocks_spring_forward():
    """29 March 2026, 02:00 CET becomes 03:00 CEST: 08:00 that morning is 06:00 UTC,
    though the evening before was at +1."""
    at = datetime(2026, 3, 28, 22, 0, tzinfo=UTC)  # 23:00 CET
    assert quiet_until(at, NIGHT, MORNING, PARIS) == datetime(2026, 3, 29, 6, 0, tzinfo=UTC)


def test_the_night_clocks_fall_back():
    """25 October 2026, 03:00 CEST becomes 02:00 CET: 08:00 is 07:00 UTC."""
    at = datetime(2026, 10, 24, 20, 0, tzinfo=UTC)  # 22:00 CEST
    assert quiet_until(at, NIGHT, MORNING, PARIS) == datetime(2026, 10, 25, 7, 0, tzinfo=UTC)


def test_a_daytime_window():
    at = datetime(2026, 6, 1, 11, 0, tzinfo=UTC)  # 13:00 in Paris
    assert quiet_until(at, time(12, 0), time(14, 0), PARIS) == datetime(
        2026, 6, 1, 12, 0, tzinfo=UTC)


def test_an_end_in_the_spring_gap_is_the_instant_after_it():
    at = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)  # 01:30 CET, quiet until 02:30 (skipped)
    assert quiet_until(at, time(1, 0), time(2, 30), PARIS) == datetime(
        2026, 3, 29, 1, 30, tzinfo=UTC)  # 03:30 CEST
