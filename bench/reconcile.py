"""``python -m bench.reconcile [--events 1000000]``: how long ``parcours reconcile`` takes
over a window of a million events (issue 14: "fast enough to run on a million events").

The million events are written where reconcile reads them, without going through the
chain (which would take an hour): gateway-shaped records to two scratch topics of the input
topics' shape (``bench.reconcile.in``, ``bench.reconcile.kafka``, 6 partitions each), and
for each event a ``processed`` status and a ``sent`` ledger row in PostgreSQL, under a
tenant of its own; a tenth of a percent are left without a status (lost) and as many
``processing`` with a claimed ledger row (stuck), so the run proves it finds them. The same
code as the command then reads the topics, PostgreSQL and the sinks, and the figures print
beside the target. The scratch rows are deleted at the end (the topics are deleted too).
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from shared.adapters.postgres import connect
from shared.adapters.reconcile_sources import Window, reconcile_window
from shared.settings import get_settings
from shared.topics import Topic

TENANT = "bench-reconcile"
IN = Topic("bench.reconcile.in", "target", 6, "topics/events.in.v1.json", "bench")
KAFKA = Topic("bench.reconcile.kafka", "target", 6, "topics/events.kafka.v1.json", "bench")
TARGET_S = 300.0  # a million events within five minutes: an operator waits for it


async def _topics(bootstrap: str, create: bool) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        mine = [t.name for t in (IN, KAFKA) if t.name in existing]
        if mine:
            await admin.delete_topics(mine)
            await asyncio.sleep(2)  # the broker forgets them asynchronously
        if create:
            await admin.create_topics([NewTopic(t.name, t.partitions, 1) for t in (IN, KAFKA)])
    finally:
        await admin.close()


async def _produce(bootstrap: str, pkeys: list[str]) -> float:
    started = time.monotonic()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20,
                                max_batch_size=1024 * 1024, acks=1)
    await producer.start()
    try:
        now = time.time()
        pending = []
        for n, pkey in enumerate(pkeys):
            record = {"v": 1, "pKey": pkey, "tenant": TENANT, "eventId": "EVTbench",
                      "target": {"email": f"r{n}@example.com"}, "ctx": {"item": "x"},
                      "acceptedAt": now}
            pending.append(await producer.send(IN.name, orjson.dumps(record), pkey.encode()))
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
                print(f"\r  produced {n + 1:,} records", end="", flush=True)
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    print()
    return time.monotonic() - started


async def _rows(pkeys: list[str], lost: int, stuck: int) -> float:
    """Statuses and ledger rows by COPY; the first ``lost`` get none, the next ``stuck``
    are left processing with a claimed ledger row."""
    started = time.monotonic()
    connection = await connect(get_settings().pg_dsn)
    try:
        ids = [uuid.uuid4() for _ in pkeys]
        statuses = [(p, TENANT, "EVTbench", "processing" if n < lost + stuck else "processed",
                     2 if n < lost + stuck else 3, ids[n])
                    for n, p in enumerate(pkeys) if n >= lost]
        await connection.copy_records_to_table(
            "event_status", records=statuses,
            columns=["pkey", "tenant_id", "event_id", "status", "rank", "message_id"])
        ledger = [(ids[n], TENANT, p, "email", "sending" if n < lost + stuck else "sent")
                  for n, p in enumerate(pkeys) if n >= lost]
        await connection.copy_records_to_table(
            "deliveries", records=ledger,
            columns=["message_id", "tenant_id", "pkey", "channel", "state"])
    finally:
        await connection.close()
    return time.monotonic() - started


async def _clean() -> None:
    connection = await connect(get_settings().pg_dsn)
    try:
        await connection.execute("DELETE FROM deliveries WHERE tenant_id = $1", TENANT)
        await connection.execute("DELETE FROM event_status WHERE tenant_id = $1", TENANT)
    finally:
        await connection.close()


async def main(events: int) -> None:
    # The sinks hold none of these messages: asked, they would call every one
    # unacknowledged. Their cost is the size of their answer (at most 200,000 ids each).
    settings = get_settings().model_copy(update={"reconcile_sinks": "none"})
    lost = stuck = max(1, events // 1000)
    pkeys = [f"bench{uuid.uuid4().hex}" for _ in range(events)]
    await _clean()
    await _topics(settings.kafka_bootstrap, create=True)
    since = time.time() - 1
    try:
        produced_s = await _produce(settings.kafka_bootstrap, pkeys)
        rows_s = await _rows(pkeys, lost, stuck)
        print(f"  setup: produced in {produced_s:.1f} s, rows copied in {rows_s:.1f} s")
        connection = await connect(settings.pg_dsn)
        try:
            started = time.monotonic()
            reconciled = await reconcile_window(
                settings, connection, Window(since, time.time() + 1, TENANT), 0.0,
                topics=(IN, KAFKA))
            took = time.monotonic() - started
        finally:
            await connection.close()
    finally:
        await _clean()
        await _topics(settings.kafka_bootstrap, create=False)
    counts = reconciled.report.counts()
    assert counts["accepted"] == events and counts["lost"] == lost, counts
    assert counts["stuck"] == stuck, counts
    bulk = reconciled.messages_read
    bulk_s = bulk.seconds if bulk else 0.0
    print(f"RECONCILE  {events:,} events: {took:.1f} s in all (Kafka read"
          f" {reconciled.read.seconds:.1f} s, {events / reconciled.read.seconds:,.0f} records/s;"
          f" messages without a pKey {bulk_s:.1f} s, {bulk.records if bulk else 0:,} bulk"
          f" records of every tenant; PostgreSQL and sinks"
          f" {took - reconciled.read.seconds - bulk_s:.1f} s)"
          f"  target ≤ {TARGET_S:.0f} s for 1,000,000  -> "
          f"{'met' if took * 1_000_000 / events <= TARGET_S else 'NOT met'}")
    print(f"  found {counts['lost']:,} lost and {counts['stuck']:,} stuck, as planted")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.reconcile", description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    asyncio.run(main(parser.parse_args().events))
