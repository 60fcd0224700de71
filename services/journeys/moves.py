"""Moving instances: a profile entering, an input reaching the instances waiting on a
profile, a timer come due. Each move is ``advance`` (pure) and one conditional write of
the instance with its timers, steps and outbox (``journey_store``); the outbox is applied
after the commit (``effects``).

Of two moves racing for one instance (a reaction and its wait's timeout, two engines),
the write of the second finds a newer token: that input is redone on the stored instance,
where it is stale (a timer), kept for a later wait, or moves it again.
"""

from __future__ import annotations

import logging
import os
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg

from services.journeys.event_entry import enter_by_events
from services.journeys.metrics import (
    ENTERED,
    GOALS,
    INPUTS,
    TIMER_LATENESS,
    count_step,
    count_steps,
)
from services.journeys.wiring import Engine
from shared.adapters import journey_store, journey_version_store
from shared.adapters.journey_profiles import JourneyProfile, read_profiles
from shared.adapters.journey_store import Outboxed, Written
from shared.domain.journeys.advance import (
    Plan,
    advance,
    hold,
    last_message,
    reached_goals,
    start,
)
from shared.domain.journeys.codec import instance_from_json
from shared.domain.journeys.definition import MAX_TIMEOUT
from shared.domain.journeys.entering import routes, set_based, step_counts
from shared.domain.journeys.holdout import held_out
from shared.domain.journeys.instance import (
    Effect,
    GoalExit,
    Input,
    Instance,
    JourneyEvent,
    Reaction,
    Resume,
    Step,
    TimerFired,
)

log = logging.getLogger(__name__)
MAX_REDO = 5
# PARCOURS_JOURNEY_SET_ENTRY=0 enters every version per profile (``start`` each): a way
# back should set-wise entering misbehave, and the per-profile figure for an A/B.
SET_WISE = os.environ.get("PARCOURS_JOURNEY_SET_ENTRY", "1") != "0"


@dataclass(frozen=True)
class Arrival:
    """A reaction or a journey event for a profile, as read from its topic."""
    tenant: str
    profile_id: str
    input: Reaction | JourneyEvent
    identity: str = ""  # a journey event's (its time and payload): names an entry it makes
    accepted_at: float = 0.0  # a journey event's, Unix seconds


def _with_profile(event: Input, profile: JourneyProfile | None) -> Input:
    record = profile.record if profile else {}
    if isinstance(event, Reaction):
        return Reaction(event.message_id, event.kind, event.link, event.machine, event.data,
                        record)
    if isinstance(event, JourneyEvent):
        return JourneyEvent(event.event_id, event.data, record)
    if isinstance(event, TimerFired):
        return TimerFired(event.token, record)
    if isinstance(event, Resume):
        return Resume(record)
    return event


def _step(plan: Plan, instance: Instance, event: Input, profile: JourneyProfile | None,
          now: datetime, paused: bool) -> tuple[Instance, list[Effect]]:
    """One input's move, pure. A paused instance holds what comes, except an exit
    criterion: that takes the profile out wherever it is, paused or not."""
    given = _with_profile(event, profile)
    exits = isinstance(given, JourneyEvent) and any(
        c.event_id == given.event_id for c in plan.definition.exit)
    if paused and not exits and isinstance(given, Reaction | JourneyEvent):
        return hold(plan, instance, given, now), []
    return advance(plan, instance, given, now)


def _outcome(before: Instance, after: Instance) -> str:
    same = after.token == before.token and after.node == before.node \
        and after.state == before.state
    return "kept" if same else "moved"


async def _move(engine: Engine, connection: asyncpg.Connection, tenant: str,
                instance: Instance, event: Input, profile: JourneyProfile | None,
                now: datetime, paused: bool = False
                ) -> tuple[str, Written | None, Instance]:
    """Advance and store one instance on one input, redoing it on the stored instance when
    another move got there first: (outcome, what was written, the instance now)."""
    for _ in range(MAX_REDO):
        plan = await engine.plan((tenant, instance.journey_id, instance.version))
        if plan is None:
            return "dropped", None, instance
        moved, effects = _step(plan, instance, event, profile, now, paused)
        if moved == instance and not effects:
            return ("stale" if isinstance(event, TimerFired) else "dropped"), None, instance
        written = await journey_store.save(connection, tenant, instance.token, moved,
                                           effects, now)
        if written is not None:
            count_steps(moved, effects)
            return _outcome(instance, moved), written, moved
        stored = await journey_store.load(connection, tenant, instance.instance_id)
        if stored is None or stored.ended:
            return "stale", None, stored or instance
        instance = stored
    log.warning("instance %s moved by others %d times in a row; input left", instance.instance_id,
                MAX_REDO)
    return "dropped", None, instance


@dataclass
class _Moved:
    """An instance moved by inputs of one batch, not yet stored."""
    tenant: str
    read_token: int  # as stored: the write is conditional on it
    paused: bool
    instance: Instance
    effects: list[Effect] = field(default_factory=list)
    inputs: list[Input] = field(default_factory=list)
    outcomes: list[tuple[str, str]] = field(default_factory=list)  # (kind, outcome)


async def arrive(engine: Engine, connection: asyncpg.Connection,
                 arrivals: Sequence[Arrival]) -> list[Outboxed]:
    """Each input, in the order read, to every instance waiting on its profile. The moves
    are made in memory, one after the other, then stored together: one conditional write
    per table for the batch (``journey_store.save_many``). An instance another move got to
    first (a timer) has its inputs redone one by one on what is stored."""
    now = datetime.now(UTC)
    keys = list(dict.fromkeys((a.tenant, a.profile_id) for a in arrivals))
    waiting = await journey_store.waiting_of(connection, keys)
    by_tenant: dict[str, list[str]] = defaultdict(list)
    for (tenant, profile_id), instances in waiting.items():
        if instances:
            by_tenant[tenant].append(profile_id)
    profiles = {(t, p): found for t, ids in by_tenant.items()
                for p, found in (await read_profiles(connection, t, ids)).items()}
    states = await journey_version_store.states(
        connection, {(t, i.journey_id, i.version) for (t, _), instances in waiting.items()
                     for i in instances})
    moved: dict[str, _Moved] = {}
    for arrival in arrivals:
        kind = "reaction" if isinstance(arrival.input, Reaction) else "event"
        key = (arrival.tenant, arrival.profile_id)
        current = []
        for instance in waiting.get(key, []):
            state = states.get((arrival.tenant, instance.journey_id, instance.version))
            plan = await engine.plan((arrival.tenant, instance.journey_id, instance.version))
            if state not in ("live", "paused") or plan is None:
                current.append(instance)
                INPUTS.labels(kind, "dropped").inc()
                continue
            after, effects = _step(plan, instance, arrival.input, profiles.get(key), now,
                                   state == "paused")
            if after == instance and not effects:
                current.append(instance)
                INPUTS.labels(kind, "dropped").inc()
                continue
            entry = moved.setdefault(instance.instance_id, _Moved(
                arrival.tenant, instance.token, state == "paused", instance))
            entry.instance = after
            entry.effects += effects
            entry.inputs.append(arrival.input)
            entry.outcomes.append((kind, _outcome(instance, after)))
            if not after.ended:
                current.append(after)
        if not waiting.get(key):
            INPUTS.labels(kind, "dropped").inc()
        waiting[key] = current
    await _reach_goals(engine, connection, arrivals, now)  # on the instances as they were
    outbox = await _store_moves(engine, connection, list(moved.values()), profiles, now)
    # Entries after the moves: an event that starts an instance is not also its input.
    return outbox + await enter_by_events(engine, connection, arrivals)


async def _reach_goals(engine: Engine, connection: asyncpg.Connection,
                       arrivals: Sequence[Arrival], now: datetime) -> None:
    """Journey events that reach a goal of an instance of their profile, waiting or ended
    (a purchase may come after the journey's last message): a goal step each, once per
    instance and goal, naming the last message the instance had been sent."""
    events = [a for a in arrivals if isinstance(a.input, JourneyEvent)]
    if not events:
        return
    keys = list(dict.fromkeys((a.tenant, a.profile_id) for a in events))
    recent = await journey_store.recent_of(connection, keys, now - MAX_TIMEOUT)
    reached: dict[str, list[tuple[Instance, str, str]]] = defaultdict(list)
    for arrival in events:
        assert isinstance(arrival.input, JourneyEvent)
        for instance in recent.get((arrival.tenant, arrival.profile_id), []):
            plan = await engine.plan((arrival.tenant, instance.journey_id, instance.version))
            if plan is None or not plan.definition.goals:
                continue
            for goal in reached_goals(plan, instance, arrival.input, now):
                reached[arrival.tenant].append(
                    (instance, goal.id, last_message(instance) or ""))
    for tenant, rows in reached.items():
        for journey_id, goal_id in await journey_store.reach_goals(connection, tenant, rows,
                                                                   now):
            GOALS.labels(journey_id, goal_id).inc()


async def exit_by_goal(engine: Engine, connection: asyncpg.Connection, tenant: str,
                       instances: Sequence[Instance], goal_id: str) -> list[Outboxed]:
    """Instances that reached an exit goal without an event (a profile condition met)
    exit wherever they wait, as an event goal's do (``advance`` on ``GoalExit``)."""
    now = datetime.now(UTC)
    outbox: list[Outboxed] = []
    for instance in instances:
        if instance.ended:
            continue
        outcome, written, _ = await _move(engine, connection, tenant, instance,
                                          GoalExit(goal_id), None, now)
        INPUTS.labels("goal", outcome).inc()
        if written is not None:
            outbox += written.outbox
    return outbox


async def _store_moves(engine: Engine, connection: asyncpg.Connection, moves: list[_Moved],
                       profiles: dict[tuple[str, str], JourneyProfile], now: datetime
                       ) -> list[Outboxed]:
    outbox: list[Outboxed] = []
    for tenant in {m.tenant for m in moves}:
        mine = [m for m in moves if m.tenant == tenant]
        written, lost = await journey_store.save_many(
            connection, tenant, [(m.read_token, m.instance, m.effects) for m in mine], now)
        for instance, effects, stored in written:
            count_steps(instance, effects)
            outbox += stored.outbox
        for m in mine:
            if m.instance.instance_id not in lost:
                for kind, outcome in m.outcomes:
                    INPUTS.labels(kind, outcome).inc()
                continue
            # Another move (a timer) stored this instance first: redo the inputs on it.
            instance = await journey_store.load(connection, tenant, m.instance.instance_id)
            for event, (kind, _) in zip(m.inputs, m.outcomes, strict=True):
                if instance is None or instance.ended:
                    INPUTS.labels(kind, "stale").inc()
                    continue
                outcome, redone, instance = await _move(
                    engine, connection, tenant, instance, event,
                    profiles.get((tenant, instance.profile_id)), now, m.paused)
                INPUTS.labels(kind, outcome).inc()
                if redone is not None:
                    outbox += redone.outbox
    return outbox


async def fire(engine: Engine, connection: asyncpg.Connection, limit: int
               ) -> tuple[int, list[Outboxed]]:
    """Claim the timers due and move their instances, in one transaction: a crash gives
    the timers back with the moves undone, so each fires once. The count: timers taken
    (a paused version's set aside included; ``limit`` of them: more are due)."""
    now = datetime.now(UTC)
    async with connection.transaction():
        claimed = await journey_store.claim_due(connection, now, limit)
        due = claimed.timers
        if not due:  # perhaps a paused version's, set aside: more may be due at once
            return claimed.taken, []
        instances = await journey_store.load_many(
            connection, [(t.tenant, t.instance_id) for t in due])
        by_tenant: dict[str, list[str]] = defaultdict(list)
        for instance_key, instance in instances.items():
            by_tenant[instance_key[0]].append(instance.profile_id)
        profiles = {(t, p): found for t, ids in by_tenant.items()
                    for p, found in (await read_profiles(connection, t, ids)).items()}
        moves: list[_Moved] = []
        for timer in due:
            TIMER_LATENESS.observe(max(0.0, (now - timer.due_at).total_seconds()))
            instance = instances.get((timer.tenant, timer.instance_id))
            plan = instance and await engine.plan(
                (timer.tenant, instance.journey_id, instance.version))
            if instance is None or plan is None or instance.ended \
                    or instance.token != timer.token:
                INPUTS.labels("timer", "stale").inc()
                continue
            fired = TimerFired(timer.token)
            after, effects = _step(plan, instance, fired,
                                   profiles.get((timer.tenant, instance.profile_id)), now,
                                   False)
            moves.append(_Moved(timer.tenant, instance.token, False, after, effects, [fired],
                                [("timer", _outcome(instance, after))]))
        # One write per table for the batch (it was one per timer: P8J's lateness).
        outbox = await _store_moves(engine, connection, moves, profiles, now)
    return claimed.taken, outbox


async def enter(engine: Engine, connection: asyncpg.Connection, plan: Plan, tenant: str,
                profile_ids: Sequence[str], entry_round: int = 0,
                holdout: Decimal = Decimal(0)) -> list[Outboxed]:
    """Profiles enter the version (a profile in the journey now, or entered in this round
    before, is skipped), in one transaction; those of the tenant's control group
    (``holdout`` %) end ``heldOut`` at once. A version whose way to its first wait reads
    nothing of the profile and has no effect (``entering.set_based``) is entered
    set-wise: one ``start`` per route, one statement for the chunk."""
    now = datetime.now(UTC)
    if SET_WISE and set_based(plan):  # the same instance for all but its ids: set-wise
        chunk = routes(plan, tenant, profile_ids, entry_round, holdout, now)
        entered = await journey_store.enter_set(connection, tenant, plan.definition.id,
                                                plan.version, chunk, now)
        for whole in entered.whole:  # the step relay takes them from here, once committed
            engine.entered[(tenant, whole.cohort_id)] = whole
        for step, n in step_counts(chunk.templates, entered.written).items():
            count_step(plan.definition.id, step, n)
        ENTERED.labels(plan.definition.id).inc(sum(n for _, n in entered.written))
        return []  # no effect on the world before the first wait
    profiles = await read_profiles(connection, tenant, profile_ids)
    started = [start(plan, profile_id, entry_round, profiles[profile_id].record, now,
                     held_out(tenant, profile_id, holdout))
               for profile_id in profile_ids
               if profile_id in profiles]  # else erased since the audience was read
    # One statement per table for the whole batch (a round trip per profile and table
    # capped entering at ≈ 1,000 profiles a second: bench P7J).
    stored = await journey_store.create_many(connection, tenant, started, now)
    outbox = [o for _, _, written in stored for o in written.outbox]
    steps = Counter(Step(e.kind, e.node, e.detail if e.kind == "split" else "")
                    for _, effects, _ in stored for e in effects if isinstance(e, Step))
    for step, n in steps.items():  # count_steps' counts, a label lookup each
        count_step(plan.definition.id, step, n)
    ENTERED.labels(plan.definition.id).inc(len(stored))
    return outbox


async def resume(engine: Engine, connection: asyncpg.Connection, tenant: str,
                 journey_id: str, version: int) -> list[Outboxed]:
    """A version resumed: each waiting instance that kept inputs while paused gets them
    looked at again (``Resume``), so a reaction that came during the pause resolves the
    listen it was for."""
    now = datetime.now(UTC)
    # an instance without a document of its own (its cohort's) has not moved since it
    # entered: it kept nothing
    kept = journey_store.of_versions(
        f"{journey_store.WAITING} AND jsonb_array_length(i.document->'seen') > 0")
    rows = await connection.fetch(f"SELECT document FROM {kept} i", tenant, journey_id,
                                  version)
    instances = [instance_from_json(r["document"]) for r in rows]
    profiles = await read_profiles(connection, tenant, [i.profile_id for i in instances])
    outbox: list[Outboxed] = []
    for instance in instances:
        outcome, written, _ = await _move(engine, connection, tenant, instance, Resume(),
                                          profiles.get(instance.profile_id), now)
        INPUTS.labels("resume", outcome).inc()
        if written is not None:
            outbox += written.outbox
    return outbox
