"""P4: accepted → handed to SMTP, at a fixed open-loop rate through the real chain.

Each request carries its intended send time in ``ctx.sentAt``; the bench template
renders it into the email, and the SMTP sink records when the message arrived
(``received_at``), so every message gets its own latency. The latency therefore starts
before the gateway's acceptance (it includes the gateway's answer time and any delay of
the generator): a slight overstatement, never an understatement. The sender's own
histogram (from the gateway's acceptedAt) is kept beside it as a cross-check.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from typing import Any

import httpx
import orjson

from bench import pipeline
from bench.common import (
    BENCH_DOMAIN,
    EMAIL_TX,
    RUNS,
    SENDER_LATENCY,
    SENDER_METRICS,
    SINK,
    Row,
    overwrite,
    progress,
)
from bench.loadgen import open_loop
from bench.stats import (
    bucket_delta,
    histogram_buckets,
    histogram_quantile,
    latency_summary,
    median,
    median_of,
)

TARGET_P50_MS, TARGET_P99_MS = 50, 250
_TEXT = re.compile(r"order=(?P<order>\S+)\s+sent-at=(?P<sent>[\d.]+)")  # CRLF in mail
TARGETS = 256  # distinct recipients: spreads events over partitions like real traffic


def _body(run_id: str) -> Any:
    def make(i: int, due_wall: float) -> bytes:
        return orjson.dumps({
            "email": f"bench-{i % TARGETS:03d}@{BENCH_DOMAIN}",
            "ctx": {"orderId": f"{run_id}-{i}", "amount": 42.5, "sentAt": f"{due_wall:.6f}"},
        })
    return make


def latencies_by_order(messages: list[dict[str, Any]], run_id: str) -> dict[str, list[float]]:
    """order id → latencies (seconds) of this run's messages (more than one = a duplicate)."""
    found: dict[str, list[float]] = {}
    for message in messages:
        match = _TEXT.search(message.get("text", ""))
        if match and match["order"].startswith(f"{run_id}-"):
            latency = message["received_at"] - float(match["sent"])
            found.setdefault(match["order"], []).append(latency)
    return found


async def _wait_arrivals(http: httpx.AsyncClient, run_id: str, expected: int,
                         sink_before: float, deadline_s: float) -> dict[str, list[float]]:
    """Poll the sink's cheap counter until enough arrived, then read the messages back;
    other tests may share the sink, so the read-back decides."""
    end = time.monotonic() + deadline_s
    while True:
        arrived = pipeline.counter_total(f"{SINK}/metrics", "parcours_smtp_sink_received_total")
        overwrite(f"  waiting for SMTP: {arrived - sink_before:,.0f}/{expected:,}")
        if arrived - sink_before >= expected or time.monotonic() > end:
            response = await http.get(f"{SINK}/messages", timeout=60)
            found = latencies_by_order(response.json(), run_id)
            if len(found) >= expected or time.monotonic() > end:
                progress("")
                return found
        await asyncio.sleep(0.5)


async def _one_run(n: int, rate: float, seconds: float, connections: int,
                   url: str = pipeline.EVENT_URL, label: str = "P4") -> dict[str, Any]:
    count = int(rate * seconds)
    run_id = f"{label}r{n}t{int(time.time())}"
    async with httpx.AsyncClient() as http:
        (await http.delete(f"{SINK}/messages")).raise_for_status()
        histogram_before = histogram_buckets(await _text(http, SENDER_METRICS), SENDER_LATENCY,
                                             EMAIL_TX)
        sink_before = pipeline.counter_total(f"{SINK}/metrics",
                                             "parcours_smtp_sink_received_total")
        sent = await open_loop(
            url, _body(run_id), rate, count, connections,
            on_tick=lambda s, a: overwrite(f"  {label} run {n}/{RUNS}: sent {s:,}/{count:,}, "
                                           f"202 {a:,}"),
        )
        progress("")
        found = await _wait_arrivals(http, run_id, len(sent["accepted"]), sink_before,
                                     max(60, count / 50))
        histogram = bucket_delta(histogram_before, histogram_buckets(
            await _text(http, SENDER_METRICS), SENDER_LATENCY, EMAIL_TX))
    return _summarize(sent, found, histogram, rate, count)


def _summarize(sent: dict[str, Any], found: dict[str, list[float]],
               histogram: list[tuple[float, float]], rate: float, count: int) -> dict[str, Any]:
    accepted = len(sent["accepted"])
    latency = {int(order.rsplit("-", 1)[1]): min(v) for order, v in found.items()}
    # Arrival time = intended send time + latency; the delivery rate is what the chain
    # really handed to SMTP per second, from the first send to the last arrival.
    last_arrival = max((i / rate + s for i, s in latency.items()), default=0.0)
    # The last tenth of the sends waits longest when a queue builds up.
    tail = [s for i, s in latency.items() if i >= 0.9 * count]
    tail_p50_s = median(tail) if tail else None
    result = {
        "offered_per_s": rate, "sent": count, "accepted": accepted,
        "statuses": sent["statuses"], "achieved_per_s": sent["achieved_per_s"],
        "generator_behind_max_ms": sent["generator_behind_max_ms"],
        "arrived": len(found), "duplicates": sum(len(v) - 1 for v in found.values()),
        "delivered_per_s": len(found) / last_arrival if last_arrival else 0.0,
        **latency_summary(list(latency.values())),
        "last_tenth_p50_ms": _ms(tail_p50_s),
        "sender_histogram_p50_ms": _histogram_ms(0.5, histogram),
        "sender_histogram_p99_ms": _histogram_ms(0.99, histogram),
    }
    # Sustained: every accepted event arrived, the offered rate was really sent, and no
    # backlog built up (the last tenth of the sends still arrived within a second).
    result["sustained"] = (accepted == count and len(found) == accepted
                           and sent["achieved_per_s"] >= 0.95 * rate
                           and tail_p50_s is not None and tail_p50_s <= 1.0)
    return result


def _histogram_ms(q: float, buckets: list[tuple[float, float]]) -> float | str | None:
    """The sender's estimate; past its largest finite bucket only a bound is known."""
    value = histogram_quantile(q, buckets)
    finite = [le for le, _ in buckets if le != float("inf")]
    if value is not None and finite and value >= finite[-1]:
        return f">= {finite[-1] * 1000:.0f}"
    return _ms(value)


async def _text(http: httpx.AsyncClient, url: str) -> str:
    response = await http.get(url, timeout=10)
    response.raise_for_status()
    return response.text


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def run(rate: float, seconds: float, connections: int, drain_deadline_s: float) -> list[Row]:
    progress(f"P4 accepted → SMTP at {rate:,.0f} events/s for {seconds:.0f} s (open loop), "
             f"{RUNS} runs")
    pipeline.prepare_gateway()
    runs = []
    for n in range(1, RUNS + 1):
        drained, _, _ = pipeline.wait_drained(f"P4 run {n}: waiting for an idle pipeline",
                                              drain_deadline_s)
        if not drained:
            progress("  starting anyway: latencies include the backlog")
        result = asyncio.run(_one_run(n, rate, seconds, connections))
        progress(f"  P4 run {n}/{RUNS}: {result['arrived']:,}/{result['accepted']:,} arrived, "
                 f"p50 {result.get('p50_ms', float('nan')):.1f} ms, "
                 f"p99 {result.get('p99_ms', float('nan')):.1f} ms, "
                 f"sent {result['achieved_per_s']:,.0f}/s, handed to SMTP "
                 f"{result['delivered_per_s']:,.0f}/s, sustained {result['sustained']}")
        runs.append(result)
    sustained = all(r["sustained"] for r in runs)
    details = {"latency": "intended send time (client) → SMTP sink received_at",
               "rate": rate, "seconds": seconds, "connections": connections, "runs": runs,
               "statuses": dict(sum((Counter(r["statuses"]) for r in runs), Counter()))}
    p50, p95, p99 = (median_of(runs, k) for k in ("p50_ms", "p95_ms", "p99_ms"))
    achieved = median_of(runs, "achieved_per_s")
    delivered = median_of(runs, "delivered_per_s")
    what = f"sent → handed to SMTP at {rate:,.0f}/s"
    offered = f"offered {rate:,.0f}/s"
    return [
        Row("P4", f"{what}, p50", p50, "ms", target=f"≤ {TARGET_P50_MS} ms",
            met=None if p50 is None else p50 <= TARGET_P50_MS, details=details),
        Row("P4", f"{what}, p95", p95, "ms"),
        Row("P4", f"{what}, p99", p99, "ms", target=f"≤ {TARGET_P99_MS} ms",
            met=None if p99 is None else p99 <= TARGET_P99_MS),
        Row("P4", "rate sent and answered 202", achieved, "events/s", baseline=offered,
            ratio=(achieved or 0) / rate, target="≥ 0.95 × offered",
            met=achieved is not None and achieved >= 0.95 * rate),
        Row("P4", "rate handed to SMTP (all arrived, no backlog?)", delivered, "msg/s",
            baseline=offered, ratio=(delivered or 0) / rate, target="sustained",
            met=sustained),
    ]
