"""Durable timers: waits and timeouts live in ``journey_timers`` (never in memory), and
this loop claims the due ones every ``journeys_timer_poll_s`` — at once again while a
batch came full — and moves their instances (``moves.fire``: claim and move in one
transaction, so a timer fires exactly once, even across a ``kill -9``). Never early: a
timer is claimed only once its due time has passed."""

from __future__ import annotations

import logging

from services.journeys import effects
from services.journeys.loops import repeat
from services.journeys.metrics import RETRIES
from services.journeys.moves import fire
from services.journeys.wiring import Engine
from shared.adapters.postgres import DB_UNAVAILABLE
from shared.resilience import retry_forever

log = logging.getLogger(__name__)
BATCH = 500


async def fire_once(engine: Engine) -> int:
    async def attempt() -> tuple[int, list[effects.Outboxed]]:
        async with engine.pool.acquire() as connection:
            return await fire(engine, connection, BATCH)

    count, outbox = await retry_forever(attempt, "firing journey timers", DB_UNAVAILABLE,
                                        on_retry=RETRIES.labels("timers").inc)
    await effects.apply_retrying(engine, outbox)
    return count


async def run(engine: Engine) -> None:
    async def step() -> bool:
        return await fire_once(engine) == BATCH
    await repeat("firing journey timers", step, engine.settings.journeys_timer_poll_s)
