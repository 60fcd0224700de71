"""``parcours deadletters list|show|replay`` on the real stack, run as the CLI a person
runs: a signed record dead-lettered by the processor is listed with its topic and
signature, shown in full, and replayed as it was, still invalid, it is dead-lettered again
with the same reason and the replay header, its event unchanged. Fixed at its cause, a
replayed record passes: an event record refused as not published is emailed once the event
is published, a profile record refused for an undefined attribute is applied once the
attribute is defined, a journey event of an undefined type enters its journey once the
type is defined. A record of a topic Parcours trusts (a send record) is never replayed,
and says why."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg
import httpx
import orjson
from aiokafka import AIOKafkaProducer

from shared.adapters import profile_store
from shared.adapters.catalog_store import save_event
from shared.adapters.key_store import create_tenant
from shared.adapters.profile_schema_store import save_schema
from shared.domain.deadletter import REPLAYED_FROM_HEADER
from shared.domain.events import EventConfig
from shared.domain.pkeys import derive_pkey
from shared.domain.profile_records import profile_key
from shared.domain.profile_schema import ProfileSchema
from shared.kafka_profiles import profile_upsert
from shared.kafka_signing import RecordSigner
from shared.topics import (
    DEADLETTER,
    EVENTS_KAFKA,
    JOURNEY_EVENTS_KAFKA,
    PROFILES,
    SEND_EMAIL_TX,
)
from tests.integration.conftest import (
    DEFAULT_TEMPLATE,
    GATEWAY,
    ROOT,
    TENANT,
    dead_letter_of,
    dead_letter_where,
    end_offsets,
    eventually,
    final_status,
    kafka_signer,
    mails_to,
    publish_event,
    settings,
    unique_email,
)
from tests.integration.test_journey_engine import SIGNUP, Tenant, publish_version, tenant

__all__ = ["tenant"]  # the journey engine's fixture: a tenant with admin and profile keys


T = TypeVar("T")


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "services.cli", "deadletters", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


async def run(*args: str, status: int = 0) -> str:
    done = await asyncio.to_thread(cli, *args)
    assert done.returncode == status, (args, done.stdout, done.stderr)
    return done.stdout


async def listed(*filters: str) -> list[dict[str, Any]]:
    out = json.loads(await run("list", "--last", "15m", "--limit", "1000", "--json", *filters))
    letters: list[dict[str, Any]] = out["letters"]
    assert out["matched"] == len(letters)
    return letters


async def listed_until(count: int, *filters: str) -> list[dict[str, Any]]:
    async def probe() -> list[dict[str, Any]] | None:
        letters = await listed(*filters)
        return letters if len(letters) >= count else None

    return await eventually(probe, f"{count} dead letters for {filters}", 30)


async def until_known(send: Callable[[], Awaitable[T]], through: Callable[[T], Awaitable[Any]],
                      what: str) -> None:
    """Send a canary each second until one is through: a stage knows a configuration
    changed (an event published, an attribute or a journey event type defined) by a
    notification, or within its cache's 2 s, which a first record could just miss."""
    sent: list[T] = []
    last = 0.0

    async def probe() -> bool:
        nonlocal last
        for canary in sent:
            if await through(canary):
                return True
        if time.monotonic() - last > 1:
            last = time.monotonic()
            sent.append(await send())
        return False

    await eventually(probe, what, 30)


def at_iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()


async def test_a_still_invalid_record_is_listed_shown_and_dead_lettered_again_on_replay(
    pool: asyncpg.Pool, producer: AIOKafkaProducer, signer: RecordSigner,
    http: httpx.AsyncClient,
) -> None:
    event_id = await publish_event(pool, "event")
    email = unique_email("replay")
    record = {"tenant": TENANT, "eventId": event_id, "eventKey": f"o-{uuid.uuid4().hex}",
              "email": email, "ctx": {"item": "shoes", "price": "cheap"}}
    value = orjson.dumps(record)
    before = await end_offsets(DEADLETTER)
    await producer.send_and_wait(EVENTS_KAFKA.name, value, email.encode(),
                                 headers=signer.headers(value))
    await dead_letter_of(before, record["eventKey"])

    [letter] = await listed("--stage", "processor", "--key", email)
    assert letter["reason"] == "invalid: ctx.price: Input should be a valid decimal"
    assert letter["topic"] == EVENTS_KAFKA.name and letter["original"] == value.decode()
    assert letter["key"] == email and letter["replayedFrom"] is None
    assert dict(letter["headers"]) == {n: v.decode() for n, v in signer.headers(value)}
    ident = letter["id"]

    shown = await run("show", ident)
    assert "reason     invalid: ctx.price: Input should be a valid decimal" in shown
    assert f"header     parcours-key-id: {signer.key_id}" in shown
    assert f"replay     to {EVENTS_KAFKA.name}" in shown
    assert f'    "eventKey": "{record["eventKey"]}",' in shown  # pretty-printed

    dry = json.loads(await run("replay", ident, "--dry-run", "--json"))
    assert (dry["selected"], dry["wouldReplay"], dry["replayed"]) == (1, 1, 0)
    done = json.loads(await run("replay", ident, "--json"))
    assert (done["selected"], done["replayed"], done["skipped"]) == (1, 1, [])
    assert done["byTopic"] == {EVENTS_KAFKA.name: 1}

    letters = await listed_until(2, "--key", email)
    assert len(letters) == 2  # the dry run produced nothing
    again = letters[1]
    assert again["replayedFrom"] == ident and again["stage"] == "processor"
    assert again["reason"] == letter["reason"]  # the same check, the same answer
    assert again["original"] == letter["original"] and again["timestamp"] == letter["timestamp"]
    assert [h for h in again["headers"] if h[0] != REPLAYED_FROM_HEADER] == letter["headers"]
    # the event keeps the status the first record gave it
    pkey = derive_pkey(settings.pkey_secret.encode(), TENANT, event_id, record["eventKey"])
    status = await final_status(http, f"/v1/events/{event_id}/{pkey}")
    assert status["status"] == "routingFailed" and status["reason"] == letter["reason"]

    # filters: reason (any case), stage, time window
    assert len(await listed("--key", email, "--reason", "CTX.PRICE")) == 2
    assert await listed("--key", email, "--reason", "not published") == []
    assert await listed("--key", email, "--stage", "profile-ingest") == []
    assert await listed("--key", email, "--until", at_iso(letter["at"] - 0.001)) == []
    [later] = await listed("--key", email, "--since", at_iso(letter["at"] + 0.001))
    assert later["id"] == again["id"]
    table = await run("list", "--last", "15m", "--key", email)
    assert f"(replay of {ident})" in table and "2 shown of 2 matched" in table


async def test_a_record_of_an_event_published_since_is_emailed_once_replayed(
    pool: asyncpg.Pool, producer: AIOKafkaProducer, signer: RecordSigner,
    http: httpx.AsyncClient,
) -> None:
    event_id = f"EVTlate{uuid.uuid4().hex[:10]}"
    email = unique_email("late")

    async def send(event_key: str, to: str) -> dict[str, Any]:
        record = {"tenant": TENANT, "eventId": event_id, "eventKey": event_key, "email": to,
                  "ctx": {"item": "boots"}}
        value = orjson.dumps(record)
        await producer.send_and_wait(EVENTS_KAFKA.name, value, to.encode(),
                                     headers=signer.headers(value))
        return record

    def href(record: dict[str, Any]) -> str:
        pkey = derive_pkey(settings.pkey_secret.encode(), TENANT, event_id, record["eventKey"])
        return f"/v1/events/{event_id}/{pkey}"

    before = await end_offsets(DEADLETTER)
    record = await send(f"o-{uuid.uuid4().hex}", email)
    await dead_letter_of(before, record["eventKey"])
    [letter] = await listed("--stage", "processor", "--key", email)
    assert letter["reason"] == f"unknown_event: event {event_id} is not published"
    assert (await final_status(http, href(record)))["status"] == "routingFailed"

    await save_event(pool, TENANT, EventConfig.model_validate({
        "event_id": event_id, "label": "late", "channel": "email", "targeting": "event",
        "fields": [{"id": "item", "type": "string", "required": True}]}), DEFAULT_TEMPLATE)
    # the processor knows the event once another record of it is processed
    async def status_is_processed(canary: dict[str, Any]) -> bool:
        return bool((await http.get(GATEWAY + href(canary))).json()["status"] == "processed")

    await until_known(lambda: send(f"canary-{uuid.uuid4().hex}", unique_email("canary")),
                      status_is_processed, "a canary of the event processed")

    text = await run("replay", letter["id"])
    assert f"replayed           1  {EVENTS_KAFKA.name} 1" in text, text

    async def processed() -> dict[str, Any] | None:
        body: dict[str, Any] = (await http.get(GATEWAY + href(record))).json()
        return body if body["status"] == "processed" else None

    await eventually(processed, "the replayed event processed", 30)
    [mail] = await eventually(lambda: mails_to(http, email), "the replayed event's email")
    assert mail["subject"] == "Hello there, about boots"
    assert len(await listed("--key", email)) == 1  # not dead-lettered again


async def _profile_tenant(pool: asyncpg.Pool) -> tuple[str, RecordSigner]:
    tenant = f"dl-{uuid.uuid4().hex[:8]}"
    async with pool.acquire() as connection:
        await create_tenant(connection, tenant, "Dead letters")
        await save_schema(connection, tenant, ProfileSchema.model_validate(
            {"attributes": [{"name": "loyaltyTier", "type": "string"}]}))
    return tenant, await kafka_signer(pool, tenant)


async def _stored(pool: asyncpg.Pool, tenant: str, profile_id: str) -> dict[str, Any] | None:
    async with pool.acquire() as connection:
        return await profile_store.read_profile(connection, tenant, profile_id)


async def test_a_profile_record_is_applied_when_replayed_after_its_attribute_is_defined(
    pool: asyncpg.Pool, producer: AIOKafkaProducer,
) -> None:
    tenant, signer = await _profile_tenant(pool)
    profile_id = f"cust-{uuid.uuid4().hex[:12]}"
    key, value, headers = profile_upsert(signer, tenant, profile_id,
                                         {"firstName": "Ada", "attributes": {"shoeSize": 38}})
    before = await end_offsets(DEADLETTER)
    await producer.send_and_wait(PROFILES.name, value, key, headers=headers)
    await dead_letter_where(before, lambda r, _: r.key == key, "the profile's dead letter")
    [letter] = await listed("--stage", "profile-ingest", "--key", profile_id)
    assert letter["reason"].startswith("invalid: profile.attributes.shoeSize: not an attribute")
    assert letter["key"] == profile_key(tenant, profile_id).decode()
    assert await _stored(pool, tenant, profile_id) is None

    async with pool.acquire() as connection:
        await save_schema(connection, tenant, ProfileSchema.model_validate(
            {"attributes": [{"name": "loyaltyTier", "type": "string"},
                            {"name": "shoeSize", "type": "integer"}]}))
    # profile-ingest knows the attribute once another record with it is applied
    async def canary() -> str:
        canary_id = f"canary-{uuid.uuid4().hex[:8]}"
        key, value, headers = profile_upsert(signer, tenant, canary_id,
                                             {"attributes": {"shoeSize": 40}})
        await producer.send_and_wait(PROFILES.name, value, key, headers=headers)
        return canary_id

    await until_known(canary, lambda canary_id: _stored(pool, tenant, canary_id),
                      "a canary profile with the attribute")

    done = json.loads(await run("replay", "--stage", "profile-ingest", "--key", profile_id,
                                "--last", "15m", "--json"))
    assert (done["selected"], done["replayed"], done["byTopic"]) == (1, 1, {PROFILES.name: 1})

    async def applied() -> dict[str, Any] | None:
        row = await _stored(pool, tenant, profile_id)
        return row if row and row["attributes"].get("shoeSize") == 38 else None

    row = await eventually(applied, "the replayed profile", 30)
    assert row["first_name"] == "Ada"
    # written as of the original record, not of the replay
    assert abs(row["written_at"].timestamp() - letter["timestamp"]) < 0.002
    assert len(await listed("--key", profile_id)) == 1  # not dead-lettered again


async def test_a_journey_event_of_a_type_defined_since_enters_its_journey_once_replayed(
    pool: asyncpg.Pool, producer: AIOKafkaProducer, tenant: Tenant,
) -> None:
    late, canary = f"dl-{uuid.uuid4().hex[:12]}", f"dl-{uuid.uuid4().hex[:12]}"
    for profile_id in (late, canary):
        written = await tenant.profiles.put(f"/v1/profiles/{profile_id}",
                                            json={"email": unique_email("jev")})
        assert written.status_code == 201, written.text
    await publish_version(pool, tenant.name, {
        "id": "late", "entry": {"type": "event", "eventId": "JEVlate", "next": "done"},
        "nodes": [{"id": "done", "type": "end"}]})
    signer = await kafka_signer(pool, tenant.name)

    async def send(profile_id: str) -> None:
        value = orjson.dumps({"v": 1, "tenant": tenant.name, "eventId": "JEVlate",
                              "payload": {"customerId": profile_id}})
        await producer.send_and_wait(JOURNEY_EVENTS_KAFKA.name, value,
                                     key=profile_id.encode(), headers=signer.headers(value))

    async def finished(profile_id: str) -> int:
        return int(await pool.fetchval(
            "SELECT count(*) FROM journey_instances WHERE tenant_id = $1 AND profile_id = $2"
            " AND state = 'finished'", tenant.name, profile_id))

    before = await end_offsets(DEADLETTER)
    await send(late)
    await dead_letter_where(before, lambda r, _: r.key == late.encode(), "the event's letter")
    [letter] = await listed("--stage", "journeys", "--key", late)
    assert letter["reason"].startswith("invalid: no journey event 'JEVlate' in tenant")
    assert letter["topic"] == JOURNEY_EVENTS_KAFKA.name

    defined = await tenant.admin.put("/journey-events/JEVlate", json=SIGNUP)
    assert defined.status_code == 201, defined.text
    await until_known(lambda: send(canary), lambda _: finished(canary),
                      "the canary through the journey")
    assert not await finished(late)

    done = json.loads(await run("replay", letter["id"], "--json"))
    assert (done["replayed"], done["byTopic"]) == (1, {JOURNEY_EVENTS_KAFKA.name: 1})
    await eventually(lambda: finished(late), "the replayed event through the journey", 30)
    assert await finished(late) == 1


async def test_a_record_parcours_trusts_is_not_replayed_and_says_why(
    producer: AIOKafkaProducer,
) -> None:
    key = f"garbage-{uuid.uuid4().hex}".encode()
    before = await end_offsets(DEADLETTER)
    await producer.send_and_wait(SEND_EMAIL_TX.name, b"{not a send record", key)
    await dead_letter_where(before, lambda r, _: r.key == key, "the sender's dead letter")
    [letter] = await listed("--stage", "sender-email", "--key", key.decode())
    assert letter["topic"] == SEND_EMAIL_TX.name
    done = json.loads(await run("replay", letter["id"], "--json"))
    assert (done["selected"], done["replayed"]) == (1, 0)
    [skipped] = done["skipped"]
    assert skipped["id"] == letter["id"]
    assert skipped["why"].startswith(f"{SEND_EMAIL_TX.name} is not signed")
    assert "not replayable" in await run("show", letter["id"])
    text = await run("replay", letter["id"])
    assert f"  {letter['id']:<10} sender-email      {SEND_EMAIL_TX.name} is not signed" in text
    missing = await asyncio.to_thread(cli, "replay", "0:999999999", "9:0")  # 9: no partition
    assert missing.returncode == 1 and "not found          2  0:999999999 9:0" in missing.stdout
    refused = await asyncio.to_thread(cli, "replay")
    assert refused.returncode == 2 and "--stage" in refused.stderr
