"""Issue 8, items 2-4, on the real stack: a value keeps its type from the request to the
message (the preview shows what the customer gets), decimals stay exact and bounded, any
field id the pattern allows works, and a record the processor cannot handle ends with a
status."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from shared.domain.pkeys import mint_pkey
from shared.kafka_signing import RecordSigner
from shared.topics import EVENTS_IN, EVENTS_KAFKA
from tests.integration.conftest import (
    GATEWAY,
    TENANT,
    eventually,
    final_status,
    mails_to,
    publish_event,
    settings,
    unique_email,
)

BIG = "12345678901234567890.123456789"  # went through a float: 12345678901234567000
SUBJECT = "T {{ ctx.total * 2 }} {{ ctx.big }} {{ ctx.day.year }}"


async def live_event(admin: httpx.AsyncClient, config: dict[str, Any],
                     template: dict[str, str]) -> str:
    """Created, published, its message edited and published, through the admin API."""
    event_id = f"EVTval{uuid.uuid4().hex[:10]}"
    created = await admin.post("/events", json={
        "eventId": event_id, "label": "values", "channel": "email", "targeting": "event",
        **config})
    assert created.status_code == 201, created.text
    assert (await admin.post(f"/events/{event_id}/publish")).status_code == 200
    assert (await admin.put(f"/events/{event_id}/message", json=template)).status_code == 200
    assert (await admin.post(f"/events/{event_id}/message/publish")).status_code == 200
    return event_id


PRICED = {"fields": [{"id": "total", "type": "decimal"}, {"id": "big", "type": "decimal"},
                     {"id": "day", "type": "date"}]}


async def accepted(http: httpx.AsyncClient, event_id: str, raw: bytes) -> str:
    """POST until the endpoint is up (within the gateway's cache time); the status href."""
    async def post() -> httpx.Response | None:
        response = await http.post(f"{GATEWAY}/v1/events/{event_id}", content=raw,
                                   headers={"content-type": "application/json"})
        return response if response.status_code != 404 else None

    response = await eventually(post, "the endpoint to go live")
    assert response.status_code == 202, response.text
    href: str = response.json()["href"]
    return href


async def test_the_preview_shows_what_the_customer_receives(
    admin: httpx.AsyncClient, http: httpx.AsyncClient
) -> None:
    """The sender got ctx.total as the string "19.9" and sent 'T 19.919.9' where the
    preview showed 'T 39.8'; the big decimal went through a float in both."""
    event_id = await live_event(admin, PRICED, {"subject": SUBJECT, "text": "x"})
    ctx = f'{{"total": 19.9, "big": {BIG}, "day": "2026-02-01"}}'
    preview = await admin.post(f"/events/{event_id}/message/preview",
                               content=f'{{"ctx": {ctx}}}'.encode(),
                               headers={"content-type": "application/json"})
    assert preview.status_code == 200, preview.text
    email = unique_email("values")
    href = await accepted(http, event_id, f'{{"email": "{email}", "ctx": {ctx}}}'.encode())
    assert (await final_status(http, href))["status"] == "processed"
    [mail] = await mails_to(http, email)
    assert mail["subject"] == preview.json()["parts"]["subject"] == f"T 39.8 {BIG} 2026"


async def test_a_batch_item_keeps_its_decimals_exactly(
    admin: httpx.AsyncClient, http: httpx.AsyncClient
) -> None:
    """The batch endpoint read its items' numbers as floats before validating them."""
    event_id = await live_event(admin, PRICED, {"subject": SUBJECT, "text": "x"})
    email = unique_email("batch")
    item = f'{{"email": "{email}", "ctx": {{"total": 19.90, "big": {BIG}, "day": "2026-02-01"}}}}'

    async def posted() -> httpx.Response | None:
        response = await http.post(f"{GATEWAY}/v1/events/{event_id}/batch",
                                   content=f'{{"events": [{item}]}}'.encode(),
                                   headers={"content-type": "application/json"})
        return response if response.status_code != 404 else None

    [result] = (await eventually(posted, "the batch endpoint to go live")).json()["results"]
    assert result["status"] == 202, result
    assert (await final_status(http, result["href"]))["status"] == "processed"
    [mail] = await mails_to(http, email)
    assert mail["subject"] == f"T 39.80 {BIG} 2026"


async def test_a_proof_types_the_sample_data_as_a_send_does(
    admin: httpx.AsyncClient, http: httpx.AsyncClient
) -> None:
    event_id = await live_event(admin, PRICED, {"subject": SUBJECT, "text": "x"})
    tester, profile_id = unique_email("tester"), f"tp-{uuid.uuid4().hex[:10]}"
    put = await admin.put(f"/test-profiles/{profile_id}", json={
        "email": tester, "sampleCtx": {"total": 19.9, "big": 1, "day": "2026-02-01"}})
    assert put.status_code == 200, put.text
    sent = await admin.post(f"/events/{event_id}/message/proof", json={"profileId": profile_id})
    assert sent.status_code == 202, sent.text
    [mail] = await mails_to(http, tester)
    assert mail["subject"] == "[Proof] T 39.8 1 2026"


async def test_the_preview_and_proof_refuse_a_ctx_ingestion_refuses_naming_the_field(
    admin: httpx.AsyncClient, http: httpx.AsyncClient
) -> None:
    """Both rendered {"total": "abc", "zzz": 1}, which the event's endpoint refuses."""
    event_id = await live_event(admin, PRICED, {"subject": SUBJECT})
    bad = {"total": "abc", "zzz": 1}
    preview = await admin.post(f"/events/{event_id}/message/preview", json={"ctx": bad})
    assert preview.status_code == 422, preview.text
    assert [e["loc"] for e in preview.json()["detail"]] == [
        ["body", "ctx", "total"], ["body", "ctx", "zzz"]]
    ingested = await http.post(f"{GATEWAY}/v1/events/{event_id}",
                               json={"email": unique_email(), "ctx": bad})
    assert ingested.status_code in (404, 422)  # 404 only while the endpoint goes live
    profile_id = f"tp-{uuid.uuid4().hex[:10]}"
    await admin.put(f"/test-profiles/{profile_id}",
                    json={"email": unique_email("tester"), "sampleCtx": {"total": "abc"}})
    proof = await admin.post(f"/events/{event_id}/message/proof", json={"profileId": profile_id})
    assert proof.status_code == 422, proof.text
    assert proof.json()["detail"][0]["loc"] == ["testProfile", "sampleCtx", "total"]


@pytest.mark.parametrize("total", ["1e-400", '"1e400"', '"1e999999999"', "1e400",
                                   "0.123456789012345678901234567890123456789"])
async def test_a_decimal_past_38_digits_is_a_422_naming_the_field(
    admin: httpx.AsyncClient, http: httpx.AsyncClient, pool: asyncpg.Pool, total: str
) -> None:
    """1e-400 was stored and sent as 0; "1e400" and "1e999999999" as 1E+999999999."""
    event_id = await publish_event(pool, "event")  # price is a decimal
    body = f'{{"email": "{unique_email()}", "ctx": {{"item": "x", "price": {total}}}}}'

    async def answered() -> httpx.Response | None:
        response = await http.post(f"{GATEWAY}/v1/events/{event_id}", content=body.encode(),
                                    headers={"content-type": "application/json"})
        return response if response.status_code != 404 else None

    response = await eventually(answered, "the endpoint to go live")
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "ctx", "price"]


PYDANTIC_IDS = {
    "fields": [{"id": "model_dump", "type": "string", "required": True},
               {"id": "model_config", "type": "decimal"}, {"id": "f_0", "type": "string"}],
    "collections": [{"id": "json", "fields": [{"id": "copy", "type": "string"}]}],
}


async def test_fields_named_like_pydantic_s_own_attributes_work_end_to_end(
    admin: httpx.AsyncClient, http: httpx.AsyncClient, producer: AIOKafkaProducer,
    signer: RecordSigner,
) -> None:
    """model_dump made GET …/schema and every POST a 500, and its Kafka records were
    dead-lettered while their status read pending forever; model_config was dropped from
    the model, so every event sending it was a 422."""
    template = {"subject": "{{ ctx.model_dump }} {{ ctx.model_config }} {{ ctx.f_0 }}"
                           " {% for j in ctx.json %}{{ j.copy }}{% endfor %}"}
    event_id = await live_event(admin, PYDANTIC_IDS, template)
    schema = await admin.get(f"/events/{event_id}/schema")
    assert schema.status_code == 200, schema.text
    ctx_schema = schema.json()["$defs"][f"{event_id}_ctx"]
    assert set(ctx_schema["properties"]) == {"model_dump", "model_config", "f_0", "json"}
    ctx = {"model_dump": "a", "model_config": 1.50, "f_0": "b", "json": [{"copy": "c"}]}
    email = unique_email("pydantic")
    href = await accepted(http, event_id, orjson.dumps({"email": email, "ctx": ctx}))
    assert (await final_status(http, href))["status"] == "processed"
    assert [m["subject"] for m in await mails_to(http, email)] == ["a 1.5 b c"]

    by_kafka = unique_email("pydantic-kafka")
    record = orjson.dumps({"tenant": TENANT, "eventId": event_id, "eventKey": by_kafka,
                           "email": by_kafka, "ctx": ctx})
    await producer.send_and_wait(EVENTS_KAFKA.name, record, by_kafka.encode(),
                                 headers=signer.headers(record))
    status = await final_status(http, f"/v1/events/{event_id}/keys/{by_kafka}")
    assert status["status"] == "processed", status
    assert [m["subject"] for m in await mails_to(http, by_kafka)] == ["a 1.5 b c"]


@pytest.mark.parametrize(
    ("config", "field"),
    [({"fields": [{"id": "total", "type": "decimal"}, {"id": "total", "type": "string"}]},
      "fields"),
     ({"fields": [{"id": "items", "type": "string"}],
       "collections": [{"id": "items", "fields": [{"id": "x", "type": "string"}]}]},
      "collections")],
)
async def test_two_fields_with_one_id_are_a_422_naming_it(
    admin: httpx.AsyncClient, config: dict[str, Any], field: str
) -> None:
    """They were accepted and silently merged into one key of ctx."""
    response = await admin.post("/events", json={
        "eventId": f"EVTdup{uuid.uuid4().hex[:10]}", "label": "dup", "channel": "email",
        "targeting": "event", **config})
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", field] and "is used twice" in error["msg"]


async def test_a_record_the_processor_cannot_handle_ends_with_a_status(
    http: httpx.AsyncClient, pool: asyncpg.Pool, producer: AIOKafkaProducer
) -> None:
    """A trigger PostgreSQL cannot hold (NUL in a scheduled event's ctx) failed in the
    processor: dead-lettered, its status pending forever."""
    event_id = await publish_event(pool, "event")
    pkey = mint_pkey(settings.pkey_secret.encode(), TENANT, event_id, os.urandom(12))
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    trigger = {"v": 1, "pKey": pkey, "tenant": TENANT, "eventId": event_id,
               "target": {"email": unique_email("poison")}, "ctx": {"item": "a\u0000b"},
               "scheduled": later, "acceptedAt": datetime.now(UTC).timestamp()}
    await producer.send_and_wait(EVENTS_IN.name, orjson.dumps(trigger), pkey.encode())
    status = await final_status(http, f"/v1/events/{event_id}/{pkey}")
    assert status["status"] == "routingFailed", status
    assert status["reason"].startswith("error: "), status
