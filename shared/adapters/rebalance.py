"""Partitions leave a worker only once what it read from them is settled and committed.

With two workers of a stage in one group (README, Scale-out), a worker joining or
leaving takes partitions from the other. Without this, the worker losing a partition
would go on sending the batches it had under way while their offsets, never committed,
hand the same records to the new owner — which finds their ledger rows still ``sending``
and, as after a crash, claims and sends them again: a duplicate with no crash at all.

aiokafka awaits ``on_partitions_revoked`` before the group rejoins (heartbeats go on,
and commits are still accepted then), so the batches under way are finished and
committed while the rebalance waits (``shared.sending.app``, ``services.processor.app``;
for the processor a redelivery repeats idempotent writes, and this saves the repeat).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from shared.adapters.kafka import commit_or_redeliver

log = logging.getLogger(__name__)

# Below the group's rebalance timeout (aiokafka's default max_poll_interval, 300 s) by far;
# a batch under way takes a provider's timeout at the worst (README, Retries).
DRAIN_DEADLINE_S = 60.0


class DrainOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """On a revocation, runs the consume loop's ``settle`` (finish and commit every batch
    under way) before letting the group rejoin. The listener does it, not the loop: the
    loop may be parked in ``getmany``, which waits for the new assignment. Records the
    loop polled just before, of a partition that went elsewhere, it leaves alone: their
    new owner reads them again from the committed offset."""

    def __init__(self) -> None:
        self._settle: Callable[[], Awaitable[None]] | None = None

    def settle_with(self, settle: Callable[[], Awaitable[None]]) -> None:
        self._settle = settle

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        if not revoked or self._settle is None:
            return
        try:
            await asyncio.wait_for(self._settle(), DRAIN_DEADLINE_S)
        except TimeoutError:
            # The new owner gets the records again; the ledger stops a settled one.
            log.warning("batches under way not settled within %.0fs of a rebalance; their"
                        " records go to the partitions' next owner", DRAIN_DEADLINE_S)
        except Exception:  # the loop sees the same failure and stops; the group goes on
            log.exception("settling the batches under way before a rebalance failed")

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info("assigned %d partitions", len(assigned))


Batches = dict[TopicPartition, list[Any]]


def still_assigned(consumer: AIOKafkaConsumer, batches: Batches) -> Batches:
    """The polled records of partitions still this worker's: records polled just before a
    rebalance took their partition are not ours (their new owner reads them again)."""
    if not batches:
        return batches
    assigned = consumer.assignment()
    return {tp: rs for tp, rs in batches.items() if tp in assigned}


class OffsetCommits:
    """Handled offsets committed in the background, one commit at a time, at most every
    ``every_s`` and whenever the topics go quiet, never awaited by a batch: at a few
    records per batch a commit each was a broker round trip (and its CPU, the broker's
    too) per batch, on the loop's path. What a crash leaves uncommitted is redelivered:
    the processor's writes are idempotent, and a sender's ledger stops a settled message
    (README, "How nothing is lost and nothing is sent twice")."""

    def __init__(self, consumer: AIOKafkaConsumer, every_s: float) -> None:
        self._consumer, self._every_s = consumer, every_s
        self._handled: dict[TopicPartition, int] = {}
        self._committing: asyncio.Task[None] | None = None
        self._at = time.monotonic()

    def handled(self, offsets: dict[TopicPartition, int]) -> None:
        """Offsets (the next to read) of records whose outcomes are durable, in order."""
        self._handled.update(offsets)

    async def tick(self, quiet: bool) -> None:
        """Commit if it is time (or ``quiet``: nothing was polled)."""
        if self._handled and (quiet or time.monotonic() - self._at >= self._every_s):
            await self._start()

    async def _start(self) -> None:
        if self._committing is not None:
            await self._committing
        if self._handled:
            offsets, self._handled = self._handled, {}
            self._committing = asyncio.create_task(
                commit_or_redeliver(self._consumer, offsets))
        self._at = time.monotonic()

    async def flush(self) -> None:
        """Everything handled, committed (a stop, a revocation)."""
        await self._start()
        if self._committing is not None:
            await self._committing
