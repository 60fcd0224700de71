"""P5: transactional latency, alone and beside a marketing flood on the bulk topic.

Each run has two phases of the same length. Alone: transactional events through the
gateway at a fixed open-loop rate, timed like P4 (intended send time → the SMTP sink's
``received_at``). With the flood: the same, while ``bench.flood`` produces bulk send
records straight to ``parcours.send.email.bulk.v1`` at a high rate from its own process.
The two p99s and their ratio say whether marketing load delays transactional mail
(TARGETS P5: it must not). Consumer lag is sampled every second in both phases; the
bulk throughput is the bulk group's committed offsets over the flood, and then until
the backlog has drained.

TARGETS asks for 2,000 events/s for 10 minutes; a CI machine runs ``--p5-seconds``
(10 s by default) of it, and a 2-core box cannot drain a 2,000/s bulk flood as it comes:
the bulk lag grows there by design, and the figure to read is the transactional one.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson

from bench import pipeline
from bench.common import (
    BENCH_DOMAIN,
    BULK_SINK,
    EMAIL_TX,
    RUNS,
    SENDER_METRICS,
    SENDER_SENT,
    SINK,
    Row,
    overwrite,
    progress,
)
from bench.loadgen import ROOT, open_loop
from bench.p4_latency import latencies_by_order
from bench.stats import latency_summary, median_of, prometheus_samples

TX_TARGETS = 32  # tx recipients: the sink is read back one recipient at a time
UNCHANGED = 1.25  # p99 with the flood ≤ this × alone: the machine's own noise is 10–30%
TX_GROUP, BULK_GROUP = "parcours-sender-email", "parcours-sender-email-bulk"
SAMPLE_S = 1.0


def _tx_body(run_id: str) -> Callable[[int, float], bytes]:
    def make(i: int, due_wall: float) -> bytes:
        return orjson.dumps({
            "email": f"p5-tx-{i % TX_TARGETS:02d}@{BENCH_DOMAIN}",
            "ctx": {"orderId": f"{run_id}-{i}", "amount": 1.0, "sentAt": f"{due_wall:.6f}"},
        })
    return make


async def _tx_sent(http: httpx.AsyncClient) -> float:
    response = await http.get(SENDER_METRICS, timeout=10)
    return sum(v for labels, v in prometheus_samples(response.text, SENDER_SENT)
               if EMAIL_TX.items() <= labels.items())


async def _tx_arrivals(http: httpx.AsyncClient, run_id: str, expected: int, sent_before: float,
                       deadline_s: float) -> dict[str, list[float]]:
    """Wait for the sender's tx counter (cheap), then read each tx recipient's mail back;
    bulk mail is never parsed."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if await _tx_sent(http) - sent_before >= expected:
            break
        await asyncio.sleep(0.25)
    while True:
        found: dict[str, list[float]] = {}
        for n in range(TX_TARGETS):
            response = await http.get(f"{SINK}/messages",
                                      params={"to": f"p5-tx-{n:02d}@{BENCH_DOMAIN}"}, timeout=60)
            found.update(latencies_by_order(response.json(), run_id))
        if len(found) >= expected or time.monotonic() > end:
            return found
        await asyncio.sleep(0.5)


async def _sample_lags(probe: pipeline.LagProbe, samples: list[dict[str, int]],
                       done: asyncio.Event) -> None:
    while not done.is_set():
        samples.append(await probe.lags())
        try:
            await asyncio.wait_for(done.wait(), SAMPLE_S)
        except TimeoutError:
            pass


async def _start_flood(rate: float, seconds: float, run_id: str,
                       nice: int) -> asyncio.subprocess.Process:
    """The flood stands in for the journey engine and other marketing producers, which
    run at the marketing CPU priority like the bulk sender (``nice``; 0: not lowered)."""
    flood = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.flood", str(rate), str(seconds), run_id,
        "--nice", str(nice), cwd=ROOT, start_new_session=True,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE)
    assert flood.stdout is not None
    line = await asyncio.wait_for(flood.stdout.readline(), 60)
    if line.strip() != b"started":
        raise RuntimeError(f"bench.flood did not start: {line!r}")
    return flood


async def _flood_result(flood: asyncio.subprocess.Process, seconds: float) -> dict[str, Any]:
    assert flood.stdout is not None
    line = await asyncio.wait_for(flood.stdout.readline(), seconds + 120)
    await asyncio.wait_for(flood.wait(), 30)
    result: dict[str, Any] = json.loads(line)
    return result


async def _phase(http: httpx.AsyncClient, probe: pipeline.LagProbe, label: str, rate: float,
                 seconds: float, connections: int, run_id: str,
                 bulk_rate: float | None, flood_nice: int = 0) -> dict[str, Any]:
    count = int(rate * seconds)
    sent_before = await _tx_sent(http)
    offsets_before = await probe.offsets()
    samples: list[dict[str, int]] = []
    sampling_done = asyncio.Event()
    sampler = asyncio.create_task(_sample_lags(probe, samples, sampling_done))
    flood = (await _start_flood(bulk_rate, seconds, run_id, flood_nice) if bulk_rate
             else None)
    began = time.monotonic()
    try:
        sent = await open_loop(
            pipeline.EVENT_URL, _tx_body(run_id), rate, count, connections,
            on_tick=lambda s, a: overwrite(f"  {label}: tx sent {s:,}/{count:,}"
                                           + (f", bulk lag {samples[-1][BULK_GROUP]:,}"
                                              if bulk_rate and samples else "")),
        )
        flooded = await _flood_result(flood, seconds) if flood else {}
    finally:
        if flood is not None and flood.returncode is None:
            flood.kill()
            await flood.wait()
    window_s = time.monotonic() - began
    offsets_after = await probe.offsets()
    sampling_done.set()
    await sampler
    progress("")
    found = await _tx_arrivals(http, run_id, len(sent["accepted"]), sent_before,
                               max(60.0, count / 20))
    latency = [min(v) for v in found.values()]
    bulk_done = offsets_after[BULK_GROUP][0] - offsets_before[BULK_GROUP][0]
    lags_end = samples[-1] if samples else {}
    return {
        "tx_offered_per_s": rate, "tx_sent": count, "tx_accepted": len(sent["accepted"]),
        "tx_achieved_per_s": sent["achieved_per_s"], "statuses": sent["statuses"],
        "generator_behind_max_ms": sent["generator_behind_max_ms"],
        "tx_arrived": len(found), "tx_duplicates": sum(len(v) - 1 for v in found.values()),
        **latency_summary(latency),
        "window_s": window_s, **flooded,
        "bulk_committed_during": bulk_done, "bulk_sent_per_s": bulk_done / window_s,
        "lags_start": samples[0] if samples else {}, "lags_end": lags_end,
        "lags_max": {g: max(s[g] for s in samples) for g in pipeline.GROUPS} if samples else {},
        "lag_samples": samples,
    }


async def _wait_bulk_drained(probe: pipeline.LagProbe, deadline_s: float) -> float | None:
    began = time.monotonic()
    while (lag := (await probe.lags())[BULK_GROUP]) > 0:
        waited = time.monotonic() - began
        overwrite(f"  bulk backlog draining: {lag:,} left ({waited:.0f}s)")
        if waited > deadline_s:
            progress(f"  — bulk backlog not drained after {deadline_s:.0f}s")
            return None
        await asyncio.sleep(0.5)
    progress("")
    return time.monotonic() - began


async def _one_run(n: int, rate: float, bulk_rate: float, seconds: float, connections: int,
                   drain_deadline_s: float, flood_nice: int) -> dict[str, Any]:
    run_id = f"P5r{n}t{int(time.time())}"
    async with httpx.AsyncClient() as http, pipeline.LagProbe() as probe:
        for sink in (SINK, BULK_SINK):  # the bulk relay's would otherwise grow run by run
            (await http.delete(f"{sink}/messages")).raise_for_status()
        alone = await _phase(http, probe, f"P5 run {n}/{RUNS} alone", rate, seconds,
                             connections, f"{run_id}a", None)
        flood = await _phase(http, probe, f"P5 run {n}/{RUNS} with the flood", rate, seconds,
                             connections, f"{run_id}f", bulk_rate, flood_nice)
        drained_s = await _wait_bulk_drained(probe, drain_deadline_s)
    produced = flood.get("produced", 0)
    # From the start of the flood to an empty bulk backlog.
    whole_s = flood["window_s"] + drained_s if drained_s is not None else None
    return {"alone": alone, "flood": flood, "bulk_drained_after_s": drained_s,
            "bulk_overall_per_s": produced / whole_s if whole_s else None}


def _grew(phase: dict[str, Any], group: str, per_s: float) -> bool | None:
    """More than a second's worth of the traffic queued up over the phase."""
    start, end = phase["lags_start"].get(group), phase["lags_end"].get(group)
    if start is None or end is None:
        return None
    return bool(end - start > per_s)


def _summarize(runs: list[dict[str, Any]], rate: float, bulk_rate: float,
               flood_nice: int) -> list[Row]:
    alone, flood = [r["alone"] for r in runs], [r["flood"] for r in runs]
    p50_alone, p99_alone = median_of(alone, "p50_ms"), median_of(alone, "p99_ms")
    p50_flood, p99_flood = median_of(flood, "p50_ms"), median_of(flood, "p99_ms")
    ratio = p99_flood / p99_alone if p99_flood and p99_alone else None
    tx_max_lag = median_of([{"v": f["lags_max"].get(TX_GROUP)} for f in flood], "v")
    tx_grew = [_grew(f, TX_GROUP, rate) for f in flood]
    bulk_grew = [_grew(f, BULK_GROUP, bulk_rate) for f in flood]
    bulk_end = median_of([{"v": f["lags_end"].get(BULK_GROUP)} for f in flood], "v")
    all_arrived = all(p["tx_arrived"] == p["tx_accepted"] == p["tx_sent"]
                      for p in (*alone, *flood))
    tx = f"tx at {rate:,.0f}/s"
    offered = f"offered {bulk_rate:,.0f}/s"
    details = {"runs": runs, "rate": rate, "bulk_rate": bulk_rate, "flood_nice": flood_nice,
               "latency": "intended send time (client) → SMTP sink received_at",
               "tx_lag_grew": tx_grew, "bulk_lag_grew": bulk_grew, "all_arrived": all_arrived}
    produced = median_of(flood, "produced_per_s")
    sent = median_of(flood, "bulk_sent_per_s")
    overall = median_of(runs, "bulk_overall_per_s")
    drained = median_of(runs, "bulk_drained_after_s")
    return [
        Row("P5", f"{tx} alone: p50", p50_alone, "ms", details=details),
        Row("P5", f"{tx} alone: p99", p99_alone, "ms"),
        Row("P5", f"{tx} beside the bulk flood: p50", p50_flood, "ms",
            baseline=f"alone {p50_alone or 0:,.1f} ms",
            ratio=p50_flood / p50_alone if p50_flood and p50_alone else None),
        Row("P5", f"{tx} beside the bulk flood: p99 (every tx mail arrived once: "
                  f"{'yes' if all_arrived else 'NO'})", p99_flood, "ms",
            baseline=f"alone {p99_alone or 0:,.1f} ms", ratio=ratio,
            target=f"unchanged (≤ {UNCHANGED} × alone)",
            met=None if ratio is None else ratio <= UNCHANGED and all_arrived),
        Row("P5", f"bulk produced to parcours.send.email.bulk.v1 (at nice {flood_nice})",
            produced, "records/s",
            baseline=offered, ratio=(produced or 0) / bulk_rate),
        Row("P5", "bulk handed to SMTP during the flood", sent, "msg/s", baseline=offered,
            ratio=(sent or 0) / bulk_rate),
        Row("P5", "bulk handed to SMTP, flood start → backlog drained", overall, "msg/s",
            baseline=f"drained {drained or 0:,.0f} s after the flood" if drained else "—"),
        Row("P5", "tx consumer lag during the flood, max (sender-email)", tx_max_lag,
            "records", target="no growth", met=not any(tx_grew) if None not in tx_grew
            else None),
        Row("P5", "bulk consumer lag at the end of the flood", bulk_end, "records",
            target="no growth (TARGETS P5)",
            met=not any(bulk_grew) if None not in bulk_grew else None),
    ]


def run(rate: float, bulk_rate: float, seconds: float, connections: int,
        drain_deadline_s: float, flood_nice: int) -> list[Row]:
    progress(f"P5 tx at {rate:,.0f} events/s for {seconds:.0f} s alone, then beside a bulk "
             f"flood of {bulk_rate:,.0f} records/s (flood process at nice {flood_nice}), "
             f"{RUNS} runs")
    pipeline.prepare_gateway()
    runs = []
    for n in range(1, RUNS + 1):
        drained, _, _ = pipeline.wait_drained(f"P5 run {n}: waiting for an idle pipeline",
                                              drain_deadline_s)
        if not drained:
            progress("  starting anyway: the alone phase includes a backlog")
        result = asyncio.run(_one_run(n, rate, bulk_rate, seconds, connections,
                                      drain_deadline_s, flood_nice))
        a, f = result["alone"], result["flood"]
        progress(f"  P5 run {n}/{RUNS}: p99 alone {a.get('p99_ms', float('nan')):.1f} ms, "
                 f"with the flood {f.get('p99_ms', float('nan')):.1f} ms; bulk produced "
                 f"{f.get('produced_per_s', 0):,.0f}/s, sent during it "
                 f"{f['bulk_sent_per_s']:,.0f}/s; tx lag max {f['lags_max'].get(TX_GROUP)}")
        runs.append(result)
    return _summarize(runs, rate, bulk_rate, flood_nice)
