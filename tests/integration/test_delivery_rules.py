"""Delivery rules in the processor, on the real stack: each rule excludes or defers a
message end to end, names itself in the event's status, and two decisions about one
profile at the same instant can never both pass a cap of 1.

Each test has a tenant of its own, with its rules written before its first event: the
services load a tenant's rules on first use, so no cache stands in the way."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import orjson
import pytest

from shared.adapters.catalog_store import save_event
from shared.adapters.key_store import create_key
from shared.adapters.postgres import connect
from shared.adapters.profile_schema_store import ProfileSchemaCache, save_schema
from shared.adapters.profile_store import upsert_profiles
from shared.adapters.rules_store import TenantRulesCache
from shared.domain.api_keys import Scope
from shared.domain.events import EventConfig
from shared.domain.profile_schema import ProfileSchema
from shared.domain.routing import (
    EventOrigin,
    JourneyOrigin,
    SendRequest,
    TemplateRef,
    message_id,
)
from shared.outgoing.step import Pending, Step, decide_messages
from shared.topics import SEND_EMAIL_BULK
from tests.integration.conftest import (
    ADMIN,
    BULK_SINK,
    DEFAULT_TEMPLATE,
    GATEWAY,
    eventually,
    final_status,
    mails_to,
    settings,
)


class Tenant:
    def __init__(self, pool: asyncpg.Pool, name: str, http: httpx.AsyncClient) -> None:
        self.pool, self.name, self.http = pool, name, http

    async def rule(self, number: int, definition: dict[str, Any]) -> str:
        rule_id = f"r{number}"
        await self.pool.execute(
            "INSERT INTO delivery_rules (tenant_id, rule_id, kind, definition)"
            " VALUES ($1, $2, $3, $4)", self.name, rule_id, definition["kind"], definition)
        return rule_id

    async def typology(self, typology_id: str, rule_ids: list[str], default: bool = False
                       ) -> None:
        await self.pool.execute(
            "INSERT INTO typologies (tenant_id, typology_id, name, rule_ids, is_default)"
            " VALUES ($1, $2, $3, $4, $5)", self.name, typology_id, typology_id, rule_ids,
            default)

    async def event(self, *, targeting: str = "profile", **config: Any) -> str:
        event_id = f"EVTrules{uuid.uuid4().hex[:10]}"
        await save_event(self.pool, self.name, EventConfig.model_validate({
            "event_id": event_id, "label": "rules", "channel": "email",
            "targeting": targeting, "fields": [{"id": "item", "type": "string"}], **config,
        }), DEFAULT_TEMPLATE)
        return event_id

    async def profile(self, email: str, time_zone: str | None = None, **fields: Any) -> str:
        profile_id = f"p-{uuid.uuid4().hex[:12]}"
        async with self.pool.acquire() as connection:
            await upsert_profiles(connection, self.name, [
                {"profile_id": profile_id, "email": email, "first_name": "Ada", **fields}])
            await connection.execute(
                "UPDATE profiles SET time_zone = $3 WHERE tenant_id = $1 AND profile_id = $2",
                self.name, profile_id, time_zone)
        return profile_id

    async def consent(self, profile_id: str, kind: str, name: str, value: str) -> None:
        await self.pool.execute(
            "INSERT INTO consents (tenant_id, profile_id, kind, name, value, changed_at,"
            " source) VALUES ($1, $2, $3, $4, $5, now(), 'test')",
            self.name, profile_id, kind, name, value)

    async def post(self, event_id: str, email: str, item: str = "x") -> str:
        response = await self.http.post(f"{GATEWAY}/v1/events/{event_id}",
                                        json={"email": email, "ctx": {"item": item}})
        assert response.status_code == 202, response.text
        return str(response.json()["href"])

    async def status(self, href: str) -> dict[str, Any]:
        return (await self.http.get(f"{GATEWAY}{href}")).json()


@pytest.fixture
async def tenant(pool: asyncpg.Pool) -> AsyncIterator[Tenant]:
    name = f"rules-{uuid.uuid4().hex[:10]}"
    async with pool.acquire() as connection:
        await connection.execute("INSERT INTO tenants (tenant_id, name) VALUES ($1, $1)", name)
        key = await create_key(connection, name, Scope.INGEST, "rules tests")
    async with httpx.AsyncClient(timeout=30, headers={"authorization": f"Bearer {key}"}
                                 ) as client:
        yield Tenant(pool, name, client)


def email() -> str:
    return f"rules-{uuid.uuid4().hex[:12]}@example.com"


async def test_marketing_needs_consent_and_the_status_names_the_rule(tenant: Tenant):
    event_id = await tenant.event(marketing=True)
    unknown, opted_in = email(), email()
    await tenant.profile(unknown)
    await tenant.consent(await tenant.profile(opted_in), "marketing", "email", "opted-in")
    refused = await final_status(tenant.http, await tenant.post(event_id, unknown))
    assert refused["status"] == "excluded"
    assert refused["reason"] == "rule consent (consent): no marketing consent on email (unknown)"
    assert (await final_status(tenant.http, await tenant.post(event_id, opted_in))
            )["status"] == "processed"
    assert await mails_to(tenant.http, unknown) == []


async def test_a_blocked_channel_stops_even_a_transactional_message(tenant: Tenant):
    event_id = await tenant.event()
    address = email()
    await tenant.consent(await tenant.profile(address), "block", "email", "blocked")
    status = await final_status(tenant.http, await tenant.post(event_id, address))
    assert (status["status"], status["reason"]) == (
        "excluded", "rule consent (consent): the profile's email channel is blocked")


async def test_denylisted_domains_and_quarantined_addresses_are_excluded_event_based_too(
    tenant: Tenant,
):
    event_id = await tenant.event(targeting="event")
    await tenant.pool.execute(
        "INSERT INTO denylist (tenant_id, channel, entry, kind) VALUES ($1, 'email',"
        " 'denied.example', 'domain')", tenant.name)
    quarantined = email()
    await tenant.pool.execute(
        "INSERT INTO quarantine (tenant_id, channel, address, quarantined_at, release_at,"
        " reason) VALUES ($1, 'email', $2, now(), now() + interval '30 days',"
        " '550 no such user')", tenant.name, quarantined)
    denied = await final_status(tenant.http, await tenant.post(event_id, "Someone@DENIED.example"))
    assert denied["status"] == "excluded"
    assert denied["reason"].startswith("rule denylist (denylist):")
    held_back = await final_status(tenant.http, await tenant.post(event_id, quarantined))
    assert held_back["reason"].startswith(
        "rule quarantine (quarantine): the address is in quarantine: 550 no such user")
    assert (await final_status(tenant.http, await tenant.post(event_id, email()))
            )["status"] == "processed"


async def test_a_filtering_rule_of_the_default_typology_applies_to_marketing(tenant: Tenant):
    rule = await tenant.rule(1, {"kind": "filtering", "name": "Seattle only", "condition": {
        "path": "city", "op": "ne", "value": "Seattle"}})
    await tenant.typology("t1", [rule], default=True)
    marketing, transactional = await tenant.event(marketing=True), await tenant.event()
    portland = email()
    await tenant.consent(await tenant.profile(portland, city="Portland"), "marketing", "email",
                         "opted-in")
    status = await final_status(tenant.http, await tenant.post(marketing, portland))
    assert status["reason"] == "rule r1 (filtering): 'Seattle only' matches"
    # a transactional event gets no default typology
    assert (await final_status(tenant.http, await tenant.post(transactional, portland))
            )["status"] == "processed"


async def test_fatigue_caps_a_profile_across_targets_and_counts_what_was_sent(tenant: Tenant):
    await tenant.rule(1, {"kind": "fatigue", "name": "two a day", "channels": ["email"],
                          "max": 2, "period": "P1D", "transactional": "capped"})
    event_id = await tenant.event()
    address = email()
    await tenant.profile(address)
    hrefs = [await tenant.post(event_id, address, f"n{i}") for i in range(4)]
    statuses = [await final_status(tenant.http, href) for href in hrefs]
    assert sorted(s["status"] for s in statuses) == ["excluded", "excluded", "processed",
                                                    "processed"]
    assert {s["reason"] for s in statuses if s["status"] == "excluded"} == {
        "rule r1 (fatigue): 'two a day': at most 2 per 1 day"}
    counts = await tenant.pool.fetch(
        "SELECT outcome, count(*) FROM contact_history WHERE tenant_id = $1 GROUP BY outcome",
        tenant.name)
    assert {r["outcome"]: r["count"] for r in counts} in (
        {"sent": 2, "excluded": 2}, {"sent": 1, "delivered": 1, "excluded": 2},
        {"delivered": 2, "excluded": 2})
    metrics = (await tenant.http.get(
        f"http://127.0.0.1:{settings.processor_metrics_port}/metrics")).text
    wanted = {'kind="fatigue"', 'rule="r1"', 'outcome="exclude"', 'stage="processor"'}
    assert any(wanted <= set(labels.split(",")) and float(value) >= 1 for labels, value in
               re.findall(r'^parcours_rule_outcomes_total\{([^}]*)\} (\S+)$', metrics,
                          re.MULTILINE))


async def test_a_deferred_message_waits_then_goes_when_the_window_allows(tenant: Tenant):
    await tenant.rule(1, {"kind": "fatigue", "name": "one per 3 s", "channels": ["email"],
                          "max": 1, "period": "PT3S", "transactional": "capped",
                          "atCap": "defer"})
    event_id = await tenant.event()
    address = email()
    await tenant.profile(address)
    first = await tenant.post(event_id, address, "first")
    assert (await final_status(tenant.http, first))["status"] == "processed"
    second = await tenant.post(event_id, address, "second")

    async def deferred() -> dict[str, Any] | None:
        status = await tenant.status(second)
        return status if "deferred until" in (status.get("reason") or "") else None

    waiting = await eventually(deferred, "the second message deferred", 10)
    assert waiting["status"] == "pending"
    assert "rule r1 (fatigue): 'one per 3 s': at most 1 per 3 seconds" in waiting["reason"]
    assert (await final_status(tenant.http, second, 20))["status"] == "processed"
    assert len(await mails_to(tenant.http, address)) == 2


async def test_quiet_hours_defer_and_the_message_is_decided_again_when_due(tenant: Tenant):
    now = datetime.now(UTC)
    start, end = (now - timedelta(hours=1)).time(), (now + timedelta(hours=1)).time()
    await tenant.rule(1, {"kind": "quietHours", "name": "quiet", "channels": ["email"],
                          "start": start.strftime("%H:%M"), "end": end.strftime("%H:%M"),
                          "transactional": "applies"})
    event_id = await tenant.event()
    address = email()
    await tenant.profile(address, time_zone="UTC")
    href = await tenant.post(event_id, address)

    async def held() -> asyncpg.Record | None:
        return await tenant.pool.fetchrow(
            "SELECT due_at FROM held_messages WHERE tenant_id = $1", tenant.name)

    row = await eventually(held, "the message held", 10)
    expected = now.replace(hour=end.hour, minute=end.minute, second=0, microsecond=0)
    if expected < now:
        expected += timedelta(days=1)
    assert row["due_at"] == expected
    assert "rule r1 (quietHours)" in (await tenant.status(href))["reason"]
    # The rule goes; come due, the message is decided again under the rules of then.
    await tenant.pool.execute("DELETE FROM delivery_rules WHERE tenant_id = $1", tenant.name)

    async def sent() -> dict[str, Any] | None:
        await tenant.pool.execute("UPDATE held_messages SET due_at = now() WHERE tenant_id = $1",
                                  tenant.name)
        status = await tenant.status(href)
        return status if status["status"] == "processed" else None

    await eventually(sent, "the message sent once the rule is gone", 20)


async def test_two_workers_deciding_one_profile_at_once_never_both_pass_a_cap_of_one(
    pool: asyncpg.Pool,
):
    """Two connections (two processor workers, two partitions) decide a message each for
    one profile at the same instant: the advisory lock makes the second see the first."""
    name = f"race-{uuid.uuid4().hex[:10]}"
    await pool.execute(
        "INSERT INTO delivery_rules (tenant_id, rule_id, kind, definition) VALUES"
        " ($1, 'r1', 'fatigue', $2)", name, {"kind": "fatigue", "name": "one", "max": 1,
                                              "period": "P1D", "transactional": "capped"})
    step = Step(TenantRulesCache(pool, 60), ProfileSchemaCache(pool))
    profile = {"profile_id": "p-race", "email": "race@example.com"}

    def pending(n: int) -> Pending:
        pkey = f"race-{uuid.uuid4().hex}"
        return Pending(SendRequest(
            messageId=message_id(name, pkey), tenant=name,
            origin=EventOrigin(eventId="EVTrace", pKey=pkey), channel="email",
            template=TemplateRef(eventId="EVTrace", version=1),
            to={"email": f"race{n}@example.com"}, profileId="p-race", ctx={},
            profile=profile, acceptedAt=0), transactional=True)

    for _round in range(10):
        first, second = await connect(settings.pg_dsn), await connect(settings.pg_dsn)
        try:
            now = datetime.now(UTC)
            results = await asyncio.gather(
                decide_messages(first, step, [pending(1)], now),
                decide_messages(second, step, [pending(2)], now))
        finally:
            await first.close()
            await second.close()
        outcomes = sorted(d.outcome for [d] in results)
        await pool.execute("DELETE FROM contact_history WHERE tenant_id = $1", name)
        assert outcomes == ["exclude", "send"], outcomes
    await pool.execute("DELETE FROM delivery_rules WHERE tenant_id = $1", name)


async def test_every_decision_is_traced_with_each_rules_verdict(tenant: Tenant):
    event_id = await tenant.event(marketing=True)
    address = email()
    await tenant.profile(address)
    href = await tenant.post(event_id, address)
    assert (await final_status(tenant.http, href))["status"] == "excluded"
    row = await tenant.pool.fetchrow(
        "SELECT stage, outcome, rule_id, verdicts FROM message_trace WHERE tenant_id = $1",
        tenant.name)
    assert (row["stage"], row["outcome"], row["rule_id"]) == ("decided", "excluded", "consent")
    verdicts = row["verdicts"] if isinstance(row["verdicts"], list) else orjson.loads(
        row["verdicts"])
    assert [(v["rule"], v["outcome"]) for v in verdicts] == [
        ("denylist", "pass"), ("quarantine", "pass"), ("consent", "exclude")]


async def test_cancel_a_scheduled_or_deferred_event_and_nothing_is_sent(tenant: Tenant):
    event_id = await tenant.event()
    scheduled_to, deferred_to = email(), email()
    await tenant.profile(scheduled_to)
    await tenant.profile(deferred_to, time_zone="UTC")
    later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    response = await tenant.http.post(f"{GATEWAY}/v1/events/{event_id}", json={
        "email": scheduled_to, "ctx": {"item": "later"}, "scheduled": later})
    scheduled = str(response.json()["href"])

    async def held_event() -> bool:
        return bool(await tenant.pool.fetchval(
            "SELECT count(*) FROM held_events WHERE pkey = $1", scheduled.rsplit("/", 1)[1]))

    await eventually(held_event, "the scheduled event held", 10)
    cancelled = await tenant.http.delete(f"{GATEWAY}{scheduled}")
    assert cancelled.status_code == 200, cancelled.text
    assert (cancelled.json()["status"], cancelled.json()["reason"]) == ("ignored", "cancelled")
    assert not await held_event()
    assert await tenant.pool.fetchval(
        "SELECT outcome FROM contact_history WHERE tenant_id = $1", tenant.name) == "excluded"

    now = datetime.now(UTC)
    await tenant.rule(1, {"kind": "quietHours", "name": "quiet", "channels": ["email"],
                          "start": (now - timedelta(hours=1)).strftime("%H:%M"),
                          "end": (now + timedelta(hours=1)).strftime("%H:%M"),
                          "transactional": "applies"})
    deferred = await tenant.post(event_id, deferred_to)

    async def is_deferred() -> bool:
        return "deferred until" in ((await tenant.status(deferred)).get("reason") or "")

    await eventually(is_deferred, "the message deferred", 10)
    assert (await tenant.http.delete(f"{GATEWAY}{deferred}")).json()["reason"] == "cancelled"
    assert await tenant.pool.fetchval(
        "SELECT count(*) FROM held_messages WHERE tenant_id = $1", tenant.name) == 0
    assert await mails_to(tenant.http, scheduled_to) == []
    assert await mails_to(tenant.http, deferred_to) == []


async def test_a_finished_event_cannot_be_cancelled_and_an_unknown_one_is_404(tenant: Tenant):
    event_id = await tenant.event()
    address = email()
    await tenant.profile(address)
    href = await tenant.post(event_id, address)
    assert (await final_status(tenant.http, href))["status"] == "processed"
    refused = await tenant.http.delete(f"{GATEWAY}{href}")
    assert refused.status_code == 409
    assert refused.json()["detail"] == ("the event is already processed: it can no longer be"
                                        " cancelled")
    unknown = await tenant.http.delete(f"{GATEWAY}/v1/events/{event_id}/nope")
    assert unknown.status_code == 404


async def test_the_trace_of_an_events_message_through_the_api(tenant: Tenant):
    event_id = await tenant.event(marketing=True)
    address = email()
    await tenant.profile(address)
    href = await tenant.post(event_id, address)
    assert (await final_status(tenant.http, href))["status"] == "excluded"
    trace = (await tenant.http.get(f"{GATEWAY}{href}/trace")).json()
    assert trace["messageId"] == message_id(tenant.name, href.rsplit("/", 1)[1])
    [decided] = trace["steps"]
    assert (decided["stage"], decided["outcome"], decided["rule"]) == (
        "decided", "excluded", "consent")
    assert [v["outcome"] for v in decided["verdicts"]] == ["pass", "pass", "exclude"]
    assert (await tenant.http.get(f"{GATEWAY}/v1/events/{event_id}/forged/trace")
            ).status_code == 404


async def test_a_dry_run_lists_every_rules_verdict_and_writes_nothing(tenant: Tenant):
    async with tenant.pool.acquire() as connection:
        admin_key = await create_key(connection, tenant.name, Scope.ADMIN, "rules tests")
    await tenant.rule(1, {"kind": "fatigue", "name": "one a day", "max": 1, "period": "P1D",
                          "transactional": "capped"})
    event_id = await tenant.event()
    address = email()
    profile_id = await tenant.profile(address)
    headers = {"authorization": f"Bearer {admin_key}"}
    async with httpx.AsyncClient(base_url=ADMIN, headers=headers, timeout=30) as admin:
        first = (await admin.post("/rules/dry-run", json={
            "eventId": event_id, "profileId": profile_id})).json()
        assert first["outcome"] == "send" and first["reason"] is None
        assert [(v["rule"], v["outcome"]) for v in first["verdicts"]] == [
            ("denylist", "pass"), ("quarantine", "pass"), ("consent", "pass"), ("r1", "pass")]
        assert await tenant.pool.fetchval(
            "SELECT count(*) FROM contact_history WHERE tenant_id = $1", tenant.name) == 0
        assert (await final_status(tenant.http, await tenant.post(event_id, address))
                )["status"] == "processed"
        second = (await admin.post("/rules/dry-run", json={
            "eventId": event_id, "profileId": profile_id})).json()
        assert (second["outcome"], second["reason"]) == (
            "exclude", "rule r1 (fatigue): 'one a day': at most 1 per 1 day")
        missing = await admin.post("/rules/dry-run", json={"eventId": event_id})
        assert missing.status_code == 422 and "profileId" in missing.json()["detail"]


async def test_erasing_a_profile_takes_its_contact_history_and_traces(tenant: Tenant):
    async with tenant.pool.acquire() as connection:
        key = await create_key(connection, tenant.name, Scope.PROFILES, "rules tests")
    event_id = await tenant.event()
    address = email()
    profile_id = await tenant.profile(address)
    href = await tenant.post(event_id, address)
    assert (await final_status(tenant.http, href))["status"] == "processed"
    headers = {"authorization": f"Bearer {key}"}
    exported = (await tenant.http.get(f"{GATEWAY}/v1/profiles/{profile_id}/export",
                                      headers=headers)).json()
    [contact] = exported["contactHistory"]
    assert (contact["channel"], contact["origin"]) == ("email", {"kind": "event",
                                                                 "id": event_id})
    erased = await tenant.http.delete(f"{GATEWAY}/v1/profiles/{profile_id}", headers=headers)
    assert erased.status_code == 200, erased.text
    assert erased.json()["removed"]["contactHistory"] == 1
    assert erased.json()["removed"]["messageTraces"] >= 1
    assert await tenant.pool.fetchval(
        "SELECT count(*) FROM contact_history WHERE tenant_id = $1", tenant.name) == 0
    assert (await tenant.http.get(f"{GATEWAY}{href}/trace")).json()["steps"] == []


async def test_capacity_counts_a_message_tenant_wide_across_profiles(tenant: Tenant):
    rule = await tenant.rule(1, {"kind": "capacity", "name": "three of this message",
                                 "max": 3, "period": "P1D", "scope": "message"})
    await tenant.typology("t1", [rule])
    event_id, other = await tenant.event(typology="t1"), await tenant.event(typology="t1")
    addresses = [email() for _ in range(5)]
    for address in addresses:
        await tenant.profile(address)
    statuses = [await final_status(tenant.http, await tenant.post(event_id, a))
                for a in addresses]
    assert [s["status"] for s in statuses] == ["processed"] * 3 + ["excluded"] * 2
    assert statuses[-1]["reason"] == ("rule r1 (capacity): 'three of this message': 3 of 3"
                                      " per 1 day used")
    # another message under the same typology has its own count
    assert (await final_status(tenant.http, await tenant.post(other, addresses[0]))
            )["status"] == "processed"


async def test_a_message_with_a_topic_needs_the_subscription(tenant: Tenant):
    async with tenant.pool.acquire() as connection:
        await save_schema(connection, tenant.name, ProfileSchema.model_validate(
            {"topics": [{"id": "offers"}]}))
    event_id = await tenant.event(topic="offers")
    subscribed, not_subscribed = email(), email()
    await tenant.consent(await tenant.profile(subscribed), "topic", "offers", "subscribed")
    await tenant.profile(not_subscribed)
    refused = await final_status(tenant.http, await tenant.post(event_id, not_subscribed))
    assert refused["reason"] == "rule consent (consent): not subscribed to topic 'offers'"
    assert (await final_status(tenant.http, await tenant.post(event_id, subscribed))
            )["status"] == "processed"


async def test_quiet_hours_across_the_spring_change_in_the_recipients_zone(tenant: Tenant):
    """End to end through the dry run (the processor's step on the real tables), as of
    the night Paris moves its clocks forward: 08:00 that morning is 06:00 UTC."""
    async with tenant.pool.acquire() as connection:
        admin_key = await create_key(connection, tenant.name, Scope.ADMIN, "rules tests")
    await tenant.rule(1, {"kind": "quietHours", "name": "nights", "channels": ["email"],
                          "start": "21:00", "end": "08:00", "transactional": "applies"})
    event_id = await tenant.event()
    paris = await tenant.profile(email(), time_zone="Europe/Paris")
    headers = {"authorization": f"Bearer {admin_key}"}
    async with httpx.AsyncClient(base_url=ADMIN, headers=headers, timeout=30) as admin:
        for at, until in (("2026-03-28T22:00:00Z", "2026-03-29T06:00:00Z"),  # 23:00 CET
                          ("2026-03-27T22:00:00Z", "2026-03-28T07:00:00Z"),  # the night before
                          ("2026-10-24T20:00:00Z", "2026-10-25T07:00:00Z")):  # autumn: 22:00 CEST
            answer = (await admin.post("/rules/dry-run", json={
                "eventId": event_id, "profileId": paris, "at": at})).json()
            assert answer["outcome"] == "defer", answer
            assert datetime.fromisoformat(answer["until"]) == datetime.fromisoformat(until)
        day = (await admin.post("/rules/dry-run", json={
            "eventId": event_id, "profileId": paris, "at": "2026-03-29T10:00:00Z"})).json()
        assert day["outcome"] == "send"


async def test_a_journeys_message_passes_the_same_step_and_its_sender_sends_it(
    tenant: Tenant, producer: Any,
):
    """No journey engine yet: its message, as the engine will make it (origin: a journey
    node, no pKey), is decided by the step and delivered by the email sender."""
    await tenant.rule(1, {"kind": "fatigue", "name": "one a day", "max": 1, "period": "P1D"})
    event_id = await tenant.event(marketing=True)  # the message's content
    address = email()
    profile_id = await tenant.profile(address)
    await tenant.consent(profile_id, "marketing", "email", "opted-in")
    version = await tenant.pool.fetchval(
        "SELECT max(version) FROM messages WHERE tenant_id = $1 AND event_id = $2",
        tenant.name, event_id)
    step = Step(TenantRulesCache(tenant.pool, 0), ProfileSchemaCache(tenant.pool, 0))

    def journey_message(node: str) -> SendRequest:
        return SendRequest(
            messageId=str(uuid.uuid4()), tenant=tenant.name,
            origin=JourneyOrigin(journeyId="JRNwelcome", journeyVersion=1, nodeId=node,
                                 instanceId=f"i-{profile_id}"),
            channel="email", priority="bulk",
            template=TemplateRef(eventId=event_id, version=version), to={"email": address},
            profileId=profile_id, ctx={"item": node}, profile={"profile_id": profile_id,
                                                             "email": address,
                                                             "first_name": "Ada"},
            acceptedAt=datetime.now(UTC).timestamp())

    first, second = journey_message("email1"), journey_message("reminder")
    async with tenant.pool.acquire() as connection:
        decided = await decide_messages(connection, step, [
            Pending(first, transactional=False), Pending(second, transactional=False)],
            datetime.now(UTC))
    assert [d.outcome for d in decided] == ["send", "exclude"]
    row = await tenant.pool.fetchrow(
        "SELECT origin_kind, origin_id FROM contact_history WHERE message_id = $1",
        uuid.UUID(first.messageId))
    assert (row["origin_kind"], row["origin_id"]) == ("journey", "JRNwelcome")
    await producer.send_and_wait(SEND_EMAIL_BULK.name, decided[0].request.model_dump_json(
    ).encode(), first.messageId.encode())

    async def delivered() -> list[Any] | None:
        return await mails_to(tenant.http, address, BULK_SINK) or None

    [mail] = await eventually(delivered, "the journey's email delivered", 20)
    assert "email1" in mail["subject"]
    assert await tenant.pool.fetchval(
        "SELECT pkey FROM deliveries WHERE message_id = $1", uuid.UUID(first.messageId)) is None


async def test_a_scheduled_send_counts_against_fatigue_from_the_start(tenant: Tenant):
    """Scheduled in 4 s, it holds its place in the history at once: a message decided now
    for the same profile meets it in the window (counted on both sides) and is excluded,
    and the scheduled one still goes when due, decided again then."""
    await tenant.rule(1, {"kind": "fatigue", "name": "one a day", "max": 1, "period": "P1D",
                          "transactional": "capped"})
    event_id = await tenant.event()
    address = email()
    await tenant.profile(address)
    at = (datetime.now(UTC) + timedelta(seconds=4)).isoformat()
    response = await tenant.http.post(f"{GATEWAY}/v1/events/{event_id}", json={
        "email": address, "ctx": {"item": "later"}, "scheduled": at})
    scheduled = str(response.json()["href"])

    async def reserved() -> bool:
        return bool(await tenant.pool.fetchval(
            "SELECT count(*) FROM contact_history WHERE tenant_id = $1"
            " AND outcome = 'deferred' AND reason = 'scheduled'", tenant.name))

    await eventually(reserved, "the scheduled send's place in the history", 10)
    now = await final_status(tenant.http, await tenant.post(event_id, address, "now"))
    assert (now["status"], now["reason"]) == (
        "excluded", "rule r1 (fatigue): 'one a day': at most 1 per 1 day")
    assert (await final_status(tenant.http, scheduled, 20))["status"] == "processed"


async def test_a_trace_shows_what_later_stages_noted(tenant: Tenant):
    """A reaction's trace row carries an object (its id), a decision's a list of verdicts:
    the trace serves both."""
    event_id = await tenant.event()
    address = email()
    await tenant.profile(address)
    href = await tenant.post(event_id, address)
    assert (await final_status(tenant.http, href))["status"] == "processed"
    message = message_id(tenant.name, href.rsplit("/", 1)[1])
    await tenant.pool.execute(
        "INSERT INTO message_trace (tenant_id, message_id, stage, outcome, verdicts)"
        " VALUES ($1, $2, 'reaction', 'opened', $3)", tenant.name, uuid.UUID(message),
        {"reactionId": "r-1"})
    steps = (await tenant.http.get(f"{GATEWAY}{href}/trace")).json()["steps"]
    assert steps[0]["stage"] == "decided" and isinstance(steps[0]["verdicts"], list)
    assert steps[-1]["detail"] == {"reactionId": "r-1"}
