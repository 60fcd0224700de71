"""Event statuses and the delivery ledger by week (issue 15): which partitions to create,
which to drop, and when a status is past its tenant's retention. Pure: the adapter
(shared/adapters/retention_store.py) creates and drops what this says.

Both tables are partitioned by range of ``accepted_day`` (UTC), one partition per ISO
week (Monday to Monday): few partitions (a lookup that cannot be pruned probes each), and
a drop a week. The day is the pKey's own issue day (shared/domain/pkeys.py), so every
copy of a write lands in the same partition and the unique keys deduplicate as before.

Retention is per tenant (``tenant_retention``; else the settings' default), but a
partition holds every tenant's rows of its week: it is dropped once past the **longest**
retention any tenant has, and a tenant with a shorter one sees its statuses ``expired``
from the day they pass it (filtered when read, ``expired``). Floors no setting goes under:

- statuses: ``parcours reconcile`` reads the input topics over up to 7 days and compares
  each accepted event with its status, so statuses are kept at least 8 days;
- the ledger is what stops a redelivered send record from being sent again: it must
  outlive every record that can still be redelivered, i.e. the input and send topics'
  retention (7 days, shared/topics.py) plus the time a message may wait in the retry
  schedule (a day) and a day's margin: at least 9 days.

A partition is never dropped while it may hold an event still waiting (scheduled up to
365 days ahead, deferred by a rule, paused, in the retry schedule): only weeks wholly
before the oldest such event's day go; past the scheduling horizon (366 days more) they
go whatever is left.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

TABLES = ("event_status", "deliveries")
WEEK = timedelta(days=7)
AHEAD_WEEKS = 2  # partitions made ahead of this week: a write never finds none
TOPIC_RETENTION_DAYS = 7  # shared/topics.py: every input and send topic keeps 7 days
RECONCILE_DAYS = 7  # `parcours reconcile --since` reads at most this far back
RETRY_WAIT_DAYS = 1  # the longest a message waits in the retry schedule
STATUS_FLOOR_DAYS = RECONCILE_DAYS + 1
LEDGER_FLOOR_DAYS = TOPIC_RETENTION_DAYS + RETRY_WAIT_DAYS + 1
FLOORS = {"event_status": STATUS_FLOOR_DAYS, "deliveries": LEDGER_FLOOR_DAYS}
SCHEDULE_HORIZON = timedelta(days=366)  # `scheduled` is at most 365 days ahead
_UPPER = re.compile(r"TO \('(\d{4}-\d{2}-\d{2})'\)")


def utc_day(at: float) -> date:
    """The UTC day of a unix time (what migration 040's ``pkey_day`` computes)."""
    return datetime.fromtimestamp(at, UTC).date()


def week_of(day: date) -> date:
    """The Monday starting the week of ``day``: the partition's lower bound."""
    return day - timedelta(days=day.weekday())


def partition_name(table: str, monday: date) -> str:
    return f"{table}_w{monday:%Y%m%d}"


def weeks_to_create(today: date, ahead: int = AHEAD_WEEKS) -> list[date]:
    """This week's Monday and the next ``ahead`` ones."""
    first = week_of(today)
    return [first + WEEK * i for i in range(ahead + 1)]


def upper_bound(bound: str) -> date | None:
    """The exclusive upper bound of a range partition from ``pg_get_expr(relpartbound)``
    (``FOR VALUES FROM ('2026-11-30') TO ('2026-12-07')``); None for the default one."""
    found = _UPPER.search(bound)
    return date.fromisoformat(found.group(1)) if found else None


def keep_days(value: int | None, default: int, floor: int) -> int | None:
    """A tenant's retention in days (None: for ever): its own value, else the default;
    0 or less keeps for ever; never under the floor."""
    days = default if value is None else value
    return None if days <= 0 else max(days, floor)


def longest(default: int, tenant_values: Iterable[int | None], floor: int) -> int | None:
    """What the table keeps: the longest retention of any tenant (None: for ever). A
    tenant without its own value has the default."""
    kept = keep_days(default, default, floor)
    for value in tenant_values:
        days = keep_days(value, default, floor)
        if days is None or kept is None:
            return None
        kept = max(kept, days)
    return kept


def cutoff_day(today: date, keep: int | None) -> date | None:
    """Rows of a day before this one are past the retention; None: kept for ever."""
    return None if keep is None else today - timedelta(days=keep)


def expired(accepted_day: date, today: date, keep: int | None) -> bool:
    """Whether a status (or ledger row) of ``accepted_day`` is past ``keep`` days."""
    cut = cutoff_day(today, keep)
    return cut is not None and accepted_day < cut


@dataclass(frozen=True)
class Partition:
    name: str
    upper: date | None  # exclusive; None: the default partition (never dropped)


def to_drop(partitions: Iterable[Partition], today: date, keep: int | None,
            oldest_waiting: date | None) -> list[str]:
    """The partitions whose every row is past ``keep`` days, and older than the oldest
    event still waiting (``oldest_waiting``: its accepted day), or past the scheduling
    horizon whatever they hold; oldest first."""
    cut = cutoff_day(today, keep)
    if cut is None:
        return []
    gone = []
    for partition in sorted(partitions, key=lambda p: p.upper or date.max):
        if partition.upper is None or partition.upper > cut:
            continue
        if (oldest_waiting is None or partition.upper <= oldest_waiting
                or partition.upper <= cut - SCHEDULE_HORIZON):
            gone.append(partition.name)
    return gone


def status_expired(row_day: date | None, row_final: bool, issued_at: int | None,
                   today: date, tenant_days: int | None, default_days: int) -> bool:
    """Whether ``GET`` answers 404 ``expired`` for an event's status: its row (of
    ``row_day``) is final and past the tenant's retention, or there is no row and its pKey
    was issued (``issued_at``, unix seconds; None for a pKey without a time) before the
    retention's cut-off. A row still waiting (scheduled far ahead) is answered as it is,
    and a pKey without a time and without a row as before (``pending``)."""
    keep = keep_days(tenant_days, default_days, STATUS_FLOOR_DAYS)
    if row_day is not None:
        return row_final and expired(row_day, today, keep)
    return issued_at is not None and expired(utc_day(issued_at), today, keep)
