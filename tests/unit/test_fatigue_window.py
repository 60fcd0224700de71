"""The fatigue window against its definition, by brute force over small integer times:
no window ``[s, s + period)`` may hold more than ``cap`` contacts."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shared.domain.delivery_rules.window import busiest, first_allowed, fits

times_ = st.lists(st.integers(0, 60), max_size=12).map(sorted)
periods = st.integers(1, 15)
caps = st.integers(0, 5)


def _busiest_by_definition(times: list[int], at: int, period: int) -> int:
    return max(sum(s <= m < s + period for m in times) for s in range(at - period + 1, at + 1))


@given(times_, st.integers(0, 60), periods)
def test_busiest_is_the_largest_window_holding_the_instant(times, at, period):
    assert busiest(times, at, period) == _busiest_by_definition(times, at, period)


@given(times_, st.integers(0, 60), caps, periods)
def test_first_allowed_is_the_earliest_instant_that_fits(times, at, cap, period):
    allowed = first_allowed(times, at, cap, period)
    if cap == 0:
        assert allowed is None
        return
    assert allowed is not None and allowed >= at
    assert _busiest_by_definition(times, allowed, period) + 1 <= cap
    for earlier in range(at, allowed):
        assert _busiest_by_definition(times, earlier, period) + 1 > cap


@given(st.lists(st.integers(0, 200), max_size=30), caps, periods)
def test_admitting_one_by_one_never_overfills_a_window(arrivals, cap, period):
    """Whatever order messages are decided in (a later contact may be decided first: a
    scheduled send), admitting those that fit keeps every window at the cap."""
    admitted: list[int] = []
    for at in arrivals:
        if fits(admitted, at, cap, period):
            admitted = sorted([*admitted, at])
    for s in range(-period, 201):
        assert sum(s <= m < s + period for m in admitted) <= cap


def test_counts_both_sides_of_the_contact():
    # A send deferred to t=10 blocks a message at t=5 when the cap is 1 per 8.
    assert not fits([10], 5, cap=1, period=8)
    assert fits([10], 2, cap=1, period=8)  # [2, 10) does not reach it
    assert first_allowed([10], 5, cap=1, period=8) == 18
