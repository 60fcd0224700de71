"""Erasure finds the statuses and delivery replies quoting a profile's addresses through
the trigram indexes (migration 012), not by reading every row of the tenant, and still
redacts the address in any case."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from shared.adapters import erasure, event_redaction
from shared.adapters.event_redaction import REDACT_REASONS, REDACT_REPLIES
from shared.domain.partitions import partition_name, week_of

ROWS = 100_000  # enough that reading them all costs more than the index
EMAIL, PHONE = "Ada.Lovelace+x@Example.org", "+447700900123"
TOKEN = "fcm:dQw4w9WgXcQ:APA91bH" + "x7Ke-9_Zq" * 16
QUOTING = [f"smtp 550: 5.1.1 <{EMAIL.upper()}>: Recipient rejected",
           f"250 ok: queued for {EMAIL.lower()} and again {EMAIL}",
           f"provider 400: invalid phone {PHONE}",
           f"provider 410: token {TOKEN} unregistered"]
REDACTED = ["smtp 550: 5.1.1 <[erased]>: Recipient rejected",
            "250 ok: queued for [erased] and again [erased]",
            "provider 400: invalid phone [erased]",
            "provider 410: token [erased] unregistered"]


def _text(i: int) -> str | None:
    """Texts like the stages': none, a fixed reason, another profile's address, a reference."""
    return (None, "expiration passed before processing",
            f"smtp 550: 5.1.1 <user{i}@example.org>: Recipient rejected",
            f"250 2.0.0 Ok: queued as {i:010X}")[i % 4]


@pytest.fixture
async def tenant(pool: asyncpg.Pool) -> AsyncIterator[str]:
    name = f"redaction-{uuid.uuid4().hex[:8]}"
    statuses = [(f"{name}-{i}", name, "EVTx", "ignored", 3, _text(i)) for i in range(ROWS)]
    deliveries = [(uuid.uuid4(), name, f"{name}-{i}", "email", "sent", _text(i))
                  for i in range(ROWS)]
    for i, text in enumerate(QUOTING):
        statuses[i * 1000] = (f"{name}-{i * 1000}", name, "EVTx", "deliveryFailed", 3, text)
        deliveries[i * 1000] = (uuid.uuid4(), name, f"{name}-{i}", "email", "failed", text)
    async with pool.acquire() as connection:
        await connection.copy_records_to_table(
            "event_status", records=statuses,
            columns=["pkey", "tenant_id", "event_id", "status", "rank", "reason"])
        await connection.copy_records_to_table(
            "deliveries", records=deliveries,
            columns=["message_id", "tenant_id", "pkey", "channel", "state", "detail"])
        # What autovacuum does after such a load: the index's pending entries merged in,
        # the tables' statistics taken.
        for table in ("event_status", "deliveries"):  # weekly partitions (migration 040)
            index = await _week_index(connection, table)
            await connection.execute("SELECT gin_clean_pending_list($1::regclass)", index)
        await connection.execute("ANALYZE event_status")
        await connection.execute("ANALYZE deliveries")
        await connection.execute(
            "INSERT INTO profiles (tenant_id, profile_id, email, mobile_phone,"
            " push_registrations) VALUES ($1, 'ada', $2, $3, $4)", name, EMAIL, PHONE,
            [{"registrationToken": TOKEN, "platform": "android"}])
    try:
        yield name
    finally:
        async with pool.acquire() as connection:
            for table in ("event_status", "deliveries", "profiles"):
                await connection.execute(f"DELETE FROM {table} WHERE tenant_id = $1", name)


async def _week_index(connection: asyncpg.Connection, table: str) -> str:
    """The trigram index of this week's partition of ``table``, where the rows went."""
    week = partition_name(table, week_of(datetime.now(UTC).date()))
    name: str = await connection.fetchval(
        "SELECT indexname FROM pg_indexes WHERE tablename = $1 AND indexdef LIKE '%gin%'",
        week)
    return name


def _scans(node: dict[str, Any]) -> set[tuple[str, str]]:
    found = {(node["Node Type"], node.get("Index Name", node.get("Relation Name", "")))}
    for child in node.get("Plans", []):
        found |= _scans(child)
    return found


async def _plan(connection: asyncpg.Connection, query: str, tenant: str) -> set[tuple[str, str]]:
    pattern = event_redaction._pattern([EMAIL, PHONE, TOKEN])
    plan = await connection.fetchval(f"EXPLAIN (FORMAT JSON) {query}", tenant, pattern, "x")
    return _scans((json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"])


async def test_erasure_finds_quoted_addresses_through_the_trigram_indexes(
    pool: asyncpg.Pool, tenant: str
) -> None:
    async with pool.acquire() as connection:
        for query, table in ((REDACT_REASONS, "event_status"), (REDACT_REPLIES, "deliveries")):
            index = await _week_index(connection, table)
            table = partition_name(table, week_of(datetime.now(UTC).date()))
            # A prepared statement may switch to a plan made without the pattern's value.
            for mode in ("force_custom_plan", "force_generic_plan"):
                await connection.execute(f"SET plan_cache_mode = {mode}")
                scans = await _plan(connection, query, tenant)
                assert ("Bitmap Index Scan", index) in scans, (mode, scans)
                assert ("Seq Scan", table) not in scans, (mode, scans)
        await connection.execute("RESET plan_cache_mode")

        removed = await erasure.erase_profile(connection, tenant, "ada")
        assert removed["statusReasons"] == len(QUOTING)
        assert removed["deliveryReplies"] == len(QUOTING)
        reasons = await connection.fetch(
            "SELECT pkey, reason FROM event_status WHERE tenant_id = $1"
            " AND status = 'deliveryFailed' ORDER BY pkey", tenant)
        replies = await connection.fetch(
            "SELECT detail FROM deliveries WHERE tenant_id = $1 AND state = 'failed'", tenant)
        others = await connection.fetchval(
            "SELECT count(*) FROM event_status WHERE tenant_id = $1"
            " AND reason LIKE '%user%@example.org%'", tenant)
    assert sorted(r["reason"] for r in reasons) == sorted(REDACTED)
    assert sorted(r["detail"] for r in replies) == sorted(REDACTED)
    assert others == ROWS // 4  # other profiles' addresses are left alone
