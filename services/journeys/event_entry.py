"""Profiles entering a journey by an event: a journey event (JEV…, matched to its profile
by the type's key field) named by a live version's event entry. A profile enters when it
is not in the journey now, and — unless the entry allows re-entry — never was; with a
minimum gap, not sooner than that after its last entry. Test profiles enter test runs
only. A redelivered event makes the same instance (its id derives from the event), which
exists already: nobody enters twice on one event."""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import asyncpg

from services.journeys.metrics import ENTERED, count_steps
from shared.adapters import journey_holdout_store, journey_store, journey_version_store
from shared.adapters.journey_profiles import read_profiles
from shared.adapters.journey_store import Outboxed
from shared.bounded import BoundedDict
from shared.domain.journeys.advance import start
from shared.domain.journeys.definition import EventEntry
from shared.domain.journeys.holdout import held_out
from shared.domain.journeys.instance import JourneyEvent

if TYPE_CHECKING:
    from services.journeys.moves import Arrival
    from services.journeys.wiring import Engine

REFRESH_S = 5.0  # stopped versions leave the index within this


class EventEntryIndex:
    """Which live versions each (tenant, journey event) enters: one small query for every
    tenant (bounded by the versions that exist), read again when an event was accepted
    after the last read (so a journey published before an event was accepted takes it)
    and at least every REFRESH_S."""

    def __init__(self) -> None:
        self._read_at = float("-inf")  # wall clock: compared with events' acceptedAt
        self._by_event: dict[tuple[str, str], list[tuple[str, int, EventEntry]]] = {}

    async def get(self, pool: asyncpg.Pool, accepted_until: float = 0.0
                  ) -> dict[tuple[str, str], list[tuple[str, int, EventEntry]]]:
        now = time.time()
        if now - self._read_at > REFRESH_S or accepted_until >= self._read_at:
            by_event: dict[tuple[str, str], list[tuple[str, int, EventEntry]]] = \
                defaultdict(list)
            for row in await journey_version_store.event_entries(pool):
                entry = EventEntry.model_validate(row["entry"])
                by_event[(row["tenant_id"], entry.event_id)].append(
                    (row["journey_id"], row["version"], entry))
            self._by_event, self._read_at = dict(by_event), now
        return self._by_event


class EntrySlots:
    """The next free entry slot of each version whose event entry has a ``rate``: a
    profile arriving before it is held at the entry until its slot (a durable timer),
    one slot every 1/rate seconds. After a restart a version's schedule resumes after its
    last held profile's (read once from its timers), so the rate holds across restarts.
    Bounded by the live versions."""

    def __init__(self) -> None:
        self._next: BoundedDict[tuple[str, str, int], datetime] = BoundedDict(4096)

    async def slot(self, connection: asyncpg.Connection, key: tuple[str, str, int],
                   rate: int, now: datetime) -> datetime | None:
        """When the next profile may enter (None: now), its slot taken."""
        if key not in self._next:
            held = await journey_store.last_held(connection, *key)
            self._next[key] = max(now, held + timedelta(seconds=1 / rate)) if held else now
        at = max(now, self._next[key])
        self._next[key] = at + timedelta(seconds=1 / rate)
        return at if at > now else None


def entry_number(identity: str) -> int:
    """An event's entry, stable across redeliveries (its identity: time and payload)."""
    return int.from_bytes(hashlib.sha256(identity.encode()).digest()[:6], "big")


async def enter_by_events(engine: Engine, connection: asyncpg.Connection,
                          arrivals: Sequence[Arrival]) -> list[Outboxed]:
    """The outbox of the instances started."""
    events = [a for a in arrivals if isinstance(a.input, JourneyEvent)]
    if not events:
        return []
    index = await engine.event_entries.get(engine.pool,
                                           max(a.accepted_at for a in events))
    wanted = [(a, index[(a.tenant, a.input.event_id)]) for a in arrivals
              if isinstance(a.input, JourneyEvent) and (a.tenant, a.input.event_id) in index]
    if not wanted:
        return []
    now = datetime.now(UTC)
    profiles: dict[tuple[str, str], Any] = {}
    for tenant in {a.tenant for a, _ in wanted}:
        ids = [a.profile_id for a, _ in wanted if a.tenant == tenant]
        for profile_id, found in (await read_profiles(connection, tenant, ids)).items():
            profiles[(tenant, profile_id)] = found
    holdouts = {tenant: await journey_holdout_store.percent(connection, tenant)
                for tenant in {a.tenant for a, _ in wanted}}
    outbox: list[Outboxed] = []
    for arrival, versions in wanted:
        profile = profiles.get((arrival.tenant, arrival.profile_id))
        if profile is None or profile.is_test:
            continue
        held = held_out(arrival.tenant, arrival.profile_id, holdouts[arrival.tenant])
        for journey_id, version, entry in versions:
            history = await journey_store.entry_history(connection, arrival.tenant,
                                                        journey_id, arrival.profile_id)
            if history.waiting or (history.entries and not entry.reentry) or (
                    history.last_entered and now - history.last_entered < entry.min_gap):
                continue
            plan = await engine.plan((arrival.tenant, journey_id, version))
            if plan is None:
                continue
            hold_until = None if held or entry.rate is None else await engine.entry_slots.slot(
                connection, (arrival.tenant, journey_id, version), entry.rate, now)
            instance, effects = start(plan, arrival.profile_id,
                                      entry_number(arrival.identity), profile.record, now,
                                      held, hold_until)
            written = await journey_store.create(connection, arrival.tenant, instance,
                                                 effects, now)
            if written is not None:
                ENTERED.labels(journey_id).inc()
                count_steps(instance, effects)
                outbox += written.outbox
    return outbox
