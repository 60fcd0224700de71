"""The consumer-lag exporter, a periodic job of the reactions service: every
``consumer_lag_interval_s`` it reads the committed offsets of the catalogue's consumer
groups (shared/consumer_groups.py) and the end offsets of what they read, and sets
``parcours_kafka_consumer_lag_records{group, topic}`` and its companions.

Here rather than in a new deployable (which compose, Kubernetes, Prometheus, the alerts
and the dashboard would all have to list) or on a hot path (the gateway, the processor,
the senders): the reactions service is long-running, off every request path, already
reaches Kafka and already runs a periodic job (the retention purge). Replicas each export
the same figures; queries take ``max by (group, topic)``."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection

from prometheus_client import Counter, Gauge

from shared.adapters.consumer_offsets import OffsetReader
from shared.consumer_groups import CONSUMER_GROUPS
from shared.domain.consumer_lag import ConsumerGroup, Lag, measure_lag, unknown_groups
from shared.settings import Settings

log = logging.getLogger(__name__)
FIRST_DELAY_S = 2.0

LAG = Gauge("parcours_kafka_consumer_lag_records",
            "Records a consumer group has still to read, summed over a topic's partitions"
            " (group and topic from the catalogue; other: a topic it was not meant to read)",
            ["group", "topic"])
LAG_MAX_PARTITION = Gauge("parcours_kafka_consumer_lag_max_partition_records",
                          "The most records any one partition of the topic has still to read",
                          ["group", "topic"])
POSITION = Gauge("parcours_kafka_consumer_position",
                 "The group's committed offsets summed over the topic's partitions: grows"
                 " while it reads", ["group", "topic"])
UNKNOWN_GROUPS = Gauge("parcours_kafka_consumer_groups_unknown",
                       "Consumer groups on the broker the catalogue does not know (not named)")
POLLS = Counter("parcours_kafka_consumer_lag_polls_total",
                "Consumer-lag polls, by outcome (done, failed)", ["outcome"])
for _outcome in ("done", "failed"):  # both series exist from the start, for the alert
    POLLS.labels(_outcome)
POLL_SECONDS = Gauge("parcours_kafka_consumer_lag_poll_seconds",
                     "How long the last completed consumer-lag poll took")

_exported: set[tuple[str, str]] = set()


def export(lags: list[Lag], unknown: int) -> None:
    """Set every gauge, and drop the series of a (group, topic) no longer measured."""
    current = set()
    for lag in lags:
        labels = (lag.group, lag.topic)
        current.add(labels)
        LAG.labels(*labels).set(lag.records)
        LAG_MAX_PARTITION.labels(*labels).set(lag.max_partition)
        POSITION.labels(*labels).set(lag.position)
    for gone in _exported - current:
        for gauge in (LAG, LAG_MAX_PARTITION, POSITION):
            gauge.remove(*gone)
    _exported.clear()
    _exported.update(current)
    UNKNOWN_GROUPS.set(unknown)


async def poll_once(reader: OffsetReader, catalogue: Collection[ConsumerGroup]) -> list[Lag]:
    began = time.monotonic()
    offsets = await reader.read(catalogue)
    lags = measure_lag(catalogue, offsets)
    export(lags, unknown_groups(catalogue, offsets.groups))
    POLLS.labels("done").inc()
    POLL_SECONDS.set(time.monotonic() - began)
    return lags


async def run(settings: Settings,
              catalogue: Collection[ConsumerGroup] = CONSUMER_GROUPS) -> None:
    """Until cancelled; a failed poll (Kafka away) reconnects and tries again next interval."""
    await asyncio.sleep(FIRST_DELAY_S)
    reader: OffsetReader | None = None
    try:
        while True:
            try:
                if reader is None:
                    reader = OffsetReader(settings)
                    await reader.start()
                await poll_once(reader, catalogue)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                POLLS.labels("failed").inc()
                log.warning("consumer lag poll failed (%s); next in %.0f s", error,
                            settings.consumer_lag_interval_s)
                if reader is not None:
                    await _close_quietly(reader)
                    reader = None
            await asyncio.sleep(settings.consumer_lag_interval_s)
    finally:  # closed on the way out, else asyncio logs an unclosed consumer as an error
        if reader is not None:
            await _close_quietly(reader)


async def _close_quietly(reader: OffsetReader) -> None:
    try:
        await reader.close()
    except Exception as error:  # a broken connection may fail to close; it is dropped anyway
        log.debug("closing the offset reader: %s", error)
