"""What every benchmark shares: the bench event, its request bodies, result rows, progress."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from shared.domain.events import EventConfig, build_ingest_model
from shared.domain.events import trigger_record as gateway_record
from shared.domain.pkeys import mint_pkey
from shared.settings import get_settings

settings = get_settings()
GATEWAY = f"http://127.0.0.1:{settings.gateway_port}"
SINK = f"http://127.0.0.1:{settings.smtp_sink_http_port}"
BULK_SINK = f"http://127.0.0.1:{settings.smtp_bulk_sink_http_port}"  # bulk email's relay
SENDER_METRICS = f"http://127.0.0.1:{settings.sender_email_metrics_port}/metrics"
# The tx email sender's series in its metrics (shared.sending.metrics, one set for every
# channel): messages sent, and gateway acceptance → SMTP acceptance.
SENDER_SENT = "parcours_sender_sent_total"
SENDER_LATENCY = "parcours_sender_accepted_to_provider_seconds"
EMAIL_TX = {"channel": "email", "priority": "tx"}
TENANT = "default"
BENCH_TOPIC = "parcours.bench.v1"  # bench-only; never read by the services
BENCH_DOMAIN = "bench.example.com"  # every bench recipient, so our mail is easy to pick out
RUNS = 3  # each measurement runs this many times; the median is reported

# Event-based targeting: no profile lookup, so P4 measures the chain, not seeding.
BENCH_EVENT = EventConfig.model_validate({
    "event_id": "EVTbench",
    "label": "Benchmark event (bench/)",
    "channel": "email",
    "targeting": "event",
    "fields": [{"id": "orderId", "type": "string", "required": True},
               {"id": "amount", "type": "decimal"},
               {"id": "sentAt", "type": "string"}],
})
# sent-at is read back from the SMTP sink to time each message (P4). Senders cache the
# compiled template by its content, so a change here takes effect at once.
BENCH_TEMPLATE = {
    "subject": "Order {{ ctx.orderId }}",
    "html": "<p>Order {{ ctx.orderId }}: {{ ctx.amount }}</p><p>sent-at={{ ctx.sentAt }}</p>",
    "text": "order={{ ctx.orderId }}\nsent-at={{ ctx.sentAt }}\n",
}
# An expiration in the past makes the processor end each P1 event as tooOld (one status
# write) instead of sending tens of thousands of emails into the shared sink; the
# gateway's work is the same either way. B2 parses the very same bodies.
PAST_EXPIRATION = "2000-01-01T00:00:00Z"
BODY_VARIANTS = 64  # distinct targets, so records spread over the topic's partitions


def request_headers() -> dict[str, str]:
    """JSON, with the ingestion key bench.pipeline created (inherited by subprocesses)."""
    key = os.environ.get("PARCOURS_BENCH_KEY")
    return {"Content-Type": "application/json",
            **({"Authorization": f"Bearer {key}"} if key else {})}


def ingest_bodies(count: int = BODY_VARIANTS) -> list[bytes]:
    """The B2/P1 request bodies: same shape and size, one target each."""
    return [
        orjson.dumps({
            "email": f"bench-{i:03d}@{BENCH_DOMAIN}",
            "ctx": {"orderId": f"ORD-{i:06d}", "amount": 42.5},
            "expiration": PAST_EXPIRATION,
        })
        for i in range(count)
    ]


def trigger_record(body: bytes) -> tuple[bytes, bytes]:
    """(key, value) exactly as the gateway would write ``body`` to Kafka (for B1)."""
    parsed = build_ingest_model(BENCH_EVENT).model_validate_json(body)
    pkey = mint_pkey(b"bench", TENANT, BENCH_EVENT.event_id, bytes(12))  # a real pKey's size
    record = gateway_record(parsed, pkey=pkey, tenant=TENANT,
                            event_id=BENCH_EVENT.event_id, accepted_at=time.time())
    key = next(iter(record["target"].values())).lower().encode()
    return key, orjson.dumps(record)


@dataclass
class Row:
    """One line of the result table (and of the JSON file)."""

    id: str
    what: str
    figure: float | None
    unit: str
    baseline: str = "—"
    ratio: float | None = None
    target: str = "—"
    met: bool | None = None
    details: dict[str, Any] = field(default_factory=dict)


def progress(text: str, *, end: str = "\n") -> None:
    print(text, end=end, flush=True)


def overwrite(text: str) -> None:
    """Rewrite the current line (a counter while something drains)."""
    sys.stdout.write(f"\r{text}\033[K")
    sys.stdout.flush()
