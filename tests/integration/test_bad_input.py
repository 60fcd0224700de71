"""Bad input: a clear 4xx naming the field, and nothing produced to Kafka."""

import httpx
import pytest

from shared.topics import EVENTS_IN
from tests.integration.conftest import GATEWAY, end_offsets


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"email": "a@example.com", "ctx": {"item": "x", "price": "cheap"}},
         ["body", "ctx", "price"]),
        ({"email": "a@example.com", "ctx": {"item": "x", "quantity": "2"}},
         ["body", "ctx", "quantity"]),
        ({"email": "a@example.com", "ctx": {"item": "x", "colour": "red"}},
         ["body", "ctx", "colour"]),
        ({"email": "a@example.com", "ctx": {}}, ["body", "ctx", "item"]),
        ({"email": "a@example.com"}, ["body", "ctx", "item"]),
        ({"ctx": {"item": "x"}}, ["body", "email"]),
        ({"email": "not an email", "ctx": {"item": "x"}}, ["body", "email"]),
        ({"email": "a@example.com", "ctx": {"item": "x"}, "expiration": "tomorrow"},
         ["body", "expiration"]),
        ({"email": "a@example.com", "ctx": {"item": "a\u0000b"}}, ["body", "ctx", "item"]),
        ({"email": "a@example.com", "ctx": {"item": "x", "quantity": 2**64}},
         ["body", "ctx", "quantity"]),
        ({"email": "zoë@example.com", "ctx": {"item": "x"}}, ["body", "email"]),
        ({"email": "a@example.com", "ctx": {"item": "x"}, "scheduled": "2999-01-01T00:00:00Z"},
         ["body", "scheduled"]),
        ({"email": "a@example.com", "ctx": {"item": "x"}, "scheduled": "2020-01-02T00:00:00Z",
          "expiration": "2020-01-01T00:00:00Z"}, ["body", "expiration"]),
    ],
)
async def test_invalid_event_is_422_naming_the_field_and_nothing_is_produced(
    http: httpx.AsyncClient, profile_event: str, body: dict[str, object], loc: list[str]
) -> None:
    before = await end_offsets(EVENTS_IN)
    response = await http.post(f"{GATEWAY}/v1/events/{profile_event}", json=body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == loc
    assert await end_offsets(EVENTS_IN) == before


async def test_malformed_json_is_422(http: httpx.AsyncClient, profile_event: str) -> None:
    response = await http.post(f"{GATEWAY}/v1/events/{profile_event}", content=b"{not json",
                               headers={"content-type": "application/json"})
    assert response.status_code == 422


async def test_unknown_event_is_404(http: httpx.AsyncClient) -> None:
    response = await http.post(f"{GATEWAY}/v1/events/EVTneverPublished",
                               json={"email": "a@example.com"})
    assert response.status_code == 404
    assert "not published" in response.json()["detail"]


async def test_body_over_256_kb_is_413(http: httpx.AsyncClient, profile_event: str) -> None:
    before = await end_offsets(EVENTS_IN)
    response = await http.post(f"{GATEWAY}/v1/events/{profile_event}",
                               json={"email": "a@example.com", "ctx": {"item": "x" * 300_000}})
    assert response.status_code == 413
    assert await end_offsets(EVENTS_IN) == before


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/v1/events/%00"), ("POST", "/v1/events/EVT%00x/batch"),
    ("GET", "/v1/events/%00/schema"), ("GET", "/v1/events/EVT%00x/keys/k1"),
])
async def test_an_impossible_event_id_is_404_not_a_server_error(
    http: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await http.request(method, GATEWAY + path, json={"events": []})
    assert response.status_code == 404, response.text


async def test_a_batch_item_with_an_integer_past_64_bits_is_422_and_the_others_go(
    http: httpx.AsyncClient, profile_event: str
) -> None:
    item = {"email": "a@example.com", "ctx": {"item": "x"}}
    response = await http.post(f"{GATEWAY}/v1/events/{profile_event}/batch", json={
        "events": [item, {**item, "ctx": {"item": "x", "unknown": 2**64}}]})
    assert response.status_code == 200
    assert [r["status"] for r in response.json()["results"]] == [202, 422]


@pytest.mark.parametrize("headers", [{"content-type": "text/plain"}, {}])
@pytest.mark.parametrize("batch", [False, True])
async def test_a_body_that_is_not_json_is_415_and_nothing_is_produced(
    http: httpx.AsyncClient, profile_event: str, headers: dict[str, str], batch: bool
) -> None:
    item = b'{"email": "a@example.com", "ctx": {"item": "x"}}'
    path, body = ((f"/v1/events/{profile_event}/batch", b'{"events": [%s]}' % item) if batch
                  else (f"/v1/events/{profile_event}", item))
    before = await end_offsets(EVENTS_IN)
    response = await http.post(GATEWAY + path, content=body, headers=headers)
    assert response.status_code == 415, response.text
    assert "application/json" in response.json()["detail"]
    assert await end_offsets(EVENTS_IN) == before


async def test_an_empty_idempotency_key_is_422_naming_the_header(
    http: httpx.AsyncClient, profile_event: str
) -> None:
    before = await end_offsets(EVENTS_IN)
    response = await http.post(f"{GATEWAY}/v1/events/{profile_event}",
                               json={"email": "a@example.com", "ctx": {"item": "x"}},
                               headers={"idempotency-key": ""})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["header", "idempotency-key"]
    assert await end_offsets(EVENTS_IN) == before


async def test_a_status_by_event_key_is_404_for_an_event_not_configured(
    http: httpx.AsyncClient,
) -> None:
    response = await http.get(f"{GATEWAY}/v1/events/EVTneverConfigured/keys/order-1")
    assert response.status_code == 404
    assert "EVTneverConfigured" in response.json()["detail"]


async def test_a_status_by_an_event_key_not_seen_yet_says_so(
    http: httpx.AsyncClient, profile_event: str
) -> None:
    response = await http.get(f"{GATEWAY}/v1/events/{profile_event}/keys/no-such-order")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "pending" and "not been seen yet" in body["reason"], body
