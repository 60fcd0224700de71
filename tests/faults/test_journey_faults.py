"""The fault suite's journey scenarios (issue 14): under steady journey traffic — profiles
entering ``event entry → email → SMS → push → end`` by journey events through the
gateway, 20 a second, in a tenant of the scenario's own, each one three journey messages
on the bulk lanes —, ``kill -9`` of the journey engine and of each bulk sender, each
restarted. Each scenario ends with ``parcours reconcile``'s account of messages without
a pKey (the engine's decisions, the bulk send topics, the ledger, the sinks) polled until
nothing is in flight, then the verdict with no grace: 0 lost, 0 stuck, 0 unacknowledged,
duplicates only in SMTP's window; every profile whose event was answered 202 entered
once, finished, and every message it was decided ended ``sent``.

``make test-faults`` runs them (marker ``faults``; about a minute and a half each).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest

from shared.adapters.key_store import create_key, create_tenant
from shared.domain.api_keys import Scope
from tests.faults.load import JourneyLoad
from tests.faults.test_faults import RESUME_WITHIN_S, reconcile
from tests.integration.conftest import ADMIN, GATEWAY, eventually, stack
from tests.integration.test_journey_engine import publish_version
from tests.integration.test_journey_messages import journey_message

pytestmark = [pytest.mark.disruptive, pytest.mark.faults]
BEFORE_S, AFTER_S = 3.0, 6.0  # load before the fault, and after the service is back
RATE = 20.0  # profiles entering a second: 60 journey messages a second on the bulk lanes
PROFILES = 500  # more than the load can post in the scenario's time
ENDED_WITHIN_S = 150.0  # the engine's outbox recovery takes what is 30 s old, and more
SIGNUP = {"eventId": "JEVfault", "profileKey": "customerId",
          "fields": [{"id": "customerId", "type": "string", "required": True}]}
MESSAGES = {
    "JMSfaultMail": ("email", {"subject": "Hi {{ profile.first_name }}",
                               "html": "<p>new</p>", "text": "new"}),
    "JMSfaultSms": ("sms", {"text": "Hi {{ profile.first_name }}"}),
    "JMSfaultPush": ("push", {"title": "Hi {{ profile.first_name }}", "body": "new"}),
}
JOURNEY = {"id": "fault", "entry": {"type": "event", "eventId": SIGNUP["eventId"],
                                    "next": "mail"},
           "nodes": [{"id": "mail", "type": "email", "message": "JMSfaultMail", "next": "sms"},
                     {"id": "sms", "type": "sms", "message": "JMSfaultSms", "next": "push"},
                     {"id": "push", "type": "push", "message": "JMSfaultPush",
                      "next": "done"},
                     {"id": "done", "type": "end"}]}


@dataclass
class JourneyTenant:
    tenant: str
    ingest: str  # an ingestion key
    profiles: list[str]


async def _journey_tenant(pool: asyncpg.Pool, name: str) -> JourneyTenant:
    """A tenant with the journey live and PROFILES profiles that can get all three."""
    tenant = f"fault-{name}-{uuid.uuid4().hex[:6]}"
    async with pool.acquire() as connection:
        await create_tenant(connection, tenant, f"fault suite: {name}")
        keys = {scope: await create_key(connection, tenant, scope, "faults", 5000)
                for scope in (Scope.ADMIN, Scope.INGEST, Scope.PROFILES)}

    def client(scope: Scope, base: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=base, timeout=30,
                                 headers={"authorization": f"Bearer {keys[scope]}"})

    consent = {c: {"marketing": "opted-in"} for c in ("email", "sms", "push")}
    profiles = [f"f{n:04d}" for n in range(PROFILES)]
    async with client(Scope.ADMIN, ADMIN) as admin, \
            client(Scope.PROFILES, GATEWAY) as writer:
        for message_id, (channel, template) in MESSAGES.items():
            await journey_message(admin, message_id, channel, template)
        created = await admin.put(f"/journey-events/{SIGNUP['eventId']}", json=SIGNUP)
        assert created.status_code == 201, created.text
        draft = await admin.put("/journeys/fault", json=JOURNEY)
        assert draft.status_code == 201 and draft.json()["publishable"], draft.text
        slots = asyncio.Semaphore(20)

        async def write(profile_id: str) -> None:
            body = {"email": f"{profile_id}-{uuid.uuid4().hex[:8]}@example.com",
                    "firstName": profile_id, "consent": consent,
                    "mobilePhone": f"+1555{uuid.uuid4().int % 10**7:07d}",
                    "pushDevices": [{"registrationToken": f"tok-{uuid.uuid4().hex}",
                                     "application": "shop", "pushPlatform": "fcm"}]}
            async with slots:
                written = await writer.put(f"/v1/profiles/{profile_id}", json=body)
            assert written.status_code in (200, 201), written.text

        await asyncio.gather(*(write(p) for p in profiles))
    await publish_version(pool, tenant, JOURNEY, speed=1)
    async with httpx.AsyncClient(timeout=30, headers={
            "authorization": f"Bearer {keys[Scope.INGEST]}"}) as ingest:
        async def known() -> bool:  # the gateway's cache learns of the new type: an
            # empty body is then a 422 (customerId missing), no longer a 404; nobody enters
            answer = await ingest.post(f"{GATEWAY}/v1/journey-events/{SIGNUP['eventId']}",
                                       json={})
            return answer.status_code != 404
        await eventually(known, f"{SIGNUP['eventId']} known to the gateway", 15)
    return JourneyTenant(tenant, keys[Scope.INGEST], profiles)


async def _settled(pool: asyncpg.Pool, tenant: str, since: float, entered: int
                   ) -> dict[str, Any]:
    """Polls reconcile until every instance finished and no message is in flight, then
    the verdict with no grace at all."""

    async def settled() -> dict[str, Any] | None:
        finished = await pool.fetchval(
            "SELECT count(*) FROM journey_instances WHERE tenant_id = $1"
            " AND state = 'finished'", tenant)
        if finished < entered:
            return None
        _code, report = await asyncio.to_thread(reconcile, tenant, since, 600)
        counts = report["messages"]["counts"]
        return report if counts["decided"] >= 3 * entered and counts["waiting"] == 0 \
            else None

    try:
        await eventually(settled, "every journey message to end", ENDED_WITHIN_S)
    except AssertionError:
        pass  # the verdict below says which ones did not, and where they stopped
    code, report = await asyncio.to_thread(reconcile, tenant, since, 0)
    report["exit"] = code
    return report


async def run_journey_scenario(pool: asyncpg.Pool, name: str, service: str
                               ) -> dict[str, Any]:
    t = await _journey_tenant(pool, name)
    since = time.time() - 1
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=100)
    async with httpx.AsyncClient(timeout=30, limits=limits,
                                 headers={"authorization": f"Bearer {t.ingest}"}) as client:
        load = JourneyLoad(client, SIGNUP["eventId"], t.profiles, RATE)
        running = asyncio.create_task(load.run())
        try:
            await asyncio.sleep(BEFORE_S)  # pacing the load, not waiting for a state
            await asyncio.to_thread(stack, "kill", service)
            killed_at = time.monotonic()
            await asyncio.to_thread(stack, "start", service)  # returns once it is ready
            took = time.monotonic() - killed_at
            await asyncio.sleep(AFTER_S)  # load on the recovered stack
        finally:
            load.stopping = True
            await running
    entered = len(set(load.accepted))
    report = await _settled(pool, t.tenant, since, entered)
    messages = report["messages"]
    counts = messages["counts"]
    instances = await pool.fetch(
        "SELECT profile_id, state, count(*) OVER (PARTITION BY profile_id) AS n"
        " FROM journey_instances WHERE tenant_id = $1", t.tenant)
    print(f"\n{name}: answers {dict(load.answers)}; {entered} entered,"
          f" {sum(r['state'] == 'finished' for r in instances)} finished; back in"
          f" {took:.1f} s; messages {counts}; ended {messages['ended']};"
          f" stuck by stage {messages['stuckByStage']}")
    assert took <= RESUME_WITHIN_S, f"R4: {service} back after {took:.1f} s"
    assert not load.unexpected, load.unexpected[:3]
    assert entered > 0, "nothing entered: the scenario proves nothing"
    assert {r["profile_id"] for r in instances} == set(load.accepted)
    assert all(r["n"] == 1 and r["state"] == "finished" for r in instances), \
        [dict(r) for r in instances if r["n"] != 1 or r["state"] != "finished"][:5]
    assert counts["decided"] == 3 * entered, counts
    assert messages["ended"] == {"sent": 3 * entered}, messages["ended"]
    assert counts["lost"] == 0, messages["lost"][:5]
    assert counts["stuck"] == 0, messages["stuck"][:5]
    assert counts["unacknowledged"] == 0, messages["unacknowledged"][:5]
    assert counts["duplicated"] == counts["duplicatedInSmtpWindow"], messages["duplicated"][:5]
    assert report["counts"]["lost"] == report["counts"]["stuck"] == 0, report["counts"]
    return report


@pytest.mark.parametrize("service", ["journeys", "sender-email-bulk", "sender-sms-bulk",
                                     "sender-push-bulk"])
async def test_kill_9_under_journey_load(pool: asyncpg.Pool, service: str) -> None:
    await run_journey_scenario(pool, f"kill-{service}", service)
