"""A circuit breaker per provider (pure: the caller gives the clock).

closed: requests go; ``failure_threshold`` failures in a row open it.
open: no request goes, for ``open_s`` seconds; then the next request is the probe.
half-open: one probe is in flight and every other request is refused; its success
closes the breaker, its failure opens it again for another ``open_s``. A probe that
never reports (its caller was cancelled) is replaced by another after ``open_s``.
A success in the closed state clears the count of failures in a row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class BreakerState(Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


@dataclass
class CircuitBreaker:
    failure_threshold: int = 5
    open_s: float = 10.0
    state: BreakerState = field(default=BreakerState.CLOSED)
    failures: int = 0  # in a row, while closed
    opened_at: float = 0.0  # or, half-open, when the probe went

    def __post_init__(self) -> None:
        if self.failure_threshold < 1 or self.open_s <= 0:
            raise ValueError("a breaker opens after at least 1 failure, for a positive time")

    def allow(self, now: float) -> bool:
        """May a request go now? An open breaker whose time is up lets this one through
        as its probe (and turns half-open); a half-open one lets none more through."""
        if self.state is BreakerState.CLOSED:
            return True
        if now - self.opened_at >= self.open_s:  # open and its time is up, or a lost probe
            self.state, self.opened_at = BreakerState.HALF_OPEN, now
            return True
        return False

    def succeeded(self) -> None:
        self.state, self.failures = BreakerState.CLOSED, 0

    def failed(self, now: float) -> None:
        if self.state is BreakerState.HALF_OPEN:
            self._open(now)
            return
        if self.state is BreakerState.OPEN:  # a request that went before it opened
            return
        self.failures += 1
        if self.failures >= self.failure_threshold:
            self._open(now)

    def _open(self, now: float) -> None:
        self.state, self.opened_at, self.failures = BreakerState.OPEN, now, 0
