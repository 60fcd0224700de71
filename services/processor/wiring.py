"""The processor's resources, opened once per worker."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from aiokafka import AIOKafkaProducer

from shared.adapters.catalog_store import CatalogCache
from shared.adapters.kafka import safe_producer
from shared.adapters.postgres import connect, create_pool
from shared.settings import Settings


@dataclass
class Processor:
    settings: Settings
    pool: asyncpg.Pool  # catalog reads
    connection: asyncpg.Connection  # held, not pooled: a pool's reset query doubles round trips
    catalog: CatalogCache
    producer: AIOKafkaProducer

    @classmethod
    async def open(cls, settings: Settings) -> Processor:
        pool = await create_pool(settings.pg_dsn, min_size=1, max_size=2)
        connection = await connect(settings.pg_dsn)
        producer = safe_producer(settings.kafka_bootstrap, settings.kafka_request_timeout_ms)
        await producer.start()
        catalog = CatalogCache(pool, settings.config_cache_ttl_s)
        await catalog.listen(settings.pg_dsn)
        return cls(settings, pool, connection, catalog, producer)

    async def ensure_db(self) -> None:
        if self.connection.is_closed():
            self.connection = await connect(self.settings.pg_dsn)
