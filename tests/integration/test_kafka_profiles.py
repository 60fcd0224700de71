"""Profiles from Kafka (parcours.profiles.v1) on the real stack: profile-ingest applies a
signed upsert, lets the later write win by its timestamp whoever made it, erases on a
tombstone, and dead-letters another tenant's record, an invalid attribute and a value that
is not JSON with the reason, writing nothing, while the partition keeps flowing."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from services.profile_ingest.wiring import GROUP as INGEST_GROUP
from shared.adapters import consent_store, profile_store
from shared.adapters.key_store import create_key, create_tenant
from shared.adapters.profile_schema_store import save_schema
from shared.domain.api_keys import Scope
from shared.domain.profile_records import profile_key
from shared.domain.profile_schema import ProfileSchema
from shared.kafka_profiles import profile_tombstone, profile_upsert
from shared.kafka_signing import RecordSigner
from shared.topics import DEADLETTER, PROFILES
from tests.integration.conftest import (
    GATEWAY,
    dead_letter_where,
    end_offsets,
    eventually,
    kafka_signer,
    settings,
)

METRICS = f"http://127.0.0.1:{settings.profile_ingest_metrics_port}/metrics"


@dataclass
class Tenant:
    tenant: str
    signer: RecordSigner
    api: httpx.AsyncClient  # the profile API with a profiles key of the tenant


async def _tenant(pool: asyncpg.Pool, label: str) -> tuple[str, RecordSigner, str]:
    tenant = f"{label}-{uuid.uuid4().hex[:8]}"
    async with pool.acquire() as connection:
        await create_tenant(connection, tenant, f"Tenant {label}")
        await save_schema(connection, tenant, ProfileSchema.model_validate({
            "attributes": [{"name": "loyaltyTier", "type": "string"},
                           {"name": "lifetimeValue", "type": "decimal"}],
            "topics": [{"id": "newsletter"}]}))
        profiles_key = await create_key(connection, tenant, Scope.PROFILES, "tests")
    return tenant, await kafka_signer(pool, tenant), profiles_key


@pytest.fixture(scope="module")
async def acme(pool: asyncpg.Pool) -> AsyncIterator[Tenant]:
    tenant, signer, key = await _tenant(pool, "acme")
    async with httpx.AsyncClient(base_url=f"{GATEWAY}/v1/profiles", timeout=30,
                                 headers={"authorization": f"Bearer {key}"}) as api:
        yield Tenant(tenant, signer, api)


@pytest.fixture(scope="module")
async def other(pool: asyncpg.Pool) -> RecordSigner:
    """A kafka key of another tenant."""
    _, signer, _ = await _tenant(pool, "other")
    return signer


@pytest.fixture(scope="module")
async def kafka() -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all",
                                enable_idempotence=True)
    await producer.start()
    yield producer
    await producer.stop()


async def produce(kafka: AIOKafkaProducer, key: bytes, value: bytes | None,
                  headers: list[tuple[str, bytes]], timestamp_ms: int | None = None) -> None:
    await kafka.send_and_wait(PROFILES.name, value, key=key, headers=headers,
                              timestamp_ms=timestamp_ms)


async def stored(pool: asyncpg.Pool, tenant: str, profile_id: str) -> dict[str, Any] | None:
    async with pool.acquire() as connection:
        return await profile_store.read_profile(connection, tenant, profile_id)


async def until_stored(pool: asyncpg.Pool, tenant: str, profile_id: str, **expected: Any
                       ) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        row = await stored(pool, tenant, profile_id)
        return row if row is not None and all(
            row.get(k) == v for k, v in expected.items()) else None

    return await eventually(probe, f"profile {profile_id} with {expected}")


async def dead_letter_keyed(before: dict[int, int], key: bytes) -> dict[str, Any]:
    """The dead letter of the record keyed ``key``, written after ``before``."""
    return await dead_letter_where(before, lambda record, _letter: record.key == key,
                                   f"a dead letter keyed {key!r}")


def pid() -> str:
    return f"cust-{uuid.uuid4().hex[:12]}"


async def test_a_signed_upsert_creates_then_merges_into_the_profile(
    pool: asyncpg.Pool, acme: Tenant, kafka: AIOKafkaProducer
) -> None:
    profile_id = pid()
    await produce(kafka, *profile_upsert(acme.signer, acme.tenant, profile_id, {
        "email": "ada@example.com", "firstName": "Ada",
        "attributes": {"loyaltyTier": "gold", "lifetimeValue": "1234.50"},
        "consent": {"email": {"marketing": "opted-in"}}, "topics": {"newsletter": True},
        "consentSource": "crm"}))
    row = await until_stored(pool, acme.tenant, profile_id, first_name="Ada")
    assert row["email"] == "ada@example.com"
    assert str(row["attributes"]["lifetimeValue"]) == "1234.50"
    await produce(kafka, *profile_upsert(acme.signer, acme.tenant, profile_id,
                                         {"city": "Leeds"}))
    row = await until_stored(pool, acme.tenant, profile_id, city="Leeds")
    assert row["first_name"] == "Ada"  # merged: what was left out stays
    # read back through the profile API too: consent and subscription from the record
    document = (await acme.api.get(f"/{profile_id}")).json()
    assert document["consent"]["email"]["marketing"] == "opted-in"
    assert document["consent"]["email"]["marketingSource"] == "crm"
    assert document["topics"]["newsletter"]["subscribed"] is True
    await produce(kafka, *profile_upsert(acme.signer, acme.tenant, profile_id,
                                         {"firstName": "Grace"}, mode="replace"))
    row = await until_stored(pool, acme.tenant, profile_id, first_name="Grace")
    assert row["city"] is None and row["email"] is None  # replaced: left out is cleared


async def test_an_older_record_after_a_newer_api_write_changes_nothing(
    pool: asyncpg.Pool, acme: Tenant, kafka: AIOKafkaProducer
) -> None:
    profile_id = pid()
    response = await acme.api.put(f"/{profile_id}", json={"firstName": "FromApi"})
    assert response.status_code == 201, response.text
    an_hour_ago = int(time.time() * 1000) - 3_600_000
    await produce(kafka, *profile_upsert(acme.signer, acme.tenant, profile_id,
                                         {"firstName": "OldCrm", "city": "Paris"}),
                  timestamp_ms=an_hour_ago)
    # the next record of the same key (same partition, read after it) is newer: applied
    await produce(kafka, *profile_upsert(acme.signer, acme.tenant, profile_id,
                                         {"lastName": "Lovelace"}))
    row = await until_stored(pool, acme.tenant, profile_id, last_name="Lovelace")
    assert row["first_name"] == "FromApi" and row["city"] is None
    # and an API write older than the last Kafka write is refused the same way: 409
    assert (await acme.api.get(f"/{profile_id}")).json()["lastName"] == "Lovelace"


async def test_a_poll_of_records_each_at_its_own_time_and_one_out_of_order(
    pool: asyncpg.Pool, acme: Tenant, kafka: AIOKafkaProducer
) -> None:
    """Records sent together (one poll, most likely) with distinct timestamps, each
    applied at its own: per profile the newest wins, an older record read after a newer
    one of the same key changes nothing, and consent changes keep their own dates."""
    base = int(time.time() * 1000) - 60_000
    profiles = [pid() for _ in range(20)]
    sends = []
    for i, profile_id in enumerate(profiles):
        for step, (city, offset) in enumerate((("first", 0), ("newest", 2), ("older", 1))):
            body: dict[str, Any] = {"city": f"{city}-{i}", "attributes": {"loyaltyTier": city}}
            if i == 0:
                body["consent"] = {"email": {"marketing": ("opted-in", "opted-out",
                                                          "opted-in")[step]}}
            key, value, headers = profile_upsert(acme.signer, acme.tenant, profile_id, body)
            sends.append(await kafka.send(PROFILES.name, value, key=key, headers=headers,
                                          timestamp_ms=base + 1000 * (3 * i + offset)))
    for sent in sends:
        await sent
    ends = await end_offsets(PROFILES)
    for i, profile_id in enumerate(profiles):
        row = await until_stored(pool, acme.tenant, profile_id, city=f"newest-{i}")
        assert row["attributes"] == {"loyaltyTier": "newest"}
        assert int(row["written_at"].timestamp() * 1000) == base + 1000 * (3 * i + 2)
    # the last record of every key is the older one: once profile-ingest has committed
    # past it, the rows must still hold the newest
    await eventually(lambda: committed_past(INGEST_GROUP, ends), "profile-ingest past them")
    async with pool.acquire() as connection:
        for i, profile_id in enumerate(profiles):
            row = await profile_store.read_profile(connection, acme.tenant, profile_id)
            assert row is not None and row["city"] == f"newest-{i}", (i, row)
        [consent] = await consent_store.read_consent(connection, acme.tenant, profiles[0])
        history = await consent_store.read_history(connection, acme.tenant, profiles[0])
    assert (consent.value, int(consent.changed_at.timestamp() * 1000)) == (
        "opted-out", base + 2000)
    assert [h["value"] for h in history] == ["opted-in", "opted-out"]


async def committed_past(group: str, ends: dict[int, int]) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return all((c := committed.get(TopicPartition(PROFILES.name, p))) is not None
               and c.offset >= end for p, end in ends.items())


async def test_a_tombstone_erases_the_profile_and_its_consent(
    pool: asyncpg.Pool, acme: Tenant, kafka: AIOKafkaProducer
) -> None:
    profile_id = pid()
    await produce(kafka, *profile_upsert(acme.signer, acme.tenant, profile_id, {
        "email": "erase-me@example.com", "consent": {"email": {"marketing": "opted-in"}},
        "pushDevices": [{"registrationToken": "tok-1", "application": "shop",
                         "pushPlatform": "fcm"}]}))
    await until_stored(pool, acme.tenant, profile_id, email="erase-me@example.com")
    async with pool.acquire() as connection:
        assert await consent_store.read_consent(connection, acme.tenant, profile_id)
    await produce(kafka, *profile_tombstone(acme.signer, acme.tenant, profile_id))

    async def erased() -> bool:
        return await stored(pool, acme.tenant, profile_id) is None

    await eventually(erased, "the profile erased")
    async with pool.acquire() as connection:
        assert not await consent_store.read_consent(connection, acme.tenant, profile_id)
        history = await connection.fetchval(
            "SELECT count(*) FROM consent_history WHERE tenant_id = $1 AND profile_id = $2",
            acme.tenant, profile_id)
    assert history == 0
    assert (await acme.api.get(f"/{profile_id}")).status_code == 404


async def test_another_tenants_key_is_dead_lettered_and_writes_nothing(
    pool: asyncpg.Pool, acme: Tenant, other: RecordSigner, kafka: AIOKafkaProducer
) -> None:
    profile_id = pid()
    before = await end_offsets(DEADLETTER)
    key, value, headers = profile_upsert(other, acme.tenant, profile_id, {"firstName": "Eve"})
    await produce(kafka, key, value, headers)
    letter = await dead_letter_keyed(before, key)
    assert letter["stage"] == "profile-ingest"
    assert letter["reason"].startswith("forbidden: the record's key names a tenant")
    assert await stored(pool, acme.tenant, profile_id) is None
    # a tombstone signed by the other tenant erases nothing either
    await produce(kafka, *profile_upsert(acme.signer, acme.tenant, profile_id,
                                         {"firstName": "Ada"}))
    await until_stored(pool, acme.tenant, profile_id, first_name="Ada")  # flowing
    before = await end_offsets(DEADLETTER)
    await produce(kafka, *profile_tombstone(other, acme.tenant, profile_id))
    letter = await dead_letter_keyed(before, key)
    assert letter["reason"].startswith("forbidden:")
    assert letter["original"] == ""
    await produce(kafka, *profile_upsert(acme.signer, acme.tenant, profile_id,
                                         {"city": "Leeds"}))
    row = await until_stored(pool, acme.tenant, profile_id, city="Leeds")
    assert row["first_name"] == "Ada"  # never erased


async def test_unsigned_invalid_and_not_json_records_are_dead_lettered_with_the_reason(
    pool: asyncpg.Pool, acme: Tenant, kafka: AIOKafkaProducer
) -> None:
    profile_id = pid()
    key = profile_key(acme.tenant, profile_id)
    cases: list[tuple[bytes | None, list[tuple[str, bytes]], str]] = []
    _, value, headers = profile_upsert(acme.signer, acme.tenant, profile_id,
                                       {"attributes": {"lifetimeValue": "lots"}})
    cases.append((value, headers, "invalid: profile.attributes.lifetimeValue:"))
    _, value, headers = profile_upsert(acme.signer, acme.tenant, profile_id,
                                       {"attributes": {"shoeSize": 42}})
    cases.append((value, headers, "invalid: profile.attributes.shoeSize: not an attribute"))
    garbage = b"{not json"
    cases.append((garbage, acme.signer.headers(garbage), "invalid: not JSON"))
    _, value, _ = profile_upsert(acme.signer, acme.tenant, profile_id, {"firstName": "X"})
    assert value is not None
    cases.append((value, [], "unsigned: the record has no parcours-key-id header"))
    cases.append((value.replace(b"X", b"Y"), acme.signer.headers(value),
                  "unauthenticated: the signature does not match"))
    for value, headers, reason in cases:
        before = await end_offsets(DEADLETTER)
        await produce(kafka, key, value, headers)
        letter = await dead_letter_keyed(before, key)
        assert letter["reason"].startswith(reason), (reason, letter["reason"])
        assert letter["original"] == (value or b"").decode(errors="replace")
        assert await stored(pool, acme.tenant, profile_id) is None  # nothing written
    # the partition keeps flowing: the next record of the same key is applied
    await produce(kafka, *profile_upsert(acme.signer, acme.tenant, profile_id,
                                         {"attributes": {"lifetimeValue": Decimal("19.90")}}))
    row = await until_stored(pool, acme.tenant, profile_id)
    assert str(row["attributes"]["lifetimeValue"]) == "19.90"
    metrics = (await acme.api.get(METRICS)).text
    assert 'parcours_profile_ingest_deadletter_total{reason="invalid"}' in metrics
    assert 'parcours_profile_ingest_records_total{outcome="refused"}' in metrics


async def test_the_topic_is_compacted_on_the_broker() -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        [response] = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, PROFILES.name)])
    finally:
        await admin.close()
    [(_code, _message, _type, name, entries)] = response.resources
    configs = {entry[0]: entry[1] for entry in entries}
    assert name == PROFILES.name
    assert configs["cleanup.policy"] == "compact"
    for name in ("delete.retention.ms", "min.compaction.lag.ms"):
        assert configs[name] == PROFILES.config[name], name
