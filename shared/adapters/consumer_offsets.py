"""Reads what consumer lag is computed from (shared/domain/consumer_lag.py): the groups the
broker lists, the offsets the catalogue's groups committed, and the log start and end
offsets of every partition they read. One admin client and one consumer without a group,
kept open between polls; about 2 requests per group and 4 more per poll."""

from __future__ import annotations

import asyncio
from collections.abc import Collection

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shared.adapters.kafka import client_security
from shared.domain.consumer_lag import ConsumerGroup, Offsets, Partition
from shared.settings import Settings


class OffsetReader:
    def __init__(self, settings: Settings) -> None:
        options = {"bootstrap_servers": settings.kafka_bootstrap,
                   "request_timeout_ms": settings.kafka_request_timeout_ms,
                   **client_security(settings)}
        self._admin = AIOKafkaAdminClient(**options)
        self._consumer = AIOKafkaConsumer(group_id=None, enable_auto_commit=False, **options)

    async def start(self) -> None:
        await self._admin.start()
        await self._consumer.start()

    async def close(self) -> None:
        await self._consumer.stop()
        await self._admin.close()

    async def read(self, catalogue: Collection[ConsumerGroup]) -> Offsets:
        listed = frozenset(name for name, *_ in await self._admin.list_consumer_groups())
        names = [group.name for group in catalogue if group.name in listed]
        answers = await asyncio.gather(
            *(self._admin.list_consumer_group_offsets(name) for name in names))
        # A group the broker does not list has no offsets (never committed, or expired).
        committed: dict[str, dict[Partition, int]] = {
            group.name: {} for group in catalogue if group.name not in listed}
        for name, got in zip(names, answers, strict=True):
            # aiokafka drops a group-level error (a coordinator loading or moved) and returns
            # nothing: rather than count such a group from the start, skip it this poll (a
            # listed group that has not committed yet is skipped too, until it does).
            if got:
                committed[name] = {(tp.topic, tp.partition): meta.offset
                                   for tp, meta in got.items()}
        wanted = {t for group in catalogue for t in group.topics}
        wanted |= {p[0] for offsets in committed.values() for p in offsets}
        described = await self._admin.describe_topics(sorted(wanted))
        partitions = [TopicPartition(topic["topic"], p["partition"]) for topic in described
                      if not topic["error_code"] for p in topic["partitions"]]
        starts = await self._consumer.beginning_offsets(partitions)
        ends = await self._consumer.end_offsets(partitions)
        return Offsets(listed, committed, _plain(starts), _plain(ends))


def _plain(offsets: dict[TopicPartition, int]) -> dict[Partition, int]:
    return {(tp.topic, tp.partition): offset for tp, offset in offsets.items()}
