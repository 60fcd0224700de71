"""Provider failover (issue 11): while the first provider fails, its circuit breaker
opens and the second takes over; once the first answers again, a probe hands the
traffic back; the trace says which provider sent. For SMS and push (the provider sink
and its second instance, ``--secondary``) and email (the SMTP sink and its second).

Real services: PostgreSQL, the sinks over HTTP and SMTP, the senders' own code run in
this process with a short breaker (3 failures, 2 s open) and retry policy, on a lane of
its own. The failures are injected for this test's addresses only, so the stack's
senders and other tests sharing the sinks are not disturbed."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest

from services.sender_email.app import SPEC as EMAIL
from services.sender_push.app import SPEC as PUSH
from services.sender_sms.app import SPEC as SMS
from shared.adapters import contact_history
from shared.domain.circuit_breaker import BreakerState
from shared.domain.events import Channel
from shared.domain.pkeys import mint_pkey
from shared.domain.routing import EventOrigin, SendRequest, message_id
from shared.sending.failover import Failover
from shared.sending.handlers import deliver_batch
from shared.sending.retries import run_retries
from shared.sending.spec import SenderSpec
from shared.sending.wiring import Sender
from tests.integration.conftest import (
    GATEWAY,
    PROVIDER,
    SINK,
    TENANT,
    eventually,
    publish_event,
    settings,
    unique_email,
)

PROVIDER_2 = f"http://127.0.0.1:{settings.provider_sink_secondary_port}"
SINK_2 = f"http://127.0.0.1:{settings.smtp_secondary_sink_http_port}"
TEMPLATES: dict[str, dict[str, Any]] = {
    "sms": {"text": "{{ ctx.item }} is on its way"},
    "push": {"title": "{{ ctx.item }}", "body": "on its way", "data": {}},
    "email": {"subject": "{{ ctx.item }}", "html": "<p>{{ ctx.item }}</p>",
              "text": "{{ ctx.item }}"},
}


class Channelled:
    """One channel's addresses, failure injection and read-back, primary and secondary."""

    def __init__(self, channel: str, http: httpx.AsyncClient) -> None:
        self.channel, self.http = channel, http

    def address(self) -> dict[str, str]:
        if self.channel == "sms":
            return {"mobilePhone": f"+1555{uuid.uuid4().int % 10**7:07d}"}
        if self.channel == "push":
            return {"registrationToken": f"tok-{uuid.uuid4().hex}", "application": "shop",
                    "pushPlatform": "fcm"}
        return {"email": unique_email("failover")}

    @staticmethod
    def key(to: dict[str, str]) -> str:
        return to.get("mobilePhone") or to.get("registrationToken") or to["email"]

    async def fail_first(self, to: dict[str, str], failing: bool) -> None:
        """The first provider answers 503 (SMTP: 421 at DATA) for ``to``, or no more."""
        if self.channel == "email":
            params: dict[str, Any] = {"reply": "421 4.3.2 service shutting down",
                                      "count": 10_000 if failing else 0, "to": self.key(to)}
            (await self.http.post(f"{SINK}/reject", params=params)).raise_for_status()
            return
        params = {"status": 503, "count": 10_000 if failing else 0, "channel": self.channel,
                  "to": self.key(to)}
        (await self.http.post(f"{PROVIDER}/reject", params=params)).raise_for_status()

    async def received(self, to: dict[str, str], secondary: bool) -> int:
        if self.channel == "email":
            base = SINK_2 if secondary else SINK
            found = await self.http.get(f"{base}/messages", params={"to": self.key(to)})
        else:
            base = PROVIDER_2 if secondary else PROVIDER
            found = await self.http.get(f"{base}/messages",
                                        params={"channel": self.channel, "to": self.key(to)})
        found.raise_for_status()
        return len(found.json())


@asynccontextmanager
async def own_sender(spec: SenderSpec) -> AsyncIterator[Sender]:
    lane = f"{spec.stage}-failover-{uuid.uuid4().hex[:8]}"
    own_spec = SenderSpec(stage=lane, channel=spec.channel, topic=spec.topic, group=lane,
                          provider=spec.provider, open_provider=spec.open_provider)
    own = settings.model_copy(update={
        "provider_breaker_failures": 3, "provider_breaker_open_s": 2.0,
        "send_retry_first_delay_s": 0.2, "send_retry_max_delay_s": 0.5,
        "send_retry_poll_s": 0.1})
    sender = await Sender.open(own_spec, own, 10)
    stop = asyncio.Event()
    worker = asyncio.create_task(run_retries(sender, stop))
    try:
        yield sender
    finally:
        stop.set()
        await worker
        await sender.connection.execute(  # the test's lane ends: its waiting messages too
            "WITH gone AS (DELETE FROM send_retries WHERE lane = $1 RETURNING message_id)"
            " UPDATE deliveries SET state = 'failed', detail = 'test lane ended'"
            " WHERE message_id IN (SELECT message_id FROM gone)", lane)
        await sender.close()


@pytest.mark.parametrize("spec", [SMS, PUSH, EMAIL], ids=["sms", "push", "email"])
async def test_the_second_provider_takes_over_while_the_first_fails_and_hands_back(
    spec: SenderSpec, pool: asyncpg.Pool, http: httpx.AsyncClient
) -> None:
    channel = Channelled(spec.channel.value, http)
    event_id = await publish_event(pool, "event", TEMPLATES[channel.channel],
                                   channel=channel.channel)

    def request(to: dict[str, str]) -> SendRequest:
        pkey = mint_pkey(settings.pkey_secret.encode(), TENANT, event_id, uuid.uuid4().bytes[:12])
        return SendRequest(messageId=message_id(TENANT, pkey), tenant=TENANT,
                           origin=EventOrigin(eventId=event_id, pKey=pkey),
                           channel=Channel(channel.channel), to=to, ctx={"item": "Boots"},
                           acceptedAt=time.time())

    async def sent(sender: Sender, requests: list[SendRequest]) -> list[str]:
        """Delivers them one batch each; the handover rows' reasons once all are sent."""
        for r in requests:
            await deliver_batch(sender, [(None, r.model_dump_json().encode())])

        async def all_sent() -> list[str] | None:
            rows = await pool.fetch(
                "SELECT message_id FROM deliveries WHERE message_id = ANY($1::uuid[])"
                " AND state = 'sent'", [uuid.UUID(r.messageId) for r in requests])
            if len(rows) < len(requests):
                return None
            notes = []
            for r in requests:
                steps = await contact_history.trace(pool, TENANT, r.messageId)
                [handover] = [s for s in steps if s["stage"] == "handover"]
                notes.append(str(handover.get("reason", "")))
            return notes

        found: list[str] = await eventually(all_sent, "the messages sent", 20)
        return found

    async with own_sender(spec) as sender:
        failover = sender.provider
        assert isinstance(failover, Failover)
        first = failover.routes[0].breaker

        # 1. Both working: the first provider sends; the trace names none.
        healthy = channel.address()
        assert not any("via" in n for n in await sent(sender, [request(healthy)]))
        assert await channel.received(healthy, secondary=False) == 1

        # 2. The first fails: after 3 failures its breaker opens and the second takes
        # over, the failed ones too (from the retry schedule). Nothing sent twice.
        failing = channel.address()
        await channel.fail_first(failing, True)
        during = [request(failing) for _ in range(6)]
        notes = await sent(sender, during)
        assert all("via secondary" in n for n in notes), notes
        assert first.state is BreakerState.OPEN
        # As the tenant reads it, in the message's trace (the gateway's endpoint).
        pkey = during[0].origin.pKey  # type: ignore[union-attr]
        answer = await http.get(f"{GATEWAY}/v1/events/{event_id}/{pkey}/trace")
        assert answer.status_code == 200, answer.text
        steps = answer.json()["steps"]
        assert "retry" in [s["stage"] for s in steps], steps  # it failed on the first
        [handover] = [s for s in steps if s["stage"] == "handover"]
        assert "via secondary" in handover["reason"], steps
        assert await channel.received(failing, secondary=True) == 6
        assert await channel.received(failing, secondary=False) == 0

        # 3. It recovers: once its breaker's time is up, a probe goes to it, succeeds,
        # and the traffic is back on the first provider.
        await channel.fail_first(failing, False)

        async def open_time_up() -> bool:
            return time.monotonic() - first.opened_at >= first.open_s

        await eventually(open_time_up, "the breaker's open time", 5)
        back = channel.address()
        notes = await sent(sender, [request(back), request(back)])
        assert not any("via" in n for n in notes), notes
        assert first.state is BreakerState.CLOSED
        assert await channel.received(back, secondary=False) == 2
        assert await channel.received(back, secondary=True) == 0


async def test_with_every_provider_failing_the_lane_waits_for_a_probe(
    pool: asyncpg.Pool, http: httpx.AsyncClient
) -> None:
    """One provider only, its breaker open: a message to any address waits in place (the
    retry schedule would only fill up) and goes with the probe once the breaker's time is
    up and the provider answers."""
    channel = Channelled("sms", http)
    event_id = await publish_event(pool, "event", TEMPLATES["sms"], channel="sms")
    lane = f"sender-sms-alone-{uuid.uuid4().hex[:8]}"
    spec = SenderSpec(stage=lane, channel=Channel.SMS, topic=SMS.topic, group=lane,
                      provider="provider", open_provider=SMS.open_provider)
    own = settings.model_copy(update={
        "sms_provider_secondary_url": "", "provider_breaker_failures": 3,
        "provider_breaker_open_s": 2.0, "send_retry_first_delay_s": 30.0,
        "send_retry_max_delay_s": 30.0})
    sender = await Sender.open(spec, own, 10)
    try:
        failover = sender.provider
        assert isinstance(failover, Failover) and len(failover.routes) == 1
        failing, healthy = channel.address(), channel.address()
        await channel.fail_first(failing, True)

        def request(to: dict[str, str]) -> SendRequest:
            pkey = uuid.uuid4().hex
            return SendRequest(messageId=message_id(TENANT, pkey), tenant=TENANT,
                               origin=EventOrigin(eventId=event_id, pKey=pkey),
                               channel=Channel.SMS, to=to, ctx={"item": "Boots"},
                               acceptedAt=time.time())

        for _ in range(3):
            await deliver_batch(sender, [(None, request(failing).model_dump_json().encode())])
        assert failover.routes[0].breaker.state is BreakerState.OPEN
        began = time.monotonic()
        await deliver_batch(sender, [(None, request(healthy).model_dump_json().encode())])
        waited = time.monotonic() - began
        assert await channel.received(healthy, secondary=False) == 1
        assert waited >= 1.0, f"sent after {waited:.1f} s: the open breaker was ignored"
        assert failover.routes[0].breaker.state is BreakerState.CLOSED
        assert await sender.connection.fetchval(
            "SELECT count(*) FROM send_retries WHERE lane = $1", lane) == 3  # the failed ones
    finally:
        await channel.fail_first(failing, False)
        await sender.connection.execute(  # the test's lane ends: its waiting messages too
            "WITH gone AS (DELETE FROM send_retries WHERE lane = $1 RETURNING message_id)"
            " UPDATE deliveries SET state = 'failed', detail = 'test lane ended'"
            " WHERE message_id IN (SELECT message_id FROM gone)", lane)
        await sender.close()
