"""When a message a provider refused for now is tried again: exponential backoff with
jitter, up to a limit (pure; the sender keeps the schedule in ``send_retries``).

Attempt ``n`` (the hand-overs tried so far, the first included) waits a base of
``first_delay_s · 2^(n-1)``, capped at ``max_delay_s``, of which a ``jitter`` fraction is
drawn at random ("equal jitter": with 0.5, between half the base and the base). Random,
so that many messages refused in the same second (a relay's 421 burst) do not all come
back in the same second; at least half the base, so a retry is never immediate.
After ``max_attempts`` hand-overs there is no next one: the message fails.
"""

from __future__ import annotations

from dataclasses import dataclass

_MAX_DOUBLINGS = 60  # 2**60 times any positive delay is past every cap: no overflow


@dataclass(frozen=True)
class RetryPolicy:
    first_delay_s: float = 1.0
    max_delay_s: float = 1800.0
    max_attempts: int = 50  # hand-overs in all, the first included: up to ~20 h
    jitter: float = 0.5  # the randomised fraction of each delay, 0..1

    def __post_init__(self) -> None:
        if not 0 < self.first_delay_s <= self.max_delay_s:
            raise ValueError("retry delays: 0 < first_delay_s <= max_delay_s")
        if self.max_attempts < 1:
            raise ValueError("retry limit: max_attempts >= 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("retry jitter: between 0 and 1")

    def base_delay_s(self, attempts: int) -> float:
        """The delay before hand-over ``attempts + 1``, before jitter."""
        doublings = min(max(attempts - 1, 0), _MAX_DOUBLINGS)
        return min(self.max_delay_s, self.first_delay_s * 2.0 ** doublings)

    def next_delay_s(self, attempts: int, draw: float) -> float | None:
        """Seconds to wait after ``attempts`` hand-overs failed for now, ``draw`` a random
        number in [0, 1); None when the limit is reached and the message fails."""
        if attempts >= self.max_attempts:
            return None
        base = self.base_delay_s(attempts)
        return base * (1 - self.jitter) + base * self.jitter * min(max(draw, 0.0), 1.0)

    def longest_s(self) -> float:
        """How long a message may wait in all before it fails (every draw at its top)."""
        return sum(self.base_delay_s(n) for n in range(1, self.max_attempts))
