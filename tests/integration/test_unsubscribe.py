"""Unsubscribe end to end (issue 11), on the real stack: a marketing email to a profile
carries a signed List-Unsubscribe link and List-Unsubscribe-Post (RFC 8058); the one-click
POST to it withdraws the profile's email marketing consent and records one `unsubscribed`
reaction however often it is posted, and the next marketing email is excluded; the link's
preference page shows and changes topic subscriptions; a transactional email carries no
link, and a forged link is 404."""

from __future__ import annotations

import base64
import email
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email import policy
from typing import Any

import aiosmtplib
import asyncpg
import httpx
import pytest

from shared.adapters.catalog_store import save_event
from shared.adapters.key_store import create_key
from shared.adapters.profile_schema_store import ProfileSchemaCache, save_schema
from shared.adapters.profile_store import upsert_profiles
from shared.adapters.rules_store import TenantRulesCache
from shared.domain.api_keys import Scope
from shared.domain.events import EventConfig
from shared.domain.profile_schema import ProfileSchema
from shared.domain.routing import JourneyOrigin, SendRequest, TemplateRef
from shared.outgoing.step import Pending, Step, decide_messages
from shared.topics import SEND_EMAIL_BULK
from tests.integration.conftest import (
    BULK_SINK,
    DEFAULT_TEMPLATE,
    GATEWAY,
    SINK,
    eventually,
    final_status,
    settings,
)

ONE_CLICK = {"content-type": "application/x-www-form-urlencoded"}
FORM = {"content-type": "application/x-www-form-urlencoded"}


class Tenant:
    def __init__(self, pool: asyncpg.Pool, name: str, http: httpx.AsyncClient) -> None:
        self.pool, self.name, self.http = pool, name, http

    async def event(self, marketing: bool) -> str:
        event_id = f"EVTunsub{uuid.uuid4().hex[:10]}"
        await save_event(self.pool, self.name, EventConfig.model_validate({
            "event_id": event_id, "label": "unsubscribe", "channel": "email",
            "targeting": "profile", "marketing": marketing,
            "fields": [{"id": "item", "type": "string"}]}), DEFAULT_TEMPLATE)
        return event_id

    async def profile(self, address: str) -> str:
        profile_id = f"p-{uuid.uuid4().hex[:12]}"
        async with self.pool.acquire() as connection:
            await upsert_profiles(connection, self.name, [
                {"profile_id": profile_id, "email": address, "first_name": "Ada"}])
        for kind, name, value in (("marketing", "email", "opted-in"),
                                  ("topic", "newsletter", "subscribed")):
            await self.pool.execute(
                "INSERT INTO consents (tenant_id, profile_id, kind, name, value, changed_at,"
                " source) VALUES ($1, $2, $3, $4, $5, now() - interval '1 minute', 'test')",
                self.name, profile_id, kind, name, value)
        return profile_id

    async def send(self, event_id: str, address: str) -> dict[str, Any]:
        response = await self.http.post(f"{GATEWAY}/v1/events/{event_id}",
                                        json={"email": address, "ctx": {"item": "x"}})
        assert response.status_code == 202, response.text
        return await final_status(self.http, response.json()["href"], 30)

    async def consent(self, profile_id: str) -> dict[tuple[str, str], tuple[str, str]]:
        rows = await self.pool.fetch(
            "SELECT kind, name, value, source FROM consents WHERE tenant_id = $1"
            " AND profile_id = $2", self.name, profile_id)
        return {(r["kind"], r["name"]): (r["value"], r["source"]) for r in rows}

    async def unsubscribed(self, message_id: str) -> int:
        return int(await self.pool.fetchval(
            "SELECT count(*) FROM reactions WHERE tenant_id = $1 AND message_id = $2"
            " AND kind = 'unsubscribed'", self.name, uuid.UUID(message_id)))


@pytest.fixture
async def tenant(pool: asyncpg.Pool) -> AsyncIterator[Tenant]:
    name = f"unsub-{uuid.uuid4().hex[:10]}"
    async with pool.acquire() as connection:
        await connection.execute("INSERT INTO tenants (tenant_id, name) VALUES ($1, $1)", name)
        key = await create_key(connection, name, Scope.INGEST, "unsubscribe tests")
        await save_schema(connection, name, ProfileSchema.model_validate({"topics": [
            {"id": "newsletter", "label": "The <b>weekly</b> newsletter"},
            {"id": "offers", "label": "Offers"}]}))
    async with httpx.AsyncClient(timeout=30, headers={"authorization": f"Bearer {key}"}
                                 ) as client:
        yield Tenant(pool, name, client)


def address() -> str:
    return f"unsub-{uuid.uuid4().hex[:12]}@example.com"


async def received(http: httpx.AsyncClient, to: str, count: int = 1, sink: str = SINK
                   ) -> list[email.message.Message]:
    async def probe() -> list[dict[str, Any]] | None:
        response = await http.get(f"{sink}/messages", params={"to": to, "raw": "true"})
        mails: list[dict[str, Any]] = response.json()
        return mails if len(mails) >= count else None

    mails = await eventually(probe, f"{count} mail(s) to {to}", 30)
    return [email.message_from_bytes(base64.b64decode(m["raw"]), policy=policy.default)
            for m in mails]


def links_of(mail: email.message.Message) -> tuple[str, str]:
    """The https link and the mailto address."""
    header = str(mail["List-Unsubscribe"])
    match = re.fullmatch(r"<(https?://[^>]+)>, <mailto:([^>]+)>", header.strip())
    assert match, header
    return match.group(1), match.group(2)


def link_of(mail: email.message.Message) -> str:
    return links_of(mail)[0]


def message_id_of(mail: email.message.Message) -> str:
    return str(mail["Message-ID"]).strip("<>").split("@")[0]


async def test_one_click_withdraws_marketing_once_and_the_next_is_excluded(tenant: Tenant):
    to = address()
    profile_id = await tenant.profile(to)
    marketing = await tenant.event(marketing=True)
    assert (await tenant.send(marketing, to))["status"] == "processed"
    mail = (await received(tenant.http, to))[0]
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = link_of(mail)
    assert link.startswith(f"{settings.tracking_base_url}/u/")
    message_id = message_id_of(mail)

    for _ in range(2):  # a provider may post twice: the same answer, nothing more recorded
        response = await tenant.http.post(link, content=b"List-Unsubscribe=One-Click",
                                          headers=ONE_CLICK)
        assert response.status_code == 200, response.text
    consent = await tenant.consent(profile_id)
    assert consent[("marketing", "email")] == ("opted-out", "list-unsubscribe")
    assert consent[("topic", "newsletter")] == ("subscribed", "test")  # left alone
    assert await tenant.unsubscribed(message_id) == 1
    history = await tenant.pool.fetchval(
        "SELECT count(*) FROM consent_history WHERE tenant_id = $1 AND profile_id = $2"
        " AND source = 'list-unsubscribe'", tenant.name, profile_id)
    assert history == 1

    refused = await tenant.send(marketing, to)
    assert refused["status"] == "excluded"
    assert "consent" in refused["reason"] and "opted-out" in refused["reason"]
    # transactional mail still goes, and carries no unsubscribe link
    assert (await tenant.send(await tenant.event(marketing=False), to))["status"] == "processed"
    mails = await received(tenant.http, to, 2)
    transactional = [m for m in mails if message_id_of(m) != message_id]
    assert len(mails) == 2 and transactional
    assert transactional[0]["List-Unsubscribe"] is None
    assert transactional[0]["List-Unsubscribe-Post"] is None


async def test_the_preference_page_shows_and_changes_topics(tenant: Tenant):
    to = address()
    profile_id = await tenant.profile(to)
    assert (await tenant.send(await tenant.event(marketing=True), to))["status"] == "processed"
    mail = (await received(tenant.http, to))[0]
    link, message_id = link_of(mail), message_id_of(mail)

    page = await tenant.http.get(link)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    html = page.text
    assert "<script" not in html
    assert "The &lt;b&gt;weekly&lt;/b&gt; newsletter" in html  # autoescaped
    assert re.search(r'name="marketing" id="marketing" checked', html)
    assert re.search(r'value="newsletter" id="topic-newsletter" checked', html)
    assert re.search(r'value="offers" id="topic-offers">', html)  # not subscribed
    action = re.search(r'<form method="post" action="([^"]+)"', html)
    assert action and action.group(1) == f"{httpx.URL(link).path}/preferences"

    # keep marketing, leave the newsletter, take offers; a topic not in the schema ignored
    saved = await tenant.http.post(
        str(httpx.URL(link).join(action.group(1))), headers=FORM,
        content=b"marketing=on&topic=offers&topic=nonexistent")
    assert saved.status_code == 200
    assert 'id="saved"' in saved.text
    assert re.search(r'value="offers" id="topic-offers" checked', saved.text)
    consent = await tenant.consent(profile_id)
    assert consent[("marketing", "email")] == ("opted-in", "test")  # unchanged
    assert consent[("topic", "newsletter")] == ("unsubscribed", "preferences")
    assert consent[("topic", "offers")] == ("subscribed", "preferences")
    assert ("topic", "nonexistent") not in consent
    assert await tenant.unsubscribed(message_id) == 1  # a topic withdrawn

    # unticking marketing withdraws it, and the message's reaction stays one
    await tenant.http.post(str(httpx.URL(link).join(action.group(1))), headers=FORM,
                           content=b"topic=offers")
    consent = await tenant.consent(profile_id)
    assert consent[("marketing", "email")] == ("opted-out", "preferences")
    assert consent[("topic", "offers")] == ("subscribed", "preferences")
    assert await tenant.unsubscribed(message_id) == 1


async def test_a_forged_link_is_not_found_and_changes_nothing(tenant: Tenant):
    to = address()
    profile_id = await tenant.profile(to)
    assert (await tenant.send(await tenant.event(marketing=True), to))["status"] == "processed"
    mail = (await received(tenant.http, to))[0]
    link = link_of(mail)
    base, token = link.rsplit("/", 1)
    key_id, encoded = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    raw[20] ^= 1  # inside the signed body
    forged = f"{base}/{key_id}.{base64.urlsafe_b64encode(bytes(raw)).decode().rstrip('=')}"
    before = await tenant.consent(profile_id)
    for url in (forged, f"{base}/{key_id}.{encoded[:-4]}", f"{base}/nothing"):
        assert (await tenant.http.get(url)).status_code == 404
        assert (await tenant.http.post(url, content=b"List-Unsubscribe=One-Click",
                                       headers=ONE_CLICK)).status_code == 404
        assert (await tenant.http.post(f"{url}/preferences", content=b"topic=offers",
                                       headers=FORM)).status_code == 404
    # the real link, with a body that is not RFC 8058's, changes nothing either
    assert (await tenant.http.post(link, content=b"List-Unsubscribe=Yes",
                                   headers=ONE_CLICK)).status_code == 400
    assert await tenant.consent(profile_id) == before
    assert await tenant.unsubscribed(message_id_of(mail)) == 0


async def test_mail_to_the_mailto_address_unsubscribes_once(tenant: Tenant):
    to = address()
    profile_id = await tenant.profile(to)
    assert (await tenant.send(await tenant.event(marketing=True), to))["status"] == "processed"
    mail = (await received(tenant.http, to))[0]
    _, mailto = links_of(mail)
    assert mailto.endswith(f"@{settings.bounce_domain}") and len(mailto.split("@")[0]) <= 64
    local, domain = mailto.split("@")
    forged = f"{local[:-1]}{'a' if local[-1] != 'a' else 'b'}@{domain}"
    body = b"Subject: unsubscribe\r\n\r\nplease\r\n"
    # a forged address is taken (the remote is not told) and changes nothing
    await aiosmtplib.send(body, sender=to, recipients=[forged], hostname=settings.bounces_host,
                          port=settings.bounces_smtp_port)
    assert (await tenant.consent(profile_id))[("marketing", "email")][0] == "opted-in"
    for _ in range(2):  # sent twice: one reaction
        await aiosmtplib.send(body, sender=to, recipients=[mailto.upper()],
                              hostname=settings.bounces_host, port=settings.bounces_smtp_port)
    consent = await tenant.consent(profile_id)
    assert consent[("marketing", "email")] == ("opted-out", "list-unsubscribe")
    assert consent[("topic", "newsletter")] == ("subscribed", "test")
    assert await tenant.unsubscribed(message_id_of(mail)) == 1


async def test_a_journeys_email_carries_the_link_too(tenant: Tenant, producer: Any):
    """A journey's message (no event configured marketing: the journey makes it
    marketing), as the engine will make it, decided by the step and sent on the bulk lane."""
    to = address()
    profile_id = await tenant.profile(to)
    event_id = await tenant.event(marketing=False)  # the message's content only
    version = await tenant.pool.fetchval(
        "SELECT max(version) FROM messages WHERE tenant_id = $1 AND event_id = $2",
        tenant.name, event_id)
    message = SendRequest(
        messageId=str(uuid.uuid4()), tenant=tenant.name,
        origin=JourneyOrigin(journeyId="JRNunsub", journeyVersion=1, nodeId="n1",
                             instanceId=f"i-{profile_id}"),
        channel="email", priority="bulk", template=TemplateRef(eventId=event_id, version=version),
        to={"email": to}, profileId=profile_id, ctx={"item": "journey"},
        profile={"profile_id": profile_id, "email": to, "first_name": "Ada"},
        acceptedAt=datetime.now(UTC).timestamp())
    assert not message.marketing
    step = Step(TenantRulesCache(tenant.pool, 0), ProfileSchemaCache(tenant.pool, 0))
    async with tenant.pool.acquire() as connection:
        [decided] = await decide_messages(connection, step, [
            Pending(message, transactional=False)], datetime.now(UTC))
    assert decided.outcome == "send"
    await producer.send_and_wait(SEND_EMAIL_BULK.name, decided.request.model_dump_json().encode(),
                                 message.messageId.encode())
    mail = (await received(tenant.http, to, sink=BULK_SINK))[0]
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    response = await tenant.http.post(link_of(mail), content=b"List-Unsubscribe=One-Click",
                                      headers=ONE_CLICK)
    assert response.status_code == 200
    assert (await tenant.consent(profile_id))[("marketing", "email")] == (
        "opted-out", "list-unsubscribe")
    reaction = await tenant.pool.fetchval(
        "SELECT record FROM reactions WHERE tenant_id = $1 AND message_id = $2",
        tenant.name, uuid.UUID(message.messageId))
    assert reaction["kind"] == "unsubscribed" and reaction["profileId"] == profile_id


async def test_a_multipart_one_click_counts_and_an_erased_profiles_link_is_gone(tenant: Tenant):
    """RFC 8058 lets the provider post multipart/form-data; once the profile is gone its
    link leads nowhere (nothing is written about it again)."""
    to = address()
    profile_id = await tenant.profile(to)
    assert (await tenant.send(await tenant.event(marketing=True), to))["status"] == "processed"
    link = link_of((await received(tenant.http, to))[0])
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n"
            f"\r\nOne-Click\r\n--{boundary}--\r\n").encode()
    response = await tenant.http.post(link, content=body, headers={
        "content-type": f"multipart/form-data; boundary={boundary}"})
    assert response.status_code == 200
    assert (await tenant.consent(profile_id))[("marketing", "email")][0] == "opted-out"

    await tenant.pool.execute("DELETE FROM consents WHERE tenant_id = $1 AND profile_id = $2",
                              tenant.name, profile_id)
    await tenant.pool.execute("DELETE FROM profiles WHERE tenant_id = $1 AND profile_id = $2",
                              tenant.name, profile_id)
    assert (await tenant.http.get(link)).status_code == 404
    assert (await tenant.http.post(link, content=b"List-Unsubscribe=One-Click",
                                   headers=ONE_CLICK)).status_code == 404
    assert await tenant.consent(profile_id) == {}
