"""Journey messages on the real stack: an event configuration JMS…, authored, previewed,
proofed and published through the admin API like a transactional event's message; no
event reaches it from outside (the gateway answers 404 saying why, a Kafka record naming
it is dead-lettered with the reason); the bulk sender renders it from a journey's send
request; a journey draft's actions are checked against the tenant's journey messages."""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from shared.adapters import held_store
from shared.adapters.key_store import create_key, create_tenant
from shared.adapters.profile_store import upsert_profiles
from shared.domain.api_keys import Scope
from shared.domain.events import Channel
from shared.domain.routing import JourneyOrigin, SendRequest, TemplateRef, message_id
from shared.kafka_signing import RecordSigner
from shared.topics import DEADLETTER, EVENTS_KAFKA, SEND_EMAIL_BULK
from tests.integration.conftest import (
    ADMIN,
    BULK_SINK,
    GATEWAY,
    PROVIDER,
    dead_letter_of,
    end_offsets,
    eventually,
    kafka_signer,
    mails_to,
    unique_email,
)
from tests.integration.test_cli import parcours
from tests.unit.test_journey_advance import SEED as UNIT_SEED

WELCOME = {"subject": "Welcome {{ profile.first_name }}",
           "html": "<p>{{ ctx.offer }} in {{ event.nodeId }}</p>",
           "text": "{{ ctx.offer }} for {{ profile.first_name }} ({{ event.journeyId }})"}


async def journey_message(admin: httpx.AsyncClient, message_id: str, channel: str,
                          template: dict[str, Any] | None = None, publish: bool = True,
                          fields: list[dict[str, Any]] | None = None) -> None:
    """A journey message through the admin API: configured (its ``fields``: an optional
    string ``offer`` unless given), published, its message (the default template, or
    ``template``) published unless ``publish`` is False."""
    created = await admin.post(f"{ADMIN}/events", json={
        "eventId": message_id, "label": f"Journey message {message_id}", "channel": channel,
        "fields": fields if fields is not None else [{"id": "offer", "type": "string"}]})
    assert created.status_code == 201, created.text
    assert (await admin.post(f"{ADMIN}/events/{message_id}/publish")).status_code == 200
    if template is not None:
        edited = await admin.put(f"{ADMIN}/events/{message_id}/message", json=template)
        assert edited.status_code == 200, edited.text
    if publish:
        published = await admin.post(f"{ADMIN}/events/{message_id}/message/publish")
        assert published.status_code == 200, published.text


@pytest.fixture
async def tenant(pool: asyncpg.Pool) -> AsyncIterator[tuple[str, httpx.AsyncClient]]:
    """A tenant of its own, with an admin client and an ingest key's headers."""
    name = f"jms-{uuid.uuid4().hex[:10]}"
    async with pool.acquire() as connection:
        await create_tenant(connection, name, "journey message tests")
        admin_key = await create_key(connection, name, Scope.ADMIN, "tests")
    async with httpx.AsyncClient(timeout=30, headers={
            "authorization": f"Bearer {admin_key}"}) as client:
        yield name, client


async def test_a_journey_message_is_authored_previewed_proofed_and_published(
    tenant: tuple[str, httpx.AsyncClient], http: httpx.AsyncClient,
) -> None:
    _name, admin = tenant
    created = await admin.post(f"{ADMIN}/events", json={
        "eventId": "JMSwelcome", "label": "Welcome", "channel": "email",
        "fields": [{"id": "offer", "type": "string"}]})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["config"]["targeting"] == "profile" and body["config"]["marketing"] is True
    assert body["endpoint"] is None and body["jsonSchema"] is None
    published = await admin.post(f"{ADMIN}/events/JMSwelcome/publish")
    assert published.status_code == 200 and published.json()["state"] == "published"
    schema = await admin.get(f"{ADMIN}/events/JMSwelcome/schema")
    assert schema.status_code == 404 and "is a journey message" in schema.json()["detail"]
    assert (await admin.put(f"{ADMIN}/events/JMSwelcome/message",
                            json=WELCOME)).status_code == 200

    tester, profile_id = unique_email("jms-tester"), f"tp-{uuid.uuid4().hex[:10]}"
    put = await admin.put(f"{ADMIN}/test-profiles/{profile_id}", json={
        "email": tester, "firstName": "Tess", "sampleCtx": {"offer": "10% off"}})
    assert put.status_code == 200, put.text
    preview = await admin.post(f"{ADMIN}/events/JMSwelcome/message/preview",
                               json={"profileId": profile_id})
    assert preview.status_code == 200, preview.text
    # event is the journey's origin, as the sender fills it for a journey's message
    assert preview.json()["parts"] == {"subject": "Welcome Tess",
                                       "html": "<p>10% off in preview</p>",
                                       "text": "10% off for Tess (preview)"}
    proof = await admin.post(f"{ADMIN}/events/JMSwelcome/message/proof",
                             json={"profileId": profile_id})
    assert proof.status_code == 202 and proof.json()["sentTo"] == tester
    [mail] = await eventually(lambda: mails_to(http, tester), "the proof in the SMTP sink")
    assert mail["subject"] == "[Proof] Welcome Tess"

    live = await admin.post(f"{ADMIN}/events/JMSwelcome/message/publish")
    assert [v["state"] for v in live.json()["versions"]] == ["published"]
    paused = await admin.post(f"{ADMIN}/events/JMSwelcome/message/pause")
    assert paused.json()["versions"][0]["state"] == "paused"
    listed = (await admin.get(f"{ADMIN}/events")).json()
    assert [(e["config"]["eventId"], e["state"]) for e in listed] == [
        ("JMSwelcome", "published")]
    refused = await admin.post(f"{ADMIN}/events", json={
        "eventId": "JMSother", "label": "x", "channel": "sms", "targeting": "event"})
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["body", "targeting"]


async def test_no_event_reaches_a_journey_message_from_outside(
    admin: httpx.AsyncClient, http: httpx.AsyncClient, pool: asyncpg.Pool,
    producer: AIOKafkaProducer,
) -> None:
    """In the default tenant, whose ingest and kafka keys the fixtures hold; the message is
    published, so only its kind keeps the events out."""
    message = f"JMSout{uuid.uuid4().hex[:10]}"
    await journey_message(admin, message, "email", WELCOME)
    why = f"{message} is a journey message: its journey sends it; it takes no events"
    body = {"email": unique_email("jms-out"), "ctx": {"offer": "x"}}
    posted = await http.post(f"{GATEWAY}/v1/events/{message}", json=body)
    assert (posted.status_code, posted.json()) == (404, {"detail": why})
    batch = await http.post(f"{GATEWAY}/v1/events/{message}/batch", json={"events": [body]})
    assert (batch.status_code, batch.json()) == (404, {"detail": why})
    for path in ("schema", "some-pkey", "keys/order-1"):
        answer = await http.get(f"{GATEWAY}/v1/events/{message}/{path}")
        assert (answer.status_code, answer.json()) == (404, {"detail": why}), path

    signer: RecordSigner = await kafka_signer(pool)
    key = f"jms-{uuid.uuid4().hex}"
    record = orjson.dumps({"tenant": "default", "eventId": message, "eventKey": key, **body})
    before = await end_offsets(DEADLETTER)
    await producer.send_and_wait(EVENTS_KAFKA.name, record, body["email"].encode(),
                                 headers=signer.headers(record))
    letter = await dead_letter_of(before, key)
    assert letter["reason"] == f"invalid: eventId: {why}"
    async with pool.acquire() as connection:  # no status written for it
        assert not await connection.fetchval(
            "SELECT count(*) FROM event_status WHERE tenant_id = 'default' AND event_id = $1",
            message)


async def test_the_bulk_sender_renders_a_journey_message_from_a_journeys_send_request(
    admin: httpx.AsyncClient, http: httpx.AsyncClient, producer: AIOKafkaProducer,
) -> None:
    """What the journey engine hands over: template JMS… at a version, a journey origin,
    priority bulk. The sender renders it as it renders an event's message."""
    message = f"JMSsend{uuid.uuid4().hex[:10]}"
    await journey_message(admin, message, "email", WELCOME)
    version = (await admin.get(f"{ADMIN}/events/{message}/message")).json()["versions"][0]
    assert version["state"] == "published"
    email, instance = unique_email("jms-send"), uuid.uuid4().hex
    request = SendRequest(
        messageId=message_id("default", instance, "mail"), tenant="default",
        origin=JourneyOrigin(journeyId="seed", journeyVersion=1, nodeId="mail",
                             instanceId=instance),
        channel=Channel.EMAIL, priority="bulk",
        template=TemplateRef(eventId=message, version=version["version"]),
        to={"email": email}, profileId=f"p-{instance[:8]}", ctx={"offer": "Free socks"},
        profile={"profile_id": f"p-{instance[:8]}", "first_name": "Ada"},
        acceptedAt=time.time(), marketing=True)
    await producer.send_and_wait(SEND_EMAIL_BULK.name, request.model_dump_json().encode(),
                                 request.messageId.encode())
    [mail] = await eventually(lambda: mails_to(http, email, BULK_SINK),
                              "the journey's message in the bulk SMTP sink", 30)
    assert mail["subject"] == "Welcome Ada"
    assert "Free socks for Ada (seed)" in mail["text"]


async def test_a_deferred_journey_message_is_decided_again_as_marketing(
    tenant: tuple[str, httpx.AsyncClient], pool: asyncpg.Pool,
) -> None:
    """The engine holds a journey's message a rule deferred (quiet hours, fatigue); when it
    comes due the processor decides it again, with its journey message's configuration:
    not transactional, so marketing consent applies (this profile has none: excluded)."""
    name, admin = tenant
    await journey_message(admin, "JMSlater", "email", WELCOME)
    version = (await admin.get(f"{ADMIN}/events/JMSlater/message")).json()["versions"][0]
    email, instance = unique_email("jms-later"), uuid.uuid4().hex
    profile_id = f"p-{instance[:12]}"
    async with pool.acquire() as connection:
        await upsert_profiles(connection, name, [
            {"profile_id": profile_id, "email": email, "first_name": "Ada"}])
    request = SendRequest(
        messageId=message_id(name, instance, "mail"), tenant=name,
        origin=JourneyOrigin(journeyId="seed", journeyVersion=1, nodeId="mail",
                             instanceId=instance),
        channel=Channel.EMAIL, priority="bulk",
        template=TemplateRef(eventId="JMSlater", version=version["version"]),
        to={"email": email}, profileId=profile_id, ctx={},
        profile={"profile_id": profile_id, "email": email, "first_name": "Ada"},
        acceptedAt=time.time(), marketing=True)
    async with pool.acquire() as connection:
        await held_store.hold_messages(
            connection, [(request.model_dump(mode="json"), datetime.now(UTC))], [])

    async def decided() -> asyncpg.Record | None:
        row: asyncpg.Record | None = await pool.fetchrow(
            "SELECT outcome, rule_id FROM message_trace WHERE tenant_id = $1"
            " AND message_id = $2 AND stage = 'decided'", name, uuid.UUID(request.messageId))
        return row

    row = await eventually(decided, "the processor deciding the released message", 20)
    assert (row["outcome"], row["rule_id"]) == ("excluded", "consent")


# The seed journey, its actions naming journey messages of the tenant's.
SEED = copy.deepcopy(UNIT_SEED)
NAMES = {"mail": "JMSwelcome", "push": "JMSwelcomePush", "reminder": "JMSreminder",
         "thanks": "JMSthanks"}
for node in SEED["nodes"]:
    if node["id"] in NAMES:
        node["message"] = NAMES[node["id"]]
SEED["nodes"][4]["branches"][0]["event"]["eventId"] = "JEVpurchase"
SEED["exit"] = []
PURCHASE = {"fields": [{"id": "customerId", "type": "string", "required": True},
                       {"id": "purchaseMessage", "type": "string"}],
            "profileKey": "customerId"}


async def test_a_journey_validates_its_actions_against_the_tenants_journey_messages(
    tenant: tuple[str, httpx.AsyncClient],
) -> None:
    _name, admin = tenant
    assert (await admin.put(f"{ADMIN}/journey-events/JEVpurchase",
                            json=PURCHASE)).status_code == 201
    for node_id, channel in (("mail", "email"), ("push", "push"), ("reminder", "email"),
                             ("thanks", "push")):
        await journey_message(admin, NAMES[node_id], channel)
    stored = await admin.put(f"{ADMIN}/journeys/seed", json=SEED)
    assert stored.status_code == 201, stored.text
    assert stored.json()["publishable"] is True, stored.json()
    paused = await admin.post(f"{ADMIN}/events/JMSreminder/message/pause")
    assert paused.status_code == 200  # a paused live version still counts
    assert (await admin.post(f"{ADMIN}/journeys/seed/validate")).json()["publishable"]

    await journey_message(admin, "JMSdraftOnly", "email", publish=False)
    await journey_message(admin, "JMSsms", "sms")
    bad = copy.deepcopy(SEED)
    changes = {"mail": "JMSdraftOnly", "push": "JMSsms", "reminder": "JMSmissing",
               "thanks": "EVTthankYou"}
    for node in bad["nodes"]:
        if node["id"] in changes:
            node["message"] = changes[node["id"]]
    assert (await admin.put(f"{ADMIN}/journeys/seed", json=bad)).status_code == 200
    validated = (await admin.post(f"{ADMIN}/journeys/seed/validate")).json()
    assert validated["publishable"] is False
    found = {p["node"]: p["message"] for p in validated["problems"]
             if p["severity"] == "error"}
    assert found == {
        "mail": "the message 'JMSdraftOnly' is not published",
        "push": "the message 'JMSsms' is an SMS message; this node sends a push message",
        "reminder": "no message 'JMSmissing' in this journey",
        "thanks": "'EVTthankYou' is a transactional event: a journey's messages are JMS…"
                  " configurations (POST /admin/v1/events with eventId JMS…, channel push)",
    }
    # unpublishing the configuration takes its message out of reach too
    assert (await admin.post(f"{ADMIN}/events/JMSwelcome/unpublish")).status_code == 200
    assert (await admin.put(f"{ADMIN}/journeys/seed", json=SEED)).json()["problems"] == [
        {"node": "mail", "severity": "error",
         "message": "the message 'JMSwelcome' is not published"}]


def test_a_journey_message_from_the_command_line(tmp_path: Path) -> None:
    """parcours events/message work for a JMS… id as for an EVT… one: a push message
    created, published, edited, proofed to the test profile's device; no schema."""
    key = parcours("keys", "create", "--tenant", "default", "--scope", "admin").stdout.strip()
    message = f"JMScli{uuid.uuid4().hex[:8]}"
    config = tmp_path / "jms.json"
    config.write_text(json.dumps({"eventId": message, "label": "Thanks", "channel": "push"}))
    created = parcours("events", "create", str(config), admin_key=key)
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["config"]["targeting"] == "profile"
    assert parcours("events", "publish", message, admin_key=key).returncode == 0
    schema = parcours("events", "schema", message, admin_key=key)
    assert schema.returncode != 0 and "is a journey message" in schema.stderr
    template = tmp_path / "push.json"
    template.write_text(json.dumps({"title": "Thanks {{ profile.first_name }}",
                                    "body": "See you soon", "data": {}}))
    assert parcours("message", "edit", message, str(template), admin_key=key).returncode == 0
    token = f"tok-{uuid.uuid4().hex}"
    profile_id = f"cli-{uuid.uuid4().hex[:8]}"
    profile = tmp_path / "tess.json"
    profile.write_text(json.dumps({"firstName": "Tess", "pushRegistrations": [
        {"registrationToken": token, "application": "shop", "pushPlatform": "fcm"}]}))
    assert parcours("test-profiles", "put", profile_id, str(profile),
                    admin_key=key).returncode == 0
    proof = parcours("message", "proof", message, "--profile", profile_id, admin_key=key)
    assert proof.returncode == 0, proof.stderr
    [sent] = httpx.get(f"{PROVIDER}/messages", params={"channel": "push", "to": token}).json()
    assert sent["payload"]["title"] == "[Proof] Thanks Tess"
    published = parcours("message", "publish", message, admin_key=key)
    assert json.loads(published.stdout)["versions"][0]["state"] == "published"
    listed = parcours("events", "list", admin_key=key).stdout
    assert any(line.split()[:2] == [message, "push"] for line in listed.splitlines())
