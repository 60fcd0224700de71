"""The consume loop: a batch is committed only after each of its messages settled.

The same loop serves a tx lane and a bulk lane (``shared.sending.priority``), each run
as its own process with its own consumer group, connections and provider pool.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass

from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from shared import heap
from shared.adapters.postgres import DB_UNAVAILABLE
from shared.adapters.rebalance import OffsetCommits, still_assigned
from shared.batches import handle_isolating_poison
from shared.domain import timeline
from shared.resilience import retry_forever
from shared.sending.handlers import Record, dead_letter, deliver_batch
from shared.sending.priority import Lane
from shared.sending.retries import run_retries
from shared.sending.spec import SenderSpec
from shared.sending.wiring import Sender
from shared.settings import Settings
from shared.shutdown import exit_within

log = logging.getLogger(__name__)
# Settled batches' offsets are committed this often, and whenever the topic goes quiet.
COMMIT_EVERY_S = 0.5


async def run(spec: SenderSpec, settings: Settings, stop: asyncio.Event, lane: Lane) -> None:
    sender = await retry_forever(lambda: Sender.open(spec, settings, lane.batch),
                                 f"opening {spec.stage}", (*DB_UNAVAILABLE, KafkaError))
    log.info("%s consuming %s", spec.stage, spec.topic.name)

    async def deliver(records: Sequence[Record]) -> None:
        await deliver_batch(sender, records)

    async def poison(record: Record, reason: str) -> None:
        await dead_letter(sender, [(record[0], record[1], reason)])

    # Messages refused for now wait off the partition, in the retry schedule: this lane's
    # worker sends them again when due, beside the consume loop.
    retrying = asyncio.create_task(run_retries(sender, stop))
    # Two batches under way: while one waits on the provider, the next is claimed and
    # rendered (one alone left the provider idle while it rendered, and the CPU idle
    # while it sent). A batch's offsets count as handled once it is settled, in order, and
    # are committed in the background (rebalance.OffsetCommits): a commit awaited per
    # batch was a broker round trip per batch on the loop's path.
    under_way: deque[_Batch] = deque()
    commits = OffsetCommits(sender.consumer, COMMIT_EVERY_S)
    settling = asyncio.Lock()  # the loop and a rebalance (rebalance.py) both finish batches

    async def finish_oldest() -> None:
        async with settling:
            if under_way:
                await under_way[0].task
                commits.handled(under_way.popleft().offsets)

    async def settle() -> None:
        while under_way:
            await finish_oldest()
        await commits.flush()

    sender.drain.settle_with(settle)
    try:
        while not stop.is_set():
            await lane.turn(stop)
            batches = still_assigned(sender.consumer, await sender.consumer.getmany(
                timeout_ms=200, max_records=lane.batch))
            if batches:
                under_way.append(_Batch.start(batches, deliver, poison))
                lane.took(under_way[-1].size)
            if len(under_way) == 2 or (under_way and not batches):
                await finish_oldest()
            await commits.tick(quiet=not batches)
        await settle()
    finally:
        for batch in under_way:  # left by an error: not to run on without the sender
            batch.task.cancel()
        retrying.cancel()
        with suppress(asyncio.CancelledError):
            await retrying
        await sender.close()


@dataclass
class _Batch:
    task: asyncio.Task[None]
    offsets: dict[TopicPartition, int]  # to commit once it is delivered
    size: int

    @classmethod
    def start(cls, batches: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]],
              deliver: Callable[[Sequence[Record]], Awaitable[None]],
              poison: Callable[[Record, str], Awaitable[None]]) -> _Batch:
        consumed_at = time.time()  # the timeline's mark (shared.domain.timeline)
        records: list[Record] = [
            (r.key, r.value, (*timeline.from_headers(r.headers), consumed_at))
            for rs in batches.values() for r in rs]
        return cls(asyncio.create_task(handle_isolating_poison(records, deliver, poison)),
                   {tp: rs[-1].offset + 1 for tp, rs in batches.items()}, len(records))


def main(spec: SenderSpec, settings: Settings, lane: Lane | None = None) -> None:
    async def supervised() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        def stopping() -> None:
            exit_within()
            stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping)
        await run(spec, settings, stop, lane or Lane.tx())

    heap.settle()
    asyncio.run(supervised())
