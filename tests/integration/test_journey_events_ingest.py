"""Journey events through the gateway on the real stack: a purchase saying "thank you" is
written to parcours.journey-events.v1 keyed by its profile id, typed as its fields say; one
that is not an event of the type is answered 202 not accepted and written nowhere; a bad
payload is a 422 naming the field; an unknown type is a 404; only an ingest key may post."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx
import orjson

from shared.adapters.key_store import create_key, create_tenant
from shared.domain.api_keys import Scope
from shared.topics import JOURNEY_EVENTS
from tests.integration.conftest import (
    ADMIN,
    GATEWAY,
    end_offsets,
    eventually,
    topic_reader,
)
from tests.unit.test_journey_events import PURCHASE


async def _tenant(pool: asyncpg.Pool) -> tuple[str, dict[str, str]]:
    name = f"jev-{uuid.uuid4().hex[:10]}"
    async with pool.acquire() as connection:
        await create_tenant(connection, name, "journey event tests")
        return name, {scope.value: await create_key(connection, name, scope, "tests")
                      for scope in (Scope.ADMIN, Scope.INGEST, Scope.PROFILES)}


async def _records(before: dict[int, int], tenant: str, count: int) -> list[Any]:
    seen: list[Any] = []
    async with topic_reader(JOURNEY_EVENTS, before) as consumer:
        async def mine() -> bool:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                seen.extend(r for r in records if orjson.loads(r.value)["tenant"] == tenant)
            return len(seen) >= count

        await eventually(mine, f"{count} journey events of the tenant on the topic")
    return seen


async def test_a_journey_event_is_typed_identified_and_keyed_by_its_profile(
        pool: asyncpg.Pool) -> None:
    tenant, keys = await _tenant(pool)
    async with httpx.AsyncClient(timeout=30) as http:
        admin = {"authorization": f"Bearer {keys['admin']}"}
        ingest = {"authorization": f"Bearer {keys['ingest']}"}
        created = await http.put(f"{ADMIN}/journey-events/JEVpurchase", json=PURCHASE,
                                 headers=admin)
        assert created.status_code == 201, created.text
        before = await end_offsets(JOURNEY_EVENTS)
        url = f"{GATEWAY}/v1/journey-events/JEVpurchase"

        async def posted(body: dict[str, Any] | bytes) -> httpx.Response:
            text = body if isinstance(body, bytes) else orjson.dumps(body)

            async def answered() -> httpx.Response | None:  # the type reaches the cache
                response = await http.post(url, content=text, headers={
                    **ingest, "content-type": "application/json"})
                return None if response.status_code == 404 else response
            return await eventually(answered, "the journey event type known", 10)

        thanks = await posted(b'{"customerId": "c-1", "purchaseMessage": "thank you",'
                              b' "amount": 19.90}')
        assert thanks.status_code == 202, thanks.text
        assert thanks.json() == {"eventId": "JEVpurchase", "accepted": True,
                                 "profileId": "c-1"}
        other = await posted({"customerId": "c-2", "purchaseMessage": "ok"})
        assert other.status_code == 202 and other.json()["accepted"] is False
        assert "condition does not hold" in other.json()["reason"]
        bad = await http.post(url, json={"customerId": "c-3", "amount": "lots"},
                              headers=ingest)
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "amount"]
        unknown = await http.post(f"{GATEWAY}/v1/journey-events/JEVnothing", json={},
                                  headers=ingest)
        assert unknown.status_code == 404 and "PUT /admin/v1/journey-events" in unknown.text
        wrong_key = await http.post(url, json={"customerId": "c-4"}, headers={
            "authorization": f"Bearer {keys['profiles']}"})
        assert wrong_key.status_code == 403
    [record] = await _records(before, tenant, 1)
    assert record.key == b"c-1"
    value = orjson.loads(record.value)
    assert (value["eventId"], value["profileId"]) == ("JEVpurchase", "c-1")
    assert value["payload"] == {"customerId": "c-1", "purchaseMessage": "thank you",
                                "amount": "19.90"}  # the decimal as written


async def test_a_journey_event_type_says_where_it_is_posted_and_gives_its_json_schema(
        pool: asyncpg.Pool) -> None:
    _tenant_name, keys = await _tenant(pool)
    admin = {"authorization": f"Bearer {keys['admin']}"}
    async with httpx.AsyncClient(base_url=ADMIN, timeout=30, headers=admin) as http:
        created = await http.put("/journey-events/JEVpurchase", json=PURCHASE)
        assert created.status_code == 201, created.text
        assert (created.json()["endpoint"], created.json()["jsonSchema"]) == (
            "/v1/journey-events/JEVpurchase", "/admin/v1/journey-events/JEVpurchase/schema")
        schema = (await http.get("/journey-events/JEVpurchase/schema")).json()
        assert set(schema["properties"]) == {f["id"] for f in PURCHASE["fields"]}
        assert "customerId" in schema.get("required", [])
        assert schema.get("additionalProperties") is False
        assert (await http.get("/journey-events/JEVnone/schema")).status_code == 404
