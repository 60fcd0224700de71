"""The real stack as the P benchmarks see it: the bench event, readiness, consumer lag,
and the metrics the services expose. Every wait polls with a deadline."""

from __future__ import annotations

import asyncio
import os
import time
import urllib.request

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from bench.common import (
    BENCH_EVENT,
    BENCH_TEMPLATE,
    GATEWAY,
    TENANT,
    ingest_bodies,
    overwrite,
    progress,
    request_headers,
    settings,
)
from bench.stats import prometheus_samples
from shared.adapters.catalog_store import save_event
from shared.adapters.key_store import create_key
from shared.adapters.postgres import create_pool
from shared.domain.api_keys import Scope
from shared.topics import EVENTS_IN, SEND_EMAIL_BULK, SEND_EMAIL_TX, Topic

EVENT_URL = f"{GATEWAY}/v1/events/{BENCH_EVENT.event_id}"
PROCESSOR_METRICS = f"http://127.0.0.1:{settings.processor_metrics_port}/metrics"
# Consumer groups of the chain, and the topic each one reads.
GROUPS: dict[str, Topic] = {"parcours-processor": EVENTS_IN,
                            "parcours-sender-email": SEND_EMAIL_TX,
                            "parcours-sender-email-bulk": SEND_EMAIL_BULK}


async def _publish() -> None:
    pool = await create_pool(settings.pg_dsn, min_size=1, max_size=1)
    try:
        await save_event(pool, TENANT, BENCH_EVENT, BENCH_TEMPLATE)
        if "PARCOURS_BENCH_KEY" not in os.environ:  # no rate limit that a bench could hit
            async with pool.acquire() as connection:
                os.environ["PARCOURS_BENCH_KEY"] = await create_key(
                    connection, TENANT, Scope.INGEST, "bench", rate_per_s=10_000_000)
    finally:
        await pool.close()


def _post(url: str, body: bytes) -> int:
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers=request_headers())
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return 0


def prepare_gateway(deadline_s: float = 60) -> None:
    """Publish EVTbench and wait until the gateway accepts it (its catalogue cache may
    still hold an older answer for a couple of seconds)."""
    asyncio.run(_publish())
    end = time.monotonic() + deadline_s
    probe = ingest_bodies(1)[0]  # expired: the processor ends it without an email
    while (status := _post(EVENT_URL, probe)) != 202:
        if time.monotonic() > end:
            raise TimeoutError(f"the gateway answers {status} to {EVENT_URL} after "
                               f"{deadline_s:.0f}s; is the stack up (`make status`)?")
        time.sleep(0.2)


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def counter_total(url: str, name: str) -> float:
    """Sum of a counter over all its label sets."""
    return sum(value for _labels, value in prometheus_samples(scrape(url), name))


class LagProbe:
    """Each group's committed offsets and its topic's end offsets (summed over partitions),
    with the clients kept open between readings."""

    async def __aenter__(self) -> LagProbe:
        self._admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap,
                                          request_timeout_ms=5000)
        self._consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap,
                                          request_timeout_ms=5000)
        await self._admin.start()
        await self._consumer.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._consumer.stop()
        await self._admin.close()

    async def offsets(self) -> dict[str, tuple[int, int]]:
        """group → (records committed, records written), over the topic's partitions."""
        found = {}
        for group, topic in GROUPS.items():
            partitions = [TopicPartition(topic.name, p) for p in range(topic.partitions)]
            committed = await self._admin.list_consumer_group_offsets(group,
                                                                      partitions=partitions)
            ends = await self._consumer.end_offsets(partitions)
            starts = await self._consumer.beginning_offsets(partitions)
            done = sum(max(committed[tp].offset if tp in committed else -1, starts[tp])
                       for tp in partitions)
            found[group] = (done, sum(ends.values()))
        return found

    async def lags(self) -> dict[str, int]:
        return {group: end - done for group, (done, end) in (await self.offsets()).items()}


async def _lags() -> dict[str, int]:
    async with LagProbe() as probe:
        return await probe.lags()


def consumer_lags() -> dict[str, int]:
    return asyncio.run(asyncio.wait_for(_lags(), 30))


def wait_drained(label: str, deadline_s: float) -> tuple[bool, float, dict[str, int]]:
    """Poll every group's lag until it is 0; returns (drained, seconds waited, first lags)."""
    began = time.monotonic()
    first: dict[str, int] = {}
    while True:
        lags = consumer_lags()
        first = first or lags
        waited = time.monotonic() - began
        text = ", ".join(f"{g.removeprefix('parcours-')} {n:,}" for g, n in lags.items())
        overwrite(f"  {label}: consumer lag {text} ({waited:.0f}s)")
        if not any(lags.values()):
            progress("")
            return True, waited, first
        if waited > deadline_s:
            progress(f"  — still not drained after {deadline_s:.0f}s")
            return False, waited, first
        time.sleep(0.5)
