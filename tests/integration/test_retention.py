"""Retention (issue 11) on the real PostgreSQL and tracking service: `parcours maintenance
purge` deletes, in small batches, trace rows, contact history, relayed reactions and
tracked messages older than their settings (defaults: 90, 180, 180, 180 days) and
nothing younger; a tenant whose fatigue rule counts 300 days keeps 301 days of contact
history; a reaction not yet relayed is never deleted; a tracked link older than its
days answers a 404 "link expired" page (never a redirect) before and after the purge."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from shared.domain.tracking_links import click_url, parse_keyring
from tests.integration.conftest import ROOT, eventually, settings

pytestmark = pytest.mark.integration
TRACKING = f"http://127.0.0.1:{settings.tracking_port}"
DAY = timedelta(days=1)


@pytest.fixture
async def tenants(pool: asyncpg.Pool) -> AsyncIterator[tuple[str, str]]:
    """A tenant without rules, and one whose fatigue rule counts 300 days back."""
    plain, counting = (f"ret-{uuid.uuid4().hex[:10]}" for _ in range(2))
    for name in (plain, counting):
        await pool.execute("INSERT INTO tenants (tenant_id, name) VALUES ($1, $1)", name)
    await pool.execute(
        "INSERT INTO delivery_rules (tenant_id, rule_id, kind, definition)"
        " VALUES ($1, 'r1', 'fatigue', $2::jsonb)", counting, {
            "kind": "fatigue", "name": "3 in 300 days", "enabled": False, "max": 3,
            "period": "P300D", "channels": ["email"]})
    yield plain, counting
    for name in (plain, counting):
        for table in ("message_trace", "contact_history", "reactions", "tracked_messages",
                      "delivery_rules"):
            await pool.execute(f"DELETE FROM {table} WHERE tenant_id = $1", name)
        await pool.execute("DELETE FROM tenants WHERE tenant_id = $1", name)


async def _trace(pool: asyncpg.Pool, tenant: str, age: timedelta) -> uuid.UUID:
    message = uuid.uuid4()
    await pool.execute("INSERT INTO message_trace (tenant_id, message_id, at, stage, outcome)"
                       " VALUES ($1, $2, now() - $3::interval, 'decided', 'send')",
                       tenant, message, age)
    return message


async def _contact(pool: asyncpg.Pool, tenant: str, age: timedelta) -> uuid.UUID:
    message = uuid.uuid4()
    await pool.execute(
        "INSERT INTO contact_history (tenant_id, message_id, profile_id, channel, origin_kind,"
        " origin_id, transactional, contact_at, outcome) VALUES ($1, $2, 'p1', 'email',"
        " 'event', 'EVTretention', false, now() - $3::interval, 'delivered')",
        tenant, message, age)
    return message


async def _reaction(connection: asyncpg.Connection | asyncpg.Pool, tenant: str,
                    age: timedelta, relayed: bool) -> uuid.UUID:
    """A reaction recorded ``age`` ago; not ``relayed``: still in the outbox."""
    message, reaction = uuid.uuid4(), uuid.uuid4()
    await connection.execute(
        "INSERT INTO reactions (tenant_id, reaction_id, message_id, kind, at, record,"
        " recorded_at) VALUES ($1, $2, $3, 'opened', now() - $4::interval,"
        " '{}'::json, now() - $4::interval)", tenant, reaction, message, age)
    if not relayed:
        await connection.execute(
            "INSERT INTO reaction_outbox (tenant_id, reaction_id, recorded_at)"
            " VALUES ($1, $2, now() - $3::interval)", tenant, reaction, age)
    return message


async def _tracked(pool: asyncpg.Pool, tenant: str, age: timedelta) -> uuid.UUID:
    message = uuid.uuid4()
    await pool.execute(
        "INSERT INTO tracked_messages (tenant_id, message_id, channel, address, origin, links,"
        " sent_at) VALUES ($1, $2, 'email', 'old@example.com', $3::jsonb, $4,"
        " now() - $5::interval)", tenant, message, {"kind": "event", "eventId": "EVTretention",
                                           "pKey": "k"},
        ["https://shop.example/old"], age)
    return message


async def _left(pool: asyncpg.Pool, table: str, tenant: str, messages: list[uuid.UUID]
                ) -> set[uuid.UUID]:
    rows = await pool.fetch(f"SELECT message_id FROM {table} WHERE tenant_id = $1"
                            " AND message_id = ANY($2::uuid[])", tenant, messages)
    return {row["message_id"] for row in rows}


def _purge(batch: int = 2) -> str:
    """The CLI, as a cron job or an operator runs it; batches of 2 rows, so each table
    takes several."""
    result = subprocess.run(
        [sys.executable, "-m", "services.cli", "maintenance", "purge", "--batch", str(batch)],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    if result.returncode == 3:  # the reactions service's own purge held the lock
        return ""
    assert result.returncode == 0, result.stderr
    return result.stdout


async def _purged() -> str:
    async def attempt() -> str:
        return _purge()

    return await eventually(attempt, "a purge that got the lock", 30)


async def _clicked(tenant: str, message: uuid.UUID) -> httpx.Response:
    keys = parse_keyring(settings.tracking_keys.get_secret_value())
    async with httpx.AsyncClient(timeout=10, follow_redirects=False) as http:
        return await http.get(click_url(TRACKING, keys, tenant, str(message), 0),
                              headers={"user-agent": "Mozilla/5.0 (X11; Linux) Firefox/140"})


def _expired(response: httpx.Response) -> bool:
    return (response.status_code == 404 and "location" not in response.headers
            and "This link has expired" in response.text)


async def test_the_purge_deletes_only_what_retention_no_longer_keeps(
        pool: asyncpg.Pool, tenants: tuple[str, str]):
    plain, counting = tenants
    traces = [await _trace(pool, plain, age) for age in (100 * DAY, 91 * DAY, 89 * DAY, DAY)]
    history = [await _contact(pool, plain, age) for age in (400 * DAY, 200 * DAY, 181 * DAY,
                                                           179 * DAY, DAY)]
    counted = [await _contact(pool, counting, age) for age in (400 * DAY, 302 * DAY,
                                                               250 * DAY, 200 * DAY, DAY)]
    reactions = [await _reaction(pool, plain, age, True) for age in (300 * DAY, 181 * DAY,
                                                                     179 * DAY)]
    tracked = [await _tracked(pool, plain, age) for age in (200 * DAY, 181 * DAY, 10 * DAY)]

    # a reaction recorded long ago but not relayed yet: its outbox row held locked, so the
    # stack's relays skip it (SKIP LOCKED); the purge must leave it
    holder = await pool.acquire()
    try:
        transaction = holder.transaction()
        await transaction.start()
        unrelayed = await _reaction(holder, plain, 400 * DAY, False)
        await transaction.commit()
        transaction = holder.transaction()
        await transaction.start()
        await holder.execute("SELECT 1 FROM reaction_outbox o JOIN reactions r"
                             " USING (tenant_id, reaction_id) WHERE r.message_id = $1"
                             " FOR UPDATE OF o", unrelayed)
        out = await _purged()
        assert await _left(pool, "reactions", plain, [unrelayed]) == {unrelayed}
        await holder.execute("DELETE FROM reaction_outbox o USING reactions r WHERE"
                             " r.message_id = $1 AND (o.tenant_id, o.reaction_id)"
                             " = (r.tenant_id, r.reaction_id)", unrelayed)
        await holder.execute("DELETE FROM reactions WHERE message_id = $1", unrelayed)
        await transaction.commit()
    finally:
        await pool.release(holder)

    assert "message_trace" in out and "rows deleted" in out
    assert await _left(pool, "message_trace", plain, traces) == set(traces[2:])
    assert await _left(pool, "contact_history", plain, history) == set(history[3:])
    # the 300-day rule (disabled: it may be switched back on) keeps 301 days
    assert await _left(pool, "contact_history", counting, counted) == set(counted[2:])
    assert await _left(pool, "reactions", plain, reactions) == {reactions[2]}
    assert await _left(pool, "tracked_messages", plain, tracked) == {tracked[2]}

    again = await _purged()  # nothing left to delete of ours; the rest stays
    assert await _left(pool, "message_trace", plain, traces) == set(traces[2:])
    assert await _left(pool, "contact_history", counting, counted) == set(counted[2:])
    assert again


async def test_an_old_tracked_link_is_an_expired_page_never_a_redirect(
        pool: asyncpg.Pool, tenants: tuple[str, str]):
    plain, _ = tenants
    old = await _tracked(pool, plain, 181 * DAY)  # older than the 180 days links work
    recent = await _tracked(pool, plain, 179 * DAY)

    response = await _clicked(plain, old)
    assert _expired(response), (response.status_code, response.headers, response.text[:200])
    assert response.headers["cache-control"].startswith("no-store")
    recorded = await pool.fetchval(
        "SELECT count(*) FROM reactions WHERE tenant_id = $1 AND message_id = $2", plain, old)
    assert recorded == 0
    redirect = await _clicked(plain, recent)
    assert redirect.status_code == 302
    assert redirect.headers["location"] == "https://shop.example/old"
    assert await pool.fetchval(  # recorded before the answer went
        "SELECT count(*) FROM reactions WHERE tenant_id = $1 AND message_id = $2",
        plain, recent) == 1

    await _purged()
    assert await _left(pool, "tracked_messages", plain, [old, recent]) == {recent}
    after: Any = await _clicked(plain, old)  # its row gone: the same page
    assert _expired(after)


async def test_the_reactions_service_runs_the_purge_and_counts_it():
    """The periodic job is wired: the service purged (or found another purge holding the
    lock) since it started, and exposes the rows purged by table."""
    url = f"http://127.0.0.1:{settings.reactions_metrics_port}/metrics"

    async def ran() -> str | None:
        async with httpx.AsyncClient(timeout=5) as http:
            text = (await http.get(url)).text
        runs = [line for line in text.splitlines()
                if line.startswith("parcours_retention_purges_total{")
                and not line.endswith(" 0.0")]
        return text if runs else None

    text = await eventually(ran, "a retention purge in the reactions service", 20)
    assert "# TYPE parcours_retention_purged_rows_total counter" in text
    assert "parcours_retention_last_purge_seconds" in text
