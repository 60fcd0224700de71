"""Admin API metrics: every request counted by route template and answer, and timed.
Labels are bounded: route templates (never ids), methods, status codes."""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter(
    "parcours_admin_requests_total",
    "Admin API requests, by route template, method and answer (status code)",
    ["route", "method", "status"],
)
REQUEST_SECONDS = Histogram(
    "parcours_admin_request_seconds",
    "Admin API requests: time to the start of the answer, by route template",
    ["route", "method"],
    buckets=(0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
_OPERATIONS = frozenset({"/metrics", "/health/live", "/health/ready"})  # not counted
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})


def method_label(scope: Scope) -> str:
    """The request's method if its route takes it, else ``other``: a client chooses the
    method (any token: QUERY, TRACE, made-up ones), and every route answers each with a
    405 (the fuzz test's 8 methods on 61 routes made 8,720 series, near the 10,000 bound)."""
    method: str = scope["method"]
    allowed = getattr(scope.get("route"), "methods", None) or _METHODS
    return method if method in _METHODS and method in allowed else "other"


class RequestMetrics:
    """Pure ASGI, outermost: sees every answer, the body limit's 413 and FastAPI's 422
    included. A request that matched no route is counted as ``unmatched``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in _OPERATIONS:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless an answer starts: what uvicorn sends for an escaped error

        async def counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                route = getattr(scope.get("route"), "path", "unmatched")
                REQUEST_SECONDS.labels(route, method_label(scope)).observe(
                    time.perf_counter() - started)
            await send(message)

        try:
            await self.app(scope, receive, counted)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            REQUESTS.labels(route, method_label(scope), str(status)).inc()
