"""Idempotency-Key (R3) and the batch endpoint, on the real stack."""

import asyncio
import uuid

import asyncpg
import httpx

from shared.adapters.idempotency_store import forget_older_than
from shared.topics import EVENTS_IN
from tests.integration.conftest import (
    GATEWAY,
    end_offsets,
    eventually,
    final_status,
    mails_to,
    publish_event,
    unique_email,
)


def keyed(key: str) -> dict[str, str]:
    return {"idempotency-key": key}


async def test_the_same_key_and_body_give_the_same_pkey_and_one_message(
    http: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    event_id = await publish_event(pool, "event")
    email, key = unique_email("idem"), uuid.uuid4().hex
    url = f"{GATEWAY}/v1/events/{event_id}"
    first = await http.post(url, headers=keyed(key),
                            json={"email": email, "ctx": {"item": "x", "quantity": 1}})
    again = await http.post(url, headers=keyed(key),  # same body, other key order
                            json={"ctx": {"quantity": 1, "item": "x"}, "email": email})
    assert first.status_code == again.status_code == 202
    assert first.json()["pKey"] == again.json()["pKey"]
    await final_status(http, first.json()["href"])
    assert len(await mails_to(http, email)) == 1


async def test_the_same_key_with_another_body_is_422(
    http: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    event_id = await publish_event(pool, "event")
    key, url = uuid.uuid4().hex, f"{GATEWAY}/v1/events/{event_id}"
    await http.post(url, headers=keyed(key), json={"email": unique_email(), "ctx": {"item": "a"}})
    before = await end_offsets(EVENTS_IN)
    other = await http.post(url, headers=keyed(key),
                            json={"email": unique_email(), "ctx": {"item": "b"}})
    assert other.status_code == 422
    assert "Idempotency-Key" in other.json()["detail"]
    assert await end_offsets(EVENTS_IN) == before


async def test_a_thousand_concurrent_requests_with_one_key_make_one_event(
    http: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    event_id = await publish_event(pool, "event")
    email, key = unique_email("r3"), uuid.uuid4().hex
    url = f"{GATEWAY}/v1/events/{event_id}"
    body = {"email": email, "ctx": {"item": "once"}}
    before = await end_offsets(EVENTS_IN)
    responses = await asyncio.gather(*(http.post(url, headers=keyed(key), json=body)
                                       for _ in range(1000)))
    assert {r.status_code for r in responses} == {202}
    assert len({r.json()["pKey"] for r in responses}) == 1
    after = await end_offsets(EVENTS_IN)
    assert sum(after.values()) - sum(before.values()) == 1
    await final_status(http, responses[0].json()["href"])

    async def delivered() -> int:
        return len(await mails_to(http, email))

    assert await eventually(delivered, "the one email") == 1


async def test_keys_are_kept_24_hours_then_forgotten(
    http: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    event_id = await publish_event(pool, "event")
    key = uuid.uuid4().hex
    await http.post(f"{GATEWAY}/v1/events/{event_id}", headers=keyed(key),
                    json={"email": unique_email(), "ctx": {"item": "x"}})
    await forget_older_than(pool, 24)
    count = "SELECT count(*) FROM idempotency_keys WHERE idem_key = $1"
    assert await pool.fetchval(count, key) == 1
    await pool.execute("UPDATE idempotency_keys SET created_at = now() - interval '25 hours'"
                       " WHERE idem_key = $1", key)
    await forget_older_than(pool, 24)
    assert await pool.fetchval(count, key) == 0


async def test_a_batch_answers_each_item_and_sends_the_valid_ones(
    http: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    event_id = await publish_event(pool, "event")
    emails = [unique_email("batch") for _ in range(3)]
    events = [{"email": e, "ctx": {"item": f"n{i}"}} for i, e in enumerate(emails)]
    events.insert(1, {"email": "bad", "ctx": {"item": "x"}})
    response = await http.post(f"{GATEWAY}/v1/events/{event_id}/batch", json={"events": events})
    assert response.status_code == 200
    body = response.json()
    assert (body["accepted"], body["refused"]) == (3, 1)
    assert [r["status"] for r in body["results"]] == [202, 422, 202, 202]
    assert body["results"][1]["detail"][0]["loc"] == ["body", "email"]
    for result in body["results"]:
        if result["status"] == 202:
            assert (await final_status(http, result["href"]))["status"] == "processed"
    for email in emails:
        assert len(await mails_to(http, email)) == 1


async def test_a_batch_item_larger_than_an_event_may_be_is_413_and_the_others_go(
    http: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    """An item over the single route's body limit (256 KiB) is the caller's to make smaller:
    413 for that item, not a 503 to retry (no broker request carries it); the rest go."""
    event_id = await publish_event(pool, "event")
    emails = [unique_email("large") for _ in range(2)]
    events = [{"email": e, "ctx": {"item": "small"}} for e in emails]
    events.insert(1, {"email": unique_email("huge"), "ctx": {"item": "x" * 300_000}})
    response = await http.post(f"{GATEWAY}/v1/events/{event_id}/batch", json={"events": events})
    assert response.status_code == 200
    body = response.json()
    assert [r["status"] for r in body["results"]] == [202, 413, 202]
    assert "make its ctx smaller" in body["results"][1]["detail"]
    for result in body["results"]:
        if result["status"] == 202:
            assert (await final_status(http, result["href"]))["status"] == "processed"


async def test_a_batch_over_1000_events_is_413(
    http: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    event_id = await publish_event(pool, "event")
    events = [{"email": "a@example.com", "ctx": {"item": "x"}}] * 1001
    response = await http.post(f"{GATEWAY}/v1/events/{event_id}/batch", json={"events": events})
    assert response.status_code == 413
