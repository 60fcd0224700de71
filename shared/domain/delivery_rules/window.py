"""Fatigue's sliding window, in whole microseconds: at most ``cap`` contacts in any period
``[s, s + period)``, counted on both sides of a contact (a deferred or scheduled send
already in the history counts against messages decided before it).

Pure and exact: times are integers, so "just after" is one microsecond, and the answer is
the same on every machine. Property-tested against the definition by brute force.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def micros(at: datetime) -> int:
    return (at - _EPOCH) // timedelta(microseconds=1)


def from_micros(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def _count(times: Sequence[int], start: int, end: int) -> int:
    """How many of the sorted ``times`` lie in ``[start, end)``."""
    return bisect_left(times, end) - bisect_left(times, start)


def busiest(times: Sequence[int], at: int, period: int) -> int:
    """The most contacts of ``times`` (sorted) in one window of length ``period`` that
    holds ``at``. A window ``[s, s + period)`` holds ``at`` for ``at - period < s <= at``;
    its count only grows where a contact enters on the right (``s = m - period + 1``), so
    the largest is at the left end or at one of those starts."""
    lowest = at - period + 1
    starts = [lowest, *(m - period + 1 for m in times if lowest < m - period + 1 <= at)]
    return max(_count(times, s, s + period) for s in starts)


def fits(times: Sequence[int], at: int, cap: int, period: int) -> bool:
    """Whether one more contact at ``at`` keeps every window at ``cap`` or fewer."""
    return busiest(times, at, period) + 1 <= cap


def first_allowed(times: Sequence[int], at: int, cap: int, period: int) -> int | None:
    """The earliest instant from ``at`` on at which a contact fits (None when ``cap`` is
    below 1: never). A window's count drops only as a contact leaves it, at ``m + period``,
    so the answer is ``at`` or one of those instants; past the last of them no window that
    holds the instant holds a contact, so one always fits."""
    if cap < 1:
        return None
    for candidate in [at, *sorted(m + period for m in times if m + period > at)]:
        if fits(times, candidate, cap, period):
            return candidate
    raise AssertionError("unreachable: past every contact's window a contact fits")
