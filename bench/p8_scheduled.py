"""P8: scheduled sends fire on time and never early, with a large backlog of timers pending.

A backlog of far-future timers (due in 30 days, event ``EVTbenchbacklog``, which has no
published message) is written straight into ``held_events`` with set-based
``INSERT … SELECT … FROM generate_series``, in chunks so that progress shows, and deleted
at the end whatever happens (rows left by an aborted run are deleted first).

With the backlog in place, each run posts ``count`` bench events through the gateway's
batch endpoint, their ``scheduled`` instants spread evenly over a window that starts a few
seconds after the posting ends. The processor holds them in PostgreSQL and its 0.5 s
release poll puts them back on Kafka once due. Each email carries its scheduled instant
in ``ctx.sentAt``; the SMTP sink records when it arrived (``received_at``), so every send
gets its own lateness. That is delivery lateness, release + routing + sending + SMTP: an
upper bound of the timer's own lateness. A message received before its instant is early
(the clocks are the same machine's). ``event_status.updated_at`` of the final status is a
second, sink-independent upper bound (kept in the details).

The sink is shared with other benches that empty it (``DELETE /messages``); this one
never does. Its recipients are its own (``bench-8NN``, one per slice of the window and
run), read back with ``?to=`` soon after that slice was processed, and merged by the
sink's message id, so little is parsed twice and little can be emptied before it is read.

The release poll's cost is its own query (``held_store._DUE``) under
``EXPLAIN (ANALYZE, BUFFERS)`` with the backlog in place, as a custom plan and as the
generic plan a long-lived prepared statement may switch to, in a transaction rolled back
at once (the query locks what it finds).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import orjson

from bench import pipeline
from bench.common import (
    BENCH_DOMAIN,
    RUNS,
    SINK,
    TENANT,
    Row,
    overwrite,
    progress,
    request_headers,
    settings,
)
from bench.p4_latency import latencies_by_order
from bench.stats import latency_summary, median, median_of
from services.processor.handlers import RELEASE_BATCH
from shared.adapters.held_store import _DUE as _RELEASABLE
from shared.adapters.postgres import connect
from shared.domain.status import TERMINAL

TARGET_LATENESS_MS = 1000  # TARGETS P8: fire lateness p99 ≤ 1 s; never early
BACKLOG_EVENT = "EVTbenchbacklog"
BACKLOG_PKEY = "p8-backlog-"
BACKLOG_TRIGGER = {"bench": "P8 backlog", "target": {"email": f"backlog@{BENCH_DOMAIN}"}}
CHUNK = 100_000  # backlog rows per INSERT … SELECT (one progress line each)
LEAD_S = 5.0  # from the end of the posting to the first scheduled instant
BATCH_MAX = 1000  # the batch endpoint's limit
BATCH_URL = f"{pipeline.EVENT_URL}/batch"
SLICES = 20  # recipients per run: one per slice of the window, read back one at a time
FIRST_RECIPIENT = 800  # bench-800…: none of P1/P4's bench-000…255
READ_AFTER_S = 5.0  # a slice is read back once processed, or this long after its last due
POLL_S = 0.5
ARRIVAL_DEADLINE_S = 120.0  # after the last scheduled instant
POLL_REPEATS = 5  # EXPLAIN ANALYZE runs per plan and run; the median is kept

_INSERT_BACKLOG = """
INSERT INTO held_events (pkey, tenant_id, event_id, trigger, held_at, due_at)
SELECT $1 || n, $2, $3, $4::jsonb, now(), now() + interval '30 days' + n * interval '1 ms'
  FROM generate_series($5::bigint, $6::bigint) AS n
"""


# --- the backlog ---------------------------------------------------------------------------

async def _drop_backlog(connection: asyncpg.Connection) -> int:
    done = await connection.execute(
        "DELETE FROM held_events WHERE tenant_id = $1 AND event_id = $2", TENANT, BACKLOG_EVENT)
    return int(done.split()[-1])


async def _count_backlog(connection: asyncpg.Connection) -> int:
    return int(await connection.fetchval(
        "SELECT count(*) FROM held_events WHERE tenant_id = $1 AND event_id = $2",
        TENANT, BACKLOG_EVENT))


async def _insert_backlog(connection: asyncpg.Connection, backlog: int) -> dict[str, Any]:
    began = time.monotonic()
    for low in range(1, backlog + 1, CHUNK):
        high = min(backlog, low + CHUNK - 1)
        await connection.execute(_INSERT_BACKLOG, BACKLOG_PKEY, TENANT, BACKLOG_EVENT,
                                 BACKLOG_TRIGGER, low, high)
        elapsed = time.monotonic() - began
        overwrite(f"  P8 backlog: {high:,}/{backlog:,} timers due in 30 days inserted "
                  f"({elapsed:.0f}s, {high / elapsed:,.0f} rows/s)")
    progress("")
    seconds = time.monotonic() - began
    return {"rows": backlog, "insert_s": seconds,
            "insert_rows_per_s": backlog / seconds if seconds else None}


async def _setup(backlog: int) -> dict[str, Any]:
    connection = await connect(settings.pg_dsn)
    try:
        if left := await _drop_backlog(connection):
            progress(f"  P8: deleted {left:,} backlog rows left by an earlier run")
        inserted = await _insert_backlog(connection, backlog)
        # What the first polls see, with the planner's statistics not yet refreshed.
        inserted["poll_before_analyze"] = await _poll_cost(connection)
        # Then the steady state of a long-lived backlog: statistics that know about it.
        await connection.execute("ANALYZE held_events")
        inserted["pending_in_table"] = int(await connection.fetchval(
            "SELECT count(*) FROM held_events"))
        return inserted
    finally:
        await connection.close()


async def _teardown() -> tuple[int, int]:
    """(rows deleted, rows of the backlog still there afterwards: must be 0)."""
    connection = await connect(settings.pg_dsn)
    try:
        deleted = await _drop_backlog(connection)
        await connection.execute("ANALYZE held_events")
        return deleted, await _count_backlog(connection)
    finally:
        await connection.close()


# --- the release poll's cost ---------------------------------------------------------------

def _plan_shape(node: dict[str, Any]) -> str:
    """``Limit > LockRows > … > Index Scan(held_events_releasable)``: the first child each time."""
    name = node["Node Type"] + (f"({node['Index Name']})" if "Index Name" in node else "")
    children = node.get("Plans") or []
    return name if not children else f"{name} > {_plan_shape(children[0])}"


async def _explain(connection: asyncpg.Connection, generic: bool) -> dict[str, Any]:
    """One EXPLAIN ANALYZE of the release query at the current time, rolled back."""
    transaction = connection.transaction()
    await transaction.start()
    try:
        if generic:
            await connection.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            await connection.execute(
                f"PREPARE p8_releasable(integer, timestamptz) AS {_RELEASABLE}")
            try:
                text = await connection.fetchval(
                    "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)"
                    f" EXECUTE p8_releasable({RELEASE_BATCH}, now())")
            finally:
                await connection.execute("DEALLOCATE p8_releasable")
        else:
            text = await connection.fetchval("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)"
                                             + _RELEASABLE, RELEASE_BATCH, datetime.now(UTC))
    finally:
        await transaction.rollback()
    # EXPLAIN's json comes decoded (the pools' codec for json), or as text elsewhere
    [plan] = text if isinstance(text, list) else orjson.loads(text)
    top = plan["Plan"]
    return {"execution_ms": plan["Execution Time"], "planning_ms": plan["Planning Time"],
            "rows": top["Actual Rows"],
            "buffers": top.get("Shared Hit Blocks", 0) + top.get("Shared Read Blocks", 0),
            "shape": _plan_shape(top)}


async def _poll_cost(connection: asyncpg.Connection) -> dict[str, Any]:
    """Median over a few EXPLAIN ANALYZE runs, custom and generic plan; the worse counts."""
    found: dict[str, Any] = {}
    for kind in ("custom", "generic"):
        runs = [await _explain(connection, kind == "generic") for _ in range(POLL_REPEATS)]
        found[kind] = {**runs[-1], "execution_ms": median([r["execution_ms"] for r in runs]),
                       "planning_ms": median([r["planning_ms"] for r in runs])}
    found["worse_ms"] = max(found["custom"]["execution_ms"], found["generic"]["execution_ms"])
    return found


# --- one run -------------------------------------------------------------------------------

def _plan_sends(run_id: str, n: int, count: int, window_s: float) -> list[dict[str, Any]]:
    """The run's events: order id, scheduled instant (whole ms), recipient, body."""
    batches = math.ceil(count / BATCH_MAX)
    start = time.time() + LEAD_S + batches * 0.5  # half a second per batch to post
    sends = []
    for i in range(count):
        due_ms = round((start + i * window_s / count) * 1000)
        due = due_ms / 1000
        slice_ = i * SLICES // count
        email = f"bench-{FIRST_RECIPIENT + (n - 1) * SLICES + slice_:03d}@{BENCH_DOMAIN}"
        order = f"{run_id}-{i}"
        sends.append({"order": order, "due": due, "slice": slice_, "email": email, "body": {
            "email": email,
            "ctx": {"orderId": order, "amount": 8.0, "sentAt": f"{due:.3f}"},
            "scheduled": datetime.fromtimestamp(due, UTC).isoformat(timespec="milliseconds"),
        }})
    return sends


async def _post(http: httpx.AsyncClient, sends: list[dict[str, Any]]) -> Counter[int]:
    """Post through the batch endpoint; each send gets its pKey (or none if refused)."""
    statuses: Counter[int] = Counter()
    for low in range(0, len(sends), BATCH_MAX):
        chunk = sends[low:low + BATCH_MAX]
        response = await http.post(BATCH_URL, headers=request_headers(), timeout=60,
                                   content=orjson.dumps({"events": [s["body"] for s in chunk]}))
        response.raise_for_status()
        for item in response.json()["results"]:
            statuses[item["status"]] += 1
            if item["status"] == 202:
                chunk[item["index"]]["pkey"] = item["pKey"]
    return statuses


class _Sink:
    """This run's messages, read back one recipient at a time and merged by sink id."""

    def __init__(self, http: httpx.AsyncClient, run_id: str) -> None:
        self.http, self.run_id = http, run_id
        self.seen: dict[int, tuple[str, float]] = {}  # sink id → (order id, received_at)
        self.reads = self.failed_reads = 0

    async def read(self, email: str) -> None:
        """A sink that is restarted meanwhile is read again at the next poll (what it held
        is lost then, and counted missing)."""
        try:
            response = await self.http.get(f"{SINK}/messages", params={"to": email},
                                           timeout=60)
            response.raise_for_status()
        except httpx.HTTPError:
            self.failed_reads += 1
            return
        self.reads += 1
        for message in response.json():
            found = latencies_by_order([message], self.run_id)
            if found:
                self.seen[message["id"]] = (next(iter(found)), message["received_at"])

    def by_order(self) -> dict[str, list[float]]:
        """order id → received_at of each copy (more than one = a duplicate)."""
        arrivals: dict[str, list[float]] = {}
        for order, received_at in self.seen.values():
            arrivals.setdefault(order, []).append(received_at)
        return arrivals


async def _statuses(connection: asyncpg.Connection, pkeys: list[str]) -> dict[str, Any]:
    rows = await connection.fetch(
        "SELECT pkey, status, updated_at FROM event_status WHERE pkey = ANY($1::text[])", pkeys)
    return {row["pkey"]: row for row in rows}


async def _wait_arrivals(connection: asyncpg.Connection, sink: _Sink,
                         sends: list[dict[str, Any]], label: str) -> dict[str, Any]:
    """Poll the database (held, final) and read back each slice once it is done."""
    accepted = [s for s in sends if "pkey" in s]
    pkeys = [s["pkey"] for s in accepted]
    last_due = max(s["due"] for s in sends)
    slices = {k: [s for s in accepted if s["slice"] == k] for k in range(SLICES)}
    complete: set[int] = {k for k, members in slices.items() if not members}
    next_read: dict[int, float] = {}
    terminal: set[str] = set()
    while True:
        now = time.time()
        held = int(await connection.fetchval(
            "SELECT count(*) FROM held_events WHERE pkey = ANY($1::text[])", pkeys))
        rows = await _statuses(connection, [p for p in pkeys if p not in terminal])
        terminal |= {p for p, row in rows.items() if row["status"] in TERMINAL}
        arrived = sink.by_order()
        for k, members in slices.items():
            if k in complete or now < next_read.get(k, 0.0):
                continue
            done = all(s["pkey"] in terminal for s in members)
            if done or now > max(s["due"] for s in members) + READ_AFTER_S:
                await sink.read(members[0]["email"])
                arrived = sink.by_order()
                next_read[k] = now + 1.0
                if all(s["order"] in arrived for s in members):
                    complete.add(k)
        to_first, after_last = sends[0]["due"] - now, now - last_due
        when = (f"first due in {to_first:.0f}s" if to_first > 0
                else f"{after_last:.0f}s after the last due" if after_last > 0
                else f"last due in {-after_last:.0f}s")
        overwrite(f"  {label}: held {held:,}, final status {len(terminal):,}/{len(accepted):,}, "
                  f"read back {len(arrived):,}/{len(accepted):,} ({when})")
        if len(complete) == SLICES or now > last_due + ARRIVAL_DEADLINE_S:
            break
        await asyncio.sleep(POLL_S)
    progress("")
    for email in sorted({s["email"] for s in accepted}):  # late copies (duplicates)
        await sink.read(email)
    return await _statuses(connection, pkeys)


async def _one_run(n: int, count: int, window_s: float) -> dict[str, Any]:
    run_id = f"P8r{n}t{int(time.time())}"
    label = f"P8 run {n}/{RUNS}"
    connection = await connect(settings.pg_dsn)
    try:
        async with httpx.AsyncClient() as http:
            sends = _plan_sends(run_id, n, count, window_s)
            began = time.time()
            statuses = await _post(http, sends)
            posted = time.time()
            lead_s = sends[0]["due"] - posted
            progress(f"  {label}: posted {count:,} in {posted - began:.1f}s "
                     f"({dict(statuses)}), first due {lead_s:.1f}s later, spread over "
                     f"{window_s:.0f}s")
            sink = _Sink(http, run_id)
            final = await _wait_arrivals(connection, sink, sends, label)
        poll = await _poll_cost(connection)
    finally:
        await connection.close()
    return _summarize(sends, sink, final, statuses, lead_s, posted - began, poll)


def _summarize(sends: list[dict[str, Any]], sink: _Sink, final: dict[str, Any],
               statuses: Counter[int], lead_s: float, post_s: float,
               poll: dict[str, Any]) -> dict[str, Any]:
    accepted = [s for s in sends if "pkey" in s]
    arrivals = sink.by_order()
    due = {s["order"]: s["due"] for s in accepted}
    copies = {order: [t - due[order] for t in times] for order, times in arrivals.items()
              if order in due}
    lateness = [min(v) for v in copies.values()]
    early = [t for v in copies.values() for t in v if t < 0]
    final_statuses = Counter(row["status"] for row in final.values())
    processed_lateness = [final[s["pkey"]]["updated_at"].timestamp() - s["due"]
                          for s in accepted if s["pkey"] in final
                          and final[s["pkey"]]["status"] == "processed"]
    status_summary = latency_summary(processed_lateness)
    missing = [s["order"] for s in accepted if s["order"] not in arrivals]
    return {
        "sent": len(sends), "accepted": len(accepted),
        "http_statuses": {str(k): v for k, v in sorted(statuses.items())},
        "post_s": post_s, "lead_s": lead_s,
        "arrived": len(copies), "duplicates": sum(len(v) - 1 for v in copies.values()),
        "missing": len(missing), "missing_sample": missing[:5],
        "early": len(early), "earliest_ms": min(early) * 1000 if early else None,
        "min_lateness_ms": min(lateness) * 1000 if lateness else None,
        **latency_summary(lateness),
        "final_statuses": dict(final_statuses),
        "status_lateness": {k: v for k, v in status_summary.items() if k != "count"},
        "status_early": sum(t < 0 for t in processed_lateness),
        "sink_reads": sink.reads, "sink_failed_reads": sink.failed_reads,
        "poll": poll, "poll_ms": poll["worse_ms"],
    }


# --- the benchmark -------------------------------------------------------------------------

def run(backlog: int, count: int, window_s: float, drain_deadline_s: float) -> list[Row]:
    progress(f"P8 scheduled sends: {count:,} per run over {window_s:.0f}s beside {backlog:,} "
             f"pending timers, {RUNS} runs")
    pipeline.prepare_gateway()
    runs: list[dict[str, Any]] = []
    try:
        setup = asyncio.run(_setup(backlog))
        before = setup["poll_before_analyze"]
        progress(f"  P8 release poll with {setup['pending_in_table']:,} held: "
                 f"{before['worse_ms']:.2f} ms before ANALYZE ({before['custom']['shape']})")
        for n in range(1, RUNS + 1):
            drained, _, _ = pipeline.wait_drained(f"P8 run {n}: waiting for an idle pipeline",
                                                  drain_deadline_s)
            if not drained:
                progress("  starting anyway: lateness includes the backlog")
            result = asyncio.run(_one_run(n, count, window_s))
            progress(f"  P8 run {n}/{RUNS}: {result['arrived']:,}/{result['accepted']:,} "
                     f"arrived, lateness p50 {result.get('p50_ms', math.nan):.0f} ms, "
                     f"p99 {result.get('p99_ms', math.nan):.0f} ms, "
                     f"max {result.get('max_ms', math.nan):.0f} ms, early {result['early']}, "
                     f"duplicates {result['duplicates']}, release poll "
                     f"{result['poll_ms']:.2f} ms")
            runs.append(result)
    finally:
        progress(f"  P8: deleting the {backlog:,} backlog timers")
        deleted, left = asyncio.run(_teardown())
        progress(f"  P8: deleted {deleted:,}; backlog rows left: {left}")
    setup["deleted"], setup["left_after"] = deleted, left
    return _rows(runs, setup, backlog, count, window_s)


def _rows(runs: list[dict[str, Any]], setup: dict[str, Any], backlog: int, count: int,
          window_s: float) -> list[Row]:
    p50, p99 = median_of(runs, "p50_ms"), median_of(runs, "p99_ms")
    poll = median_of(runs, "poll_ms")
    early = sum(r["early"] for r in runs)
    arrived = sum(r["arrived"] for r in runs)
    expected = sum(r["sent"] for r in runs)
    duplicates = sum(r["duplicates"] for r in runs)
    details = {
        "lateness": "scheduled instant → SMTP sink received_at (bounds the timer's "
                    "lateness from above)",
        "backlog": setup, "count": count, "window_s": window_s, "runs": runs,
        "max_ms": max((r["max_ms"] for r in runs if "max_ms" in r), default=None),
        "earliest_ms": min((r["earliest_ms"] for r in runs if r["earliest_ms"] is not None),
                           default=None),
    }
    what = f"scheduled send → SMTP lateness ({count:,}/run, {backlog:,} pending)"
    return [
        Row("P8", f"{what}, p50", p50, "ms", details=details),
        Row("P8", f"{what}, p99", p99, "ms", target="≤ 1 s",
            met=None if p99 is None else p99 <= TARGET_LATENESS_MS),
        Row("P8", "early sends (received before scheduled)", float(early), "sends",
            target="0", met=early == 0),
        Row("P8", "arrived once (duplicates excluded)", float(arrived), "msgs",
            baseline=f"expected {expected:,}", ratio=arrived / expected if expected else None,
            target="all, none twice", met=arrived == expected and duplicates == 0),
        Row("P8", f"release poll with {backlog:,} pending (EXPLAIN ANALYZE)", poll, "ms"),
    ]
