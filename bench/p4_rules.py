"""P4R: P4 (accepted → handed to SMTP, open loop at a fixed rate) for a profile-based
marketing event, with no delivery rules and with typical ones, in the same run.

A throwaway tenant of its own (its ingestion key, 256 profiles opted in to email
marketing and born 1990, the event ``EVTbenchrules``: profile-based, marketing, naming
typology ``t1``, the bench template). Its runs alternate, so a machine that grows busier
during the bench weighs on both sides alike: without rules (no rule, no typology ``t1``:
address and consent checks only), then with the typical rules written (typology ``t1``: a
filtering rule "under 18" on birthDate and a capacity rule of 1,000,000 a day; two
fatigue rules on email, 1,000 a day and 5,000 a week: each profile receives about 8
messages a run, so caps of 3 and 10 would exclude most of them and compare unlike with
like; these count the whole history and pass every message). The processor hears the
change at once (``TenantRulesCache.listen``). Every message must arrive either way; each
message's trace is checked to hold the fatigue rule's verdict in the runs with rules.
Everything the tenant holds is deleted at the end, whatever happens. Like P4 it empties
the SMTP sink before each run (reading back 200,000 kept messages times out).
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections import Counter
from datetime import date
from typing import Any

import httpx
import orjson

from bench import p4_latency, pipeline
from bench.common import (
    BENCH_DOMAIN,
    BENCH_TEMPLATE,
    GATEWAY,
    PAST_EXPIRATION,
    RUNS,
    Row,
    progress,
    settings,
)
from bench.rules import TYPICAL_RULES, TYPOLOGY, delete_tenant
from bench.stats import median_of
from shared.adapters.catalog_store import save_event
from shared.adapters.key_store import create_key, create_tenant
from shared.adapters.postgres import connect, create_pool
from shared.adapters.profile_store import upsert_profiles
from shared.domain.api_keys import Scope
from shared.domain.events import EventConfig

EVENT = EventConfig.model_validate({
    "event_id": "EVTbenchrules",
    "label": "Benchmark event with delivery rules (bench/)",
    "channel": "email",
    "targeting": "profile",
    "marketing": True,
    "typology": TYPOLOGY[0],
    "fields": [{"id": "orderId", "type": "string", "required": True},
               {"id": "amount", "type": "decimal"},
               {"id": "sentAt", "type": "string"}],
})
URL = f"{GATEWAY}/v1/events/{EVENT.event_id}"
# Caps high enough that nothing is excluded (see the docstring).
RULES = {**TYPICAL_RULES,
         "r3": {**TYPICAL_RULES["r3"], "name": "1,000 emails a day", "max": 1_000},
         "r4": {**TYPICAL_RULES["r4"], "name": "5,000 emails a week", "max": 5_000}}
CASES = ("none", "rules")


async def _setup(tenant: str) -> str:
    pool = await create_pool(settings.pg_dsn, min_size=1, max_size=1)
    try:
        await save_event(pool, tenant, EVENT, BENCH_TEMPLATE)
    finally:
        await pool.close()
    connection = await connect(settings.pg_dsn)
    try:
        await create_tenant(connection, tenant, "bench P4R (throwaway)")
        await upsert_profiles(connection, tenant, [
            {"profile_id": f"p4r-{i:03d}", "email": f"bench-{i:03d}@{BENCH_DOMAIN}",
             "first_name": "Ada", "city": "Lyon", "birth_date": date(1990, 1, 1)}
            for i in range(p4_latency.TARGETS)])
        await connection.execute(
            "INSERT INTO consents (tenant_id, profile_id, kind, name, value, changed_at,"
            " source) SELECT $1, profile_id, 'marketing', 'email', 'opted-in', now(), 'bench'"
            "   FROM profiles WHERE tenant_id = $1", tenant)
        return await create_key(connection, tenant, Scope.INGEST, "bench P4R",
                                rate_per_s=10_000_000)
    finally:
        await connection.close()


async def _set_rules(tenant: str, on: bool) -> None:
    connection = await connect(settings.pg_dsn)
    try:
        async with connection.transaction():
            await connection.execute("DELETE FROM typologies WHERE tenant_id = $1", tenant)
            await connection.execute("DELETE FROM delivery_rules WHERE tenant_id = $1", tenant)
            if on:
                for rule_id, definition in RULES.items():
                    await connection.execute(
                        "INSERT INTO delivery_rules (tenant_id, rule_id, kind, definition)"
                        " VALUES ($1, $2, $3, $4)", tenant, rule_id, definition["kind"],
                        definition)
                await connection.execute(
                    "INSERT INTO typologies (tenant_id, typology_id, name, rule_ids)"
                    " VALUES ($1, $2, 'typical', $3)", tenant, TYPOLOGY[0], list(TYPOLOGY[1]))
    finally:
        await connection.close()


async def _traced(tenant: str, since: float) -> dict[str, int]:
    """Decisions traced since ``since`` (Unix time): all of them, and those with a verdict
    of the fatigue rule r3 (the rules really ran)."""
    connection = await connect(settings.pg_dsn)
    try:
        row = await connection.fetchrow(
            "SELECT count(*) AS decided,"
            "       count(*) FILTER (WHERE verdicts @> '[{\"rule\": \"r3\"}]') AS with_rules,"
            "       count(*) FILTER (WHERE outcome <> 'sent') AS not_sent"
            "  FROM message_trace WHERE tenant_id = $1 AND stage = 'decided'"
            "   AND at >= to_timestamp($2)", tenant, since)
        return dict(row)
    finally:
        await connection.close()


def _cleanup(tenant: str) -> None:
    async def delete() -> None:
        connection = await connect(settings.pg_dsn)
        try:
            await delete_tenant(connection, tenant)
        finally:
            await connection.close()
    asyncio.run(delete())


def _wait_gateway(deadline_s: float = 60) -> None:
    probe = orjson.dumps({"email": f"bench-000@{BENCH_DOMAIN}",
                          "ctx": {"orderId": "probe", "amount": 1, "sentAt": "0"},
                          "expiration": PAST_EXPIRATION})  # ends tooOld: no email
    end = time.monotonic() + deadline_s
    while (status := pipeline._post(URL, probe)) != 202:
        if time.monotonic() > end:
            raise TimeoutError(f"the gateway answers {status} to {URL} after {deadline_s:.0f}s")
        time.sleep(0.2)


def run(rate: float, seconds: float, connections: int, drain_deadline_s: float) -> list[Row]:
    tenant = f"bench-p4r-{uuid.uuid4().hex[:8]}"
    progress(f"P4R accepted → SMTP at {rate:,.0f} events/s for {seconds:.0f} s, profile-based"
             f" marketing event, without and with rules (alternating), {RUNS} runs each,"
             f" tenant {tenant}")
    saved_key = os.environ.get("PARCOURS_BENCH_KEY")
    runs: dict[str, list[dict[str, Any]]] = {case: [] for case in CASES}
    try:
        os.environ["PARCOURS_BENCH_KEY"] = asyncio.run(_setup(tenant))
        _wait_gateway()
        for n in range(1, RUNS + 1):
            for case in CASES:
                asyncio.run(_set_rules(tenant, case == "rules"))
                drained, _, _ = pipeline.wait_drained(
                    f"P4R {case} run {n}: waiting for an idle pipeline", drain_deadline_s)
                if not drained:
                    progress("  starting anyway: latencies include the backlog")
                began = time.time()
                try:
                    result = asyncio.run(p4_latency._one_run(
                        n, rate, seconds, connections, URL, f"P4R-{case}"))
                except httpx.HTTPError as error:  # a sink restarted by a test beside us
                    progress(f"  P4R {case} run {n}: {type(error).__name__} {error}; again")
                    began = time.time()
                    result = asyncio.run(p4_latency._one_run(
                        n, rate, seconds, connections, URL, f"P4R-{case}"))
                result["traced"] = asyncio.run(_traced(tenant, began))
                progress(f"  P4R {case} run {n}/{RUNS}: {result['arrived']:,}/"
                         f"{result['accepted']:,} arrived, "
                         f"p50 {result.get('p50_ms', float('nan')):.1f} ms, "
                         f"p99 {result.get('p99_ms', float('nan')):.1f} ms, "
                         f"sent {result['achieved_per_s']:,.0f}/s, handed to SMTP "
                         f"{result['delivered_per_s']:,.0f}/s, sustained {result['sustained']},"
                         f" decisions {result['traced']}")
                runs[case].append(result)
    finally:
        if saved_key is None:
            os.environ.pop("PARCOURS_BENCH_KEY", None)
        else:
            os.environ["PARCOURS_BENCH_KEY"] = saved_key
        _cleanup(tenant)
    for result in runs["rules"]:  # the rules must have run, and excluded nothing
        traced = result["traced"]
        if traced["with_rules"] < result["accepted"] or traced["not_sent"]:
            raise AssertionError(f"the rules did not apply to every message: {traced}")
    details = {"latency": "intended send time (client) → SMTP sink received_at",
               "rate": rate, "seconds": seconds, "connections": connections,
               "rules": RULES, "typology": TYPOLOGY, "runs": runs,
               "statuses": {case: dict(sum((Counter(r["statuses"]) for r in rs), Counter()))
                            for case, rs in runs.items()}}
    what = f"profile-based marketing, sent → handed to SMTP at {rate:,.0f}/s"
    figures = {case: {k: median_of(runs[case], k) for k in ("p50_ms", "p99_ms",
                                                              "delivered_per_s")}
               for case in CASES}
    limits = {"p50_ms": p4_latency.TARGET_P50_MS, "p99_ms": p4_latency.TARGET_P99_MS}
    rows: list[Row] = []
    for case in CASES:
        label = "no rules" if case == "none" else "typology + 2 fatigue rules"
        for key, unit, name in (("p50_ms", "ms", "p50"), ("p99_ms", "ms", "p99"),
                                ("delivered_per_s", "msg/s", "handed to SMTP")):
            value, base = figures[case][key], figures["none"][key]
            compared = case == "rules" and value is not None and bool(base)
            if key in limits:
                target, met = f"≤ {limits[key]} ms", value is not None and value <= limits[key]
            else:
                target, met = "sustained", all(r["sustained"] for r in runs[case])
            rows.append(Row("P4R", f"{what}, {label}: {name}", value, unit,
                            baseline="no rules" if compared else "—",
                            ratio=value / base if compared and value is not None and base
                            else None,
                            target=target, met=met, details={} if rows else details))
    return rows
