"""P11: one worker against two, of the processor and of the email sender, at one rate
(``python -m bench.p11_scale_out --rate 300 --seconds 20 --rounds 2``).

Each round runs the same open-loop load through the gateway (STAGES' event, template and
timelines: ``bench.stages``) once with one worker of each and once with two
(``deploy/local/stack.py start processor-2 sender-email-2``, stopped again after),
alternating. Each worker's CPU and work come from its own ``/metrics``:
``process_cpu_seconds_total`` over ``parcours_processor_events_total{status="processing"}``
(events the processor routed) or ``parcours_sender_sent_total{channel="email"}``. On two
cores a second worker cannot double anything: what it shows is the CPU a message costs per
worker (the capacity model's input, README "Scale-out") and the latency beside one worker.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench import pipeline, stages
from bench.common import Row, machine_load, progress
from bench.report import table, write_json
from shared.settings import get_settings

ROOT = Path(__file__).resolve().parents[1]
settings = get_settings()
# worker → (metrics port, the counter of its work, a label filter)
WORKERS = {
    "processor": (settings.processor_metrics_port, "parcours_processor_events_total",
                  'status="processing"'),
    "sender-email": (settings.sender_email_metrics_port, "parcours_sender_sent_total",
                     'channel="email"'),
}
STEP = 100  # a second worker's metrics port: the first's + 100 (deploy/local/stack.py)


def _stack(*args: str) -> None:
    subprocess.run([sys.executable, str(ROOT / "deploy/local/stack.py"), *args], check=True,
                   stdout=subprocess.DEVNULL)


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        return str(answer.read().decode())


def counter(text: str, name: str, label: str = "") -> float:
    """The sum of a metric's samples whose labels contain ``label`` (pure)."""
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"{re.escape(name)}(\{{[^}}]*\}})? ([0-9.e+-]+)$", line)
        if match and label in (match.group(1) or ""):
            total += float(match.group(2))
    return total


def reading(workers: int) -> dict[str, tuple[float, float]]:
    """(CPU seconds, work done) of each worker, by ``name`` or ``name-2``."""
    found = {}
    for name, (port, metric, label) in WORKERS.items():
        for number in range(1, workers + 1):
            text = _scrape(port + STEP * (number - 1))
            found[name if number == 1 else f"{name}-{number}"] = (
                counter(text, "process_cpu_seconds_total"), counter(text, metric, label))
    return found


def per_worker(before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]]
               ) -> dict[str, dict[str, float]]:
    """Each worker's CPU, work and CPU µs per unit of work between two readings (pure)."""
    out = {}
    for name, (cpu, work) in after.items():
        cpu_s, done = cpu - before[name][0], work - before[name][1]
        out[name] = {"cpu_s": round(cpu_s, 2), "work": done,
                     "cpu_us_per_message": round(cpu_s / done * 1e6, 1) if done else 0.0}
    return out


def _round(workers: int, rate: float, seconds: float, connections: int) -> dict[str, Any]:
    if workers == 2:
        _stack("start", "processor-2", "sender-email-2")  # returns once both groups split
    try:
        pipeline.wait_drained(f"P11 ({workers} workers): waiting for an idle pipeline", 120)
        before = reading(workers)
        load = machine_load()
        result = asyncio.run(stages._at_rate(rate, seconds, connections))
        workers_used = per_worker(before, reading(workers))
    finally:
        if workers == 2 and not int(os.environ.get("PARCOURS_STACK_WORKERS") or 1) >= 2:
            _stack("stop", "processor-2", "sender-email-2")
    to_smtp = result["stages"].get("to_smtp", {})
    return {"workers": workers, "load": load, "accepted": result["accepted"],
            "handed_over": result["handed_over"], "span_s": round(result["span_s"], 1),
            "p50_ms": to_smtp.get("p50_ms"), "p99_ms": to_smtp.get("p99_ms"),
            "per_worker": workers_used}


def _rows(rounds: list[dict[str, Any]], rate: float) -> list[Row]:
    rows = []
    for r in rounds:
        each = "; ".join(f"{name} {w['cpu_us_per_message']:,.0f} µs × {w['work']:,.0f}"
                         for name, w in r["per_worker"].items())
        rows.append(Row("P11", f"{r['workers']} worker(s) of processor and sender-email at "
                        f"{rate:,.0f}/s, load {r['load']}: accepted → SMTP p50 (p99 "
                        f"{r['p99_ms'] or 0:.1f} ms); CPU per message per worker: {each}",
                        r["p50_ms"], "ms", details=r))
    return rows


def run(rate: float = 300.0, seconds: float = 20.0, connections: int = 64,
        rounds: int = 1) -> list[Row]:
    pipeline.prepare_gateway()
    done = []
    for n in range(rounds):
        for workers in ((1, 2) if n % 2 == 0 else (2, 1)):  # alternating
            progress(f"P11: round {n + 1}, {workers} worker(s) each, {rate:,.0f}/s")
            done.append(_round(workers, rate, seconds, connections))
    return _rows(done, rate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    rows = run(args.rate, args.seconds, args.connections, args.rounds)
    print(table(rows))
    write_json(rows, {"benchmark": "P11", "argv": sys.argv[1:]},
               time.strftime("%Y%m%dT%H%M%S") + "-p11")


if __name__ == "__main__":
    main()
