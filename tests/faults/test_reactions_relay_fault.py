"""The reactions relay is the reactions service's alone (services/reactions/relay.py): the
services that record reactions hold no Kafka client for them. Here it is killed with
``kill -9`` while clicks flow, and started again: every click answered 302 is a reaction
recorded, every recorded reaction reaches ``parcours.reactions.v1`` (at least once: a
round killed after producing and before committing produces its rows again, and the
consumers deduplicate by reaction id) and is traced once; nothing stays in the outbox.
Clicks of messages of a throwaway tenant (tracked messages inserted as the bench does),
each link clicked once, 200 a second, before, during and after the outage.

And PostgreSQL stopped while clicks flow (make test-faults): a click is answered only once
its reaction is committed (the look-up and the record are one statement), so every click
answered 302 has its reaction, once; the others are 503 and the person may click again;
the tracking service's connection comes back with PostgreSQL and the clicks after it are
302 again."""

from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg
import httpx
import orjson
import pytest

from shared.domain.tracking_links import click_url, parse_keyring
from shared.settings import get_settings
from shared.topics import REACTIONS
from tests.integration.conftest import end_offsets, eventually, stack, topic_reader

pytestmark = pytest.mark.disruptive
settings = get_settings()
TRACKING = f"http://127.0.0.1:{settings.tracking_port}"
RATE = 200  # clicks a second
BEFORE_S, AWAY_S, AFTER_S = 2.0, 4.0, 2.0
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"


async def _seed(pool: asyncpg.Pool, tenant: str, count: int) -> list[str]:
    """``count`` tracked messages of ``tenant``, one link each; their click URLs."""
    messages = [uuid.uuid4() for _ in range(count)]
    await pool.execute(
        "INSERT INTO tracked_messages (tenant_id, message_id, channel, profile_id, origin,"
        " links, sent_at) SELECT $1, m, 'email', 'p-' || m::text,"
        " '{\"kind\": \"event\", \"eventId\": \"EVTfault\", \"pKey\": \"k\"}',"
        " ARRAY['https://shop.example/relay-fault'], now() - interval '1 hour'"
        " FROM unnest($2::uuid[]) AS m", tenant, messages)
    keys = parse_keyring(settings.tracking_keys.get_secret_value())
    return [click_url(TRACKING, keys, tenant, str(m), 0) for m in messages]


async def _click_steadily(client: httpx.AsyncClient, urls: list[str], until: float,
                          answered: dict[str, int] | None = None) -> list[int]:
    """Click ``urls`` in turn at ``RATE`` a second until ``until``; each answer's status
    (and, in ``answered``, by URL)."""
    statuses: list[int] = []
    pending: set[asyncio.Task[None]] = set()
    began = time.monotonic()

    async def click(url: str) -> None:
        answer = await client.get(url, headers={"User-Agent": BROWSER})
        statuses.append(answer.status_code)
        if answered is not None:
            answered[url] = answer.status_code

    for n, url in enumerate(urls):
        due = began + n / RATE
        if due >= until:
            break
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        task = asyncio.create_task(click(url))
        pending.add(task)
        task.add_done_callback(pending.discard)
    await asyncio.gather(*pending)
    return statuses


async def _produced_ids(before: dict[int, int], tenant: str, expected: int
                        ) -> set[str]:
    """The reaction ids of ``tenant`` on the topic since ``before``, read until there are
    ``expected`` of them (or the deadline)."""
    ids: set[str] = set()
    async with topic_reader(REACTIONS, before) as consumer:
        end = time.monotonic() + 60
        while len(ids) < expected and time.monotonic() < end:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    value = orjson.loads(record.value)
                    if value.get("tenant") == tenant:
                        ids.add(value["reactionId"])
    return ids


async def test_kill_9_of_the_reactions_relay_while_clicks_flow(pool: asyncpg.Pool) -> None:
    tenant = f"relay-fault-{uuid.uuid4().hex[:8]}"
    seconds = BEFORE_S + AWAY_S + AFTER_S
    urls = await _seed(pool, tenant, int(RATE * seconds) + RATE)
    before = await end_offsets(REACTIONS)
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            clicking = asyncio.create_task(
                _click_steadily(client, urls, time.monotonic() + seconds))
            await asyncio.sleep(BEFORE_S)
            await asyncio.to_thread(stack, "kill", "reactions")
            await asyncio.sleep(AWAY_S)  # clicks recorded meanwhile wait in the outbox
            waiting = await pool.fetchval(
                "SELECT count(*) FROM reaction_outbox WHERE tenant_id = $1", tenant)
            await asyncio.to_thread(stack, "start", "reactions")
            statuses = await clicking
        assert statuses and set(statuses) == {302}, sorted(set(statuses))
        assert waiting > 0, "nothing waited in the outbox while the relay was away"
        recorded = await pool.fetchval(
            "SELECT count(*) FROM reactions WHERE tenant_id = $1", tenant)
        assert recorded == len(statuses)
        produced = await _produced_ids(before, tenant, recorded)
        stored = {str(r["reaction_id"]) for r in await pool.fetch(
            "SELECT reaction_id FROM reactions WHERE tenant_id = $1", tenant)}
        assert produced == stored, (len(produced), len(stored))

        async def all_traced() -> bool:
            traced = await pool.fetchval(
                "SELECT count(DISTINCT verdicts ->> 'reactionId') FROM message_trace"
                " WHERE tenant_id = $1 AND stage = 'reaction'", tenant)
            return traced == recorded

        await eventually(all_traced, "every reaction traced", 60)
        assert await pool.fetchval(
            "SELECT count(*) FROM message_trace WHERE tenant_id = $1 AND stage = 'reaction'",
            tenant) == recorded, "a reaction traced twice"
        assert await pool.fetchval(
            "SELECT count(*) FROM reaction_outbox WHERE tenant_id = $1", tenant) == 0
        print(f"\nrelay kill -9: {len(statuses)} clicks answered, {waiting} waited in the"
              f" outbox while it was away, {len(produced)} produced, {recorded} traced")
    finally:
        for table in ("message_trace", "reactions", "reaction_outbox", "tracked_messages"):
            await pool.execute(f"DELETE FROM {table} WHERE tenant_id = $1", tenant)


@pytest.mark.faults
async def test_postgres_stopped_while_clicks_flow(pool: asyncpg.Pool) -> None:
    tenant = f"pg-fault-{uuid.uuid4().hex[:8]}"
    seconds = BEFORE_S + AWAY_S + AFTER_S + 4.0  # PostgreSQL's start and the reconnection
    urls = await _seed(pool, tenant, int(RATE * seconds) + RATE)
    answered: dict[str, int] = {}
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            clicking = asyncio.create_task(
                _click_steadily(client, urls, time.monotonic() + seconds, answered))
            await asyncio.sleep(BEFORE_S)
            await asyncio.to_thread(stack, "stop", "postgres")
            await asyncio.sleep(AWAY_S)
            await asyncio.to_thread(stack, "start", "postgres")
            statuses = await clicking
        assert set(statuses) <= {302, 503}, sorted(set(statuses))
        assert statuses.count(503) > 0, "no click met the outage"
        clicked = [u for u in urls if u in answered]  # in the order they were sent
        assert all(answered[u] == 302 for u in clicked[-RATE:]), "not recovered"

        recorded = {str(r["message_id"]) for r in await pool.fetch(
            "SELECT message_id FROM reactions WHERE tenant_id = $1", tenant)}
        keys = parse_keyring(settings.tracking_keys.get_secret_value())
        recorded_urls = {click_url(TRACKING, keys, tenant, m, 0) for m in recorded}
        redirected = [u for u in clicked if answered[u] == 302]
        missing = [u for u in redirected if u not in recorded_urls]
        assert not missing, f"{len(missing)} clicks answered 302 with no reaction stored"
        # A 503 may still have committed (the answer lost with the connection): at most
        # the clicks in flight when PostgreSQL went.
        assert len(recorded) - len(redirected) <= 64
        assert await pool.fetchval(
            "SELECT count(*) FROM reactions WHERE tenant_id = $1", tenant) == len(recorded)
        print(f"\npostgres stopped: {len(statuses)} clicks, {len(redirected)} answered 302"
              f" (each recorded), {statuses.count(503)} answered 503, {len(recorded)}"
              f" reactions stored")
    finally:
        await eventually(lambda: _answers(pool), "PostgreSQL answers again", 30)
        for table in ("message_trace", "reactions", "reaction_outbox", "tracked_messages"):
            await pool.execute(f"DELETE FROM {table} WHERE tenant_id = $1", tenant)


async def _answers(pool: asyncpg.Pool) -> bool:
    try:
        return await pool.fetchval("SELECT true") is True
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return False
