"""``parcours reconcile`` and ``GET /admin/v1/reconcile`` on the real stack: events that went
through the chain are all ``ended``; then each kind of finding is made on purpose, the way
it happens — a status write lost, a sender that died between its claim and its settle, a
second hand-over of one message, a status that says processed for a message no sink got,
an event accepted that no stage ever recorded — and each is reported with its stage, and
the exit status says so. Tenants stay apart."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import aiosmtplib
import asyncpg
import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from shared.adapters.key_store import create_key, create_tenant
from shared.domain.api_keys import Scope
from shared.domain.pkeys import mint_pkey
from shared.settings import get_settings
from shared.topics import EVENTS_IN
from tests.integration.conftest import (
    ADMIN,
    GATEWAY,
    ROOT,
    eventually,
    final_status,
    publish_event,
    unique_email,
)
from tests.integration.test_journey_activities import event_types, person, post_event, put_profile
from tests.integration.test_journey_engine import Tenant, publish_version
from tests.integration.test_journey_messages import journey_message

settings = get_settings()


def cli_reconcile(*args: str) -> tuple[int, str]:
    done = subprocess.run([sys.executable, "-m", "services.cli", "reconcile", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, done.stdout


def tenant_json(tenant: str, since: float, grace: float) -> tuple[int, dict[str, Any]]:
    code, out = cli_reconcile("--tenant", tenant, "--grace", str(grace), "--json",
                              "--since", datetime.fromtimestamp(since, UTC).isoformat())
    return code, json.loads(out)


def as_json(event_id: str, since: float, grace: float = 60) -> tuple[int, dict[str, Any]]:
    code, out = cli_reconcile("--event", event_id, "--grace", str(grace), "--json",
                              "--since", datetime.fromtimestamp(since, UTC).isoformat())
    return code, json.loads(out)


# Tenants whose findings are planted on purpose start with this: the session's own check
# (test_zzz_reconcile_session.py) leaves them out.
PLANTED = "rec-planted-"


async def planted_tenant(pool: asyncpg.Pool) -> tuple[str, str]:
    """A tenant of its own for planted findings, and an ingestion key of it."""
    tenant = f"{PLANTED}{uuid.uuid4().hex[:8]}"
    async with pool.acquire() as connection:
        await create_tenant(connection, tenant, "reconcile: planted findings")
        key = await create_key(connection, tenant, Scope.INGEST, "tests")
    return tenant, key


async def _post(http: httpx.AsyncClient, event_id: str, n: int) -> list[str]:
    hrefs = []
    for _ in range(n):
        response = await http.post(f"{GATEWAY}/v1/events/{event_id}",
                                   json={"email": unique_email("rec"), "ctx": {"item": "r"}})
        assert response.status_code == 202, response.text
        hrefs.append(response.json()["href"])
    for href in hrefs:
        assert (await final_status(http, href))["status"] == "processed"
    return [href.rsplit("/", 1)[1] for href in hrefs]


async def test_events_that_went_through_are_all_ended_and_the_exit_status_is_0(
    http: httpx.AsyncClient, pool: asyncpg.Pool, admin: httpx.AsyncClient
) -> None:
    since = time.time() - 1
    event_id = await publish_event(pool, "event")
    await _post(http, event_id, 12)
    code, report = await asyncio.to_thread(as_json, event_id, since)
    assert code == 0 and report["clean"], report
    assert report["counts"]["accepted"] == 12 and report["ended"] == {"processed": 12}
    assert report["sources"]["sinksAsked"] and not report["sources"]["sinksUnreachable"]
    code, text = await asyncio.to_thread(
        cli_reconcile, "--event", event_id, "--since",
        datetime.fromtimestamp(since, UTC).isoformat())
    assert code == 0 and "ended processed" in text and "clean" in text, text

    answer = await admin.get("/reconcile", params={
        "since": datetime.fromtimestamp(since, UTC).isoformat(), "eventId": event_id})
    assert answer.status_code == 200, answer.text
    assert answer.json()["counts"] == report["counts"] and answer.json()["clean"]
    bad = await admin.get("/reconcile", params={"since": datetime.now(UTC).isoformat(),
                                                 "until": "2026-01-01T00:00:00Z"})
    assert bad.status_code == 422 and "since" in bad.text
    ancient = await admin.get("/reconcile", params={  # found by the fuzz suite: was a 500
        "since": "0657-12-26T16:04:59Z", "until": "0657-12-26T18:04:59Z"})
    assert ancient.status_code == 422 and "1970" in ancient.text, ancient.text


async def test_every_kind_of_finding_is_reported_with_its_stage(pool: asyncpg.Pool) -> None:
    since = time.time() - 1
    tenant, key = await planted_tenant(pool)
    event_id = await publish_event(pool, "event", tenant=tenant)
    async with httpx.AsyncClient(timeout=30,
                                 headers={"authorization": f"Bearer {key}"}) as http:
        lost, claimed, duplicated, unacked, *fine = await _post(http, event_id, 6)
    async with pool.acquire() as connection:
        rows = {row["pkey"]: str(row["message_id"]) for row in await connection.fetch(
            "SELECT pkey, message_id FROM event_status WHERE event_id = $1", event_id)}
        # A status write lost (as if the stage's transaction had never been).
        await connection.execute("DELETE FROM event_status WHERE pkey = $1", lost)
        # A sender that died between its claim and its settle, its record never redelivered.
        await connection.execute(
            "UPDATE event_status SET status = 'processing', rank = 2 WHERE pkey = $1", claimed)
        await connection.execute(
            "UPDATE deliveries SET state = 'sending' WHERE message_id = $1::uuid",
            rows[claimed])
        # A status that says processed for a message the relay never got.
        ghost = str(uuid.uuid4())
        await connection.execute(
            "UPDATE event_status SET message_id = $2::uuid WHERE pkey = $1", unacked, ghost)
        await connection.execute(
            "INSERT INTO deliveries (message_id, tenant_id, pkey, channel, state)"
            " VALUES ($1::uuid, $3, $2, 'email', 'sent')", ghost, unacked, tenant)
    # One message handed over twice (its Message-ID again), with no crash behind it: the
    # copy to the second relay, so the first sink's own duplicates stay none (test_reliability).
    copy = EmailMessage()
    copy["From"], copy["To"], copy["Subject"] = "a@example.com", "b@example.com", "again"
    copy["Message-ID"] = f"<{rows[duplicated]}@example.com>"
    copy.set_content("again")
    await aiosmtplib.send(copy, hostname="127.0.0.1", port=settings.smtp_secondary_port)

    # No grace period: each of them is overdue (all six may well be younger than a second).
    code, report = await asyncio.to_thread(as_json, event_id, since, 0)
    assert code == 1 and not report["clean"]
    counts = report["counts"]
    assert (counts["accepted"], counts["lost"], counts["stuck"], counts["duplicated"],
            counts["unacknowledged"], counts["duplicatedInSmtpWindow"]) == (6, 1, 1, 1, 1, 0)
    assert report["lost"][0]["pKey"] == lost
    assert report["stuck"][0] | {"acceptedAt": 0} == {
        "pKey": claimed, "eventId": event_id, "acceptedAt": 0, "status": "processing",
        "stage": "sender: claimed, never settled", "tenant": tenant}
    assert report["duplicated"] == [{"messageId": rows[duplicated], "pKey": duplicated,
                                     "copies": 2, "inSmtpWindow": False, "tenant": tenant}]
    assert report["unacknowledged"] == [{"messageId": ghost, "pKey": unacked,
                                         "channel": "email", "tenant": tenant}]
    assert report["ended"] == {"processed": len(fine) + 2}  # the duplicated and unacked

    # With the default grace (60 s) the young ones are in flight, not stuck nor lost.
    code, young = await asyncio.to_thread(as_json, event_id, since)
    assert young["counts"]["lost"] == young["counts"]["stuck"] == 0
    assert young["waiting"] == {"in flight": 2}


async def test_records_are_read_per_tenant_and_an_unpublished_event_ends_routing_failed(
    pool: asyncpg.Pool, admin: httpx.AsyncClient
) -> None:
    """Two tenants' records for one event id on the input topic: each tenant reads only its
    own (admin API: the caller's; CLI: ``--tenant``); the processor refuses an event that
    is not published, and that refusal is an end (``routingFailed``), not a loss."""
    since = time.time() - 1
    event_id = f"EVTghost{uuid.uuid4().hex[:8]}"
    other = f"t-rec-{uuid.uuid4().hex[:8]}"
    async with pool.acquire() as connection:
        await create_tenant(connection, other, "reconcile")
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    pkeys = {}
    try:
        for tenant in ("default", other):
            pkey = mint_pkey(settings.pkey_secret.encode(), tenant, event_id,
                             uuid.uuid4().bytes[:12])
            pkeys[tenant] = pkey
            record = {"v": 1, "pKey": pkey, "tenant": tenant, "eventId": event_id,
                      "target": {"email": "x@example.com"}, "ctx": {},
                      "acceptedAt": time.time()}
            await producer.send_and_wait(EVENTS_IN.name, orjson.dumps(record), b"x")
    finally:
        await producer.stop()
    params = {"since": datetime.fromtimestamp(since, UTC).isoformat(), "eventId": event_id,
              "graceS": 0}

    async def ended() -> dict[str, Any] | None:
        body: dict[str, Any] = (await admin.get("/reconcile", params=params)).json()
        return body if body["ended"] == {"routingFailed": 1} else None

    body = await eventually(ended, "the unpublished event refused by the processor")
    assert body["counts"]["accepted"] == 1 and body["clean"]
    code, text = await asyncio.to_thread(
        cli_reconcile, "--tenant", other, "--event", event_id, "--json", "--since",
        params["since"])
    theirs = json.loads(text)
    assert code == 0 and theirs["counts"]["accepted"] == 1
    assert pkeys["default"] not in text and pkeys[other] not in json.dumps(body)


SIGNUP = {"eventId": "JEVrecSignup", "profileKey": "customerId",
          "fields": [{"id": "customerId", "type": "string", "required": True}]}


@pytest.fixture
async def planted_journeys(pool: asyncpg.Pool) -> AsyncIterator[Tenant]:
    """A tenant of its own (its findings planted: the session's check leaves it out)."""
    name = f"{PLANTED}j-{uuid.uuid4().hex[:8]}"
    async with pool.acquire() as connection:
        await create_tenant(connection, name, "reconcile: planted journey findings")
        keys = {scope: await create_key(connection, name, scope, "tests")
                for scope in (Scope.ADMIN, Scope.INGEST, Scope.PROFILES)}

    def client(scope: Scope, base: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=base, timeout=30,
                                 headers={"authorization": f"Bearer {keys[scope]}"})

    async with client(Scope.ADMIN, ADMIN) as admin, \
            client(Scope.INGEST, GATEWAY) as ingest, \
            client(Scope.PROFILES, GATEWAY) as profiles:
        yield Tenant(name, admin, ingest, profiles)


async def test_journey_messages_are_accounted_for_and_each_finding_is_reported(
    pool: asyncpg.Pool, planted_journeys: Tenant
) -> None:
    """``event entry → email → end``: six profiles enter, five with an address. All end
    (five sent, one excluded by the engine), then one of each finding is made the way it
    happens: a claim never settled, a record the sender never claimed (its ledger row
    gone), one message handed over twice, an engine decision no later stage has (its
    outbox entry lost), and a ledger row saying sent that no sink got."""
    t = planted_journeys
    since = time.time() - 1
    await journey_message(t.admin, "JMSrec", "email")
    await event_types(t, SIGNUP)
    profiles = [f"R{i}" for i in range(6)]
    for profile_id in profiles[:5]:
        await put_profile(t, profile_id, person(profile_id))
    await put_profile(t, profiles[5], {"firstName": "no address",
                                       "consent": {"email": {"marketing": "opted-in"}}})
    journey = {"id": "rec", "entry": {"type": "event", "eventId": SIGNUP["eventId"],
                                      "next": "mail"},
               "nodes": [{"id": "mail", "type": "email", "message": "JMSrec", "next": "done"},
                         {"id": "done", "type": "end"}]}
    draft = await t.admin.put("/journeys/rec", json=journey)
    assert draft.status_code == 201 and draft.json()["publishable"], draft.text
    await publish_version(pool, t.name, journey, speed=1)
    for profile_id in profiles:
        await post_event(t, SIGNUP["eventId"], {"customerId": profile_id})

    async def all_ended() -> dict[str, Any] | None:
        code, report = await asyncio.to_thread(tenant_json, t.name, since, 600)
        messages = report["messages"]
        return report if code == 0 and messages["counts"]["decided"] == 6 \
            and messages["ended"] == {"excluded": 1, "sent": 5} else None

    clean = await eventually(all_ended, "five journey emails sent, one excluded", 45)
    assert clean["messages"]["counts"]["lost"] == clean["messages"]["counts"]["stuck"] == 0

    rows = await pool.fetch(
        "SELECT s.profile_id, s.detail AS mid, s.instance_id, s.version FROM journey_steps s"
        " JOIN deliveries d ON d.message_id = s.detail::uuid"
        " WHERE s.tenant_id = $1 AND s.kind = 'actionSent' ORDER BY s.profile_id", t.name)
    assert len(rows) == 5, rows
    claimed, unclaimed, duplicated = (row["mid"] for row in rows[:3])
    lost, ghost = str(uuid.uuid4()), str(uuid.uuid4())
    async with pool.acquire() as connection:
        # A sender that died between its claim and its settle, its record never redelivered.
        await connection.execute(
            "UPDATE deliveries SET state = 'sending' WHERE message_id = $1::uuid", claimed)
        # A record on the bulk topic no sender ever claimed (as if its ledger row had never
        # been written).
        await connection.execute(
            "DELETE FROM deliveries WHERE message_id = $1::uuid", unclaimed)
        # The engine's decision stored, and its outbox entry gone without a send: lost. And
        # a decision whose ledger row says sent, that no sink ever got: unacknowledged.
        for message_id in (lost, ghost):
            await connection.execute(
                "INSERT INTO journey_steps (tenant_id, journey_id, version, instance_id,"
                " profile_id, at, kind, node, detail) VALUES ($1, 'rec', $2, $3::uuid, $4,"
                " now(), 'actionSent', 'mail', $5)", t.name, rows[0]["version"],
                uuid.uuid4(), f"planted-{message_id[:8]}", message_id)
        await connection.execute(
            "INSERT INTO deliveries (message_id, tenant_id, pkey, channel, state)"
            " VALUES ($1::uuid, $2, NULL, 'email', 'sent')", ghost, t.name)
    copy = EmailMessage()  # to the second relay: the first sink's own duplicates stay none
    copy["From"], copy["To"], copy["Subject"] = "a@example.com", "b@example.com", "again"
    copy["Message-ID"] = f"<{duplicated}@example.com>"
    copy.set_content("again")
    await aiosmtplib.send(copy, hostname="127.0.0.1", port=settings.smtp_secondary_port)

    code, report = await asyncio.to_thread(tenant_json, t.name, since, 0)
    messages = report["messages"]
    assert code == 1 and not report["clean"] and report["counts"]["lost"] == 0, report
    counts = messages["counts"]
    assert (counts["decided"], counts["lost"], counts["stuck"], counts["duplicated"],
            counts["unacknowledged"], counts["duplicatedInSmtpWindow"]) == (8, 1, 2, 1, 1, 0)
    assert [x["messageId"] for x in messages["lost"]] == [lost]
    assert messages["lost"][0]["origin"] == "journey rec v1 mail"
    assert {s["messageId"]: s["stage"] for s in messages["stuck"]} == {
        claimed: "sender: claimed, never settled",
        unclaimed: "sender: produced, never claimed"}
    assert messages["duplicated"] == [{"messageId": duplicated, "copies": 2,
                                       "inSmtpWindow": False, "tenant": t.name}]
    assert messages["unacknowledged"] == [{"messageId": ghost, "channel": "email",
                                           "tenant": t.name}]
    assert messages["ended"] == {"excluded": 1, "sent": 4}  # the duplicated, the ghost
    code, text = await asyncio.to_thread(
        cli_reconcile, "--tenant", t.name, "--grace", "0", "--since",
        datetime.fromtimestamp(since, UTC).isoformat())
    assert code == 1 and f"lost   message {lost}" in text and "messages without a pKey" in text
    answer = await t.admin.get("/reconcile", params={
        "since": datetime.fromtimestamp(since, UTC).isoformat(), "graceS": 0})
    assert answer.status_code == 200 and not answer.json()["clean"], answer.text
    assert answer.json()["messages"]["counts"] == counts


async def test_provider_receipts_are_the_witness_where_no_sink_is_asked(
    pool: asyncpg.Pool, http: httpx.AsyncClient
) -> None:
    """In production no relay can be asked what it accepted: reconcile then counts what
    the providers reported of each handed-over message (here the SMS provider sink's signed
    receipts, recorded as smsDelivered reactions), SMS messages without one apart."""
    from tests.faults.load import SMS_TEMPLATE, body_for

    since = time.time() - 1
    tenant = f"rec-receipts-{uuid.uuid4().hex[:8]}"
    async with pool.acquire() as connection:
        await create_tenant(connection, tenant, "reconcile: provider receipts")
        key = await create_key(connection, tenant, Scope.INGEST, "tests")
    event_id = await publish_event(pool, "event", SMS_TEMPLATE, channel="sms", tenant=tenant)
    headers = {"authorization": f"Bearer {key}"}
    for n in range(5):
        answer = await http.post(f"{GATEWAY}/v1/events/{event_id}", json=body_for("sms", n),
                                 headers=headers)
        assert answer.status_code == 202, answer.text

    async def receipted() -> dict[str, Any] | None:
        _code, report = await asyncio.to_thread(tenant_json, tenant, since, 60)
        sms = report["providerReceipts"].get("sms", {})
        return report if sms.get("smsDelivered") == 5 else None

    report = await eventually(receipted, "five smsDelivered receipts counted", 30)
    assert report["providerReceipts"] == {"sms": {"sent": 5, "smsDelivered": 5}}, report
    assert report["clean"] and report["ended"] == {"processed": 5}
    code, text = await asyncio.to_thread(
        cli_reconcile, "--tenant", tenant, "--since",
        datetime.fromtimestamp(since, UTC).isoformat())
    assert code == 0 and "provider receipts (sms): sent 5, smsDelivered 5" in text, text
