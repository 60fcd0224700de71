"""P3: the gateway's latency at half its capacity, beside B2's at the same rate.

First the gateway's capacity, by P1's method (closed loop, ``connections`` keep-alive
connections, a warm-up and ``RUNS`` runs, the median of the 202s per second). Then an
open-loop load at half of it (``rate`` requests/s whatever the answers do, TARGETS P3):
single events through ``POST /v1/events/EVTbench`` (P1's bodies: an expiration in the
past, so the processor ends them ``tooOld`` and nothing is emailed), each 202 timed from
its intended send time to its answer (the generator's own delays count, so a stall cannot
hide), and apart from its actual send. The baseline is B2's bare FastAPI endpoint (same
bodies, same uvicorn settings, no Kafka) offered the same rate by the same generator in
the same run, runs alternating: the latency the machine, the client and HTTP alone give.

Target: p99 ≤ 25 ms. The gateway's CPU share of a core over each run is in the details.

``python -m bench.p3_latency [--seconds S] [--connections C]`` runs it alone.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from typing import Any

import uvloop

from bench import closed, pipeline
from bench.common import (
    BENCH_EVENT,
    RUNS,
    CpuMeter,
    Row,
    chain_processes,
    ingest_bodies,
    machine_load,
    progress,
)
from bench.loadgen import ROOT, client_name, free_port, open_loop, wait_until_ok
from bench.stats import latency_summary, median_of, ratio

TARGET_P99_MS = 25.0
SHARE = 0.5  # of the capacity


def _open(url: str, rate: float, seconds: float, connections: int,
          bare_pid: int | None = None) -> dict[str, Any]:
    bodies = ingest_bodies()
    count = int(rate * seconds)
    meter = CpuMeter(chain_processes("gateway", "processor", "kafka")
                     | ({"bare": [bare_pid]} if bare_pid else {}))
    sent = uvloop.run(open_loop(url, lambda i, _due: bodies[i % len(bodies)], rate, count,
                                connections))
    cpu, wall = meter.used()
    return {
        "offered_per_s": rate, "sent": count, "accepted": len(sent["accepted"]),
        "statuses": sent["statuses"], "achieved_per_s": sent["achieved_per_s"],
        "generator_behind_max_ms": sent["generator_behind_max_ms"],
        **latency_summary(sent["latency_s"]),
        "service": latency_summary(sent["service_s"]),
        "cpu_share_of_a_core": {name: (used or 0) / wall for name, used in cpu.items()},
        # CPU of a request, µs (the server's whole CPU over the run / requests sent): the
        # gateway's only counts on its runs, the bare server's on its own
        "cpu_us_per_request": {name: (used or 0) / count * 1e6 for name, used in cpu.items()
                               if name in ("gateway", "bare")},
        "load": machine_load(),
    }


def _bare_server() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "bench.b2_app", str(port)], cwd=ROOT,
                              stdin=subprocess.DEVNULL)
    wait_until_ok(f"http://127.0.0.1:{port}/health", 30)
    return server, f"http://127.0.0.1:{port}/v1/events/{BENCH_EVENT.event_id}"


def _stop(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    try:
        server.wait(10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(10)


def run(seconds: float = 10.0, connections: int = 64, client: str = "auto",
        drain_deadline_s: float = 300.0, capacity: float | None = None) -> list[Row]:
    """``capacity``: the gateway's closed-loop rate if already measured in this run (P1's
    figure); else measured here."""
    client = client_name(client)
    progress(f"P3 gateway latency at {SHARE:.0%} of its capacity, {seconds:.0f} s per run, "
             f"load {machine_load()}")
    pipeline.prepare_gateway()
    capacity_details: dict[str, Any] = {}
    if capacity is None:
        progress(f"  capacity (P1's method: closed loop, {client} client, {connections} "
                 f"connections)")
        capacity, capacity_details = closed.measure("P3 capacity", pipeline.EVENT_URL,
                                                    ingest_bodies(), seconds, connections,
                                                    client)
    if not capacity:
        raise RuntimeError("P3: the gateway's capacity could not be measured")
    rate = round(capacity * SHARE)
    server, bare_url = _bare_server()
    gateway_runs, bare_runs = [], []
    try:
        _open(bare_url, rate, 1.0, connections)  # warm both: imports, connections
        _open(pipeline.EVENT_URL, rate, 1.0, connections)
        for n in range(1, RUNS + 1):
            pipeline.wait_drained(f"P3 run {n}: waiting for an idle pipeline", drain_deadline_s)
            bare = _open(bare_url, rate, seconds, connections, server.pid)
            gateway = _open(pipeline.EVENT_URL, rate, seconds, connections)
            for label, result in (("B2 bare", bare), ("gateway", gateway)):
                serving = "bare" if label == "B2 bare" else "gateway"
                progress(f"  P3 run {n}/{RUNS} {label} at {rate:,}/s: p50 "
                         f"{result.get('p50_ms', 0):.1f} ms, p99 {result.get('p99_ms', 0):.1f}"
                         f" ms (sent → answer p99 {result['service'].get('p99_ms', 0):.1f} ms)"
                         f", achieved {result['achieved_per_s']:,.0f}/s, statuses "
                         f"{result['statuses']}, generator behind max "
                         f"{result['generator_behind_max_ms']:.0f} ms, gateway CPU "
                         f"{result['cpu_share_of_a_core'].get('gateway', 0):.2f} of a core, "
                         f"{serving} CPU {result['cpu_us_per_request'].get(serving, 0):,.0f}"
                         f" µs a request, load {result['load']}")
            bare_runs.append(bare)
            gateway_runs.append(gateway)
    finally:
        _stop(server)
    p50, p99 = median_of(gateway_runs, "p50_ms"), median_of(gateway_runs, "p99_ms")
    b50, b99 = median_of(bare_runs, "p50_ms"), median_of(bare_runs, "p99_ms")
    gateway_us = median_of([r["cpu_us_per_request"] for r in gateway_runs], "gateway")
    bare_us = median_of([r["cpu_us_per_request"] for r in bare_runs], "bare")
    every_202 = all(r["accepted"] == r["sent"] for r in gateway_runs)
    details = {"capacity_per_s": capacity, "offered_per_s": rate, "seconds": seconds,
               "connections": connections, "client": client, "capacity": capacity_details,
               "gateway_runs": gateway_runs, "bare_runs": bare_runs,
               "latency": "intended send time → answer read (open loop)",
               "cpu_us_per_request": {"gateway": gateway_us, "bare": bare_us}}
    what = f"gateway latency at {SHARE:.0%} of its capacity ({capacity:,.0f}/s → {rate:,}/s)"
    return [
        Row("P3", f"{what}: p50", p50, "ms", baseline=f"B2 bare {b50 or 0:,.1f} ms",
            ratio=ratio(p50, b50), details=details),
        Row("P3", f"{what}: p99 (every request 202: {'yes' if every_202 else 'NO'})", p99,
            "ms", baseline=f"B2 bare {b99 or 0:,.1f} ms", ratio=ratio(p99, b99),
            target=f"≤ {TARGET_P99_MS:.0f} ms",
            met=None if p99 is None else p99 <= TARGET_P99_MS and every_202),
        Row("P3", f"{what}: CPU a request (from /proc, median of the runs)", gateway_us,
            "µs", baseline=f"B2 bare {bare_us or 0:,.0f} µs", ratio=ratio(gateway_us, bare_us),
            details=details),
    ]


def main() -> None:
    from bench.report import table, write_json

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--capacity", type=float,
                        help="skip the capacity runs: this many events/s")
    args = parser.parse_args()
    rows = run(args.seconds, args.connections, capacity=args.capacity)
    progress(table(rows))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = write_json(rows, {"timestamp": stamp, "command": " ".join(sys.argv),
                             "load_at_end": machine_load()}, f"{stamp}-p3")
    progress(f"load {machine_load()}; results: {path}")


if __name__ == "__main__":
    main()
