"""Parcours' Kafka clients authenticate as a production broker demands: the local broker's
SASL_PLAINTEXT listener (SCRAM-SHA-512, port 9094) takes the admin client, the renewing
producer and a consumer built from the PARCOURS_KAFKA_* security settings, and refuses a
wrong password. TLS takes the same settings path (``client_security``)."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from shared.adapters.kafka import client_security, ensure_topics, manual_consumer
from shared.adapters.producer import RenewingProducer
from shared.settings import RUN_DIR, Settings
from shared.topics import Topic
from tests.integration.conftest import ROOT, eventually

USER, PASSWORD = "parcours-security-test", uuid.uuid4().hex


def _add_scram_user() -> None:
    """As an operator would (kafka-configs.sh --alter --entity-type users ...)."""
    lib = (RUN_DIR / "kafka-lib").read_text().strip()
    subprocess.run(
        ["java", "-cp", f"{lib}/*",
         f"-Dlog4j2.configurationFile={ROOT / 'deploy/kafka/log4j2.properties'}",
         "kafka.admin.ConfigCommand", "--bootstrap-server", "127.0.0.1:9092", "--alter",
         "--entity-type", "users", "--entity-name", USER,
         "--add-config", f"SCRAM-SHA-512=[iterations=8192,password={PASSWORD}]"],
        check=True, capture_output=True, timeout=120)


def sasl(password: str) -> Settings:
    return Settings(kafka_bootstrap="127.0.0.1:9094", kafka_security_protocol="SASL_PLAINTEXT",
                    kafka_sasl_mechanism="SCRAM-SHA-512", kafka_sasl_username=USER,
                    kafka_sasl_password=password, kafka_request_timeout_ms=5000)


@pytest.fixture(scope="module")
async def topic() -> AsyncIterator[Topic]:
    await asyncio.to_thread(_add_scram_user)
    settings = sasl(PASSWORD)
    throwaway = Topic(f"parcours.test.security.{uuid.uuid4().hex[:8]}", "none", 1, "-", "test")

    async def created() -> list[str] | None:  # the credential reaches the broker first
        try:
            return await ensure_topics(settings, (throwaway,))
        except KafkaError:
            return None

    assert await eventually(created, "topic creation over SASL", deadline_s=30) == [
        throwaway.name]
    yield throwaway
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap,
                                **client_security(settings))
    await admin.start()
    try:
        await admin.delete_topics([throwaway.name])
    finally:
        await admin.close()


async def test_producer_and_consumer_authenticate_with_scram(topic: Topic) -> None:
    settings = sasl(PASSWORD)
    producer = RenewingProducer(settings, "security-test")
    await producer.start()
    marker = uuid.uuid4().hex.encode()
    try:
        await producer.deliver(topic.name, marker, b"key")
    finally:
        await producer.stop()
    consumer = manual_consumer(settings.kafka_bootstrap, f"security-test-{uuid.uuid4().hex}",
                               topic.name, **client_security(settings))
    await consumer.start()
    try:
        async def read() -> bool:
            batches = await consumer.getmany(timeout_ms=500)
            return any(r.value == marker for rs in batches.values() for r in rs)

        assert await eventually(read, "the record read back over SASL")
    finally:
        await consumer.stop()


async def test_a_wrong_password_is_refused(
    topic: Topic, caplog: pytest.LogCaptureFixture
) -> None:
    producer = RenewingProducer(sasl("not-" + PASSWORD), "security-test")
    with caplog.at_level(logging.ERROR, logger="aiokafka"), pytest.raises(KafkaError):
        async with asyncio.timeout(30):
            await producer.start()
    await producer.stop()
    # aiokafka says "unable to bootstrap" whatever the cause: the broker must have said why.
    assert "SaslAuthenticationFailed" in caplog.text
