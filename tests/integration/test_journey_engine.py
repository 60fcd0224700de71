"""The journey engine on the real stack: the seed journey, its time compressed, through the
real services — an audience read (decoys stay out), the first email and push sent by the
bulk senders, an email opened through its tracking pixel and a push opened through the
app-facing endpoint, the reminder after the timeout to the others only, purchase events
through the gateway, the thank-you push to the matching profiles only — and the counts at
every node exact. Each test in a tenant of its own."""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from shared.adapters.key_store import create_key, create_tenant
from shared.domain.api_keys import Scope
from shared.domain.journeys.step_events import StepEvent
from shared.topics import DEADLETTER, JOURNEY_EVENTS, JOURNEY_EVENTS_KAFKA, JOURNEY_STEPS
from tests.integration.conftest import (
    ADMIN,
    BULK_SINK,
    GATEWAY,
    dead_letter_where,
    drained,
    end_offsets,
    eventually,
    kafka_signer,
    mails_to,
    provider_messages,
    topic_reader,
    unique_email,
)
from tests.integration.test_audiences import SEED as SEED_AUDIENCE
from tests.integration.test_journey_messages import journey_message
from tests.unit.test_journey_advance import SEED as UNIT_SEED
from tests.unit.test_journey_events import PURCHASE

BROWSER = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/120.0 Safari/537.36")
DAY_S = 20  # the test's day: a one-day wait lasts 20 s
SPEED = 86_400 / DAY_S
MESSAGES = {"mail": ("JMSwelcome", "email"), "push": ("JMSwelcomePush", "push"),
            "reminder": ("JMSreminder", "email"), "thanks": ("JMSthanks", "push")}
TEMPLATES = {
    "email": {"subject": "Hello {{ profile.first_name }}",
              "html": "<html><body><p>Hi {{ profile.first_name }}</p>"
                      '<a href="https://shop.example/new">new</a></body></html>',
              "text": "Hi {{ profile.first_name }}"},
    "push": {"title": "Hi {{ profile.first_name }}", "body": "Something new for you"},
}


def seed_journey(audience_id: str) -> dict[str, Any]:
    journey = copy.deepcopy(UNIT_SEED)
    journey["entry"]["audienceId"] = audience_id
    journey["nodes"][4]["branches"][0]["event"]["eventId"] = "JEVpurchase"
    journey["exit"] = []
    for node in journey["nodes"]:
        if node["id"] in MESSAGES:
            node["message"] = MESSAGES[node["id"]][0]
    return journey


@dataclass
class Tenant:
    name: str
    admin: httpx.AsyncClient
    ingest: httpx.AsyncClient
    profiles: httpx.AsyncClient


@pytest.fixture
async def tenant(pool: asyncpg.Pool) -> AsyncIterator[Tenant]:
    name = f"jen-{uuid.uuid4().hex[:10]}"
    async with pool.acquire() as connection:
        await create_tenant(connection, name, "journey engine tests")
        keys = {scope: await create_key(connection, name, scope, "tests")
                for scope in (Scope.ADMIN, Scope.INGEST, Scope.PROFILES)}

    def client(scope: Scope, base: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=base, timeout=30,
                                 headers={"authorization": f"Bearer {keys[scope]}"})

    async with client(Scope.ADMIN, ADMIN) as admin, \
            client(Scope.INGEST, GATEWAY) as ingest, \
            client(Scope.PROFILES, GATEWAY) as profiles:
        yield Tenant(name, admin, ingest, profiles)


async def publish_version(pool: asyncpg.Pool, tenant: str, journey: dict[str, Any],
                          speed: float = SPEED, version: int = 1) -> None:
    await pool.execute(
        "INSERT INTO journey_versions (tenant_id, journey_id, version, mode, state,"
        " definition, speed) VALUES ($1, $2, $3, 'live', 'live', $4, $5)",
        tenant, journey["id"], version, journey, speed)


async def counts(pool: asyncpg.Pool, tenant: str, journey_id: str) -> dict[tuple[str, str], int]:
    rows = await pool.fetch(
        "SELECT node, kind, count(*) AS n FROM journey_steps WHERE tenant_id = $1"
        " AND journey_id = $2 GROUP BY node, kind", tenant, journey_id)
    return {(r["node"], r["kind"]): r["n"] for r in rows}


async def send_event(tenant: Tenant, event_id: str, profile_id: str) -> None:
    """A journey event naming ``profile_id`` (customerId) through the gateway, accepted; a
    404 is retried while the new type reaches the gateway's cache."""
    async def accepted() -> httpx.Response | None:
        answer = await tenant.ingest.post(f"/v1/journey-events/{event_id}", content=(
            orjson.dumps({"customerId": profile_id})),
            headers={"content-type": "application/json"})
        return None if answer.status_code == 404 else answer
    answer = await eventually(accepted, f"{event_id} known to the gateway", 10)
    assert answer.status_code == 202 and answer.json()["accepted"], answer.text


async def first_instance(tenant: Tenant, journey_id: str, profile_id: str
                         ) -> dict[str, Any] | None:
    """The profile's first instance of the journey, with its steps (the admin API's)."""
    found = (await tenant.admin.get(f"/journeys/{journey_id}/instances/{profile_id}")).json()
    return found["instances"][0] if found.get("instances") else None


async def test_the_seed_journey_runs_through_the_real_services(
        pool: asyncpg.Pool, tenant: Tenant) -> None:
    for message, channel in MESSAGES.values():
        if message != "JMSthanks":
            await journey_message(tenant.admin, message, channel, TEMPLATES[channel])
    # The thank-you names the purchase's amount: its field is filled from the purchase
    # that resolved the wait before it.
    await journey_message(tenant.admin, "JMSthanks", "push", {
        "title": "Thanks", "body": "Thanks for your {{ ctx.amount }} order"},
        fields=[{"id": "amount", "type": "decimal", "required": True}])
    created = await tenant.admin.put("/journey-events/JEVpurchase", json=PURCHASE)
    assert created.status_code == 201, created.text
    audience = await tenant.admin.post("/audiences", json={"name": "atl-sf-sea",
                                                           "definition": SEED_AUDIENCE})
    assert audience.status_code == 201, audience.text

    people = {f"m{i}": city for i, city in enumerate(
        ["Atlanta", "San Francisco", "Seattle", "Atlanta", "Seattle", "San Francisco"])}
    decoys = {"d-boston": ("Boston", "1990-01-01"), "d-old": ("Seattle", "1970-01-01")}
    emails, tokens = {}, {}
    for profile_id, (city, born) in [*((p, (c, "1990-06-01")) for p, c in people.items()),
                                     *decoys.items()]:
        emails[profile_id] = unique_email(profile_id)
        tokens[profile_id] = f"tok-{uuid.uuid4().hex}"
        written = await tenant.profiles.put(f"/v1/profiles/{profile_id}", json={
            "email": emails[profile_id], "firstName": profile_id, "city": city,
            "birthDate": born, "pushDevices": [{"registrationToken": tokens[profile_id],
                                                "application": "shop",
                                                "pushPlatform": "fcm"}],
            "consent": {"email": {"marketing": "opted-in"},
                        "push": {"marketing": "opted-in"}}})
        assert written.status_code in (200, 201), written.text

    journey = seed_journey(audience.json()["audienceId"])
    assert (await tenant.admin.put("/journeys/seed", json=journey)).status_code == 201
    await publish_version(pool, tenant.name, journey)

    async with httpx.AsyncClient(timeout=30) as http:
        async def welcomed() -> dict[str, Any] | None:
            mails = {p: await mails_to(http, emails[p], BULK_SINK) for p in people}
            pushes = {p: await provider_messages(http, "push", tokens[p]) for p in people}
            done = all(len(m) == 1 for m in mails.values()) and all(
                len(p) == 1 for p in pushes.values())
            return {"mails": mails, "pushes": pushes} if done else None

        first = await eventually(welcomed, "the welcome email and push to every member", 30)
        # m0 opens the email (its tracking pixel), m1 the push (the app's endpoint), a
        # while after they came (an open in the first seconds is a link scanner's).
        await pool.execute("UPDATE tracked_messages SET sent_at = sent_at - interval '1 minute'"
                           " WHERE tenant_id = $1", tenant.name)
        html = first["mails"]["m0"][0]["html"]
        [pixel] = re.findall(r'src="([^"]+/o/[^"]+)"', html)
        assert (await http.get(pixel, headers={"User-Agent": BROWSER})).status_code == 200
        push = first["pushes"]["m1"][0]
        opened = await http.post(f"{GATEWAY}/v1/push/opened", json={
            "messageId": push["messageId"],
            "openToken": push["payload"]["data"]["openToken"]})
        assert opened.status_code == 200, opened.text

        async def reacted() -> bool:
            found = await counts(pool, tenant.name, "seed")
            return found.get(("react", "reaction"), 0) == 2
        await eventually(reacted, "both reactions taking their branch", 15)

        # After the day, the others get the reminder; those who reacted never do.
        async def reminded() -> bool:
            return [len(await mails_to(http, emails[p], BULK_SINK))
                    for p in ("m2", "m3", "m4", "m5")] == [2] * 4
        await eventually(reminded, "the reminder to those who did not react", DAY_S + 30)
        for profile_id in ("m0", "m1"):
            assert len(await mails_to(http, emails[profile_id], BULK_SINK)) == 1
        for profile_id in decoys:
            assert await mails_to(http, emails[profile_id], BULK_SINK) == []
            assert await provider_messages(http, "push", tokens[profile_id]) == []

        for profile_id, message in (("m0", "thank you"), ("m2", "thank you"),
                                    ("m3", "not this one")):
            bought = await tenant.ingest.post("/v1/journey-events/JEVpurchase", content=(
                b'{"customerId": "%s", "purchaseMessage": "%s", "amount": 10.50}' % (
                    profile_id.encode(), message.encode())),
                headers={"content-type": "application/json"})
            assert bought.status_code == 202, bought.text

        async def thanked() -> bool:
            return [len(await provider_messages(http, "push", tokens[p]))
                    for p in ("m0", "m2")] == [2, 2]
        await eventually(thanked, "the thank-you push to the matching profiles", 30)
        thanks = (await provider_messages(http, "push", tokens["m0"]))[1]
        assert thanks["payload"]["body"] == "Thanks for your 10.50 order"  # exact decimal
        for profile_id in ("m1", "m3", "m4", "m5"):
            assert len(await provider_messages(http, "push", tokens[profile_id])) == 1

    async def settled() -> dict[tuple[str, str], int] | None:
        found = await counts(pool, tenant.name, "seed")
        return found if found.get(("done", "finished")) == 2 else None
    found = await eventually(settled, "two instances finished", 15)
    assert {k: v for k, v in found.items() if k[1] in (
        "entered", "actionSent", "actionExcluded", "reaction", "timedOut", "event",
        "finished")} == {
        ("entry", "entered"): 6, ("mail", "entered"): 6, ("mail", "actionSent"): 6,
        ("push", "entered"): 6, ("push", "actionSent"): 6, ("react", "entered"): 6,
        ("react", "reaction"): 2, ("react", "timedOut"): 4, ("reminder", "entered"): 4,
        ("reminder", "actionSent"): 4, ("buy", "entered"): 6, ("buy", "event"): 2,
        ("thanks", "entered"): 2, ("thanks", "actionSent"): 2, ("done", "entered"): 2,
        ("done", "finished"): 2}
    waiting = await pool.fetch("SELECT profile_id, node FROM journey_instances"
                               " WHERE tenant_id = $1 AND state = 'waiting'", tenant.name)
    assert sorted((r["profile_id"], r["node"]) for r in waiting) == [
        ("m1", "buy"), ("m3", "buy"), ("m4", "buy"), ("m5", "buy")]


SIGNUP = {"fields": [{"id": "customerId", "type": "string"}], "profileKey": "customerId"}


async def test_profiles_enter_by_a_journey_event_once_or_again_after_the_gap(
        pool: asyncpg.Pool, tenant: Tenant) -> None:
    await journey_message(tenant.admin, "JMSwelcome", "email", TEMPLATES["email"])
    created = await tenant.admin.put("/journey-events/JEVsignup", json=SIGNUP)
    assert created.status_code == 201, created.text
    for profile_id in ("p1", "p2", "test-1"):
        written = await tenant.profiles.put(f"/v1/profiles/{profile_id}", json={
            "email": unique_email(profile_id),
            "consent": {"email": {"marketing": "opted-in"}}}) if profile_id != "test-1" \
            else await tenant.admin.put(f"/test-profiles/{profile_id}", json={
                "email": unique_email(profile_id)})
        assert written.status_code in (200, 201), written.text
    nodes = [{"id": "mail", "type": "email", "message": "JMSwelcome", "next": "done"},
             {"id": "done", "type": "end"}]
    once = {"id": "once", "entry": {"type": "event", "eventId": "JEVsignup", "next": "mail"},
            "nodes": nodes}
    gap = {"id": "gap", "entry": {"type": "event", "eventId": "JEVsignup", "next": "mail",
                                  "reentry": True, "minGap": "PT1H"}, "nodes": nodes}
    for journey in (once, gap):
        await publish_version(pool, tenant.name, journey)

    async def signup(profile_id: str) -> None:
        await send_event(tenant, "JEVsignup", profile_id)

    async def instances() -> dict[tuple[str, str], int]:
        rows = await pool.fetch(
            "SELECT journey_id, profile_id, count(*) AS n FROM journey_instances"
            " WHERE tenant_id = $1 GROUP BY 1, 2", tenant.name)
        return {(r["journey_id"], r["profile_id"]): r["n"] for r in rows}

    await signup("p1")
    await signup("p2")
    await signup("test-1")  # a test profile enters test runs only

    async def both_in() -> dict[tuple[str, str], int] | None:
        found = await instances()
        return found if len(found) == 4 else None
    found = await eventually(both_in, "p1 and p2 in both journeys", 20)
    assert found == {("once", "p1"): 1, ("once", "p2"): 1, ("gap", "p1"): 1, ("gap", "p2"): 1}
    finished = await pool.fetchval("SELECT count(*) FROM journey_instances WHERE tenant_id = $1"
                                   " AND state = 'finished'", tenant.name)
    assert finished == 4

    # Again: `once` takes nobody back; `gap` not within its hour. Then the gap passes.
    await signup("p1")
    await pool.execute("UPDATE journey_instances SET entered_at = entered_at - interval '2 hours'"
                       " WHERE tenant_id = $1 AND profile_id = 'p2'", tenant.name)
    await signup("p2")

    async def p2_again() -> dict[tuple[str, str], int] | None:
        found = await instances()
        return found if found.get(("gap", "p2")) == 2 else None
    await eventually(p2_again, "p2 entering `gap` again after the gap", 20)
    await eventually(lambda: drained("parcours-journeys", JOURNEY_EVENTS),
                     "the engine through every journey event", 20)
    assert await instances() == {("once", "p1"): 1, ("once", "p2"): 1, ("gap", "p1"): 1,
                                 ("gap", "p2"): 2}


async def test_every_step_reaches_the_step_events_topic_once_in_order(
        pool: asyncpg.Pool, tenant: Tenant) -> None:
    await journey_message(tenant.admin, "JMSwelcome", "email", TEMPLATES["email"])
    assert (await tenant.admin.put("/journey-events/JEVsignup", json=SIGNUP)).status_code == 201
    written = await tenant.profiles.put("/v1/profiles/s1", json={
        "email": unique_email("s1"), "consent": {"email": {"marketing": "opted-in"}}})
    assert written.status_code == 201, written.text
    await publish_version(pool, tenant.name, {
        "id": "steps", "entry": {"type": "event", "eventId": "JEVsignup", "next": "mail"},
        "nodes": [{"id": "mail", "type": "email", "message": "JMSwelcome", "next": "done"},
                  {"id": "done", "type": "end"}]})
    before = await end_offsets(JOURNEY_STEPS)

    await send_event(tenant, "JEVsignup", "s1")

    async def stored() -> list[asyncpg.Record] | None:
        rows = await pool.fetch("SELECT id, kind, node, detail FROM journey_steps"
                                " WHERE tenant_id = $1 ORDER BY id", tenant.name)
        return rows if any(r["kind"] == "finished" for r in rows) else None
    steps = [(r["id"], r["kind"], r["node"], r["detail"])
             for r in await eventually(stored, "the instance finished", 20)]
    assert [s[1] for s in steps] == ["entered", "transition", "entered", "actionSent",
                                     "transition", "entered", "finished"]

    published: list[tuple[int, str, str, str]] = []
    async with topic_reader(JOURNEY_STEPS, before) as consumer:
        async def relayed() -> bool:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    event = StepEvent.model_validate(orjson.loads(record.value))
                    if event.tenant == tenant.name:
                        assert record.key == b"s1"
                        assert [m.profileId for m in event.members] == ["s1"]
                        published.extend((s.stepId, s.kind, s.node, s.detail)
                                         for s in event.steps)
            return len(published) >= len(steps)
        await eventually(relayed, "the instance's steps on parcours.journey-steps.v3", 20)
    assert published == steps


async def test_a_paused_journey_holds_an_event_and_takes_it_on_resume(
        pool: asyncpg.Pool, tenant: Tenant) -> None:
    for event_id in ("JEVsignup", "JEVping", "JEVoptOut"):
        assert (await tenant.admin.put(f"/journey-events/{event_id}",
                                       json=SIGNUP)).status_code == 201
    for profile_id in ("r1", "r2"):
        written = await tenant.profiles.put(f"/v1/profiles/{profile_id}",
                                            json={"email": unique_email(profile_id)})
        assert written.status_code == 201, written.text
    journey = {"id": "hold", "entry": {"type": "event", "eventId": "JEVsignup", "next": "wait"},
               "nodes": [{"id": "wait", "type": "listen",
                          "branches": [{"event": {"eventId": "JEVping"}, "next": "done"}],
                          "timeout": {"after": "P1D"}},
                         {"id": "done", "type": "end"}],
               "exit": [{"eventId": "JEVoptOut"}]}
    assert (await tenant.admin.put("/journeys/hold", json=journey)).status_code == 201
    published = await tenant.admin.post("/journeys/hold/publish")
    assert published.status_code == 201, published.text

    async def post(event_id: str, profile_id: str = "r1") -> None:
        await send_event(tenant, event_id, profile_id)

    async def instance(profile_id: str = "r1") -> dict[str, Any] | None:
        return await first_instance(tenant, "hold", profile_id)

    await post("JEVsignup")
    await post("JEVsignup", "r2")
    assert (await eventually(instance, "r1 in the journey", 20))["node"] == "wait"
    assert (await eventually(lambda: instance("r2"), "r2 in", 20))["node"] == "wait"
    assert (await tenant.admin.post("/journeys/hold/pause")).status_code == 200
    await post("JEVping")
    await post("JEVoptOut", "r2")  # an exit criterion takes r2 out, paused or not

    async def exited() -> dict[str, Any] | None:
        found = await instance("r2")
        return found if found and found["state"] == "exited" else None
    await eventually(exited, "r2 out of the paused journey", 20)
    await eventually(lambda: drained("parcours-journeys", JOURNEY_EVENTS),
                     "the engine through the ping", 20)
    held = await instance()
    assert held is not None and (held["state"], held["node"]) == ("waiting", "wait")

    assert (await tenant.admin.post("/journeys/hold/resume")).status_code == 200

    async def finished() -> dict[str, Any] | None:
        found = await instance()
        return found if found and found["state"] == "finished" else None
    done = await eventually(finished, "the held ping taken on resume", 20)
    assert [s["kind"] for s in done["steps"] if s["node"] == "wait"][-2:] == [
        "event", "transition"]


async def test_a_paused_journeys_timers_come_due_aside_and_fire_on_resume(
        pool: asyncpg.Pool, tenant: Tenant) -> None:
    """Due timers of a paused version are set aside once (journey_timers_held), not walked
    past by every claim; resuming puts them back and they fire."""
    for event_id in ("JEVsignup", "JEVping"):
        assert (await tenant.admin.put(f"/journey-events/{event_id}",
                                       json=SIGNUP)).status_code == 201
    profiles = [f"h{n}" for n in range(3)]
    for profile_id in profiles:
        written = await tenant.profiles.put(f"/v1/profiles/{profile_id}",
                                            json={"email": unique_email(profile_id)})
        assert written.status_code == 201, written.text
    journey = {"id": "aside", "entry": {"type": "event", "eventId": "JEVsignup",
                                        "next": "wait"},
               "nodes": [{"id": "wait", "type": "listen",
                          "branches": [{"event": {"eventId": "JEVping"}, "next": "done"}],
                          "timeout": {"after": "PT6S", "next": "late"}},
                         {"id": "done", "type": "end"}, {"id": "late", "type": "end"}]}
    assert (await tenant.admin.put("/journeys/aside", json=journey)).status_code == 201
    assert (await tenant.admin.post("/journeys/aside/publish")).status_code == 201
    for profile_id in profiles:
        await send_event(tenant, "JEVsignup", profile_id)

    async def at(node: str, state: str) -> bool:
        found = [await first_instance(tenant, "aside", p) for p in profiles]
        return all(i is not None and (i["node"], i["state"]) == (node, state) for i in found)
    await eventually(lambda: at("wait", "waiting"), "the three waiting", 20)
    assert (await tenant.admin.post("/journeys/aside/pause")).status_code == 200

    async def timers(table: str) -> int:
        return int(await pool.fetchval(
            f"SELECT count(*) FROM {table} WHERE tenant_id = $1", tenant.name))

    async def set_aside() -> bool:
        return await timers("journey_timers_held") == 3
    await eventually(set_aside, "the paused version's due timers set aside", 20)
    assert await timers("journey_timers") == 0
    assert await at("wait", "waiting")  # held where they were: no timeout taken

    assert (await tenant.admin.post("/journeys/aside/resume")).status_code == 200
    await eventually(lambda: at("late", "finished"), "the timeouts taken on resume", 20)
    assert await timers("journey_timers_held") == 0


async def test_journey_events_produced_to_kafka_signed_enter_and_forged_ones_are_refused(
        pool: asyncpg.Pool, tenant: Tenant, producer: AIOKafkaProducer) -> None:
    assert (await tenant.admin.put("/journey-events/JEVsignup", json=SIGNUP)).status_code == 201
    for profile_id in ("k1", "k2"):
        written = await tenant.profiles.put(f"/v1/profiles/{profile_id}",
                                            json={"email": unique_email(profile_id)})
        assert written.status_code == 201, written.text
    await publish_version(pool, tenant.name, {
        "id": "kafka", "entry": {"type": "event", "eventId": "JEVsignup", "next": "done"},
        "nodes": [{"id": "done", "type": "end"}]})
    signer = await kafka_signer(pool, tenant.name)
    stranger = await kafka_signer(pool)  # a key of another tenant
    before = await end_offsets(DEADLETTER)

    def record(profile_id: str, **changes: Any) -> bytes:
        return orjson.dumps({"v": 1, "tenant": tenant.name, "eventId": "JEVsignup",
                             "payload": {"customerId": profile_id}, **changes})

    signed = record("k1")
    await producer.send_and_wait(JOURNEY_EVENTS_KAFKA.name, signed, key=b"k1",
                                 headers=signer.headers(signed))
    forged = record("k2")
    await producer.send_and_wait(JOURNEY_EVENTS_KAFKA.name, forged, key=b"k2",
                                 headers=stranger.headers(forged))
    unsigned = record("k2", payload={"customerId": "k2", "marker": "unsigned"})
    await producer.send_and_wait(JOURNEY_EVENTS_KAFKA.name, unsigned, key=b"k2")
    wrong = record("k2", payload={"customerId": 7})
    await producer.send_and_wait(JOURNEY_EVENTS_KAFKA.name, wrong, key=b"k2",
                                 headers=signer.headers(wrong))

    async def entered() -> list[str] | None:
        rows = await pool.fetch("SELECT profile_id, state FROM journey_instances"
                                " WHERE tenant_id = $1", tenant.name)
        return [r["profile_id"] for r in rows if r["state"] == "finished"] or None
    assert await eventually(entered, "k1 through the journey", 20) == ["k1"]
    for original, reason in ((forged, "refused"), (unsigned, "refused: unsigned"),
                             (wrong, "invalid")):
        letter = await dead_letter_where(
            before, lambda _r, letter, o=original: letter["original"] == o.decode(),
            f"the dead letter of {original!r}")
        assert letter["reason"].startswith(reason), letter
    await eventually(lambda: drained("parcours-journeys", JOURNEY_EVENTS_KAFKA),
                     "the engine through every produced record", 20)
    assert await entered() == ["k1"]  # k2 never entered


async def test_a_new_version_takes_new_entries_while_running_instances_stay_on_theirs(
        pool: asyncpg.Pool, tenant: Tenant) -> None:
    for event_id in ("JEVsignup", "JEVping"):
        assert (await tenant.admin.put(f"/journey-events/{event_id}",
                                       json=SIGNUP)).status_code == 201
    for profile_id in ("v1", "v2"):
        written = await tenant.profiles.put(f"/v1/profiles/{profile_id}",
                                            json={"email": unique_email(profile_id)})
        assert written.status_code == 201, written.text

    def journey(after_ping: str) -> dict[str, Any]:
        return {"id": "ver", "entry": {"type": "event", "eventId": "JEVsignup", "next": "wait"},
                "nodes": [{"id": "wait", "type": "listen",
                           "branches": [{"event": {"eventId": "JEVping"},
                                         "next": after_ping}],
                           "timeout": {"after": "P1D"}},
                          {"id": after_ping, "type": "end"}]}

    async def post(event_id: str, profile_id: str) -> None:
        await send_event(tenant, event_id, profile_id)

    async def instance(profile_id: str) -> dict[str, Any] | None:
        return await first_instance(tenant, "ver", profile_id)

    for version, after_ping in ((1, "first"), (2, "second")):
        assert (await tenant.admin.put("/journeys/ver",
                                       json=journey(after_ping))).status_code in (200, 201)
        published = await tenant.admin.post("/journeys/ver/publish")
        assert published.status_code == 201 and published.json()["version"] == version
        profile_id = f"v{version}"
        await post("JEVsignup", profile_id)
        entered = await eventually(lambda p=profile_id: instance(p), f"{profile_id} in", 20)
        assert (entered["version"], entered["node"]) == (version, "wait")

    for profile_id in ("v1", "v2"):
        await post("JEVping", profile_id)

    async def both_finished() -> list[tuple[str, int, str]] | None:
        found = [await instance(p) for p in ("v1", "v2")]
        if not all(i and i["state"] == "finished" for i in found):
            return None
        return [(p, i["version"], i["node"]) for p, i in zip(("v1", "v2"), found, strict=True)
                if i is not None]
    # v1 entered version 1 and finishes on its path; v2 entered version 2, on the new one.
    assert await eventually(both_finished, "both instances finished", 20) == [
        ("v1", 1, "first"), ("v2", 2, "second")]


async def test_a_recurring_audience_entry_reads_its_audience_again_each_period(
        pool: asyncpg.Pool, tenant: Tenant) -> None:
    audience = await tenant.admin.post("/audiences", json={
        "name": "again", "definition": {"path": "city", "op": "eq", "value": "Lyon"}})
    assert audience.status_code == 201, audience.text

    async def customer(profile_id: str) -> None:
        written = await tenant.profiles.put(f"/v1/profiles/{profile_id}", json={
            "email": unique_email(profile_id), "city": "Lyon"})
        assert written.status_code == 201, written.text

    await customer("l1")
    speed = 3600 / 3  # an hour in 3 s
    await publish_version(pool, tenant.name, {
        "id": "again", "entry": {"type": "audience", "audienceId": audience.json()["audienceId"],
                                 "every": "PT1H", "next": "done"},
        "nodes": [{"id": "done", "type": "end"}]}, speed=speed)

    async def entries() -> dict[str, list[Any]]:
        rows = await pool.fetch("SELECT profile_id, entered_at FROM journey_instances"
                                " WHERE tenant_id = $1 ORDER BY entered_at", tenant.name)
        found: dict[str, list[Any]] = {}
        for row in rows:
            found.setdefault(row["profile_id"], []).append(row["entered_at"])
        return found

    await eventually(lambda: entries(), "l1 entering the first round", 20)
    await customer("l2")  # a member since: enters the next round

    async def second_round() -> dict[str, list[Any]] | None:
        found = await entries()
        return found if len(found.get("l1", [])) >= 2 and found.get("l2") else None
    found = await eventually(second_round, "the second round: l1 again, and l2", 20)
    first, second = found["l1"][:2]
    assert (second - first).total_seconds() >= 3 * 0.9, "a round before its period"
    # Round 1 (the second) has run, at least up to its entries.
    assert await pool.fetchval("SELECT entry_round FROM journey_versions WHERE tenant_id = $1",
                               tenant.name) >= 1
