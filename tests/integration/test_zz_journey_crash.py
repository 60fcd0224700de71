"""``kill -9`` of the journey engine while profiles enter, wait and receive events: after
its restart every timer has fired exactly once and every instance took exactly one path —
the awaited event's or the timeout's — and sent exactly one email."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import httpx
import orjson
import pytest

from tests.integration.conftest import BULK_SINK, eventually, mails_to, stack, unique_email
from tests.integration.test_journey_engine import Tenant, publish_version
from tests.integration.test_journey_engine import tenant as tenant  # the fixture
from tests.integration.test_journey_messages import journey_message

pytestmark = pytest.mark.disruptive

PEOPLE = 200
SPEED = 1200  # an hour in 3 s
PING = {"fields": [{"id": "customerId", "type": "string"}], "profileKey": "customerId"}
TEMPLATE = {"subject": "{{ profile.first_name }}", "html": "<p>hi</p>", "text": "hi"}


async def test_kill_9_of_the_engine_mid_journey_fires_each_timer_once(
        pool: asyncpg.Pool, tenant: Tenant) -> None:
    for message in ("JMSpinged", "JMSlate"):
        await journey_message(tenant.admin, message, "email", TEMPLATE)
    assert (await tenant.admin.put("/journey-events/JEVping", json=PING)).status_code == 201
    audience = await tenant.admin.post("/audiences", json={
        "name": "crash", "definition": {"path": "city", "op": "eq", "value": "Crashville"}})
    assert audience.status_code == 201, audience.text
    emails = {f"c{n:03d}": unique_email(f"jcrash{n}") for n in range(PEOPLE)}
    for profile_id, email in emails.items():
        written = await tenant.profiles.put(f"/v1/profiles/{profile_id}", json={
            "email": email, "firstName": profile_id, "city": "Crashville",
            "consent": {"email": {"marketing": "opted-in"}}})
        assert written.status_code == 201, written.text
    journey = {
        "id": "crash",
        "entry": {"type": "audience", "audienceId": audience.json()["audienceId"],
                  "next": "pause"},
        "nodes": [
            {"id": "pause", "type": "wait", "duration": "PT1H", "next": "listen"},
            {"id": "listen", "type": "listen",
             "branches": [{"event": {"eventId": "JEVping"}, "next": "pinged"}],
             "timeout": {"after": "PT2H", "next": "late"}},
            {"id": "pinged", "type": "email", "message": "JMSpinged", "next": "done"},
            {"id": "late", "type": "email", "message": "JMSlate", "next": "done"},
            {"id": "done", "type": "end"}]}
    await publish_version(pool, tenant.name, journey, speed=SPEED)

    pinged: list[str] = []

    async def ping_every_other() -> None:  # the load the kill happens in
        for profile_id in list(emails)[::2]:
            answer = await tenant.ingest.post("/v1/journey-events/JEVping", content=(
                orjson.dumps({"customerId": profile_id})),
                headers={"content-type": "application/json"})
            assert answer.status_code == 202, answer.text
            pinged.append(profile_id)
            await asyncio.sleep(0.03)  # pacing the load (~30/s), not waiting for a result

    async def some_timers_fired() -> bool:
        return bool(await pool.fetchval(
            "SELECT count(*) FROM journey_steps WHERE tenant_id = $1 AND node = 'pause'"
            " AND kind = 'transition'", tenant.name))

    async def all_in() -> bool:  # an event for a profile not in the journey is dropped
        return await pool.fetchval("SELECT count(*) FROM journey_instances"
                                   " WHERE tenant_id = $1", tenant.name) == PEOPLE
    await eventually(all_in, "every profile in the journey", 30)
    load = asyncio.create_task(ping_every_other())
    await eventually(some_timers_fired, "the first waits ending", 30)
    await asyncio.to_thread(stack, "kill", "journeys")
    killed_at = time.monotonic()
    await asyncio.to_thread(stack, "start", "journeys")
    assert time.monotonic() - killed_at <= 15, "the engine back within 15 s"
    await load

    async def all_done() -> bool:
        return await pool.fetchval(
            "SELECT count(*) FROM journey_instances WHERE tenant_id = $1"
            " AND state = 'finished'", tenant.name) == PEOPLE
    await eventually(all_done, f"{PEOPLE} instances finished", 90)

    rows = await pool.fetch(
        "SELECT i.profile_id, s.node, s.kind, count(*) AS n FROM journey_instance_steps s"
        " JOIN journey_instances i USING (tenant_id, instance_id)"
        " WHERE s.tenant_id = $1 GROUP BY 1, 2, 3", tenant.name)
    steps: dict[str, dict[tuple[str, str], int]] = {}
    for row in rows:
        steps.setdefault(row["profile_id"], {})[(row["node"], row["kind"])] = row["n"]
    assert set(steps) == set(emails)
    paths = {}
    for profile_id, done in steps.items():
        assert all(n == 1 for n in done.values()), (profile_id, done)  # nothing twice
        assert done[("pause", "transition")] == 1  # the wait's timer fired once
        took = [k for k in (("listen", "event"), ("listen", "timedOut")) if k in done]
        assert len(took) == 1, (profile_id, done)  # one path, never both
        paths[profile_id] = "pinged" if took == [("listen", "event")] else "late"
        assert done[(paths[profile_id], "actionSent")] == 1
    assert {p for p, path in paths.items() if path == "pinged"} <= set(pinged)
    assert "pinged" in paths.values()

    async with httpx.AsyncClient(timeout=30) as http:
        async def mailed() -> dict[str, int] | None:
            counts = {p: len(await mails_to(http, e, BULK_SINK)) for p, e in emails.items()}
            return counts if all(counts.values()) else None
        counts = await eventually(mailed, "an email to every profile", 60)
    assert set(counts.values()) == {1}, {p: n for p, n in counts.items() if n != 1}
