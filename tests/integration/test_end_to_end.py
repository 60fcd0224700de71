"""One event through the real chain: gateway → Kafka → processor → sender → SMTP."""

import uuid

import asyncpg
import httpx

from shared.adapters.catalog_store import save_event
from shared.adapters.profile_store import upsert_profiles
from shared.domain.events import EventConfig
from tests.integration.conftest import (
    GATEWAY,
    add_profile,
    eventually,
    final_status,
    mails_to,
    publish_event,
    unique_email,
)


async def test_profile_event_becomes_a_personalised_email(
    http: httpx.AsyncClient, pool: asyncpg.Pool, profile_event: str
) -> None:
    email = unique_email("ada")
    await add_profile(pool, email, "Ada")
    response = await http.post(f"{GATEWAY}/v1/events/{profile_event}",
                               json={"email": email, "ctx": {"item": "trail shoes", "price": 89.9}})
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "pending"
    assert body["href"] == f"/v1/events/{profile_event}/{body['pKey']}"

    status = await final_status(http, body["href"])
    assert status["status"] == "processed", status
    [mail] = await mails_to(http, email)
    assert mail["subject"] == "Hello Ada, about trail shoes"
    assert "trail shoes for Ada at 89.9" in mail["text"]
    assert "<p>trail shoes for Ada</p>" in mail["html"]


async def test_profile_event_matching_no_profile_fails_targeting(
    http: httpx.AsyncClient, profile_event: str
) -> None:
    email = unique_email("nobody")
    response = await http.post(f"{GATEWAY}/v1/events/{profile_event}",
                               json={"email": email, "ctx": {"item": "x"}})
    status = await final_status(http, response.json()["href"])
    assert status["status"] == "targetingFailed"
    assert "no profile" in status["reason"]
    assert await mails_to(http, email) == []


async def test_event_based_event_uses_the_target_and_no_profile(
    http: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    event_id = await publish_event(pool, "event")
    email = unique_email("guest")
    await add_profile(pool, email, "ShouldNotAppear")
    response = await http.post(f"{GATEWAY}/v1/events/{event_id}",
                               json={"email": email, "ctx": {"item": "receipt"}})
    assert (await final_status(http, response.json()["href"]))["status"] == "processed"
    [mail] = await mails_to(http, email)
    assert mail["subject"] == "Hello there, about receipt"
    assert "ShouldNotAppear" not in mail["text"]


async def test_html_part_escapes_event_data(
    http: httpx.AsyncClient, pool: asyncpg.Pool, profile_event: str
) -> None:
    email = unique_email("esc")
    await add_profile(pool, email, "Eve")
    response = await http.post(f"{GATEWAY}/v1/events/{profile_event}",
                               json={"email": email, "ctx": {"item": "<script>x</script>"}})
    await final_status(http, response.json()["href"])
    [mail] = await mails_to(http, email)
    assert "<script>" not in mail["html"] and "&lt;script&gt;" in mail["html"]


async def test_a_fresh_key_reads_pending_or_later_and_a_forged_key_is_404(
    http: httpx.AsyncClient, profile_event: str
) -> None:
    response = await http.post(f"{GATEWAY}/v1/events/{profile_event}",
                               json={"email": unique_email(), "ctx": {"item": "x"}})
    read = await http.get(GATEWAY + response.json()["href"])
    assert read.status_code == 200
    assert read.json()["status"] in {"pending", "processing", "targetingFailed"}
    forged = await http.get(f"{GATEWAY}/v1/events/{profile_event}/{'a' * 32}")
    assert forged.status_code == 404
    other_event = await http.get(
        f"{GATEWAY}/v1/events/EVTother/{response.json()['pKey']}"
    )
    assert other_event.status_code == 404


async def test_many_events_all_reach_processed_once(
    http: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    event_id = await publish_event(pool, "event")
    emails = [unique_email("bulk") for _ in range(50)]
    hrefs = []
    for email in emails:
        response = await http.post(f"{GATEWAY}/v1/events/{event_id}",
                                   json={"email": email, "ctx": {"item": "x"}})
        assert response.status_code == 202
        hrefs.append(response.json()["href"])
    for href in hrefs:
        assert (await final_status(http, href))["status"] == "processed"

    async def all_delivered() -> bool:
        counts = [len(await mails_to(http, e)) for e in emails]
        assert max(counts) <= 1, "an event was emailed twice"
        return min(counts) == 1

    await eventually(all_delivered, "one email per event")


async def test_a_republished_template_is_used_for_the_next_event(
    http: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    event_id = await publish_event(pool, "event")
    first, second = unique_email("v1"), unique_email("v2")
    response = await http.post(f"{GATEWAY}/v1/events/{event_id}",
                               json={"email": first, "ctx": {"item": "x"}})
    await final_status(http, response.json()["href"])
    config = EventConfig.model_validate({
        "event_id": event_id, "label": "test", "channel": "email", "targeting": "event",
        "fields": [{"id": "item", "type": "string", "required": True}],
    })
    await save_event(pool, "default", config, {"subject": "v2 {{ ctx.item }}", "html": "",
                                               "text": "v2"})

    async def republished_subject() -> str | None:
        response = await http.post(f"{GATEWAY}/v1/events/{event_id}",
                                   json={"email": second, "ctx": {"item": "y"}})
        await final_status(http, response.json()["href"])
        subjects = [m["subject"] for m in await mails_to(http, second)]
        return "v2 y" if "v2 y" in subjects else None

    assert await eventually(republished_subject, "the new template in use") == "v2 y"


async def test_a_published_event_serves_its_json_schema(
    http: httpx.AsyncClient, profile_event: str
) -> None:
    schema = (await http.get(f"{GATEWAY}/v1/events/{profile_event}/schema")).json()
    assert schema["required"] == ["email"]
    ctx = schema["$defs"][schema["properties"]["ctx"]["$ref"].rsplit("/", 1)[-1]]
    assert ctx["required"] == ["item"]
    assert set(ctx["properties"]) == {"item", "price", "quantity"}
    assert (await http.get(f"{GATEWAY}/v1/events/EVTnothing/schema")).status_code == 404


async def test_a_profile_key_field_finds_the_profile_by_id(
    http: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    event_id = f"EVTkey{uuid.uuid4().hex[:10]}"
    config = EventConfig.model_validate({
        "event_id": event_id, "label": "by id", "channel": "email", "targeting": "profile",
        "fields": [{"id": "item", "type": "string"}, {"id": "customerId", "type": "string"}],
        "profileKey": "customerId",
    })
    await save_event(pool, "default", config, {"subject": "Hi {{ profile.first_name }}",
                                               "html": "", "text": ""})
    customer = f"C-{uuid.uuid4().hex[:8]}"
    async with pool.acquire() as connection:
        await upsert_profiles(connection, "default", [
            {"profile_id": customer, "email": unique_email("crm"), "first_name": "Grace"}])
    email = unique_email("byid")  # not the profile's address: the key field decides
    response = await http.post(f"{GATEWAY}/v1/events/{event_id}",
                               json={"email": email, "ctx": {"customerId": customer}})
    assert (await final_status(http, response.json()["href"]))["status"] == "processed"
    [mail] = await mails_to(http, email)
    assert mail["subject"] == "Hi Grace"
    unknown = await http.post(f"{GATEWAY}/v1/events/{event_id}",
                              json={"email": email, "ctx": {"customerId": "C-none"}})
    assert (await final_status(http, unknown.json()["href"]))["status"] == "targetingFailed"
