"""Quarantine's transition: hard failures quarantine at once, soft ones after
``softFailures`` counted failures at least ``softSpacing`` apart; release after
``releaseAfter``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from shared.domain.delivery_rules.quarantine import QuarantineState, after_failure
from shared.domain.delivery_rules.tenant import QuarantineSettings

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
DAY = timedelta(days=1)
DEFAULT = QuarantineSettings()


def test_a_hard_failure_quarantines_at_once_for_release_after() -> None:
    state = after_failure(None, "hard", "smtp 550: 5.1.1 no such user", T0, DEFAULT)
    assert state.quarantined_at == T0 and state.release_at == T0 + timedelta(days=30)
    assert state.reason == "hard failure: smtp 550: 5.1.1 no such user"
    assert state.quarantined(T0 + 29 * DAY) and not state.quarantined(T0 + 30 * DAY)


def test_five_soft_failures_a_day_apart_quarantine() -> None:
    state = None
    for day in range(4):
        state = after_failure(state, "soft", "452 mailbox full", T0 + day * DAY, DEFAULT)
        assert state.soft_failures == day + 1 and not state.quarantined(T0 + day * DAY)
    state = after_failure(state, "soft", "452 mailbox full", T0 + 4 * DAY, DEFAULT)
    assert state.soft_failures == 5 and state.quarantined_at == T0 + 4 * DAY
    assert state.release_at == T0 + 34 * DAY
    assert state.reason == "5 soft failures at least 1 day apart, the last: 452 mailbox full"


def test_soft_failures_closer_than_the_spacing_count_once() -> None:
    state = after_failure(None, "soft", "a", T0, DEFAULT)
    for hours in (1, 12, 23):
        state = after_failure(state, "soft", "b", T0 + timedelta(hours=hours), DEFAULT)
        assert (state.soft_failures, state.last_failure_at) == (1, T0)  # the counted one
    state = after_failure(state, "soft", "c", T0 + DAY, DEFAULT)
    assert (state.soft_failures, state.last_failure_at) == (2, T0 + DAY)


def test_a_soft_failure_long_after_the_last_starts_the_count_again() -> None:
    state = QuarantineState(soft_failures=4, last_failure_at=T0)
    state = after_failure(state, "soft", "x", T0 + 31 * DAY, DEFAULT)
    assert state.soft_failures == 1 and not state.quarantined(T0 + 31 * DAY)


def test_thresholds_are_the_tenants() -> None:
    settings = QuarantineSettings(softFailures=2, softSpacing=timedelta(hours=1),
                                  releaseAfter=timedelta(days=2))
    state = after_failure(None, "soft", "x", T0, settings)
    state = after_failure(state, "soft", "x", T0 + timedelta(hours=1), settings)
    assert state.quarantined_at == T0 + timedelta(hours=1)
    assert state.release_at == T0 + timedelta(days=2, hours=1)
    assert state.reason is not None and "at least 3600 s apart" in state.reason


def test_quarantined_address_a_hard_failure_restarts_the_period_a_soft_one_does_not() -> None:
    state = after_failure(None, "hard", "gone", T0, DEFAULT)
    assert after_failure(state, "soft", "later", T0 + DAY, DEFAULT) == state
    again = after_failure(state, "hard", "still gone", T0 + 10 * DAY, DEFAULT)
    assert again.release_at == T0 + 40 * DAY and again.reason == "hard failure: still gone"


def test_a_released_address_starts_from_nothing() -> None:
    state = QuarantineState(soft_failures=5, last_failure_at=T0, quarantined_at=T0,
                            release_at=T0 + 30 * DAY, reason="old")
    after = after_failure(state, "soft", "new", T0 + 31 * DAY, DEFAULT)
    assert after == QuarantineState(1, T0 + 31 * DAY, None, None, None)


settings_strategy = st.builds(
    QuarantineSettings, softFailures=st.integers(1, 6),
    softSpacing=st.timedeltas(timedelta(0), timedelta(days=2)),
    releaseAfter=st.timedeltas(timedelta(hours=1), timedelta(days=40)))
gaps = st.lists(st.tuples(st.sampled_from(["hard", "soft"]),
                          st.timedeltas(timedelta(0), timedelta(days=45))), max_size=30)


@given(settings_strategy, gaps)
def test_against_the_definition(settings: QuarantineSettings, failures: list) -> None:  # type: ignore[type-arg]
    """Replays the failures and checks the state against a direct reading of the rules:
    quarantined exactly when a hard failure, or the softFailures-th counted soft failure
    of a run (counted: spaced by softSpacing; a run: gaps at most releaseAfter, since the
    last release) happened less than releaseAfter ago."""
    state: QuarantineState | None = None
    now = T0
    out_until: datetime | None = None  # the model's release time
    counted: list[datetime] = []
    for kind, gap in failures:
        now += gap
        if out_until is not None and out_until <= now:
            out_until, counted = None, []
        if kind == "hard":
            out_until = now + settings.releaseAfter
        elif out_until is None:
            if not counted or now - counted[-1] >= settings.softSpacing:
                if counted and now - counted[-1] > settings.releaseAfter:
                    counted = []
                counted.append(now)
                if len(counted) >= settings.softFailures:
                    out_until = now + settings.releaseAfter
        state = after_failure(state, kind, "r", now, settings)
        assert state.quarantined(now) == (out_until is not None)
        assert state.release_at == out_until or out_until is None
        if out_until is None:
            assert state.soft_failures == len(counted)
            assert state.last_failure_at == (counted[-1] if counted else None)
