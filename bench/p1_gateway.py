"""P1: single-event HTTP ingestion through the real gateway, beside B2.

The same bodies as B2 go to POST /v1/events/EVTbench; every 202 means the broker
acknowledged the record (acks=all). The processor then drains what P1 wrote before P4
starts; how fast it did so is kept as a detail.
"""

from __future__ import annotations

from bench import closed, pipeline
from bench.common import Row, ingest_bodies, progress
from bench.stats import ratio

TARGET_RATE, TARGET_RATIO = 3_000, 0.6


def run(seconds: float, connections: int, client: str, b2: Row | None,
        drain_deadline_s: float) -> Row:
    progress(f"P1 gateway POST {pipeline.EVENT_URL}, {client} client, {connections} "
             f"connections, {seconds:.0f} s per run")
    pipeline.prepare_gateway()
    figure, details = closed.measure("P1", pipeline.EVENT_URL, ingest_bodies(), seconds,
                                     connections, client)
    drained, waited, lags = pipeline.wait_drained("processor catching up on P1",
                                                  drain_deadline_s)
    backlog = lags.get("parcours-processor", 0)
    details["processor_after_p1"] = {
        "backlog_events": backlog, "drained": drained, "drain_s": waited,
        # A lower bound on the processor's rate: it had the CPU to itself while draining.
        "drain_events_per_s": backlog / waited if drained and waited > 0 else None,
    }
    b2_figure = b2.figure if b2 else None
    versus_b2 = ratio(figure, b2_figure)
    met = None
    if figure is not None and versus_b2 is not None:
        met = figure >= TARGET_RATE and versus_b2 >= TARGET_RATIO
    return Row(
        "P1", "gateway single-event ingestion (202 after Kafka ack)", figure, "events/s",
        baseline=f"B2 {b2_figure:,.0f} req/s" if b2_figure else "B2 missing",
        ratio=versus_b2, target=f"≥ {TARGET_RATE:,}/s and ≥ {TARGET_RATIO} × B2", met=met,
        details=details,
    )
