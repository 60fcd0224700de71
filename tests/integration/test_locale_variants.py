"""Locale variants of a message on the real stack: authored and published through the
admin API, previewed and proofed per locale, and sent in the variant the profile's locale
or the request's chooses (fr-CA → fr → the default); a journey message's alike."""

import time
import uuid
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer

from shared.domain.events import Channel
from shared.domain.routing import JourneyOrigin, SendRequest, TemplateRef, message_id
from shared.topics import SEND_EMAIL_BULK
from tests.integration.conftest import (
    BULK_SINK,
    GATEWAY,
    TENANT,
    eventually,
    final_status,
    mails_to,
    unique_email,
)

MESSAGE = {
    "subject": "Hello {{ profile.first_name or 'there' }}, {{ ctx.item }} is back",
    "html": "<p>{{ ctx.item }}</p>", "text": "{{ ctx.item }} is back",
    "variants": {"FR": {"subject": "Bonjour {{ profile.first_name or 'toi' }},"
                                   " {{ ctx.item }} est de retour",
                        "html": "<p>{{ ctx.item }}</p>", "text": "{{ ctx.item }} est de retour"}},
}


async def _event(admin: httpx.AsyncClient, targeting: str, prefix: str = "EVT") -> str:
    event_id = f"{prefix}loc{uuid.uuid4().hex[:10]}"
    created = await admin.post("/events", json={
        "eventId": event_id, "label": "Back in stock", "channel": "email",
        "targeting": targeting, "fields": [{"id": "item", "type": "string", "required": True}]})
    assert created.status_code == 201, created.text
    assert (await admin.post(f"/events/{event_id}/publish")).status_code == 200
    edited = await admin.put(f"/events/{event_id}/message", json=MESSAGE)
    assert edited.status_code == 200, edited.text
    [draft] = edited.json()["versions"]
    assert list(draft["template"]["variants"]) == ["fr"]  # stored normalised
    assert (await admin.post(f"/events/{event_id}/message/publish")).status_code == 200
    return event_id


async def _send(http: httpx.AsyncClient, event_id: str, email: str, **extra: Any
                ) -> dict[str, Any]:
    async def accepted() -> httpx.Response | None:
        response = await http.post(f"{GATEWAY}/v1/events/{event_id}",
                                   json={"email": email, "ctx": {"item": "Boots"}, **extra})
        return response if response.status_code == 202 else None

    response = await eventually(accepted, "the published endpoint to accept calls")
    status = await final_status(http, response.json()["href"])
    assert status["status"] == "processed", status
    [mail] = await eventually(lambda: mails_to(http, email), f"a mail to {email}")
    return {**mail, "pKey": response.json()["href"].rsplit("/", 1)[1]}


async def _profile(pool: asyncpg.Pool, email: str, locale: str | None) -> None:
    async with pool.acquire() as connection:
        await connection.execute(
            "INSERT INTO profiles (tenant_id, profile_id, email, first_name, locale)"
            " VALUES ('default', $1, $2, 'Ada', $3)", f"p-{uuid.uuid4().hex[:12]}", email,
            locale)


async def test_a_profile_gets_the_variant_of_its_locale_or_the_default(
    admin: httpx.AsyncClient, http: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    event_id = await _event(admin, "profile")
    canadian, german, unset, asked = (unique_email(n) for n in ("ca", "de", "none", "asked"))
    await _profile(pool, canadian, "fr-CA")
    await _profile(pool, german, "de")
    await _profile(pool, unset, None)
    await _profile(pool, asked, "de")
    assert (await _send(http, event_id, canadian))["subject"] == "Bonjour Ada, Boots est de retour"
    assert (await _send(http, event_id, german))["subject"] == "Hello Ada, Boots is back"
    assert (await _send(http, event_id, unset))["subject"] == "Hello Ada, Boots is back"
    # The request's locale wins over the profile's.
    mail = await _send(http, event_id, asked, locale="fr")
    assert mail["subject"] == "Bonjour Ada, Boots est de retour"
    assert "Boots est de retour" in mail["text"]


async def _handover_note(pool: asyncpg.Pool, pkey: str) -> str:
    """The trace's hand-over step's reason ('' for an email in the default content)."""
    note: str | None = await pool.fetchval(
        "SELECT reason FROM message_trace WHERE message_id = $1 AND stage = 'handover'",
        uuid.UUID(message_id(TENANT, pkey)))
    return note or ""


async def test_an_event_based_request_names_its_locale(
    admin: httpx.AsyncClient, http: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    event_id = await _event(admin, "event")
    french, plain = unique_email("fr"), unique_email("plain")
    sent = await _send(http, event_id, french, locale="fr-ca")
    assert sent["subject"] == "Bonjour toi, Boots est de retour"
    assert (await _handover_note(pool, sent["pKey"])).endswith("; locale fr")  # the trace
    sent = await _send(http, event_id, plain)
    assert sent["subject"] == "Hello there, Boots is back"
    assert "locale" not in await _handover_note(pool, sent["pKey"])
    refused = await http.post(f"{GATEWAY}/v1/events/{event_id}",
                              json={"email": plain, "ctx": {"item": "x"}, "locale": "français"})
    assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == [
        "body", "locale"]


async def test_preview_and_proof_render_the_variant_asked_for(
    admin: httpx.AsyncClient, http: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    event_id = await _event(admin, "profile")
    tester, address = f"tp-{uuid.uuid4().hex[:10]}", unique_email("proof")
    async with pool.acquire() as connection:
        await connection.execute(
            "INSERT INTO profiles (tenant_id, profile_id, email, first_name, locale, is_test,"
            " sample_ctx) VALUES ('default', $1, $2, 'Tess', 'fr-CA', true, $3)",
            tester, address, {"item": "Sample"})

    async def preview(**body: Any) -> dict[str, Any]:
        response = await admin.post(f"/events/{event_id}/message/preview",
                                    json={"profileId": tester, **body})
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    asked = await preview(locale="fr-ca")
    assert asked["parts"]["subject"] == "Bonjour Tess, Sample est de retour"
    assert (asked["locale"], asked["chosenFrom"]) == ("fr", "fr-CA")
    german = await preview(locale="de")
    assert german["parts"]["subject"] == "Hello Tess, Sample is back"
    assert (german["locale"], german["chosenFrom"]) == (None, "de")
    own = await preview()  # the test profile's locale, as the sender would
    assert (own["locale"], own["chosenFrom"]) == ("fr", "fr-CA")
    put = await admin.put(f"/test-profiles/{tester}",
                          json={"firstName": "Tess", "locale": "de_ch", "email": address,
                                "sampleCtx": {"item": "Sample"}})
    assert put.status_code == 200 and put.json()["locale"] == "de-CH", put.text
    swiss = await preview()
    assert (swiss["locale"], swiss["chosenFrom"]) == (None, "de-CH")
    bad_tester = await admin.put(f"/test-profiles/{tester}", json={"locale": "deutsch!"})
    assert bad_tester.status_code == 422
    bad = await admin.post(f"/events/{event_id}/message/preview",
                           json={"profileId": tester, "locale": "not a tag"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "locale"]

    proof = await admin.post(f"/events/{event_id}/message/proof",
                             json={"profileId": tester, "locale": "en"})
    assert proof.status_code == 202, proof.text
    assert (proof.json()["locale"], proof.json()["chosenFrom"]) == (None, "en")
    [mail] = await eventually(lambda: mails_to(http, address), "the proof")
    assert mail["subject"] == "[Proof] Hello Tess, Sample is back"


async def test_variants_are_validated_like_the_default(admin: httpx.AsyncClient) -> None:
    event_id = f"EVTloc{uuid.uuid4().hex[:10]}"
    await admin.post("/events", json={"eventId": event_id, "label": "v", "channel": "email",
                                      "targeting": "event"})
    await admin.post(f"/events/{event_id}/publish")

    async def refused(variants: Any) -> list[Any]:
        response = await admin.put(f"/events/{event_id}/message",
                                   json={"subject": "s", "variants": variants})
        assert response.status_code == 422, response.text
        return [e["loc"] for e in response.json()["detail"]]

    assert await refused({"fr": {"subject": "{% if %}"}}) == [
        ["body", "variants", "fr", "subject"]]
    assert await refused({"fr": {"title": "x"}}) == [["body", "variants", "fr", "title"]]
    assert await refused({"fr": {"subject": 1}}) == [["body", "variants", "fr", "subject"]]
    assert await refused({"français": {"subject": "x"}}) == [["body", "variants", "français"]]
    assert await refused({"fr": {}, "FR": {}}) == [["body", "variants", "FR"]]
    assert await refused({"fr": "x"}) == [["body", "variants", "fr"]]
    assert await refused(["fr"]) == [["body", "variants"]]
    assert await refused({"fr": {"subject": "s" * 1001}}) == [
        ["body", "variants", "fr", "subject"]]


async def test_a_journey_message_goes_in_the_variant_of_its_profile_locale(
    admin: httpx.AsyncClient, http: httpx.AsyncClient, producer: AIOKafkaProducer,
) -> None:
    """What the journey engine hands the bulk lane: its profile's locale chooses."""
    message = await _event(admin, "profile", prefix="JMS")
    version = (await admin.get(f"/events/{message}/message")).json()["versions"][0]["version"]
    sent = {}
    for locale in ("fr-CA", "de"):
        email, instance = unique_email(f"jms-{locale}"), uuid.uuid4().hex
        request = SendRequest(
            messageId=message_id(TENANT, instance, "mail"), tenant=TENANT,
            origin=JourneyOrigin(journeyId="seed", journeyVersion=1, nodeId="mail",
                                 instanceId=instance),
            channel=Channel.EMAIL, priority="bulk",
            template=TemplateRef(eventId=message, version=version), to={"email": email},
            profileId=f"p-{instance[:8]}", ctx={"item": "Boots"},
            profile={"profile_id": f"p-{instance[:8]}", "first_name": "Ada", "locale": locale},
            acceptedAt=time.time(), marketing=True)
        await producer.send_and_wait(SEND_EMAIL_BULK.name, request.model_dump_json().encode(),
                                     request.messageId.encode())
        sent[locale] = email
    [french] = await eventually(lambda: mails_to(http, sent["fr-CA"], BULK_SINK),
                                "the French journey message", 30)
    assert french["subject"] == "Bonjour Ada, Boots est de retour"
    [german] = await eventually(lambda: mails_to(http, sent["de"], BULK_SINK),
                                "the default journey message", 30)
    assert german["subject"] == "Hello Ada, Boots is back"
