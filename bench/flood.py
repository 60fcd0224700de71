"""P5's marketing flood: bulk send records produced straight to the bulk topic at a fixed
rate, for a bounded time, from its own process (so it takes no time from the tx load
generator's event loop). ``python -m bench.flood RATE SECONDS RUN_ID``

Prints ``started`` once the producer is connected and the first record is due, then one
JSON line: what was produced and at what rate. The records are those a journey would
write: ``SendRequest`` with priority ``bulk`` for the bench event (event-based, so no
profile is needed), each with its own message id, timed like P4's by ``ctx.sentAt``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid

from aiokafka import AIOKafkaProducer

from bench.common import BENCH_DOMAIN, BENCH_EVENT, TENANT, settings
from shared.domain.events import Channel
from shared.domain.routing import EventOrigin, SendRequest, message_id
from shared.sending.priority import lower_cpu_priority
from shared.topics import SEND_EMAIL_BULK

BULK_TARGETS = 256
TICK_S = 0.01
MAX_RECORDS = 2_000_000  # a bound whatever the arguments say


def bulk_record(run_id: str, i: int, now: float) -> tuple[bytes, bytes]:
    pkey = uuid.uuid4().hex
    request = SendRequest(
        messageId=message_id(TENANT, pkey, "bulk"), tenant=TENANT,
        origin=EventOrigin(eventId=BENCH_EVENT.event_id, pKey=pkey),
        channel=Channel.EMAIL, priority="bulk",
        to={"email": f"p5-bulk-{i % BULK_TARGETS:03d}@{BENCH_DOMAIN}"},
        ctx={"orderId": f"{run_id}-b{i}", "amount": 1.0, "sentAt": f"{now:.6f}"},
        acceptedAt=now,
    )
    return request.messageId.encode(), request.model_dump_json().encode()


async def flood(rate: float, seconds: float, run_id: str) -> dict[str, float]:
    count = min(int(rate * seconds), MAX_RECORDS)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", enable_idempotence=True,
        linger_ms=5, max_batch_size=256 * 1024, request_timeout_ms=30_000,
    )
    await producer.start()
    try:
        await producer.partitions_for(SEND_EMAIL_BULK.name)  # metadata, before the clock
        print("started", flush=True)
        began, sent, pending = time.monotonic(), 0, []
        while sent < count:
            due = min(count, int((time.monotonic() - began) * rate) + 1)
            now = time.time()
            while sent < due:
                key, value = bulk_record(run_id, sent, now)
                pending.append(await producer.send(SEND_EMAIL_BULK.name, value, key=key))
                sent += 1
            await asyncio.sleep(max(0.0, min(TICK_S, sent / rate - (time.monotonic() - began))))
        span = time.monotonic() - began
        await asyncio.gather(*pending)
        return {"produced": sent, "span_s": span, "produced_per_s": sent / span,
                "acknowledged_s": time.monotonic() - began}
    finally:
        await producer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="bulk flood for P5 (bench helper)")
    parser.add_argument("rate", type=float)
    parser.add_argument("seconds", type=float)
    parser.add_argument("run_id")
    parser.add_argument("--nice", type=int, default=0,
                        help="lower this process's CPU priority, as marketing producers run")
    args = parser.parse_args()
    if not settings.kafka_bootstrap.startswith("127.0.0.1:"):
        parser.error("load goes to 127.0.0.1 only (PARCOURS_KAFKA_BOOTSTRAP)")
    if not 0 < args.seconds <= 900:
        parser.error("seconds must be in (0, 900]")
    lower_cpu_priority(args.nice)  # started in its own session: its own autogroup
    print(json.dumps(asyncio.run(flood(args.rate, args.seconds, args.run_id))), flush=True)


if __name__ == "__main__":
    main()
