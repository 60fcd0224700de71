"""Relative dates: the window a ``within`` test means at a given ``now``.

The window is computed here, once, and both Python and SQL compare with the same two
bounds (SQL gets them as parameters): they cannot disagree on what "the last 30 days" is.
``now`` comes from the caller, in the time zone it means: days, months and years are
counted on its calendar (a date path's "today" is ``now``'s date there); hours are elapsed
time.
"""

from __future__ import annotations

from calendar import monthrange
from datetime import UTC, date, datetime, timedelta
from typing import TypeVar

from shared.domain.conditions.model import Span

D = TypeVar("D", date, datetime)


def add_months(moment: D, months: int) -> D:
    """The same day ``months`` later (or earlier), or the month's last day if it has fewer:
    a year after 29 February is 28 February."""
    year, month = divmod(moment.month - 1 + months, 12)
    year, month = moment.year + year, month + 1
    return moment.replace(year=year, month=month, day=min(moment.day, monthrange(year, month)[1]))


def shift(moment: D, span: Span, sign: int) -> D:
    if span.hours is not None:
        assert isinstance(moment, datetime)  # the checker allows hours on datetimes only
        return (moment.astimezone(UTC) + sign * timedelta(hours=span.hours)).astimezone(
            moment.tzinfo)
    if span.days is not None:
        return moment + sign * timedelta(days=span.days)
    months = span.months if span.months is not None else 12 * (span.years or 0)
    return add_months(moment, sign * months)


def window(origin: D, span: Span, ahead: bool) -> tuple[D, D]:
    """``(origin - span, origin)`` for the last span, ``(origin, origin + span)`` for the next."""
    other = shift(origin, span, 1 if ahead else -1)
    return (origin, other) if ahead else (other, origin)


def today_or_now(now: datetime, dated: bool) -> date | datetime:
    if now.utcoffset() is None:
        raise ValueError("now must be an aware datetime: the window depends on its zone")
    return now.date() if dated else now
