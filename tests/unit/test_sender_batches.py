"""The senders' batch loop with stand-ins for the ledger, the provider and Kafka: a record
no sender can read is dead-lettered once, even when another record of its batch fails the
batch and every record is handled again on its own (handle_isolating_poison)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest

from services.sender_email.app import SPEC
from shared.adapters.delivery_ledger import Outcome
from shared.batches import handle_isolating_poison
from shared.domain.routing import EventOrigin, SendRequest
from shared.domain.status import Status, StatusWrite
from shared.sending import handlers
from shared.sending.handlers import Letter, Record, deliver_batch


class Sender:
    """What deliver_batch reaches; the ledger and the hand-over are replaced below."""

    spec = SPEC
    connection = None

    def __init__(self) -> None:
        self.in_flight: set[str] = set()

    async def ensure_db(self) -> None:
        return None

    @asynccontextmanager
    async def db(self) -> AsyncIterator[None]:
        yield None


def send_record(item: str) -> bytes:
    pkey = uuid.uuid4().hex
    return SendRequest(messageId=str(uuid.uuid4()), tenant="default",
                       origin=EventOrigin(eventId="EVTbatch", pKey=pkey),
                       channel="email", to={"email": "a@example.com"},
                       ctx={"item": item}, acceptedAt=time.time()).model_dump_json().encode()


async def test_an_unreadable_record_is_dead_lettered_once_when_another_fails_the_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    letters: list[Letter] = []

    async def dead_letter(_sender: Any, batch: Sequence[Letter]) -> None:
        letters.extend(batch)

    async def claim(_connection: Any, _channel: str, claimable: list[Any]) -> set[str]:
        return {c.message_id for c in claimable}

    async def send(_sender: Any, request: SendRequest, marks: object = None) -> Outcome:
        if request.ctx["item"] == "boom":
            raise RuntimeError("an unexpected failure")
        return Outcome(request.messageId, True, None, StatusWrite(
            request.origin.pKey, request.tenant, request.origin.eventId, Status.PROCESSED))

    async def settle(_connection: Any, _outcomes: list[Outcome]) -> None:
        return None

    monkeypatch.setattr(handlers, "dead_letter", dead_letter)
    monkeypatch.setattr(handlers.delivery_ledger, "claim", claim)
    monkeypatch.setattr(handlers.delivery_ledger, "settle", settle)
    monkeypatch.setattr(handlers, "_send", send)
    unreadable: Record = (b"k", b"{not json")
    records: list[Record] = [(b"k", send_record("fine")), unreadable, (b"k", send_record("boom"))]
    sender = Sender()

    async def deliver(batch: Sequence[Record]) -> None:
        await deliver_batch(sender, batch)  # type: ignore[arg-type]

    async def poison(record: Record, reason: str) -> None:
        await dead_letter(sender, [(record[0], record[1], reason)])

    await handle_isolating_poison(records, deliver, poison)

    assert [(key, raw) for key, raw, _ in letters] == [unreadable, records[2]]
    assert letters[0][2].startswith("invalid")
    assert letters[1][2] == "error: RuntimeError: an unexpected failure"
