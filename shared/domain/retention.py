"""How long the tables that grow with every message keep their rows (issue 11): the trace
(``message_trace``), the contact history (``contact_history``), the reactions outbox once
relayed (``reactions``) and the tracked messages whose links the tracking service answers
(``tracked_messages``). Pure: the adapter (shared/adapters/retention_store.py) deletes
what these cut-offs say, in small batches.

Two floors the settings cannot go under:

- the contact history is what fatigue and capacity rules count: a tenant's history is
  kept for at least its longest rule period (enabled or not: a rule switched back on
  counts what is there) plus a day's margin for late decisions, so no purge ever changes
  a rule's verdict;
- a relayed reaction is also the deduplication of opens and clicks (one per message and
  kind, or link): kept at least as long as tracked links answer, else a click on a link
  still working would make its reaction again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import TypeAdapter, ValidationError

from shared.domain.delivery_rules.model import Period

TABLES = ("message_trace", "contact_history", "reactions", "tracked_messages")
COUNTING_KINDS = ("fatigue", "capacity")  # the rules that read the contact history
RULE_MARGIN = timedelta(days=1)
_PERIOD: TypeAdapter[timedelta] = TypeAdapter(Period)


def days(value: float) -> timedelta | None:
    """A setting in days: 0 or less keeps for ever (None)."""
    return timedelta(days=value) if value > 0 else None


@dataclass(frozen=True)
class Retention:
    """How long each table keeps its rows; None: for ever."""

    message_trace: timedelta | None
    contact_history: timedelta | None
    reactions: timedelta | None
    tracked_messages: timedelta | None

    @classmethod
    def of(cls, message_trace_days: float, contact_history_days: float,
           reactions_days: float, tracked_messages_days: float) -> Retention:
        tracked = days(tracked_messages_days)
        reactions = days(reactions_days)
        if reactions is not None:  # dedup must outlive the links it deduplicates
            reactions = None if tracked is None else max(reactions, tracked)
        return cls(days(message_trace_days), days(contact_history_days), reactions, tracked)


def rule_period(definition: Mapping[str, Any]) -> timedelta | None:
    """The period a stored fatigue or capacity rule counts over (None for another kind,
    or a definition without a readable one)."""
    if definition.get("kind") not in COUNTING_KINDS:
        return None
    try:
        return _PERIOD.validate_python(definition.get("period"))
    except ValidationError:
        return None


def longest_periods(rules: Iterable[tuple[str, Mapping[str, Any]]]) -> dict[str, timedelta]:
    """Each tenant's longest counting period, from (tenant, rule definition) pairs."""
    longest: dict[str, timedelta] = {}
    for tenant, definition in rules:
        period = rule_period(definition)
        if period is not None and period > longest.get(tenant, timedelta(0)):
            longest[tenant] = period
    return longest


@dataclass(frozen=True)
class HistoryCutoffs:
    """Contact history older than ``default`` goes, but for the tenants in ``longer``,
    whose rules count further back: theirs goes only before their own cut-off."""

    default: datetime
    longer: dict[str, datetime] = field(default_factory=dict)


def history_cutoffs(now: datetime, keep: timedelta | None,
                    periods: Mapping[str, timedelta]) -> HistoryCutoffs | None:
    """None when the history is kept for ever."""
    if keep is None:
        return None
    default = now - keep
    longer = {tenant: now - (period + RULE_MARGIN) for tenant, period in periods.items()
              if period + RULE_MARGIN > keep}
    return HistoryCutoffs(default, longer)


def cutoff(now: datetime, keep: timedelta | None) -> datetime | None:
    return None if keep is None else now - keep


def expired(sent_at: datetime | None, now: datetime, keep: timedelta | None) -> bool:
    """Whether a tracked message's links no longer answer (sent before the cut-off)."""
    return keep is not None and sent_at is not None and sent_at < now - keep
