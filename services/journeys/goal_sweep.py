"""Goals on a profile condition (issue 13). Profiles change through many paths (the
profile API, its Kafka topic, imports, journeys' ``updateProfile``) and none feeds the
engine, so the engine looks every PARCOURS_JOURNEY_GOAL_SWEEP_S seconds: per version with
such goals and per goal, one query reads the instances that entered within the goal's
time, have not reached it, and whose profile now meets the condition (compiled to SQL,
as an audience's); their goal steps are written as an event goal's (once per instance
and goal, the last message sent as detail, ``parcours_journey_goals_total``), and an
``exit`` goal takes them out wherever they wait. A profile the engine writes itself
(``updateProfile``) wakes the sweep at once (at most one sweep every MIN_GAP_S). A
profile that meets the condition between two sweeps and stops meeting it before the next
one is not seen: the condition is a state the profile reaches, not an event."""

from __future__ import annotations

import asyncio
import logging
import os
from datetime import UTC, datetime

from services.journeys import effects
from services.journeys.loops import PROFILE_WRITTEN
from services.journeys.metrics import GOAL_SWEEP, GOALS, RETRIES
from services.journeys.moves import exit_by_goal
from services.journeys.wiring import Engine
from shared.adapters import journey_goal_store, journey_store
from shared.adapters.journey_store import Outboxed
from shared.adapters.postgres import DB_UNAVAILABLE
from shared.domain.conditions import ConditionError, compile_sql
from shared.domain.journeys.advance import goal_deadline, last_message
from shared.resilience import retry_forever

log = logging.getLogger(__name__)
SWEEP_S = float(os.environ.get("PARCOURS_JOURNEY_GOAL_SWEEP_S", "10"))
MIN_GAP_S = 1.0
BATCH = 5_000  # instances per goal and query; a full batch sweeps again at once


async def sweep(engine: Engine) -> tuple[int, bool, list[Outboxed]]:
    """One pass over every version's profile goals: (goal steps written, whether a batch
    came full, the exits' outbox)."""
    reached, full, outbox = 0, False, []
    now = datetime.now(UTC)
    async with engine.pool.acquire() as connection:
        for key in await journey_goal_store.versions_with_profile_goals(connection):
            try:
                plan = await engine.plan(key)
            except ConditionError:  # the profile schema changed under a condition
                log.warning("journey %s version %s: a condition no longer fits the profile"
                            " schema; its goals are not swept", key[1], key[2])
                continue
            if plan is None:
                continue
            tenant, journey_id, version = key
            for goal in plan.definition.goals:
                checked = plan.profile_goals.get(goal.id)
                if checked is None:
                    continue
                where = compile_sql(checked, now=now,
                                    first_param=journey_goal_store.FIRST_PARAM)
                found = await journey_goal_store.meeting(
                    connection, tenant, journey_id, version, goal.id,
                    goal_deadline(plan, goal, now), where, goal.exit, BATCH)
                full = full or len(found) == BATCH
                new = await journey_store.reach_goals(
                    connection, tenant, [(i, goal.id, last_message(i) or "") for i in found],
                    now)
                for journey, goal_id in new:
                    GOALS.labels(journey, goal_id).inc()
                reached += len(new)
                if goal.exit:
                    outbox += await exit_by_goal(engine, connection, tenant, found, goal.id)
    return reached, full, outbox


async def sweep_once(engine: Engine) -> bool:
    with GOAL_SWEEP.time():
        _, full, outbox = await retry_forever(
            lambda: sweep(engine), "sweeping journey goals", DB_UNAVAILABLE,
            on_retry=RETRIES.labels("goals").inc)
    await effects.apply_retrying(engine, outbox)
    return full


async def run(engine: Engine) -> None:
    """Sweep every SWEEP_S, sooner when the engine wrote a profile, at once again after a
    full batch; until cancelled (anything unexpected is logged, then a second later)."""
    while True:
        PROFILE_WRITTEN.clear()  # a write from now on is seen by this sweep or wakes the next
        try:
            if await sweep_once(engine):
                continue
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("sweeping journey goals failed; trying again")
        await asyncio.sleep(MIN_GAP_S)
        try:
            await asyncio.wait_for(PROFILE_WRITTEN.wait(), max(0.0, SWEEP_S - MIN_GAP_S))
        except TimeoutError:
            pass
