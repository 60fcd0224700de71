"""B3: a pass-through Faust agent, consume → produce — the ceiling for one processor hop.

A Faust worker of its own (a separate process, like the processor) reads a scratch topic
holding a backlog of the gateway's own trigger records (same size and keys, as B1's),
and writes every record, unchanged, to a second scratch topic, exactly as the processor
moves its records: ``take_events(500, within=5 ms)`` with ``concurrency=1``, the batch's
records produced through the processor's own producer (``RenewingProducer``: acks=all,
idempotent) and all of them acknowledged before the batch is acknowledged, offsets
committed every 0.5 s. No validation, no PostgreSQL: what is left of the processor is
Kafka in, Kafka out, and Faust.

The backlog is written before the worker starts; the figure is the records over the
seconds from the first batch the agent got to the last batch's acknowledgement (the
worker's start-up and its group's join are not in it). Both topics have the input
topic's partition count (6), are made for each run and deleted after it; the worker's
consumer group is the run's own (and deleted too).

``python -m bench.b3_passthrough [--records N]`` runs it alone; ``run(records)`` is the
entry for ``python -m bench``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.common import (
    RUNS,
    CpuMeter,
    Row,
    chain_processes,
    ingest_bodies,
    machine_load,
    progress,
    settings,
    trigger_record,
)
from bench.stats import median, median_of
from shared.topics import EVENTS_IN

ROOT = Path(__file__).resolve().parent.parent
BATCH_MAX, BATCH_WINDOW_S = 500, 0.005  # as services/processor/app.py
TOPIC_PREFIX = "parcours.bench.b3"  # bench-only topics; no service reads them


# --- the worker (its own process) --------------------------------------------------------

def _worker(source_topic: str, sink_topic: str, count: int, result: Path, group: str) -> None:
    """A Faust worker configured as the processor's, moving ``count`` records from
    ``source_topic`` to ``sink_topic``; writes its timing to ``result`` when done."""
    import faust
    from faust.worker import Worker

    from shared.adapters.producer import RenewingProducer

    datadir = tempfile.mkdtemp(prefix="bench-b3-")
    app = faust.App(
        group, broker=f"kafka://{settings.kafka_bootstrap}", web_enabled=False,
        topic_disable_leader=True, consumer_auto_offset_reset="earliest",
        broker_commit_interval=0.5, broker_session_timeout=10.0,
        broker_heartbeat_interval=1.0, broker_rebalance_timeout=20.0, producer_acks=-1,
        store="memory://", datadir=datadir,
    )
    source = app.topic(source_topic, key_type=bytes, value_type=bytes, key_serializer="raw",
                       value_serializer="raw", internal=False)
    producer = RenewingProducer(settings, "bench-b3")
    state: dict[str, Any] = {"seen": 0, "batches": 0}

    @app.agent(source, concurrency=1)
    async def passthrough(stream: faust.StreamT[Any]) -> None:
        await producer.start()
        async for events in stream.take_events(BATCH_MAX, within=BATCH_WINDOW_S):
            if not state["seen"]:
                state["began"], state["cpu0"] = time.perf_counter(), time.process_time()
            await producer.deliver_all([(sink_topic, e.value, e.key) for e in events])
            state["seen"] += len(events)
            state["batches"] += 1
            if state["seen"] >= count and "seconds" not in state:
                state["seconds"] = time.perf_counter() - state["began"]
                state["cpu_s"] = time.process_time() - state["cpu0"]
                partial = result.with_suffix(".part")
                partial.write_text(json.dumps({
                    "records": state["seen"], "seconds": state["seconds"],
                    "cpu_s": state["cpu_s"], "batches": state["batches"]}))
                partial.rename(result)

    Worker(app, loglevel="WARNING", quiet=True).execute_from_commandline()


def _loop_worker(source_topic: str, sink_topic: str, count: int, result: Path,
                 group: str) -> None:
    """The same hop as the processor has run it since c6a30fa: a plain aiokafka consume
    loop (``getmany`` of up to 500, offsets committed in the background every 0.5 s)."""
    import uvloop

    from shared.adapters.kafka import commit_or_redeliver, manual_consumer
    from shared.adapters.producer import RenewingProducer

    async def move() -> None:
        consumer = manual_consumer(settings.kafka_bootstrap, group, source_topic,
                                   max_poll_records=BATCH_MAX, session_timeout_ms=10_000,
                                   heartbeat_interval_ms=1_000, rebalance_timeout_ms=20_000)
        producer = RenewingProducer(settings, "bench-b3-loop")
        await consumer.start()
        await producer.start()
        seen = batches = 0
        began = cpu0 = 0.0
        committing: asyncio.Task[None] | None = None
        handled: dict[Any, int] = {}
        committed_at = time.monotonic()
        try:
            while seen < count:
                got = await consumer.getmany(timeout_ms=200, max_records=BATCH_MAX)
                if not got:
                    continue
                if not seen:
                    began, cpu0 = time.perf_counter(), time.process_time()
                records = [r for rs in got.values() for r in rs]
                await producer.deliver_all([(sink_topic, r.value, r.key) for r in records])
                seen += len(records)
                batches += 1
                handled.update({tp: rs[-1].offset + 1 for tp, rs in got.items()})
                if time.monotonic() - committed_at >= 0.5:
                    if committing is not None:
                        await committing
                    offsets, handled = handled, {}
                    committing = asyncio.create_task(commit_or_redeliver(consumer, offsets))
                    committed_at = time.monotonic()
            seconds, cpu_s = time.perf_counter() - began, time.process_time() - cpu0
            partial = result.with_suffix(".part")
            partial.write_text(json.dumps({"records": seen, "seconds": seconds,
                                           "cpu_s": cpu_s, "batches": batches}))
            partial.rename(result)
            if committing is not None:
                await committing
        finally:
            await producer.stop()
            await consumer.stop()

    uvloop.run(move())


# --- the parent --------------------------------------------------------------------------

async def _admin() -> AIOKafkaAdminClient:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap,
                                request_timeout_ms=15_000)
    await admin.start()
    return admin


async def _create_topics(names: list[str], partitions: int) -> None:
    admin = await _admin()
    try:
        response = await admin.create_topics([
            NewTopic(name, partitions, 1, topic_configs={"retention.ms": "900000"})
            for name in names])
        for topic, code, *rest in response.topic_errors:
            if code:
                raise RuntimeError(f"creating {topic}: error {code} {rest}")
    finally:
        await admin.close()


async def _delete(topics: list[str], group: str | None) -> None:
    admin = await _admin()
    try:
        with contextlib.suppress(Exception):  # best effort: both expire in 15 minutes
            await admin.delete_topics(topics)
        if group is not None:
            with contextlib.suppress(Exception):
                await admin.delete_consumer_groups([group])
    finally:
        await admin.close()


async def _fill(topic: str, count: int) -> float:
    """Write the backlog: the gateway's trigger records, B1's producer settings."""
    records = [trigger_record(body) for body in ingest_bodies()]
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", enable_idempotence=True,
        linger_ms=5, max_batch_size=256 * 1024, request_timeout_ms=30_000)
    await producer.start()
    try:
        began = time.perf_counter()
        pending = []
        for i in range(count):
            key, value = records[i % len(records)]
            pending.append(await producer.send(topic, value, key=key))
        await asyncio.gather(*pending)
        return count / (time.perf_counter() - began)
    finally:
        await producer.stop()


def _stop(worker: subprocess.Popen[bytes]) -> None:
    if worker.poll() is None:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(10)


def _one_run(n: int, count: int, deadline_s: float, kind: str = "faust") -> dict[str, Any]:
    stamp = f"{int(time.time())}r{n}"
    source, sink = f"{TOPIC_PREFIX}.{stamp}.in", f"{TOPIC_PREFIX}.{stamp}.out"
    group = f"parcours-bench-b3-{stamp}"
    partitions = EVENTS_IN.partitions
    asyncio.run(_create_topics([source, sink], partitions))
    worker = None
    try:
        filled = asyncio.run(_fill(source, count))
        with tempfile.TemporaryDirectory(prefix="bench-b3-") as tmp:
            result = Path(tmp) / "result.json"
            worker = subprocess.Popen(
                [sys.executable, "-m", "bench.b3_passthrough", "--worker", source, sink,
                 str(count), str(result), group, "--kind", kind],
                cwd=ROOT, start_new_session=True, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=open(Path(tmp) / "worker.log", "wb"))
            # The broker and PostgreSQL as the worker sees them, and the worker itself.
            processes = chain_processes("kafka")
            processes["worker"] = [worker.pid]
            meter = CpuMeter(processes)
            end = time.monotonic() + deadline_s
            while not result.exists():
                if worker.poll() is not None:
                    log = (Path(tmp) / "worker.log").read_text()[-2000:]
                    raise RuntimeError(f"the B3 worker ended ({worker.returncode}): {log}")
                if time.monotonic() > end:
                    raise TimeoutError(f"B3 run {n}: {count:,} records not moved within "
                                       f"{deadline_s:.0f}s")
                time.sleep(0.1)
            cpu, wall = meter.used()
            moved = json.loads(result.read_text())
    finally:
        if worker is not None:
            _stop(worker)
        asyncio.run(_delete([source, sink], group))
    rate = moved["records"] / moved["seconds"]
    return {"records_per_s": rate, "fill_records_per_s": filled, **moved,
            "worker_cpu_us_per_record": moved["cpu_s"] / moved["records"] * 1e6,
            # over the worker's whole life (start-up included): an upper bound
            "kafka_cpu_us_per_record": (cpu["kafka"] or 0) / moved["records"] * 1e6
            if cpu.get("kafka") is not None else None,
            "wall_s_with_startup": wall, "load": machine_load()}


KINDS = {"faust": "pass-through Faust agent (consume → produce, acks=all)",
         "loop": "pass-through aiokafka loop (consume → produce, acks=all), the processor's"
                 " loop since c6a30fa"}


def run(records: int = 100_000, kind: str = "faust") -> Row:
    """``kind``: ``faust`` (TARGETS' B3, the processor until c6a30fa) or ``loop`` (a plain
    aiokafka consume loop, as the processor runs since)."""
    progress(f"B3 {KINDS[kind]}: {RUNS} × {records:,} records, "
             f"{EVENTS_IN.partitions} partitions in and out, load {machine_load()}")
    runs = []
    for n in range(1, RUNS + 1):
        result = _one_run(n, records, 120 + records / 500, kind)
        progress(f"  B3 {kind} run {n}/{RUNS}: {result['records_per_s']:,.0f} records/s "
                 f"({result['records']:,} in {result['seconds']:.2f} s, "
                 f"{result['batches']:,} batches), worker CPU "
                 f"{result['worker_cpu_us_per_record']:.0f} µs/record, load {result['load']}")
        runs.append(result)
    figure = median([r["records_per_s"] for r in runs])
    return Row("B3", KINDS[kind], figure, "records/s", details={
                   "kind": kind, "runs": runs, "records": records,
                   "partitions": EVENTS_IN.partitions,
                   "worker_cpu_us_per_record": median_of(runs, "worker_cpu_us_per_record"),
                   "what": "first batch consumed → last batch acknowledged, backlog "
                           "written before the worker starts"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--kind", choices=tuple(KINDS), default="faust")
    parser.add_argument("--worker", nargs=5, metavar=("IN", "OUT", "COUNT", "RESULT", "GROUP"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        source, sink, count, result, group = args.worker
        sys.argv = sys.argv[:1]  # Faust's worker reads no arguments of ours
        (_worker if args.kind == "faust" else _loop_worker)(source, sink, int(count),
                                                            Path(result), group)
        return
    if not settings.kafka_bootstrap.startswith("127.0.0.1:"):
        parser.error("load goes to 127.0.0.1 only (PARCOURS_KAFKA_BOOTSTRAP)")
    row = run(args.records, args.kind)
    progress(f"B3 {args.kind} {row.figure:,.0f} records/s (median of {RUNS}); "
             f"load {machine_load()}")


if __name__ == "__main__":
    main()
