"""R5: with Kafka stopped the gateway answers 503, never 202; when Kafka is back,
ingestion resumes within 10 s and the whole chain delivers again."""

import asyncio
import time

import asyncpg
import httpx
import pytest

from shared.topics import EVENTS_IN, SEND_EMAIL_TX
from tests.integration.conftest import (
    GATEWAY,
    drained,
    eventually,
    final_status,
    mails_to,
    publish_event,
    stack,
    unique_email,
)

pytestmark = pytest.mark.disruptive


async def post(http: httpx.AsyncClient, event_id: str, email: str) -> httpx.Response:
    return await http.post(f"{GATEWAY}/v1/events/{event_id}",
                           json={"email": email, "ctx": {"item": "outage"}})


async def test_kafka_down_means_503_and_recovery_resumes_the_chain(
    http: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    event_id = await publish_event(pool, "event")
    before = await post(http, event_id, unique_email("before"))
    assert before.status_code == 202

    await asyncio.to_thread(stack, "stop", "kafka")
    try:
        refused = [unique_email("refused") for _ in range(5)]
        during = await asyncio.gather(*(post(http, event_id, email) for email in refused))
        assert [r.status_code for r in during] == [503] * 5
        assert during[0].headers["retry-after"]
        # Statuses stay readable: they live in PostgreSQL.
        assert (await http.get(GATEWAY + before.json()["href"])).status_code == 200
    finally:
        await asyncio.to_thread(stack, "start", "kafka")
    back_at = time.monotonic()

    email = unique_email("after")

    async def accepted_again() -> httpx.Response | None:
        response = await post(http, event_id, email)
        assert response.status_code in (202, 503)
        return response if response.status_code == 202 else None

    after = await eventually(accepted_again, "the gateway to accept again", deadline_s=10)
    assert time.monotonic() - back_at <= 10
    assert (await final_status(http, after.json()["href"], deadline_s=60))["status"] == "processed"
    assert len(await mails_to(http, email)) == 1  # a 503 must never turn into a send
    assert (await final_status(http, before.json()["href"], deadline_s=60))["status"] == "processed"

    # A 503 must never turn into a message, even though the producer keeps unsent
    # batches and writes them when the broker is back.
    await eventually(lambda: drained("parcours-processor", EVENTS_IN), "the processor to drain")
    await eventually(lambda: drained("parcours-sender-email", SEND_EMAIL_TX), "the sender to drain")
    for email in refused:
        assert await mails_to(http, email) == []
