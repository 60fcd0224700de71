"""TRACK: the tracking service's click redirect (requests/s) beside a bare FastAPI endpoint
of the same shape, in the same run, runs alternating (bare, tracking, bare...).

The tracking service is the stack's own (``make up``, port 8002), unchanged: each click
verifies its token (HMAC), finds its message, classifies the request and records the
reaction (with its trace row) in the PostgreSQL outbox before answering 302 — while the
reactions service's relay produces the reactions to Kafka and the topic's consumers
(reactions, webhooks, journeys) read them. Each tracking run clicks
100,000 distinct links of its own (throwaway messages in tracked_messages of a throwaway
tenant, 400,000 for the warm-up and three runs), more than a run's requests, so every
click is a new reaction of a message not cached: the worst case. (wrk starts each run at
its script's first path: with one script for all runs, the second and third runs clicked
the first run's links again — repeats, answered from the cache — and measured higher.)
Everything the tenant holds is deleted at the end.
wrk, one thread, GET with the paths rotated by a Lua script.

Each run also reads the CPU its requests cost each process, from /proc (user + system
time): the bare server's per request; per click the tracking service's, PostgreSQL's
(every backend and background process), Kafka's and the reaction consumers' (reactions,
webhooks, journeys), from the run's start until its reactions are all traced (the relay
and the consumers caught up), less what each used in as long idle just before. Other
work on the machine adds to PostgreSQL's and Kafka's; the tracking service's and the bare
server's are their own.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg

from bench.common import RUNS, Row, progress, settings
from bench.loadgen import ROOT, free_port, wait_until_ok
from bench.stats import median_of
from bench.wrk import parse_wrk
from shared.adapters.postgres import create_pool
from shared.domain.tracking_links import click_url, parse_keyring

MESSAGES, LINKS = 100_000, 1  # a run's links, more than its requests: see above
SLICES = RUNS + 1  # the warm-up's and each tracking run's own links: no run repeats one
TARGET = 0.7  # × the bare endpoint (issue 11)
TRACKING = f"http://127.0.0.1:{settings.tracking_port}"


def _lua(paths: list[str]) -> str:
    literals = ",\n".join(f'"{p}"' for p in paths)
    return f"""
local paths = {{ {literals} }}
local requests = {{}}
local i = 0
local headers = {{["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"}}
init = function(args)
  for k, path in ipairs(paths) do
    requests[k] = wrk.format("GET", path, headers)
  end
end
request = function()
  i = i % #requests + 1
  return requests[i]
end
"""


_HZ = os.sysconf("SC_CLK_TCK")
# Processes whose CPU a click costs, by what their command line holds.
_CHAIN = {"postgres": "/bin/postgres ", "kafka": "kafka.Kafka",
          "reactions": "-m services.reactions", "webhooks": "-m services.webhooks",
          "journeys": "-m services.journeys"}


def _pids() -> dict[str, list[int]]:
    """The chain's processes: the tracking service (the listener on its port) and those
    of ``_CHAIN``; PostgreSQL's are read again at the end of a run (backends come)."""
    found: dict[str, list[int]] = {name: [] for name in ("tracking", *_CHAIN)}
    listener = subprocess.run(["ss", "-ltnpH", f"sport = :{settings.tracking_port}"],
                              capture_output=True, text=True).stdout
    found["tracking"] = [int(p) for p in re.findall(r"pid=(\d+)", listener)][:1]
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        for name, marker in _CHAIN.items():
            if marker in command or (name == "postgres" and command.startswith("postgres:")):
                found[name].append(int(pid))
    return found


def _ticks(pid: int) -> int | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[11]) + int(fields[12])


def _cpu(pids: dict[str, list[int]]) -> dict[int, int]:
    return {p: t for group in pids.values() for p in group if (t := _ticks(p)) is not None}


def _used(pids: dict[str, list[int]], start: dict[int, int], end: dict[int, int]
          ) -> dict[str, int]:
    """Ticks by process group between two readings (a process born since: all of its)."""
    return {name: sum(end[p] - start.get(p, 0) for p in group if p in end)
            for name, group in pids.items()}


IDLE_S = 3.0  # each run's idle reading, just before it


def _measured(base: str, script: str, seconds: float, connections: int,
              pids: dict[str, list[int]], settled: Any) -> dict[str, Any]:
    """A wrk run and the CPU per request it cost each process (``settled``: waits until
    what the run started is done, the relay and the consumers caught up)."""
    before = _cpu(pids)
    time.sleep(IDLE_S)
    start = _cpu(pids)
    idle = _used(pids, before, start)
    began = time.monotonic()
    result = _wrk(base, script, seconds, connections)
    settled()
    taken = time.monotonic() - began
    if "postgres" in pids:  # backends opened during the run
        pids = {**pids, "postgres": sorted(set(pids["postgres"]) | set(_pids()["postgres"]))}
    used = _used(pids, start, _cpu(pids))
    per_request = {name: round(max(0.0, ticks - idle.get(name, 0) * taken / IDLE_S)
                               / _HZ * 1e6 / max(result["ok"], 1), 1)
                   for name, ticks in used.items()}
    per_request["chain"] = round(sum(per_request.values()), 1)
    return {**result, "cpu_us_per_request": per_request, "cpu_window_s": round(taken, 1)}


def _wrk(base: str, script: str, seconds: float, connections: int) -> dict[str, Any]:
    if shutil.which("wrk") is None:  # it replays the signed links from a Lua script
        raise RuntimeError("TRACK needs wrk: install it (Debian/Ubuntu: apt-get install wrk)")
    done = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
         "--timeout", "10s", "-s", script, base],
        capture_output=True, text=True, timeout=seconds + 60, check=True)
    return parse_wrk(done.stdout)


async def _seed(tenant: str) -> list[str]:
    """``MESSAGES`` more tracked messages of the tenant; their click paths, in an order
    that spreads them."""
    keys = parse_keyring(settings.tracking_keys.get_secret_value())
    messages = [str(uuid.uuid4()) for _ in range(MESSAGES)]
    pool = await create_pool(settings.pg_dsn, min_size=1, max_size=1)
    try:
        await pool.execute(
            "INSERT INTO tracked_messages (tenant_id, message_id, channel, profile_id, origin,"
            " links, sent_at) SELECT $1, m, 'email', 'p-' || m::text,"
            " '{\"kind\": \"event\", \"eventId\": \"EVTbench\", \"pKey\": \"k\"}',"
            " $3, now() - interval '1 hour' FROM unnest($2::uuid[]) AS m",
            tenant, [uuid.UUID(m) for m in messages],
            [f"https://shop.example/{n}" for n in range(LINKS)])
    finally:
        await pool.close()
    return ["/c/" + click_url("", keys, tenant, m, n).rsplit("/", 1)[1]
            for n in range(LINKS) for m in messages]


async def _settled(pool: asyncpg.Pool, tenant: str, deadline_s: float = 120) -> bool:
    """Whether the relay and the reactions service caught up with the tenant's reactions
    (else their trace rows would come after the clean-up)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        left = await pool.fetchval(
            "SELECT (SELECT count(*) FROM reactions WHERE tenant_id = $1)"
            " - (SELECT count(*) FROM message_trace WHERE tenant_id = $1)", tenant)
        if left == 0:
            return True
        await asyncio.sleep(0.5)
    return False


async def _caught_up(tenant: str) -> None:
    pool = await create_pool(settings.pg_dsn, min_size=1, max_size=1)
    try:
        await _settled(pool, tenant, 60)
    finally:
        await pool.close()


async def _clean(tenant: str) -> dict[str, int]:
    pool = await create_pool(settings.pg_dsn, min_size=1, max_size=1)
    try:
        counts = {"settled": int(await _settled(pool, tenant))}
        for table in ("reactions", "message_trace", "tracked_messages"):
            status = await pool.execute(f"DELETE FROM {table} WHERE tenant_id = $1", tenant)
            counts[table] = int(status.split()[-1])
        return counts
    finally:
        await pool.close()


def run(seconds: float, connections: int) -> Row:
    tenant = f"bench-track-{uuid.uuid4().hex[:8]}"
    wait_until_ok(f"{TRACKING}/health/ready", 10)
    port = free_port()
    progress(f"TRACK click redirect on {TRACKING} beside bare FastAPI on 127.0.0.1:{port}, "
             f"wrk, {connections} connections, {seconds:.0f} s per run, "
             f"{MESSAGES * LINKS:,} distinct links a run, none clicked twice")
    server = subprocess.Popen([sys.executable, "-m", "bench.track_bare_app", str(port)],
                              cwd=ROOT, stdin=subprocess.DEVNULL)
    scripts = [Path(tempfile.mkstemp(suffix=".lua")[1]) for _ in range(SLICES)]
    runs: dict[str, list[dict[str, Any]]] = {"bare": [], "tracking": []}
    try:
        wait_until_ok(f"http://127.0.0.1:{port}/health", 30)
        for script in scripts:  # wrk starts each run at its script's first path
            script.write_text(_lua(asyncio.run(_seed(tenant))))
        bases = {"bare": f"http://127.0.0.1:{port}", "tracking": TRACKING}
        for base in bases.values():  # warm-up: imports, caches, connections
            _wrk(base, str(scripts[0]), 1, connections)
        bare_pids = {"bare": [server.pid]}
        for n in range(1, RUNS + 1):
            for label, base in bases.items():
                result = _measured(  # the chain's processes found again (restarts)
                    base, str(scripts[n]), seconds, connections,
                    bare_pids if label == "bare" else _pids(),
                    (lambda: None) if label == "bare" else lambda: asyncio.run(_caught_up(tenant)))
                runs[label].append(result)
                cpu = "  ".join(f"{k} {v:,.0f}" for k, v in result["cpu_us_per_request"].items())
                progress(f"  TRACK {label} run {n}/{RUNS}: {result['ok_per_s']:,.0f}/s"
                         f"  p50 {result.get('p50_ms', 0):.1f} ms"
                         f"  p99 {result.get('p99_ms', 0):.1f} ms  errors {result['errors']}"
                         f"  CPU µs/request: {cpu}")
    finally:
        server.terminate()
        server.wait(10)
        for script in scripts:
            script.unlink(missing_ok=True)
        cleaned = asyncio.run(_clean(tenant))
    bare, tracking = median_of(runs["bare"], "ok_per_s"), median_of(runs["tracking"],
                                                                   "ok_per_s")
    ratio = tracking / bare if tracking and bare else None
    return Row("TRACK", "tracking click redirect (verify, look up, record in PostgreSQL)",
               tracking, "req/s", baseline=f"{bare:,.0f} req/s bare FastAPI 302" if bare
               else "—", ratio=ratio, target=f"≥ {TARGET}× bare",
               met=None if ratio is None else ratio >= TARGET,
               details={"connections": connections, "seconds": seconds, "runs": runs,
                        "links_per_run": MESSAGES * LINKS, "cleaned": cleaned,
                        "p99_ms_median": median_of(runs["tracking"], "p99_ms"),
                        "bare_p99_ms_median": median_of(runs["bare"], "p99_ms"),
                        "cpu_us_per_click_median": _cpu_medians(runs["tracking"]),
                        "bare_cpu_us_per_request_median": _cpu_medians(runs["bare"])})


def _cpu_medians(runs: list[dict[str, Any]]) -> dict[str, float | None]:
    names = {name for run in runs for name in run.get("cpu_us_per_request", {})}
    return {name: median_of([run["cpu_us_per_request"] for run in runs], name)
            for name in sorted(names)}
