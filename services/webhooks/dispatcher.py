"""Calls what is due: each delivery signed at the moment of its attempt, its outcome
logged, and on failure scheduled again (backoff with jitter, for a day).

Each subscription has a queue here, filled by claims from the schedule, and at most
``webhooks_per_endpoint`` workers calling its endpoint: a slow or dead endpoint holds its
own workers and queue, and the others go on. Claims take up to ``CLAIM`` deliveries of a
subscription at a time (a claim per call cost more than the call, on loopback) and lease
them for as long as its workers could take to empty the queue; attempts are written by one
recorder, many to a transaction."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import random
import time
import uuid
from collections import deque
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx

from services.webhooks.metrics import ATTEMPTS, CALL_SECONDS, IN_FLIGHT
from shared.adapters import webhook_store as store
from shared.adapters.postgres import DB_UNAVAILABLE
from shared.domain import outbound_webhooks as wh
from shared.outgoing import calls
from shared.resilience import retry_forever
from shared.settings import Settings

log = logging.getLogger(__name__)
CLAIM = 32  # deliveries of one subscription per claim
MAX_HELD = 2000  # deliveries queued or under way in this process
IDLE_POLL_S = 0.5
KEEP_LOG = timedelta(days=7)
PRUNE_EVERY_S = 600.0


class Recorder:
    """Writes attempts as they come, those that arrived during a write in the next one."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._pending: list[store.Attempt] = []
        self._writing: list[store.Attempt] = []
        self._arrived = asyncio.Event()

    def add(self, attempt: store.Attempt) -> None:
        self._pending.append(attempt)
        self._arrived.set()

    async def run(self) -> None:
        while True:
            await self._arrived.wait()
            self._arrived.clear()
            self._writing, self._pending = self._pending, []
            await retry_forever(functools.partial(self._write, self._writing),
                                "recording webhook attempts", DB_UNAVAILABLE)
            self._writing = []

    async def flush(self) -> None:
        """On the way out: what was not written yet (writing it twice changes nothing)."""
        batch, self._writing, self._pending = [*self._writing, *self._pending], [], []
        if batch:
            await self._write(batch)

    async def _write(self, batch: list[store.Attempt]) -> None:
        async with self._pool.acquire() as db:
            await store.record(db, batch)


class Clients:
    """An HTTP client per subscription, its pool as large as its workers: connections are
    kept between calls, and one endpoint's never crowd another's (httpcore scans its whole
    pool per request: one shared pool of 16 connections doubled the CPU per call). A
    client unused for a minute is closed."""

    IDLE_S = 60.0

    def __init__(self, settings: Settings) -> None:
        self._timeout_s = settings.webhooks_timeout_s
        self._size = settings.webhooks_per_endpoint
        self._clients: dict[str, tuple[httpx.AsyncClient, float]] = {}
        self._swept = time.monotonic()

    def get(self, subscription: str) -> httpx.AsyncClient:
        held = self._clients.get(subscription)
        client = held[0] if held else httpx.AsyncClient(
            # Redirects are not followed: the subscription names the endpoint.
            follow_redirects=False, timeout=self._timeout_s,
            limits=httpx.Limits(max_connections=self._size,
                                max_keepalive_connections=self._size))
        self._clients[subscription] = (client, time.monotonic())
        return client

    async def sweep(self, busy: set[str]) -> None:
        now = time.monotonic()
        if now - self._swept < self.IDLE_S / 2:
            return
        self._swept = now
        idle = [s for s, (_, used) in self._clients.items()
                if now - used > self.IDLE_S and s not in busy]
        for subscription in idle:
            await self._clients.pop(subscription)[0].aclose()

    async def close(self) -> None:
        for client, _ in self._clients.values():
            await client.aclose()
        self._clients.clear()


class Dispatcher:
    def __init__(self, settings: Settings, pool: asyncpg.Pool) -> None:
        self._settings = settings
        self._pool = pool
        self._clients = Clients(settings)
        self._per_endpoint = settings.webhooks_per_endpoint
        self._low = 2 * self._per_endpoint  # a queue shorter than this is claimed for
        # Longer than a full queue takes to empty at one timeout per call: past it, what a
        # crashed process held is due again.
        rounds = math.ceil((self._low + CLAIM) / self._per_endpoint)
        self._lease_s = rounds * settings.webhooks_timeout_s + 60
        self._queues: dict[str, deque[store.Due]] = {}
        self._workers: dict[str, int] = {}
        self._calling = 0
        self._under_way: set[uuid.UUID] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._woken = asyncio.Event()
        self._recorder = Recorder(pool)

    def wake(self) -> None:
        self._woken.set()

    async def run(self) -> None:
        recorder = asyncio.create_task(self._recorder.run())
        try:
            while True:
                self._woken.clear()
                full = await self._claim()
                if not full:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._woken.wait(), IDLE_POLL_S)
        finally:
            held = [*self._under_way,
                    *(d.delivery_id for q in self._queues.values() for d in q)]
            recorder.cancel()
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(recorder, *self._tasks, return_exceptions=True)
            await self._give_back(held)
            await self._clients.close()

    async def _give_back(self, held: list[uuid.UUID]) -> None:
        """On the way out, the attempts made are written and what this process held is due
        again at once rather than when its lease runs out (a call cut short may come twice:
        receivers go by the id)."""
        try:
            async with asyncio.timeout(3):
                await self._recorder.flush()
                async with self._pool.acquire() as db:
                    await store.release(db, held)
        except Exception as error:
            log.warning("could not give back %d webhooks (%s): due when their lease ends",
                        len(held), error)

    async def _claim(self) -> bool:
        """Queues what is now due; True when the claim was full (more may be due)."""
        await self._clients.sweep(set(self._workers))
        room = MAX_HELD - self._calling - sum(len(q) for q in self._queues.values())
        if room <= 0:
            return False
        enough = [s for s, q in self._queues.items() if len(q) >= self._low]
        due = await retry_forever(functools.partial(self._claim_due, room, enough),
                                  "claiming due webhooks", DB_UNAVAILABLE)
        for delivery in due:
            self._queues.setdefault(delivery.subscription_id, deque()).append(delivery)
        for subscription in {d.subscription_id for d in due}:
            self._start_workers(subscription)
        return len(due) == room

    async def _claim_due(self, room: int, enough: list[str]) -> list[store.Due]:
        async with self._pool.acquire() as db:
            return await store.claim_due(db, room, CLAIM, enough, self._lease_s)

    def _start_workers(self, subscription: str) -> None:
        wanted = min(self._per_endpoint, len(self._queues[subscription]))
        while self._workers.get(subscription, 0) < wanted:
            self._workers[subscription] = self._workers.get(subscription, 0) + 1
            task = asyncio.create_task(self._work(subscription))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _work(self, subscription: str) -> None:
        queue = self._queues[subscription]
        try:
            while queue:
                delivery = queue.popleft()
                if len(queue) < self._low:
                    self.wake()
                self._calling += 1
                self._under_way.add(delivery.delivery_id)
                IN_FLIGHT.set(self._calling)
                try:
                    self._recorder.add(await self._attempt(delivery))
                except Exception:
                    # Its lease brings it back: due again once it runs out.
                    log.exception("delivering webhook %s failed", delivery.delivery_id)
                finally:
                    self._calling -= 1
                    self._under_way.discard(delivery.delivery_id)
                    IN_FLIGHT.set(self._calling)
        finally:
            self._workers[subscription] -= 1
            if not self._workers[subscription]:
                del self._workers[subscription]
                if not queue:
                    self._queues.pop(subscription, None)

    async def _attempt(self, delivery: store.Due) -> store.Attempt:
        at = datetime.now(UTC)
        headers = {
            wh.SIGNATURE_HEADER: wh.signature(delivery.secrets, int(time.time()), delivery.body),
            wh.ID_HEADER: str(delivery.notification_id),
            wh.ATTEMPT_HEADER: str(delivery.attempt),
        }
        outcome = await calls.call(self._clients.get(delivery.subscription_id), delivery.url,
                                   headers, delivery.body,
                                   self._settings.webhooks_timeout_s,
                                   self._settings.webhooks_allow_local_targets)
        CALL_SECONDS.observe(outcome.latency_ms / 1000)
        delivered = wh.succeeded(outcome.http_status)
        following = None
        if not delivered:
            when = wh.next_attempt_at(time.time(), delivery.attempt, random.random(),
                                      delivery.give_up_after.timestamp())
            following = None if when is None else datetime.fromtimestamp(when, UTC)
        ATTEMPTS.labels("delivered" if delivered else "retrying" if following else
                        "failed").inc()
        return store.Attempt(delivery.delivery_id, delivery.attempt, at, outcome.http_status,
                             outcome.latency_ms, outcome.error, delivered, following)


async def prune_log(pool: asyncpg.Pool) -> None:
    """Until cancelled: deliveries done more than 7 days ago go, with their attempts."""
    while True:
        try:
            async with pool.acquire() as db:
                while await store.prune(db, KEEP_LOG) > 0:
                    pass
        except Exception:
            log.exception("pruning the webhooks log failed; next time")
        await asyncio.sleep(PRUNE_EVERY_S)
