"""P2: batch ingestion, over HTTP (``POST /v1/events/{eventId}/batch``, 1,000 events a
call) and straight to Kafka (signed records on ``parcours.events.kafka.v1``), beside B1
(the raw producer) and B3 (a pass-through Faust agent), all in the same run.

Two figures per route, each run ``events`` events (default 100,000):
- **accepted**: events/s into the input topic — over HTTP every item answered 202 (the
  gateway's 200 comes once the broker acknowledged each record, acks=all), straight to
  Kafka every record acknowledged; from the first call or record to the last answer;
- **through the processor**: events/s from the same start until the processor has
  committed the offsets of every one of them (it commits only once their statuses are
  written), then checked in PostgreSQL: each event of the run has its terminal status.

The events are the bench event's (three fields, ~150 bytes a body) with an expiration in
the past, in a tenant of their own (``bench-p2``), so the processor ends each one
``tooOld`` (validated — signature, tenant and fields for a Kafka record — decided, one
status written) and sends nothing: hundreds of thousands of emails would keep the SMTP
sink and the email sender busy for hours, and P4/P6 measure that part. It is the
processor's cheapest complete path (P1 uses it for the same reason): its rate is an
upper bound of what it does for events that become messages (no rules step, no send
record). Its rate is reported as a ratio to B3, the same hop with nothing in it: the
plain aiokafka loop the processor has been since c6a30fa, and, beside it, TARGETS'
Faust agent.

Targets (TARGETS P2): ≥ 20,000 events/s accepted and ≥ 0.5 × B1. CPU per event of the
gateway, the processor (every worker), the broker and PostgreSQL is read from /proc over
each phase, with the share of a core each used: a single-threaded service near 1.0 is the
limit. The tenant's statuses and keys are deleted after each run and at the end.

``python -m bench.p2_batch [--events N] [--quick]`` runs B1, B3 and P2 alone.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

import aiohttp
import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from bench import b1_kafka, b3_passthrough
from bench.common import (
    BENCH_DOMAIN,
    BENCH_EVENT,
    BENCH_TEMPLATE,
    GATEWAY,
    PAST_EXPIRATION,
    RUNS,
    CpuMeter,
    Row,
    chain_processes,
    machine_load,
    overwrite,
    progress,
    settings,
)
from bench.stats import busiest, cpu_per_item_us, median_of, ratio, reached_at
from shared.adapters.catalog_store import save_event
from shared.adapters.key_store import create_key, create_tenant
from shared.adapters.postgres import connect, create_pool
from shared.domain.api_keys import Scope
from shared.domain.events import EventConfig
from shared.kafka_signing import RecordSigner
from shared.topics import EVENTS_IN, EVENTS_KAFKA

TENANT = "bench-p2"
EVENT = EventConfig.model_validate({
    **BENCH_EVENT.model_dump(mode="json", exclude={"version"}),
    "event_id": "EVTbenchP2", "label": "Benchmark P2: batch ingestion (bench/)"})
BATCH = 1000  # events a call: the batch endpoint's maximum
HTTP_CONNECTIONS = 4  # calls in flight: the gateway is one process; 4 keep it busy
BODIES = 8  # distinct batch bodies, reused (each item gets a new pKey every time)
TARGET_RATE, TARGET_RATIO = 20_000, 0.5
POLL_S = 0.25
PROCESSOR_GROUP = "parcours-processor"
CHAIN = ("gateway", "processor", "kafka")


def _item(i: int, run_id: str) -> dict[str, Any]:
    return {"email": f"p2-{i % 4096:04d}@{BENCH_DOMAIN}",
            "ctx": {"orderId": f"{run_id}-{i}", "amount": 42.5},
            "expiration": PAST_EXPIRATION}


def batch_bodies(run_id: str, count: int = BODIES) -> list[bytes]:
    return [orjson.dumps({"events": [_item(b * BATCH + i, run_id) for i in range(BATCH)]})
            for b in range(count)]


def kafka_records(run_id: str, count: int, signer: RecordSigner
                  ) -> list[tuple[bytes, bytes, list[tuple[str, bytes]]]]:
    """(key, value, headers) of ``count`` signed records, each with its own eventKey."""
    out = []
    for i in range(count):
        item = _item(i, run_id)
        value = orjson.dumps({"tenant": TENANT, "eventId": EVENT.event_id,
                              "eventKey": f"{run_id}-{i}", **item})
        out.append((item["email"].lower().encode(), value, signer.headers(value)))
    return out


# --- the tenant ---------------------------------------------------------------------------

async def _clean(connection: asyncpg.Connection) -> int:
    status = await connection.execute("DELETE FROM event_status WHERE tenant_id = $1", TENANT)
    await connection.execute("DELETE FROM api_keys WHERE tenant_id = $1", TENANT)
    return int(status.split()[-1])


async def _prepare() -> tuple[str, str]:
    """The tenant, its published event, an ingest key (no rate limit a bench could hit)
    and a kafka key; rows of an earlier run deleted."""
    pool = await create_pool(settings.pg_dsn, min_size=1, max_size=1)
    try:
        async with pool.acquire() as connection:
            await create_tenant(connection, TENANT, "bench P2 (bench/p2_batch.py)")
            if (left := await _clean(connection)):
                progress(f"  deleted {left:,} statuses of an earlier P2 run")
            ingest = await create_key(connection, TENANT, Scope.INGEST, "bench P2",
                                      rate_per_s=10_000_000)
            kafka = await create_key(connection, TENANT, Scope.KAFKA, "bench P2",
                                     rate_per_s=10_000_000,
                                     kafka_signing_secret=settings.kafka_signing_secret.encode())
        await save_event(pool, TENANT, EVENT, BENCH_TEMPLATE)
    finally:
        await pool.close()
    return ingest, kafka


async def _statuses(run_id: str) -> dict[str, int]:
    """The run's events by status (HTTP items and Kafka records both carry the run id in
    their orderId; the status row does not, so the tenant's rows are counted: a run's rows
    are deleted before the next run)."""
    connection = await connect(settings.pg_dsn)
    try:
        rows = await connection.fetch("SELECT status, count(*) AS n FROM event_status"
                                      " WHERE tenant_id = $1 GROUP BY status", TENANT)
        await _clean_statuses(connection)
    finally:
        await connection.close()
    return {r["status"]: r["n"] for r in rows}


async def _clean_statuses(connection: asyncpg.Connection | None = None) -> None:
    own = connection is None
    connection = connection or await connect(settings.pg_dsn)
    try:
        await connection.execute("DELETE FROM event_status WHERE tenant_id = $1", TENANT)
    finally:
        if own:
            await connection.close()


async def _finish() -> None:
    connection = await connect(settings.pg_dsn)
    try:
        await _clean(connection)
    finally:
        await connection.close()


# --- the processor's progress ---------------------------------------------------------------

class Committed:
    """The processor group's committed offsets over both input topics (it commits a
    record's offset only after the record's outcome is durable)."""

    PARTITIONS: ClassVar[list[TopicPartition]] = [
        TopicPartition(t.name, p) for t in (EVENTS_IN, EVENTS_KAFKA) for p in range(t.partitions)]

    async def __aenter__(self) -> Committed:
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

    async def done(self) -> int:
        committed = await self._admin.list_consumer_group_offsets(
            PROCESSOR_GROUP, partitions=self.PARTITIONS)
        return sum(committed[tp].offset for tp in self.PARTITIONS
                   if tp in committed and committed[tp].offset >= 0)

    async def lag(self) -> int:
        ends = await self._consumer.end_offsets(self.PARTITIONS)
        return sum(ends.values()) - await self.done()


async def _wait_idle(committed: Committed, deadline_s: float) -> int:
    end = time.monotonic() + deadline_s
    while (lag := await committed.lag()) > 0 and time.monotonic() < end:
        overwrite(f"  waiting for the processor to be idle: lag {lag:,}")
        await asyncio.sleep(0.5)
    if lag:
        progress(f"  — the processor still has {lag:,} records behind; measuring anyway")
    return lag


# --- one phase ------------------------------------------------------------------------------

async def _http(key: str, run_id: str, events: int) -> dict[str, Any]:
    url = f"{GATEWAY}/v1/events/{EVENT.event_id}/batch"
    bodies = batch_bodies(run_id)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    calls = events // BATCH
    counts = {"accepted": 0, "refused": 0, "failed_calls": 0}
    issued = 0

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal issued
        while issued < calls:
            body = bodies[issued % len(bodies)]
            issued += 1
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    answer = await response.read()
                    if response.status != 200:
                        counts["failed_calls"] += 1
                        continue
                    parsed = orjson.loads(answer)
                    counts["accepted"] += parsed["accepted"]
                    counts["refused"] += parsed["refused"]
            except (aiohttp.ClientError, TimeoutError):
                counts["failed_calls"] += 1

    connector = aiohttp.TCPConnector(limit=HTTP_CONNECTIONS)
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=60)) as session:
        await asyncio.gather(*(client(session) for _ in range(HTTP_CONNECTIONS)))
    return counts


async def _kafka(key: str, run_id: str, events: int) -> dict[str, Any]:
    records = kafka_records(run_id, events, RecordSigner(key))  # before the clock: as B1
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", enable_idempotence=True,
        linger_ms=5, max_batch_size=256 * 1024, request_timeout_ms=30_000)
    await producer.start()
    try:
        await producer.partitions_for(EVENTS_KAFKA.name)
        began = time.perf_counter()
        pending = [await producer.send(EVENTS_KAFKA.name, value, key=k, headers=h)
                   for k, value, h in records]
        await asyncio.gather(*pending)
        return {"accepted": events, "refused": 0, "send_s": time.perf_counter() - began}
    finally:
        await producer.stop()


async def _phase(route: str, key: str, run_id: str, events: int, deadline_s: float
                 ) -> dict[str, Any]:
    async with Committed() as committed:
        await _wait_idle(committed, deadline_s)
        await _clean_statuses()  # the warm-up's event, a failed run's
        done_before = await committed.done()
        meter = CpuMeter(chain_processes(*CHAIN))
        own_before = os.times()
        began = time.monotonic()
        samples: list[tuple[float, float]] = []
        ingest: Callable[[str, str, int], Awaitable[dict[str, Any]]] = (
            _http if route == "http" else _kafka)
        task = asyncio.create_task(ingest(key, run_id, events))
        accepted_s: float | None = None
        end = began + deadline_s
        while True:
            await asyncio.sleep(POLL_S)
            now = time.monotonic()
            samples.append((now - began, await committed.done() - done_before))
            if task.done() and accepted_s is None:
                accepted_s = now - began  # refined below from the task's own clock
                ingest_cpu, ingest_wall = meter.used()
                sent = task.result()
            if task.done() and samples[-1][1] >= sent["accepted"]:
                break
            overwrite(f"  P2 {route}: processor {samples[-1][1]:,.0f}/{events:,}")
            if now > end:
                break
        cpu, wall = meter.used()
        own_after = os.times()
    progress("")
    if accepted_s is None:
        task.cancel()
        raise TimeoutError(f"P2 {route}: {events:,} events not accepted in {deadline_s:.0f}s")
    if "send_s" in sent:
        accepted_s = sent["send_s"]
    through_s = reached_at(samples, sent["accepted"])
    statuses = await _statuses(run_id)
    own_cpu = (own_after.user + own_after.system) - (own_before.user + own_before.system)
    through = sent["accepted"] / through_s if through_s else None
    shares = busiest(cpu, wall)
    return {
        "route": route, "events": events, **sent,
        "accepted_per_s": sent["accepted"] / accepted_s, "accepted_s": accepted_s,
        "through_processor_per_s": through, "through_processor_s": through_s,
        "statuses": statuses,
        "all_terminal": statuses.get("tooOld", 0) == sent["accepted"] == sum(statuses.values()),
        "cpu_us_per_event": {name: cpu_per_item_us(0.0, used, sent["accepted"])
                             for name, used in cpu.items()} | {
            "bench client": own_cpu / sent["accepted"] * 1e6},
        "cpu_share_of_a_core": {name: (used or 0) / wall for name, used in cpu.items()},
        "cpu_share_during_ingestion": {name: (used or 0) / ingest_wall
                                       for name, used in ingest_cpu.items()},
        "busiest": shares and {"process": shares[0], "share": shares[1]},
        "processor_workers": len(chain_processes("processor").get("processor", [])),
        "load": machine_load(),
    }


async def _measure(events: int, deadline_s: float, routes: tuple[str, ...] = ("http", "kafka")
                   ) -> list[dict[str, Any]]:
    ingest_key, kafka_key = await _prepare()
    await _warm(ingest_key)
    runs = []
    try:
        for n in range(1, RUNS + 1):
            for route in routes:
                run_id = f"P2{route[0]}{n}t{int(time.time())}"
                result = await _phase(route, ingest_key if route == "http" else kafka_key,
                                      run_id, events, deadline_s)
                top = result["busiest"] or {}
                cpu = ", ".join(f"{name} {us:,.0f}" for name, us in
                                result["cpu_us_per_event"].items() if us is not None)
                progress(f"  P2 {route} run {n}/{RUNS}: accepted "
                         f"{result['accepted_per_s']:,.0f} events/s, through the processor "
                         f"{result['through_processor_per_s'] or 0:,.0f}/s, statuses "
                         f"{result['statuses']}, busiest {top.get('process')} "
                         f"{top.get('share', 0):.2f} of a core; CPU µs per event: {cpu}; "
                         f"load {result['load']}")
                runs.append(result)
    finally:
        await _finish()
    return runs


async def _warm(key: str) -> None:
    """The gateway's catalogue may answer 404 for a moment after publishing: wait for a
    202 of one expired event (the processor ends it tooOld; deleted with the tenant's)."""
    url = f"{GATEWAY}/v1/events/{EVENT.event_id}/batch"
    body = orjson.dumps({"events": [_item(0, "warm")]})
    end = time.monotonic() + 30
    async with aiohttp.ClientSession() as session:
        while True:
            async with session.post(url, data=body, headers={
                    "Content-Type": "application/json",
                    "Authorization": f"Bearer {key}"}) as response:
                if response.status == 200:
                    return
                status = response.status
            if time.monotonic() > end:
                raise TimeoutError(f"{url} answers {status}; is the stack up?")
            await asyncio.sleep(0.2)


def run(events: int = 100_000, b1: Row | None = None, b3: Row | None = None,
        deadline_s: float = 300.0, b3_loop: Row | None = None, http_only: bool = False
        ) -> list[Row]:
    """P2's rows; B1 and both B3s are measured here unless given (from the same ``bench``
    run): ``b3`` the Faust agent (TARGETS' B3), ``b3_loop`` the plain aiokafka loop the
    processor has been since c6a30fa, to which the processor's rate is compared.
    ``http_only``: B1 and the HTTP route alone (no B3, no Kafka route), for A/B runs of the
    gateway."""
    events = max(BATCH, events // BATCH * BATCH)
    rows: list[Row] = []
    if b1 is None:
        b1 = b1_kafka.run(events < 100_000)
        rows.append(b1)
    if b3 is None and not http_only:
        b3 = b3_passthrough.run(events, "faust")
        rows.append(b3)
    if b3_loop is None and not http_only:
        b3_loop = b3_passthrough.run(events, "loop")
        rows.append(b3_loop)
    progress(f"P2 batch ingestion: {RUNS} × {events:,} events over HTTP ({BATCH:,} a call, "
             f"{HTTP_CONNECTIONS} in flight) and straight to Kafka (signed), tenant {TENANT},"
             f" each ended tooOld by the processor; load {machine_load()}")
    routes = ("http",) if http_only else ("http", "kafka")
    runs = asyncio.run(_measure(events, deadline_s, routes))
    b1_rate = b1.figure
    b3_rate = b3.figure if b3 else None
    loop_rate = b3_loop.figure if b3_loop else None
    out = []
    for route, what in (("http", "batch ingestion over HTTP (/batch, 1,000 a call)"),
                        ("kafka", "direct Kafka ingestion (signed records)")):
        if route not in routes:
            continue
        mine = [r for r in runs if r["route"] == route]
        accepted = median_of(mine, "accepted_per_s")
        through = median_of(mine, "through_processor_per_s")
        versus_b1 = ratio(accepted, b1_rate)
        met = None if accepted is None or versus_b1 is None else (
            accepted >= TARGET_RATE and versus_b1 >= TARGET_RATIO)
        all_terminal = all(r["all_terminal"] for r in mine)
        out.append(Row(
            "P2", f"{what}: accepted into the input topic", accepted, "events/s",
            baseline=f"B1 {b1_rate:,.0f} records/s" if b1_rate else "B1 missing",
            ratio=versus_b1, target=f"≥ {TARGET_RATE:,}/s and ≥ {TARGET_RATIO} × B1", met=met,
            details={"runs": mine, "events": events}))
        out.append(Row(
            "P2", f"{what}: through the processor (every status terminal: "
                  f"{'yes' if all_terminal else 'NO'})", through, "events/s",
            baseline=(f"B3 loop {loop_rate or 0:,.0f} records/s (Faust agent "
                      f"{b3_rate or 0:,.0f}: {ratio(through, b3_rate) or 0:.2f})"
                      if loop_rate else "B3 not measured (--http-only)"),
            ratio=ratio(through, loop_rate)))
    return rows + out


def main() -> None:
    from bench.report import table, write_json

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000, help="events a run")
    parser.add_argument("--quick", action="store_true", help="20,000 events a run")
    parser.add_argument("--http-only", action="store_true",
                        help="B1 and the HTTP route alone (A/B runs of the gateway)")
    args = parser.parse_args()
    rows = run(20_000 if args.quick else args.events, http_only=args.http_only)
    progress(table(rows))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = write_json(rows, {"timestamp": stamp, "command": " ".join(sys.argv),
                             "load_at_end": machine_load()}, f"{stamp}-p2")
    progress(f"load {machine_load()}; results: {path}")


if __name__ == "__main__":
    main()
