"""profile-ingest's resources, opened once per process."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from aiokafka import AIOKafkaConsumer

from services.profile_ingest.metrics import SIGNING_KEY_QUERIES
from shared.adapters.kafka import client_security, manual_consumer
from shared.adapters.postgres import connect, create_pool
from shared.adapters.producer import RenewingProducer
from shared.adapters.profile_schema_store import ProfileSchemaCache
from shared.adapters.signing_keys import SigningKeyCache
from shared.settings import Settings
from shared.topics import PROFILES

GROUP = "parcours-profile-ingest"
BATCH = 500


@dataclass
class Ingest:
    settings: Settings
    pool: asyncpg.Pool  # schema and key lookups
    connection: asyncpg.Connection  # the writes
    consumer: AIOKafkaConsumer
    producer: RenewingProducer  # dead letters
    schemas: ProfileSchemaCache
    signing_keys: SigningKeyCache

    @classmethod
    async def open(cls, settings: Settings) -> Ingest:
        pool = await create_pool(settings.pg_dsn, min_size=1, max_size=2)
        connection = await connect(settings.pg_dsn)
        schemas = ProfileSchemaCache(pool)
        await schemas.listen(settings.pg_dsn)
        signing_keys = SigningKeyCache(pool, on_query=SIGNING_KEY_QUERIES.inc)
        await signing_keys.listen(settings.pg_dsn)
        consumer = manual_consumer(settings.kafka_bootstrap, GROUP, PROFILES.name,
                                   max_poll_records=BATCH, **client_security(settings))
        producer = RenewingProducer(settings, "profile-ingest")
        await consumer.start()
        await producer.start()
        return cls(settings, pool, connection, consumer, producer, schemas, signing_keys)

    async def ensure_db(self) -> None:
        if self.connection.is_closed():
            self.connection = await connect(self.settings.pg_dsn)

    async def close(self) -> None:
        await self.consumer.stop()
        await self.producer.stop()
        await self.schemas.close()
        await self.signing_keys.close()
        await self.connection.close()
        await self.pool.close()
