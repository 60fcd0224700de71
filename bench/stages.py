"""STAGES: where a transactional message's time goes, stage by stage, and what each
process spends on it (``python -m bench.stages --rate 300 --seconds 20``).

Events go through the gateway at a fixed open-loop rate (P4's event and template). Each
message handed over carries its timeline in its trace row (``message_trace.timeline``,
``shared/domain/timeline.py``): accepted by the gateway, consumed, decided and produced by
the processor, consumed, claimed, rendered and handed over to SMTP by the email sender,
and the row's ``at``, settled. The per-stage p50/p99 come from this run's messages only,
read back from PostgreSQL, not from the services' histograms (which other traffic shares).

CPU per message: user + system ticks of each process (``/proc/<pid>/stat``) over the run,
less what it spent at rest just before (an idle reading of ``IDLE_S``), over the messages
handed over: the gateway, the processor, the email sender, Kafka, PostgreSQL (every
backend and background process) and the SMTP sink (it stands for the mail server: shown
apart, not the chain's own cost).

``--one N`` sends N events one at a time instead (each once the one before reached the
SMTP sink, ``--gap`` apart), for the chain's fixed waits: request → SMTP server, as the
sink saw it, and the same stages.

A PNG beside the JSON (``bench/results/<stamp>-stages.png``): throughput (accepted and
handed over per second) and each stage's p50 and p99 over time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson

from bench import pipeline
from bench.common import BENCH_DOMAIN, SINK, Row, overwrite, progress, request_headers, settings
from bench.loadgen import open_loop
from bench.report import RESULTS, table
from bench.stats import percentile
from shared.domain.timeline import STAGES

ROOT = Path(__file__).resolve().parents[1]
PIDS = ROOT / ".run" / "pids"
HZ = os.sysconf("SC_CLK_TCK")
IDLE_S = 3.0
TARGETS = 256  # distinct recipients: the events spread over the partitions
# The chain's processes: the stack's pid files, and the others by their command lines.
SERVICES = {"gateway": "gateway", "processor": "processor", "sender-email": "sender-email",
            "smtp-sink": "smtp-sink"}
BY_COMMAND = {"kafka": "kafka.Kafka", "postgres": "postgres:"}
SINK_APART = "smtp-sink"

_QUERY = """
SELECT t.timeline, extract(epoch FROM t.at)::float8 AS settled
  FROM message_trace t
  JOIN contact_history h ON h.tenant_id = t.tenant_id AND h.message_id = t.message_id
 WHERE t.tenant_id = 'default' AND t.stage = 'handover' AND t.at >= to_timestamp($1)
   AND h.origin_id = 'EVTbench' AND t.timeline IS NOT NULL AND t.timeline[1] >= $1
   AND t.timeline[1] < $2
"""


# --- processes and their CPU ---------------------------------------------------------------

def processes() -> dict[str, list[int]]:
    found: dict[str, list[int]] = {name: [] for name in (*SERVICES, *BY_COMMAND)}
    for name, pid_file in SERVICES.items():
        try:
            found[name].append(int((PIDS / f"{pid_file}.pid").read_text()))
        except (OSError, ValueError):
            pass
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        for name, marker in BY_COMMAND.items():
            if marker in command or (name == "postgres" and "/bin/postgres " in command):
                found[name].append(int(pid))
    return found


def _ticks(pid: int) -> int | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[11]) + int(fields[12])


def cpu_reading() -> dict[int, int]:
    return {p: t for group in processes().values() for p in group
            if (t := _ticks(p)) is not None}


def cpu_seconds(groups: dict[str, list[int]], start: dict[int, int], end: dict[int, int]
                ) -> dict[str, float]:
    """CPU seconds by process between two readings (a process born since: all of it)."""
    return {name: sum(end[p] - start.get(p, 0) for p in group if p in end) / HZ
            for name, group in groups.items()}


# --- the run's timelines -------------------------------------------------------------------

def stage_marks(timeline: list[float | None], settled: float) -> list[float]:
    """The STAGES marks of one message (NaN where unknown)."""
    return [math.nan if m is None else m for m in timeline] + [settled]


def stage_durations(marks: list[float]) -> dict[str, float]:
    """Each stage since the one before, and accepted → handed over ('total'), seconds."""
    found = {stage: after - before
             for stage, before, after in zip(STAGES[1:], marks, marks[1:], strict=False)
             if not (math.isnan(before) or math.isnan(after))}
    found["to_smtp"] = marks[7] - marks[0]
    return found


def summarize(all_marks: list[list[float]]) -> dict[str, dict[str, float]]:
    per: dict[str, list[float]] = {}
    for marks in all_marks:
        for stage, seconds in stage_durations(marks).items():
            per.setdefault(stage, []).append(seconds)
    return {stage: {"p50_ms": percentile(v, 50) * 1000, "p99_ms": percentile(v, 99) * 1000,
                    "count": len(v)}
            for stage, v in per.items() if v}


async def _timelines(since: float, until: float) -> list[list[float]]:
    connection = await asyncpg.connect(settings.pg_dsn)
    try:
        rows = await connection.fetch(_QUERY, since, until)
    finally:
        await connection.close()
    return [stage_marks(list(r["timeline"]), r["settled"]) for r in rows]


async def _wait_settled(since: float, until: float, expected: int, deadline_s: float
                        ) -> list[list[float]]:
    end = time.monotonic() + deadline_s
    while True:
        found = await _timelines(since, until)
        overwrite(f"  settled {len(found):,}/{expected:,}")
        if len(found) >= expected or time.monotonic() > end:
            progress("")
            return found
        await asyncio.sleep(0.5)


# --- at a fixed rate -----------------------------------------------------------------------

def _body(run_id: str) -> Any:
    def make(i: int, due_wall: float) -> bytes:
        return orjson.dumps({
            "email": f"bench-{i % TARGETS:03d}@{BENCH_DOMAIN}",
            "ctx": {"orderId": f"{run_id}-{i}", "amount": 42.5, "sentAt": f"{due_wall:.6f}"},
        })
    return make


async def _at_rate(rate: float, seconds: float, connections: int) -> dict[str, Any]:
    count = int(rate * seconds)
    run_id = f"STGt{int(time.time())}"
    groups = processes()
    before = cpu_reading()
    await asyncio.sleep(IDLE_S)
    start_cpu = cpu_reading()
    idle = cpu_seconds(groups, before, start_cpu)
    since = time.time()
    sent = await open_loop(pipeline.EVENT_URL, _body(run_id), rate, count, connections,
                           on_tick=lambda s, a: overwrite(f"  sent {s:,}/{count:,}, 202 {a:,}"))
    progress("")
    until = time.time()
    accepted = len(sent["accepted"])
    found = await _wait_settled(since, until, accepted, max(60.0, count / 50))
    groups = {**groups, "postgres": sorted(set(groups["postgres"])
                                           | set(processes()["postgres"]))}
    used = cpu_seconds(groups, start_cpu, cpu_reading())
    span = time.time() - since
    handed = len(found)
    cpu_us = {name: max(0.0, used[name] - idle[name] * span / IDLE_S) / handed * 1e6
              for name in used} if handed else {}
    return {"rate": rate, "seconds": seconds, "sent": count, "accepted": accepted,
            "handed_over": handed, "statuses": sent["statuses"],
            "achieved_per_s": sent["achieved_per_s"], "span_s": span,
            "stages": summarize(found), "cpu_us_per_message": cpu_us,
            "cpu_s_used": used, "cpu_s_idle_reading": idle, "idle_reading_s": IDLE_S,
            "marks": found}


# --- one at a time -------------------------------------------------------------------------

async def _one_at_a_time(count: int, gap_s: float) -> dict[str, Any]:
    run_id = f"STGo{int(time.time())}"
    address = f"stages-{run_id.lower()}@{BENCH_DOMAIN}"
    to_sink: list[float] = []
    answered: list[float] = []
    since = time.time()
    async with httpx.AsyncClient() as http:
        last = (await http.get(f"{SINK}/recipients/count",
                               params={"containing": address})).json()["last"]
        for i in range(count):
            overwrite(f"  one at a time: {i + 1}/{count}")
            body = orjson.dumps({"email": address, "ctx": {
                "orderId": f"{run_id}-{i}", "amount": 1, "sentAt": f"{time.time():.6f}"}})
            began = time.time()
            response = await http.post(pipeline.EVENT_URL, content=body,
                                       headers=request_headers())
            answered.append(time.time() - began)
            response.raise_for_status()
            end = time.monotonic() + 10
            while time.monotonic() < end:  # the sink's cheap count of what is new only
                polled = (await http.get(f"{SINK}/recipients/count", params={
                    "containing": address, "after": last})).json()
                last = polled["last"]
                if polled["count"]:
                    break
                await asyncio.sleep(0.005)
            await asyncio.sleep(gap_s)
        got = (await http.get(f"{SINK}/messages", params={"to": address})).json()
    progress("")
    for message in got:
        match = re.search(r"sent-at=([\d.]+)", message.get("text", ""))
        if match:
            to_sink.append(message["received_at"] - float(match[1]))
    found = await _wait_settled(since, time.time(), len(got), 10)
    return {"count": count, "gap_s": gap_s, "arrived": len(got),
            "request_to_sink_p50_ms": percentile(to_sink, 50) * 1000 if to_sink else None,
            "request_to_sink_min_ms": min(to_sink) * 1000 if to_sink else None,
            "request_to_sink_max_ms": max(to_sink) * 1000 if to_sink else None,
            "answer_202_p50_ms": percentile(answered, 50) * 1000 if answered else None,
            "stages": summarize(found), "marks": found}


# --- the picture ---------------------------------------------------------------------------

def draw(marks: list[list[float]], title: str, path: Path) -> Path | None:
    """Throughput and each stage's p50/p99 per second of acceptance."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        progress("  no matplotlib (pip install -e '.[dev]'): no picture")
        return None
    if not marks:
        return None
    start = min(m[0] for m in marks)
    seconds = int(max(m[7] for m in marks if not math.isnan(m[7])) - start) + 1
    accepted = [0] * seconds
    handed = [0] * seconds
    by_second: list[list[dict[str, float]]] = [[] for _ in range(seconds)]
    for m in marks:
        a = int(m[0] - start)
        accepted[a] += 1
        if not math.isnan(m[7]):
            handed[min(seconds - 1, int(m[7] - start))] += 1
        by_second[a].append(stage_durations(m))
    shown = [*STAGES[1:], "to_smtp"]
    fig, (top, middle, bottom) = plt.subplots(3, 1, figsize=(11, 10), sharex=True)
    xs = list(range(seconds))
    top.plot(xs, accepted, label="accepted /s")
    top.plot(xs, handed, label="handed to SMTP /s")
    top.set_ylabel("messages/s")
    top.legend(loc="upper right")
    top.set_title(title)
    for q, axis in ((50, middle), (99, bottom)):
        for stage in shown:
            ys = []
            for group in by_second:
                values = [d[stage] for d in group if stage in d]
                ys.append(percentile(values, q) * 1000 if values else math.nan)
            axis.plot(xs, ys, label=stage, linewidth=2.2 if stage == "to_smtp" else 1.2)
        axis.set_yscale("log")
        axis.set_ylabel(f"p{q} ms (log)")
        axis.grid(True, which="both", alpha=0.3)
    middle.legend(loc="upper left", ncol=5, fontsize=8)
    bottom.set_xlabel("seconds since the first accepted (by acceptance)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


# --- rows ----------------------------------------------------------------------------------

def _rows(result: dict[str, Any], label: str) -> list[Row]:
    details = {k: v for k, v in result.items() if k != "marks"}
    rows = []
    for stage in [*STAGES[1:], "to_smtp"]:
        figure = result["stages"].get(stage)
        if figure is None:
            continue
        what = ("accepted → handed to SMTP" if stage == "to_smtp"
                else f"stage {stage} (since {STAGES[STAGES.index(stage) - 1]})")
        rows.append(Row("STAGES", f"{label}: {what}, p50 (p99 {figure['p99_ms']:.1f} ms)",
                        figure["p50_ms"], "ms", details=details if not rows else {}))
    for name, us in result.get("cpu_us_per_message", {}).items():
        apart = " (the mail server's stand-in, apart)" if name == SINK_APART else ""
        rows.append(Row("STAGES", f"{label}: CPU per message, {name}{apart}", us, "µs"))
    chain = sum(us for name, us in result.get("cpu_us_per_message", {}).items()
                if name != SINK_APART)
    if result.get("cpu_us_per_message"):
        rows.append(Row("STAGES", f"{label}: CPU per message, the chain without the sink",
                        chain, "µs"))
    if "request_to_sink_p50_ms" in result:
        rows.append(Row("STAGES", f"{label}: request → SMTP server, one at a time, p50 (min "
                        f"{result['request_to_sink_min_ms'] or 0:.1f}, max "
                        f"{result['request_to_sink_max_ms'] or 0:.1f} ms)",
                        result["request_to_sink_p50_ms"], "ms", target="≤ 10 ms",
                        met=(result["request_to_sink_p50_ms"] or 1e9) <= 10))
    return rows


def run(rate: float = 300.0, seconds: float = 20.0, connections: int = 64, one: int = 0,
        gap_s: float = 0.05, picture: bool = True) -> list[Row]:
    """At ``rate`` for ``seconds`` (or ``one`` events one at a time): per-stage p50/p99
    and CPU per message; the PNG beside the results (``picture``)."""
    pipeline.prepare_gateway()
    drained, _, _ = pipeline.wait_drained("STAGES: waiting for an idle pipeline", 120)
    if not drained:
        progress("  starting anyway: latencies include the backlog")
    load = os.getloadavg()[0]
    if one:
        progress(f"STAGES: {one} events one at a time (load {load:.2f})")
        result = asyncio.run(_one_at_a_time(one, gap_s))
        label, title = "one at a time", f"{one} events one at a time"
    else:
        progress(f"STAGES: {rate:,.0f} events/s for {seconds:.0f} s (load {load:.2f})")
        result = asyncio.run(_at_rate(rate, seconds, connections))
        label, title = f"at {rate:,.0f}/s", f"{rate:,.0f} events/s for {seconds:.0f} s"
    result["load_at_start"] = load
    result["load_at_end"] = os.getloadavg()[0]
    stamp = result["stamp"] = time.strftime("%Y%m%dT%H%M%S")
    if picture:
        RESULTS.mkdir(exist_ok=True)
        drawn = draw(result["marks"], f"STAGES {title}, load {load:.1f}",
                     RESULTS / f"{stamp}-stages.png")
        result["picture"] = str(drawn) if drawn else None
    return _rows(result, label)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--one", type=int, default=0,
                        help="send this many events one at a time instead")
    parser.add_argument("--gap", type=float, default=0.05,
                        help="seconds between events one at a time")
    parser.add_argument("--no-picture", action="store_true")
    args = parser.parse_args()
    rows = run(args.rate, args.seconds, args.connections, args.one, args.gap,
               not args.no_picture)
    progress(table(rows))
    stamp = rows[0].details.get("stamp") if rows else time.strftime("%Y%m%dT%H%M%S")
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{stamp}-stages.json"
    path.write_text(json.dumps({"command": "python -m bench.stages " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v not in (False,)),
        "results": [asdict(r) for r in rows]}, indent=2, default=str))
    progress(f"\nresults: {path}")


if __name__ == "__main__":
    main()
