"""What the garbage collector walks and how often: a service's start-up is frozen once
(no full collection walks it again), the young are collected every 10,000 allocations,
and the tracking service's cache of messages holds nothing the collector tracks
(100,000 message objects made every full collection walk them)."""

from __future__ import annotations

import asyncio
import gc
from datetime import UTC, datetime
from typing import Any

from services.tracking.wiring import Tracking, _kept, _unkept
from shared import heap
from shared.adapters.tracking_store import TrackedMessage
from shared.domain.tracking_links import parse_keyring
from shared.settings import Settings

MESSAGE = TrackedMessage("acme", "6f1c2b1e-8a51-4d0f-9a43-0f5b1d7c2e10", "email", "p-1", None,
                         {"kind": "event", "eventId": "EVTorder", "pKey": "k"},
                         ("https://shop.example/a", "https://shop.example/b"),
                         datetime(2026, 12, 5, 6, 0, tzinfo=UTC))


def test_settling_freezes_the_start_up_and_collects_the_young_less_often() -> None:
    before, thresholds = gc.get_freeze_count(), gc.get_threshold()
    try:
        heap.settle()
        assert gc.get_freeze_count() > before
        assert gc.get_count()[0] < 10  # collected just before: nothing young left over
        assert gc.get_threshold() == (heap.YOUNG_THRESHOLD, *thresholds[1:])
    finally:
        gc.unfreeze()  # the test process's own objects go back to the collector
        gc.set_threshold(*thresholds)


def test_a_kept_message_is_the_same_message_and_untracked() -> None:
    kept = _kept(1.0, MESSAGE)
    gc.collect()
    assert not gc.is_tracked(kept)
    assert _unkept(kept) == MESSAGE
    assert _unkept(kept).origin is not _unkept(kept).origin  # each caller its own dict


def test_the_tracking_cache_answers_a_second_lookup_without_the_database() -> None:
    asked: list[tuple[str, str]] = []

    async def find(key: tuple[str, str]) -> TrackedMessage | None:
        asked.append(key)
        return MESSAGE if key[1] == MESSAGE.message_id else None

    tracking = Tracking(Settings(), parse_keyring("k1:unit-test-secret-0123456789"),
                        pool=None, record=None, find=find)  # type: ignore[arg-type]

    async def twice(message_id: str) -> list[Any]:
        return [await tracking.lookup("acme", message_id) for _ in range(2)]

    assert asyncio.run(twice(MESSAGE.message_id)) == [MESSAGE, MESSAGE]
    assert asyncio.run(twice("unknown")) == [None, None]  # not remembered: may be on its way
    assert asked == [("acme", MESSAGE.message_id), ("acme", "unknown"), ("acme", "unknown")]
    gc.collect()
    assert not any(gc.is_tracked(entry) for entry in tracking._messages.values())
