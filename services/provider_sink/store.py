"""What the sink received, the answers it gave per idempotency key, and injected failures."""

from __future__ import annotations

import itertools
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any

from shared.bounded import BoundedDict
from shared.sink_ledger import HandedLog


@dataclass(frozen=True)
class Received:
    id: str
    channel: str
    to: str
    payload: dict[str, Any]
    received_at: float

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "channel": self.channel, "to": self.to,
                "messageId": self.payload["messageId"], "payload": self.payload,
                "receivedAt": self.received_at}


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    payload: dict[str, Any]  # what the key was first used for


class Inbox:
    def __init__(self, capacity: int = 200_000) -> None:
        self._capacity = capacity
        self._messages: deque[Received] = deque(maxlen=capacity)
        self._answers: OrderedDict[str, Answer] = OrderedDict()
        self._ids = itertools.count(1)
        self.handed = HandedLog(capacity)

    def add(self, channel: str, to: str, payload: dict[str, Any]) -> Received:
        received = Received(f"{channel}-{next(self._ids):08d}", channel, to, payload,
                            time.time())
        self._messages.append(received)
        self.handed.add(payload["messageId"])
        return received

    def answer_for(self, key: str) -> Answer | None:
        return self._answers.get(key)

    def remember(self, key: str, answer: Answer) -> None:
        self._answers[key] = answer
        if len(self._answers) > self._capacity:
            self._answers.popitem(last=False)

    def list(self, channel: str | None = None, to: str | None = None) -> list[dict[str, Any]]:
        return [m.as_dict() for m in self._messages
                if (channel is None or m.channel == channel) and (to is None or m.to == to)]

    def duplicates(self) -> dict[str, int]:
        return self.handed.duplicates()

    def clear(self) -> None:
        self._messages.clear()
        self._answers.clear()
        self.handed.clear()


@dataclass
class Fault:
    """The next ``count`` requests it matches get ``status``."""

    status: int
    count: int
    error: str | None = None  # in the answer's body
    retry_after: str | None = None  # the answer's Retry-After header (a 429's, say)


class Faults:
    """Failure injection for tests, one armed fault per (channel, recipient) — ``None``
    for any — so a test can arm two recipients' refusals at once; arming one again
    replaces it (a count of 0 disarms it). A request takes the most specific fault that
    matches it. Bounded: the oldest armed go first."""

    MAX_ARMED = 1024

    def __init__(self) -> None:
        self._armed: BoundedDict[tuple[str | None, str | None], Fault] = \
            BoundedDict(self.MAX_ARMED)

    def arm(self, channel: str | None, to: str | None, fault: Fault) -> None:
        self._armed.pop((channel, to), None)
        if fault.count > 0:
            self._armed[(channel, to)] = fault

    def take(self, channel: str, to: str) -> Fault | None:
        for key in ((channel, to), (None, to), (channel, None), (None, None)):
            fault = self._armed.get(key)
            if fault is not None:
                fault.count -= 1
                if fault.count <= 0:
                    del self._armed[key]
                return fault
        return None
