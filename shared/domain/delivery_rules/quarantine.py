"""Quarantine: how an address's failures move its quarantine row (one per tenant, channel
and address). Pure: the store reads the row, applies ``after_failure`` and writes it back.

- A **hard** failure (the address does not exist, the provider refuses it for good)
  quarantines the address at once, until ``now + releaseAfter``. Another hard failure
  while quarantined starts the period again.
- A **soft** failure (a temporary refusal of this address: mailbox full, try later) is
  counted only when the last counted one is at least ``softSpacing`` ago, so a burst of
  failures on one day counts once; at ``softFailures`` counted failures the address is
  quarantined like a hard failure. A counted failure more than ``releaseAfter`` after the
  previous one starts the count again at 1: failures that far apart say nothing about the
  address now.
- A delivery does **not** reset the count. Every soft-failed message is retried until the
  server takes it, so a delivery after a soft failure is the usual end of one and cannot
  be evidence against it; and resetting on every delivery would write on every delivered
  message's path for a case that is rare. Old failures fade instead (above).
- Released (``release_at`` past, or by the admin), an address starts again from nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from shared.domain.delivery_rules.tenant import QuarantineSettings

FailureKind = Literal["hard", "soft"]
_REASON_CHARS = 300


@dataclass(frozen=True)
class QuarantineState:
    """One address's row (``quarantine`` table)."""

    soft_failures: int = 0
    last_failure_at: datetime | None = None  # the last *counted* failure
    quarantined_at: datetime | None = None
    release_at: datetime | None = None
    reason: str | None = None

    def quarantined(self, now: datetime) -> bool:
        return (self.quarantined_at is not None and self.release_at is not None
                and self.release_at > now)


def after_failure(
    current: QuarantineState | None, failure: FailureKind, reason: str, now: datetime,
    settings: QuarantineSettings,
) -> QuarantineState:
    reason = reason[:_REASON_CHARS]
    state = current or QuarantineState()
    if state.quarantined_at is not None and not state.quarantined(now):
        state = QuarantineState()  # released: a fresh start
    if failure == "hard":
        return QuarantineState(soft_failures=state.soft_failures, last_failure_at=now,
                               quarantined_at=now, release_at=now + settings.releaseAfter,
                               reason=f"hard failure: {reason}")
    if state.quarantined(now):
        return state  # already out; a soft failure neither extends nor shortens it
    last = state.last_failure_at
    if last is not None and now - last < settings.softSpacing:
        return state  # too soon after the last counted one: not counted
    count = 1 if last is None or now - last > settings.releaseAfter else state.soft_failures + 1
    state = replace(state, soft_failures=count, last_failure_at=now)
    if count >= settings.softFailures:
        return replace(state, quarantined_at=now, release_at=now + settings.releaseAfter,
                       reason=f"{count} soft failures at least {_spacing(settings)} apart,"
                              f" the last: {reason}")
    return state


def _spacing(settings: QuarantineSettings) -> str:
    seconds = int(settings.softSpacing.total_seconds())
    if seconds and seconds % 86400 == 0:
        days = seconds // 86400
        return f"{days} day" + ("s" if days > 1 else "")
    return f"{seconds} s"
