"""Where notifications come from — reactions read from ``parcours.reactions.v1`` (group
``parcours-webhooks``) and status changes drained from PostgreSQL's outbox (fed by a
trigger on ``event_status``, migration 019) — and how they become scheduled deliveries:
one per matching subscription, in the transaction that takes them (outbox) or before the
offsets are committed (Kafka), so a crash repeats work but loses none, and a repeat
schedules nothing new (a delivery's id is its subscription's and the notification's)."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

import asyncpg
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from services.webhooks.metrics import SCHEDULED
from shared.adapters import webhook_store as store
from shared.adapters.kafka import client_security, commit_or_redeliver, gathered_fetch
from shared.adapters.postgres import DB_UNAVAILABLE
from shared.adapters.tenant_cache import TenantCache
from shared.bounded import BoundedDict
from shared.domain import outbound_webhooks as wh
from shared.domain import webhook_payloads as payloads
from shared.domain.reactions import Reaction, unvalidated_fields
from shared.resilience import retry_forever
from shared.settings import Settings
from shared.topics import REACTIONS

log = logging.getLogger(__name__)
GROUP = "parcours-webhooks"
BATCH = 500
# Fetched in bulk (kafka.gathered_fetch): a notification is scheduled up to the wait later.
FETCH_MAX_WAIT_MS = 200
OUTBOX_POLL_S = 0.2

Subscriptions = list[tuple[str, wh.Filters]]


class SubscriptionCache(TenantCache[Subscriptions]):
    """A tenant's enabled subscriptions and their filters; dropped when PostgreSQL
    announces a change (NOTIFY parcours_webhooks), else after 10 s."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        super().__init__(pool, ttl_s=10.0, channel="parcours_webhooks")

    async def _load(self, tenant: str, previous: Subscriptions | None) -> Subscriptions:
        rows = await store.subscriptions_of(self._pool, tenant)
        return [(r["subscription_id"], wh.Filters.of(r)) for r in rows]


class Matcher:
    def __init__(self, pool: asyncpg.Pool, subscriptions: SubscriptionCache,
                 wake: Callable[[], None]) -> None:
        self._pool = pool
        self._subscriptions = subscriptions
        self._wake = wake  # the dispatcher: something is due now
        # An event's channel never changes once configured, so it is kept (bounded).
        self._channels: BoundedDict[tuple[str, str], str | None] = BoundedDict(50_000)

    async def deliveries(self, notifications: Iterable[payloads.Notification]
                         ) -> list[store.NewDelivery]:
        found = []
        for n in notifications:
            change = payloads.change_of(n)
            for subscription_id, filters in await self._subscriptions.get(n.tenant):
                if wh.matches(filters, change):
                    found.append(store.NewDelivery(
                        wh.delivery_id(subscription_id, n.id), subscription_id, n.tenant,
                        n.id, n.type, payloads.body(n), _profile(n)))
        return found

    async def subscribed(self, tenant: str | None) -> bool:
        """Whether the tenant has any enabled subscription (cached, like the matching)."""
        return tenant is not None and bool(await self._subscriptions.get(tenant))

    async def schedule(self, db: asyncpg.Connection, deliveries: list[store.NewDelivery],
                       source: str) -> None:
        new = await store.schedule(db, deliveries)
        if new:
            SCHEDULED.labels(source).inc(new)
            self._wake()

    async def channel(self, db: asyncpg.Connection, tenant: str, event_id: str) -> str | None:
        key = (tenant, event_id)
        if key not in self._channels:
            found = await store.channels_of(db, tenant, [event_id])
            self._channels[key] = found.get(event_id)
        return self._channels[key]


def _profile(notification: payloads.Notification) -> str | None:
    data = notification.data
    return data.profileId if isinstance(data, Reaction) else None


# --- status changes -------------------------------------------------------------------------

async def drain_statuses(pool: asyncpg.Pool, matcher: Matcher) -> None:
    """Until cancelled: the outbox, a batch at a time, into the schedule."""
    while True:
        taken = await retry_forever(lambda: _drain_once(pool, matcher),
                                    "draining the webhooks status outbox", DB_UNAVAILABLE)
        if taken < BATCH:
            await asyncio.sleep(OUTBOX_POLL_S)


async def _drain_once(pool: asyncpg.Pool, matcher: Matcher) -> int:
    async with pool.acquire() as db, db.transaction():
        rows = await store.take_status_changes(db, BATCH)
        now = datetime.now(UTC)
        notifications = []
        for r in rows:
            channel = await matcher.channel(db, r["tenant_id"], r["event_id"])
            notifications.append(payloads.of_status(r["tenant_id"], payloads.StatusChange(
                eventId=r["event_id"], pKey=r["pkey"], status=r["status"], reason=r["reason"],
                messageId=None if r["message_id"] is None else str(r["message_id"]),
                channel=channel, at=r["at"]), now))
        await matcher.schedule(db, await matcher.deliveries(notifications), "status")
    return len(rows)


# --- reactions --------------------------------------------------------------------------------

def read_reactions(values: Iterable[bytes]) -> list[Reaction]:
    """What is not a reaction is skipped: the reactions service dead-letters it."""
    reactions = []
    for value in values:
        try:
            reactions.append(Reaction.model_validate_json(value))
        except ValidationError:
            continue
    return reactions


async def consume_reactions(settings: Settings, pool: asyncpg.Pool, matcher: Matcher) -> None:
    """Until cancelled; a failure other than an outage starts the consumer again (its
    records come again: offsets are committed after their deliveries are scheduled)."""
    while True:
        try:
            await _consume(settings, pool, matcher)
        except Exception:
            log.exception("the webhooks' reactions consumer stopped; restarting it")
            await asyncio.sleep(1.0)


async def _consume(settings: Settings, pool: asyncpg.Pool, matcher: Matcher) -> None:
    # A new group starts at the end: a subscription made today is not sent last week's
    # reactions (the topic keeps 7 days).
    consumer = AIOKafkaConsumer(
        REACTIONS.name, bootstrap_servers=settings.kafka_bootstrap, group_id=GROUP,
        enable_auto_commit=False, auto_offset_reset="latest", max_poll_records=BATCH,
        **gathered_fetch(FETCH_MAX_WAIT_MS), **client_security(settings))
    await retry_forever(consumer.start, "starting the webhooks' reactions consumer",
                        (KafkaError,))
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=BATCH)
            values = [r.value for rs in batches.values() for r in rs if r.value is not None]
            if not values:
                continue
            now = datetime.now(UTC)
            await retry_forever(functools.partial(_schedule, pool, matcher, values, now),
                                "scheduling reaction webhooks", DB_UNAVAILABLE)
            await commit_or_redeliver(consumer)
    finally:
        await consumer.stop()


def tenant_of(value: bytes) -> str | None:
    """The tenant a reaction record names, read without validating the record."""
    record = unvalidated_fields(value)
    tenant = record.get("tenant") if record is not None else None
    return tenant if isinstance(tenant, str) else None


async def _schedule(pool: asyncpg.Pool, matcher: Matcher, values: list[bytes],
                    now: datetime) -> None:
    # Only the reactions of tenants with a subscription are read and made notifications:
    # most tenants have none, and validating each record and building its notification
    # was about a quarter of this consumer's CPU per click (README, TRACK).
    wanted = [v for v in values if await matcher.subscribed(tenant_of(v))]
    notifications = [payloads.of_reaction(r, now) for r in read_reactions(wanted)]
    deliveries = await matcher.deliveries(notifications)
    if deliveries:
        async with pool.acquire() as db:
            await matcher.schedule(db, deliveries, "reaction")
