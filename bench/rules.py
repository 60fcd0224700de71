"""RULES: what the delivery rules cost per message.

In process, ``decide`` alone (pure, no I/O): a profile-based marketing message with no
rules (address and consent checks only), then with a typical typology (a filtering rule
"under 18" on birthDate and a capacity rule of a large cap) and two fatigue rules (3 emails
a day, 10 a week) over a history of 20 contacts, timed call by call in the thread's CPU
time (on a busy 2-core machine the wall clock's p99 is the scheduler's; kept beside).

On the real PostgreSQL, the whole step ``decide_messages`` (advisory locks, the history
and consent reads, the address lists, the capacity count, the history and trace writes,
one transaction) with ``record=True``, in batches of 1 and of 100 messages, for a tenant
with no rules and one with the same typical rules. Two throwaway tenants, whose profiles
(opted in to marketing, born 1990) each have 20 contacts in the last 60 days; every
message goes to a profile not decided before in the run, so no cap is reached and both
tenants decide ``send`` every time, like with like. Everything the tenants hold is
deleted at the end, whatever happens.
"""

from __future__ import annotations

import asyncio
import gc
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg

from bench.common import BENCH_DOMAIN, Row, progress, settings
from bench.stats import percentile
from shared.adapters.postgres import connect, create_pool
from shared.adapters.profile_schema_store import ProfileSchemaCache
from shared.adapters.profile_store import find_profiles, upsert_profiles
from shared.adapters.rules_store import TenantRulesCache
from shared.domain.delivery_rules import Candidate, Contact, Facts, Rules, decide
from shared.domain.delivery_rules.recipient import condition_record
from shared.domain.delivery_rules.tenant import RULE, TenantRules, Typology
from shared.domain.profile_schema import ProfileSchema
from shared.domain.routing import EventOrigin, SendRequest, TemplateRef, message_id
from shared.outgoing.step import Pending, Step, decide_messages

# The typical rules: r1, r2 in typology t1 (attached to the event), r3, r4 tenant-wide.
TYPICAL_RULES: dict[str, dict[str, Any]] = {
    "r1": {"kind": "filtering", "name": "under 18",
           "condition": {"path": "birthDate", "op": "within", "last": {"years": 18}}},
    "r2": {"kind": "capacity", "name": "a million a day", "max": 1_000_000, "period": "P1D",
           "scope": "message"},
    "r3": {"kind": "fatigue", "name": "3 emails a day", "channels": ["email"], "max": 3,
           "period": "P1D"},
    "r4": {"kind": "fatigue", "name": "10 emails a week", "channels": ["email"], "max": 10,
           "period": "P7D"},
}
TYPOLOGY = ("t1", ("r1", "r2"))
HISTORY = 20  # contacts per profile, one every 3 days back from now: under both caps
SPACING = timedelta(days=3)
EVENT_ID = "EVTbenchrules"
CALLS = 20_000  # in-process decisions timed per case (after 2,000 to warm up)
BATCHES = {1: 300, 100: 30}  # batch size → batches timed per tenant
PROFILES = 4_000  # ≥ the messages one tenant decides: each profile decided once


def typical_tenant_rules() -> TenantRules:
    return TenantRules(rules={i: RULE.validate_python(d) for i, d in TYPICAL_RULES.items()},
                       typologies={TYPOLOGY[0]: Typology(TYPOLOGY[0], "typical", TYPOLOGY[1])})


# --- in process ---------------------------------------------------------------------------

def _timed(call: Any, clock: Any) -> list[float]:
    """µs per call by ``clock`` (ns), less the clock's own cost (an empty call's median)."""
    empty = []
    for _ in range(2_000):
        began = clock()
        empty.append(clock() - began)
    own = percentile(empty, 50)
    timings = []
    for _ in range(CALLS):
        began = clock()
        call()
        timings.append((clock() - began - own) / 1000)
    return timings


def _time_calls(candidate: Candidate, facts: Facts, rules: Rules, now: datetime
                ) -> dict[str, Any]:
    for _ in range(2_000):
        decision = decide(candidate, facts, rules, now)
    assert decision.outcome == "send", decision.reason  # like with like: nothing excluded

    def call() -> None:
        decide(candidate, facts, rules, now)

    # The thread's CPU time is the cost: on a busy 2-core machine the wall clock's p99
    # catches the process being preempted mid-call (kept as a cross-check).
    cpu = _timed(call, time.thread_time_ns)
    wall = _timed(call, time.perf_counter_ns)
    return {"calls": CALLS, "median_us": percentile(cpu, 50), "p99_us": percentile(cpu, 99),
            "wall_median_us": percentile(wall, 50), "wall_p99_us": percentile(wall, 99),
            "verdicts": len(decision.trace)}


def in_process() -> dict[str, dict[str, Any]]:
    now = datetime.now(UTC)
    profile = {"profile_id": "p1", "email": f"p1@{BENCH_DOMAIN}", "first_name": "Ada",
               "city": "Lyon", "birth_date": "1990-01-01", "time_zone": None}
    record = condition_record(profile, [("marketing", "email", "opted-in")])
    candidate = Candidate(message_id=str(uuid.uuid4()), channel="email", origin_id=EVENT_ID,
                          transactional=False, contact_at=now)
    history = tuple(Contact("email", now - SPACING * (n + 1), False) for n in range(HISTORY))
    typical = typical_tenant_rules().for_message(TYPOLOGY[0], ProfileSchema())
    return {
        "none": _time_calls(candidate, Facts(profile=record), Rules(), now),
        "typical": _time_calls(candidate, Facts(profile=record, history=history,
                                                capacity_used={"r2": 5_000}), typical, now),
    }


# --- the step on PostgreSQL ---------------------------------------------------------------

async def _seed(connection: asyncpg.Connection, tenant: str, rules: bool) -> None:
    await connection.execute("INSERT INTO tenants (tenant_id, name) VALUES ($1, $2)",
                             tenant, "bench RULES (throwaway)")
    await upsert_profiles(connection, tenant, [
        {"profile_id": f"rb-{i:05d}", "email": f"rb-{i:05d}@{BENCH_DOMAIN}",
         "first_name": "Ada", "city": "Lyon", "birth_date": date(1990, 1, 1)}
        for i in range(PROFILES)])
    await connection.execute(
        "INSERT INTO consents (tenant_id, profile_id, kind, name, value, changed_at, source)"
        " SELECT $1, profile_id, 'marketing', 'email', 'opted-in', now(), 'bench'"
        "   FROM profiles WHERE tenant_id = $1", tenant)
    # 20 past contacts each, of another event (capacity counts this event's only).
    await connection.execute(
        "INSERT INTO contact_history (tenant_id, message_id, profile_id, channel,"
        " origin_kind, origin_id, transactional, contact_at, outcome)"
        " SELECT $1, gen_random_uuid(), p.profile_id, 'email', 'event', 'EVTearlier', false,"
        "        now() - make_interval(days => 3 * n), 'delivered'"
        "   FROM profiles p, generate_series(1, $2) n WHERE p.tenant_id = $1",
        tenant, HISTORY)
    if rules:
        for rule_id, definition in TYPICAL_RULES.items():
            await connection.execute(
                "INSERT INTO delivery_rules (tenant_id, rule_id, kind, definition)"
                " VALUES ($1, $2, $3, $4)", tenant, rule_id, definition["kind"], definition)
        await connection.execute(
            "INSERT INTO typologies (tenant_id, typology_id, name, rule_ids)"
            " VALUES ($1, $2, 'typical', $3)", tenant, TYPOLOGY[0], list(TYPOLOGY[1]))
    await connection.execute("ANALYZE contact_history")


async def delete_tenant(connection: asyncpg.Connection, tenant: str) -> None:
    """Every row of ``tenant`` in every table that has a tenant_id (a throwaway tenant)."""
    tables = [r["table_name"] for r in await connection.fetch(
        "SELECT table_name FROM information_schema.columns WHERE table_schema = 'public'"
        "   AND column_name = 'tenant_id' AND table_name IN (SELECT table_name FROM"
        "   information_schema.tables WHERE table_type = 'BASE TABLE')")]
    for _ in range(3):  # a table referenced by another's foreign key goes on a later pass
        left = []
        for table in tables:
            try:
                await connection.execute(f'DELETE FROM "{table}" WHERE tenant_id = $1', tenant)
            except asyncpg.ForeignKeyViolationError:
                left.append(table)
        if not left:
            return
        tables = left


def _pendings(tenant: str, profiles: list[dict[str, Any]], typology: str | None
              ) -> list[Pending]:
    out = []
    for profile in profiles:
        pkey = f"rb-{uuid.uuid4().hex}"
        out.append(Pending(SendRequest(
            messageId=message_id(tenant, pkey), tenant=tenant,
            origin=EventOrigin(eventId=EVENT_ID, pKey=pkey), channel="email",
            template=TemplateRef(eventId=EVENT_ID, version=1),
            to={"email": profile["email"]}, profileId=profile["profile_id"],
            ctx={"orderId": pkey}, profile=profile, acceptedAt=time.time()),
            transactional=False, typology=typology))
    return out


async def _time_step(connection: asyncpg.Connection, step: Step, tenant: str,
                     profiles: list[dict[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    offset = 0
    for size, batches in BATCHES.items():
        per_message = []
        for _ in range(batches):
            pendings = _pendings(tenant, profiles[offset:offset + size], TYPOLOGY[0])
            offset += size
            began = time.perf_counter()
            decided = await decide_messages(connection, step, pendings, datetime.now(UTC))
            per_message.append((time.perf_counter() - began) * 1e6 / size)
            outcomes = {d.outcome for d in decided}
            assert outcomes == {"send"}, [d.reason for d in decided if d.outcome != "send"]
        found[f"batch_{size}"] = {"batches": batches, "median_us": percentile(per_message, 50),
                                  "p99_us": percentile(per_message, 99)}
    return found


async def on_postgres() -> dict[str, dict[str, Any]]:
    suffix = uuid.uuid4().hex[:8]
    tenants = {"none": f"bench-rules-none-{suffix}", "typical": f"bench-rules-{suffix}"}
    pool = await create_pool(settings.pg_dsn, min_size=1, max_size=2)
    connection = await connect(settings.pg_dsn)
    found = {}
    try:
        for case, tenant in tenants.items():
            await _seed(connection, tenant, rules=case == "typical")
        step = Step(TenantRulesCache(pool, 600), ProfileSchemaCache(pool, 600))
        for case, tenant in tenants.items():
            profiles = [p for p in await find_profiles(connection, tenant, [
                {"email": f"rb-{i:05d}@{BENCH_DOMAIN}"} for i in range(PROFILES)]) if p]
            # the first decision loads the tenant's rules and schema: not timed
            await decide_messages(connection, step, _pendings(tenant, profiles[-1:], None),
                                  datetime.now(UTC))
            gc.collect()
            found[case] = await _time_step(connection, step, tenant, profiles[:-1])
    finally:
        for tenant in tenants.values():
            await delete_tenant(connection, tenant)
        await connection.close()
        await pool.close()
    return found


def run() -> list[Row]:
    progress(f"RULES decide() in process, {CALLS:,} calls per case")
    calls = in_process()
    for case, figures in calls.items():
        progress(f"  {case}: median {figures['median_us']:.1f} µs, "
                 f"p99 {figures['p99_us']:.1f} µs CPU time; wall clock median "
                 f"{figures['wall_median_us']:.1f} µs, p99 {figures['wall_p99_us']:.1f} µs"
                 f" ({figures['verdicts']} verdicts)")
    progress("RULES decide_messages() on PostgreSQL, record=True, batches of "
             + " and ".join(f"{s} (×{n})" for s, n in BATCHES.items()))
    step = asyncio.run(on_postgres())
    for case, sizes in step.items():
        for batch, figures in sizes.items():
            progress(f"  {case}, {batch}: median {figures['median_us']:.0f} µs/message, "
                     f"p99 {figures['p99_us']:.0f} µs/message")
    details = {"in_process": calls, "step": step, "rules": TYPICAL_RULES,
               "history_per_profile": HISTORY}
    rows = [
        Row("RULES", "decide() in process (CPU time), no rules: median",
            calls["none"]["median_us"], "µs", details=details),
        Row("RULES", "decide() in process (CPU time), no rules: p99",
            calls["none"]["p99_us"], "µs"),
        Row("RULES", "decide() in process (CPU time), typology + 2 fatigue, 20 contacts: median",
            calls["typical"]["median_us"], "µs", baseline="no rules",
            ratio=calls["typical"]["median_us"] / calls["none"]["median_us"]),
        Row("RULES", "decide() in process (CPU time), typology + 2 fatigue, 20 contacts: p99",
            calls["typical"]["p99_us"], "µs"),
    ]
    for size in BATCHES:
        none, typical = step["none"][f"batch_{size}"], step["typical"][f"batch_{size}"]
        rows += [
            Row("RULES", f"step on PostgreSQL, batch of {size}, no rules: median per message",
                none["median_us"], "µs"),
            Row("RULES", f"step on PostgreSQL, batch of {size}, typical rules: median per"
                         " message", typical["median_us"], "µs", baseline="no rules",
                ratio=typical["median_us"] / none["median_us"]),
        ]
    return rows
