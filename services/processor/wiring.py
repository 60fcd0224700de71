"""The processor's resources, opened once per worker."""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg
from pydantic import BaseModel

from services.processor.metrics import SIGNING_KEY_QUERIES
from shared.adapters.catalog_store import CatalogCache
from shared.adapters.postgres import connect_hot_path, create_pool
from shared.adapters.producer import RenewingProducer
from shared.adapters.profile_schema_store import ProfileSchemaCache
from shared.adapters.rules_store import TenantRulesCache
from shared.adapters.signing_keys import SigningKeyCache
from shared.bounded import BoundedDict
from shared.domain.events import EventConfig
from shared.domain.lifecycle import PublishedEvent
from shared.domain.produced import build_produced_model
from shared.outgoing.step import Step
from shared.settings import Settings


@dataclass
class Processor:
    settings: Settings
    pool: asyncpg.Pool  # catalog reads
    connection: asyncpg.Connection  # held, not pooled: a pool's reset query doubles round trips
    catalog: CatalogCache
    producer: RenewingProducer
    signing_keys: SigningKeyCache  # the kafka keys that sign records (record_signing)
    step: Step  # the delivery rules' decision step (tenants' rules and profile schemas)
    # Building a model is slow, validating with it fast. Keyed by the configuration itself:
    # a version number alone repeats across tenants, and after a delete and re-create.
    _models: dict[EventConfig, type[BaseModel]] = field(
        default_factory=lambda: BoundedDict(1024))  # each configuration change adds one

    @classmethod
    async def open(cls, settings: Settings) -> Processor:
        pool = await create_pool(settings.pg_dsn, min_size=1, max_size=2)
        connection = await connect_hot_path(settings)
        producer = RenewingProducer(settings, "processor")
        await producer.start()
        catalog = CatalogCache(pool, settings.config_cache_ttl_s)
        await catalog.listen(settings.pg_dsn)
        signing_keys = SigningKeyCache(pool, on_query=SIGNING_KEY_QUERIES.inc)
        await signing_keys.listen(settings.pg_dsn)
        schemas = ProfileSchemaCache(pool)
        await schemas.listen(settings.pg_dsn)
        rules = TenantRulesCache(pool, settings.config_cache_ttl_s)
        await rules.listen(settings.pg_dsn)
        step = Step(rules, schemas)
        return cls(settings, pool, connection, catalog, producer, signing_keys, step)

    def produced_model(self, published: PublishedEvent) -> type[BaseModel]:
        """What a record produced to Kafka for this published event must look like."""
        model = self._models.get(published.config)
        if model is None:
            model = self._models[published.config] = build_produced_model(published.config)
        return model

    async def ensure_db(self) -> None:
        if self.connection.is_closed():
            self.connection = await connect_hot_path(self.settings)

    async def close(self) -> None:
        await self.producer.stop()
        for cache in (self.catalog, self.signing_keys, self.step.schemas, self.step.rules):
            await cache.close()
        await self.connection.close()
        await self.pool.close()
