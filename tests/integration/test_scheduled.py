"""``scheduled``: an event waits, durably, until its time; sent once, never early."""

from datetime import UTC, datetime, timedelta

import asyncpg
import httpx

from tests.integration.conftest import (
    GATEWAY,
    eventually,
    final_status,
    mails_to,
    publish_event,
    unique_email,
)

# Release polls run every 0.5 s; the send then crosses Kafka twice. Generous for CI.
LATENESS_S = 3.0


async def test_a_scheduled_event_is_pending_until_its_time_then_sent_once_never_early(
    http: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    event_id = await publish_event(pool, "event")
    email, now_email = unique_email("scheduled"), unique_email("scheduled-past")
    at = datetime.now(UTC) + timedelta(seconds=3)
    later = await http.post(f"{GATEWAY}/v1/events/{event_id}", json={
        "email": email, "ctx": {"item": "later"}, "scheduled": at.isoformat()})
    past = await http.post(f"{GATEWAY}/v1/events/{event_id}", json={
        "email": now_email, "ctx": {"item": "now"},
        "scheduled": (at - timedelta(hours=1)).isoformat()})
    assert later.status_code == past.status_code == 202

    # A scheduled time already past means: at once.
    assert (await final_status(http, past.json()["href"]))["status"] == "processed"
    waiting = (await http.get(GATEWAY + later.json()["href"])).json()
    if datetime.now(UTC) < at:
        assert waiting["status"] == "pending"
        assert waiting["reason"].startswith("scheduled for " + at.strftime("%Y-%m-%dT%H:%M:%S"))
        assert await mails_to(http, email) == []

    assert (await final_status(http, later.json()["href"]))["status"] == "processed"
    [mail] = await mails_to(http, email)
    received = datetime.fromtimestamp(mail["received_at"], UTC)
    assert at <= received <= at + timedelta(seconds=LATENESS_S), (at, received)


async def test_a_scheduled_event_of_a_paused_message_waits_for_both(
    http: httpx.AsyncClient, pool: asyncpg.Pool, admin: httpx.AsyncClient
) -> None:
    event_id = await publish_event(pool, "event")
    assert (await admin.post(f"/events/{event_id}/message/pause")).status_code == 200
    email = unique_email("scheduled-paused")
    at = datetime.now(UTC) + timedelta(seconds=2)
    response = await http.post(f"{GATEWAY}/v1/events/{event_id}", json={
        "email": email, "ctx": {"item": "both"}, "scheduled": at.isoformat()})
    href = response.json()["href"]

    async def paused() -> bool:
        return (await http.get(GATEWAY + href)).json()["status"] == "paused"

    await eventually(paused, "the event to be held while its message is paused")
    assert (await admin.post(f"/events/{event_id}/message/resume")).status_code == 200
    assert (await final_status(http, href))["status"] == "processed"
    [mail] = await mails_to(http, email)
    assert datetime.fromtimestamp(mail["received_at"], UTC) >= at
