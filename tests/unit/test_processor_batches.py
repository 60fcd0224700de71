"""The processor's batch loop with stand-ins for PostgreSQL and Kafka: a record no stage can
read is dead-lettered once, even when another record of its batch fails the batch and
every record is handled again on its own (handle_isolating_poison)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any

import orjson
import pytest

from services.processor import handlers
from services.processor.handlers import Letter, Record, handle_batch
from shared.batches import handle_isolating_poison
from shared.settings import get_settings
from shared.topics import EVENTS_IN


class Processor:
    """What handle_batch reaches before routing; routing itself is replaced below."""

    settings = get_settings()
    connection = None

    async def ensure_db(self) -> None:
        return None


def trigger(item: str) -> bytes:
    return orjson.dumps({
        "pKey": uuid.uuid4().hex, "tenant": "default", "eventId": "EVTbatch",
        "target": {"email": "a@example.com"}, "ctx": {"item": item},
        "acceptedAt": time.time()})


async def test_an_unreadable_record_is_dead_lettered_once_when_another_fails_the_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    letters: list[Letter] = []

    async def dead_letter(_processor: Any, batch: Sequence[Letter]) -> None:
        letters.extend(batch)

    async def route(_processor: Any, triggers: list[Any]) -> list[Any]:
        if any(t.ctx["item"] == "boom" for t in triggers):
            raise RuntimeError("an unexpected failure")
        return []

    async def nothing(*_args: Any) -> None:
        return None

    monkeypatch.setattr(handlers, "dead_letter", dead_letter)
    monkeypatch.setattr(handlers, "_route", route)
    monkeypatch.setattr(handlers, "record_first_statuses", nothing)
    unreadable = Record(EVENTS_IN.name, b"k", b"{not json", time.time())
    records = [Record(EVENTS_IN.name, b"k", trigger("fine"), time.time()), unreadable,
               Record(EVENTS_IN.name, b"k", trigger("boom"), time.time())]
    processor = Processor()

    async def handle(batch: Sequence[Record]) -> None:
        await handle_batch(processor, batch)  # type: ignore[arg-type]

    async def poison(record: Record, reason: str) -> None:
        await dead_letter(processor, [(record, reason)])

    await handle_isolating_poison(records, handle, poison)

    assert [record for record, _ in letters] == [unreadable, records[2]]
    assert letters[0][1].startswith("invalid")
    assert letters[1][1] == "error: RuntimeError: an unexpected failure"
