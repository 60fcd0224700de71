"""The email sender's resources."""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared.adapters.catalog_store import CatalogCache
from shared.adapters.kafka import manual_consumer, safe_producer
from shared.adapters.postgres import connect, create_pool
from shared.adapters.smtp import SmtpPool
from shared.domain.rendering import CompiledMessage
from shared.settings import Settings
from shared.topics import SEND_EMAIL_TX

GROUP = "parcours-sender-email"


@dataclass
class Sender:
    settings: Settings
    pool: asyncpg.Pool
    connection: asyncpg.Connection
    catalog: CatalogCache
    consumer: AIOKafkaConsumer
    producer: AIOKafkaProducer
    smtp: SmtpPool
    templates: dict[tuple[str, str, bytes], CompiledMessage] = field(default_factory=dict)

    @classmethod
    async def open(cls, settings: Settings) -> Sender:
        pool = await create_pool(settings.pg_dsn, min_size=1, max_size=2)
        connection = await connect(settings.pg_dsn)
        consumer = manual_consumer(settings.kafka_bootstrap, GROUP, SEND_EMAIL_TX.name,
                                   max_poll_records=200)
        producer = safe_producer(settings.kafka_bootstrap, settings.kafka_request_timeout_ms)
        await consumer.start()
        await producer.start()
        smtp = SmtpPool(settings.smtp_host, settings.smtp_port, settings.smtp_timeout_s,
                        settings.smtp_connections)
        return cls(settings, pool, connection, CatalogCache(pool, settings.config_cache_ttl_s),
                   consumer, producer, smtp)

    async def ensure_db(self) -> None:
        if self.connection.is_closed():
            self.connection = await connect(self.settings.pg_dsn)

    async def close(self) -> None:
        await self.consumer.stop()
        await self.producer.stop()
        await self.smtp.close()
        await self.connection.close()
        await self.pool.close()
