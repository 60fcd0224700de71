"""Calls what is due: each delivery signed at the moment of its attempt, its outcome
logged, and on failure scheduled again (backoff with jitter, for a day). At most
``webhooks_per_endpoint`` calls per subscription are in flight, so a slow or dead
endpoint holds its own share and the others go on."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx

from services.webhooks import calls
from services.webhooks.metrics import ATTEMPTS, CALL_SECONDS, IN_FLIGHT
from shared.adapters import webhook_store as store
from shared.adapters.postgres import DB_UNAVAILABLE
from shared.domain import outbound_webhooks as wh
from shared.resilience import retry_forever
from shared.settings import Settings

log = logging.getLogger(__name__)
MAX_IN_FLIGHT = 200
IDLE_POLL_S = 0.5
KEEP_LOG = timedelta(days=7)
PRUNE_EVERY_S = 600.0


class Dispatcher:
    def __init__(self, settings: Settings, pool: asyncpg.Pool, client: httpx.AsyncClient
                 ) -> None:
        self._settings = settings
        self._pool = pool
        self._client = client
        self._per_endpoint = settings.webhooks_per_endpoint
        # Leased for longer than a call can take: past it, a crash's claims are due again.
        self._lease_s = settings.webhooks_timeout_s + 60
        self._in_flight: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._woken = asyncio.Event()

    def wake(self) -> None:
        self._woken.set()

    async def run(self) -> None:
        try:
            while True:
                self._woken.clear()
                full = await self._claim_and_call()
                if not full:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._woken.wait(), IDLE_POLL_S)
        finally:
            for task in self._tasks:
                task.cancel()

    async def _claim_and_call(self) -> bool:
        """Starts the calls now due; True when the claim was full (more may be due)."""
        room = MAX_IN_FLIGHT - sum(self._in_flight.values())
        if room <= 0:
            return False
        busy = [s for s, n in self._in_flight.items() if n >= self._per_endpoint]
        due = await retry_forever(
            functools.partial(self._claim, room, busy), "claiming due webhooks",
            DB_UNAVAILABLE)
        later: list[uuid.UUID] = []
        for delivery in due:
            count = self._in_flight.get(delivery.subscription_id, 0)
            if count >= self._per_endpoint:
                later.append(delivery.delivery_id)
                continue
            self._in_flight[delivery.subscription_id] = count + 1
            task = asyncio.create_task(self._deliver(delivery))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if later:
            await retry_forever(functools.partial(self._release, later),
                                "releasing webhooks", DB_UNAVAILABLE)
        IN_FLIGHT.set(sum(self._in_flight.values()))
        return len(due) == room and not later

    async def _claim(self, room: int, busy: list[str]) -> list[store.Due]:
        async with self._pool.acquire() as db:
            return await store.claim_due(db, room, self._per_endpoint, busy, self._lease_s)

    async def _release(self, ids: list[uuid.UUID]) -> None:
        async with self._pool.acquire() as db:
            await store.release(db, ids)

    async def _deliver(self, delivery: store.Due) -> None:
        try:
            attempt = await self._attempt(delivery)
            await retry_forever(functools.partial(self._record, attempt),
                                "recording a webhook attempt", DB_UNAVAILABLE)
        except Exception:
            # The lease brings it back: the delivery is due again once it runs out.
            log.exception("delivering webhook %s failed", delivery.delivery_id)
        finally:
            self._in_flight[delivery.subscription_id] -= 1
            if not self._in_flight[delivery.subscription_id]:
                del self._in_flight[delivery.subscription_id]
            IN_FLIGHT.set(sum(self._in_flight.values()))
            self.wake()

    async def _attempt(self, delivery: store.Due) -> store.Attempt:
        at = datetime.now(UTC)
        headers = {
            wh.SIGNATURE_HEADER: wh.signature(delivery.secrets, int(time.time()), delivery.body),
            wh.ID_HEADER: str(delivery.notification_id),
            wh.ATTEMPT_HEADER: str(delivery.attempt),
        }
        outcome = await calls.call(self._client, delivery.url, headers, delivery.body,
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

    async def _record(self, attempt: store.Attempt) -> None:
        async with self._pool.acquire() as db:
            await store.record(db, [attempt])


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
