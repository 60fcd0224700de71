"""The provider sink's read-back API and failure injection, in-process."""

from collections.abc import AsyncIterator

import httpx
import pytest

from services.provider_sink.app import http_api
from services.provider_sink.store import Faults, Inbox

SMS = {"to": "+15551234567", "text": "hello", "messageId": "m-1"}
PUSH = {"token": "tok", "application": "shop", "platform": "apns", "title": "t", "body": "b",
        "data": {"k": "v"}, "messageId": "m-2"}


@pytest.fixture
async def sink() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=http_api(Inbox(), Faults()))
    async with httpx.AsyncClient(transport=transport, base_url="http://sink") as client:
        yield client


async def test_lists_by_channel_and_recipient(sink: httpx.AsyncClient) -> None:
    assert (await sink.post("/sms", json=SMS)).status_code == 202
    assert (await sink.post("/push", json=PUSH)).status_code == 202
    [sms] = (await sink.get("/messages", params={"channel": "sms"})).json()
    assert sms["to"] == "+15551234567" and sms["payload"]["text"] == "hello"
    [push] = (await sink.get("/messages", params={"to": "tok"})).json()
    assert push["channel"] == "push" and push["payload"]["data"] == {"k": "v"}
    assert (await sink.delete("/messages")).status_code == 204
    assert (await sink.get("/messages")).json() == []


async def test_without_a_key_a_resend_is_recorded_and_reported_as_duplicate(
    sink: httpx.AsyncClient,
) -> None:
    first = (await sink.post("/sms", json=SMS)).json()["id"]
    second = (await sink.post("/sms", json=SMS)).json()["id"]
    assert first != second
    assert (await sink.get("/duplicates")).json() == {"m-1": 2}


async def test_with_a_key_a_resend_gets_the_first_answer(sink: httpx.AsyncClient) -> None:
    answers = [await sink.post("/sms", json=SMS, headers={"Idempotency-Key": "m-1"})
               for _ in range(3)]
    assert {a.status_code for a in answers} == {202}
    assert len({a.json()["id"] for a in answers}) == 1
    assert len((await sink.get("/messages")).json()) == 1


async def test_injected_failures_only_hit_matching_requests(sink: httpx.AsyncClient) -> None:
    await sink.post("/reject", params={"status": 503, "count": 2, "to": "+15551234567"})
    other = {**SMS, "to": "+15550000000", "messageId": "m-3"}
    assert (await sink.post("/sms", json=other)).status_code == 202
    assert (await sink.post("/push", json=PUSH)).status_code == 202
    codes = [(await sink.post("/sms", json=SMS)).status_code for _ in range(3)]
    assert codes == [503, 503, 202]


async def test_two_recipients_armed_at_once_each_get_their_own_fault(
        sink: httpx.AsyncClient) -> None:
    first, second = SMS["to"], "+15550000001"
    await sink.post("/reject", params={"status": 429, "count": 1, "to": first,
                                       "retry_after": "12"})
    await sink.post("/reject", params={"status": 503, "count": 1, "to": second})
    refused = await sink.post("/sms", json={**SMS, "to": second, "messageId": "m-4"})
    throttled = await sink.post("/sms", json=SMS)
    assert (refused.status_code, throttled.status_code) == (503, 429)
    assert throttled.headers["retry-after"] == "12" and "retry-after" not in refused.headers
    again = [await sink.post("/sms", json={**SMS, "to": to, "messageId": f"m-{to}"})
             for to in (first, second)]
    assert [a.status_code for a in again] == [202, 202]  # each taken once, then spent


async def test_a_count_of_zero_disarms_and_a_recipients_fault_beats_the_channels(
        sink: httpx.AsyncClient) -> None:
    await sink.post("/reject", params={"status": 503, "count": 5, "channel": "sms"})
    await sink.post("/reject", params={"status": 400, "count": 1, "to": SMS["to"]})
    assert (await sink.post("/sms", json=SMS)).status_code == 400
    assert (await sink.post("/sms", json=SMS)).status_code == 503
    await sink.post("/reject", params={"status": 503, "count": 0, "channel": "sms"})
    assert (await sink.post("/sms", json=SMS)).status_code == 202


async def test_refuses_what_is_not_a_provider_payload(sink: httpx.AsyncClient) -> None:
    assert (await sink.post("/sms", json={**SMS, "extra": 1})).status_code == 422
    assert (await sink.post("/push", json={**PUSH, "platform": "wns"})).status_code == 422
    assert (await sink.post("/reject", params={"status": 200})).status_code == 422


async def test_health_and_metrics(sink: httpx.AsyncClient) -> None:
    assert (await sink.get("/health/ready")).status_code == 200
    await sink.post("/sms", json=SMS)
    assert 'parcours_provider_sink_requests_total{channel="sms",outcome="accepted"}' in (
        await sink.get("/metrics")).text
