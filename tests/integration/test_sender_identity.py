"""A tenant's sender identity and DKIM keys, end to end on the real stack: set through the
admin API, the email sender hands the tenant's mail over From and Reply-To it, with a VERP
return path naming the message as envelope sender, DKIM-signed with the active key of the
From domain; the raw message read back from the SMTP sink verifies against the public key
the admin API gave (instead of DNS). Each test has a tenant of its own."""

from __future__ import annotations

import base64
import email
import time
import uuid
from collections.abc import AsyncIterator
from email import policy
from typing import Any

import asyncpg
import dkim as dkimpy
import httpx
import pytest
from aiokafka import AIOKafkaProducer
from cryptography.fernet import Fernet

from shared.adapters import dkim
from shared.adapters import sender_identity_store as store
from shared.adapters.key_store import create_key, create_tenant
from shared.adapters.sender_identity_store import Sending, SendingCache
from shared.domain import verp
from shared.domain.api_keys import Scope
from shared.domain.events import Channel
from shared.domain.routing import EventOrigin, SendRequest, message_id
from shared.domain.sender_identity import default_identity
from shared.topics import SEND_EMAIL_TX
from tests.integration.conftest import (
    ADMIN,
    SINK,
    eventually,
    publish_event,
    settings,
    unique_email,
)

TEMPLATE = {"subject": "About {{ ctx.item }}", "html": "<p>{{ ctx.item }}</p>",
            "text": "{{ ctx.item }}"}


@pytest.fixture
async def tenant(pool: asyncpg.Pool) -> AsyncIterator[tuple[str, httpx.AsyncClient]]:
    name = f"ident-{uuid.uuid4().hex[:10]}"
    async with pool.acquire() as connection:
        await create_tenant(connection, name, "sender identity tests")
        key = await create_key(connection, name, Scope.ADMIN, "tests")
    async with httpx.AsyncClient(base_url=ADMIN, timeout=30,
                                 headers={"authorization": f"Bearer {key}"}) as admin:
        yield name, admin


async def send(pool: asyncpg.Pool, producer: AIOKafkaProducer, tenant: str
               ) -> tuple[str, dict[str, Any]]:
    """A message of ``tenant`` produced to the email sender; its id, and the mail as the
    sink received it (with its raw bytes)."""
    event_id = await publish_event(pool, "event", TEMPLATE, tenant=tenant)
    pkey, to = uuid.uuid4().hex, unique_email("ident")
    request = SendRequest(messageId=message_id(tenant, pkey), tenant=tenant,
                          origin=EventOrigin(eventId=event_id, pKey=pkey), channel=Channel.EMAIL,
                          to={"email": to}, ctx={"item": "Boots"}, acceptedAt=time.time())
    await producer.send_and_wait(SEND_EMAIL_TX.name, request.model_dump_json().encode(),
                                 request.messageId.encode())

    async def received() -> list[dict[str, Any]]:
        async with httpx.AsyncClient(timeout=10) as http:
            answer = await http.get(f"{SINK}/messages", params={"to": to, "raw": "true"})
            messages: list[dict[str, Any]] = answer.json()
            return messages

    [mail] = await eventually(received, f"the mail to {to}", deadline_s=30)
    return request.messageId, mail


def headers(mail: dict[str, Any]) -> email.message.EmailMessage:
    parsed = email.message_from_bytes(base64.b64decode(mail["raw"]), policy=policy.default)
    assert isinstance(parsed, email.message.EmailMessage)
    return parsed


def verified(mail: dict[str, Any], records: dict[str, str]) -> bool:
    """dkimpy's verification, the TXT records the admin API gave standing in for DNS."""
    def dns(name: bytes, timeout: int = 5) -> bytes:
        return records.get(name.decode().rstrip("."), "").encode()

    return bool(dkimpy.verify(base64.b64decode(mail["raw"]), dnsfunc=dns))


def signature_tags(mail: dict[str, Any]) -> dict[str, str]:
    value = str(headers(mail)["DKIM-Signature"]).replace("\r\n", "").replace(" ", "")
    return dict(tag.split("=", 1) for tag in value.split(";") if tag)


async def test_the_identity_api_answers_the_default_then_the_tenants(
    tenant: tuple[str, httpx.AsyncClient]
) -> None:
    _name, admin = tenant
    default = (await admin.get("/sender-identity")).json()
    assert default["isDefault"] is True
    assert default["fromAddress"] == "no-reply@parcours.localhost"
    assert default["bounceDomain"] == settings.bounce_domain
    for field, value in (("fromAddress", "not an address"), ("bounceDomain", "x_y"),
                         ("replyTo", "a@b@c.com")):
        body = {"fromAddress": "a@example.com", "bounceDomain": "b.example.com", field: value}
        refused = await admin.put("/sender-identity", json=body)
        assert refused.status_code == 422, refused.text
        assert [e["loc"] for e in refused.json()["detail"]] == [["body", field]]
    body = {"fromAddress": "News@Shop.Example.com", "fromName": "Shop News",
            "replyTo": "help@shop.example.com", "bounceDomain": "bounces.shop.example.com"}
    saved = await admin.put("/sender-identity", json=body)
    assert saved.status_code == 200, saved.text
    assert (await admin.get("/sender-identity")).json() == {
        **body, "fromAddress": "News@shop.example.com", "isDefault": False}


async def test_mail_goes_out_as_the_tenant_unsigned_and_its_return_path_names_it(
    tenant: tuple[str, httpx.AsyncClient], pool: asyncpg.Pool, producer: AIOKafkaProducer
) -> None:
    name, admin = tenant
    identity = {"fromAddress": "news@shop.example.com", "fromName": "Shop Ünews",
                "replyTo": "help@shop.example.com", "bounceDomain": "bounces.shop.example.com"}
    assert (await admin.put("/sender-identity", json=identity)).status_code == 200
    message, mail = await send(pool, producer, name)
    parsed = headers(mail)
    assert parsed["From"].addresses[0].addr_spec == "news@shop.example.com"
    assert parsed["From"].addresses[0].display_name == "Shop Ünews"
    assert str(parsed["Reply-To"]) == "help@shop.example.com"
    assert mail["mail_from"].endswith("@bounces.shop.example.com")
    assert verp.message_of(settings.verp_secret.encode(), mail["mail_from"]) == message
    assert "DKIM-Signature" not in parsed  # the tenant has no key


async def test_dkim_signs_with_the_active_selector_and_rotates(
    tenant: tuple[str, httpx.AsyncClient], pool: asyncpg.Pool, producer: AIOKafkaProducer
) -> None:
    name, admin = tenant
    domain = f"m{uuid.uuid4().hex[:8]}.example.com"
    identity = {"fromAddress": f"news@{domain}", "bounceDomain": "bounces.example.com"}
    assert (await admin.put("/sender-identity", json=identity)).status_code == 200
    first = await admin.post("/dkim-keys", json={"domain": domain.upper(), "selector": "s1"})
    assert first.status_code == 201, first.text
    assert first.json()["active"] is False
    assert first.json()["dnsName"] == f"s1._domainkey.{domain}"
    assert first.json()["dnsRecord"].startswith("v=DKIM1; k=rsa; p=MIIBIjAN")  # RSA 2048
    assert (await admin.post("/dkim-keys", json={"domain": domain, "selector": "s1"})
            ).status_code == 409
    refused = await admin.post("/dkim-keys", json={"domain": domain, "selector": "bad_one"})
    assert [e["loc"] for e in refused.json()["detail"]] == [["body", "selector"]]
    assert (await admin.post(f"/dkim-keys/{domain}/nope/activate")).status_code == 404

    _message, unsigned = await send(pool, producer, name)  # a key, but none active
    assert "DKIM-Signature" not in headers(unsigned)

    assert (await admin.post(f"/dkim-keys/{domain}/s1/activate")).json()["active"] is True
    records = {k["dnsName"]: k["dnsRecord"] for k in (await admin.get("/dkim-keys")).json()}
    _message, signed = await send(pool, producer, name)
    assert signature_tags(signed)["s"] == "s1" and signature_tags(signed)["d"] == domain
    assert verified(signed, records)

    # Rotation: a new selector, its record published, activated: s1 stops signing.
    second = await admin.post("/dkim-keys", json={"domain": domain, "selector": "s2"})
    assert second.status_code == 201, second.text
    assert (await admin.post(f"/dkim-keys/{domain}/s2/activate")).status_code == 200
    listed = (await admin.get("/dkim-keys", params={"domain": domain})).json()
    assert [(k["selector"], k["active"]) for k in listed] == [("s1", False), ("s2", True)]
    records = {k["dnsName"]: k["dnsRecord"] for k in listed}
    _message, rotated = await send(pool, producer, name)
    assert signature_tags(rotated)["s"] == "s2"
    assert verified(rotated, records)
    assert not verified(rotated, {f"s2._domainkey.{domain}": records[f"s1._domainkey.{domain}"]})
    assert (await admin.delete(f"/dkim-keys/{domain}/s1")).status_code == 204
    assert (await admin.delete(f"/dkim-keys/{domain}/s1")).status_code == 404
    stored = await pool.fetchval("SELECT private_key FROM dkim_keys WHERE tenant_id = $1",
                                 name)
    assert b"PRIVATE KEY" not in stored  # encrypted at rest


async def test_the_senders_cache_hears_a_change_and_needs_the_master_key(
    tenant: tuple[str, httpx.AsyncClient], pool: asyncpg.Pool
) -> None:
    """On real PostgreSQL: a cache that would keep an entry an hour picks up an activation
    at once (the notification); a key is used only with the master key that sealed it."""
    name, _admin = tenant
    master = Fernet.generate_key().decode()
    default = default_identity("Shop <news@shop-cache.example.com>", "bounces.example.com")
    cache = SendingCache(pool, 3600, dkim.Vault(master), default)
    await cache.listen(settings.pg_dsn)
    try:
        assert (await cache.get(name)) == Sending(default, None)
        pair = dkim.generate_key()
        async with pool.acquire() as connection, connection.transaction():
            await store.add_key(connection, name, "shop-cache.example.com", "s1",
                                dkim.Vault(master).seal(pair.private_pem), pair.public_b64)
            await store.activate_key(connection, name, "shop-cache.example.com", "s1")

        async def signing() -> dkim.SigningKey | None:
            return (await cache.get(name)).key

        key = await eventually(signing, "the cache to hear the activation")
        assert (key.domain, key.selector, key.private_pem) == (
            "shop-cache.example.com", "s1", pair.private_pem)
    finally:
        await cache.close()
    for vault in (dkim.Vault(None), dkim.Vault(Fernet.generate_key().decode())):
        assert (await SendingCache(pool, 0, vault, default).get(name)).key is None
