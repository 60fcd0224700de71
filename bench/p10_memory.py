"""P10: the resident memory (RSS) of every process of the stack during P5's load.

The load is P5's, run by P5's own code (``bench.p5_priority``): transactional events
through the gateway at ``rate``/s alone, then beside ``bench.flood`` producing bulk send
records at ``bulk_rate``/s, then until the bulk backlog has drained; ``RUNS`` times.
Unlike ``--only P5`` it does not empty the SMTP sinks first (so it may run beside the
tests; the sinks keep at most 200,000 messages each), and the P5 latencies it prints are
a by-product.

A thread reads every stack process's ``VmRSS`` (``/proc/<pid>/status``; the pids from
``.run/pids`` and any other ``python -m services.<x>`` process, found again at each
sample, so a restarted service is followed) every
``SAMPLE_S`` seconds: at rest before the load (the baseline, same run) and during it.
Each row is one process: its largest RSS during the load, beside its RSS at rest, against
TARGETS P10 (≤ 250 MB each). The broker (a JVM, its heap fixed by ``-Xmx``) and the test
sinks are shown, not judged; PostgreSQL is shown apart, as the proportional share (PSS)
of all its processes (shared buffers counted once), not judged either.

``python -m bench.p10_memory [--p5-seconds S]`` runs it alone.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench import p5_priority, pipeline
from bench.common import (
    RUNS,
    Row,
    machine_load,
    postgres_pids,
    proc_rss_mb,
    progress,
    service_processes,
)
from bench.stats import max_by_name
from shared.settings import get_settings

TARGET_MB = 250.0
SAMPLE_S = 0.5
NOT_JUDGED = {"kafka": "the broker (JVM, -Xmx)", "smtp-sink": "test sink",
              "smtp-sink-2": "test sink", "smtp-sink-bulk": "test sink",
              "provider-sink": "test sink", "provider-sink-2": "test sink"}


def postgres_pss_mb() -> float | None:
    """PostgreSQL's memory as the sum of its processes' PSS: each shared page divided
    among the processes that map it, so shared buffers count once."""
    total_kb = 0
    for pid in postgres_pids():
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total_kb += int(line.split()[1])
                    break
        except (OSError, ValueError):
            continue
    return total_kb * 1024 / 1e6 if total_kb else None


def sample() -> dict[str, float | None]:
    return {name: proc_rss_mb(pid) for name, pid in service_processes().items()}


class Sampler(threading.Thread):
    """RSS of every stack process every ``SAMPLE_S`` s, PostgreSQL's PSS every 4th."""

    def __init__(self) -> None:
        super().__init__(daemon=True, name="p10-rss")
        self.samples: list[dict[str, float | None]] = []
        self.postgres: list[float] = []
        self._halt = threading.Event()

    def run(self) -> None:
        n = 0
        while not self._halt.is_set():
            self.samples.append(sample())
            if n % 4 == 0 and (pss := postgres_pss_mb()) is not None:
                self.postgres.append(pss)
            n += 1
            self._halt.wait(SAMPLE_S)

    def stop(self) -> None:
        self._halt.set()
        self.join(10)


async def _one_run(n: int, rate: float, bulk_rate: float, seconds: float, connections: int,
                   drain_deadline_s: float, flood_nice: int) -> dict[str, Any]:
    """P5's two phases and the bulk drain (p5_priority's ``_one_run`` without emptying
    the sinks)."""
    import httpx

    run_id = f"P10r{n}t{int(time.time())}"
    async with httpx.AsyncClient() as http, pipeline.LagProbe() as probe:
        alone = await p5_priority._phase(http, probe, f"P10 run {n}/{RUNS} alone", rate,
                                         seconds, connections, f"{run_id}a", None)
        flood = await p5_priority._phase(http, probe, f"P10 run {n}/{RUNS} with the flood",
                                         rate, seconds, connections, f"{run_id}f", bulk_rate,
                                         flood_nice)
        drained_s = await p5_priority._wait_bulk_drained(probe, drain_deadline_s)
    return {"tx_p99_alone_ms": alone.get("p99_ms"), "tx_p99_flood_ms": flood.get("p99_ms"),
            "tx_arrived": (alone["tx_arrived"], flood["tx_arrived"]),
            "bulk_produced": flood.get("produced"), "bulk_drained_after_s": drained_s}


def run(rate: float = 100.0, bulk_rate: float = 2000.0, seconds: float = 10.0,
        connections: int = 64, drain_deadline_s: float = 300.0,
        flood_nice: int | None = None) -> list[Row]:
    nice = get_settings().sender_bulk_nice if flood_nice is None else flood_nice
    progress(f"P10 RSS of every stack process during P5's load (tx {rate:,.0f}/s, bulk flood "
             f"{bulk_rate:,.0f}/s at nice {nice}, {seconds:.0f} s a phase, {RUNS} runs), "
             f"sampled every {SAMPLE_S} s; load {machine_load()}")
    pipeline.prepare_gateway()
    at_rest = []
    for _ in range(3):
        at_rest.append(sample())
        time.sleep(SAMPLE_S)  # a fixed sampling interval, not a wait for a condition
    rest = max_by_name(at_rest)
    postgres_rest = postgres_pss_mb()
    sampler = Sampler()
    sampler.start()
    runs = []
    began = time.monotonic()
    try:
        for n in range(1, RUNS + 1):
            pipeline.wait_drained(f"P10 run {n}: waiting for an idle pipeline", drain_deadline_s)
            result = asyncio.run(_one_run(n, rate, bulk_rate, seconds, connections,
                                          drain_deadline_s, nice))
            result["load"] = machine_load()
            progress(f"  P10 run {n}/{RUNS}: tx p99 alone {result['tx_p99_alone_ms'] or 0:.1f}"
                     f" ms, beside the flood {result['tx_p99_flood_ms'] or 0:.1f} ms; bulk "
                     f"drained {result['bulk_drained_after_s'] or 0:.0f} s after; largest RSS "
                     f"so far {max(max_by_name(sampler.samples).values()):,.0f} MB; load "
                     f"{result['load']}")
            runs.append(result)
    finally:
        sampler.stop()
    peak = max_by_name(sampler.samples)
    postgres_peak = max(sampler.postgres, default=None)
    details = {"runs": runs, "samples": len(sampler.samples), "sample_s": SAMPLE_S,
               "window_s": time.monotonic() - began, "rest_mb": rest, "peak_mb": peak,
               "postgres_pss_mb": {"rest": postgres_rest, "peak": postgres_peak},
               "rate": rate, "bulk_rate": bulk_rate, "seconds": seconds, "flood_nice": nice}
    rows = []
    for i, name in enumerate(sorted(peak, key=lambda s: (s in NOT_JUDGED, s))):
        judged = name not in NOT_JUDGED
        before = rest.get(name)
        rows.append(Row(
            "P10", f"{name} max RSS during P5's load"
                   + ("" if judged else f" ({NOT_JUDGED[name]}: not judged)"),
            peak[name], "MB", baseline=f"at rest {before:,.0f} MB" if before else "—",
            ratio=peak[name] / before if before else None,
            target=f"≤ {TARGET_MB:.0f} MB" if judged else "—",
            met=peak[name] <= TARGET_MB if judged else None,
            details=details if i == 0 else {}))
    if postgres_peak is not None:
        rows.append(Row("P10", "PostgreSQL, all its processes' PSS (shared buffers once;"
                               " not judged)", postgres_peak, "MB",
                        baseline=f"at rest {postgres_rest or 0:,.0f} MB",
                        ratio=postgres_peak / postgres_rest if postgres_rest else None))
    return rows


def main() -> None:
    from bench.report import table, write_json

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--p5-rate", type=float, default=100.0)
    parser.add_argument("--p5-bulk-rate", type=float, default=2000.0)
    parser.add_argument("--p5-seconds", type=float, default=10.0, help="seconds a phase")
    parser.add_argument("--p5-flood-nice", type=int)
    args = parser.parse_args()
    rows = run(args.p5_rate, args.p5_bulk_rate, args.p5_seconds,
               flood_nice=args.p5_flood_nice)
    progress(table(rows))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = write_json(rows, {"timestamp": stamp, "command": " ".join(sys.argv),
                             "load_at_end": machine_load()}, f"{stamp}-p10")
    progress(f"load {machine_load()}; results: {path}")


if __name__ == "__main__":
    main()
