"""The tracking service's application: ``GET /o/<token>.gif`` (the open pixel) and
``GET /c/<token>`` (a click, redirected 302 to the link stored at send time), HEAD alike;
404 for a token that does not verify or a message or link it does not know. The
operations routes (/health, /metrics) are FastAPI's.

The two tracking routes are answered straight from the ASGI call, past FastAPI's
middleware, router and dependency machinery (which cost about 40% of a redirect's CPU,
measured with py-spy): a path and one header in, a fixed response out, nothing for a
framework to validate. The gateway's ingestion path does the same."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from starlette.types import Receive, Scope, Send

from services.tracking.handlers import Answer, react
from services.tracking.handlers import Request as TrackingRequest
from services.tracking.metrics import REQUESTS
from services.tracking.unsubscribe_routes import router as unsubscribe_router
from services.tracking.wiring import Tracking
from shared.adapters.postgres import DB_UNAVAILABLE
from shared.domain.tracking_links import Kind
from shared.operations import Readiness, operations_router
from shared.settings import Settings, get_settings

# The smallest transparent GIF (1×1, 43 bytes).
GIF = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\x00\x00\x00!\xf9\x04\x01\x00\x00"
       b"\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")
# Every character a URL may hold as it is (RFC 3986 reserved and unreserved, and %).
_URL_SAFE = ";/?:@&=+$,-_.!~*'()#[]%"


def _token(path: str) -> tuple[Kind, str] | None:
    """The route's kind and the token, for /o/<token>.gif and /c/<token>."""
    if path.startswith("/c/"):
        token = path[3:]
        return ("click", token) if token and "/" not in token else None
    if path.startswith("/o/") and path.endswith(".gif"):
        token = path[3:-4]
        return ("open", token) if token and "/" not in token else None
    return None


def _user_agent(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"user-agent":
            return bytes(value).decode("latin-1")
    return None


_NO_STORE = [(b"cache-control", b"no-store, private"), (b"referrer-policy", b"no-referrer")]
_NOT_FOUND = (404, [(b"content-type", b"text/plain"), (b"content-length", b"9")], b"not found")
# A click on a signed link whose message is no longer kept (retention) or not known.
_EXPIRED_PAGE = (b'<!doctype html><html lang="en"><head><meta charset="utf-8">'
                 b'<meta name="robots" content="noindex"><title>Link expired</title></head>'
                 b"<body><h1>This link has expired</h1><p>The message it came in is too old"
                 b" for its links to work.</p></body></html>")
_EXPIRED = (404, [(b"content-type", b"text/html; charset=utf-8"),
                  (b"content-length", str(len(_EXPIRED_PAGE)).encode()), *_NO_STORE,
                  (b"content-security-policy", b"default-src 'none'")], _EXPIRED_PAGE)
_UNAVAILABLE = (503, [(b"content-type", b"text/plain"), (b"content-length", b"11"),
                     (b"retry-after", b"1")], b"unavailable")
_PIXEL = (200, [(b"content-type", b"image/gif"), (b"content-length", str(len(GIF)).encode()),
                *_NO_STORE], GIF)


_COUNTERS: dict[tuple[str, str], Any] = {}  # children by labels: no lookup per request


async def _answer(tracking: Tracking, scope: Scope, kind: Kind, token: str
                  ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    request = TrackingRequest(kind, token, scope["method"], _user_agent(scope), datetime.now(UTC))
    answer: Answer = await react(request, tracking.keys, tracking.record)
    counter = _COUNTERS.get((kind, answer.outcome))
    if counter is None:
        counter = _COUNTERS[(kind, answer.outcome)] = REQUESTS.labels(kind, answer.outcome)
    counter.inc()
    if answer.outcome == "unavailable":
        return _UNAVAILABLE
    if not answer.found:
        return _EXPIRED if kind == "click" and answer.outcome != "refused" else _NOT_FOUND
    if kind == "open":
        return _PIXEL
    return 302, [(b"location", location(answer.url or "")), (b"content-length", b"0"),
                 *_NO_STORE], b""


def location(url: str) -> bytes:
    """The stored URL as the author wrote it, what a header may not hold (spaces, control
    characters, non-ASCII) percent-encoded: a header is never split or refused."""
    return quote(url, safe=_URL_SAFE).encode("ascii")


class TrackingApp(FastAPI):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            route = _token(scope["path"])
            if route is not None:
                status, headers, body = await _answer(self.state.tracking, scope, *route)
                await send({"type": "http.response.start", "status": status,
                            "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await super().__call__(scope, receive, send)


async def readiness(request: Request) -> Readiness:
    """Ready while PostgreSQL answers (the service does not use Kafka)."""
    tracking: Tracking = request.app.state.tracking
    try:
        await tracking.pool.fetchval("SELECT 1")
    except DB_UNAVAILABLE:
        return {"postgres": False}
    return {"postgres": True}


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.tracking = await Tracking.open(settings)
        try:
            yield
        finally:
            await app.state.tracking.close()

    app = TrackingApp(title="Parcours tracking", version="1", lifespan=lifespan,
                      openapi_url=None,
                      telemetry={"tracing": False, "metrics": False, "logs": False})
    app.include_router(operations_router(readiness))
    app.include_router(unsubscribe_router)
    return app
