"""B2: the bare FastAPI baseline, served in its own process on a free port."""

from __future__ import annotations

import subprocess
import sys

from bench import closed
from bench.common import BENCH_EVENT, Row, ingest_bodies, progress
from bench.loadgen import ROOT, free_port, wait_until_ok

FIRST_READING = 5_000  # req/s, TARGETS.md's first reading on a machine of this kind


def run(seconds: float, connections: int, client: str) -> Row:
    port = free_port()
    progress(f"B2 bare FastAPI (uvicorn, 1 worker) on 127.0.0.1:{port}, {client} client, "
             f"{connections} connections, {seconds:.0f} s per run")
    server = subprocess.Popen([sys.executable, "-m", "bench.b2_app", str(port)], cwd=ROOT,
                              stdin=subprocess.DEVNULL)
    try:
        wait_until_ok(f"http://127.0.0.1:{port}/health", 30)
        url = f"http://127.0.0.1:{port}/v1/events/{BENCH_EVENT.event_id}"
        figure, details = closed.measure("B2", url, ingest_bodies(), seconds, connections,
                                         client)
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)
    ratio = figure / FIRST_READING if figure else None
    return Row("B2", "bare FastAPI endpoint, same JSON body, 202, no Kafka", figure, "req/s",
               baseline=f"{FIRST_READING:,} (TARGETS first reading)", ratio=ratio,
               details=details)
