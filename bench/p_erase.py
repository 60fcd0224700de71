"""ERASE: erasing a profile beside 1,000,000 statuses and 1,000,000 deliveries, and what
the statuses' and the ledger's writes cost.

The rows are written with COPY (chunks of 100,000) into a throwaway tenant of their own
and deleted at the end whatever happens (rows left by an aborted run are deleted first).
Their texts follow what the stages write: most statuses carry a fixed reason or none,
5 % quote another profile's address (a provider's refusal); sent deliveries keep the
provider's reply or reference, failed ones its refusal. A handful quote the erased
profile's email (in another case), phone and device token.

Each run times, on one connection:

- erase: ``erasure.erase_profile`` of a profile holding those addresses (every registered
  store, as ``DELETE /v1/profiles/{id}`` does), in a transaction rolled back afterwards so
  every run redacts the same rows (its counts are checked); once as shipped, once with
  index scans off (the sequential scans it made before the trigram indexes, migration 012);
- the hot path's writes, on two scratch copies of both tables holding the tenant's rows,
  one without the trigram indexes, in turn, each first every other run (``search_path``):
  200,000 ``record_statuses`` (the mix above) in batches of 500, then 200,000
  ``delivery_ledger.claim`` and ``settle`` (which also records the statuses) in batches of
  500. The written rows are deleted and the table vacuumed after each run, so each starts
  alike.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import asyncpg

from bench.common import RUNS, Row, progress, settings
from bench.stats import median, ratio
from shared.adapters import consent_store, delivery_ledger, erasure, event_redaction, profile_store
from shared.adapters.delivery_ledger import Claimable, Outcome
from shared.adapters.postgres import connect
from shared.adapters.status_store import record_statuses
from shared.domain.status import RANK, Status, StatusWrite

assert consent_store and event_redaction and profile_store  # register their stores

TENANT = "bench-erase"
ROWS = 1_000_000
WRITES = 200_000
BATCH = 500
CHUNK = 100_000
SCRATCH = {"without": "bench_erase_without", "with": "bench_erase_with"}
EMAIL, PHONE = "Erase.Me+bench@Bench.Example.com", "+33612345678"
TOKEN = "fcm:dQw4w9WgXcQ:APA91bH" + "x7Ke-9_Zq" * 16  # an FCM-like token, 165 characters
FIXED = ("expiration passed before processing", "refused with 503 at ingestion (Kafka "
         "unavailable)", "no profile matches the event's target",
         "invalid: ctx.item: Input should be a valid string")


def _reason(i: int) -> tuple[str, str | None]:
    """A status and its reason, in the shares the stages write them."""
    kind = i % 20
    if kind < 12:
        return "processed", None
    if kind < 19:
        return "ignored", FIXED[i % len(FIXED)]
    return "deliveryFailed", f"smtp 550: 5.1.1 <user{i}@bench.example.com>: Recipient rejected"


def _detail(i: int) -> tuple[str, str]:
    if i % 10 == 0:
        return "failed", f"smtp 550: 5.1.1 <user{i}@bench.example.com>: Recipient rejected"
    if i % 2:
        return "sent", f"250 2.0.0 Ok: queued as {i:010X}"
    return "sent", f"sms-{i:08d}"


# The erased profile's addresses, as providers quote them: 3 statuses and 3 replies.
QUOTING = [f"smtp 550: 5.1.1 <{EMAIL.upper()}>: Recipient rejected",
           f"provider 400: invalid phone {PHONE}",
           f"provider 410: token {TOKEN} unregistered"]


async def _drop(connection: asyncpg.Connection) -> int:
    statuses = await connection.execute("DELETE FROM event_status WHERE tenant_id = $1", TENANT)
    replies = await connection.execute("DELETE FROM deliveries WHERE tenant_id = $1", TENANT)
    await connection.execute("DELETE FROM profiles WHERE tenant_id = $1", TENANT)
    return int(statuses.split()[-1]) + int(replies.split()[-1])


async def _load(connection: asyncpg.Connection) -> float:
    began = time.monotonic()
    for start in range(0, ROWS, CHUNK):
        statuses, deliveries = [], []
        for i in range(start, min(start + CHUNK, ROWS)):
            status, reason = _reason(i)
            state, detail = _detail(i)
            if i < len(QUOTING):
                status, reason, state, detail = "deliveryFailed", QUOTING[i], "failed", QUOTING[i]
            statuses.append((f"erase-{i:08d}", TENANT, "EVTbench", status, RANK[Status(status)],
                             reason))
            deliveries.append((uuid.uuid4(), TENANT, f"erase-{i:08d}", "email", state, detail))
        await connection.copy_records_to_table(
            "event_status", records=statuses,
            columns=["pkey", "tenant_id", "event_id", "status", "rank", "reason"])
        await connection.copy_records_to_table(
            "deliveries", records=deliveries,
            columns=["message_id", "tenant_id", "pkey", "channel", "state", "detail"])
        progress(f"  ERASE loaded {min(start + CHUNK, ROWS):,}/{ROWS:,} statuses and deliveries")
    await connection.execute("ANALYZE event_status")
    await connection.execute("ANALYZE deliveries")
    return time.monotonic() - began


async def _erase(connection: asyncpg.Connection, *, scan: bool) -> tuple[float, dict[str, int]]:
    """``scan``: with index scans off, as before the trigram indexes (migration 012)."""
    transaction = connection.transaction()
    await transaction.start()
    try:
        if scan:
            await connection.execute("SET LOCAL enable_bitmapscan = off;"
                                     " SET LOCAL enable_indexscan = off")
        await connection.execute(
            "INSERT INTO profiles (tenant_id, profile_id, email, mobile_phone,"
            " push_registrations) VALUES ($1, 'erase-me', $2, $3, $4)", TENANT, EMAIL, PHONE,
            [{"registrationToken": TOKEN, "platform": "android"}])
        began = time.perf_counter()
        removed = await erasure.erase_profile(connection, TENANT, "erase-me")
        seconds = time.perf_counter() - began
    finally:
        await transaction.rollback()
    if removed["statusReasons"] != 3 or removed["deliveryReplies"] != 3:
        raise AssertionError(f"erasure redacted {removed}, expected 3 and 3")
    return seconds, removed


async def _status_writes(connection: asyncpg.Connection) -> float:
    writes = []
    for i in range(WRITES):
        status, reason = _reason(i)
        writes.append(StatusWrite(f"erase-w-{i:08d}", TENANT, "EVTbench", Status(status),
                                  reason))
    began = time.perf_counter()
    for start in range(0, WRITES, BATCH):
        await record_statuses(connection, writes[start:start + BATCH])
    return time.perf_counter() - began


async def _ledger_writes(connection: asyncpg.Connection) -> float:
    messages = [Claimable(str(uuid.uuid4()), TENANT, f"erase-l-{i:08d}")
                for i in range(WRITES)]
    outcomes = []
    for i, message in enumerate(messages):
        state, detail = _detail(i)
        status = Status.PROCESSED if state == "sent" else Status.DELIVERY_FAILED
        outcomes.append(Outcome(message.message_id, state == "sent", detail, StatusWrite(
            message.pkey, TENANT, "EVTbench", status,
            None if state == "sent" else detail, message.message_id)))
    began = time.perf_counter()
    for start in range(0, WRITES, BATCH):
        await delivery_ledger.claim(connection, "email", messages[start:start + BATCH])
        await delivery_ledger.settle(connection, outcomes[start:start + BATCH])
    return time.perf_counter() - began


async def _scratch(connection: asyncpg.Connection) -> None:
    """Two copies of both tables beside the tenant's rows, one without the trigram
    indexes: the same writes go to each in turn (``search_path``), so the machine's
    noise falls on both alike."""
    await _drop_scratch(connection)
    for schema in SCRATCH.values():
        await connection.execute(f"CREATE SCHEMA {schema}")
        for table in ("event_status", "deliveries"):
            await connection.execute(
                f"CREATE TABLE {schema}.{table} (LIKE public.{table} INCLUDING ALL)")
            await connection.execute(f"INSERT INTO {schema}.{table} SELECT * FROM public.{table}"
                                     " WHERE tenant_id = $1", TENANT)
    for name in await connection.fetch(
            "SELECT indexname FROM pg_indexes WHERE schemaname = $1 AND indexdef LIKE"
            " '%gin_trgm_ops%'", SCRATCH["without"]):
        await connection.execute(f"DROP INDEX {SCRATCH['without']}.{name[0]}")


async def _drop_scratch(connection: asyncpg.Connection) -> None:
    for schema in SCRATCH.values():
        await connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


async def _writes(connection: asyncpg.Connection, schema: str) -> tuple[float, float]:
    await connection.execute(f"SET search_path = {schema}")
    try:
        timed = await _status_writes(connection), await _ledger_writes(connection)
        for table in ("event_status", "deliveries"):
            await connection.execute(f"DELETE FROM {table} WHERE pkey LIKE 'erase-_-%'")
            await connection.execute(f"VACUUM {table}")  # as autovacuum would, between runs
    finally:
        await connection.execute("RESET search_path")
    return timed


async def _plans(connection: asyncpg.Connection) -> dict[str, str]:
    pattern = "erase\\.me\\+bench@bench\\.example\\.com"
    plans = {}
    for table, column in (("event_status", "reason"), ("deliveries", "detail")):
        lines = await connection.fetch(
            f"EXPLAIN SELECT 1 FROM {table} WHERE tenant_id = $1 AND {column} ~* $2",
            TENANT, pattern)
        plans[table] = " / ".join(line[0].strip() for line in lines)
    return plans


async def _measure() -> dict[str, Any]:
    connection = await connect(settings.pg_dsn)
    result: dict[str, Any] = {"rows": ROWS, "writes": WRITES, "batch": BATCH}
    try:
        left = await _drop(connection)
        if left:
            progress(f"  ERASE deleted {left:,} rows an earlier run left")
        result["load_s"] = await _load(connection)
        result["plans"] = await _plans(connection)
        progress(f"  ERASE plans: {result['plans']}")
        await _scratch(connection)
        runs: dict[str, list[float]] = {key: [] for key in (
            "erase_ms", "erase_scan_ms", "status_writes_s", "status_writes_without_s",
            "ledger_writes_s", "ledger_writes_without_s")}
        for n in range(1, RUNS + 1):
            runs["erase_scan_ms"].append((await _erase(connection, scan=True))[0] * 1000)
            runs["erase_ms"].append((await _erase(connection, scan=False))[0] * 1000)
            variants = [("without", "_without"), ("with", "")]
            for variant, suffix in variants if n % 2 else variants[::-1]:  # neither always first
                statuses, ledger = await _writes(connection, SCRATCH[variant])
                runs[f"status_writes{suffix}_s"].append(statuses)
                runs[f"ledger_writes{suffix}_s"].append(ledger)
            progress(f"  ERASE run {n}/{RUNS}: erase {runs['erase_ms'][-1]:,.1f} ms (sequential"
                     f" scans: {runs['erase_scan_ms'][-1]:,.0f} ms); {WRITES:,} status writes "
                     f"{runs['status_writes_s'][-1]:.2f} s (without the trigram index "
                     f"{runs['status_writes_without_s'][-1]:.2f} s); {WRITES:,} claims + "
                     f"settles {runs['ledger_writes_s'][-1]:.2f} s (without "
                     f"{runs['ledger_writes_without_s'][-1]:.2f} s)")
        result["runs"] = runs
        result |= {key: median(values) for key, values in runs.items()}
    finally:
        progress(f"  ERASE: deleting the bench rows of tenant {TENANT} and the scratch tables")
        if connection.is_closed():  # the database went away under the run
            connection = await connect(settings.pg_dsn)
        await _drop_scratch(connection)
        result["deleted"] = await _drop(connection)
        await connection.close()
    return result


def run() -> list[Row]:
    progress(f"ERASE: {ROWS:,} statuses and deliveries in tenant {TENANT}, {RUNS} runs")
    result = asyncio.run(_measure())

    def per_write(key: str) -> float:
        return float(result[key] / WRITES * 1e6)

    return [
        Row("ERASE", f"erase a profile beside {ROWS:,} statuses and deliveries",
            result["erase_ms"], "ms", baseline=f"sequential scans {result['erase_scan_ms']:,.0f}"
            " ms", ratio=ratio(result["erase_ms"], result["erase_scan_ms"]), details=result),
        Row("ERASE", f"status write ({WRITES:,} record_statuses, batches of {BATCH})",
            per_write("status_writes_s"), "µs/status",
            baseline=f"no trigram index {per_write('status_writes_without_s'):.1f} µs",
            ratio=ratio(result["status_writes_s"], result["status_writes_without_s"]),
            details=result),
        Row("ERASE", f"delivery claim + settle ({WRITES:,}, batches of {BATCH})",
            per_write("ledger_writes_s"), "µs/delivery",
            baseline=f"no trigram index {per_write('ledger_writes_without_s'):.1f} µs",
            ratio=ratio(result["ledger_writes_s"], result["ledger_writes_without_s"]),
            details=result),
    ]
