"""What the sink received. Messages are kept as bytes and parsed only when read: parsing
on arrival cost ~1.6 ms a message and capped the sink near 300 messages/s."""

from __future__ import annotations

import base64
import re
import time
from collections import deque
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from shared.sink_ledger import HandedLog

_MESSAGE_ID = re.compile(rb"^Message-ID:\s*(\S+)", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class Received:
    id: int
    mail_from: str
    rcpt_to: list[str]
    message_id: str
    data: bytes
    received_at: float

    def as_dict(self, raw: bool = False) -> dict[str, Any]:
        """``raw``: also the bytes as received, base64 (to check a DKIM signature)."""
        parsed = message_from_bytes(self.data, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return {
            "id": self.id, "mail_from": self.mail_from, "rcpt_to": self.rcpt_to,
            "subject": str(parsed.get("Subject", "")), "message_id": self.message_id,
            "text": _part(parsed, "plain"), "html": _part(parsed, "html"),
            "received_at": self.received_at,
            **({"raw": base64.b64encode(self.data).decode()} if raw else {}),
        }


def _part(message: EmailMessage, subtype: str) -> str:
    body = message.get_body(preferencelist=(subtype,))
    return "" if body is None else str(body.get_content())


class Mailbox:
    def __init__(self, capacity: int = 200_000) -> None:
        self._messages: deque[Received] = deque(maxlen=capacity)
        self._next_id = 1
        # The Message-ID's local part is the message id (shared/adapters/mime.py).
        self.handed = HandedLog(capacity)

    def add(self, mail_from: str, rcpt_to: list[str], data: bytes) -> Received:
        headers = data.split(b"\r\n\r\n", 1)[0]
        found = _MESSAGE_ID.search(headers)
        message_id = found.group(1).decode(errors="replace") if found else ""
        received = Received(self._next_id, mail_from, list(rcpt_to), message_id, data,
                            time.time())
        self._next_id += 1
        self._messages.append(received)
        self.handed.add(message_id.strip("<>").split("@", 1)[0])
        return received

    def list(self, to: str | None = None, raw: bool = False) -> list[dict[str, Any]]:
        wanted = to.lower() if to else None
        return [
            m.as_dict(raw) for m in self._messages
            if wanted is None or wanted in (r.lower() for r in m.rcpt_to)
        ]

    def recipients(self, containing: str) -> list[str]:
        """Every recipient address holding ``containing``, once per message, unparsed:
        cheap enough to count thousands of messages in a load test."""
        wanted = containing.lower()
        return [r for m in self._messages for r in m.rcpt_to if wanted in r.lower()]

    def count_after(self, containing: str, after: int) -> tuple[int, int]:
        """How many recipients holding ``containing`` arrived after message ``after``, and
        the last message's id: a poll that reads only what is new (a load test polling
        ``recipients`` scanned all 200,000 kept messages each time, and took the sink's
        CPU from what it measured)."""
        wanted, count, last = containing.lower(), 0, self._next_id - 1
        for message in reversed(self._messages):
            if message.id <= after:
                break
            count += sum(wanted in r.lower() for r in message.rcpt_to)
        return count, last

    def duplicates(self) -> dict[str, int]:
        return self.handed.duplicates()

    def clear(self) -> None:
        self._messages.clear()
        self.handed.clear()
