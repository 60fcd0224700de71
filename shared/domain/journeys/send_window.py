"""A journey action's send window: days of the week and hours of the day, in the
recipient's time zone, outside which its message waits for the next opening instead of
going (never dropped). Local times are the zone database's, as for quiet hours: on the day
clocks change, 09:00 is that day's 09:00 wall-clock time."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # date.weekday() order


class Window(Protocol):
    @property
    def days(self) -> Sequence[str]: ...

    @property
    def start(self) -> time: ...

    @property
    def end(self) -> time: ...


def opens_at(window: Window, now: datetime, zone: ZoneInfo) -> datetime:
    """``now`` when it is inside the window, else the next opening (UTC)."""
    local = now.astimezone(zone)
    for offset in range(8):  # a day of the window comes within a week
        day: date = local.date() + timedelta(days=offset)
        if DAYS[day.weekday()] not in window.days:
            continue
        start = datetime.combine(day, window.start, tzinfo=zone)
        end = datetime.combine(day, window.end, tzinfo=zone)
        if start <= local < end:
            return now
        if local < start:
            return start.astimezone(UTC)
    raise ValueError("a send window names no day")  # validation refuses it before


def recipient_zone(profile: Mapping[str, Any], default: str) -> ZoneInfo:
    """The profile's ``timeZone``, else ``default`` (the tenant's), else UTC: a name the
    zone database does not know falls through to the next."""
    for name in (profile.get("timeZone"), default):
        if isinstance(name, str) and name:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")
