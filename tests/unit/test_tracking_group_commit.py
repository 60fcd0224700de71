"""Tracked messages are stored by group commit: the messages of a delivery batch, which
reach ``tracked`` in one turn of the event loop, go to PostgreSQL in one statement; those
arriving while it runs go in the next; a failed statement fails each of its callers (who
retry it as their own)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from shared.domain.events import Channel
from shared.domain.rendering import RenderedMessage
from shared.domain.routing import SendRequest
from shared.sending import tracking
from shared.sending.tracking import tracked
from shared.settings import Settings

SETTINGS = Settings(tracking_enabled=True, tracking_keys="k1:unit-test-secret-0123456789")
HTML = RenderedMessage(Channel.EMAIL, {"html": '<a href="https://x.example/a">a</a>'}, {})


class Pool:
    """What ``tracked`` uses of an asyncpg pool: one statement a call, recorded."""

    def __init__(self, fail: BaseException | None = None) -> None:
        self.statements: list[list[str]] = []  # the message ids each statement stored
        self.fail = fail

    def is_closing(self) -> bool:
        return False

    def is_closed(self) -> bool:
        return False

    async def execute(self, _query: str, *args: Any) -> str:
        await asyncio.sleep(0.01)  # a round trip, during which others arrive
        if self.fail is not None:
            raise self.fail
        self.statements.append([str(m) for m in args[1]])
        return "INSERT 0 1"


@pytest.fixture(autouse=True)
def _own_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    """The group writes on a connection of its own: here, the fake itself."""
    async def opened(pool: Pool) -> Pool:
        return pool

    monkeypatch.setattr(tracking, "_opener", lambda pool, _settings: lambda: opened(pool))


def a_request() -> SendRequest:
    return SendRequest.model_validate({
        "messageId": str(uuid.uuid4()), "tenant": "acme", "channel": "email",
        "origin": {"kind": "event", "eventId": "EVTx", "pKey": "k"},
        "to": {"email": "a@example.com"}, "ctx": {}, "acceptedAt": 0})


def test_a_batch_is_one_statement_and_latecomers_the_next() -> None:
    pool = Pool()
    batch, late = [a_request() for _ in range(20)], [a_request() for _ in range(3)]

    async def main() -> list[RenderedMessage]:
        first = asyncio.gather(*(tracked(pool, SETTINGS, r, HTML) for r in batch))  # type: ignore[arg-type]
        await asyncio.sleep(0.001)  # the first statement is under way
        second = asyncio.gather(*(tracked(pool, SETTINGS, r, HTML) for r in late))  # type: ignore[arg-type]
        return [*await first, *await second]

    sent = asyncio.run(main())
    assert pool.statements == [[r.messageId for r in batch], [r.messageId for r in late]]
    assert all("/c/" in m.parts["html"] and "/o/" in m.parts["html"] for m in sent)


def test_a_failed_statement_fails_each_caller() -> None:
    pool = Pool(fail=ConnectionResetError("the connection broke"))

    async def main() -> list[Any]:
        return await asyncio.gather(
            *(tracked(pool, SETTINGS, a_request(), HTML) for _ in range(5)),  # type: ignore[arg-type]
            return_exceptions=True)

    errors = asyncio.run(main())
    assert len(errors) == 5 and all(isinstance(e, ConnectionResetError) for e in errors)


def test_a_caller_after_a_failure_is_stored() -> None:
    pool = Pool(fail=OSError("away"))

    async def main() -> None:
        with pytest.raises(OSError):
            await tracked(pool, SETTINGS, a_request(), HTML)  # type: ignore[arg-type]
        pool.fail = None
        await tracked(pool, SETTINGS, a_request(), HTML)  # type: ignore[arg-type]

    asyncio.run(main())
    assert len(pool.statements) == 1
