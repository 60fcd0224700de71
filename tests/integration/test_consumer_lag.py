"""Consumer lag on the real broker (services/reactions/lag.py).

Nothing shared is stopped or slowed: the test makes its own topics and groups, writes
records nobody consumes and commits the offsets itself, and points the exporter's code at
them by adding its group to the catalogue (a parameter only tests pass). The running
reactions service is checked from the outside: it exports every catalogue group, and no
other name."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.protocol.admin import DeleteGroupsRequest
from prometheus_client import REGISTRY

from services.reactions.lag import poll_once
from shared.adapters.consumer_offsets import OffsetReader
from shared.consumer_groups import CONSUMER_GROUPS
from shared.domain.consumer_lag import OTHER, ConsumerGroup, Lag
from tests.integration.conftest import eventually, settings

REACTIONS_METRICS = f"http://127.0.0.1:{settings.reactions_metrics_port}/metrics"
CPU_PER_POLL_LIMIT_S = 0.05


@dataclass(frozen=True)
class Scene:
    topic: str  # the test group's own topic, 3 partitions
    side: str  # a topic the test group is not meant to read, 1 partition
    group: str
    stray: str  # a group no catalogue knows


@pytest.fixture
async def scene() -> AsyncIterator[Scene]:
    tag = uuid.uuid4().hex[:8]
    made = Scene(f"parcours.test.lag.{tag}", f"parcours.test.lag-side.{tag}",
                 f"lag-test-{tag}", f"lag-stray-{tag}")
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(made.topic, 3, 1), NewTopic(made.side, 1, 1)])
        yield made
    finally:
        await admin.delete_topics([made.topic, made.side])
        await delete_groups(admin, made.group, made.stray)
        await admin.close()


async def delete_groups(admin: AIOKafkaAdminClient, *groups: str) -> None:
    """Else the empty groups stay listed (as unknown) until the broker's offsets cleanup;
    aiokafka's admin client has no call for it, so the request is sent as is."""
    for group in groups:
        coordinator = await admin.find_coordinator(group)
        await admin._send_request(DeleteGroupsRequest([group]), coordinator)


async def produce(producer: AIOKafkaProducer, topic: str, counts: dict[int, int]) -> None:
    for partition, count in counts.items():
        for n in range(count):
            await producer.send(topic, f"r{n}".encode(), partition=partition)
    await producer.flush()


async def commit(group: str, offsets: dict[tuple[str, int], int]) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=group,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = {TopicPartition(*p): offset for p, offset in offsets.items()}
        consumer.assign(list(partitions))
        await consumer.commit(partitions)
    finally:
        await consumer.stop()


def exported(group: str, topic: str) -> tuple[float | None, float | None]:
    labels = {"group": group, "topic": topic}
    return (REGISTRY.get_sample_value("parcours_kafka_consumer_lag_records", labels),
            REGISTRY.get_sample_value("parcours_kafka_consumer_lag_max_partition_records",
                                      labels))


async def test_lag_follows_what_a_group_has_still_to_read(
        scene: Scene, producer: AIOKafkaProducer) -> None:
    catalogue = (*CONSUMER_GROUPS, ConsumerGroup(scene.group, (scene.topic,)))
    reader = OffsetReader(settings)
    await reader.start()
    try:
        async def lag_of(topic: str) -> Lag | None:
            lags = await poll_once(reader, catalogue)
            return next((x for x in lags if (x.group, x.topic) == (scene.group, topic)), None)

        await produce(producer, scene.topic, {0: 12, 1: 10, 2: 8})
        # Nothing committed yet: the group would read every record from the start.
        first = await lag_of(scene.topic)
        assert first is not None and (first.records, first.max_partition) == (30, 12)
        assert exported(scene.group, scene.topic) == (30, 12)

        await commit(scene.group, {(scene.topic, 0): 12, (scene.topic, 1): 4})
        read = await lag_of(scene.topic)
        assert read is not None and (read.records, read.max_partition, read.position) == (
            14, 8, 16)

        await produce(producer, scene.topic, {0: 5})
        grown = await lag_of(scene.topic)
        assert grown is not None and (grown.records, grown.max_partition) == (19, 8)

        # A topic outside its catalogue entry is labelled "other", never by its name.
        await produce(producer, scene.side, {0: 3})
        await commit(scene.group, {(scene.side, 0): 1})
        other = await lag_of(OTHER)
        assert other is not None and other.records == 2
        assert exported(scene.group, scene.side) == (None, None)

        # A group no catalogue knows is counted, never named.
        await commit(scene.stray, {(scene.topic, 0): 1})
        lags = await poll_once(reader, catalogue)
        assert scene.stray not in {x.group for x in lags}
        assert exported(scene.stray, scene.topic) == (None, None)
        assert (REGISTRY.get_sample_value("parcours_kafka_consumer_groups_unknown") or 0) >= 1

        polls, began = 20, time.process_time()
        for _ in range(polls):
            await poll_once(reader, catalogue)
        per_poll = (time.process_time() - began) / polls
        print(f"consumer lag poll: {per_poll * 1000:.1f} ms CPU for {len(catalogue)} groups")
        assert per_poll < CPU_PER_POLL_LIMIT_S
    finally:
        await reader.close()


SERIES = re.compile(
    r'^parcours_kafka_consumer_lag_records\{group="([^"]*)",topic="([^"]*)"\} (\S+)$', re.M)


async def reactions_metrics() -> str:
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(REACTIONS_METRICS)
        response.raise_for_status()
        return response.text


def done_polls(text: str) -> float:
    found = re.search(r'^parcours_kafka_consumer_lag_polls_total\{outcome="done"\} (\S+)$',
                      text, re.M)
    return float(found.group(1)) if found else 0.0


async def _committed_groups() -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        return {g.name for g in CONSUMER_GROUPS
                if await admin.list_consumer_group_offsets(g.name)}
    finally:
        await admin.close()


async def test_the_reactions_service_exports_every_catalogue_group_and_no_other(
        scene: Scene) -> None:
    await commit(scene.stray, {(scene.topic, 0): 0})  # on the broker, unknown to the catalogue
    before = done_polls(await reactions_metrics())

    async def polled_again() -> str | None:
        text = await reactions_metrics()
        return text if done_polls(text) > before else None

    interval = settings.consumer_lag_interval_s
    text = await eventually(polled_again, "a consumer-lag poll of the reactions service",
                            deadline_s=2 * interval + 10)
    series = {(group, topic): float(value) for group, topic, value in SERIES.findall(text)}
    # A group that has committed nothing yet (on a fresh stack, a sender no message went
    # through) has no offsets the broker can give: it is left out until its first commit.
    committed = await _committed_groups()
    expected = {(g.name, t) for g in CONSUMER_GROUPS for t in g.topics if g.name in committed}
    assert expected, "no catalogue group has committed: the check proves nothing"
    assert expected <= series.keys(), f"missing {expected - series.keys()}"
    assert {group for group, _ in series} <= {g.name for g in CONSUMER_GROUPS}
    assert all(value >= 0 for value in series.values())
    unknown = re.search(r"^parcours_kafka_consumer_groups_unknown (\S+)$", text, re.M)
    assert unknown and float(unknown.group(1)) >= 1
