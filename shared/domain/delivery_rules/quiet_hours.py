"""Quiet hours: a daily window of local time (``21:00``-``08:00`` may cross midnight) in
which a channel sends nothing; a message that falls in it waits until the window ends in
the recipient's time zone. Daylight saving is the zone database's: the end of a window on
the night clocks change is the local wall-clock time that night (08:00 is 06:00 UTC in
Paris on 29 March 2026, 07:00 UTC the day before).
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo


def _wall(day: datetime, at: time, zone: ZoneInfo) -> datetime:
    """``at`` on ``day``'s date in ``zone``, as an instant. A time the clocks skip (a
    spring-forward gap) is read with the offset before the change: the instant just past
    the gap."""
    return datetime.combine(day.date(), at, tzinfo=zone)


def quiet_until(at: datetime, start: time, end: time, zone: ZoneInfo) -> datetime | None:
    """When the quiet window holding ``at`` ends (UTC), or None when ``at`` is outside."""
    if start == end:
        return None  # an empty window
    local = at.astimezone(zone)
    clock = local.time().replace(tzinfo=None)
    crosses_midnight = start > end
    inside = (clock >= start or clock < end) if crosses_midnight else start <= clock < end
    if not inside:
        return None
    day = local if (not crosses_midnight or clock < end) else local + timedelta(days=1)
    return _wall(day, end, zone).astimezone(UTC)
