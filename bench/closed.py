"""Closed-loop throughput measurement shared by B2 and P1: a warm-up, then RUNS runs."""

from __future__ import annotations

from typing import Any

from bench.common import RUNS, progress
from bench.loadgen import closed_loop
from bench.stats import median_of

WARMUP_S = 1.0  # first requests pay for imports, model builds and connection set-up


def measure(label: str, url: str, bodies: list[bytes], seconds: float, connections: int,
            client: str) -> tuple[float | None, dict[str, Any]]:
    """Median of the runs' 2xx answers per second, and the per-run figures."""
    closed_loop(url, bodies, WARMUP_S, connections, client)
    runs = []
    for n in range(1, RUNS + 1):
        result = closed_loop(url, bodies, seconds, connections, client)
        progress(f"  {label} run {n}/{RUNS}: {result['ok_per_s']:,.0f}/s"
                 f"  p50 {result.get('p50_ms', 0):.1f} ms  p99 {result.get('p99_ms', 0):.1f} ms"
                 f"  errors {result['errors']}")
        runs.append(result)
    figure = median_of(runs, "ok_per_s")
    details = {"client": client, "connections": connections, "seconds": seconds, "runs": runs,
               "p99_ms_median": median_of(runs, "p99_ms")}
    return figure, details
