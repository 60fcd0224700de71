"""Transactional first: tx and bulk are separate lanes with separate capacity.

A sender's tx lane (``python -m services.sender_email``) and bulk lane
(``python -m services.sender_email_bulk``) are separate processes: each its own topic,
consumer group, Kafka consumer, PostgreSQL connection and provider connections, so a
bulk backlog never sits in a queue in front of a tx message. When both are busy the
operating system, not an event loop, decides who runs, so the bulk process lowers its
own CPU priority: tx, the gateway and the processor win the cores. On a 2-core machine
this kept tx p99 lower under a bulk flood than a bulk loop sharing the tx sender's event
loop (README, P5). The bulk lane also takes small batches and can be held to a rate
(``sender_bulk_rate_per_s``), e.g. a relay's or a sending IP's agreed rate.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from contextlib import suppress

log = logging.getLogger(__name__)

TX_BATCH = 200  # records per poll, claimed and settled together
BULK_BATCH = 25  # small: each batch is a short burst of CPU, and the rate cap's unit


class Lane:
    """How a consume loop paces itself: its poll size and an optional rate cap."""

    def __init__(self, batch: int, rate_per_s: float = 0.0) -> None:
        self.batch = batch
        self._interval_s = 1 / rate_per_s if rate_per_s > 0 else 0.0
        self._turn_at = 0.0  # monotonic: when the current batch could start
        self._next_at = 0.0  # monotonic: when the next batch may start

    @classmethod
    def tx(cls) -> Lane:
        return cls(TX_BATCH)

    @classmethod
    def bulk(cls, rate_per_s: float) -> Lane:
        return cls(BULK_BATCH, rate_per_s)

    async def turn(self, stop: asyncio.Event) -> None:
        """Return when the next batch may be polled (at once, or early on ``stop``)."""
        wait_s = self._next_at - time.monotonic()
        if wait_s > 0:
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait_s)
        self._turn_at = time.monotonic()

    def took(self, count: int) -> None:
        """``count`` messages were handled: the cap spaces the next batch accordingly
        (from when this one could start, so a slow batch is not charged twice)."""
        self._next_at = self._turn_at + count * self._interval_s


def lower_cpu_priority(niceness: int) -> None:
    """Let every other process win the CPU when the machine is busy. On Linux with
    autogroup scheduling (the default on many kernels) a process started in its own
    session is weighed as a group, and its nice value only counts inside that group:
    the group's own nice value is set too. Raising niceness needs no privilege."""
    if niceness <= 0:
        return
    os.nice(niceness)
    with suppress(OSError):  # no autogroup here (containers, other kernels)
        with open("/proc/self/autogroup", "w") as autogroup:
            autogroup.write(str(niceness))
    log.info("CPU priority lowered: nice %d", os.nice(0))
