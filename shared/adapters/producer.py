"""An idempotent producer that replaces itself when the broker stops taking its writes.

aiokafka's idempotent producer numbers each partition's batches. A batch it gives up on
(expired while the broker was away, or failed by an error) leaves a gap in those
numbers, and the broker refuses every later batch with ``OutOfOrderSequenceNumber``,
forever: the producer never recovers by itself (aio-libs/aiokafka issue 1017). The Java
client resets its producer id or bumps its epoch in that case (KAFKA-12152); aiokafka
has neither, so we do the equivalent: on the first failed delivery of a generation,
the producer is retired and a new one (a new producer id, sequences from zero) takes
over. Every caller already treats a failed delivery as "not written": the processor
and the senders write again (their outputs are idempotent by message id), the gateway
answers 503 and voids the event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from murmurhash2 import murmurhash2
from prometheus_client import Counter

from shared.adapters.kafka import client_security, safe_producer
from shared.settings import Settings

log = logging.getLogger(__name__)
RENEWALS = Counter("parcours_kafka_producer_renewals_total",
                   "Kafka producers replaced after a failed delivery (e.g. a broker restart)",
                   ["service"])


# topic, value, key, and optionally headers
Record = tuple[str, bytes, bytes | None] | tuple[str, bytes, bytes | None, list[tuple[str, bytes]]]


class ProducerRetired(KafkaError):
    """The delivery was abandoned with the producer that held it; it was not written."""


class ProducerUnavailable(KafkaConnectionError):
    """No producer is connected right now (the broker is away or one is being renewed)."""


# send() raises these before the record is in a batch: nothing was numbered, no gap.
_NO_GAP = (KafkaTimeoutError, ProducerUnavailable)
# Bounds on the steps of closing a producer, within the services' 10 s to stop.
_FLUSH_ON_STOP_S = 3.0
_RETIRE_TIMEOUT_S = 2.0
_MAX_BACKOFF_S = 1.0  # the gateway must accept again within 10 s of the broker's return


class RenewingProducer:
    """Writes records on whichever producer is current. Failures are seen where the
    caller awaits its deliveries (no callback per record: they cost ~3 µs each)."""

    def __init__(self, settings: Settings, name: str, max_batch_size: int | None = None) -> None:
        """``max_batch_size``: bytes a partition's batch may hold (aiokafka's default, 16 kB,
        when None). With linger 0 a batch still goes as soon as the sender is free, so a
        larger one costs a single record nothing; it lets one request carry a whole batch
        call's records instead of 16 kB a partition per round trip."""
        self._bootstrap = settings.kafka_bootstrap
        self._request_timeout_ms = settings.kafka_request_timeout_ms
        self._options: dict[str, Any] = client_security(settings)
        if max_batch_size is not None:
            self._options["max_batch_size"] = max_batch_size
        self._name = name
        self._current: AIOKafkaProducer | None = None
        self._generation = 0
        self._ready = asyncio.Event()
        self._closed = False
        self._work: set[asyncio.Task[None]] = set()
        self.renewals = 0  # how many times a producer was replaced (tests, metrics)

    @property
    def ready(self) -> bool:
        return self._current is not None

    async def start(self) -> None:
        """Connect now; raises while the broker cannot be reached (the caller retries)."""
        producer = self._new()
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
        self._install(producer)

    def start_in_background(self) -> None:
        """Connect as soon as the broker answers, meanwhile ``ready`` is False."""
        self._spawn(self._connect())

    async def deliver(self, topic: str, value: bytes, key: bytes | None = None,
                      headers: list[tuple[str, bytes]] | None = None) -> None:
        """Write one record; returns once the broker acknowledged it, raises KafkaError
        if it was not written. While a producer is being renewed, waits for the new one
        up to the request timeout."""
        producer = self._current or await self._wait_current()
        generation = self._generation
        try:
            delivery = await producer.send(topic, value, key, headers=headers)
            await delivery
        except KafkaError as error:
            self._failed(generation, error)
            raise

    async def deliver_all(self, records: Sequence[Record]) -> None:
        """Write (topic, value, key[, headers]) records together (the producer batches
        them) and wait for all; raises the first KafkaError if any was not written."""
        if not records:  # nothing to write needs no producer, even while there is none
            return
        producer = self._current or await self._wait_current()
        generation = self._generation
        try:
            deliveries = [await producer.send(r[0], r[1], r[2],
                                              headers=r[3] if len(r) > 3 else None)  # type: ignore[misc]
                          for r in records]
        except KafkaError as error:
            self._failed(generation, error)
            raise
        # Every outcome is collected, so no failed delivery is left unread.
        outcomes = await asyncio.gather(*deliveries, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, KafkaError):
                self._failed(generation, outcome)
                raise outcome
            if isinstance(outcome, BaseException):
                raise outcome

    async def deliver_each(self, records: Sequence[Record], bound_s: float) -> list[bool]:
        """Write (topic, value, key[, headers]) records together and say, record by record,
        whether the broker acknowledged it within ``bound_s`` (for all of them): a batch
        route answers item by item. One deadline and no task per record: a timeout and a
        task each cost the gateway's batch route about 72 µs of CPU a record, this 20."""
        acknowledged = [False] * len(records)
        producer = self._current
        if producer is None or not records:
            return acknowledged
        generation = self._generation
        deliveries: list[asyncio.Future[Any]] = []
        try:
            async with asyncio.timeout(bound_s):
                for r in records:
                    deliveries.append(await producer.send(
                        r[0], r[1], r[2], headers=r[3] if len(r) > 3 else None))  # type: ignore[misc]
                await asyncio.wait(deliveries)
        except TimeoutError:
            pass  # what is not acknowledged by now is refused (the caller voids it)
        except KafkaError as error:  # the producer refused to take one: the rest too
            self._failed(generation, error)
        for i, delivery in enumerate(deliveries):
            if not delivery.done():  # a late outcome must still be read, not left to warn
                delivery.add_done_callback(_read_outcome)
                continue
            error = None if delivery.cancelled() else delivery.exception()
            if error is None and not delivery.cancelled():
                acknowledged[i] = True
            elif isinstance(error, KafkaError):
                self._failed(generation, error)
        return acknowledged

    async def deliver_batched(self, records: Sequence[Record], bound_s: float) -> list[bool]:
        """``deliver_each``'s answer (record by record, acknowledged within ``bound_s``), with
        the records put into the producer's batches here rather than one ``send`` each:
        a batch per partition (partitioned as ``send`` would: the producer's partitioner
        on the key), each handed over with ``send_batch``. A batch is written or refused
        whole, so its records share its outcome. About 5 µs of the gateway's CPU a record
        instead of 20 (no coroutine, future and metadata check per record). A record
        larger than a request may carry is refused alone (``send`` raises for it)."""
        acknowledged = [False] * len(records)
        producer = self._current
        if producer is None or not records:
            return acknowledged
        generation = self._generation
        submitted: list[tuple[asyncio.Future[Any], list[int]]] = []
        try:
            async with asyncio.timeout(bound_s):
                await self._submit_batches(producer, records, submitted)
                if submitted:
                    await asyncio.wait([delivery for delivery, _ in submitted])
        except TimeoutError:
            pass  # what is not acknowledged by now is refused (the caller voids it)
        except KafkaError as error:  # the producer refused a batch: the rest too
            self._failed(generation, error)
        for delivery, indexes in submitted:
            if not delivery.done():  # a late outcome must still be read, not left to warn
                delivery.add_done_callback(_read_outcome)
                continue
            error = None if delivery.cancelled() else delivery.exception()
            if error is None and not delivery.cancelled():
                for i in indexes:
                    acknowledged[i] = True
            elif isinstance(error, KafkaError):
                self._failed(generation, error)
        return acknowledged

    @staticmethod
    async def _submit_batches(producer: AIOKafkaProducer, records: Sequence[Record],
                              submitted: list[tuple[asyncio.Future[Any], list[int]]]) -> None:
        """Fills a batch per (topic, partition) in the records' order and hands each over
        once full and at the end; ``submitted`` gets the future of each batch handed over,
        with its records' indexes. A caller cancelled meanwhile (its deadline) leaves the
        batches not yet handed over unsent."""
        partitions: dict[str, tuple[list[int], list[int]]] = {}
        for topic in {r[0] for r in records}:
            await producer.client._wait_on_metadata(topic)
            metadata = producer.client.cluster
            partitions[topic] = (list(metadata.partitions_for_topic(topic)),
                                 list(metadata.available_partitions_for_topic(topic)))
        partitioner = producer._partitioner
        if type(partitioner) is DefaultPartitioner or partitioner is DefaultPartitioner:
            partitioner = default_partition  # the same partitions, a third of the CPU
        largest = producer._max_request_size
        estimate = DefaultRecordBatchBuilder.estimate_size_in_bytes
        open_batches: dict[tuple[str, int], tuple[Any, list[int]]] = {}
        # A key's partition once a call (the step relay's keys come three times a batch:
        # murmur2 was a tenth of the engine's CPU while profiles entered by the thousand)
        known: dict[tuple[str, bytes], int] = {}
        for i, r in enumerate(records):
            topic, value, key = r[0], r[1], r[2]
            headers = r[3] if len(r) > 3 else []  # type: ignore[misc]
            if estimate(key, value, headers) > largest:
                continue  # never written: refused, as send() would raise
            every, available = partitions[topic]
            if key is None:
                partition = partitioner(key, every, available)
            else:
                partition = known.get((topic, key), -1)
                if partition < 0:
                    partition = known[(topic, key)] = partitioner(key, every, available)
            batch = open_batches.get((topic, partition))
            if batch is None:
                batch = open_batches[(topic, partition)] = (producer.create_batch(), [])
            if batch[0].append(timestamp=None, key=key, value=value, headers=headers) is None:
                batch[0].close()  # full: hand it over, begin the next
                submitted.append((await producer.send_batch(batch[0], topic,
                                                            partition=partition), batch[1]))
                batch = open_batches[(topic, partition)] = (producer.create_batch(), [])
                batch[0].append(timestamp=None, key=key, value=value, headers=headers)
            batch[1].append(i)
        for (topic, partition), (builder, indexes) in open_batches.items():
            if indexes:
                builder.close()
                submitted.append((await producer.send_batch(builder, topic,
                                                            partition=partition), indexes))

    async def partitions(self, topic: str) -> int:
        """How many partitions ``topic`` has (the producer's metadata, fetched if need be):
        for a caller that groups records by the partition their keys go to."""
        producer = self._current or await self._wait_current()
        await producer.client._wait_on_metadata(topic)
        return len(producer.client.cluster.partitions_for_topic(topic))

    async def stop(self) -> None:
        """Flush what is queued, for a bounded time (a broker that is away would make it
        forever), then close: what could not be written fails, and its callers know."""
        self._closed = True
        for task in list(self._work):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        producer, self._current = self._current, None
        if producer is None:
            return
        with contextlib.suppress(TimeoutError, KafkaError):
            async with asyncio.timeout(_FLUSH_ON_STOP_S):
                await producer.flush()
        await _abandon(producer, ProducerRetired("the producer was stopped"))

    # --- renewal --------------------------------------------------------------------

    def _new(self) -> AIOKafkaProducer:
        return safe_producer(self._bootstrap, self._request_timeout_ms, **self._options)

    def _install(self, producer: AIOKafkaProducer) -> None:
        self._current = producer
        self._ready.set()

    async def _wait_current(self) -> AIOKafkaProducer:
        try:
            async with asyncio.timeout(self._request_timeout_ms / 1000):
                while self._current is None:
                    await self._ready.wait()
        except TimeoutError:
            raise ProducerUnavailable(f"{self._name}: no Kafka producer is connected") from None
        return self._current

    def _failed(self, generation: int, error: KafkaError) -> None:
        if not isinstance(error, _NO_GAP):
            self._retire(generation, error)

    def _retire(self, generation: int, error: BaseException) -> None:
        """Once per generation: later failures of the same producer are the same event."""
        if generation != self._generation or self._closed:
            return
        self._generation += 1
        old, self._current = self._current, None
        self._ready.clear()
        self.renewals += 1
        RENEWALS.labels(self._name).inc()
        log.warning("%s: Kafka producer failed (%s: %s); replacing it with a new one",
                    self._name, type(error).__name__, error)
        self._spawn(self._replace(old))

    async def _replace(self, old: AIOKafkaProducer | None) -> None:
        if old is not None:
            await _abandon(old, ProducerRetired("abandoned with a failed Kafka producer"))
        await self._connect()

    async def _connect(self) -> None:
        delay = 0.1
        while not self._closed:
            producer = self._new()
            try:
                await producer.start()
            except (KafkaError, OSError) as error:
                await producer.stop()
                log.warning("%s: Kafka not reachable (%s); retrying in %.1fs", self._name,
                            error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _MAX_BACKOFF_S)
                continue
            self._install(producer)
            log.info("%s: Kafka producer connected", self._name)
            return

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._work.add(task)
        task.add_done_callback(self._work.discard)


_SEED = 0x9747B28C  # Kafka's


def murmur2(data: bytes) -> int:
    """aiokafka's (and the Java client's) murmur2: the same hash
    (tests/unit/test_gateway_partitions.py), compiled — 0.27 µs a profile id against
    2.55 for the words-at-once Python version before it (the step relay hashes every
    member of a cohort)."""
    return int(murmurhash2(data, _SEED))


def key_partition(key: bytes, partitions: int) -> int:
    """The partition a key goes to among ``partitions``: murmur2, as the Java client."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def default_partition(key: bytes | None, every: list[int], available: list[int]) -> int:
    """aiokafka's ``DefaultPartitioner``: a key's partition by murmur2, as the Java client."""
    if key is None:
        return int(DefaultPartitioner()(key, every, available))
    return every[key_partition(key, len(every))]


async def _abandon(producer: AIOKafkaProducer, error: KafkaError) -> None:
    """Close a producer without waiting for the broker. Requests already on the wire
    finish first (their answers settle their batches: written or not, never unknown);
    then every batch still queued fails, so its callers know it was not written and no
    later retry of it can land behind a newer producer's writes. aiokafka has no public
    way to do this: its sender and accumulator are reached directly (pinned 0.14.0;
    tests/unit/test_producer.py fails if they move)."""
    sender = producer._sender
    try:
        async with asyncio.timeout(_RETIRE_TIMEOUT_S):
            await sender.close()
    except (TimeoutError, KafkaError) as failure:
        log.warning("retiring a Kafka producer: %s", failure)
    producer._message_accumulator.fail_all(error)
    try:
        async with asyncio.timeout(_RETIRE_TIMEOUT_S):
            await producer.stop()
    except (TimeoutError, KafkaError) as failure:
        log.warning("closing a retired Kafka producer: %s", failure)


def _read_outcome(delivery: asyncio.Future[Any]) -> None:
    if not delivery.cancelled():
        delivery.exception()
