"""The gateway's resources: database pool, Kafka producer, caches. Built once per process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

import asyncpg
from pydantic import BaseModel, ConfigDict, Field, create_model

from shared.adapters import idempotency_store
from shared.adapters.catalog_store import CatalogCache
from shared.adapters.journey_event_store import JourneyEventTypesCache
from shared.adapters.postgres import DB_UNAVAILABLE, create_pool
from shared.adapters.producer import RenewingProducer
from shared.adapters.profile_schema_store import ProfileSchemaCache
from shared.api_auth import Authenticator
from shared.bounded import BoundedDict
from shared.domain.events import EventConfig, build_ingest_model
from shared.domain.lifecycle import PublishedEvent
from shared.settings import Settings

log = logging.getLogger(__name__)
# A partition's batch on the producer: a /batch call's 1,000 records (~300 bytes each, over
# the topic's partitions) go in one request instead of 16 kB a partition per round trip.
# Below the broker's message.max.bytes (1 MB).
PRODUCER_BATCH_BYTES = 512 * 1024
MAX_BATCH = 1000  # events a batch call


def build_batch_model(model: type[BaseModel]) -> type[BaseModel]:
    """``{"events": [request, ...]}``: up to MAX_BATCH requests of ``model``, nothing else."""
    batch: type[BaseModel] = create_model(
        f"{model.__name__}_batch", __config__=ConfigDict(extra="forbid"),
        events=(list[model], Field(max_length=MAX_BATCH)))  # type: ignore[valid-type]
    return batch


@dataclass
class Gateway:
    settings: Settings
    pool: asyncpg.Pool
    catalog: CatalogCache
    authenticator: Authenticator
    producer: RenewingProducer
    profile_schemas: ProfileSchemaCache = field(default=None)  # type: ignore[assignment]
    journey_event_types: JourneyEventTypesCache = field(default=None)  # type: ignore[assignment]
    # Keyed by the configuration itself: ids and versions repeat across tenants and when
    # an event is deleted and created again.
    _models: dict[EventConfig, type[BaseModel]] = field(
        default_factory=lambda: BoundedDict(1024))  # each configuration change adds one
    # The same lookup by the object the catalogue cache hands out, so the hot path neither
    # hashes nor compares the configuration (6% of the gateway's CPU under load). The
    # entry keeps its configuration alive, so an id is never reused while it is here.
    _by_identity: dict[int, tuple[EventConfig, type[BaseModel]]] = field(default_factory=dict)
    # An event's batch body, {"events": [request, ...]}, by its request model.
    _batch_models: dict[type[BaseModel], type[BaseModel]] = field(
        default_factory=lambda: BoundedDict(1024))
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def batch_model(self, published: PublishedEvent) -> type[BaseModel]:
        """``{"events": [...]}`` with up to MAX_BATCH of this event's requests, nothing else:
        a whole batch validated in one pass."""
        model = self.ingest_model(published)
        batch = self._batch_models.get(model)
        if batch is None:
            batch = self._batch_models[model] = build_batch_model(model)
        return batch

    def ingest_model(self, published: PublishedEvent) -> type[BaseModel]:
        config = published.config
        hit = self._by_identity.get(id(config))
        if hit is not None and hit[0] is config:
            return hit[1]
        if config not in self._models:
            self._models[config] = build_ingest_model(config)
        if len(self._by_identity) >= 4096:  # each catalogue reload brings new objects
            self._by_identity.clear()
        model = self._models[config]
        self._by_identity[id(config)] = (config, model)
        return model

    @classmethod
    async def open(cls, settings: Settings) -> Gateway:
        pool = await create_pool(settings.pg_dsn, min_size=1, max_size=8)
        catalog = CatalogCache(pool, settings.config_cache_ttl_s)
        await catalog.listen(settings.pg_dsn)
        # The gateway starts even when Kafka is down (it answers 503 meanwhile) and
        # connects as soon as the broker is back; so does a renewed producer.
        producer = RenewingProducer(settings, "gateway", max_batch_size=PRODUCER_BATCH_BYTES)
        producer.start_in_background()
        profile_schemas = ProfileSchemaCache(pool)
        await profile_schemas.listen(settings.pg_dsn)
        gateway = cls(settings, pool, catalog, Authenticator(pool), producer, profile_schemas,
                      JourneyEventTypesCache(pool, settings.config_cache_ttl_s))
        gateway._tasks = [asyncio.create_task(gateway._forget_old_idempotency_keys())]
        return gateway

    async def _forget_old_idempotency_keys(self) -> None:
        while True:
            try:
                await idempotency_store.forget_older_than(self.pool,
                                                          self.settings.idempotency_hours)
            except DB_UNAVAILABLE as error:
                log.warning("could not forget old idempotency keys (%s)", error)
            await asyncio.sleep(600)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.producer.stop()
        await self.catalog.close()
        if self.profile_schemas is not None:
            await self.profile_schemas.close()
        await self.pool.close()
