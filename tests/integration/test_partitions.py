"""Event statuses and the delivery ledger by week (issue 15; migration 040,
shared/domain/partitions.py) on the real PostgreSQL and gateway: rows land in their pKey's
week, a write repeated on either side of a week boundary (a redelivery) meets its row
and makes no second status or claim, a status past its tenant's retention answers 404
``expired`` (row still there, or gone with its week) and never ``pending``, the partition
manager makes weeks ahead, drops whole weeks past the longest retention (never one still
holding a waiting event, never the ledger under its floor) and counts what a default
partition caught, which the reactions service exports."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import asyncpg
import httpx
import pytest

from shared.adapters import delivery_ledger, status_store
from shared.adapters.key_store import create_key
from shared.adapters.retention_store import maintain_partitions, tenant_retention
from shared.domain.api_keys import Scope
from shared.domain.partitions import FLOORS, longest, utc_day, week_of
from shared.domain.pkeys import derive_pkey, mint_pkey, mint_timed_pkey
from shared.domain.routing import message_id
from shared.domain.status import Status, StatusWrite
from tests.integration.conftest import GATEWAY, ROOT, eventually, settings

pytestmark = pytest.mark.integration
SECRET = settings.pkey_secret.encode()
EVENT = "EVTpartitions"
DAY = timedelta(days=1)


def parcours(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "services.cli", *args], cwd=ROOT,
                          capture_output=True, text=True)


async def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(parcours, *args)


def pkey_at(tenant: str, at: datetime) -> str:
    return mint_timed_pkey(SECRET, tenant, EVENT, at.timestamp(), os.urandom(12))


@pytest.fixture
async def tenant(pool: asyncpg.Pool) -> AsyncIterator[tuple[str, httpx.AsyncClient]]:
    """A tenant of its own, with an ingestion key."""
    name = f"part-{uuid.uuid4().hex[:10]}"
    await pool.execute("INSERT INTO tenants (tenant_id, name) VALUES ($1, $1)", name)
    async with pool.acquire() as connection:
        key = await create_key(connection, name, Scope.INGEST, "tests")
    async with httpx.AsyncClient(base_url=GATEWAY, timeout=30,
                                 headers={"authorization": f"Bearer {key}"}) as client:
        yield name, client
    for table in ("event_status", "deliveries", "tenant_retention", "contact_history",
                  "message_trace"):
        await pool.execute(f"DELETE FROM {table} WHERE tenant_id = $1", name)
    await pool.execute("DELETE FROM tenants WHERE tenant_id = $1", name)


async def rows(pool: asyncpg.Pool, pkey: str) -> list[asyncpg.Record]:
    return await pool.fetch("SELECT status, accepted_day, tableoid::regclass::text AS part"
                            " FROM event_status WHERE pkey = $1", pkey)


async def write_twice(connection: asyncpg.Connection, pkey: str, tenant: str) -> str:
    """What the stages write for one event, each write made twice (a redelivery)."""
    message = message_id(tenant, pkey)
    for _ in range(2):
        await status_store.record_first_statuses(
            connection, [StatusWrite(pkey, tenant, EVENT, Status.PENDING)])
        await status_store.begin_processing(
            connection, [StatusWrite(pkey, tenant, EVENT, Status.PROCESSING,
                                     message_id=message)])
    claim = [delivery_ledger.Claimable(message, tenant, pkey)]
    assert await delivery_ledger.claim(connection, "email", claim) == {message}
    for _ in range(2):
        await delivery_ledger.settle(connection, [delivery_ledger.Outcome(
            message, True, None, StatusWrite(pkey, tenant, EVENT, Status.PROCESSED))])
        assert await delivery_ledger.claim(connection, "email", claim) == set()
    return message


async def test_a_redelivery_on_either_side_of_a_week_boundary_is_one_row(
        pool: asyncpg.Pool, tenant: tuple[str, httpx.AsyncClient]) -> None:
    name, _ = tenant
    monday = datetime.combine(week_of(datetime.now(UTC).date()), datetime.min.time(), UTC)
    before, after = pkey_at(name, monday - timedelta(seconds=1)), pkey_at(name, monday)
    async with pool.acquire() as connection:
        messages = [await write_twice(connection, p, name) for p in (before, after)]
    first, second = await rows(pool, before), await rows(pool, after)
    assert [(r["status"], r["accepted_day"]) for r in first] == [
        ("processed", monday.date() - DAY)]
    assert [(r["status"], r["accepted_day"]) for r in second] == [("processed", monday.date())]
    assert first[0]["part"] != second[0]["part"]  # two weeks, two partitions
    assert second[0]["part"] == f"event_status_w{monday:%Y%m%d}"
    ledger = await pool.fetch(
        "SELECT message_id, state, attempts, accepted_day FROM deliveries"
        " WHERE message_id = ANY($1::uuid[]) ORDER BY accepted_day",
        [uuid.UUID(m) for m in messages])
    assert [(r["state"], r["attempts"], r["accepted_day"]) for r in ledger] == [
        ("sent", 1, monday.date() - DAY), ("sent", 1, monday.date())]


async def test_a_pkey_without_a_time_keeps_the_week_of_its_first_write(
        pool: asyncpg.Pool, tenant: tuple[str, httpx.AsyncClient]) -> None:
    """A pKey derived from a Kafka producer's eventKey (or minted before migration 040)
    names no day: a later write finds the row where the first one put it, even in an
    earlier week (written there directly, as a first write last week would have)."""
    name, _ = tenant
    derived = derive_pkey(SECRET, name, EVENT, f"order-{uuid.uuid4().hex}")
    old = mint_pkey(SECRET, name, EVENT, os.urandom(12))
    last_week = datetime.now(UTC).date() - timedelta(days=7)
    await pool.execute(
        "INSERT INTO event_status (pkey, tenant_id, event_id, status, rank, accepted_day)"
        " VALUES ($1, $2, $3, 'pending', 0, $4)", old, name, EVENT, last_week)
    async with pool.acquire() as connection:
        for pkey in (derived, old):
            await write_twice(connection, pkey, name)
    assert [(r["status"], r["accepted_day"]) for r in await rows(pool, old)] == [
        ("processed", last_week)]
    assert [r["status"] for r in await rows(pool, derived)] == ["processed"]
    journey = str(uuid.uuid4())  # a journey's message: no pKey at all
    async with pool.acquire() as connection:
        claim = [delivery_ledger.Claimable(journey, name, None)]
        assert await delivery_ledger.claim(connection, "email", claim) == {journey}
        await delivery_ledger.settle(connection, [
            delivery_ledger.Outcome(journey, True, None, None)])
        assert await delivery_ledger.claim(connection, "email", claim) == set()
    assert await pool.fetchval("SELECT count(*) FROM deliveries WHERE message_id = $1",
                               uuid.UUID(journey)) == 1


async def test_a_status_past_its_retention_is_expired_never_pending(
        pool: asyncpg.Pool, tenant: tuple[str, httpx.AsyncClient]) -> None:
    name, client = tenant
    now = datetime.now(UTC)
    done_old, gone_old, waiting_old, fresh, recent_done = (
        pkey_at(name, now - timedelta(days=d)) for d in (60, 60, 60, 0, 20))
    async with pool.acquire() as connection:
        await status_store.record_statuses(connection, [
            StatusWrite(done_old, name, EVENT, Status.PROCESSED),
            StatusWrite(waiting_old, name, EVENT, Status.PENDING, "scheduled for later"),
            StatusWrite(recent_done, name, EVENT, Status.PROCESSED)])

    async def get(pkey: str) -> httpx.Response:
        return await client.get(f"/v1/events/{EVENT}/{pkey}")

    for pkey in (done_old, gone_old):  # its row past 35 days, or its week already dropped
        answer = await get(pkey)
        assert answer.status_code == 404 and answer.json()["status"] == "expired", answer.text
    assert (await get(waiting_old)).json()["status"] == "pending"  # still waiting: answered
    assert (await get(fresh)).json()["status"] == "pending"  # issued, not recorded yet
    assert (await get(recent_done)).json()["status"] == "processed"
    unknown = await get("a" * 39)  # never issued: as before
    assert unknown.status_code == 404 and "status" not in unknown.json()
    # cancelling an expired event writes nothing back
    cancelled = await client.delete(f"/v1/events/{EVENT}/{gone_old}")
    assert cancelled.status_code == 404 and cancelled.json()["status"] == "expired"
    assert await rows(pool, gone_old) == []

    # the tenant's own retention: 10 days (recent_done is 20 days old), then for ever
    shown = await cli("maintenance", "retention", name, "--statuses-days", "10")
    assert shown.returncode == 0 and f"{name}: statuses 10 days" in shown.stdout, shown
    answer = await get(recent_done)
    assert answer.status_code == 404 and answer.json()["status"] == "expired"
    assert (await cli("maintenance", "retention", name, "--statuses-days", "0")).returncode == 0
    assert (await get(done_old)).json()["status"] == "processed"
    under = await cli("maintenance", "retention", name, "--deliveries-days", "3")
    assert under.returncode == 2 and "floor of 9 days" in under.stdout


@pytest.fixture
async def scratch(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """The two partitioned tables (as migration 040 makes them) and the tables the manager
    reads, in a schema of their own first on the search path: real partitions to create
    and drop, none of the shared ones."""
    schema = f"parts_{uuid.uuid4().hex[:8]}"
    async with pool.acquire() as connection:
        await connection.execute(f"CREATE SCHEMA {schema}")
        await connection.execute(f"SET search_path = {schema}, public")
        for table, key in (("event_status", "pkey"), ("deliveries", "message_id")):
            await connection.execute(
                f"CREATE TABLE {table} (LIKE public.{table} INCLUDING DEFAULTS,"
                f" PRIMARY KEY ({key}, accepted_day)) PARTITION BY RANGE (accepted_day)")
            await connection.execute(f"CREATE TABLE {table}_default PARTITION OF {table}"
                                     " DEFAULT")
        for table in ("tenant_retention", "held_events", "held_messages", "send_retries"):
            await connection.execute(f"CREATE TABLE {table} (LIKE public.{table}"
                                     " INCLUDING DEFAULTS)")
        try:
            yield connection
        finally:
            await connection.execute("RESET search_path")
            await connection.execute(f"DROP SCHEMA {schema} CASCADE")


def parts(names: list[str]) -> list[str]:
    return sorted(n for n in names if not n.endswith("_default"))


async def partitions(connection: asyncpg.Connection, table: str) -> list[str]:
    return parts([r["relname"] for r in await connection.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = $1::regclass", table)])


async def test_the_manager_makes_weeks_ahead_and_drops_whole_weeks(
        scratch: asyncpg.Connection) -> None:
    today = date(2026, 12, 4)  # a Friday: weeks of 11-30, 12-07 and 12-14 ahead
    defaults = {"event_status": 35, "deliveries": 1}  # the ledger's floor is 9 days
    ten_weeks_ago = today - timedelta(days=70)
    report = await maintain_partitions(scratch, defaults, ten_weeks_ago, ahead=10)
    assert report is not None
    assert report.created["event_status"][0] == "event_status_w20260921"
    assert len(await partitions(scratch, "event_status")) == 11
    for week in range(11):
        day = week_of(ten_weeks_ago) + timedelta(days=7 * week)
        await scratch.execute("INSERT INTO event_status (pkey, tenant_id, event_id, status,"
                              " rank, accepted_day) VALUES ($1, 't', 'EVTa', 'processed', 3,"
                              " $2)", f"k{week}", day)
        await scratch.execute("INSERT INTO deliveries (message_id, tenant_id, channel, state,"
                              " accepted_day) VALUES ($1, 't', 'email', 'sent', $2)",
                              uuid.uuid4(), day)
    # a write far ahead of every week: the default partition catches it, counted
    await scratch.execute("INSERT INTO event_status (pkey, tenant_id, event_id, status, rank,"
                          " accepted_day) VALUES ('far', 't', 'EVTa', 'pending', 0, $1)",
                          today + timedelta(days=400))
    # an event accepted 2026-10-07 still scheduled: its week and the later ones stay
    await scratch.execute("INSERT INTO held_events (pkey, tenant_id, event_id, trigger)"
                          " VALUES ('k2', 't', 'EVTa', $1::jsonb)",
                          {"acceptedAt": datetime(2026, 10, 7, tzinfo=UTC).timestamp()})
    report = await maintain_partitions(scratch, defaults, today)
    assert report is not None
    assert report.kept_days == {"event_status": 35, "deliveries": 9}
    assert report.default_rows == {"event_status": 1, "deliveries": 0}
    assert report.dropped["event_status"] == ["event_status_w20260921",
                                              "event_status_w20260928"]
    assert report.dropped["deliveries"] == ["deliveries_w20260921", "deliveries_w20260928"]
    await scratch.execute("DELETE FROM held_events")
    report = await maintain_partitions(scratch, defaults, today)
    assert report is not None
    # statuses: every week ending by 10-30 (35 days) goes, the week of 10-26 stays
    assert report.dropped["event_status"] == [
        f"event_status_w2026{d}" for d in ("1005", "1012", "1019")]
    # the ledger keeps 9 days at least (its floor): weeks ending by 11-25 go
    assert report.dropped["deliveries"] == [
        f"deliveries_w2026{d}" for d in ("1005", "1012", "1019", "1026", "1102", "1109",
                                         "1116")]
    assert parts(await partitions(scratch, "deliveries"))[0] == "deliveries_w20261123"
    # the weeks of 10-26 to 11-30 keep a row each, and the default its far one
    assert await scratch.fetchval("SELECT count(*) FROM event_status") == 7
    assert report.weeks_ahead == {"event_status": 2, "deliveries": 2}
    # a row the default partition caught moves into its week when that week is made
    await scratch.execute("INSERT INTO deliveries (message_id, tenant_id, channel, state,"
                          " accepted_day) VALUES ($1, 't', 'email', 'sent', '2026-12-22')",
                          uuid.uuid4())
    report = await maintain_partitions(scratch, defaults, today, ahead=3)
    assert report is not None and report.created["deliveries"] == ["deliveries_w20261221"]
    assert report.default_rows["deliveries"] == 0
    assert await scratch.fetchval("SELECT count(*) FROM deliveries_w20261221") == 1


async def test_the_shared_tables_have_weeks_ahead_and_the_metric_is_exported(
        pool: asyncpg.Pool) -> None:
    done = await cli("maintenance", "partitions")
    assert done.returncode == 0, done.stderr
    printed = done.stdout
    # What a table keeps is the longest retention of any tenant: another test's tenant
    # may hold one of its own meanwhile (the fuzzer's, kept for the session, may have
    # set "for ever"), so the figure expected is computed from what is stored.
    async with pool.acquire() as connection:
        tenants = await tenant_retention(connection)
    kept = longest(settings.retention_event_status_days, (v[0] for v in tenants.values()),
                   FLOORS["event_status"])
    expected = "for ever" if kept is None else f"{kept} days"
    if not tenants:
        assert expected == "35 days"  # the setting's default
    assert f"event_status   kept {expected}" in printed and "2 weeks ahead" in printed, printed
    monday = week_of(datetime.now(UTC).date())
    for table in ("event_status", "deliveries"):
        names = await pool.fetch(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = $1::regclass", table)
        made = {r["relname"] for r in names}
        for week in range(3):
            assert f"{table}_w{monday + timedelta(days=7 * week):%Y%m%d}" in made

    async def exported() -> str | None:
        async with httpx.AsyncClient(timeout=5) as client:
            text = (await client.get(
                f"http://127.0.0.1:{settings.reactions_metrics_port}/metrics")).text
        return text if 'parcours_partition_default_rows{table="event_status"}' in text else None

    text = await eventually(exported, "the reactions service's partition metrics", 30)
    assert 'parcours_partition_weeks_ahead{table="deliveries"} 2.0' in text


async def test_sql_and_python_read_the_same_day_from_a_pkey(pool: asyncpg.Pool) -> None:
    """Migration 040's pkey_day() and shared/domain's utc_day(pkey_time()) agree, on days'
    edges and on random seconds from 1970 to 2106; a pKey without a time has none."""
    rng = random.Random(40)
    seconds = [0, 86399, 86400, 2**32 - 1,
               int(datetime(2026, 12, 6, 23, 59, 59, tzinfo=UTC).timestamp()),
               *(rng.randrange(2**32) for _ in range(2000))]
    pkeys = [mint_timed_pkey(SECRET, "t", EVENT, s, os.urandom(12)) for s in seconds]
    days = await pool.fetch("SELECT pkey_day(p) AS d FROM unnest($1::text[]) WITH ORDINALITY"
                            " AS u(p, n) ORDER BY n", pkeys)
    assert [r["d"] for r in days] == [utc_day(s) for s in seconds]
    assert await pool.fetchval("SELECT pkey_day($1)", mint_pkey(SECRET, "t", EVENT,
                                                                os.urandom(12))) is None
    assert await pool.fetchval("SELECT pkey_day(NULL)") is None


async def test_pkey_day_is_inlined_into_the_statements_that_call_it(pool: asyncpg.Pool) -> None:
    """Migration 049: run as a function call of its own, pkey_day cost about ten times its
    inlined expression, once for every claim and every status written."""
    plan = "\n".join(r[0] for r in await pool.fetch(
        "EXPLAIN VERBOSE SELECT pkey_day(p) FROM unnest($1::text[]) AS u(p)", ["x"]))
    assert "strpos" in plan and "pkey_day(" not in plan, plan
