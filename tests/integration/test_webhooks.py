"""Outbound webhooks on the real stack: a receiver of our own (aiohttp on a free port)
subscribed through the admin API gets signed calls from services/webhooks for a processed
event and for a reaction (an open of a real email); the signature verifies as the README
tells receivers, a forged body does not; an endpoint answering 500 is retried and the
delivery log says so; filters keep out what does not match; an endpoint that hangs holds
only its own calls."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from aiohttp import web

from shared.adapters import personal_data
from shared.outgoing import calls
from tests.integration.conftest import (
    GATEWAY,
    TENANT,
    add_profile,
    eventually,
    final_status,
    mails_to,
    publish_event,
    settings,
    stack,
    unique_email,
)

TRACKING = f"http://127.0.0.1:{settings.tracking_port}"
# Other tests share the tenant: a subscription that should get pings only names no event.
NO_EVENT = "EVTnoSuchEvent"
BROWSER = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/120.0 Safari/537.36")


def verify(secret: str, header: str, body: bytes, tolerance_s: float = 300) -> bool:
    """The receiver's check, as the README shows it."""
    fields = [item.split("=", 1) for item in header.split(",") if "=" in item]
    timestamps = [v for k, v in fields if k == "t"]
    if len(timestamps) != 1 or not timestamps[0].isdigit():
        return False
    if abs(time.time() - int(timestamps[0])) > tolerance_s:
        return False
    expected = hmac.new(secret.encode(), f"{timestamps[0]}.".encode() + body,
                        hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, v) for k, v in fields if k == "v1")


@dataclass
class Call:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        decoded: dict[str, Any] = orjson.loads(self.body)
        return decoded


@dataclass
class Receiver:
    """A tenant's endpoint: every call recorded; a path answers the statuses queued for it
    (then 200), or hangs when told."""

    port: int = 0
    calls: list[Call] = field(default_factory=list)
    answers: dict[str, list[int]] = field(default_factory=dict)
    hanging: set[str] = field(default_factory=set)
    in_flight: dict[str, int] = field(default_factory=dict)
    most_in_flight: dict[str, int] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def to(self, path: str) -> list[Call]:
        return [c for c in self.calls if c.path == path]

    async def handle(self, request: web.Request) -> web.Response:
        path = request.path
        self.calls.append(Call(path, dict(request.headers), await request.read()))
        self.in_flight[path] = self.in_flight.get(path, 0) + 1
        self.most_in_flight[path] = max(self.most_in_flight.get(path, 0),
                                        self.in_flight[path])
        try:
            if path in self.hanging:
                await asyncio.sleep(60)
            queued = self.answers.get(path)
            status = queued.pop(0) if queued else 200
            return web.Response(status=status, text="receiver says no" if status >= 300
                                else "ok")
        finally:
            self.in_flight[path] -= 1


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    state = Receiver()
    app = web.Application()
    app.router.add_post("/{tail:.*}", state.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.port = runner.addresses[0][1]
    yield state
    await runner.cleanup()


@pytest.fixture
async def subscribe(admin: httpx.AsyncClient) -> AsyncIterator[Any]:
    """Creates subscriptions through the admin API; deletes them afterwards."""
    made: list[str] = []

    async def create(url: str, **filters: Any) -> dict[str, Any]:
        response = await admin.post("/webhooks", json={"url": url, **filters})
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        made.append(body["subscriptionId"])
        return body

    yield create
    for subscription in made:
        await admin.delete(f"/webhooks/{subscription}")


async def log_of(admin: httpx.AsyncClient, subscription: str) -> list[dict[str, Any]]:
    response = await admin.get(f"/webhooks/{subscription}/deliveries")
    response.raise_for_status()
    deliveries: list[dict[str, Any]] = response.json()
    return deliveries


async def test_a_processed_event_is_posted_signed_and_filters_keep_out_the_rest(
    receiver: Receiver, subscribe: Any, admin: httpx.AsyncClient, http: httpx.AsyncClient,
    pool: asyncpg.Pool,
) -> None:
    event_id = await publish_event(pool, "profile")
    other_event = await publish_event(pool, "profile")
    mine = await subscribe(receiver.url("/mine"), eventIds=[event_id],
                           statuses=["processed", "deliveryFailed"])
    others = await subscribe(receiver.url("/others"), eventIds=[other_event])
    sms_only = await subscribe(receiver.url("/sms"), eventIds=[event_id], channels=["sms"])
    reactions_only = await subscribe(receiver.url("/reactions"), eventIds=[event_id],
                                     statuses=[])
    email = unique_email("hook")
    await add_profile(pool, email, "Ada")
    response = await http.post(f"{GATEWAY}/v1/events/{event_id}",
                               json={"email": email, "ctx": {"item": "mug"}})
    assert response.status_code == 202
    pkey = response.json()["pKey"]
    assert (await final_status(http, response.json()["href"]))["status"] == "processed"

    async def posted() -> list[Call]:
        return receiver.to("/mine")

    [call] = await eventually(posted, "the processed event's webhook", 15)
    body = call.json
    assert body["type"] == "status.processed"
    assert body["tenant"] == TENANT
    assert body["data"]["eventId"] == event_id
    assert body["data"]["pKey"] == pkey
    assert body["data"]["status"] == "processed"
    assert body["data"]["channel"] == "email"
    assert call.headers["Parcours-Webhook-Id"] == body["id"]
    assert call.headers["Parcours-Webhook-Attempt"] == "1"
    assert call.headers["Content-Type"] == "application/json"
    signature = call.headers["Parcours-Signature"]
    assert re.fullmatch(r"t=\d+,v1=[0-9a-f]{64}", signature)
    assert verify(mine["secret"], signature, call.body)
    # forged: another body, another secret, or an old timestamp do not verify
    forged = call.body.replace(b"processed", b"deliveryFailed")
    assert not verify(mine["secret"], signature, forged)
    assert not verify(others["secret"], signature, call.body)
    t = int(signature.split(",")[0][2:])
    stale = signature.replace(f"t={t}", f"t={t - 600}")
    assert not verify(mine["secret"], stale, call.body)
    for mangled in ("", signature.split(",")[1], f"t=x,{signature.split(',')[1]}",
                    f"{signature},t={t}"):
        assert not verify(mine["secret"], mangled, call.body)

    async def logged() -> list[dict[str, Any]] | None:
        log = await log_of(admin, mine["subscriptionId"])
        return log if log and log[0]["state"] != "pending" else None

    log = await eventually(logged, "the delivery logged", 5)
    assert [(d["type"], d["state"], d["attempts"]) for d in log] == [
        ("status.processed", "delivered", 1)]
    assert log[0]["log"][0]["httpStatus"] == 200
    # 'processing' was not asked for; the other event, sms and reactions-only get nothing
    # (their changes went through the outbox in the same drain as this one's)
    for excluded in (others, sms_only, reactions_only):
        assert await log_of(admin, excluded["subscriptionId"]) == []
    assert receiver.to("/others") == receiver.to("/sms") == receiver.to("/reactions") == []


async def test_an_email_open_is_posted_as_a_reaction(
    receiver: Receiver, subscribe: Any, http: httpx.AsyncClient, pool: asyncpg.Pool,
) -> None:
    event_id = await publish_event(pool, "profile", {
        "subject": "Hi", "html": "<html><body><p>{{ ctx.item }}</p></body></html>",
        "text": "{{ ctx.item }}"})
    hook = await subscribe(receiver.url("/opens"), eventIds=[event_id], kinds=["opened"],
                           statuses=[])
    email = unique_email("hookopen")
    await add_profile(pool, email, "Ada")
    response = await http.post(f"{GATEWAY}/v1/events/{event_id}",
                               json={"email": email, "ctx": {"item": "mug"}})
    assert (await final_status(http, response.json()["href"]))["status"] == "processed"
    [mail] = await mails_to(http, email)
    [pixel] = re.findall(r'src="(http://[^"]+/o/[^"]+\.gif)"', mail["html"])
    assert (await http.get(pixel, headers={"user-agent": BROWSER})).status_code == 200

    async def posted() -> list[Call]:
        return receiver.to("/opens")

    [call] = await eventually(posted, "the open's webhook", 20)
    body = call.json
    assert body["type"] == "reaction.opened"
    assert body["data"]["kind"] == "opened"
    assert body["data"]["origin"] == {"kind": "event", "eventId": event_id,
                                      "pKey": response.json()["pKey"]}
    assert body["data"]["source"] == "tracking"
    assert verify(hook["secret"], call.headers["Parcours-Signature"], call.body)
    assert not verify(hook["secret"], call.headers["Parcours-Signature"], call.body + b" ")

    # the notification names the profile: it is exported and erased with it
    profile_id = body["data"]["profileId"]
    async with pool.acquire() as connection:
        exported = await personal_data.export_profile(connection, TENANT, profile_id)
        assert [d["type"] for d in exported["webhookDeliveries"]] == ["reaction.opened"]
        removed = await personal_data.erase_profile(connection, TENANT, profile_id)
    assert removed["webhookDeliveries"] == 1
    assert await pool.fetchval("SELECT count(*) FROM webhook_deliveries WHERE subscription_id"
                               " = $1", hook["subscriptionId"]) == 0


async def test_an_endpoint_answering_500_is_retried_and_the_log_says_so(
    receiver: Receiver, subscribe: Any, admin: httpx.AsyncClient,
) -> None:
    hook = await subscribe(receiver.url("/flaky"), eventIds=[NO_EVENT])
    receiver.answers["/flaky"] = [500]
    subscription = hook["subscriptionId"]
    before = await attempts_counted()
    queued = (await admin.post(f"/webhooks/{subscription}/ping")).json()

    async def delivered() -> list[dict[str, Any]] | None:
        log = await log_of(admin, subscription)
        return log if log and log[0]["state"] == "delivered" else None

    [delivery] = await eventually(delivered, "the ping delivered on its second attempt", 20)
    assert delivery["deliveryId"] == queued["deliveryId"]
    assert delivery["type"] == "ping"
    first, second = delivery["log"]
    assert (first["attempt"], first["httpStatus"]) == (1, 500)
    assert first["error"] == "HTTP 500: receiver says no"
    assert first["nextAttemptAt"] is not None
    assert (second["attempt"], second["httpStatus"], second["error"]) == (2, 200, None)
    assert second["nextAttemptAt"] is None
    assert first["latencyMs"] >= 0 and second["latencyMs"] >= 0
    # the retry came after the backoff (2.5 to 5 s), with the same id and body
    calls_made = receiver.to("/flaky")
    assert [c.headers["Parcours-Webhook-Attempt"] for c in calls_made] == ["1", "2"]
    assert calls_made[0].body == calls_made[1].body
    assert calls_made[0].headers["Parcours-Webhook-Id"] == queued["notificationId"]
    assert calls_made[1].headers["Parcours-Webhook-Id"] == queued["notificationId"]
    spacing = (await _attempt_times(admin, subscription))
    assert 2.0 <= spacing <= 15.0
    after = await attempts_counted()
    assert after["retrying"] - before.get("retrying", 0) >= 1
    assert after["delivered"] - before.get("delivered", 0) >= 1

    # redelivered by hand: a third call with the same id
    again = await admin.post(
        f"/webhooks/{subscription}/deliveries/{queued['deliveryId']}/redeliver")
    assert again.status_code == 202

    async def third() -> list[Call] | None:
        return receiver.to("/flaky") if len(receiver.to("/flaky")) == 3 else None

    await eventually(third, "the manual redelivery", 10)

    async def logged_thrice() -> dict[str, Any] | None:
        one: dict[str, Any] = (await admin.get(
            f"/webhooks/{subscription}/deliveries/{queued['deliveryId']}")).json()
        return one if one["attempts"] == 3 else None

    one = await eventually(logged_thrice, "the third attempt logged", 5)
    assert (one["state"], one["lastHttpStatus"]) == ("delivered", 200)
    assert one["body"]["type"] == "ping"


async def attempts_counted() -> dict[str, float]:
    """parcours_webhook_attempts_total by outcome, from the service's /metrics."""
    async with httpx.AsyncClient() as client:
        text = (await client.get(
            f"http://127.0.0.1:{settings.webhooks_metrics_port}/metrics")).text
    found = re.finditer(r'^parcours_webhook_attempts_total\{outcome="(\w+)"\} (\S+)$',
                        text, re.MULTILINE)
    return {m.group(1): float(m.group(2)) for m in found}


async def _attempt_times(admin: httpx.AsyncClient, subscription: str) -> float:
    [delivery] = await log_of(admin, subscription)
    first, second = (datetime.fromisoformat(a["at"]) for a in delivery["log"])
    return (second - first).total_seconds()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # nobody listens there now: connections are refused


async def test_a_hanging_or_down_endpoint_does_not_delay_another(
    receiver: Receiver, subscribe: Any, admin: httpx.AsyncClient,
) -> None:
    stuck = await subscribe(receiver.url("/stuck"), eventIds=[NO_EVENT])
    down = await subscribe(f"http://127.0.0.1:{closed_port()}/down", eventIds=[NO_EVENT])
    fine = await subscribe(receiver.url("/fine"), eventIds=[NO_EVENT])
    receiver.hanging.add("/stuck")
    for _ in range(10):
        await admin.post(f"/webhooks/{stuck['subscriptionId']}/ping")
        await admin.post(f"/webhooks/{down['subscriptionId']}/ping")

    async def stuck_calls() -> bool:
        return len(receiver.to("/stuck")) >= settings.webhooks_per_endpoint

    await eventually(stuck_calls, "the stuck endpoint's calls under way", 10)
    began = time.monotonic()
    await admin.post(f"/webhooks/{fine['subscriptionId']}/ping")

    async def fine_called() -> list[Call]:
        return receiver.to("/fine")

    await eventually(fine_called, "the other endpoint's ping", 5)
    assert time.monotonic() - began < 2.0  # not behind the stuck calls (10 s timeout each)
    # the stuck endpoint never holds more than its share
    assert receiver.most_in_flight["/stuck"] == settings.webhooks_per_endpoint
    assert len(receiver.to("/stuck")) == settings.webhooks_per_endpoint
    # the one that is down: refused at once, each due again after its backoff
    async def tried() -> list[dict[str, Any]]:
        return [d for d in await log_of(admin, down["subscriptionId"]) if d["attempts"]]

    refused = await eventually(tried, "the down endpoint's first attempts", 5)
    assert all(d["state"] == "pending" and d["nextAttemptAt"] for d in refused)
    assert all("ConnectError" in d["lastError"] for d in refused)


async def test_subscriptions_through_the_admin_api(
    receiver: Receiver, subscribe: Any, admin: httpx.AsyncClient,
) -> None:
    hook = await subscribe(receiver.url("/admin"), eventIds=[NO_EVENT],
                           kinds=["bounced", "complained"])
    subscription = hook["subscriptionId"]
    assert hook["secret"].startswith("whsec_")
    shown = (await admin.get(f"/webhooks/{subscription}")).json()
    assert "secret" not in shown
    assert shown["kinds"] == ["bounced", "complained"]
    assert shown["statuses"] is None and shown["eventIds"] == [NO_EVENT]
    assert subscription in [w["subscriptionId"] for w in (await admin.get("/webhooks")).json()]

    patched = await admin.patch(f"/webhooks/{subscription}",
                                json={"enabled": False, "statuses": ["deliveryFailed"]})
    assert patched.status_code == 200
    assert (patched.json()["enabled"], patched.json()["statuses"]) == (False, ["deliveryFailed"])

    for bad in ({"url": "ftp://example.com/"}, {"url": "https://u:p@example.com/"},
                {"url": "https://example.com/", "statuses": [], "kinds": []},
                {"url": "https://example.com/", "channels": []},
                {"url": "https://example.com/", "kinds": ["nope"]},
                {"url": "https://example.com/", "surprise": 1}):
        assert (await admin.post("/webhooks", json=bad)).status_code == 422, bad
    nothing = await admin.patch(f"/webhooks/{subscription}", json={"statuses": [], "kinds": []})
    assert nothing.status_code == 422

    # rotation: both secrets sign until the overlap ends
    await admin.patch(f"/webhooks/{subscription}", json={"enabled": True})
    rotated = (await admin.post(f"/webhooks/{subscription}/rotate-secret",
                                json={"keepPreviousHours": 1})).json()
    assert rotated["secret"] != hook["secret"] and rotated["previousSecretUntil"]
    await admin.post(f"/webhooks/{subscription}/ping")

    async def pinged() -> list[Call]:
        return receiver.to("/admin")

    [call] = await eventually(pinged, "the ping after a rotation", 10)
    assert call.headers["Parcours-Signature"].count("v1=") == 2
    assert verify(rotated["secret"], call.headers["Parcours-Signature"], call.body)
    assert verify(hook["secret"], call.headers["Parcours-Signature"], call.body)
    assert call.json["data"]["subscriptionId"] == subscription

    assert (await admin.delete(f"/webhooks/{subscription}")).status_code == 204
    assert (await admin.get(f"/webhooks/{subscription}")).status_code == 404
    assert (await admin.get(f"/webhooks/{subscription}/deliveries")).status_code == 404
    assert (await admin.post(f"/webhooks/{subscription}/ping")).status_code == 404
    missing = f"/webhooks/{subscription}/deliveries/{uuid.uuid4()}/redeliver"
    assert (await admin.post(missing)).status_code == 404


async def test_loopback_and_http_are_refused_unless_allowed(receiver: Receiver) -> None:
    """The service's own call path, against the real receiver: without the local stack's
    allowance a loopback address is never called."""
    async with httpx.AsyncClient() as client:
        refused = await calls.call(client, receiver.url("/never"), {}, b"{}", 5, False)
        assert refused.http_status is None
        assert refused.error and refused.error.startswith("refused: http://")
        https = await calls.call(client, f"https://127.0.0.1:{receiver.port}/never", {},
                                 b"{}", 5, False)
        assert https.error and "127.0.0.1, a loopback, private or reserved" in https.error
        named = await calls.call(client, f"https://localhost:{receiver.port}/never", {},
                                 b"{}", 5, False)
        assert named.error and "a loopback, private or reserved" in named.error
        assert receiver.to("/never") == []
        allowed = await calls.call(client, receiver.url("/yes"), {}, b"{}", 5, True)
        assert allowed.http_status == 200 and len(receiver.to("/yes")) == 1


def parcours(admin_key: str, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "services.cli", "webhooks", *args],
                          env={**os.environ, "PARCOURS_ADMIN_KEY": admin_key},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_the_command_line(receiver: Receiver, admin_key: str) -> None:
    created = await asyncio.to_thread(
        parcours, admin_key, "create", receiver.url("/cli"), "--event", NO_EVENT,
        "--kind", "bounced", "--no-statuses")
    [secret] = re.findall(r"signing secret \(shown once\): (whsec_\S+)", created)
    [subscription] = re.findall(r"^(wh_[0-9a-f]+) ", created, re.MULTILINE)
    try:
        listed = await asyncio.to_thread(parcours, admin_key, "list")
        assert re.search(rf"{subscription} .*yes\s+{NO_EVENT}\s+any\s+none\s+bounced", listed)
        await asyncio.to_thread(parcours, admin_key, "ping", subscription)

        async def pinged() -> list[Call]:
            return receiver.to("/cli")

        [call] = await eventually(pinged, "the CLI's ping", 10)
        assert verify(secret, call.headers["Parcours-Signature"], call.body)

        async def logged() -> str | None:
            table = await asyncio.to_thread(parcours, admin_key, "deliveries", subscription)
            return table if "delivered" in table else None

        table = await eventually(logged, "the ping in the CLI's log", 10)
        assert re.search(r"ping\s+delivered\s+1\s+200", table)
        assert "no" in await asyncio.to_thread(parcours, admin_key, "disable", subscription)
    finally:
        await asyncio.to_thread(parcours, admin_key, "delete", subscription)


async def test_a_restart_gives_back_what_the_service_held(
    receiver: Receiver, subscribe: Any, admin: httpx.AsyncClient, pool: asyncpg.Pool,
) -> None:
    """SIGTERM: the calls under way and the queued ones are due again at once (not when
    their lease ends, minutes later), and the new process makes them."""
    stuck = await subscribe(receiver.url("/restart"), eventIds=[NO_EVENT])
    receiver.hanging.add("/restart")
    for _ in range(6):
        await admin.post(f"/webhooks/{stuck['subscriptionId']}/ping")

    async def under_way() -> bool:
        return len(receiver.to("/restart")) >= settings.webhooks_per_endpoint

    await eventually(under_way, "the calls under way", 10)
    receiver.hanging.clear()
    await asyncio.to_thread(stack, "restart", "webhooks")

    async def all_delivered() -> bool:
        log = await log_of(admin, stuck["subscriptionId"])
        return len(log) == 6 and all(d["state"] == "delivered" for d in log)

    # 30 s: the new process's start on a loaded machine, well inside the lease (≥ 70 s)
    # that would otherwise hold them (it once took more than 10 s in a full run)
    await eventually(all_delivered, "every ping delivered by the new process", 30)
    # the 4 cut short were called again (same id), the 2 queued once — or twice: on a
    # loaded machine the SIGTERM may land after a hanging call's timeout (10 s), which
    # frees its slot for a queued one that the old process then makes too, its outcome
    # cut short as well (a full CI run once saw 12 calls of 6 ids). A delivery is at
    # least once, again with the same id, never a new one.
    ids = [c.headers["Parcours-Webhook-Id"] for c in receiver.to("/restart")]
    assert len(set(ids)) == 6 and len(ids) >= 6 + settings.webhooks_per_endpoint, ids
