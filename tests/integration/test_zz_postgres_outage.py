"""A PostgreSQL outage under load: signed profile records flow into parcours.profiles.v1
and the gateway takes events at a steady rate while PostgreSQL is stopped (a fast
shutdown: every connection dropped), stays away ~10 s and comes back. Nothing is lost and
nobody is restarted: every record produced ends applied (the row holds its profile's
latest record) or dead-lettered with the reason; every event answered 202 ends
``processed`` and is emailed once; the gateway answers what needs PostgreSQL with 503 and
Retry-After meanwhile, promptly, never 500 nor a hang; and profile-ingest, the processor,
the senders and the gateway work again by themselves afterwards."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from shared.adapters.key_store import create_key, create_tenant
from shared.adapters.profile_schema_store import save_schema
from shared.domain.api_keys import Scope
from shared.domain.profile_schema import ProfileSchema
from shared.domain.status import TERMINAL
from shared.kafka_profiles import profile_upsert
from shared.kafka_signing import RecordSigner
from shared.settings import RUN_DIR
from shared.topics import DEADLETTER, PROFILES
from tests.integration.conftest import (
    GATEWAY,
    SINK,
    dead_letter_reader,
    end_offsets,
    eventually,
    final_status,
    kafka_signer,
    mails_to,
    publish_event,
    settings,
    stack,
    unique_email,
)

pytestmark = pytest.mark.disruptive
EVENTS_PER_S, RECORDS_PER_S = 100, 200
BEFORE_S, AWAY_S, AFTER_S = 3.0, 10.0, 8.0
PROFILES_IN_PLAY = 300
ANSWER_WITHIN_S = 10.0  # a request during the outage is answered within this, or it hangs
SERVICES = ("gateway", "processor", "sender-email", "sender-email-bulk", "sender-sms",
            "sender-push", "profile-ingest")


@dataclass
class Answered:
    email: str
    status: int
    href: str | None = None


@dataclass
class Events:
    """Posts one event every 1/EVENTS_PER_S seconds until stopped; keeps every answer."""

    client: httpx.AsyncClient
    event_id: str
    answers: list[Answered] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    stopping: bool = False

    async def _post(self, email: str) -> None:
        try:
            response = await self.client.post(f"{GATEWAY}/v1/events/{self.event_id}",
                                              json={"email": email, "ctx": {"item": "pg"}})
        except httpx.HTTPError as error:  # the gateway must answer, whatever PostgreSQL does
            self.failures.append(f"{type(error).__name__}: {error}")
            return
        href = response.json().get("href") if response.status_code == 202 else None
        self.answers.append(Answered(email, response.status_code, href))

    async def run(self) -> None:
        tasks: set[asyncio.Task[None]] = set()
        started, sent = time.monotonic(), 0
        while not self.stopping:
            task = asyncio.create_task(self._post(unique_email("pgout")))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            sent += 1
            await asyncio.sleep(max(0.0, started + sent / EVENTS_PER_S - time.monotonic()))
        await asyncio.gather(*tasks)


@dataclass
class Records:
    """Produces one signed profile record every 1/RECORDS_PER_S seconds, each dated one
    millisecond after the one before, over PROFILES_IN_PLAY profiles; one in fifty is
    invalid (an attribute the schema does not have), for a profile of its own."""

    producer: AIOKafkaProducer
    tenant: str
    signer: RecordSigner
    latest: dict[str, int] = field(default_factory=dict)  # profile id: its latest seq
    invalid: set[bytes] = field(default_factory=set)  # keys of the invalid records
    stopping: bool = False

    async def run(self) -> None:
        sends = []
        started, seq, base = time.monotonic(), 0, int(time.time() * 1000)
        while not self.stopping:
            if seq % 50 == 49:
                profile_id, body = f"bad-{seq}", {"attributes": {"notInSchema": seq}}
            else:
                profile_id = f"p-{seq % PROFILES_IN_PLAY}"
                body = {"city": f"c{seq}", "attributes": {"seq": seq}}
            key, value, headers = profile_upsert(self.signer, self.tenant, profile_id, body)
            sends.append(await self.producer.send(PROFILES.name, value, key=key,
                                                  headers=headers, timestamp_ms=base + seq))
            if profile_id.startswith("bad-"):
                self.invalid.add(key)
            else:
                self.latest[profile_id] = seq
            seq += 1
            await asyncio.sleep(max(0.0, started + seq / RECORDS_PER_S - time.monotonic()))
        for sent in sends:
            await sent  # Kafka is up throughout: every record is written


@dataclass
class Probe:
    what: str
    status: int | None
    seconds: float
    retry_after: str | None
    body: str


async def _probe(client: httpx.AsyncClient, what: str, method: str, url: str,
                 **kwargs: Any) -> Probe:
    started = time.monotonic()
    try:
        response = await client.request(method, url, timeout=ANSWER_WITHIN_S, **kwargs)
    except httpx.HTTPError as error:
        return Probe(what, None, time.monotonic() - started, None,
                     f"{type(error).__name__}: {error}")
    return Probe(what, response.status_code, time.monotonic() - started,
                 response.headers.get("retry-after"), response.text[:200])


async def _gateway_writes(client: httpx.AsyncClient, profiles_key: str, href: str
                          ) -> list[Probe]:
    """What the gateway answers, with PostgreSQL away, to requests that need it."""
    profiles = {"authorization": f"Bearer {profiles_key}"}
    return list(await asyncio.gather(
        _probe(client, "PUT profile", "PUT", f"{GATEWAY}/v1/profiles/api-1", headers=profiles,
               json={"city": "Outage"}),
        _probe(client, "PATCH profile", "PATCH", f"{GATEWAY}/v1/profiles/api-1",
               headers=profiles, json={"city": "Outage"}),
        _probe(client, "profile batch", "POST", f"{GATEWAY}/v1/profiles/batch",
               headers=profiles, json={"profiles": [{"profileId": "api-2", "city": "X"}]}),
        _probe(client, "GET profile", "GET", f"{GATEWAY}/v1/profiles/api-1", headers=profiles),
        _probe(client, "DELETE profile", "DELETE", f"{GATEWAY}/v1/profiles/api-3",
               headers=profiles),
        _probe(client, "consent history", "GET",
               f"{GATEWAY}/v1/profiles/api-1/consent/history", headers=profiles),
        _probe(client, "export", "GET", f"{GATEWAY}/v1/profiles/api-1/export",
               headers=profiles),
        _probe(client, "lookup", "GET", f"{GATEWAY}/v1/profiles",
               params={"email": "nobody@example.com"}, headers=profiles),
        _probe(client, "GET event status", "GET", f"{GATEWAY}{href}"),
    ))


async def _listening(pool: asyncpg.Pool, pids: dict[str, int]) -> set[tuple[str, str]]:
    """(service, channel) of every LISTEN connection of ``pids``' services."""
    names = await pool.fetch("SELECT application_name FROM pg_stat_activity"
                             " WHERE application_name LIKE 'parcours-listen %'")
    by_pid = {str(pid): name for name, pid in pids.items()}
    listening = set()
    for row in names:
        _, pid, channel = row["application_name"].split(" ", 2)
        if pid in by_pid:
            listening.add((by_pid[pid], channel))
    return listening


def _pids() -> dict[str, int]:
    return {name: int((RUN_DIR / "pids" / f"{name}.pid").read_text()) for name in SERVICES}


async def _profile_tenant(pool: asyncpg.Pool) -> tuple[str, RecordSigner, str]:
    tenant = f"pgout-{uuid.uuid4().hex[:8]}"
    async with pool.acquire() as connection:
        await create_tenant(connection, tenant, "PostgreSQL outage")
        await save_schema(connection, tenant, ProfileSchema.model_validate({
            "attributes": [{"name": "seq", "type": "integer"}]}))
        profiles_key = await create_key(connection, tenant, Scope.PROFILES, "tests")
    return tenant, await kafka_signer(pool, tenant), profiles_key


async def _dead_letters(before: dict[int, int], tenant: str, wanted: set[bytes]
                        ) -> dict[bytes, str]:
    """The reason of every dead letter of ``tenant``'s records written after ``before``,
    once those of ``wanted`` are all there."""
    prefix = f"{tenant}\0".encode()
    found: dict[bytes, str] = {}
    async with dead_letter_reader(before) as consumer:
        async def all_found() -> bool:
            batches = await consumer.getmany(timeout_ms=200)
            for record in (r for rs in batches.values() for r in rs):
                if record.key is not None and record.key.startswith(prefix):
                    found[record.key] = orjson.loads(record.value).get("reason", "")
            return wanted <= set(found)

        await eventually(all_found, f"{len(wanted)} dead letters", deadline_s=120)
    return found


async def test_postgres_outage_under_load_loses_nothing_and_recovers_by_itself(
    pool: asyncpg.Pool, ingest_key: str
) -> None:
    event_id = await publish_event(pool, "event")
    tenant, signer, profiles_key = await _profile_tenant(pool)
    pids = _pids()
    listening = await _listening(pool, pids)
    assert {name for name, _ in listening} >= {"gateway", "processor", "profile-ingest"}
    dead_before = await end_offsets(DEADLETTER)
    limits = httpx.Limits(max_connections=2000, max_keepalive_connections=200,
                          keepalive_expiry=2.0)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all",
                                enable_idempotence=True, linger_ms=5)
    await producer.start()
    async with httpx.AsyncClient(timeout=60, limits=limits,
                                 headers={"authorization": f"Bearer {ingest_key}"}) as client:
        before = await client.post(f"{GATEWAY}/v1/events/{event_id}",
                                   json={"email": unique_email("pgout"), "ctx": {"item": "pg"}})
        assert before.status_code == 202, before.text
        # the profiles key read and cached: the probes meet the routes, not authentication
        warm = await client.put(f"{GATEWAY}/v1/profiles/api-0", json={"city": "Before"},
                                headers={"authorization": f"Bearer {profiles_key}"})
        assert warm.status_code == 201, warm.text
        events = Events(client, event_id)
        records = Records(producer, tenant, signer)
        running = [asyncio.create_task(events.run()), asyncio.create_task(records.run())]
        probes: list[Probe] = []
        try:
            await asyncio.sleep(BEFORE_S)  # pacing the load, not waiting for a state
            await asyncio.to_thread(stack, "stop", "postgres")  # returns once it is down
            try:
                probes += await _gateway_writes(client, profiles_key, before.json()["href"])
                await asyncio.sleep(AWAY_S)  # the outage: PostgreSQL stays away this long
                # past every cache's 10 s: keys and schemas must be read again by now
                probes += await _gateway_writes(client, profiles_key, before.json()["href"])
            finally:
                await asyncio.to_thread(stack, "start", "postgres")
            await asyncio.sleep(AFTER_S)
        finally:
            events.stopping = records.stopping = True
            await asyncio.gather(*running)
            await producer.stop()

        # The gateway answered everything, promptly: 202, or 503 with Retry-After.
        assert not events.failures, f"requests not answered: {events.failures[:3]}"
        statuses = {a.status for a in events.answers}
        assert statuses <= {202, 503}, f"answers: {sorted(statuses)}"
        accepted = [a for a in events.answers if a.status == 202]
        refused = [a for a in events.answers if a.status == 503]
        bad = [p for p in probes if p.status != 503 or not p.retry_after
               or p.seconds > ANSWER_WITHIN_S]
        assert not bad, "with PostgreSQL away, the gateway answered: " + "; ".join(
            f"{p.what}: {p.status} in {p.seconds:.1f}s ({p.body})" for p in bad)

        # Every accepted event ends processed and is emailed once.
        pkeys = {a.href.rsplit("/", 1)[1] for a in accepted if a.href}

        seen: dict[str, str] = {}

        async def all_final() -> dict[str, str] | None:
            rows = await pool.fetch("SELECT pkey, status FROM event_status"
                                    " WHERE event_id = $1", event_id)
            seen.update({row["pkey"]: row["status"] for row in rows})
            done = all(seen.get(p) in {s.value for s in TERMINAL} for p in pkeys)
            return seen if done else None

        try:
            final = await eventually(all_final, "every accepted event to reach a final status",
                                     deadline_s=120)
        except AssertionError as timed_out:
            stuck = [(p, seen.get(p)) for p in pkeys if seen.get(p) not in
                     {s.value for s in TERMINAL}]
            raise AssertionError(f"{timed_out}: {len(stuck)} not final: {stuck[:5]}") from None
        not_processed = {p: final[p] for p in pkeys if final[p] != "processed"}
        assert not not_processed, f"not processed: {list(not_processed.items())[:5]}"

        async def mailed() -> list[str] | None:
            recipients: list[str] = (await client.get(
                f"{SINK}/recipients", params={"containing": "pgout-"})).json()
            return recipients if {a.email for a in accepted} <= set(recipients) else None

        recipients = await eventually(mailed, "every accepted event to be emailed",
                                      deadline_s=60)
        twice = [a.email for a in accepted if recipients.count(a.email) != 1]
        assert not twice, f"{len(twice)} events emailed more than once: {twice[:3]}"
        assert not [a for a in refused if a.email in recipients], "a 503 was emailed"

        # Every record produced: applied (the row holds its profile's latest record) or
        # dead-lettered with the reason.
        async def applied() -> bool:
            rows = await pool.fetch("SELECT profile_id, city, attributes FROM profiles"
                                    " WHERE tenant_id = $1", tenant)
            held = {row["profile_id"]: (row["city"], row["attributes"]) for row in rows}
            return all(held.get(p) == (f"c{seq}", {"seq": seq})
                       for p, seq in records.latest.items())

        await eventually(applied, f"{len(records.latest)} profiles at their latest record",
                         deadline_s=120)
        assert records.invalid
        reasons = await _dead_letters(dead_before, tenant, records.invalid)
        wrongly = {k: r for k, r in reasons.items() if k not in records.invalid}
        assert not wrongly, f"valid records dead-lettered: {list(wrongly.items())[:3]}"
        assert all(r.startswith("invalid") and "notInSchema" in r for r in reasons.values()), (
            sorted(set(reasons.values()))[:3])
        assert not await pool.fetchval("SELECT count(*) FROM profiles WHERE tenant_id = $1"
                                       " AND profile_id LIKE 'bad-%'", tenant)

        # Nobody was restarted, and everybody works again: every cache listens again to
        # PostgreSQL's announcements, a fresh event, a fresh record, a profile API write.
        assert _pids() == pids, "a service was restarted"

        async def listening_again() -> bool:
            return await _listening(pool, pids) >= listening

        await eventually(listening_again, "every listener back", deadline_s=30)
        fresh = unique_email("pgout-after")
        response = await client.post(f"{GATEWAY}/v1/events/{event_id}",
                                     json={"email": fresh, "ctx": {"item": "after"}})
        assert response.status_code == 202, response.text
        assert (await final_status(client, response.json()["href"],
                                   deadline_s=30))["status"] == "processed"
        assert len(await mails_to(client, fresh)) == 1
        written = await client.put(f"{GATEWAY}/v1/profiles/api-after",
                                   headers={"authorization": f"Bearer {profiles_key}"},
                                   json={"city": "Back"})
        assert written.status_code == 201, written.text
        late = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
        await late.start()
        try:
            key, value, headers = profile_upsert(signer, tenant, "p-after", {"city": "After"})
            await late.send_and_wait(PROFILES.name, value, key=key, headers=headers)
        finally:
            await late.stop()

        async def after_applied() -> bool:
            return await pool.fetchval(
                "SELECT city FROM profiles WHERE tenant_id = $1 AND profile_id = 'p-after'",
                tenant) == "After"

        await eventually(after_applied, "a record produced after the outage applied",
                         deadline_s=30)
        print(f"\nevents: {len(accepted)} accepted, {len(refused)} refused (503);"
              f" records: {sum(1 for _ in records.latest)} profiles,"
              f" {len(records.invalid)} dead-lettered; probes: "
              + ", ".join(f"{p.what} {p.status} {p.seconds:.2f}s" for p in probes))
