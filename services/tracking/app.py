"""The tracking service's FastAPI application: ``GET /o/<token>.gif`` (the open pixel) and
``GET /c/<token>`` (a click, redirected 302 to the link stored at send time), HEAD alike;
404 for a token that does not verify or a message or link it does not know."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import APIRouter, FastAPI, Request
from starlette.responses import Response

from services.tracking.handlers import Answer, react
from services.tracking.handlers import Request as Hit
from services.tracking.metrics import REQUESTS
from services.tracking.wiring import Tracking
from shared.adapters.postgres import DB_UNAVAILABLE
from shared.domain.tracking_links import Kind
from shared.operations import Readiness, operations_router
from shared.settings import Settings, get_settings

# The smallest transparent GIF (1×1, 43 bytes).
GIF = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\x00\x00\x00!\xf9\x04\x01\x00\x00"
       b"\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")
NO_STORE = {"Cache-Control": "no-store, private", "Referrer-Policy": "no-referrer"}
NOT_FOUND = Response(b"not found", 404, media_type="text/plain")
router = APIRouter()


async def _answer(request: Request, kind: Kind, token: str) -> Answer:
    tracking: Tracking = request.app.state.tracking
    hit = Hit(kind, token, request.method, request.headers.get("user-agent"),
              datetime.now(UTC))
    answer = await react(hit, tracking.keys, tracking.lookup, tracking.recorder.record)
    REQUESTS.labels(kind, answer.outcome).inc()
    return answer


@router.api_route("/o/{token}.gif", methods=["GET", "HEAD"], include_in_schema=False)
async def opened(request: Request, token: str) -> Response:
    answer = await _answer(request, "open", token)
    if not answer.found:
        return NOT_FOUND
    return Response(GIF, media_type="image/gif", headers=NO_STORE)


@router.api_route("/c/{token}", methods=["GET", "HEAD"], include_in_schema=False)
async def clicked(request: Request, token: str) -> Response:
    answer = await _answer(request, "click", token)
    if not answer.found or answer.url is None:
        return NOT_FOUND
    return Response(status_code=302, headers={"Location": answer.url, **NO_STORE})


async def readiness(request: Request) -> Readiness:
    """Ready while PostgreSQL answers: Kafka away delays the relay, never an answer."""
    tracking: Tracking = request.app.state.tracking
    try:
        await tracking.pool.fetchval("SELECT 1")
    except DB_UNAVAILABLE:
        return {"postgres": False}
    return {"postgres": True}


def create_app(settings: Settings | None = None, background: bool = True) -> FastAPI:
    """``background=False``: no relay and no consumer (a test's instance, whose reactions
    stay in the outbox)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.tracking = await Tracking.open(settings, background)
        try:
            yield
        finally:
            await app.state.tracking.close()

    app = FastAPI(title="Parcours tracking", version="1", lifespan=lifespan, openapi_url=None,
                  telemetry={"tracing": False, "metrics": False, "logs": False})
    app.include_router(router)
    app.include_router(operations_router(readiness))
    return app
