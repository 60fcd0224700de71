"""What the sink received, parsed once on arrival."""

from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import asdict, dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any


@dataclass(frozen=True)
class Received:
    id: int
    mail_from: str
    rcpt_to: list[str]
    subject: str
    message_id: str
    text: str
    html: str
    received_at: float


def _part(message: EmailMessage, subtype: str) -> str:
    body = message.get_body(preferencelist=(subtype,))
    return "" if body is None else str(body.get_content())


class Mailbox:
    def __init__(self, capacity: int = 200_000) -> None:
        self._messages: deque[Received] = deque(maxlen=capacity)
        self._next_id = 1
        self.message_ids: Counter[str] = Counter()

    def add(self, mail_from: str, rcpt_to: list[str], data: bytes) -> Received:
        parsed = message_from_bytes(data, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        received = Received(
            id=self._next_id, mail_from=mail_from, rcpt_to=list(rcpt_to),
            subject=str(parsed.get("Subject", "")), message_id=str(parsed.get("Message-ID", "")),
            text=_part(parsed, "plain"), html=_part(parsed, "html"), received_at=time.time(),
        )
        self._next_id += 1
        self._messages.append(received)
        self.message_ids[received.message_id] += 1
        return received

    def list(self, to: str | None = None) -> list[dict[str, Any]]:
        wanted = to.lower() if to else None
        return [
            asdict(m) for m in self._messages
            if wanted is None or wanted in (r.lower() for r in m.rcpt_to)
        ]

    def duplicates(self) -> dict[str, int]:
        return {mid: n for mid, n in self.message_ids.items() if n > 1}

    def clear(self) -> None:
        self._messages.clear()
        self.message_ids.clear()
