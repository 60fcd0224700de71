"""The operations routes every HTTP service serves, kept out of its OpenAPI schema:
``/health/live``, ``/health/ready`` and ``/metrics`` (Prometheus, default registry); and
what every HTTP service answers when PostgreSQL is unreachable."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from shared.adapters.postgres import DB_UNAVAILABLE

# True or False, or named checks ({"kafka": True, "postgres": False}): ready when all pass.
Readiness = bool | Mapping[str, bool]
ReadinessCheck = Callable[[Request], Awaitable[Readiness]]


async def always_ready(_request: Request) -> bool:
    """For a service that is ready as soon as it answers HTTP."""
    return True


def operations_router(ready: ReadinessCheck = always_ready) -> APIRouter:
    """The three routes, ``ready`` deciding ``/health/ready``: ``True`` answers 200
    ``{"status": "ok"}`` and ``False`` 503 ``{"status": "unavailable"}``; named checks are
    the body, 200 when all pass and 503 otherwise. What ``ready`` raises is not caught (500)."""
    router = APIRouter(include_in_schema=False)

    @router.get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/health/ready")
    async def readiness(request: Request) -> Response:
        result = await ready(request)
        body: dict[str, object]
        if isinstance(result, bool):
            passed, body = result, {"status": "ok" if result else "unavailable"}
        else:
            passed, body = all(result.values()), dict(result)
        return JSONResponse(body, status_code=200 if passed else 503)

    @router.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


async def _store_unavailable(_request: Request, _error: Exception) -> JSONResponse:
    return JSONResponse({"detail": "the store is unavailable; retry"}, status_code=503,
                        headers={"Retry-After": "1"})


def answer_store_unavailable(app: FastAPI) -> None:
    """PostgreSQL unreachable in a route that does not say it itself: 503 with
    Retry-After, as the routes that do, not 500."""
    for unavailable in DB_UNAVAILABLE:
        app.add_exception_handler(unavailable, _store_unavailable)
