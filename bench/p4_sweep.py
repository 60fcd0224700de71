"""P4MAX: the highest sustained P4 rate, and what each process spends at each rate
(``python -m bench.p4_sweep --rates 200 300 400 500 600 800 --seconds 20``).

Each rate runs STAGES' open loop (P4's event through the gateway, ``bench.stages``) for
``--seconds``, then waits for every accepted message to be handed over. A rate is
*sustained* when the gateway took it (``sustained`` below: accepted at ≥ 97 % of the
offered rate) and no backlog grew while it ran: the messages accepted in the window's
last quarter reached SMTP about as fast as those of its first quarter (p50 at most twice,
plus 50 ms). Beside each rate: accepted → SMTP p50/p99, CPU per message of each process
(the SMTP sink apart: it stands for the mail server), the busiest process's share of a
core, the whole machine's busy share (``/proc/stat``) and the load generator's own CPU
(this process: it shares the two cores). The sweep stops after the second rate that is
not sustained.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Sequence
from typing import Any

from bench import pipeline, stages
from bench.common import Row, progress
from bench.report import table, write_json
from bench.stats import percentile

ACCEPTED_SHARE = 0.97  # of the offered rate, answered 202
GROWTH_FACTOR, GROWTH_SLACK_S = 2.0, 0.05  # last quarter's p50 vs the first quarter's


def _machine_busy() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def to_smtp_by_quarter(marks: Sequence[Sequence[float]]) -> tuple[float, float] | None:
    """p50 (s) of accepted → handed over for the messages accepted in the first and in the
    last quarter of the run (by acceptance time); None when too few to say."""
    done = [(m[0], m[7] - m[0]) for m in marks if m[7] == m[7]]  # NaN: not handed over
    if len(done) < 8:
        return None
    start = min(a for a, _ in done)
    span = max(a for a, _ in done) - start
    first = [d for a, d in done if a <= start + span / 4]
    last = [d for a, d in done if a >= start + 3 * span / 4]
    if not first or not last:
        return None
    return percentile(first, 50), percentile(last, 50)


def sustained(rate: float, accepted_per_s: float, handed: int, accepted: int,
              quarters: tuple[float, float] | None) -> bool:
    """The gateway took the rate, every accepted message was handed over, and the chain
    kept up (no growing backlog: see the module's docstring)."""
    if accepted_per_s < ACCEPTED_SHARE * rate or handed < accepted or quarters is None:
        return False
    first, last = quarters
    return last <= GROWTH_FACTOR * first + GROWTH_SLACK_S


async def _one_rate(rate: float, seconds: float, connections: int) -> dict[str, Any]:
    busy0, total0 = _machine_busy()
    mine0 = os.times()
    result = await stages._at_rate(rate, seconds, connections)
    busy1, total1 = _machine_busy()
    mine1 = os.times()
    span = result["span_s"]
    marks = result.pop("marks")
    quarters = to_smtp_by_quarter(marks)
    used = result["cpu_s_used"]
    busiest = max((n for n in used if n != stages.SINK_APART), key=lambda n: used[n])
    result.update(
        quarters_p50_s=quarters,
        sustained=sustained(rate, result["achieved_per_s"], result["handed_over"],
                            result["accepted"], quarters),
        machine_busy_share=(busy1 - busy0) / max(1, total1 - total0),
        generator_cpu_share=((mine1.user + mine1.system) - (mine0.user + mine0.system)) / span,
        busiest=busiest, busiest_core_share=used[busiest] / span)
    return result


def _rows(results: list[dict[str, Any]]) -> list[Row]:
    rows: list[Row] = []
    for r in results:
        to_smtp = r["stages"].get("to_smtp", {})
        cpu = r["cpu_us_per_message"]
        chain = sum(us for n, us in cpu.items() if n != stages.SINK_APART)
        per = ", ".join(f"{n} {us:,.0f}" for n, us in cpu.items() if n != stages.SINK_APART)
        rows.append(Row(
            "P4MAX", f"at {r['rate']:,.0f}/s: sustained {'yes' if r['sustained'] else 'no'};"
            f" p50 / p99 {to_smtp.get('p50_ms', float('nan')):,.1f} /"
            f" {to_smtp.get('p99_ms', float('nan')):,.1f} ms; handed {r['handed_over']:,}"
            f" of {r['accepted']:,}; machine busy {r['machine_busy_share']:.0%}, generator"
            f" {r['generator_cpu_share']:.2f} core; busiest {r['busiest']}"
            f" {r['busiest_core_share']:.2f} core; CPU µs/message {per}; sink (apart)"
            f" {cpu.get(stages.SINK_APART, 0):,.0f}",
            chain, "µs/msg (chain)", details=r))
    best = max((r["rate"] for r in results if r["sustained"]), default=None)
    rows.append(Row("P4MAX", "highest sustained P4 rate of the sweep", best, "events/s",
                    target="1,000/s with p50 ≤ 50 ms, p99 ≤ 250 ms",
                    met=bool(best and best >= 1000)))
    return rows


def run(rates: Sequence[float] = (200, 300, 400, 500, 600, 800), seconds: float = 20.0,
        connections: int = 64) -> list[Row]:
    pipeline.prepare_gateway()
    results: list[dict[str, Any]] = []
    failed = 0
    for rate in rates:
        drained, _, _ = pipeline.wait_drained("P4MAX: waiting for an idle pipeline", 180)
        if not drained:
            progress("  the pipeline did not drain: stopping the sweep")
            break
        progress(f"P4MAX: {rate:,.0f} events/s for {seconds:.0f} s"
                 f" (load {os.getloadavg()[0]:.2f})")
        result = asyncio.run(_one_rate(rate, seconds, connections))
        result["at"] = time.strftime("%H:%M:%S")
        results.append(result)
        progress(f"  sustained: {result['sustained']}, quarters p50 {result['quarters_p50_s']}")
        failed += not result["sustained"]
        if failed >= 2:
            break
    return _rows(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[200, 300, 400, 500, 600,
                                                                    800])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    rows = run(args.rates, args.seconds, args.connections)
    progress(table(rows))
    path = write_json(rows, {"command": "python -m bench.p4_sweep --rates "
                             + " ".join(f"{r:g}" for r in args.rates)
                             + f" --seconds {args.seconds:g}"},
                      time.strftime("%Y%m%dT%H%M%S") + "-p4max")
    progress(f"\nresults: {path}")


if __name__ == "__main__":
    main()
