"""R4: ``kill -9`` of the processor or the email sender under load: each restarts and
resumes; every accepted event reaches ``processed`` and is emailed; nothing is sent twice
except, for the email sender, what SMTP had accepted in the instant before the kill.
R9 for scheduled sends: a kill while they wait loses and doubles none."""

import asyncio
import time
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest

from tests.integration.conftest import (
    GATEWAY,
    eventually,
    final_status,
    mails_to,
    publish_event,
    stack,
    unique_email,
)

pytestmark = pytest.mark.disruptive


@pytest.mark.parametrize("victim", ["processor", "sender-email"])
async def test_kill_9_mid_load_loses_and_duplicates_nothing(
    http: httpx.AsyncClient, pool: asyncpg.Pool, victim: str
) -> None:
    event_id = await publish_event(pool, "event")
    emails = [unique_email(f"crash-{victim}") for _ in range(150)]
    hrefs: list[str] = []

    async def post_all() -> None:
        for email in emails:
            response = await http.post(f"{GATEWAY}/v1/events/{event_id}",
                                       json={"email": email, "ctx": {"item": "crash"}})
            assert response.status_code == 202
            hrefs.append(response.json()["href"])

    load = asyncio.create_task(post_all())
    await eventually(lambda: asyncio.sleep(0, len(hrefs) >= 40), "some load before the kill")
    await asyncio.to_thread(stack, "kill", victim)
    killed_at = time.monotonic()
    await asyncio.to_thread(stack, "start", victim)  # returns once its group is stable
    assert time.monotonic() - killed_at <= 15, "R4: resume within 15 s"
    await load

    for href in hrefs:
        assert (await final_status(http, href, deadline_s=60))["status"] == "processed"
    mails = [await mails_to(http, email) for email in emails]
    assert all(mails), "an accepted event was never emailed"
    resent = [m for m in mails if len(m) > 1]
    if victim == "processor":  # the ledger makes the processor's redeliveries harmless
        assert not resent
    else:
        # SMTP's one open window: the server accepted, the sender died before its commit.
        # Only messages in flight at the kill (≤ the SMTP pool) go again, once, with the
        # same Message-ID so receivers can drop them. SMS and push close it (provider
        # Idempotency-Key, tests/integration/test_sms_push.py).
        assert len(resent) <= 8
        assert all(len(m) == 2 and m[0]["message_id"] == m[1]["message_id"] for m in resent)


async def test_scheduled_sends_survive_a_processor_kill_sent_once_never_early(
    http: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    """R9: held in PostgreSQL, not in the worker: a kill while they wait loses none and
    fires none twice; those due during the outage go as soon as the worker is back."""
    event_id = await publish_event(pool, "event")
    emails = [unique_email("scheduled-crash") for _ in range(30)]
    at = datetime.now(UTC) + timedelta(seconds=4)
    hrefs = []
    for email in emails:
        response = await http.post(f"{GATEWAY}/v1/events/{event_id}", json={
            "email": email, "ctx": {"item": "later"}, "scheduled": at.isoformat()})
        hrefs.append(response.json()["href"])

    async def all_held() -> bool:
        async with pool.acquire() as connection:
            held = await connection.fetchval(
                "SELECT count(*) FROM held_events WHERE event_id = $1", event_id)
        return bool(held == len(hrefs))

    await eventually(all_held, "every scheduled event held in PostgreSQL")
    await asyncio.to_thread(stack, "kill", "processor")
    await asyncio.to_thread(stack, "start", "processor")

    for href in hrefs:
        assert (await final_status(http, href, deadline_s=30))["status"] == "processed"
    for email in emails:
        [mail] = await mails_to(http, email)
        assert datetime.fromtimestamp(mail["received_at"], UTC) >= at
