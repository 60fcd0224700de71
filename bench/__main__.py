"""``python -m bench [--quick]``: B1, B2, B3, P1, P2, P3, P4, STAGES, P4MAX, P5, P10, P6, P7,
P7J, P8, P8J, P9, IMPORT, ERASE, TRACK, GROWTH in that order, then one table (P11 only with
``--only P11``: it starts and stops second workers). ``--only P7`` / ``--only P8`` include
the journey parts (P7J entering, P8J journey timers); ``--only P7J`` etc. run one alone.

Load goes to 127.0.0.1 only. The stack must be up (``make up``); nothing here starts,
stops or restarts a service. A benchmark that fails is reported as failed and the
others still run.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from datetime import datetime

from bench import (
    b1_kafka,
    b2_fastapi,
    b3_passthrough,
    journeys,
    p1_gateway,
    p2_batch,
    p3_latency,
    p4_latency,
    p4_rules,
    p4_sweep,
    p5_priority,
    p6_sender,
    p7_audiences,
    p8_scheduled,
    p10_memory,
    p11_scale_out,
    p_erase,
    p_import,
    p_status_growth,
    p_track,
    rules,
    stages,
)
from bench.common import RUNS, Row, progress
from bench.loadgen import client_name
from bench.report import table, write_json
from shared.settings import get_settings


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="runs of a few seconds (smoke)")
    parser.add_argument("--client", choices=("auto", "wrk", "python"), default="auto",
                        help="closed-loop load generator for B2/P1 (auto: wrk if installed)")
    parser.add_argument("--connections", type=int, default=64,
                        help="keep-alive connections for B2/P1 (and P4's pool)")
    parser.add_argument("--p4-rate", type=float, help="events/s (default 1000, quick 200)")
    parser.add_argument("--p4-seconds", type=float, help="seconds (default 10, quick 3)")
    parser.add_argument("--p4r-rate", type=float, default=200.0,
                        help="P4R events/s, with and without rules (default 200; the seconds"
                             " are P4's)")
    parser.add_argument("--p5-rate", type=float, default=100.0,
                        help="P5 transactional events/s through the gateway (default 100)")
    parser.add_argument("--p5-bulk-rate", type=float, default=2000.0,
                        help="P5 bulk records/s produced to the bulk topic (default 2000)")
    parser.add_argument("--p5-flood-nice", type=int, default=get_settings().sender_bulk_nice,
                        help="the flood's CPU niceness, as the marketing processes it stands "
                             "for run (default: the bulk sender's, PARCOURS_SENDER_BULK_NICE;"
                             " 0: same priority as transactional)")
    parser.add_argument("--p5-seconds", type=float,
                        help="P5 seconds per phase (default 10, quick 3; TARGETS: 600)")
    parser.add_argument("--p6-messages", type=int,
                        help="P6/B4 messages per run (default 3,000, quick 300)")
    parser.add_argument("--p8-backlog", type=int,
                        help="P8 far-future timers pending beside the scheduled sends "
                             "(default 1,000,000, quick 10,000)")
    parser.add_argument("--p8-count", type=int,
                        help="P8 scheduled sends per run (default 1,000, quick 200)")
    parser.add_argument("--p7-profiles", type=int,
                        help="P7 profiles created (default 1,000,000, quick 50,000)")
    parser.add_argument("--journeys-scale", type=float,
                        help="P7J profiles and P8J pending timers: this share of 1,000,000"
                             " (default 1, quick 0.01)")
    parser.add_argument("--p7j-deadline", type=float, default=900.0,
                        help="P7J: seconds to wait for every profile to enter (default 900)")
    parser.add_argument("--p8j-rate", type=float, default=200.0,
                        help="P8J timers coming due a second in the window (default 200)")
    parser.add_argument("--p8j-seconds", type=float,
                        help="P8J window seconds per run (default 60, quick 10)")
    parser.add_argument("--p9-rate", type=float, default=500.0,
                        help="P9 journey events produced a second (default 500)")
    parser.add_argument("--p9-seconds", type=float,
                        help="P9 seconds per run (default 20, quick 4)")
    parser.add_argument("--import-rows", type=int,
                        help="IMPORT profiles in the CSV (default 1,000,000, quick 20,000)")
    parser.add_argument("--stages-rate", type=float, default=300.0,
                        help="STAGES and P11 events/s (default 300; the seconds are P4's x2)")
    parser.add_argument("--p2-events", type=int,
                        help="P2 events per way in (default 100,000, quick 10,000)")
    parser.add_argument("--growth-rows", type=int,
                        help="GROWTH statuses beside (default 10,000,000, quick 200,000)")
    parser.add_argument("--only", nargs="+",
                        choices=("B1", "B2", "B3", "P1", "P2", "P3", "P4", "P4R", "STAGES",
                                 "P4MAX", "P5", "P6", "P7", "P7J", "P8", "P8J", "P9", "P10", "P11",
                                 "IMPORT", "RULES", "ERASE", "TRACK", "GROWTH"),
                        help="run only these (P1 needs B2 for its ratio)")
    return parser.parse_args(argv)


def _attempt(bench_id: str, what: str, measure: Callable[[], list[Row]]) -> list[Row]:
    began = time.monotonic()
    try:
        rows = measure()
    except Exception as error:  # one broken benchmark must not hide the others' figures
        traceback.print_exc()
        progress(f"{bench_id} failed: {type(error).__name__}: {error}")
        return [Row(bench_id, what, None, "", details={"error": f"{type(error).__name__}: "
                                                                f"{error}"})]
    progress(f"{bench_id} done in {time.monotonic() - began:.0f}s\n")
    return rows


def main(argv: list[str]) -> int:
    args = _parse(argv)
    quick = args.quick
    seconds = 3.0 if quick else 10.0
    rate = args.p4_rate or (200.0 if quick else 1000.0)
    p4_seconds = args.p4_seconds or (3.0 if quick else 10.0)
    drain_s = 120.0 if quick else 300.0
    client = client_name(args.client)
    if args.client == "wrk" and client != "wrk":
        progress("wrk is not installed; using the Python client")
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    load = os.getloadavg()
    progress(f"bench {'--quick ' if quick else ''}{stamp}: {os.cpu_count()} cores, load "
             f"{load[0]:.2f}, client {client}, median of {RUNS} runs each\n")

    wanted = set(args.only or ("B1", "B2", "B3", "P1", "P2", "P3", "P4", "P4R", "STAGES",
                              "P4MAX", "P5",
                              "P10", "P6", "P7", "P8", "P9", "IMPORT", "RULES", "ERASE",
                              "TRACK", "GROWTH"))
    wanted |= {f"{p}J" for p in ("P7", "P8") if p in wanted}
    scale = args.journeys_scale or (0.01 if quick else 1.0)
    rows: list[Row] = []
    if "B1" in wanted:
        rows += _attempt("B1", "raw aiokafka producer", lambda: [b1_kafka.run(quick)])
    if "B2" in wanted:
        rows += _attempt("B2", "bare FastAPI endpoint", lambda: [
            b2_fastapi.run(seconds, args.connections, client)])
    b2 = next((r for r in rows if r.id == "B2" and r.figure is not None), None)
    if "P1" in wanted:
        rows += _attempt("P1", "gateway single-event ingestion", lambda: [
            p1_gateway.run(seconds, args.connections, client, b2, drain_s)])
    if "B3" in wanted:
        n = 10_000 if quick else 100_000
        rows += _attempt("B3", "pass-through Faust agent and aiokafka loop", lambda: [
            b3_passthrough.run(n, "faust"), b3_passthrough.run(n, "loop")])
    if "P2" in wanted:
        b1 = next((r for r in rows if r.id == "B1" and r.figure is not None), None)
        b3 = next((r for r in rows if r.id == "B3" and r.details.get("kind") == "faust"
                   and r.figure is not None), None)
        b3_loop = next((r for r in rows if r.id == "B3" and r.details.get("kind") == "loop"
                        and r.figure is not None), None)
        rows += _attempt("P2", "batch ingestion beside B1 and B3", lambda: p2_batch.run(
            args.p2_events or (10_000 if quick else 100_000), b1, b3, drain_s, b3_loop))
    if "P3" in wanted:
        p1 = next((r for r in rows if r.id == "P1" and r.figure is not None), None)
        rows += _attempt("P3", "gateway latency at half its capacity", lambda: p3_latency.run(
            seconds, args.connections, client, drain_s, p1.figure if p1 else None))
    if "P4" in wanted:
        rows += _attempt("P4", "accepted → SMTP latency", lambda: p4_latency.run(
            rate, p4_seconds, args.connections, drain_s))
    if "STAGES" in wanted:
        rows += _attempt("STAGES", "per-stage latency and CPU per message", lambda: stages.run(
            args.stages_rate, 2 * p4_seconds, args.connections))
    if "P4MAX" in wanted:
        rows += _attempt("P4MAX", "the highest sustained P4 rate", lambda: p4_sweep.run(
            (100, 200) if quick else (200, 300, 400, 500, 600, 800), 2 * p4_seconds,
            args.connections))
    if "P11" in wanted:
        rows += _attempt("P11", "one worker against two", lambda: p11_scale_out.run(
            args.stages_rate, 2 * p4_seconds, args.connections))
    if "P4R" in wanted:
        rows += _attempt("P4R", "P4 with rules beside P4 without", lambda: p4_rules.run(
            args.p4r_rate, p4_seconds, args.connections, drain_s))
    if "P5" in wanted:
        p5_seconds = args.p5_seconds or (3.0 if quick else 10.0)
        rows += _attempt("P5", "tx latency beside a bulk flood", lambda: p5_priority.run(
            args.p5_rate, args.p5_bulk_rate, p5_seconds, args.connections, drain_s,
            args.p5_flood_nice))
    if "P10" in wanted:
        p10_seconds = args.p5_seconds or (3.0 if quick else 10.0)
        rows += _attempt("P10", "RSS of every process during P5's load", lambda: p10_memory.run(
            args.p5_rate, args.p5_bulk_rate, p10_seconds, args.connections, drain_s,
            args.p5_flood_nice))
    if "P6" in wanted:
        rows += _attempt("P6", "email sender alone beside B4 aiosmtplib", lambda: [
            p6_sender.run(args.p6_messages or (300 if quick else 3000))])
    if "P7" in wanted:
        profiles = args.p7_profiles or (50_000 if quick else 1_000_000)
        rows += _attempt("P7", "read audience", lambda: p7_audiences.run(profiles))
    if "P7J" in wanted:
        rows += _attempt("P7J", "profiles entering a journey", lambda: journeys.run_p7(
            round(1_000_000 * scale), args.p7j_deadline))
    if "P8" in wanted:
        backlog = args.p8_backlog if args.p8_backlog is not None else (
            10_000 if quick else 1_000_000)
        count = args.p8_count or (200 if quick else 1000)
        rows += _attempt("P8", "scheduled sends beside pending timers", lambda: p8_scheduled.run(
            backlog, count, 5.0 if quick else 10.0, drain_s))
    if "P8J" in wanted:
        rows += _attempt("P8J", "journey timers beside pending ones", lambda: journeys.run_p8(
            round(1_000_000 * scale), args.p8j_rate,
            args.p8j_seconds or (10.0 if quick else 60.0)))
    if "P9" in wanted:
        rows += _attempt("P9", "journey event → next action", lambda: journeys.run_p9(
            args.p9_rate, args.p9_seconds or (4.0 if quick else 20.0)))
    if "IMPORT" in wanted:
        import_rows = args.import_rows or (20_000 if quick else 1_000_000)
        rows += _attempt("IMPORT", "profile import beside raw COPY", lambda: p_import.run(
            import_rows))
    if "RULES" in wanted:
        rows += _attempt("RULES", "delivery rules' cost per message", rules.run)
    if "ERASE" in wanted:
        rows += _attempt("ERASE", "erasure beside 1,000,000 statuses", p_erase.run)
    if "TRACK" in wanted:
        rows += _attempt("TRACK", "tracking click redirect beside bare FastAPI", lambda: [
            p_track.run(seconds, args.connections)])

    if "GROWTH" in wanted:
        growth_rows = args.growth_rows or (200_000 if quick else 10_000_000)
        rows += _attempt("GROWTH", "status writes and GET beside 0 and many rows", lambda:
                         p_status_growth.run(growth_rows))

    meta = {
        "timestamp": stamp, "quick": quick, "command": " ".join(["python -m bench", *argv]),
        "client": client, "connections": args.connections, "runs_per_measurement": RUNS,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average_at_start": load},
    }
    path = write_json(rows, meta, stamp)
    progress(table(rows))
    progress(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
