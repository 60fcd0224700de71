"""The held backlog: what journeys hold rather than drop, counted every BACKLOG_EVERY_S
into two gauges, so that a backlog that grows or ages shows and alerts
(ParcoursJourneyHeldBacklogOld): profiles held at an event entry past its rate
(``entries``) and journey messages a rule deferred (``messages``: a capacity at its cap,
fatigue, quiet hours), in ``held_messages`` until the processor decides them again.
Instances waiting on an action's send window show in the counts (``waiting`` on the
action node) rather than here: they wait for a time their journey chose."""

from __future__ import annotations

from datetime import UTC, datetime

from services.journeys.loops import repeat
from services.journeys.metrics import HELD, HELD_OLDEST
from services.journeys.wiring import Engine

BACKLOG_EVERY_S = 10.0
_QUERIES = {
    "entries": "SELECT count(*), min(entered_at) FROM journey_instances"
               " WHERE state = 'waiting' AND node = 'entry'",
    "messages": "SELECT count(*), min(held_at) FROM held_messages"
                " WHERE record -> 'origin' ->> 'kind' = 'journey'",
}


async def measure(engine: Engine) -> None:
    now = datetime.now(UTC)
    async with engine.pool.acquire() as connection:
        for what, query in _QUERIES.items():
            count, oldest = await connection.fetchrow(query)
            HELD.labels(what).set(count)
            HELD_OLDEST.labels(what).set((now - oldest).total_seconds() if oldest else 0)


async def run(engine: Engine) -> None:
    async def step() -> bool:
        await measure(engine)
        return False
    await repeat("measuring the held backlog", step, BACKLOG_EVERY_S)
