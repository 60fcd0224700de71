"""The senders' part of the delivery rules, on the real stack: a typology's control rules
run on the rendered message before hand-over (the first failing rule excludes it); refusals
that blame the address feed quarantine (SMTP 5xx and provider 4xx at once, SMTP 4xx after
the tenant's soft-failure threshold); a settled message moves its contact history and
leaves a trace row.

Each test has a tenant of its own: the senders' rules cache then reads its typologies
fresh, never a copy from before they were inserted. Send records are produced straight to
the send topics with their typology, as the processor's decision step writes them.
"""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer

from shared.adapters.catalog_store import save_event
from shared.adapters.contact_history import known
from shared.adapters.key_store import create_key
from shared.domain.api_keys import Scope
from shared.domain.events import Channel, EventConfig
from shared.domain.routing import EventOrigin, SendRequest, message_id
from shared.topics import SEND_EMAIL_TX, SEND_SMS_TX
from tests.integration.conftest import (
    GATEWAY,
    PROVIDER,
    SINK,
    eventually,
    final_status,
    mails_to,
    provider_messages,
    publish_event,
    settings,
    unique_email,
)

EMAIL_METRICS = f"http://127.0.0.1:{settings.sender_email_metrics_port}/metrics"
TEMPLATE = {"subject": "About {{ ctx.item }}",
            "html": '<p>{{ ctx.item }}: <a href="https://shop.example/o">your order</a></p>',
            "text": "{{ ctx.item }}"}


def new_tenant() -> str:
    return f"sendrules-{uuid.uuid4().hex[:10]}"


async def control_rule(pool: asyncpg.Pool, tenant: str, **definition: Any) -> str:
    rule_id = f"r{uuid.uuid4().int % 10**9}"
    await pool.execute(
        "INSERT INTO delivery_rules (tenant_id, rule_id, kind, definition)"
        " VALUES ($1, $2, 'control', $3)",
        tenant, rule_id, {"kind": "control", "name": f"control {rule_id}", **definition})
    return rule_id


async def typology(pool: asyncpg.Pool, tenant: str, rule_ids: list[str]) -> str:
    typology_id = f"t{uuid.uuid4().int % 10**9}"
    await pool.execute(
        "INSERT INTO typologies (tenant_id, typology_id, name, rule_ids) VALUES ($1, $2, $3, $4)",
        tenant, typology_id, "checked", rule_ids)
    return typology_id


def request(tenant: str, event_id: str, channel: Channel, to: dict[str, str],
            typology_id: str | None = None) -> SendRequest:
    pkey = uuid.uuid4().hex
    return SendRequest(messageId=message_id(tenant, pkey), tenant=tenant,
                       origin=EventOrigin(eventId=event_id, pKey=pkey), channel=channel,
                       to=to, typology=typology_id, ctx={"item": "Boots", "quantity": 1},
                       acceptedAt=time.time())


async def produce(producer: AIOKafkaProducer, send: SendRequest) -> None:
    """With a contact history row, as the processor's decision step records it."""
    topic = SEND_EMAIL_TX if send.channel is Channel.EMAIL else SEND_SMS_TX
    await producer.send_and_wait(topic.name, send.model_dump_json().encode(),
                                 send.messageId.encode())


async def contact(pool: asyncpg.Pool, send: SendRequest) -> None:
    await pool.execute(
        "INSERT INTO contact_history (tenant_id, message_id, channel, origin_kind, origin_id,"
        " transactional, contact_at, outcome) VALUES ($1, $2, $3, 'event', $4, true, now(),"
        " 'sent')",
        send.tenant, uuid.UUID(send.messageId), send.channel.value, send.template_owner)


async def settled(pool: asyncpg.Pool, send: SendRequest) -> asyncpg.Record:
    """The event's status, once the sender settled the message."""
    async def probe() -> asyncpg.Record | None:
        return await pool.fetchrow(
            "SELECT s.status, s.reason, d.state, d.detail FROM event_status s"
            " JOIN deliveries d ON d.message_id = s.message_id"
            " WHERE s.pkey = $1 AND d.state <> 'sending' AND s.status <> 'processing'",
            send.event.pKey if send.event else None)
    return await eventually(probe, f"message {send.messageId} settled")


async def story(pool: asyncpg.Pool, send: SendRequest) -> tuple[list[dict[str, Any]], Any]:
    """The message's trace rows, and its contact history outcome."""
    trace = await pool.fetch(
        "SELECT stage, outcome, rule_id, reason FROM message_trace"
        " WHERE tenant_id = $1 AND message_id = $2 ORDER BY at",
        send.tenant, uuid.UUID(send.messageId))
    history = await pool.fetchrow(
        "SELECT outcome, rule_id, reason FROM contact_history"
        " WHERE tenant_id = $1 AND message_id = $2", send.tenant, uuid.UUID(send.messageId))
    return [dict(r) for r in trace], history and dict(history)


async def control_exclusions(http: httpx.AsyncClient) -> float:
    text = (await http.get(EMAIL_METRICS)).text
    wanted = {'kind="control"', 'outcome="excluded"', 'stage="sender"'}
    return sum(float(value) for labels, value in re.findall(
        r'^parcours_rule_outcomes_total\{([^}]*)\} (\S+)$', text, re.MULTILINE)
        if wanted <= set(labels.split(",")))


async def test_a_message_without_subject_is_excluded_by_the_control_rule(
    http: httpx.AsyncClient, pool: asyncpg.Pool, producer: AIOKafkaProducer
) -> None:
    tenant = new_tenant()
    event_id = await publish_event(pool, "event", {**TEMPLATE, "subject": "  "}, tenant=tenant)
    rule = await control_rule(pool, tenant, checks=["subjectPresent", "noUnrenderedTags"])
    checked = await typology(pool, tenant, [rule])
    email = unique_email("nosubject")
    send = request(tenant, event_id, Channel.EMAIL, {"email": email}, checked)
    await contact(pool, send)
    before = await control_exclusions(http)
    await produce(producer, send)

    row = await settled(pool, send)
    reason = f"rule {rule} (control): the subject is empty"
    assert (row["status"], row["reason"]) == ("excluded", reason)
    assert (row["state"], row["detail"]) == ("failed", reason)
    trace, history = await story(pool, send)
    assert trace == [{"stage": "control", "outcome": "excluded", "rule_id": rule,
                      "reason": "the subject is empty"}]
    assert history == {"outcome": "excluded", "rule_id": rule, "reason": "the subject is empty"}
    assert await control_exclusions(http) - before >= 1
    assert await mails_to(http, email) == []


async def test_rules_run_in_the_typologys_order_and_a_passing_message_goes(
    http: httpx.AsyncClient, pool: asyncpg.Pool, producer: AIOKafkaProducer
) -> None:
    tenant = new_tenant()
    relative = {**TEMPLATE, "html": '<p><a href="foo/bar">order</a> {{ ctx.item }}</p>'}
    bad_event = await publish_event(pool, "event", relative, tenant=tenant)
    good_event = await publish_event(pool, "event", TEMPLATE, tenant=tenant)
    subject = await control_rule(pool, tenant, checks=["subjectPresent"])
    links = await control_rule(pool, tenant, checks=["absoluteLinks", "httpsLinks"])
    size = await control_rule(pool, tenant, checks=["maxBytes"], maxBytes=10)  # never reached
    checked = await typology(pool, tenant, [subject, links, size])
    big_ok = await typology(pool, tenant, [subject, links])
    bad_to, good_to = unique_email("relative"), unique_email("good")
    bad = request(tenant, bad_event, Channel.EMAIL, {"email": bad_to}, checked)
    good = request(tenant, good_event, Channel.EMAIL, {"email": good_to}, big_ok)
    for send in (bad, good):
        await contact(pool, send)
        await produce(producer, send)

    row = await settled(pool, bad)
    assert row["status"] == "excluded"
    assert row["reason"] == f"rule {links} (control): link 'foo/bar' is not absolute"
    assert (await settled(pool, good))["status"] == "processed"
    assert len(await mails_to(http, good_to)) == 1
    assert await mails_to(http, bad_to) == []
    trace, history = await story(pool, good)
    assert [(t["stage"], t["outcome"]) for t in trace] == [("handover", "delivered")]
    assert history is not None and history["outcome"] == "delivered"


async def quarantine_row(pool: asyncpg.Pool, tenant: str, channel: str, address: str
                         ) -> asyncpg.Record | None:
    return await pool.fetchrow(
        "SELECT soft_failures, quarantined_at, release_at, reason FROM quarantine"
        " WHERE tenant_id = $1 AND channel = $2 AND address = $3", tenant, channel, address)


async def test_an_smtp_5xx_quarantines_the_address_at_once(
    http: httpx.AsyncClient, pool: asyncpg.Pool, producer: AIOKafkaProducer
) -> None:
    tenant = new_tenant()
    event_id = await publish_event(pool, "event", TEMPLATE, tenant=tenant)
    email = unique_email("Gone").replace("Gone", "GoNe")  # quarantined as lower case
    await http.post(f"{SINK}/reject",
                    params={"reply": "550 5.1.1 no such user", "count": 1, "to": email})
    send = request(tenant, event_id, Channel.EMAIL, {"email": email})
    await contact(pool, send)
    await produce(producer, send)

    row = await settled(pool, send)
    assert row["status"] == "deliveryFailed" and "550" in row["reason"]
    found = await quarantine_row(pool, tenant, "email", email.lower())
    assert found is not None and found["quarantined_at"] is not None
    assert (found["release_at"] - found["quarantined_at"]).days == 30
    assert found["reason"].startswith("hard failure: smtp 550")
    now = datetime.now(UTC)
    async with pool.acquire() as connection:  # as the decision step reads it
        read = await known(connection, tenant, [], [], [
            ("email", email.lower()), ("email", "other@example.com"), ("sms", email.lower())],
            now)
    assert read.quarantined == {("email", email.lower()): found["reason"]}
    trace, history = await story(pool, send)
    assert [(t["stage"], t["outcome"]) for t in trace] == [("handover", "failed")]
    assert history is not None and history["outcome"] == "failed"


async def test_smtp_4xx_count_one_soft_failure_per_message_up_to_the_tenants_threshold(
    http: httpx.AsyncClient, pool: asyncpg.Pool, producer: AIOKafkaProducer
) -> None:
    tenant = new_tenant()
    # This tenant quarantines at the second soft failure, however close together.
    await pool.execute("INSERT INTO rule_settings (tenant_id, settings) VALUES ($1, $2)",
                       tenant, {"quarantine": {"softFailures": 2, "softSpacing": 0}})
    event_id = await publish_event(pool, "event", TEMPLATE, tenant=tenant)
    email = unique_email("full")
    # Refused three times, then delivered: one soft failure, not three.
    await http.post(f"{SINK}/reject",
                    params={"reply": "452 4.2.2 mailbox full", "count": 3, "to": email})
    first = request(tenant, event_id, Channel.EMAIL, {"email": email})
    await produce(producer, first)
    assert (await settled(pool, first))["status"] == "processed"
    found = await quarantine_row(pool, tenant, "email", email)
    assert found is not None and found["soft_failures"] == 1
    assert found["quarantined_at"] is None
    assert len(await mails_to(http, email)) == 1

    await http.post(f"{SINK}/reject",
                    params={"reply": "452 4.2.2 mailbox full", "count": 1, "to": email})
    second = request(tenant, event_id, Channel.EMAIL, {"email": email})
    await produce(producer, second)
    assert (await settled(pool, second))["status"] == "processed"
    found = await quarantine_row(pool, tenant, "email", email)
    assert found is not None and found["soft_failures"] == 2
    assert found["quarantined_at"] is not None
    assert found["reason"].startswith("2 soft failures") and "4.2.2" in found["reason"]


async def test_a_4xx_that_does_not_blame_the_address_is_not_counted(
    http: httpx.AsyncClient, pool: asyncpg.Pool, producer: AIOKafkaProducer
) -> None:
    tenant = new_tenant()
    event_id = await publish_event(pool, "event", TEMPLATE, tenant=tenant)
    email = unique_email("later")
    await http.post(f"{SINK}/reject",
                    params={"reply": "451 4.3.0 try again later", "count": 1, "to": email})
    send = request(tenant, event_id, Channel.EMAIL, {"email": email})
    await produce(producer, send)
    assert (await settled(pool, send))["status"] == "processed"
    assert await quarantine_row(pool, tenant, "email", email) is None


def unique_phone() -> str:
    return f"+1555{uuid.uuid4().int % 10**7:07d}"


async def test_a_provider_400_quarantines_the_number_a_429_does_not(
    http: httpx.AsyncClient, pool: asyncpg.Pool, producer: AIOKafkaProducer
) -> None:
    tenant = new_tenant()
    event_id = await publish_event(pool, "event", {"text": "{{ ctx.item }}"}, channel="sms",
                                   tenant=tenant)
    refused, throttled = unique_phone(), unique_phone()
    await http.post(f"{PROVIDER}/reject", params={"status": 400, "count": 1, "to": refused})
    bad = request(tenant, event_id, Channel.SMS, {"mobilePhone": refused})
    await produce(producer, bad)
    assert (await settled(pool, bad))["status"] == "deliveryFailed"
    found = await quarantine_row(pool, tenant, "sms", refused)
    assert found is not None and found["quarantined_at"] is not None
    assert found["reason"].startswith("hard failure: provider 400")

    await http.post(f"{PROVIDER}/reject", params={"status": 429, "count": 1, "to": throttled})
    slow = request(tenant, event_id, Channel.SMS, {"mobilePhone": throttled})
    await produce(producer, slow)
    assert (await settled(pool, slow))["status"] == "processed"
    assert len(await provider_messages(http, "sms", throttled)) == 1
    assert await quarantine_row(pool, tenant, "sms", throttled) is None


async def test_end_to_end_the_processor_names_the_typology_and_the_sender_controls(
    pool: asyncpg.Pool,
) -> None:
    """Through the gateway: the event configuration's typology reaches the sender on the
    send record; the message's trace shows the decision, then the control or the
    hand-over, and its contact history ends excluded or delivered."""
    tenant = new_tenant()
    async with pool.acquire() as connection:
        await connection.execute("INSERT INTO tenants (tenant_id, name) VALUES ($1, $1)", tenant)
        key = await create_key(connection, tenant, Scope.INGEST, "sender rules tests")
    links = await control_rule(pool, tenant, checks=["absoluteLinks", "httpsLinks"])
    checked = await typology(pool, tenant, [links])
    plain_http = {**TEMPLATE, "html": '<a href="http://shop.example/o">{{ ctx.item }}</a>'}
    events = {}
    for name, template in (("bad", plain_http), ("good", TEMPLATE)):
        events[name] = f"EVTsendrules{uuid.uuid4().hex[:8]}"
        await save_event(pool, tenant, EventConfig.model_validate({
            "event_id": events[name], "label": name, "channel": "email", "targeting": "event",
            "typology": checked, "fields": [{"id": "item", "type": "string"}]}), template)
    async with httpx.AsyncClient(timeout=30, headers={"authorization": f"Bearer {key}"}
                                 ) as http:
        hrefs, addresses = {}, {}
        for name, event_id in events.items():
            addresses[name] = unique_email(f"e2e{name}")
            response = await http.post(f"{GATEWAY}/v1/events/{event_id}",
                                       json={"email": addresses[name], "ctx": {"item": "Hat"}})
            assert response.status_code == 202, response.text
            hrefs[name] = response.json()["href"]

        bad = await final_status(http, hrefs["bad"])
        assert (bad["status"], bad["reason"]) == (
            "excluded", f"rule {links} (control): link 'http://shop.example/o' is not https")
        assert (await final_status(http, hrefs["good"]))["status"] == "processed"
        assert await mails_to(http, addresses["bad"]) == []
        assert len(await mails_to(http, addresses["good"])) == 1
        for name, last in (("bad", ("control", "excluded")),
                           ("good", ("handover", "delivered"))):
            trace = (await http.get(f"{GATEWAY}{hrefs[name]}/trace")).json()
            steps = [(s["stage"], s["outcome"]) for s in trace["steps"]]
            assert steps == [("decided", "sent"), last], steps
            history = await pool.fetchval(
                "SELECT outcome FROM contact_history WHERE tenant_id = $1 AND message_id = $2",
                tenant, uuid.UUID(trace["messageId"]))
            assert history == last[1]
