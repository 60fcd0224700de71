"""P6: the email sender alone beside B4, aiosmtplib sending pre-encoded mail, in the same
run, runs alternating (B4, P6, B4...), both into the stack's SMTP sink.

P6 is the stack's own tx email sender (``make up``), unchanged: send records produced
straight to ``parcours.send.email.tx.v1`` (no gateway, no processor), a backlog of
``messages`` at once, each to its own address of the bench domain; the sender claims each
in the delivery ledger, renders the message (subject, HTML with three links, text), runs
the control rules, rewrites the links and adds the pixel (tracking on: the tracked
message stored first), encodes it, hands it to the sink over its SMTP pool
(``PARCOURS_SMTP_CONNECTIONS``) and settles it (ledger, status, contact history). Its
figure: the run's messages over the seconds from the first record produced to the last
message in the sink (counted by recipient, so others' mail through the sender is not).
DKIM is off (the default tenant has no active key); its cost per message is measured
apart (bench/dkim_cost.py) and reported in this row's details, and so is link
rewriting's for this mail and a newsletter (bench/link_cost.py).

B4 sends the very bytes P6's sender produced (one of its messages, read back from the
sink) the same number of times over 8 SMTP connections (TARGETS.md's B4), each
connection sending its share one after the other: what handing over costs with no
rendering, tracking, ledger or Kafka at all. Target: P6 ≥ 0.7 × B4 (issue 11). The sender
keeps its own pool size (16 by default); B4 over that many connections is run once more
and printed (``b4_at_sender_connections``): the sink bounds B4, not its connections.

Both leave their mail in the sink (bounded at 200,000 messages; nothing is emptied, so
tests may run beside it); the messages' statuses, ledger and tracked rows stay with the
default tenant like P4's.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import time
import uuid
from pathlib import Path
from statistics import median

import aiosmtplib
import httpx
from aiokafka import AIOKafkaProducer

from bench import dkim_cost, link_cost
from bench.common import (
    BENCH_DOMAIN,
    RUNS,
    SINK,
    TENANT,
    Row,
    progress,
    settings,
)
from bench.loadgen import ROOT
from shared.adapters.catalog_store import save_event
from shared.adapters.postgres import create_pool
from shared.domain.events import Channel, EventConfig
from shared.domain.pkeys import mint_timed_pkey
from shared.domain.routing import EventOrigin, SendRequest, message_id
from shared.topics import SEND_EMAIL_TX

TARGET = 0.7  # × B4 (issue 11)
P6_EVENT = EventConfig.model_validate({
    "event_id": "EVTbenchP6", "label": "Benchmark P6: the email sender alone (bench/)",
    "channel": "email", "targeting": "event",
    "fields": [{"id": "orderId", "type": "string", "required": True},
               {"id": "amount", "type": "decimal"},
               {"id": "firstName", "type": "string"}],
})
# A short order mail with three links (one rewritten per index) and a greeting.
P6_TEMPLATE = {
    "subject": "Order {{ ctx.orderId }} is on its way",
    "html": ("<html><body><p>Hello {{ ctx.firstName }},</p>"
             "<p>Your order <b>{{ ctx.orderId }}</b> ({{ ctx.amount }} EUR) has shipped.</p>"
             '<p><a href="https://shop.example.com/orders/{{ ctx.orderId }}">Track it</a> ·'
             ' <a href="https://shop.example.com/account">Your account</a> ·'
             ' <a href="https://shop.example.com/help?topic=delivery">Help</a></p>'
             "</body></html>"),
    "text": ("Hello {{ ctx.firstName }},\nYour order {{ ctx.orderId }} ({{ ctx.amount }} EUR)"
             " has shipped: https://shop.example.com/orders/{{ ctx.orderId }}\n"),
}


def _cpu_s(service: str) -> float | None:
    """CPU seconds a stack service has used (``.run/pids``), or None if it is not there."""
    try:
        pid = int((ROOT / ".run" / "pids" / f"{service}.pid").read_text())
        fields = (Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split())
    except (OSError, ValueError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Cpu:
    """CPU µs per message of the sender and the sink over a run: what the machine's other
    load takes from the wall clock shows in neither."""

    def __init__(self) -> None:
        self.before = {s: _cpu_s(s) for s in ("sender-email", "smtp-sink")}

    def per_message(self, messages: int) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for service, before in self.before.items():
            after = _cpu_s(service)
            # None too when the service was restarted meanwhile (another pid: less CPU)
            out[service] = (None if before is None or after is None or after < before
                            else round((after - before) / messages * 1e6))
        return out


def _record(run_id: str, i: int) -> tuple[bytes, bytes]:
    # A pKey as the gateway mints it, with its issue time (migration 040): the ledger's
    # and the statuses' partition is read from it. Until 2026-12-04 P6 used 32-character
    # keys without one (the path of keys derived from a Kafka producer's eventKey), each
    # claim and status write then looking the key up in every partition.
    pkey = mint_timed_pkey(settings.pkey_secret.encode(), TENANT, P6_EVENT.event_id,
                           time.time(), os.urandom(12))
    request = SendRequest(
        messageId=message_id(TENANT, pkey), tenant=TENANT,
        origin=EventOrigin(eventId=P6_EVENT.event_id, pKey=pkey),
        channel=Channel.EMAIL, priority="tx", to={"email": f"p6-{run_id}-{i}@{BENCH_DOMAIN}"},
        ctx={"orderId": f"{run_id}-{i}", "amount": "42.50", "firstName": "Ada"},
        acceptedAt=time.time())
    return request.messageId.encode(), request.model_dump_json().encode()


class _Arrivals:
    """This run's messages in the sink (others' sends through the same sender, a test or
    another benchmark, are not counted), each poll reading only what arrived since the
    last one: the sink's CPU during the run is the sender's messages', not the poll's."""

    def __init__(self, http: httpx.AsyncClient, run_id: str) -> None:
        self._http, self._containing = http, f"p6-{run_id}-"
        self._after, self.count = 0, 0

    async def start(self) -> None:
        """From the sink's newest message on (before the run's first record goes)."""
        self._after = (await self._poll())["last"]

    async def _poll(self) -> dict[str, int]:
        response = await self._http.get(f"{SINK}/recipients/count", params={
            "containing": self._containing, "after": self._after})
        response.raise_for_status()
        found: dict[str, int] = response.json()
        return found

    async def update(self) -> int:
        found = await self._poll()
        if found["last"] < self._after:
            raise RuntimeError("P6: the SMTP sink was emptied during the run (another"
                               " benchmark's P4 or P5?); run P6 again when it is not")
        self.count, self._after = self.count + found["count"], found["last"]
        return self.count


async def _sender_run(producer: AIOKafkaProducer, messages: int, deadline_s: float
                      ) -> tuple[float, dict[str, float | None]]:
    """Produce ``messages`` records at once; messages/s until the sink has them all, and
    the sender's and the sink's CPU µs per message."""
    run_id = uuid.uuid4().hex[:8]
    cpu = _Cpu()
    async with httpx.AsyncClient(timeout=30) as http:
        arrivals = _Arrivals(http, run_id)
        await arrivals.start()
        began = time.monotonic()
        pending = [await producer.send(SEND_EMAIL_TX.name, value, key=key)
                   for key, value in (_record(run_id, i) for i in range(messages))]
        await asyncio.gather(*pending)
        produced_s = time.monotonic() - began
        while (done := await arrivals.update()) < messages:
            if time.monotonic() - began > deadline_s:
                raise TimeoutError(f"P6: {done} of {messages} arrived in {deadline_s:.0f}s")
            await asyncio.sleep(0.05)
        seconds = time.monotonic() - began
    used = cpu.per_message(messages)
    progress(f"  P6 sender: {messages / seconds:,.0f} msg/s ({seconds:.2f}s, produced in"
             f" {produced_s:.2f}s); CPU µs/message: sender {used['sender-email']},"
             f" sink {used['smtp-sink']}")
    return messages / seconds, used


B4_CONNECTIONS = 8  # TARGETS.md: "over 8 connections"


async def _b4_run(raw: bytes, messages: int, connections: int
                  ) -> tuple[float, dict[str, float | None]]:
    """aiosmtplib, ``connections`` connections, each sending its share in turn. Each copy
    has a Message-ID of its own (made before the clock starts): the sink counts a repeated
    one as a message sent twice, which the reliability tests look for."""
    share = [messages // connections + (1 if c < messages % connections else 0)
             for c in range(connections)]
    run_id = uuid.uuid4().hex[:8]
    found = re.search(rb"^Message-ID: <([^>]+)>", raw, re.MULTILINE | re.IGNORECASE)
    if found is None:
        raise ValueError("B4: the sender's message has no Message-ID")
    # The suffix goes before the '@': the sink keys a message by the Message-ID's local
    # part, and copies that differed only after it counted as one message sent thousands
    # of times (until 2026-12-04: test_reliability then failed after a P6 run).
    local, _, domain = found[1].partition(b"@")
    copies = [[raw.replace(found[1], local + f".b4-{run_id}-{c}-{i}@".encode() + domain, 1)
               for i in range(count)] for c, count in enumerate(share)]

    async def one(c: int, count: int) -> None:
        client = aiosmtplib.SMTP(hostname=settings.smtp_host, port=settings.smtp_port,
                                 timeout=settings.smtp_timeout_s)
        await client.connect()
        try:
            for i in range(count):
                await client.sendmail(f"b4@{BENCH_DOMAIN}",
                                      [f"b4-{run_id}-{c}-{i}@{BENCH_DOMAIN}"], copies[c][i])
        finally:
            await client.quit()

    cpu, began = _Cpu(), time.monotonic()
    await asyncio.gather(*(one(c, n) for c, n in enumerate(share)))
    seconds = time.monotonic() - began
    used = cpu.per_message(messages)
    progress(f"  B4 aiosmtplib, {connections} connections: {messages / seconds:,.0f} msg/s"
             f" ({seconds:.2f}s); CPU µs/message: sink {used['smtp-sink']}")
    return messages / seconds, used


async def _warm_up(producer: AIOKafkaProducer) -> bytes:
    """Publish the P6 event, send a few through the sender (template compiled, pool
    open) and return one of them as the sink received it: B4's message."""
    pool = await create_pool(settings.pg_dsn)
    try:
        await save_event(pool, TENANT, P6_EVENT, P6_TEMPLATE)
    finally:
        await pool.close()
    await _sender_run(producer, 20, 60)
    async with httpx.AsyncClient(timeout=30) as http:
        run_id = uuid.uuid4().hex[:8]
        key, value = _record(run_id, 0)
        await producer.send_and_wait(SEND_EMAIL_TX.name, value, key=key)
        to = f"p6-{run_id}-0@{BENCH_DOMAIN}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            found = (await http.get(f"{SINK}/messages", params={"to": to, "raw": "true"}))
            if found.json():
                return base64.b64decode(found.json()[0]["raw"])
            await asyncio.sleep(0.1)
    raise TimeoutError("P6: the warm-up message never reached the sink")


async def _measure(messages: int) -> Row:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all",
                                enable_idempotence=True, linger_ms=5,
                                max_batch_size=256 * 1024)
    await producer.start()
    try:
        raw = await _warm_up(producer)
        connections = settings.smtp_connections
        progress(f"  one message: {len(raw):,} bytes; {messages:,} per run; B4 over "
                 f"{B4_CONNECTIONS} SMTP connections, the sender over {connections}")
        b4, p6, b4_cpu, p6_cpu = [], [], [], []
        for _ in range(RUNS):
            rate, used = await _b4_run(raw, messages, B4_CONNECTIONS)
            b4.append(rate)
            b4_cpu.append(used)
            rate, used = await _sender_run(producer, messages, 300)
            p6.append(rate)
            p6_cpu.append(used)
        b4_theirs, _ = await _b4_run(raw, messages, connections)
    finally:
        await producer.stop()
    b4_rate, p6_rate = median(b4), median(p6)

    def cpu_median(runs: list[dict[str, float | None]], service: str) -> float | None:
        values = [r[service] for r in runs if r.get(service) is not None]
        return median(values) if values else None

    small, large = (row for row in dkim_cost.run(200))
    dkim_us = small[2] - small[1]
    links = {label: {"tags": tags, "chars": size, "full_parse_us": round(full),
                     "from_shape_us": round(shaped)}
             for label, tags, size, full, shaped in link_cost.run(200)}
    progress("  link rewriting, CPU µs a message, full parse → from the template's shape: "
             + ", ".join(f"{label} ({v['tags']} tags) {v['full_parse_us']:,} → "
                         f"{v['from_shape_us']:,}" for label, v in links.items()))
    ratio = p6_rate / b4_rate
    return Row("P6", "email sender alone (render, links, tracking, ledger) → SMTP sink",
               round(p6_rate), "msg/s", baseline=f"B4 aiosmtplib {b4_rate:,.0f} msg/s",
               ratio=round(ratio, 2), target=f"≥ {TARGET} × B4", met=ratio >= TARGET,
               details={"p6_runs": p6, "b4_runs": b4, "messages_per_run": messages,
                        "smtp_connections": connections, "b4_connections": B4_CONNECTIONS,
                        "b4_at_sender_connections": b4_theirs, "message_bytes": len(raw),
                        "dkim_us_per_message": round(dkim_us),
                        "dkim_us_per_newsletter_60kB": round(large[2] - large[1]),
                        "dkim_share_of_p6_message": round(dkim_us / (1e6 / p6_rate), 3),
                        "link_rewriting_us_per_message": links,
                        "p6_us_per_message_wall": round(1e6 / p6_rate),
                        "sender_cpu_us_per_message": cpu_median(p6_cpu, "sender-email"),
                        "sink_cpu_us_per_message_p6": cpu_median(p6_cpu, "smtp-sink"),
                        "sink_cpu_us_per_message_b4": cpu_median(b4_cpu, "smtp-sink"),
                        "cpu_runs": {"p6": p6_cpu, "b4": b4_cpu}})


def run(messages: int) -> Row:
    return asyncio.run(_measure(messages))
