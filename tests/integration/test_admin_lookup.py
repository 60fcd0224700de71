"""What the console looks up through the admin API, on the real stack: an event's status
and trace by pKey alone (``GET /admin/v1/statuses/{pKey}``), profile search by id, email
or phone (``GET /admin/v1/profiles?q=``), a profile's document and its recent messages
(``…/profiles/{id}`` and ``…/messages``). Each test has tenants of its own: another
tenant's pKey and profiles are never found."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest

from shared.adapters.catalog_store import save_event
from shared.adapters.key_store import create_key, create_tenant
from shared.adapters.profile_store import upsert_profiles
from shared.domain.api_keys import Scope
from shared.domain.events import EventConfig
from shared.domain.pkeys import mint_timed_pkey
from tests.integration.conftest import (
    ADMIN,
    DEFAULT_TEMPLATE,
    GATEWAY,
    eventually,
    final_status,
    settings,
)


@dataclass
class Tenant:
    name: str
    admin: httpx.AsyncClient  # the admin API with an admin key
    http: httpx.AsyncClient  # the ingestion and profile APIs with an ingest+profiles key
    profiles: httpx.AsyncClient


async def _tenant(pool: asyncpg.Pool, label: str) -> tuple[str, dict[str, str]]:
    name = f"lookup-{label}-{uuid.uuid4().hex[:8]}"
    async with pool.acquire() as connection:
        await create_tenant(connection, name, "test_admin_lookup")
        keys = {scope.value: await create_key(connection, name, scope, "tests")
                for scope in (Scope.ADMIN, Scope.INGEST, Scope.PROFILES)}
    return name, keys


@pytest.fixture
async def tenants(pool: asyncpg.Pool) -> AsyncIterator[tuple[Tenant, Tenant]]:
    """Two tenants of this test's own, removed afterwards (their keys, profiles, events)."""
    made: list[Tenant] = []
    clients: list[httpx.AsyncClient] = []
    try:
        for label in ("a", "b"):
            name, keys = await _tenant(pool, label)

            def client(key: str, base: str) -> httpx.AsyncClient:
                clients.append(httpx.AsyncClient(
                    base_url=base, timeout=30, headers={"authorization": f"Bearer {key}"}))
                return clients[-1]

            made.append(Tenant(name, client(keys["admin"], ADMIN),
                               client(keys["ingest"], GATEWAY),
                               client(keys["profiles"], f"{GATEWAY}/v1/profiles")))
        yield made[0], made[1]
    finally:
        for opened in clients:
            await opened.aclose()
        async with pool.acquire() as connection:
            for tenant in made:
                for table in ("profiles", "event_configs", "api_keys", "tenants"):
                    await connection.execute(f"DELETE FROM {table} WHERE tenant_id = $1",
                                             tenant.name)


async def event(pool: asyncpg.Pool, tenant: Tenant, **config: Any) -> str:
    event_id = f"EVTlookup{uuid.uuid4().hex[:10]}"
    await save_event(pool, tenant.name, EventConfig.model_validate({
        "event_id": event_id, "label": "lookup", "channel": "email", "targeting": "profile",
        "fields": [{"id": "item", "type": "string", "required": True},
                   {"id": "price", "type": "decimal"}], **config}), DEFAULT_TEMPLATE)
    return event_id


async def profile(pool: asyncpg.Pool, tenant: Tenant, email: str, phone: str,
                  profile_id: str | None = None) -> str:
    profile_id = profile_id or f"lk-{uuid.uuid4().hex[:12]}"
    async with pool.acquire() as connection:
        await upsert_profiles(connection, tenant.name, [{
            "profile_id": profile_id, "email": email, "mobile_phone": phone,
            "first_name": "Ada"}])
    return profile_id


async def post(tenant: Tenant, event_id: str, email: str) -> str:
    response = await tenant.http.post(f"/v1/events/{event_id}",
                                      json={"email": email, "ctx": {"item": "tea"}})
    assert response.status_code == 202, response.text
    return str(response.json()["href"])


def phone() -> str:
    return "+3361" + str(uuid.uuid4().int)[:8]


async def test_status_and_trace_by_pkey_alone_and_only_the_tenants(
    pool: asyncpg.Pool, tenants: tuple[Tenant, Tenant]
) -> None:
    mine, other = tenants
    event_id = await event(pool, mine)
    address = f"lookup-{uuid.uuid4().hex[:10]}@example.com"
    await profile(pool, mine, address, phone())
    href = await post(mine, event_id, address)
    pkey = href.rsplit("/", 1)[1]
    final = await final_status(mine.http, href, 30)
    assert final["status"] == "processed", final
    trace = (await mine.http.get(f"{href}/trace")).json()
    assert trace["steps"], trace

    found = await mine.admin.get(f"/statuses/{pkey}")
    assert found.status_code == 200, found.text
    body = found.json()
    assert {k: body[k] for k in final} == final  # the ingestion API's status, as it is
    assert body["eventId"] == event_id and body["trace"] == trace  # and its trace

    # another tenant's pKey is not found, as one never issued
    assert (await other.admin.get(f"/statuses/{pkey}")).status_code == 404
    never = mint_timed_pkey(b"not-the-secret", mine.name, event_id, time.time(),
                            os.urandom(12))
    missing = await mine.admin.get(f"/statuses/{never}")
    assert missing.status_code == 404 and never in missing.json()["detail"]
    # not a pKey at all: a 422 naming the path parameter
    bad = await mine.admin.get("/statuses/NOT-A-PKEY")
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["path", "pkey"]

    # a pKey issued for one of the tenant's events that no stage recorded yet: pending,
    # its event found by the tenant's secret; still a 404 for the other tenant
    issued = mint_timed_pkey(settings.pkey_secret.encode(), mine.name, event_id,
                             time.time(), os.urandom(12))
    pending = await mine.admin.get(f"/statuses/{issued}")
    assert pending.status_code == 200, pending.text
    assert (pending.json()["status"], pending.json()["eventId"]) == ("pending", event_id)
    assert pending.json()["trace"]["steps"] == []
    assert (await other.admin.get(f"/statuses/{issued}")).status_code == 404


async def test_profile_search_by_id_email_and_phone_and_only_the_tenants(
    pool: asyncpg.Pool, tenants: tuple[Tenant, Tenant]
) -> None:
    mine, other = tenants
    address, mobile = f"Search-{uuid.uuid4().hex[:10]}@Example.com", phone()
    profile_id = await profile(pool, mine, address, mobile)
    # the same address at another tenant's, and a profile of mine whose id is the address
    await profile(pool, other, address, mobile)
    by_address = await profile(pool, mine, f"x-{address}", phone(), profile_id=address.lower())

    async def search(tenant: Tenant, q: str, **params: Any) -> list[str]:
        response = await tenant.admin.get("/profiles", params={"q": q, **params})
        assert response.status_code == 200, response.text
        return [p["profileId"] for p in response.json()["profiles"]]

    assert await search(mine, profile_id) == [profile_id]
    # the exact id first, then the address (any case)
    assert await search(mine, address.upper().lower()) == [by_address, profile_id]
    assert await search(mine, address.upper()) == [profile_id]
    assert await search(mine, mobile) == [profile_id]
    assert await search(mine, mobile.lstrip("+")) == [profile_id]  # "+" read as a space
    assert await search(mine, f" {mobile[1:]}") == [profile_id]
    assert profile_id in await search(mine, profile_id[:-2])  # a prefix of the id
    assert await search(mine, address[:-4]) == [profile_id]  # a prefix of the address
    assert await search(mine, "lk-", limit=1) in ([profile_id], [by_address])
    assert (other_ids := await search(other, address)) and profile_id not in [
        *other_ids] and len(other_ids) == 1
    assert await search(mine, "nobody-" + uuid.uuid4().hex) == []

    # the document is the profile API's
    document = await mine.admin.get(f"/profiles/{profile_id}")
    assert document.status_code == 200, document.text
    assert document.json() == (await mine.profiles.get(f"/{profile_id}")).json()
    listed = (await mine.admin.get("/profiles", params={"q": profile_id})).json()
    assert listed["profiles"] == [document.json()]
    assert (await other.admin.get(f"/profiles/{profile_id}")).status_code == 404

    for params, field in (({}, "q"), ({"q": ""}, "q"), ({"q": " "}, "q"), ({"q": "a\x00b"}, "q"),
                          ({"q": "x", "limit": 0}, "limit"),
                          ({"q": "x", "limit": 101}, "limit")):
        refused = await mine.admin.get("/profiles", params=params)
        assert refused.status_code == 422, (params, refused.text)
        assert refused.json()["detail"][0]["loc"] == ["query", field]


async def test_recent_messages_newest_first_with_their_outcome(
    pool: asyncpg.Pool, tenants: tuple[Tenant, Tenant]
) -> None:
    mine, other = tenants
    sent_event = await event(pool, mine)
    refused_event = await event(pool, mine, marketing=True)  # no consent: excluded
    address = f"messages-{uuid.uuid4().hex[:10]}@example.com"
    profile_id = await profile(pool, mine, address, phone())
    sent_href = await post(mine, sent_event, address)
    assert (await final_status(mine.http, sent_href, 30))["status"] == "processed"
    refused_href = await post(mine, refused_event, address)
    assert (await final_status(mine.http, refused_href, 30))["status"] == "excluded"
    sent_trace = (await mine.http.get(f"{sent_href}/trace")).json()
    refused_trace = (await mine.http.get(f"{refused_href}/trace")).json()

    async def listed() -> list[dict[str, Any]] | None:
        response = await mine.admin.get(f"/profiles/{profile_id}/messages")
        assert response.status_code == 200, response.text
        messages: list[dict[str, Any]] = response.json()["messages"]
        settled = len(messages) == 2 and any(
            m["delivery"] and m["delivery"]["state"] == "sent" for m in messages)
        return messages if settled else None

    messages = await eventually(listed, "both messages, the sent one settled", 30)
    refused, sent = messages  # newest first
    assert refused["contactAt"] >= sent["contactAt"]
    assert sent["messageId"] == sent_trace["messageId"]
    assert (sent["channel"], sent["eventId"], sent["pKey"]) == (
        "email", sent_event, sent_href.rsplit("/", 1)[1])
    assert sent["outcome"] in ("sent", "delivered")  # delivered: handed over
    assert sent["origin"] == {"kind": "event", "id": sent_event} and sent["journeyId"] is None
    assert sent["delivery"]["state"] == "sent" and sent["delivery"]["attempts"] >= 1
    assert refused["messageId"] == refused_trace["messageId"]
    assert (refused["outcome"], refused["rule"], refused["eventId"]) == (
        "excluded", "consent", refused_event)
    assert "marketing consent" in refused["reason"]
    assert refused["pKey"] is None and refused["delivery"] is None  # never reached a sender

    one = (await mine.admin.get(f"/profiles/{profile_id}/messages",
                                params={"limit": 1})).json()["messages"]
    assert [m["messageId"] for m in one] == [refused["messageId"]]
    assert (await other.admin.get(f"/profiles/{profile_id}/messages")).status_code == 404
    assert (await mine.admin.get("/profiles/nobody-here/messages")).status_code == 404
    too_many = await mine.admin.get(f"/profiles/{profile_id}/messages", params={"limit": 201})
    assert too_many.status_code == 422
    assert too_many.json()["detail"][0]["loc"] == ["query", "limit"]
