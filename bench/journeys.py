"""The journey engine's benchmarks, on the stack's real ``journeys`` service (issue 12):

- **P7J** profiles entering a journey from an audience of 1,000,000 (``audience → wait
  P3D → end``: no message), beside the same audience's raw streaming rate (P7's reads:
  ``COPY … TO STDOUT`` and the keyset read the entry calls) measured in the same run. The
  version is written live with its audience entry at the largest rate a definition allows
  (``MAX_AUDIENCE_RATE``); the clock runs from that write to the last instance stored
  (the version's waiting instances counted every 0.5 s; not the engine's
  ``parcours_journey_entered_total``, which a restart of the engine resets).
- **P8J** journey timers with 1,000,000 pending: the backlog is 1,000,000 waiting
  instances of a live version (``audience → wait P3D → end``, documents as ``start`` and
  the codec make them) with their timers due in three days, written with COPY. Then, per
  run, a stream of instances whose timers come due ``rate`` a second over a window (each
  its own waiting instance of the same version, written a few seconds before the first
  is due). A timer's lateness is the ``at`` of its instance's ``finished`` step (the
  engine's clock when it claimed it, written in the claiming transaction) minus its due
  time; a second, commit-visible figure is when the bench saw that step (polled every
  ``POLL_S``). Early = a step before its due time (must be 0).
- **P9** a journey event → the next action handed to the sender: instances wait on a
  listen for a journey event type (``listen JEV… → email JMS… → end``), and
  ``JourneyEventRecord``s are produced straight to ``parcours.journey-events.v1`` (keyed
  by profile id, as the gateway writes them) at ``rate`` a second; the latency is from
  the record's produce time to its send request on ``parcours.send.email.bulk.v1`` (the
  record's Kafka timestamp: when the engine produced it; the bench's receive time kept
  too), matched by profile id. The profiles have an email address and marketing consent
  (a journey message is always marketing), so the rules let the messages go.

Each benchmark works in a tenant of its own (``bench-jp7``, ``bench-jp8``, ``bench-jp9``)
and deletes every row of that tenant at the end, whatever happens (and at the start, if an
earlier run left some). Rows are written as the engine writes them (``advance.start`` and
``codec.instance_to_json``), versions straight into ``journey_versions``; nothing here
restarts the engine.
"""

from __future__ import annotations

import asyncio
import math
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.common import RUNS, Row, overwrite, progress, settings
from bench.p7_audiences import _keyset, _raw
from bench.stats import latency_summary, median, median_of, prometheus_samples, ratio
from shared.adapters import journey_event_store
from shared.adapters.audience_reader import audience_query, check_definition
from shared.adapters.audience_store import create_audience
from shared.adapters.catalog_store import save_event
from shared.adapters.kafka import client_security
from shared.adapters.key_store import create_tenant
from shared.adapters.postgres import connect
from shared.domain.events import EventConfig
from shared.domain.journeys.advance import Plan, instance_id, start
from shared.domain.journeys.codec import instance_to_json
from shared.domain.journeys.definition import MAX_AUDIENCE_RATE, parse_definition
from shared.domain.journeys.instance import Instance, SetTimer
from shared.domain.journeys.journey_events import JourneyEventRecord, JourneyEventType
from shared.domain.journeys.plan import compile_plan
from shared.domain.profile_schema import EMPTY_SCHEMA
from shared.topics import JOURNEY_EVENTS, send_topic

ENGINE_METRICS = f"http://127.0.0.1:{settings.journeys_metrics_port}/metrics"
CHUNK = 50_000  # rows per COPY (one progress line each)
POLL_S = 0.1
TARGET_ENTER = 50_000  # TARGETS P7: ≥ 50,000 profiles/s
RELAY_DEADLINE_S = 300.0  # for the entering profiles' step events, after the last entry
TARGET_LATENESS_MS = 1000  # TARGETS P8: p99 ≤ 1 s, never early
TARGET_P9_MS = 1000  # TARGETS P9: p99 ≤ 1 s
_INSTANCE_COLUMNS = ["tenant_id", "instance_id", "journey_id", "version", "profile_id",
                     "state", "node", "token", "document", "entered_at"]
_TABLES = ("journey_timers", "journey_timers_held", "journey_outbox", "journey_steps",
           "journey_cohort_steps",
           "journey_cohort_timers", "journey_cohorts", "journey_instances", "journey_versions",
           "audiences", "journey_event_types", "messages", "event_configs", "profiles")


def _wait_journey(journey_id: str, audience_id: str = "bench-none", rate: int = 1
                  ) -> dict[str, Any]:
    return {"id": journey_id, "name": "bench: audience, wait three days, end",
            "entry": {"type": "audience", "audienceId": audience_id, "rate": rate,
                      "next": "pause"},
            "nodes": [{"id": "pause", "type": "wait", "duration": "P3D", "next": "done"},
                      {"id": "done", "type": "end"}]}


def _plan(tenant: str, journey: dict[str, Any], version: int) -> Plan:
    return compile_plan(parse_definition(journey), version, {}, {}, tenant=tenant)


# --- rows, as the engine writes them ---------------------------------------------------------

async def _raw_connection() -> asyncpg.Connection:
    """Without the stack's text jsonb codec: COPY writes jsonb in binary (from text)."""
    return await asyncpg.connect(settings.pg_dsn)


def _instance_row(tenant: str, instance: Instance) -> tuple[Any, ...]:
    return (tenant, uuid.UUID(instance.instance_id), instance.journey_id, instance.version,
            instance.profile_id, instance.state.value, instance.node, instance.token,
            orjson.dumps(instance_to_json(instance)).decode(), instance.entered_at)


async def _copy_instances(connection: asyncpg.Connection, tenant: str, plan: Plan,
                          profile_ids: list[str], due: list[datetime] | None,
                          label: str) -> None:
    """Waiting instances (``start`` at now) and their timers (their own due times, or
    ``due[i]`` instead), COPY in chunks with a progress line."""
    began, now = time.monotonic(), datetime.now(UTC)
    total = len(profile_ids)
    for low in range(0, total, CHUNK):
        instances, timers = [], []
        for i in range(low, min(low + CHUNK, total)):
            instance, effects = start(plan, profile_ids[i], 0, {}, now)
            instances.append(_instance_row(tenant, instance))
            for effect in effects:
                if isinstance(effect, SetTimer):
                    timers.append((tenant, uuid.UUID(instance.instance_id), effect.token,
                                   due[i] if due is not None else effect.due))
        await connection.copy_records_to_table("journey_instances", records=instances,
                                               columns=_INSTANCE_COLUMNS)
        if timers:
            await connection.copy_records_to_table(
                "journey_timers", records=timers,
                columns=["tenant_id", "instance_id", "token", "due_at"])
        done, elapsed = low + len(instances), time.monotonic() - began
        if total >= CHUNK:
            overwrite(f"  {label}: {done:,}/{total:,} waiting instances written "
                      f"({elapsed:.0f}s, {done / elapsed:,.0f}/s)")
    if total >= CHUNK:
        progress("")


def _ordinal(profile_id: str | None, prefix: str) -> int:
    """How many of ``_copy_profiles``'s profiles come up to this one, in id order."""
    return 0 if profile_id is None else int(profile_id.removeprefix(prefix)) + 1


async def _copy_profiles(connection: asyncpg.Connection, tenant: str, prefix: str,
                         total: int, label: str) -> None:
    began = time.monotonic()
    for low in range(0, total, CHUNK * 2):
        records = [(tenant, f"{prefix}{i:08d}", f"{prefix}{i}@bench.example.com",
                    date(1960 + i % 45, 1 + i % 12, 1 + i % 28))
                   for i in range(low, min(low + CHUNK * 2, total))]
        await connection.copy_records_to_table(
            "profiles", records=records,
            columns=["tenant_id", "profile_id", "email", "birth_date"])
        done, elapsed = low + len(records), time.monotonic() - began
        overwrite(f"  {label}: {done:,}/{total:,} profiles written ({elapsed:.0f}s)")
    progress("")


async def _clean(tenant: str, label: str) -> dict[str, int]:
    """Every row of the bench tenant, its live versions stopped first (the engine takes
    no more of their timers or entries)."""
    connection = await connect(settings.pg_dsn)
    deleted: dict[str, int] = {}
    try:
        await connection.execute("UPDATE journey_versions SET state = 'stopped'"
                                 " WHERE tenant_id = $1", tenant)
        for table in _TABLES:
            began = time.monotonic()
            status = await connection.execute(f"DELETE FROM {table} WHERE tenant_id = $1",
                                              tenant)
            if (n := int(status.split()[-1])):
                deleted[table] = n
                progress(f"  {label}: deleted {n:,} rows of {table} "
                         f"({time.monotonic() - began:.1f}s)")
    finally:
        await connection.close()
    return deleted


async def _alone(tenant: str, label: str,
                 measure: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    """Run ``measure`` holding the bench tenant's advisory lock (two runs of one benchmark
    at once would delete each other's rows), the tenant's rows deleted first."""
    lock = await connect(settings.pg_dsn)
    try:
        if not await lock.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", tenant):
            raise RuntimeError(f"another bench run is using the tenant {tenant}; try later")
        await _clean(tenant, label)
        return await measure()
    finally:
        await lock.close()  # the lock goes with the session


async def _publish(connection: asyncpg.Connection, tenant: str, journey: dict[str, Any],
                   version: int, entry_done: bool) -> None:
    await connection.execute(
        "INSERT INTO journey_versions (tenant_id, journey_id, version, mode, state,"
        " definition, speed, entry_done) VALUES ($1, $2, $3, 'live', 'live', $4, 1, $5)",
        tenant, journey["id"], version, journey, entry_done)


def engine_started() -> float | None:
    """The journeys service's process start time (its metrics), to tell a run during which
    someone restarted the engine (this machine is shared): its figures include the
    restart."""
    try:
        text = urllib.request.urlopen(ENGINE_METRICS, timeout=5).read().decode()
    except OSError:
        return None
    found = prometheus_samples(text, "process_start_time_seconds")
    return found[0][1] if found else None


def _restarted(before: float | None, label: str) -> bool:
    after = engine_started()
    if before is not None and after is not None and after != before:
        progress(f"  {label}: the journeys engine was restarted during the run (by someone"
                 " else?): its figures include the restart")
        return True
    return False


# --- P7J: entering --------------------------------------------------------------------------

P7_TENANT = "bench-jp7"
P7_AUDIENCE = {"path": "birthDate", "op": "ge", "value": "1900-01-01"}  # every profile
P7_RATE = MAX_AUDIENCE_RATE  # the most a definition allows: as fast as the engine enters


async def _p7_measure(total: int, deadline_s: float) -> dict[str, Any]:
    result: dict[str, Any] = {"profiles": total}
    raw = await _raw_connection()
    connection = await connect(settings.pg_dsn)
    try:
        await _copy_profiles(raw, P7_TENANT, "p7j-", total, "P7J")
        # The customer base settled (vacuumed, as autovacuum leaves a table in use) and the
        # last run's deleted rows gone: autovacuum otherwise removed a million dead
        # instances of the last run, walking the instances' seven indexes, inside this
        # run's timing (its log: 1,000,007 dead item identifiers, mid-entry).
        for table in ("profiles", "journey_instances", "journey_cohort_steps"):
            await connection.execute(f"VACUUM (ANALYZE) {table}")
        audience = await create_audience(connection, P7_TENANT, "bench P7J", P7_AUDIENCE)
        query = audience_query(P7_TENANT, check_definition(P7_AUDIENCE, EMPTY_SCHEMA),
                               datetime.now(UTC))
        runs: dict[str, list[float]] = {"raw": [], "keyset": []}
        for n in range(1, RUNS + 1):
            for how, fn in (("raw", _raw), ("keyset", _keyset)):
                began = time.perf_counter()
                members = await fn(connection, query)
                runs[how].append(members / (time.perf_counter() - began))
            progress(f"  P7J audience read {n}/{RUNS}: {members:,} members, raw COPY "
                     f"{runs['raw'][-1]:,.0f}/s, keyset {runs['keyset'][-1]:,.0f}/s")
        result.update(members=members, raw=median(runs["raw"]),
                      keyset=median(runs["keyset"]), read_runs_per_s=runs)

        journey_id = f"bench-p7j-{int(time.time())}"
        journey = _wait_journey(journey_id, audience["audience_id"], rate=P7_RATE)
        started = engine_started()
        published = time.monotonic()
        await _publish(connection, P7_TENANT, journey, 1, entry_done=False)
        position, first, last = None, None, published
        while time.monotonic() - published < deadline_s:
            await asyncio.sleep(POLL_S)
            # The entry's progress, saved in each chunk's transaction (not the engine's
            # counter: another restart resets it). Not a count of the instances: that
            # poll cost PostgreSQL 200-400 ms of a core every half second near the end
            # (an index scan with a heap fetch a row just written), inside the timing.
            at = await connection.fetchrow(
                "SELECT entry_after, entry_done FROM journey_versions WHERE tenant_id = $1"
                " AND journey_id = $2 AND version = 1", P7_TENANT, journey_id)
            if at["entry_after"] != position or at["entry_done"]:
                first = first or time.monotonic()
                position, last = at["entry_after"], time.monotonic()
            elapsed = time.monotonic() - published
            # the audience is read in id order (its progress is cleared once done)
            near = members if at["entry_done"] else _ordinal(position, "p7j-")
            overwrite(f"  P7J entering: about {near:,}/{members:,} after {elapsed:.0f}s "
                      f"({near / elapsed:,.0f}/s)")
            if at["entry_done"]:
                break
        progress("")
        entered = int(await connection.fetchval(  # once, after: every one stored?
            "SELECT count(*) FROM journey_instances WHERE tenant_id = $1"
            " AND journey_id = $2 AND version = 1 AND node = 'pause' AND state = 'waiting'",
            P7_TENANT, journey_id))
        seconds = last - published
        result.update(await _p7_relayed(connection, journey_id, first or published))
        result.update(journey=journey_id, instances=entered, seconds=seconds,
                      engine_restarted=_restarted(started, "P7J"),
                      complete=entered == members,
                      enter_rate=entered / seconds if seconds > 0 else None,
                      first_entry_after_s=None if first is None else first - published)
    finally:
        await connection.close()
        await raw.close()
        result["deleted"] = await _clean(P7_TENANT, "P7J")
    return result


async def _p7_relayed(connection: asyncpg.Connection, journey_id: str, began: float
                      ) -> dict[str, Any]:
    """The entering profiles' steps published (the relay's watermark past the journey's
    last step, a cohort's or a profile's), before the rows are deleted (a cohort's step
    published after its members are gone names nobody): how many members' steps (a
    cohort's are records of up to 1,000 members on parcours.journey-steps.v2), and how
    fast from the first entry on."""
    steps = await connection.fetchrow(
        "SELECT GREATEST((SELECT max(id) FROM journey_steps WHERE tenant_id = $1"
        "   AND journey_id = $2), (SELECT max(id) FROM journey_cohort_steps"
        "   WHERE tenant_id = $1 AND journey_id = $2)) AS last,"
        " (SELECT count(*) FROM journey_steps WHERE tenant_id = $1 AND journey_id = $2)"
        " + (SELECT COALESCE(sum(members), 0) FROM journey_cohort_steps"
        "    WHERE tenant_id = $1 AND journey_id = $2) AS events", P7_TENANT, journey_id)
    events, deadline = int(steps["events"]), time.monotonic() + RELAY_DEADLINE_S
    while steps["last"] is not None and time.monotonic() < deadline:
        relayed = await connection.fetchval(
            "SELECT last_id FROM journey_step_relay WHERE relay = 'kafka'")
        behind = await connection.fetchval(
            "SELECT COALESCE(sum(members), 0) FROM journey_cohort_steps WHERE tenant_id = $1"
            " AND journey_id = $2 AND id > $3", P7_TENANT, journey_id, relayed or 0)
        overwrite(f"  P7J steps: {events - behind:,}/{events:,} published "
                  f"{time.monotonic() - began:.0f}s after the first entry")
        if relayed is not None and relayed >= steps["last"]:
            progress("")
            seconds = time.monotonic() - began
            return {"step_events": events, "relay_seconds": seconds,
                    "relay_rate": events / seconds}
        await asyncio.sleep(0.5)
    progress("")
    return {"step_events": events, "relay_seconds": None, "relay_rate": None}


def run_p7(total: int, deadline_s: float) -> list[Row]:
    progress(f"P7J entering a journey: an audience of {total:,} profiles in {P7_TENANT}, "
             f"entry rate {P7_RATE:,}/s")
    r = asyncio.run(_alone(P7_TENANT, "P7J", lambda: _p7_measure(total, deadline_s)))
    rate = r.get("enter_rate")
    progress(f"  P7J: {r['instances']:,}/{r['members']:,} entered in {r['seconds']:.1f}s = "
             f"{rate or 0:,.0f}/s; raw COPY {r['raw']:,.0f}/s, keyset {r['keyset']:,.0f}/s;"
             f" their {r['step_events']:,} steps published in "
             f"{r['relay_seconds'] or float('nan'):.1f}s from the first entry")
    return [Row("P7J", f"profiles entering a journey ({r['instances']:,}/{r['members']:,} "
                       f"of {total:,}; keyset read {r['keyset']:,.0f}/s)",
                rate, "profiles/s", baseline=f"raw COPY {r['raw']:,.0f}/s",
                ratio=ratio(rate, r["raw"]), target=f"≥ {TARGET_ENTER:,}/s",
                met=None if rate is None else rate >= TARGET_ENTER and r["complete"],
                details=r),
            # no target: how far the step events (parcours.journey-steps.v2) trail
            Row("P7J-S", f"their {r['step_events']:,} steps published (records of up to "
                         f"1,000 members), from the "
                         f"first entry (entering alone: {r['seconds']:.0f}s)",
                r["relay_rate"], "steps/s")]


# --- P8J: timers ----------------------------------------------------------------------------

P8_TENANT = "bench-jp8"
P8_JOURNEY = "bench-p8j"
LEAD_S = 3.0  # from the window's instances written to the first due
LATE_DEADLINE_S = 60.0  # after the last due


async def _p8_window(connection: asyncpg.Connection, raw: asyncpg.Connection, plan: Plan,
                     n: int, rate: float, window_s: float) -> dict[str, Any]:
    count = int(rate * window_s)
    ids = [f"p8w-{n}-{i:06d}" for i in range(count)]
    first = time.time() + LEAD_S + count / 20_000  # the writing's own time
    due = [datetime.fromtimestamp(first + i / rate, UTC) for i in range(count)]
    last_step = int(await connection.fetchval("SELECT coalesce(max(id), 0) FROM journey_steps"))
    await _copy_instances(raw, P8_TENANT, plan, ids, due, f"P8J run {n}")
    due_of = {_instance_id(plan, pid): d.timestamp() for pid, d in zip(ids, due, strict=True)}
    seen: dict[str, tuple[float, float]] = {}  # instance → (step at, seen at)
    label = f"P8J run {n}/{RUNS}"
    last_due = due[-1].timestamp()
    started = engine_started()
    while len(seen) < count and time.time() < last_due + LATE_DEADLINE_S:
        rows = await connection.fetch(
            "SELECT id, instance_id::text, at FROM journey_steps WHERE tenant_id = $1"
            " AND journey_id = $2 AND version = 1 AND node = 'done' AND kind = 'finished'"
            " AND id > $3", P8_TENANT, P8_JOURNEY, last_step)
        now = time.time()
        for row in rows:
            seen.setdefault(row["instance_id"], (row["at"].timestamp(), now))
            last_step = max(last_step, row["id"])
        ahead = first - now
        overwrite(f"  {label}: {len(seen):,}/{count:,} fired"
                  + (f" (first due in {ahead:.0f}s)" if ahead > 0 else ""))
        await asyncio.sleep(POLL_S)
    progress("")
    lateness = [at - due_of[i] for i, (at, _) in seen.items()]
    visible = [s - due_of[i] for i, (_, s) in seen.items()]
    early = sum(x < 0 for x in lateness)
    return {**latency_summary(lateness),  # its "count" (of samples) is "fired" here
            "count": count, "fired": len(seen), "early": early,
            "engine_restarted": _restarted(started, label),
            "earliest_ms": min(lateness) * 1000 if lateness else None,
            "visible": latency_summary(visible)}


def _instance_id(plan: Plan, profile_id: str) -> str:
    return instance_id(plan.tenant, plan.definition.id, plan.version, profile_id, 0)


async def _p8_measure(backlog: int, rate: float, window_s: float) -> dict[str, Any]:
    journey = _wait_journey(P8_JOURNEY)
    plan = _plan(P8_TENANT, journey, 1)
    raw = await _raw_connection()
    connection = await connect(settings.pg_dsn)
    result: dict[str, Any] = {"backlog": backlog, "rate": rate, "window_s": window_s,
                              "runs": []}
    try:
        await _publish(connection, P8_TENANT, journey, 1, entry_done=True)
        began = time.monotonic()
        await _copy_instances(raw, P8_TENANT, plan, [f"p8b-{i:07d}" for i in range(backlog)],
                              None, "P8J backlog")
        result["load_s"] = time.monotonic() - began
        await connection.execute("ANALYZE journey_timers")
        await connection.execute("ANALYZE journey_instances")
        result["pending_timers"] = int(await connection.fetchval(
            "SELECT count(*) FROM journey_timers"))
        progress(f"  P8J backlog: {backlog:,} waiting instances in {result['load_s']:.0f}s;"
                 f" {result['pending_timers']:,} timers pending in the table")
        for n in range(1, RUNS + 1):
            r = await _p8_window(connection, raw, plan, n, rate, window_s)
            progress(f"  P8J run {n}/{RUNS}: {r['fired']:,}/{r['count']:,} fired, lateness "
                     f"p50 {r.get('p50_ms', math.nan):.0f} ms, p99 "
                     f"{r.get('p99_ms', math.nan):.0f} ms, max {r.get('max_ms', math.nan):.0f}"
                     f" ms, early {r['early']}; seen committed p99 "
                     f"{r['visible'].get('p99_ms', math.nan):.0f} ms")
            result["runs"].append(r)
    finally:
        await connection.close()
        await raw.close()
        result["deleted"] = await _clean(P8_TENANT, "P8J")
    return result


def run_p8(backlog: int, rate: float, window_s: float) -> list[Row]:
    progress(f"P8J journey timers: {backlog:,} pending, then {rate:.0f}/s coming due for "
             f"{window_s:.0f}s, {RUNS} runs, in {P8_TENANT}")
    r = asyncio.run(_alone(P8_TENANT, "P8J", lambda: _p8_measure(backlog, rate, window_s)))
    runs = r["runs"]
    p50, p99 = median_of(runs, "p50_ms"), median_of(runs, "p99_ms")
    early = sum(x["early"] for x in runs)
    fired, expected = sum(x["fired"] for x in runs), sum(x["count"] for x in runs)
    visible = median_of([x["visible"] for x in runs], "p99_ms")
    restarts = sum(x["engine_restarted"] for x in runs)
    what = (f"journey timer lateness ({rate:.0f}/s for {window_s:.0f}s, {backlog:,} pending"
            + (f"; engine restarted in {restarts} run(s)" if restarts else "") + ")")
    return [
        Row("P8J", f"{what}, p50", p50, "ms", details=r),
        Row("P8J", f"{what}, p99", p99, "ms", target="≤ 1 s (goal 100 ms)",
            met=None if p99 is None else p99 <= TARGET_LATENESS_MS),
        Row("P8J", "journey timer, due → move seen committed, p99", visible, "ms"),
        Row("P8J", "journey timers early", float(early), "timers", target="0",
            met=early == 0),
        Row("P8J", "journey timers fired", float(fired), "timers",
            baseline=f"expected {expected:,}", ratio=ratio(fired, expected),
            target="all", met=fired == expected),
    ]


# --- P9: input → next action ----------------------------------------------------------------

P9_TENANT = "bench-jp9"
P9_EVENT = "JEVbenchP9"
P9_MESSAGE = "JMSbenchP9"
P9_TEMPLATE = {"subject": "P9 {{ profile.first_name }}", "html": "<p>P9</p>", "text": "P9"}


def _listen_journey(journey_id: str) -> dict[str, Any]:
    return {"id": journey_id, "name": "bench: listen for an event, email, end",
            "entry": {"type": "audience", "audienceId": "bench-none", "next": "await"},
            "nodes": [{"id": "await", "type": "listen",
                       "branches": [{"event": {"eventId": P9_EVENT}, "next": "mail"}]},
                      {"id": "mail", "type": "email", "message": P9_MESSAGE, "next": "done"},
                      {"id": "done", "type": "end"}]}


async def _p9_setup(connection: asyncpg.Connection, raw: asyncpg.Connection, profiles: int
                    ) -> None:
    await create_tenant(connection, P9_TENANT, "bench P9 (bench/journeys.py)")
    await journey_event_store.put(connection, P9_TENANT, JourneyEventType.model_validate({
        "eventId": P9_EVENT, "fields": [{"id": "customerId", "type": "string",
                                         "required": True},
                                        {"id": "n", "type": "string"}],
        "profileKey": "customerId"}))
    config = EventConfig.model_validate({
        "event_id": P9_MESSAGE, "label": "bench P9 journey message", "channel": "email",
        "targeting": "profile", "fields": []})
    pool = await asyncpg.create_pool(settings.pg_dsn, min_size=1, max_size=1,
                                     init=_jsonb_codec)
    try:
        await save_event(pool, P9_TENANT, config, P9_TEMPLATE)
    finally:
        await pool.close()
    await _copy_profiles(raw, P9_TENANT, "p9-", profiles, "P9")
    now = datetime.now(UTC)
    await raw.copy_records_to_table(
        "consents", records=[(P9_TENANT, f"p9-{i:08d}", "marketing", "email", "opted-in",
                              now, "bench") for i in range(profiles)],
        columns=["tenant_id", "profile_id", "kind", "name", "value", "changed_at", "source"])


async def _jsonb_codec(connection: asyncpg.Connection) -> None:
    await connection.set_type_codec("jsonb", encoder=lambda v: orjson.dumps(v).decode(),
                                    decoder=orjson.loads, schema="pg_catalog")


async def _p9_run(connection: asyncpg.Connection, raw: asyncpg.Connection, n: int,
                  rate: float, seconds: float) -> dict[str, Any]:
    count = int(rate * seconds)
    journey = _listen_journey(f"bench-p9-{n}")
    plan = _plan(P9_TENANT, journey, 1)
    ids = [f"p9-{i:08d}" for i in range(count)]
    await _publish(connection, P9_TENANT, journey, 1, entry_done=True)
    await _copy_instances(raw, P9_TENANT, plan, ids, None, f"P9 run {n}")
    label = f"P9 run {n}/{RUNS}"

    topic = send_topic("email", "bulk").name
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap,
                                enable_auto_commit=False, **client_security(settings))
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all",
                                enable_idempotence=True, linger_ms=1,
                                **client_security(settings))
    await consumer.start()
    await producer.start()
    produced: dict[str, float] = {}
    arrived: dict[str, tuple[float, float]] = {}  # profile → (record timestamp, received)
    try:
        parts = [TopicPartition(topic, p) for p in sorted(
            consumer.partitions_for_topic(topic) or await _partitions(consumer, topic))]
        consumer.assign(parts)
        await consumer.seek_to_end(*parts)
        for part in parts:
            await consumer.position(part)

        async def consume() -> None:
            while True:
                batches = await consumer.getmany(timeout_ms=100, max_records=2000)
                now = time.time()
                for records in batches.values():
                    for record in records:
                        body = orjson.loads(record.value)
                        if body.get("tenant") == P9_TENANT and (
                                body.get("origin") or {}).get("journeyId") == journey["id"]:
                            arrived.setdefault(body["profileId"],
                                               (record.timestamp / 1000, now))

        started = engine_started()
        reader = asyncio.create_task(consume())
        began = time.monotonic()
        for i, profile_id in enumerate(ids):
            ahead = began + i / rate - time.monotonic()
            if ahead > 0:
                await asyncio.sleep(ahead)
            at = time.time()
            record = JourneyEventRecord(tenant=P9_TENANT, eventId=P9_EVENT,
                                        profileId=profile_id,
                                        payload={"customerId": profile_id, "n": str(i)},
                                        acceptedAt=at)
            produced[profile_id] = at
            await producer.send(JOURNEY_EVENTS.name, record.model_dump_json().encode(),
                                key=profile_id.encode())
            if i % 500 == 0:
                overwrite(f"  {label}: produced {i:,}/{count:,}, sends seen "
                          f"{len(arrived):,}")
        await producer.flush()
        offered = count / (time.monotonic() - began)
        deadline = time.time() + 60
        while len(arrived) < count and time.time() < deadline:
            overwrite(f"  {label}: produced {count:,} at {offered:,.0f}/s, sends seen "
                      f"{len(arrived):,}")
            await asyncio.sleep(0.2)
        reader.cancel()
        progress("")
    finally:
        await producer.stop()
        await consumer.stop()
    handed = [arrived[p][0] - produced[p] for p in arrived]
    received = [arrived[p][1] - produced[p] for p in arrived]
    excluded = int(await connection.fetchval(
        "SELECT count(*) FROM journey_steps WHERE tenant_id = $1 AND journey_id = $2"
        " AND kind = 'actionExcluded'", P9_TENANT, journey["id"]))
    return {**latency_summary(handed),  # its "count" (of samples) is "arrived" here
            "count": count, "offered_per_s": offered, "arrived": len(arrived),
            "engine_restarted": _restarted(started, label),
            "excluded": excluded, "received": latency_summary(received)}


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()  # first use: no metadata yet
    return consumer.partitions_for_topic(topic) or set()


async def _p9_measure(rate: float, seconds: float) -> dict[str, Any]:
    raw = await _raw_connection()
    connection = await connect(settings.pg_dsn)
    result: dict[str, Any] = {"rate": rate, "seconds": seconds, "runs": []}
    try:
        await _p9_setup(connection, raw, int(rate * seconds))
        for n in range(1, RUNS + 1):
            r = await _p9_run(connection, raw, n, rate, seconds)
            progress(f"  P9 run {n}/{RUNS}: {r['arrived']:,}/{r['count']:,} sends at "
                     f"{r['offered_per_s']:,.0f} inputs/s, produce → send record p50 "
                     f"{r.get('p50_ms', math.nan):.0f} ms, p99 "
                     f"{r.get('p99_ms', math.nan):.0f} ms, max "
                     f"{r.get('max_ms', math.nan):.0f} ms; excluded {r['excluded']}")
            result["runs"].append(r)
    finally:
        await connection.close()
        await raw.close()
        result["deleted"] = await _clean(P9_TENANT, "P9")
    return result


def run_p9(rate: float, seconds: float) -> list[Row]:
    progress(f"P9 journey event → next action on the bulk lane: {rate:.0f} inputs/s for "
             f"{seconds:.0f}s, {RUNS} runs, in {P9_TENANT}")
    r = asyncio.run(_alone(P9_TENANT, "P9", lambda: _p9_measure(rate, seconds)))
    runs = r["runs"]
    p50, p99 = median_of(runs, "p50_ms"), median_of(runs, "p99_ms")
    arrived, expected = sum(x["arrived"] for x in runs), sum(x["count"] for x in runs)
    offered = median([x["offered_per_s"] for x in runs])
    restarts = sum(x["engine_restarted"] for x in runs)
    what = (f"journey event → send record ({offered:,.0f} inputs/s offered"
            + (f"; engine restarted in {restarts} run(s)" if restarts else "") + ")")
    return [
        Row("P9", f"{what}, p50", p50, "ms", details=r),
        Row("P9", f"{what}, p99", p99, "ms", target="≤ 1 s",
            met=None if p99 is None else p99 <= TARGET_P9_MS),
        Row("P9", "sends handed to the bulk lane", float(arrived), "sends",
            baseline=f"expected {expected:,}", ratio=ratio(arrived, expected),
            target="all", met=arrived == expected),
    ]

