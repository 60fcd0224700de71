"""The shared operations routes: liveness, readiness by a check, Prometheus metrics."""

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, Request
from prometheus_client import CONTENT_TYPE_LATEST, Counter

from shared.operations import Readiness, ReadinessCheck, operations_router

PROBED = Counter("parcours_test_operations_probed_total", "Counted by this test only")


async def _client(check: ReadinessCheck | None = None) -> httpx.AsyncClient:
    app = FastAPI()
    app.state.answer = True
    app.include_router(operations_router(check) if check else operations_router())
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://service")


@pytest.fixture
async def service() -> AsyncIterator[httpx.AsyncClient]:
    async with await _client() as client:
        yield client


def _answering(answer: Readiness) -> ReadinessCheck:
    async def check(_request: Request) -> Readiness:
        return answer
    return check


async def test_live_is_ok(service: httpx.AsyncClient) -> None:
    answer = await service.get("/health/live")
    assert (answer.status_code, answer.json()) == (200, {"status": "ok"})


async def test_ready_by_default(service: httpx.AsyncClient) -> None:
    answer = await service.get("/health/ready")
    assert (answer.status_code, answer.json()) == (200, {"status": "ok"})


@pytest.mark.parametrize("ready,status,body", [
    (True, 200, {"status": "ok"}),
    (False, 503, {"status": "unavailable"}),
    ({"kafka": True, "postgres": True}, 200, {"kafka": True, "postgres": True}),
    ({"kafka": False, "postgres": True}, 503, {"kafka": False, "postgres": True}),
])
async def test_ready_answers_as_the_check_says(
    ready: Readiness, status: int, body: dict[str, object]
) -> None:
    async with await _client(_answering(ready)) as client:
        answer = await client.get("/health/ready")
    assert (answer.status_code, answer.json()) == (status, body)


async def test_the_check_sees_the_request() -> None:
    async def check(request: Request) -> bool:
        return bool(request.app.state.answer)

    async with await _client(check) as client:
        assert (await client.get("/health/ready")).status_code == 200


async def test_a_check_that_raises_is_a_server_error() -> None:
    async def check(_request: Request) -> bool:
        raise ConnectionRefusedError("the database is down")

    async with await _client(check) as client:
        assert (await client.get("/health/ready")).status_code == 500
        assert (await client.get("/health/live")).status_code == 200


async def test_metrics_in_prometheus_text_format(service: httpx.AsyncClient) -> None:
    PROBED.inc()
    answer = await service.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == CONTENT_TYPE_LATEST
    assert "parcours_test_operations_probed_total 1.0" in answer.text
    assert "python_gc_objects_collected_total" in answer.text


async def test_the_routes_stay_out_of_the_schema() -> None:
    app = FastAPI()
    app.include_router(operations_router())
    assert app.openapi()["paths"] == {}
