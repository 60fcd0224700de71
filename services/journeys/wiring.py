"""The engine's resources, opened once: a pool, a producer, the caches it reads through."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx

from services.journeys.event_entry import EntrySlots, EventEntryIndex
from shared.adapters import journey_version_store
from shared.adapters.catalog_store import CatalogCache
from shared.adapters.journey_event_store import JourneyEventTypesCache
from shared.adapters.journey_store import WholeCohort
from shared.adapters.postgres import create_pool
from shared.adapters.producer import RenewingProducer
from shared.adapters.profile_schema_store import ProfileSchemaCache
from shared.adapters.rules_store import TenantRulesCache
from shared.adapters.signing_keys import SigningKeyCache
from shared.bounded import BoundedDict
from shared.domain.audiences import profile_paths
from shared.domain.journeys.advance import Plan
from shared.domain.journeys.definition import parse_definition
from shared.domain.journeys.plan import compile_plan
from shared.outgoing.step import Step
from shared.settings import Settings

VersionKey = tuple[str, str, int]  # tenant, journey, version


@dataclass
class Engine:
    settings: Settings
    pool: asyncpg.Pool
    producer: RenewingProducer
    catalog: CatalogCache
    schemas: ProfileSchemaCache
    event_types: JourneyEventTypesCache
    step: Step
    http: httpx.AsyncClient
    signing_keys: SigningKeyCache  # the kafka keys that sign produced journey events
    # A version's definition never changes: its plan is compiled once (bounded: versions
    # come and go). The profile schema it was checked against may change; the admin
    # validates against it before publishing, and a condition that no longer fits the
    # data ends its instance in `error` with the reason, never the engine.
    plans: dict[VersionKey, Plan] = field(default_factory=lambda: BoundedDict(2048))
    # Cohorts entered whole, their members as entered, until the step relay publishes
    # their steps (it reads them back from their instances otherwise: 2-3 µs of
    # PostgreSQL and 1 of the engine a member). A chunk makes one or a few; a cohort is
    # at most a chunk (entry.MAX_SET_BATCH), so this holds at most 160,000 members.
    entered: dict[tuple[str, Any], WholeCohort] = field(default_factory=lambda: BoundedDict(16))
    event_entries: EventEntryIndex = field(default_factory=EventEntryIndex)
    entry_slots: EntrySlots = field(default_factory=EntrySlots)  # event entries' rates

    @classmethod
    async def open(cls, settings: Settings) -> Engine:
        # (an entry's chunks in flight, entry.IN_FLIGHT, and its reader hold four)
        pool = await create_pool(settings.pg_dsn, min_size=2, max_size=8)
        producer = RenewingProducer(settings, "journeys")
        producer.start_in_background()
        catalog = CatalogCache(pool, settings.config_cache_ttl_s)
        await catalog.listen(settings.pg_dsn)
        schemas = ProfileSchemaCache(pool)
        await schemas.listen(settings.pg_dsn)
        rules = TenantRulesCache(pool, settings.config_cache_ttl_s)
        await rules.listen(settings.pg_dsn)
        event_types = JourneyEventTypesCache(pool, settings.config_cache_ttl_s)
        http = httpx.AsyncClient(follow_redirects=False)
        signing_keys = SigningKeyCache(pool)
        await signing_keys.listen(settings.pg_dsn)
        return cls(settings, pool, producer, catalog, schemas, event_types,
                   Step(rules, schemas), http, signing_keys)

    async def close(self) -> None:
        await self.http.aclose()
        await self.producer.stop()
        await self.catalog.close()
        await self.pool.close()

    async def plan(self, key: VersionKey) -> Plan | None:
        """The version's plan; None when the version does not exist (deleted)."""
        plan = self.plans.get(key)
        if plan is not None:
            return plan
        row = await journey_version_store.get_version(self.pool, *key)
        if row is None:
            return None
        tenant = key[0]
        schema = (await self.schemas.get(tenant)).schema
        types = {i: c.event_type for i, c in (await self.event_types.get(tenant)).items()}
        # a send window's zone when the profile has none: the tenant's, as compiled now
        zone = (await self.step.rules.get(tenant)).settings.timeZone
        plan = compile_plan(parse_definition(row["definition"]), key[2],
                            profile_paths(schema), types, speed=row["speed"], tenant=tenant,
                            time_zone=zone)
        self.plans[key] = plan
        return plan
