"""A sender lane's retry worker: messages of its retry schedule come due go again.

Why a PostgreSQL table and not a retry topic, nor the processor's held store: a retry
must come back at its own time (backoff with jitter), which a Kafka topic, read in
order, cannot give without one topic per delay or a consumer that holds its partition
until the head record is due — the very blocking we are removing. The held store
(``held_messages``) is the processor's: what it releases is decided again under the
rules of the moment, which a message already decided and handed over once must not be,
and it would send the message round through the processor and the topic. A table of
the senders' own (``send_retries``) on a due-time index, taken with ``FOR UPDATE SKIP
LOCKED`` (any number of sender processes per lane), is durable, exact in time, and
written in the very transaction that settles the batch's other messages.

The worker runs beside the lane's consume loop, on a connection of its own, and shares
its provider (pool, breakers), caches and producer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from contextlib import suppress

from prometheus_client import Gauge

from shared.adapters import send_retries
from shared.adapters.postgres import DB_UNAVAILABLE, connect_hot_path
from shared.sending.handlers import deliver_due
from shared.sending.wiring import Sender

log = logging.getLogger(__name__)

RETRY_BATCH = 50  # messages taken at once
LEASE_MARGIN_S = 60.0
COUNT_EVERY_S = 10.0

WAITING = Gauge("parcours_sender_retry_schedule_messages",
                "Messages waiting in the retry schedule, by sender lane (counted every 10 s)",
                ["channel", "lane"])
OLDEST = Gauge("parcours_sender_retry_schedule_oldest_seconds",
               "How long ago the oldest message waiting in the retry schedule was first"
               " refused (0 when none), by sender lane", ["channel", "lane"])


def lease_s(sender: Sender) -> float:
    """How long a taken message is the worker's before another may take it: long
    enough for a batch through a slow provider (every hand-over timing out)."""
    settings = sender.settings
    longest = max(settings.smtp_timeout_s, settings.provider_timeout_s)
    return 4 * longest + LEASE_MARGIN_S


async def run_retries(sender: Sender, stop: asyncio.Event) -> None:
    worker: Sender | None = None
    poll_s = sender.settings.send_retry_poll_s
    lane = sender.spec.stage
    waiting = WAITING.labels(sender.spec.channel.value, lane)
    oldest = OLDEST.labels(sender.spec.channel.value, lane)
    counted_at = 0.0
    try:
        while not stop.is_set():
            try:
                if worker is None:
                    connection = await connect_hot_path(sender.settings)
                    worker = dataclasses.replace(sender, connection=connection)
                await worker.ensure_db()
                if time.monotonic() - counted_at >= COUNT_EVERY_S:
                    count, oldest_s = await send_retries.backlog(worker.connection, lane)
                    waiting.set(count)
                    oldest.set(oldest_s)
                    counted_at = time.monotonic()
                due = await send_retries.take_due(worker.connection, lane, RETRY_BATCH,
                                                  lease_s(sender))
                if due:
                    log.info("%s: %d messages come due again", lane, len(due))
                    await deliver_due(worker, due)
                    if len(due) == RETRY_BATCH:
                        continue
            except DB_UNAVAILABLE as error:
                log.warning("taking due retries failed (%s); again in %.1fs", error, poll_s)
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), poll_s)
    finally:
        if worker is not None:
            with suppress(*DB_UNAVAILABLE, OSError):
                await worker.connection.close()
