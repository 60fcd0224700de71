"""Durable timers: waits and timeouts live in ``journey_timers`` (never in memory; a
cohort's in ``journey_cohort_timers`` until due, then its instances'), and
this loop claims the due ones — at once again while a batch came full, else when the next
one is due, at most ``journeys_timer_poll_s`` later — and moves their instances
(``moves.fire``: claim and move in one transaction, so a timer fires exactly once, even
across a ``kill -9``). Never early: a timer is claimed only once its due time has
passed."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from services.journeys import effects
from services.journeys.loops import repeat
from services.journeys.metrics import RETRIES
from services.journeys.moves import fire
from services.journeys.wiring import Engine
from shared.adapters import journey_store
from shared.adapters.postgres import DB_UNAVAILABLE
from shared.resilience import retry_forever

log = logging.getLogger(__name__)
BATCH = 500


async def fire_once(engine: Engine) -> int:
    """Timers fired (BATCH: more are due). A cohort's timers come due first, handed to
    its instances (``expand_cohort_timers``), which fire like any."""
    async def attempt() -> tuple[int, list[effects.Outboxed]]:
        async with engine.pool.acquire() as connection:
            cohorts, _ = await journey_store.expand_cohort_timers(connection,
                                                                  datetime.now(UTC))
            count, outbox = await fire(engine, connection, BATCH)
            more = cohorts == journey_store.COHORT_TIMERS_AT_ONCE
            return (BATCH if more else count), outbox

    count, outbox = await retry_forever(attempt, "firing journey timers", DB_UNAVAILABLE,
                                        on_retry=RETRIES.labels("timers").inc)
    await effects.apply_retrying(engine, outbox)
    return count


async def run(engine: Engine) -> None:
    poll_s = engine.settings.journeys_timer_poll_s

    async def step() -> bool:
        if await fire_once(engine) == BATCH:
            return True  # more are due: at once
        await asyncio.sleep(await _until_next(engine, poll_s))
        return True

    await repeat("firing journey timers", step, 0.0)


async def _until_next(engine: Engine, poll_s: float) -> float:
    """Sleep until the next timer is due, at most ``poll_s`` (a timer set meanwhile for
    sooner is found by the next poll)."""
    now = datetime.now(UTC)
    due = await journey_store.next_due(engine.pool, now)
    return poll_s if due is None else max(0.0, min(poll_s, (due - now).total_seconds()))
