"""The webhooks service's wiring: one pool, the subscriptions' cache, and its four loops
(reactions from Kafka, status changes from the outbox, the calls, the log's pruning)."""

from __future__ import annotations

import asyncio
import logging

from services.webhooks.dispatcher import Dispatcher, prune_log
from services.webhooks.sources import (
    Matcher,
    SubscriptionCache,
    consume_reactions,
    drain_statuses,
)
from shared.adapters.postgres import DB_UNAVAILABLE, create_pool
from shared.resilience import retry_forever
from shared.settings import Settings

log = logging.getLogger(__name__)


async def run(settings: Settings) -> None:
    pool = await retry_forever(lambda: create_pool(settings.pg_dsn, min_size=1, max_size=6),
                               "connecting to PostgreSQL", DB_UNAVAILABLE)
    subscriptions = SubscriptionCache(pool)
    await retry_forever(lambda: subscriptions.listen(settings.pg_dsn),
                        "listening to parcours_webhooks", DB_UNAVAILABLE)
    dispatcher = Dispatcher(settings, pool)
    matcher = Matcher(pool, subscriptions, dispatcher.wake)
    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(dispatcher.run())
            group.create_task(drain_statuses(pool, matcher))
            group.create_task(consume_reactions(settings, pool, matcher))
            group.create_task(prune_log(pool))
    finally:
        await subscriptions.close()
        await pool.close()
