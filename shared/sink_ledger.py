"""What a local sink was handed, by message id, for ``parcours reconcile``'s duplicate and
acknowledgement checks (shared/domain/reconcile.py).

Bounded like the sink's own store: past ``capacity`` hand-overs the oldest are forgotten,
and ``since`` moves to the oldest still known, so a reconciliation only asks the sink about
what it still knows.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from typing import Any


class HandedLog:
    def __init__(self, capacity: int) -> None:
        self._order: deque[tuple[str, float]] = deque()
        self._capacity = capacity
        self.counts: Counter[str] = Counter()
        self.started = time.time()

    def add(self, message_id: str) -> None:
        self._order.append((message_id, time.time()))
        self.counts[message_id] += 1
        if len(self._order) > self._capacity:
            forgotten, at = self._order.popleft()
            self.started = at
            self.counts[forgotten] -= 1
            if self.counts[forgotten] <= 0:
                del self.counts[forgotten]

    def duplicates(self) -> dict[str, int]:
        return {mid: n for mid, n in self.counts.items() if n > 1 and mid}

    def snapshot(self, channel: str) -> dict[str, Any]:
        """Every message id handed since ``since`` with its hand-over count."""
        return {"channel": channel, "since": self.started, "counts": dict(self.counts)}

    def clear(self) -> None:
        self._order.clear()
        self.counts.clear()
        self.started = time.time()
