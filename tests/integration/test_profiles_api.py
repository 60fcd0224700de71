"""The profile API (gateway, a profiles key) and the profile schema (admin API), on the
real stack, each test in a tenant of its own: writes checked against the schema, reads,
lookups, consent and its history, batches, export and erasure, and the events that read
profiles seeing what was written."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from shared.adapters.key_store import create_key, create_tenant
from shared.domain.api_keys import Scope
from tests.integration.conftest import (
    ADMIN,
    GATEWAY,
    eventually,
    final_status,
    mails_to,
    publish_event,
    unique_email,
)

SCHEMA = {
    "attributes": [{"name": "tier", "type": "string"}, {"name": "orders", "type": "integer"},
                   {"name": "lifetimeValue", "type": "decimal"},
                   {"name": "joined", "type": "date"},
                   {"name": "interests", "type": "stringList"},
                   {"name": "model_dump", "type": "boolean"}],
    "topics": [{"id": "newsletter", "label": "Weekly newsletter"}, {"id": "offers"}],
}


@dataclass
class Tenant:
    name: str
    profiles: httpx.AsyncClient  # the profile API, with a profiles key
    admin: httpx.AsyncClient
    ingest: httpx.AsyncClient
    keys: dict[str, str]


@pytest.fixture
async def tenant(pool: asyncpg.Pool) -> AsyncIterator[Tenant]:
    name = f"prof-{uuid.uuid4().hex[:10]}"
    async with pool.acquire() as connection:
        await create_tenant(connection, name, "profile tests")
        keys = {scope.value: await create_key(connection, name, scope, "tests")
                for scope in (Scope.PROFILES, Scope.ADMIN, Scope.INGEST)}

    def client(base: str, scope: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=base, timeout=30,
                                 headers={"authorization": f"Bearer {keys[scope]}"})

    async with client(f"{GATEWAY}/v1/profiles", "profiles") as profiles, \
            client(ADMIN, "admin") as admin, client(GATEWAY, "ingest") as ingest:
        declared = await admin.put("/profile-schema", json=SCHEMA)
        assert declared.status_code == 200, declared.text
        yield Tenant(name, profiles, admin, ingest, keys)


async def accepted(
    client: httpx.AsyncClient, method: str, path: str, body: Any, codes: tuple[int, ...]
) -> httpx.Response:
    """The answer once it has one of ``codes``: a schema just declared reaches the gateway
    through a notification, a moment after the admin API's 200."""
    async def probe() -> httpx.Response | None:
        response = await client.request(method, path, json=body)
        return response if response.status_code in codes else None

    return await eventually(probe, f"{method} {path} answered {codes}", 10)


def ada(email: str, **more: Any) -> dict[str, Any]:
    return {"email": email, "firstName": "Ada", "mobilePhone": "+33612345678",
            "timeZone": "Europe/Paris", "locale": "fr-FR", "birthDate": "1990-05-01",
            "attributes": {"tier": "gold", "orders": 3,
                           "lifetimeValue": "12345678901234567890.123456789",
                           "joined": "2020-01-02", "interests": ["tea"], "model_dump": True},
            "pushDevices": [{"registrationToken": "tok-" + uuid.uuid4().hex,
                             "application": "shop", "pushPlatform": "fcm"},
                            {"registrationToken": "tok-" + uuid.uuid4().hex,
                             "application": "shop", "pushPlatform": "apns"}],
            **more}


async def test_the_schema_is_declared_read_and_refuses_bad_attributes(tenant: Tenant) -> None:
    schema = (await tenant.admin.get("/profile-schema")).json()
    assert schema["version"] == 1 and schema["attributes"][0] == {
        "name": "tier", "type": "string", "label": ""}
    assert "timeZone" in schema["builtIns"] and schema["topics"][1]["id"] == "offers"
    for attributes, loc in (
            ([{"name": "firstName", "type": "string"}], 0),
            ([{"name": "ok", "type": "string"}, {"name": "x y", "type": "date"}], 1),
            ([{"name": "ok", "type": "money"}], 0)):
        refused = await tenant.admin.put("/profile-schema", json={"attributes": attributes})
        assert refused.status_code == 422, refused.text
        assert refused.json()["detail"][0]["loc"][:3] == ["body", "attributes", loc]
    assert (await tenant.admin.get("/profile-schema")).json()["version"] == 1


async def test_put_get_patch_and_lookup_keep_values_typed(tenant: Tenant) -> None:
    email = unique_email("Ada")
    created = await accepted(tenant.profiles, "PUT", "/p-ada", ada(email.upper()), (201,))
    profile = created.json()
    assert '"lifetimeValue":12345678901234567890.123456789' in created.text  # exact digits
    assert profile["attributes"]["joined"] == "2020-01-02"
    assert profile["timeZone"] == "Europe/Paris" and len(profile["pushDevices"]) == 2
    assert profile["consent"]["email"]["marketing"] == "unknown"

    again = await tenant.profiles.put("/p-ada", json=ada(email))
    assert again.status_code == 200
    patched = await tenant.profiles.patch("/p-ada", json={
        "city": "Lyon", "firstName": None, "attributes": {"orders": 4, "tier": None}})
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body["city"] == "Lyon" and body["firstName"] is None and body["email"] == email
    assert body["attributes"]["orders"] == 4 and "tier" not in body["attributes"]
    assert len(body["pushDevices"]) == 2  # a PATCH without devices keeps them
    assert (await tenant.profiles.get("/p-ada")).json() == body

    everyone = f"{GATEWAY}/v1/profiles"  # no trailing slash, unlike "" on the base URL
    by_email = (await tenant.profiles.get(everyone, params={"email": email.upper()})).json()
    assert [p["profileId"] for p in by_email["profiles"]] == ["p-ada"]
    by_phone = (await tenant.profiles.get(everyone, params={"mobilePhone": "+33612345678"})
                ).json()
    assert [p["profileId"] for p in by_phone["profiles"]] == ["p-ada"]
    assert (await tenant.profiles.get(everyone)).status_code == 422

    replaced = await tenant.profiles.put("/p-ada", json={"email": email})
    assert replaced.json()["city"] is None and replaced.json()["attributes"] == {}
    assert replaced.json()["pushDevices"] == []  # PUT replaces devices too


@pytest.mark.parametrize(("body", "loc"), [
    ({"attributes": {"orders": "3"}}, ["body", "attributes", "orders"]),
    ({"attributes": {"orders": 2.5}}, ["body", "attributes", "orders"]),
    ({"attributes": {"nope": 1}}, ["body", "attributes", "nope"]),
    ({"attributes": {"f_0": "x"}}, ["body", "attributes", "f_0"]),
    ({"timeZone": "Europe/Atlantis"}, ["body", "timeZone"]),
    ({"email": "not an address"}, ["body", "email"]),
    ({"topics": {"weekly": True}}, ["body", "topics", "weekly"]),
    ({"consent": {"email": {"marketing": "yes"}}}, ["body", "consent", "email", "marketing"]),
])
async def test_a_bad_write_is_422_naming_the_field(
    tenant: Tenant, body: dict[str, Any], loc: list[Any]
) -> None:
    refused = await accepted(tenant.profiles, "PUT", "/p-bad", body, (422,))
    assert refused.json()["detail"][0]["loc"] == loc, refused.text
    if loc[:3] == ["body", "attributes", "nope"]:
        assert "profile-schema" in refused.json()["detail"][0]["msg"]
    assert (await tenant.profiles.get("/p-bad")).status_code == 404


async def test_keys_scopes_and_tenants(tenant: Tenant, pool: asyncpg.Pool) -> None:
    await accepted(tenant.profiles, "PUT", "/p-mine", {"firstName": "Mine"}, (201,))
    async with httpx.AsyncClient(base_url=f"{GATEWAY}/v1/profiles", timeout=30) as anonymous:
        assert (await anonymous.get("/p-mine")).status_code == 401
        assert (await anonymous.put("/p-mine", json={})).status_code == 401
    ingest = await tenant.ingest.get("/v1/profiles/p-mine")
    assert ingest.status_code == 403 and "profiles" in ingest.json()["detail"]
    async with pool.acquire() as connection:
        other_key = await create_key(connection, "default", Scope.PROFILES, "tests")
    headers = {"authorization": f"Bearer {other_key}"}
    async with httpx.AsyncClient(base_url=f"{GATEWAY}/v1/profiles", headers=headers,
                                 timeout=30) as other:
        assert (await other.get("/p-mine")).status_code == 404
        assert (await other.get("/p-mine/export")).status_code == 404
        assert (await other.delete("/p-mine")).status_code == 404
    assert (await tenant.profiles.get("/p-mine")).json()["firstName"] == "Mine"


async def test_test_profiles_stay_the_admin_apis(tenant: Tenant) -> None:
    made = await tenant.admin.put("/test-profiles/tp-tess", json={"firstName": "Tess"})
    assert made.status_code == 200, made.text
    clash = await accepted(tenant.profiles, "PUT", "/tp-tess", {"firstName": "X"}, (409,))
    assert "test profile" in clash.json()["detail"]
    assert (await tenant.profiles.patch("/tp-tess", json={"city": "X"})).status_code == 409
    assert (await tenant.profiles.get("/tp-tess")).status_code == 404
    assert (await tenant.profiles.delete("/tp-tess")).status_code == 409
    assert (await tenant.admin.get("/test-profiles/tp-tess")).json()["firstName"] == "Tess"


async def test_consent_and_subscriptions_are_kept_with_their_history(tenant: Tenant) -> None:
    await accepted(tenant.profiles, "PUT", "/p-consent", {
        "email": unique_email("consent"), "consent": {"email": {"marketing": "opted-in"}},
        "topics": {"newsletter": True}, "consentSource": "signup-form"}, (201,))
    unsubscribed = await tenant.profiles.patch("/p-consent", json={
        "consent": {"email": {"marketing": "opted-out"}, "sms": {"blocked": True}},
        "topics": {"newsletter": False, "offers": True}, "consentSource": "unsubscribe-link"})
    view = unsubscribed.json()
    assert view["consent"]["email"]["marketing"] == "opted-out"
    assert view["consent"]["email"]["marketingSource"] == "unsubscribe-link"
    assert view["consent"]["sms"]["blocked"] is True and view["consent"]["push"]["blocked"] is False
    assert view["topics"]["newsletter"]["subscribed"] is False
    assert view["topics"]["offers"]["subscribed"] is True
    # the same value again is no change: its date stays the first one's
    same = await tenant.profiles.patch("/p-consent", json={"topics": {"offers": True}})
    assert same.json()["topics"]["offers"]["changedAt"] == view["topics"]["offers"]["changedAt"]
    # a PUT without consent leaves it as it is
    kept = await tenant.profiles.put("/p-consent", json={"firstName": "C"})
    assert kept.json()["consent"]["sms"]["blocked"] is True

    history = (await tenant.profiles.get("/p-consent/consent/history")).json()["changes"]
    assert [(c["kind"], c["name"], c["value"], c["source"]) for c in history] == [
        ("marketing", "email", "opted-in", "signup-form"),
        ("topic", "newsletter", "subscribed", "signup-form"),
        ("block", "sms", "blocked", "unsubscribe-link"),
        ("marketing", "email", "opted-out", "unsubscribe-link"),
        ("topic", "newsletter", "unsubscribed", "unsubscribe-link"),
        ("topic", "offers", "subscribed", "unsubscribe-link"),
    ]
    assert (await tenant.profiles.get("/p-nobody/consent/history")).status_code == 404


async def test_a_batch_answers_each_item_in_order(tenant: Tenant) -> None:
    await tenant.admin.put("/test-profiles/tp-batch", json={"firstName": "T"})
    await accepted(tenant.profiles, "PUT", "/p-b2", {"city": "Old"}, (201,))
    items = [{"profileId": "p-b1", "firstName": "One", "attributes": {"orders": 1}},
             {"profileId": "p-b2", "firstName": "Two"},
             {"profileId": "p-b3", "attributes": {"orders": "x"}},
             {"profileId": "tp-batch", "firstName": "X"},
             {"firstName": "no id"}]
    answer = await tenant.profiles.post("/batch", json={"profiles": items})
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [(r["index"], r["status"]) for r in results] == [
        (0, 201), (1, 200), (2, 422), (3, 409), (4, 422)]
    assert results[2]["detail"][0]["loc"] == ["body", "profiles", 2, "attributes", "orders"]
    assert answer.json()["written"] == 2 and answer.json()["refused"] == 3
    two = (await tenant.profiles.get("/p-b2")).json()
    assert two["firstName"] == "Two" and two["city"] == "Old"  # merge, the default
    replace = await tenant.profiles.post("/batch", json={
        "mode": "replace", "profiles": [{"profileId": "p-b2", "firstName": "Two"}]})
    assert replace.json()["results"][0]["status"] == 200
    assert (await tenant.profiles.get("/p-b2")).json()["city"] is None
    too_many = await tenant.profiles.post("/batch", json={
        "profiles": [{"profileId": f"p{i}"} for i in range(1001)]})
    assert too_many.status_code == 413


async def test_an_event_accepted_after_a_write_sees_it(tenant: Tenant, pool: asyncpg.Pool
                                                       ) -> None:
    event_id = await publish_event(pool, "profile", tenant=tenant.name, template={
        "subject": "{{ profile.first_name }} {{ profile.time_zone }} {{ profile.tier }}",
        "text": "{{ ctx.item }}", "html": "<p>{{ ctx.item }}</p>"})
    email = unique_email("sees")
    await accepted(tenant.profiles, "PUT", "/p-sees", {
        "email": email, "firstName": "Grace", "timeZone": "America/New_York",
        "attributes": {"tier": "gold"}}, (201,))
    for name in ("Grace", "Hopper"):
        if name == "Hopper":
            patched = await tenant.profiles.patch("/p-sees", json={"firstName": "Hopper"})
            assert patched.status_code == 200
        posted = await tenant.ingest.post(f"/v1/events/{event_id}",
                                          json={"email": email, "ctx": {"item": name}})
        assert posted.status_code == 202, posted.text

        async def mailed(name: str = name) -> list[dict[str, Any]]:
            return [m for m in await mails_to(tenant.ingest, email)
                    if m["subject"].startswith(name)]

        [mail] = await eventually(mailed, f"the email to {name}")
        assert mail["subject"] == f"{name} America/New_York gold"


async def test_a_decimal_attribute_reaches_the_email_as_written(
    tenant: Tenant, pool: asyncpg.Pool
) -> None:
    """19.90 stays 19.90 from the write to the message: through PostgreSQL, the send record
    (a string there) and the tenant's schema, never through a binary float."""
    event_id = await publish_event(pool, "profile", tenant=tenant.name, template={
        "subject": "LTV {{ profile.lifetimeValue }} x2 {{ profile.lifetimeValue * 2 }}"
                   " {{ profile.joined.year }}",
        "text": "{{ ctx.item }}", "html": "<p>{{ ctx.item }}</p>"})
    email = unique_email("ltv")
    # The number as written, not through a float: JSON text, the email in by concatenation.
    body = (b'{"email": "' + email.encode() + b'", "attributes": {"lifetimeValue": '
            b'12345678901234567890.10, "joined": "2021-03-04"}}')

    async def written() -> bool:
        response = await tenant.profiles.put("/p-ltv", content=body,
                                             headers={"content-type": "application/json"})
        return response.status_code == 201

    await eventually(written, "the profile written (the schema reaches the gateway)")
    posted = await tenant.ingest.post(f"/v1/events/{event_id}",
                                      json={"email": email, "ctx": {"item": "x"}})
    assert posted.status_code == 202, posted.text
    [mail] = await eventually(lambda: mails_to(tenant.ingest, email), "the email")
    assert mail["subject"] == (
        "LTV 12345678901234567890.10 x2 24691357802469135780.20 2021")


async def _held(pool: asyncpg.Pool, tenant: str, email: str) -> asyncpg.Record | None:
    return await pool.fetchrow(
        "SELECT pkey FROM held_events WHERE tenant_id = $1 AND trigger->'target'->>'email' = $2",
        tenant, email)


async def test_export_and_erasure_cover_every_store(tenant: Tenant, pool: asyncpg.Pool) -> None:
    event_id = await publish_event(pool, "profile", tenant=tenant.name)
    email = unique_email("erase")
    await accepted(tenant.profiles, "PUT", "/p-erase", ada(email, consent={
        "email": {"marketing": "opted-in"}, "sms": {"blocked": True}}), (201,))
    later = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    posted = await tenant.ingest.post(f"/v1/events/{event_id}", json={
        "email": email, "ctx": {"item": "later"}, "scheduled": later})
    assert posted.status_code == 202
    held = await eventually(lambda: _held(pool, tenant.name, email), "the scheduled event held")
    # A provider's reply quoting the address, as a failed delivery keeps it.
    async with pool.acquire() as connection:
        await connection.execute(
            "INSERT INTO event_status (pkey, tenant_id, event_id, status, rank, reason)"
            " VALUES ($1, $2, $3, 'deliveryFailed', 3, $4)", f"x-{uuid.uuid4().hex}",
            tenant.name, event_id, f"550 mailbox {email.upper()} unknown")

    exported = await tenant.profiles.get("/p-erase/export")
    assert exported.status_code == 200
    document = exported.json()
    assert document["profile"]["email"] == email and len(document["profile"]["pushDevices"]) == 2
    assert {(c["kind"], c["name"]) for c in document["consents"]} == {
        ("marketing", "email"), ("block", "sms")}
    assert len(document["consentHistory"]) == 2
    assert [h["pKey"] for h in document["heldEvents"]] == [held["pkey"]]
    assert document["heldEvents"][0]["event"]["target"] == {"email": email}
    # the scheduled send's place in the contact history, held from its acceptance
    assert [(c["outcome"], c["reason"]) for c in document["contactHistory"]] == [
        ("deferred", "scheduled")]

    erased = await tenant.profiles.delete("/p-erase")
    assert erased.status_code == 200, erased.text
    assert erased.json()["removed"] == {
        "profile": 1, "pushDevices": 2, "consents": 2, "consentHistory": 2, "heldEvents": 1,
        "statusReasons": 1, "deliveryReplies": 0, "contactHistory": 1, "messageTraces": 1,
        "deferredMessages": 0, "reactions": 0, "trackedMessages": 0, "webhookDeliveries": 0,
        "journeyInstances": 0, "journeySteps": 0, "waitingRetries": 0}
    assert (await tenant.profiles.get("/p-erase")).status_code == 404
    assert (await tenant.profiles.get("/p-erase/export")).status_code == 404
    assert (await tenant.profiles.delete("/p-erase")).status_code == 404
    status = (await tenant.ingest.get(GATEWAY + posted.json()["href"])).json()
    assert status["status"] == "targetingFailed" and status["reason"] == "its profile was erased"
    async with pool.acquire() as connection:
        assert await _held(pool, tenant.name, email) is None
        assert not await connection.fetchval(
            "SELECT count(*) FROM consents WHERE tenant_id = $1", tenant.name)
        assert not await connection.fetchval(
            "SELECT count(*) FROM consent_history WHERE tenant_id = $1", tenant.name)
        reasons = await connection.fetch(
            "SELECT reason FROM event_status WHERE tenant_id = $1 AND status = 'deliveryFailed'",
            tenant.name)
    assert [r["reason"] for r in reasons] == ["550 mailbox [erased] unknown"]


async def test_a_wide_decimal_of_an_attribute_no_longer_declared_still_reads(
    tenant: Tenant, pool: asyncpg.Pool
) -> None:
    """jsonb keeps 1e25 as its numeric's digits, 26 of them: read back as an integer,
    orjson could not write it, and the profile answered 500 once the attribute had left
    the schema (while declared, the schema typed it back to a Decimal). Read as stored
    (``exact.read_stored``), it answers with its digits, and an event for the profile
    still becomes its message."""
    email = unique_email("wide")
    created = await accepted(tenant.profiles, "PUT", "/p-wide", {
        "email": email, "attributes": {"lifetimeValue": 1e25}}, (201,))
    assert '"lifetimeValue":1E+25' in created.text or \
        '"lifetimeValue":10000000000000000000000000' in created.text, created.text
    without = {**SCHEMA, "attributes": [a for a in SCHEMA["attributes"]
                                        if a["name"] != "lifetimeValue"]}
    assert (await tenant.admin.put("/profile-schema", json=without)).status_code == 200

    async def read_without_it() -> httpx.Response | None:
        """The answer once the gateway read the new schema: a 500 (the defect), or the
        value as stored (while declared, it comes typed: 1E+25)."""
        response = await tenant.profiles.get("/p-wide")
        untyped = "10000000000000000000000000" in response.text
        return response if response.status_code != 200 or untyped else None

    answered = await eventually(read_without_it, "the profile read after the schema change")
    assert answered.status_code == 200, answered.text
    assert '"lifetimeValue":10000000000000000000000000' in answered.text

    event_id = await publish_event(pool, "profile", tenant=tenant.name, template={
        "subject": "wide", "html": "<p>{{ profile.lifetimeValue }}</p>", "text": "t"})
    posted = await tenant.ingest.post(f"/v1/events/{event_id}", json={
        "email": email, "ctx": {"item": "x"}})
    assert posted.status_code == 202, posted.text
    ended = await final_status(tenant.ingest, posted.json()["href"])
    assert ended["status"] == "processed", ended
    [mail] = await mails_to(tenant.ingest, email)
    assert "10000000000000000000000000" in mail["html"]
