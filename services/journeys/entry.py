"""Profiles entering live versions: a version with an audience entry reads its audience
(keyset batches in profile id order, ``audience_reader.read_members``) at the entry's
``rate`` profiles a second, saving its progress after each batch so a restarted engine
goes on from the last profile it handed over — once, or every ``every`` (each read a
round: every member not in the journey then enters, those who finished included); a
test run's version takes its chosen test profiles instead. An event entry's version has
nothing to read here. The same loop looks at the versions just resumed
(``moves.resume``)."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from services.journeys import effects
from services.journeys.loops import repeat
from services.journeys.metrics import RETRIES
from services.journeys.moves import SET_WISE, enter, resume
from services.journeys.wiring import Engine
from shared.adapters import journey_holdout_store, journey_version_store
from shared.adapters.audience_reader import audience_query, check_definition, read_members
from shared.adapters.audience_store import get_audience
from shared.adapters.postgres import DB_UNAVAILABLE
from shared.domain.journeys.definition import AudienceEntry
from shared.domain.journeys.entering import set_based
from shared.resilience import retry_forever

log = logging.getLogger(__name__)
LOOK_EVERY_S = 0.5
MAX_BATCH = 1000
MAX_SET_BATCH = 10_000  # a chunk entered set-wise: one statement, no Python per row
# Set-wise chunks written at once: with the engine's share of a chunk smaller (its
# arrays, the relay's members), two left the cores idle between statements (1.6-1.8
# cores busy); three: P7J 48,603-60,711/s against 39,337-58,550 with two (bench).
IN_FLIGHT = 3


async def _enter(engine: Engine, version: dict[str, Any], profile_ids: list[str],
                 after: str | None, done: bool,
                 before: asyncio.Future[None] | None = None) -> None:
    """One batch in one transaction, with the entry's progress. ``before``: the previous
    batch, still being written: this one's progress is saved only once that one is
    stored (a restart goes on after the last batch stored, never past one that was not)."""
    key = (version["tenant_id"], version["journey_id"], version["version"])
    plan = await engine.plan(key)
    if plan is None:
        return

    entry = plan.definition.entry
    every = entry.every if isinstance(entry, AudienceEntry) and version["mode"] == "live" \
        else None

    async def attempt() -> list[effects.Outboxed]:
        async with engine.pool.acquire() as connection, connection.transaction():
            holdout = (await journey_holdout_store.percent(connection, key[0])
                       if version["mode"] == "live" else Decimal(0))  # a test run: none
            outbox = await enter(engine, connection, plan, key[0], profile_ids,
                                 version.get("entry_round", 0), holdout)
            if before is not None:
                await asyncio.shield(before)  # its failure undoes this batch too
            if done and every is not None:  # a recurring entry: the next round, later
                await journey_version_store.next_round(
                    connection, *key, datetime.now(UTC) + every / plan.speed)
            else:
                await journey_version_store.save_entry_progress(connection, *key, after,
                                                                done)
            return outbox

    outbox = await retry_forever(attempt, "entering profiles", DB_UNAVAILABLE,
                                 on_retry=RETRIES.labels("entry").inc)
    await effects.apply_retrying(engine, outbox)


async def _test_run(engine: Engine, version: dict[str, Any]) -> None:
    await _enter(engine, version, list(version["test_profiles"]), None, True)


async def _audience(engine: Engine, version: dict[str, Any], entry: AudienceEntry) -> None:
    tenant = version["tenant_id"]
    audience = await get_audience(engine.pool, tenant, entry.audience_id)
    if audience is None:
        log.warning("journey %s v%s: audience %s does not exist; nobody enters",
                    version["journey_id"], version["version"], entry.audience_id)
        await _enter(engine, version, [], version["entry_after"], True)
        return
    schema = (await engine.schemas.get(tenant)).schema
    query = audience_query(tenant, check_definition(audience["definition"], schema),
                           datetime.now(UTC))
    plan = await engine.plan((tenant, version["journey_id"], version["version"]))
    most = MAX_SET_BATCH if plan is not None and SET_WISE and set_based(plan) else MAX_BATCH
    batch = max(1, min(entry.rate, most))
    began, handed = time.monotonic(), 0
    key = (tenant, version["journey_id"], version["version"])
    # Set-wise, PostgreSQL does the work: a batch is written while the previous one
    # commits and the next is read (IN_FLIGHT at once), on connections of their own.
    in_flight: list[asyncio.Task[None]] = []
    try:
        # the ids alone: the rest of a member's profile is read when a step needs it (its
        # other columns were decoded and dropped here, 10,000 rows a chunk)
        async for rows in read_members(engine.pool, query, after=version["entry_after"],
                                       batch=batch, columns="profile_id"):
            state = (await journey_version_store.states(engine.pool, {key})).get(key)
            if state != "live":
                return  # paused: goes on from here on resume; stopped: nobody else enters
            ids = [r["profile_id"] for r in rows]
            while len(in_flight) >= (IN_FLIGHT if most == MAX_SET_BATCH else 1):
                await in_flight.pop(0)
            in_flight.append(asyncio.create_task(_enter(
                engine, version, ids, ids[-1], False, in_flight[-1] if in_flight else None)))
            handed += len(ids)
            # The entry's rate: profiles a second, over the whole read.
            ahead = began + handed / entry.rate - time.monotonic()
            if ahead > 0:
                await asyncio.sleep(ahead)
        while in_flight:
            await in_flight.pop(0)
    finally:
        for task in in_flight:  # an error, or paused: the batches in hand end as they do
            await asyncio.gather(task, return_exceptions=True)
    await _enter(engine, version, [], None, True)


MAX_READING = 8  # versions entering at once; the others wait their turn

# The versions whose entry runs now (each in a task of its own, so a million-profile
# audience read at its rate holds up no other journey's entry).
_reading: dict[tuple[str, str, int], asyncio.Task[None]] = {}


async def _entry(engine: Engine, version: dict[str, Any]) -> None:
    key = (version["tenant_id"], version["journey_id"], version["version"])
    try:
        plan = await engine.plan(key)
        if plan is None:
            return
        if version["mode"] == "test":
            await _test_run(engine, version)
        elif isinstance(plan.definition.entry, AudienceEntry):
            await _audience(engine, version, plan.definition.entry)
    except Exception:
        log.exception("journey %s v%s: entering profiles failed; trying again", key[1],
                      key[2])


async def enter_once(engine: Engine) -> int:
    """Start the entry of each version that has one to run and is not running it yet."""
    started = 0
    for version in await journey_version_store.entering(engine.pool):
        key = (version["tenant_id"], version["journey_id"], version["version"])
        if key in _reading or len(_reading) >= MAX_READING:
            continue
        task = asyncio.create_task(_entry(engine, version))
        _reading[key] = task
        task.add_done_callback(lambda _t, key=key: _reading.pop(key, None))
        started += 1
    return started


async def resume_once(engine: Engine) -> int:
    """Versions resumed since the last look: their instances' kept inputs looked at."""
    marked = await journey_version_store.resumed(engine.pool)
    for version in marked:
        key = (version["tenant_id"], version["journey_id"], version["version"])

        async def attempt(key: tuple[str, str, int] = key) -> list[effects.Outboxed]:
            async with engine.pool.acquire() as connection:
                return await resume(engine, connection, *key)

        outbox = await retry_forever(attempt, "resuming instances", DB_UNAVAILABLE,
                                     on_retry=RETRIES.labels("resume").inc)
        await effects.apply_retrying(engine, outbox)
        await journey_version_store.resume_handled(engine.pool, *key, version["resumed_at"])
    return len(marked)


async def run(engine: Engine) -> None:
    async def step() -> bool:
        await resume_once(engine)
        await enter_once(engine)
        return False
    await repeat("entering profiles", step, LOOK_EVERY_S)
