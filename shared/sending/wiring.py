"""A sender's resources: PostgreSQL, Kafka, the catalogue, the delivery rules, the provider,
compiled templates."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import asyncpg
from aiokafka import AIOKafkaConsumer

from shared.adapters.catalog_store import CatalogCache
from shared.adapters.kafka import client_security, manual_consumer
from shared.adapters.postgres import connect_hot_path, create_pool
from shared.adapters.producer import RenewingProducer
from shared.adapters.profile_schema_store import ProfileSchemaCache
from shared.adapters.rebalance import DrainOnRevoke
from shared.adapters.rules_store import TenantRulesCache
from shared.bounded import BoundedDict
from shared.domain.locales import LocalisedMessage
from shared.domain.retry_backoff import RetryPolicy
from shared.sending.metrics import register_rule_outcomes
from shared.sending.spec import Provider, SenderSpec
from shared.settings import Settings


@dataclass
class Sender:
    spec: SenderSpec
    settings: Settings
    pool: asyncpg.Pool
    connection: asyncpg.Connection
    catalog: CatalogCache
    consumer: AIOKafkaConsumer
    producer: RenewingProducer
    provider: Provider
    profile_schemas: ProfileSchemaCache  # types the profile a record carries
    rules: TenantRulesCache  # control rules and quarantine thresholds, per tenant
    drain: DrainOnRevoke  # a rebalance waits for the batches under way (rebalance.py)
    # Bounded: each published version adds one; a rebuild costs one compilation.
    templates: dict[tuple[str, str, bytes], LocalisedMessage] = field(
        default_factory=lambda: BoundedDict(512))
    retry_policy: RetryPolicy = field(init=False)  # from the settings
    # Two batches are under way at once (shared.sending.app): the connection takes one
    # statement at a time, and a message of one is not claimed again by the next.
    _db_turn: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)
    in_flight: set[str] = field(default_factory=set, init=False)

    def __post_init__(self) -> None:
        settings = self.settings
        self.retry_policy = RetryPolicy(
            settings.send_retry_first_delay_s, settings.send_retry_max_delay_s,
            settings.send_retry_max_attempts, settings.send_retry_jitter)

    @classmethod
    async def open(cls, spec: SenderSpec, settings: Settings, batch: int) -> Sender:
        pool = await create_pool(settings.pg_dsn, min_size=1, max_size=2)
        connection = await connect_hot_path(settings)
        consumer = manual_consumer(settings.kafka_bootstrap, spec.group,
                                   max_poll_records=batch, **client_security(settings))
        drain = DrainOnRevoke()
        consumer.subscribe([spec.topic.name], listener=drain)
        producer = RenewingProducer(settings, spec.stage)
        catalog = CatalogCache(pool, settings.config_cache_ttl_s)
        await catalog.listen(settings.pg_dsn)
        profile_schemas = ProfileSchemaCache(pool)
        await profile_schemas.listen(settings.pg_dsn)
        register_rule_outcomes()
        rules = TenantRulesCache(pool, settings.config_cache_ttl_s)
        await rules.listen(settings.pg_dsn)
        await consumer.start()
        await producer.start()
        return cls(spec, settings, pool, connection, catalog, consumer, producer,
                   spec.open_provider(settings), profile_schemas, rules, drain)

    async def ensure_db(self) -> None:
        if self.connection.is_closed():
            self.connection = await connect_hot_path(self.settings)

    @asynccontextmanager
    async def db(self) -> AsyncIterator[asyncpg.Connection]:
        """The sender's connection, open, for one statement or transaction at a time
        (asyncpg refuses a second operation on a busy connection)."""
        async with self._db_turn:
            await self.ensure_db()
            yield self.connection

    async def close(self) -> None:
        await self.consumer.stop()
        await self.producer.stop()
        await self.provider.close()
        await self.catalog.close()
        await self.profile_schemas.close()
        await self.rules.close()
        await self.connection.close()
        await self.pool.close()
