"""The gateway's shortcut for POST /v1/events/{eventId} (GatewayApp), with stand-ins for
Kafka, the catalogue and the key store: the same answers as through FastAPI's stack."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from aiokafka.errors import KafkaConnectionError

from services.gateway.app import create_app
from services.gateway.wiring import Gateway
from shared.adapters.key_store import KeyRow
from shared.api_auth import Authenticator
from shared.domain.api_keys import Scope, format_key, secret_digest
from shared.domain.events import EventConfig
from shared.domain.lifecycle import PublishedEvent
from shared.domain.pkeys import verify_pkey
from shared.domain.status import Status
from shared.settings import get_settings

SECRET = "s" * 43
KEY_ID = "frontfront12"
INGEST_KEY = format_key(Scope.INGEST, KEY_ID, SECRET)
ADMIN_KEY = format_key(Scope.ADMIN, "adminadmin12", SECRET)
EVENT = EventConfig.model_validate({
    "event_id": "EVTfront", "label": "front", "channel": "email", "targeting": "event",
    "fields": [{"id": "item", "type": "string", "required": True}],
})


class Catalog:
    def __init__(self) -> None:
        self.reloads = 0

    async def get(self, tenant: str, event_id: str) -> PublishedEvent | None:
        if event_id != EVENT.event_id:
            return None
        self.reloads += 1  # a new, equal configuration each time, as after a reload
        return PublishedEvent(EVENT.model_copy(), 1, None, None)


class Producer:
    ready = True

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []

    async def deliver(self, topic: str, value: bytes, key: bytes) -> None:
        self.sent.append((topic, value, key))


def _keys(authenticator: Authenticator, rate: int) -> None:
    for key_id, scope in ((KEY_ID, Scope.INGEST), ("adminadmin12", Scope.ADMIN)):
        authenticator.remember(KeyRow(key_id, "default", scope, secret_digest(SECRET), rate,
                                      False), until=float("inf"))  # never looked up again


@pytest.fixture
async def gateway() -> AsyncIterator[tuple[httpx.AsyncClient, Gateway, Producer]]:
    settings = get_settings()
    app = create_app(settings)
    authenticator = Authenticator(None)  # type: ignore[arg-type]
    _keys(authenticator, rate=1_000_000)
    producer = Producer()
    gw = Gateway(settings, None, Catalog(), authenticator, producer)  # type: ignore[arg-type]
    app.state.gateway, app.state.authenticator = gw, authenticator
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield client, gw, producer


def _bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


async def test_an_accepted_event_is_202_with_its_pkey_after_the_send(
    gateway: tuple[httpx.AsyncClient, Gateway, Producer],
) -> None:
    client, gw, producer = gateway
    answer = await client.post("/v1/events/EVTfront", headers=_bearer(INGEST_KEY),
                               json={"email": "a@example.com", "ctx": {"item": "x"}})
    assert answer.status_code == 202
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert body == {"pKey": body["pKey"], "href": f"/v1/events/EVTfront/{body['pKey']}",
                    "status": "pending"}
    assert verify_pkey(gw.settings.pkey_secret.encode(), "default", "EVTfront", body["pKey"])
    [(_, value, key)] = producer.sent
    record: dict[str, Any] = orjson.loads(value)
    assert (record["pKey"], record["target"], key) == (body["pKey"],
                                                      {"email": "a@example.com"},
                                                      b"a@example.com")


@pytest.mark.parametrize(("headers", "status"), [
    ({}, 401), (_bearer("prc_ingest_nope"), 401), (_bearer(ADMIN_KEY), 403),
])
async def test_without_an_ingest_key_it_is_refused_as_before(
    gateway: tuple[httpx.AsyncClient, Gateway, Producer], headers: dict[str, str],
    status: int,
) -> None:
    client, _, producer = gateway
    answer = await client.post("/v1/events/EVTfront", headers=headers,
                               json={"email": "a@example.com", "ctx": {"item": "x"}})
    assert answer.status_code == status
    assert "detail" in answer.json()
    if status == 401:
        assert answer.headers["www-authenticate"] == 'Bearer realm="parcours"'
    assert producer.sent == []


async def test_past_the_rate_it_is_429_with_retry_after(
    gateway: tuple[httpx.AsyncClient, Gateway, Producer],
) -> None:
    client, gw, _ = gateway
    _keys(gw.authenticator, rate=1)  # a burst of 2
    statuses = [(await client.post("/v1/events/EVTfront", headers=_bearer(INGEST_KEY),
                                    json={"email": "a@example.com", "ctx": {"item": "x"}}))
                for _ in range(3)]
    assert [a.status_code for a in statuses] == [202, 202, 429]
    assert statuses[2].headers["retry-after"] == "1"


async def test_invalid_body_unknown_event_and_long_idempotency_key(
    gateway: tuple[httpx.AsyncClient, Gateway, Producer],
) -> None:
    client, _, producer = gateway
    invalid = await client.post("/v1/events/EVTfront", headers=_bearer(INGEST_KEY),
                                json={"email": "a@example.com", "ctx": {}})
    assert invalid.status_code == 422
    assert invalid.json()["detail"][0]["loc"] == ["body", "ctx", "item"]
    unknown = await client.post("/v1/events/EVTnone", headers=_bearer(INGEST_KEY), json={})
    assert unknown.status_code == 404
    too_long = await client.post(
        "/v1/events/EVTfront", json={"email": "a@example.com", "ctx": {"item": "x"}},
        headers={**_bearer(INGEST_KEY), "idempotency-key": "k" * 256})
    assert too_long.status_code == 422
    assert too_long.json()["detail"][0]["loc"] == ["header", "idempotency-key"]
    assert producer.sent == []


async def test_a_send_kafka_refuses_is_503_and_the_event_is_voided(
    gateway: tuple[httpx.AsyncClient, Gateway, Producer], monkeypatch: pytest.MonkeyPatch,
) -> None:
    client, gw, _ = gateway

    class Unavailable(Producer):
        async def deliver(self, topic: str, value: bytes, key: bytes) -> None:
            raise KafkaConnectionError("the broker is down")

    gw.producer = Unavailable()  # type: ignore[assignment]
    voided: list[list[str]] = []

    async def void(_gw: Gateway, _tenant: str, _event_id: str, pkeys: list[str]) -> None:
        voided.append(pkeys)

    monkeypatch.setattr("services.gateway.ingest._void", void)
    answer = await client.post("/v1/events/EVTfront", headers=_bearer(INGEST_KEY),
                               json={"email": "a@example.com", "ctx": {"item": "x"}})
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "5"
    assert len(voided) == 1 and len(voided[0]) == 1


async def test_other_requests_still_go_through_fastapi(
    gateway: tuple[httpx.AsyncClient, Gateway, Producer],
) -> None:
    client, _, _ = gateway
    assert (await client.get("/v1/events/EVTfront")).status_code == 405
    assert (await client.post("/v1/events/")).status_code == 404
    spec = (await client.get("/openapi.json")).json()
    operation = spec["paths"]["/v1/events/{event_id}"]["post"]
    assert [p["name"] for p in operation["parameters"]] == ["event_id", "idempotency-key"]
    assert set(operation["responses"]) == {"202", "415", "422"}


async def test_the_request_model_is_built_once_for_equal_configurations(
    gateway: tuple[httpx.AsyncClient, Gateway, Producer],
) -> None:
    client, gw, _ = gateway
    for _ in range(3):
        await client.post("/v1/events/EVTfront", headers=_bearer(INGEST_KEY),
                          json={"email": "a@example.com", "ctx": {"item": "x"}})
    first = gw.ingest_model(PublishedEvent(EVENT, 1, None, None))
    assert gw.ingest_model(PublishedEvent(EVENT.model_copy(), 1, None, None)) is first
    assert len(gw._models) == 1


BODY = b'{"email": "a@example.com", "ctx": {"item": "x"}}'


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "application/jsonx", "multipart/form-data"])
@pytest.mark.parametrize("path", ["/v1/events/EVTfront", "/v1/events/EVTfront/batch"])
async def test_anything_but_json_is_415_and_nothing_is_sent(
    gateway: tuple[httpx.AsyncClient, Gateway, Producer], content_type: str | None, path: str,
) -> None:
    client, _, producer = gateway
    headers = _bearer(INGEST_KEY) | ({"content-type": content_type} if content_type else {})
    body = BODY if path.endswith("EVTfront") else b'{"events": [%s]}' % BODY
    answer = await client.post(path, content=body, headers=headers)
    assert answer.status_code == 415, answer.text
    assert "application/json" in answer.json()["detail"]
    assert producer.sent == []


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8",
                                          "Application/JSON", "application/event+json"])
async def test_json_with_parameters_any_case_or_a_json_suffix_is_accepted(
    gateway: tuple[httpx.AsyncClient, Gateway, Producer], content_type: str,
) -> None:
    client, _, _ = gateway
    answer = await client.post("/v1/events/EVTfront", content=BODY,
                               headers=_bearer(INGEST_KEY) | {"content-type": content_type})
    assert answer.status_code == 202, answer.text


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "bEaReR"])
async def test_the_bearer_scheme_is_case_insensitive(
    gateway: tuple[httpx.AsyncClient, Gateway, Producer], scheme: str,
) -> None:
    client, _, _ = gateway
    answer = await client.post("/v1/events/EVTfront", content=BODY, headers={
        "authorization": f"{scheme} {INGEST_KEY}", "content-type": "application/json"})
    assert answer.status_code == 202, answer.text


async def test_an_empty_idempotency_key_is_422_naming_the_header(
    gateway: tuple[httpx.AsyncClient, Gateway, Producer],
) -> None:
    client, _, producer = gateway
    answer = await client.post("/v1/events/EVTfront", content=BODY, headers={
        **_bearer(INGEST_KEY), "content-type": "application/json", "idempotency-key": ""})
    assert answer.status_code == 422
    [error] = answer.json()["detail"]
    assert (error["loc"], error["type"]) == (["header", "idempotency-key"], "string_too_short")
    assert producer.sent == []


async def test_a_body_without_ctx_is_422_at_ctx(
    gateway: tuple[httpx.AsyncClient, Gateway, Producer],
) -> None:
    client, _, _ = gateway
    answer = await client.post("/v1/events/EVTfront", headers=_bearer(INGEST_KEY),
                               json={"email": "a@example.com"})
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] in (["body", "ctx", "item"], ["body", "ctx"])


async def test_the_openapi_document_has_a_status_enum_and_readable_titles(
    gateway: tuple[httpx.AsyncClient, Gateway, Producer],
) -> None:
    client, _, _ = gateway
    schemas = (await client.get("/openapi.json")).json()["components"]["schemas"]
    status = schemas["Status"]
    assert set(status["enum"]) == {s.value for s in Status}
    assert len(status["enum"]) == 10  # the reference's nine, and ours: excluded
    for value in status["enum"]:
        assert f"`{value}`: " in status["description"]
    for name in ("EventStatus", "Accepted"):
        assert schemas[name]["properties"]["status"]["$ref"] == "#/components/schemas/Status"
    titles = {t for s in schemas.values() for p in s.get("properties", {}).values()
              if (t := p.get("title"))}
    assert {"pKey", "eventId", "updatedAt"} <= titles
    assert not titles & {"Pkey", "Eventid", "Updatedat"}
