"""A sender's settling writer that fails is not replaced by the next outcome's: drain
raises its error (the batch is handled again) instead of committing a batch whose
outcomes were dropped, their events left ``processing``."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import pytest

from shared.adapters.delivery_ledger import Outcome
from shared.sending.handlers import _Settler


class Broken(Exception):
    pass


class Connection:
    """Fails the first settle (one statement) with an error that is not an outage."""

    def __init__(self) -> None:
        self.settled: list[Any] = []
        self.calls = 0

    def transaction(self) -> "Connection":
        return self

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *_: object) -> None:
        return None

    async def execute(self, *args: Any) -> None:
        self.calls += 1
        if self.calls == 1:
            raise Broken("cannot switch to state 15; another operation (2) is in progress")
        self.settled.append(args[1])

    async def executemany(self, *_: Any) -> None:
        return None


async def test_a_failed_writer_is_surfaced_by_drain_not_replaced() -> None:
    connection = Connection()

    @asynccontextmanager
    async def db() -> AsyncIterator[Connection]:
        yield connection

    metrics = SimpleNamespace(retries=lambda _what: SimpleNamespace(inc=lambda: None))
    sender = SimpleNamespace(connection=connection, db=db,
                             spec=SimpleNamespace(metrics=metrics, stage="sender-email"))
    settler = _Settler(sender)  # type: ignore[arg-type]
    first = Outcome("00000000-0000-0000-0000-000000000001", True, None, None)  # type: ignore[arg-type]
    second = Outcome("00000000-0000-0000-0000-000000000002", True, None, None)  # type: ignore[arg-type]
    settler.add(first)
    deadline = asyncio.get_running_loop().time() + 5
    while not (settler._writer and settler._writer.done()):  # it gathers, writes, fails
        assert asyncio.get_running_loop().time() < deadline, "the first writer never ended"
        await asyncio.sleep(0.005)
    settler.add(second)
    with pytest.raises(Broken):
        await settler.drain()
