"""HTTP load for B2, P1 and P4, always to 127.0.0.1 and always bounded in count and time.

Closed loop (B2, P1): ``wrk`` when installed (it takes less of the 2 shared cores per
request than a Python client, leaving more to the server under test), else this module
run as its own process: ``python -m bench.loadgen URL BODIES_JSON SECONDS CONNECTIONS``.
Open loop (P4): ``open_loop`` sends at a fixed rate whatever the answers do, stamping
each request with its *intended* send time so a stalled server cannot hide its delay.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import request_headers
from bench.stats import latency_summary
from bench.wrk import run_wrk

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_ok(url: str, deadline_s: float) -> None:
    """Poll ``url`` until it answers 2xx; raise at the deadline."""
    import urllib.request

    end = time.monotonic() + deadline_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if 200 <= response.status < 300:
                    return
        except OSError:
            pass
        if time.monotonic() > end:
            raise TimeoutError(f"{url} did not answer 2xx within {deadline_s:.0f}s")
        time.sleep(0.1)


def client_name(prefer: str) -> str:
    """``wrk`` if asked for (or auto) and installed, else the Python client."""
    if prefer in ("auto", "wrk") and shutil.which("wrk"):
        return "wrk"
    return "python"


# --- closed loop -------------------------------------------------------------------------

def closed_loop(url: str, bodies: list[bytes], seconds: float, connections: int,
                client: str) -> dict[str, Any]:
    """One closed-loop run: ``connections`` keep-alive connections, each sending its next
    request as soon as the previous one is answered, for ``seconds``."""
    if client == "wrk":
        return run_wrk(url, bodies, seconds, connections)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as file:
        json.dump([b.decode() for b in bodies], file)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "bench.loadgen", url, file.name, str(seconds),
             str(connections)],
            cwd=ROOT, capture_output=True, text=True, timeout=seconds + 60, check=True,
        )
    finally:
        Path(file.name).unlink(missing_ok=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


async def _python_closed_loop(url: str, bodies: list[bytes], seconds: float,
                              connections: int) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    end = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=connections)
    timeout = aiohttp.ClientTimeout(total=10)

    async def worker(session: aiohttp.ClientSession, offset: int) -> None:
        n = offset
        while time.monotonic() < end:
            began = time.monotonic()
            try:
                async with session.post(url, data=bodies[n % len(bodies)],
                                        headers=request_headers()) as response:
                    await response.read()
                    statuses[response.status] += 1
            except (aiohttp.ClientError, TimeoutError):
                statuses[0] += 1
            latencies.append(time.monotonic() - began)
            n += connections

    began = time.monotonic()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(worker(session, i) for i in range(connections)))
    duration = time.monotonic() - began
    ok = sum(n for status, n in statuses.items() if 200 <= status < 300)
    return {
        "client": "python", "requests": sum(statuses.values()), "ok": ok,
        "errors": sum(statuses.values()) - ok, "duration_s": duration,
        "ok_per_s": ok / duration, **latency_summary(latencies),
    }


# --- open loop ---------------------------------------------------------------------------

async def open_loop(
    url: str, make_body: Callable[[int, float], bytes], rate: float, count: int,
    connections: int = 64, on_tick: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Send ``count`` requests at ``rate``/s; request i is due at start + i/rate and its
    body is built with that intended wall-clock time. Returns what was accepted (2xx)."""
    statuses: Counter[int] = Counter()
    accepted: list[int] = []
    finished: list[float] = []
    # Of each 2xx: intended send time → answer read (what a caller waiting on its schedule
    # sees, the generator's own delays included), and actual send → answer read.
    latency_s: list[float] = []
    service_s: list[float] = []
    connector = aiohttp.TCPConnector(limit=connections)
    timeout = aiohttp.ClientTimeout(total=10)

    async def post(session: aiohttp.ClientSession, i: int, due_wall: float) -> None:
        began = time.monotonic()
        try:
            body = make_body(i, due_wall)
            async with session.post(url, data=body, headers=request_headers()) as r:
                await r.read()
                statuses[r.status] += 1
                if 200 <= r.status < 300:
                    accepted.append(i)
                    done = time.monotonic()
                    latency_s.append(done - (mono0 + i / rate))
                    service_s.append(done - began)
        except (aiohttp.ClientError, TimeoutError):
            statuses[0] += 1
        finished.append(time.monotonic())

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        wall0, mono0 = time.time(), time.monotonic()
        tasks: list[asyncio.Task[None]] = []
        behind_max, next_tick = 0.0, 1.0
        while len(tasks) < count:
            elapsed = time.monotonic() - mono0
            due = min(count, int(elapsed * rate) + 1)
            behind_max = max(behind_max, elapsed - len(tasks) / rate)
            while len(tasks) < due:
                i = len(tasks)
                tasks.append(asyncio.create_task(post(session, i, wall0 + i / rate)))
            if on_tick is not None and elapsed >= next_tick:
                on_tick(len(tasks), len(accepted))
                next_tick += 1.0
            await asyncio.sleep(max(0.0, len(tasks) / rate - (time.monotonic() - mono0)))
        await asyncio.gather(*tasks)
    span = (max(finished) - mono0) if finished else 0.0
    return {
        "wall_start": wall0, "sent": count, "accepted": sorted(accepted),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "span_s": span, "achieved_per_s": len(accepted) / span if span else 0.0,
        "generator_behind_max_ms": behind_max * 1000,
        "latency_s": latency_s, "service_s": service_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="closed-loop HTTP POST load (bench helper)")
    parser.add_argument("url")
    parser.add_argument("bodies", help="a JSON file: a list of request bodies (strings)")
    parser.add_argument("seconds", type=float)
    parser.add_argument("connections", type=int)
    args = parser.parse_args()
    if not args.url.startswith("http://127.0.0.1:"):
        parser.error("load goes to 127.0.0.1 only")
    bodies = [b.encode() for b in json.loads(Path(args.bodies).read_text())]
    import uvloop

    result = uvloop.run(_python_closed_loop(args.url, bodies, args.seconds, args.connections))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
