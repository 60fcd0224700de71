"""Gateway metrics. Labels are bounded: reasons and outcomes, never ids or targets."""

import gc
import time
from typing import Any

from prometheus_client import Counter, Histogram

EVENTS_ACCEPTED = Counter("parcours_gateway_events_accepted_total", "Events answered 202")
EVENTS_REJECTED = Counter(
    "parcours_gateway_events_rejected_total",
    "Events refused, by reason",
    # invalid, unsupported_media_type, unknown_event, too_large, idempotency_conflict,
    # kafka_unavailable, db_unavailable
    ["reason"],
)
INGEST_SECONDS = Histogram(
    "parcours_gateway_ingest_seconds",
    "Time from request read to broker acknowledgement",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
JOURNEY_EVENTS = Counter(
    "parcours_gateway_journey_events_total",
    "Journey events answered 202: accepted (written to the topic) or ignored (not an event"
    " of its type, or no profile named)",
    ["outcome"],
)
GC_SECONDS = Histogram(
    "parcours_gateway_gc_seconds",
    "Python's garbage collections by generation: each pauses every request in flight",
    ["generation"],
    buckets=(0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
)


def watch_collections() -> None:
    """Times each collection (about 1 µs a collection to measure)."""
    started = [0.0]
    by_generation = [GC_SECONDS.labels(str(g)) for g in range(3)]

    def timed(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            by_generation[info["generation"]].observe(time.perf_counter() - started[0])

    gc.callbacks.append(timed)
