"""RenewingProducer's rules, with stand-in producers: one renewal per failed producer,
none for a caller that stopped waiting or for a send refused before it was numbered, and
sends wait for the new producer. The broker restart itself is tested on the real stack
(tests/integration/test_zz_broker_restart.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaTimeoutError, OutOfOrderSequenceNumber

from shared.adapters import producer as module
from shared.adapters.producer import ProducerRetired, ProducerUnavailable, RenewingProducer
from shared.settings import Settings


class Accumulator:
    def __init__(self) -> None:
        self.failed_with: BaseException | None = None

    def fail_all(self, error: BaseException) -> None:
        self.failed_with = error


class Sender:
    async def close(self) -> None:
        pass


class Fake:
    """The few parts of AIOKafkaProducer that RenewingProducer uses."""

    def __init__(self, starts: bool = True) -> None:
        self.starts = starts
        self.deliveries: list[asyncio.Future[Any]] = []
        self.refuse: Exception | None = None
        self.stopped = False
        self._sender = Sender()
        self._message_accumulator = Accumulator()

    async def start(self) -> None:
        if not self.starts:
            raise OSError("connection refused")

    async def send(self, topic: str, value: bytes, key: bytes | None = None,
                   headers: Any = None) -> asyncio.Future[Any]:
        if self.refuse is not None:
            raise self.refuse
        delivery: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.deliveries.append(delivery)
        return delivery

    async def flush(self) -> None:
        pass

    async def stop(self) -> None:
        self.stopped = True


class Factory:
    """Every producer the RenewingProducer builds (``made``), in order; ``queued`` ones
    are handed out first (e.g. producers that fail to start: the broker is away)."""

    def __init__(self) -> None:
        self.made: list[Fake] = []
        self.queued: list[Fake] = []

    def __call__(self, *_renewing: RenewingProducer) -> Fake:
        fake = self.queued.pop(0) if self.queued else Fake()
        self.made.append(fake)
        return fake


@pytest.fixture
def factory(monkeypatch: pytest.MonkeyPatch) -> Factory:
    factory = Factory()
    monkeypatch.setattr(RenewingProducer, "_new", factory)
    monkeypatch.setattr(module, "_MAX_BACKOFF_S", 0.01)
    return factory


def _settings(request_timeout_ms: int) -> Settings:
    return Settings(kafka_bootstrap="unused:9092", kafka_request_timeout_ms=request_timeout_ms)


async def _until(condition: Any) -> None:
    """Polls with a deadline: the renewal runs in the producer's own task."""
    async with asyncio.timeout(2):
        while not condition():  # noqa: ASYNC110 (a condition over several objects)
            await asyncio.sleep(0.001)


async def _failing(renewing: RenewingProducer, factory: Factory, n: int) -> list[Any]:
    """n deliveries on the current producer, each failed by the broker."""
    waiting = [asyncio.create_task(renewing.deliver("t", b"v")) for _ in range(n)]
    await _until(lambda: len(factory.made[-1].deliveries) >= n)
    for delivery in factory.made[-1].deliveries[-n:]:
        delivery.set_exception(OutOfOrderSequenceNumber())
    return await asyncio.gather(*waiting, return_exceptions=True)


async def test_a_failed_delivery_renews_the_producer_once(factory: Factory) -> None:
    renewing = RenewingProducer(_settings(1000), "test")
    await renewing.start()
    outcomes = await _failing(renewing, factory, 3)  # the same broken producer, 3 times
    assert all(isinstance(o, OutOfOrderSequenceNumber) for o in outcomes)
    await _until(lambda: renewing.ready and len(factory.made) == 2)
    assert renewing.renewals == 1
    assert factory.made[0].stopped
    assert isinstance(factory.made[0]._message_accumulator.failed_with, ProducerRetired)
    later = asyncio.create_task(renewing.deliver("t", b"v"))
    await _until(lambda: factory.made[1].deliveries)
    factory.made[1].deliveries[0].set_result(None)
    await later
    await renewing.stop()


async def test_deliver_all_renews_on_any_failure_and_reads_every_outcome(
    factory: Factory
) -> None:
    renewing = RenewingProducer(_settings(1000), "test")
    await renewing.start()
    writing = asyncio.create_task(renewing.deliver_all([("t", b"v", None)] * 3))
    await _until(lambda: len(factory.made[0].deliveries) == 3)
    first, second, third = factory.made[0].deliveries
    first.set_result(None)
    second.set_exception(OutOfOrderSequenceNumber())
    third.set_exception(OutOfOrderSequenceNumber())
    with pytest.raises(OutOfOrderSequenceNumber):
        await writing
    await _until(lambda: renewing.ready and len(factory.made) == 2)
    assert renewing.renewals == 1
    await renewing.stop()


async def test_no_renewal_when_the_caller_stops_waiting_or_nothing_was_numbered(
    factory: Factory
) -> None:
    renewing = RenewingProducer(_settings(1000), "test")
    await renewing.start()
    with pytest.raises(TimeoutError):  # the gateway's own deadline
        async with asyncio.timeout(0.01):
            await renewing.deliver("t", b"v")
    factory.made[0].refuse = KafkaTimeoutError()  # no metadata in time: refused before a batch
    with pytest.raises(KafkaTimeoutError):
        await renewing.deliver("t", b"v")
    await asyncio.sleep(0)
    assert renewing.renewals == 0 and renewing.ready and len(factory.made) == 1
    await renewing.stop()


async def test_deliveries_wait_for_the_new_producer_while_the_broker_is_away(
    factory: Factory
) -> None:
    renewing = RenewingProducer(_settings(2000), "test")
    await renewing.start()
    factory.queued.extend([Fake(starts=False), Fake(starts=False)])
    await _failing(renewing, factory, 1)
    assert not renewing.ready
    waiting = asyncio.create_task(renewing.deliver("t", b"v"))
    await _until(lambda: len(factory.made) == 4 and factory.made[3].deliveries)
    factory.made[3].deliveries[0].set_result(None)  # written by the fourth producer
    await waiting
    await renewing.stop()


async def test_nothing_to_write_needs_no_producer(factory: Factory) -> None:
    renewing = RenewingProducer(_settings(50), "test")  # never started: no producer at all
    await renewing.deliver_all([])
    assert factory.made == []


async def test_a_delivery_gives_up_after_the_request_timeout_when_no_producer_comes(
    factory: Factory
) -> None:
    renewing = RenewingProducer(_settings(50), "test")
    await renewing.start()
    factory.queued.extend([Fake(starts=False)] * 1000)
    await _failing(renewing, factory, 1)
    with pytest.raises(ProducerUnavailable):
        await renewing.deliver("t", b"v")
    await renewing.stop()


async def test_the_aiokafka_internals_a_retirement_reaches_are_there() -> None:
    """aiokafka has no public way to fail a producer's queued batches; we use two of its
    attributes (pinned 0.14.0). An upgrade that moves them fails here, not in production."""
    real = AIOKafkaProducer(bootstrap_servers="127.0.0.1:1")
    assert callable(real._sender.close)
    assert callable(real._message_accumulator.fail_all)
