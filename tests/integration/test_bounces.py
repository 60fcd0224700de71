"""Bounces and complaints on the real stack: a message goes through the chain (gateway,
processor, email sender with its VERP return path as envelope sender, SMTP sink); for a
chosen address (``bounce-hard-…``, ``complain-…``, or one set over the sink's HTTP API)
the sink sends a DSN back to that return path, or an ARF report to the feedback-loop
address quoting it, at the bounce service, which records one reaction (relayed to
parcours.reactions.v1) and feeds quarantine or consent."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiosmtplib
import asyncpg
import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiosmtpd.smtp import SMTP, Envelope, Session

from services.bounces.app import ReturnPathHandler
from services.smtp_sink.reports import build_arf, build_dsn, send_raw
from shared.adapters.consent_store import read_consent
from shared.adapters.postgres import create_pool
from shared.domain.verp import return_path
from shared.topics import REACTIONS
from tests.integration.conftest import (
    GATEWAY,
    SINK,
    TENANT,
    add_profile,
    end_offsets,
    eventually,
    final_status,
    publish_event,
    settings,
)

BOUNCES_METRICS = f"http://127.0.0.1:{settings.bounces_metrics_port}/metrics"
SECRET = settings.verp_secret.encode()


async def sent_through_the_chain(http: httpx.AsyncClient, pool: asyncpg.Pool, event: str,
                                 label: str = "", email: str = "") -> tuple[str, str, str]:
    """A profile (``email``, or a new address starting with ``label``) and a message sent
    to it: (message id, profile id, address)."""
    email = email or f"{label}-{uuid.uuid4().hex[:12]}@example.com"
    await add_profile(pool, email, "Ann")
    response = await http.post(f"{GATEWAY}/v1/events/{event}",
                               json={"email": email, "ctx": {"item": "boots"}})
    status = await final_status(http, response.json()["href"])
    assert status["status"] == "processed", status
    row = await pool.fetchrow(
        "SELECT s.message_id, c.profile_id FROM event_status s JOIN contact_history c"
        " ON c.tenant_id = s.tenant_id AND c.message_id = s.message_id WHERE s.pkey = $1",
        response.json()["pKey"])
    return str(row["message_id"]), row["profile_id"], email


async def to_bounce_service(path: str, report: bytes) -> None:
    await send_raw(report, "", path, "127.0.0.1", settings.bounces_smtp_port)


async def received(http: httpx.AsyncClient, outcome: str) -> float:
    text = (await http.get(BOUNCES_METRICS)).text
    found = re.search(rf'^parcours_bounces_received_total\{{outcome="{outcome}"\}} (\S+)$',
                      text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


@asynccontextmanager
async def reactions_topic() -> AsyncIterator[AIOKafkaConsumer]:
    """A reader of parcours.reactions.v1 from its end now."""
    before = await end_offsets(REACTIONS)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await consumer.start()
    try:
        partitions = [TopicPartition(REACTIONS.name, p) for p in before]
        consumer.assign(partitions)
        for tp in partitions:
            consumer.seek(tp, before[tp.partition])
        yield consumer
    finally:
        await consumer.stop()


async def reactions_of(consumer: AIOKafkaConsumer, message: str, count: int,
                       seen: list[tuple[bytes, dict[str, Any]]]) -> list[tuple[bytes, Any]]:
    async def enough() -> bool:
        for records in (await consumer.getmany(timeout_ms=200)).values():
            seen.extend((r.key, orjson.loads(r.value)) for r in records
                        if orjson.loads(r.value)["messageId"] == message)
        return len(seen) >= count

    await eventually(enough, f"{count} reaction(s) of message {message} on the topic")
    return seen


async def recorded(pool: asyncpg.Pool, message: str) -> list[asyncpg.Record]:
    return await pool.fetch("SELECT kind, record FROM reactions WHERE tenant_id = $1 AND"
                            " message_id = $2", TENANT, uuid.UUID(message))


async def test_a_hard_bounce_is_one_reaction_and_quarantines_the_address(
    http: httpx.AsyncClient, pool: asyncpg.Pool, profile_event: str,
) -> None:
    async with reactions_topic() as topic:
        message, profile, email = await sent_through_the_chain(http, pool, profile_event,
                                                               "bounce-hard")
        seen: list[tuple[bytes, dict[str, Any]]] = []
        [(key, reaction)] = await reactions_of(topic, message, 1, seen)
    assert key == profile.encode()
    assert (reaction["kind"], reaction["bounce"]["type"], reaction["profileId"],
            reaction["source"], reaction["channel"]) == ("bounced", "hard", profile, "dsn",
                                                         "email")
    assert reaction["bounce"]["reply"].startswith("550 5.1.1")
    assert reaction["origin"] == {"kind": "event", "eventId": profile_event,
                                  "pKey": reaction["origin"]["pKey"]}
    row = await pool.fetchrow(
        "SELECT quarantined_at, reason FROM quarantine WHERE tenant_id = $1"
        " AND channel = 'email' AND address = $2", TENANT, email.lower())
    assert row is not None and row["quarantined_at"] is not None
    assert row["reason"].startswith("hard failure: dsn 5.1.1")
    again = await http.post(f"{GATEWAY}/v1/events/{profile_event}",
                            json={"email": email, "ctx": {"item": "boots"}})
    status = await final_status(http, again.json()["href"])
    assert status["status"] == "excluded" and "(quarantine)" in status["reason"], status

    # The same DSN delivered twice more: still one reaction.
    repeated = await received(http, "repeated")
    path = return_path(SECRET, message, settings.bounce_domain)
    report = build_dsn("hard", path, email, b"Subject: boots\r\n\r\n")
    for _ in range(2):
        await to_bounce_service(path, report)
    await eventually(lambda: _above(http, "repeated", repeated + 1), "two repeats counted")
    assert [r["kind"] for r in await recorded(pool, message)] == ["bounced"]


async def _above(http: httpx.AsyncClient, outcome: str, value: float) -> bool:
    return await received(http, outcome) >= value


async def test_a_soft_bounce_chosen_over_the_sink_api_is_soft_and_one_soft_failure(
    http: httpx.AsyncClient, pool: asyncpg.Pool, profile_event: str,
) -> None:
    email = f"soft-{uuid.uuid4().hex[:12]}@example.com"
    chosen = await http.post(f"{SINK}/reports", params={"to": email, "kind": "soft"})
    assert chosen.status_code == 204
    async with reactions_topic() as topic:
        message, _profile, _email = await sent_through_the_chain(http, pool, profile_event,
                                                                 email=email)
        [(_key, reaction)] = await reactions_of(topic, message, 1, [])
    assert (reaction["kind"], reaction["bounce"]["type"]) == ("bounced", "soft")
    assert "4.2.2" in reaction["bounce"]["reply"]
    row = await pool.fetchrow(
        "SELECT soft_failures, quarantined_at FROM quarantine WHERE tenant_id = $1"
        " AND channel = 'email' AND address = $2", TENANT, email.lower())
    assert row is not None and (row["soft_failures"], row["quarantined_at"]) == (1, None)


async def test_a_complaint_withdraws_marketing_consent_on_email(
    http: httpx.AsyncClient, pool: asyncpg.Pool, profile_event: str,
) -> None:
    async with reactions_topic() as topic:
        message, profile, email = await sent_through_the_chain(http, pool, profile_event,
                                                               "complain")
        [(key, reaction)] = await reactions_of(topic, message, 1, [])
    assert (key, reaction["kind"], reaction["source"], reaction["bounce"]) == (
        profile.encode(), "complained", "arf", None)
    async with pool.acquire() as connection:
        consent = await read_consent(connection, TENANT, profile)
    assert [(c.kind, c.name, c.value, c.source) for c in consent] == [
        ("marketing", "email", "opted-out", "complaint")]
    assert await pool.fetchval(
        "SELECT count(*) FROM quarantine WHERE tenant_id = $1 AND address = $2",
        TENANT, email.lower()) == 0


async def test_a_report_to_a_forged_return_path_is_accepted_and_recorded_nowhere(
    http: httpx.AsyncClient, pool: asyncpg.Pool, profile_event: str,
) -> None:
    message, _profile, email = await sent_through_the_chain(http, pool, profile_event,
                                                            "forged")  # the sink keeps it
    genuine = return_path(SECRET, message, settings.bounce_domain)
    forged = return_path(b"not our secret", message, settings.bounce_domain)
    assert genuine != forged
    before = await received(http, "forged")
    await to_bounce_service(forged, build_dsn("hard", forged, email, b"Subject: x\r\n\r\n"))
    await eventually(lambda: _above(http, "forged", before + 1), "the forged report counted")
    assert await recorded(pool, message) == []
    assert await pool.fetchval(
        "SELECT count(*) FROM quarantine WHERE tenant_id = $1 AND address = $2",
        TENANT, email.lower()) == 0
    # A complaint to the feedback-loop address quoting the forged return path: the same.
    await to_bounce_service(f"fbl@{settings.bounce_domain}", build_arf(forged, email, b""))
    await eventually(lambda: _above(http, "forged", before + 2), "the forged complaint")
    assert await recorded(pool, message) == []
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused):  # not a return path at all
        await to_bounce_service(f"postmaster@{settings.bounce_domain}", b"Subject: x\r\n\r\n")


async def test_an_event_based_message_bounces_keyed_by_its_address(
    http: httpx.AsyncClient, pool: asyncpg.Pool,
) -> None:
    """No profile: the DSN's recipient is the address (the ledger keeps none)."""
    event = await publish_event(pool, "event")
    email = f"bounce-hard-{uuid.uuid4().hex[:12]}@example.com"
    async with reactions_topic() as topic:
        response = await http.post(f"{GATEWAY}/v1/events/{event}",
                                   json={"email": email, "ctx": {"item": "receipt"}})
        assert (await final_status(http, response.json()["href"]))["status"] == "processed"
        message = str(await pool.fetchval("SELECT message_id FROM event_status WHERE pkey = $1",
                                          response.json()["pKey"]))
        [(key, reaction)] = await reactions_of(topic, message, 1, [])
    assert (key, reaction["profileId"], reaction["address"], reaction["bounce"]["type"]) == (
        email.encode(), None, email, "hard")
    assert await pool.fetchval(
        "SELECT quarantined_at IS NOT NULL FROM quarantine WHERE tenant_id = $1"
        " AND channel = 'email' AND address = $2", TENANT, email.lower())


async def test_postgresql_away_answers_451_so_the_remote_tries_again(pool: asyncpg.Pool
                                                                     ) -> None:
    """A pool of its own, closed: what the service meets while PostgreSQL is away."""
    closed = await create_pool(settings.pg_dsn)
    await closed.close()
    handler = ReturnPathHandler(closed, SECRET)
    path = return_path(SECRET, str(uuid.uuid4()), settings.bounce_domain)
    envelope = Envelope()
    envelope.rcpt_tos, envelope.content = [path], build_dsn("hard", path, "a@example.com", b"")
    assert await handler.handle_DATA(SMTP(handler), Session(asyncio.get_running_loop()),
                                      envelope) == "451 4.3.0 try again later"
    envelope.rcpt_tos = [return_path(b"forged", str(uuid.uuid4()), settings.bounce_domain)]
    assert await handler.handle_DATA(SMTP(handler), Session(asyncio.get_running_loop()),
                                      envelope) == "250 OK"  # forged needs no database
