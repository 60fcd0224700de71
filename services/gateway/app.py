"""The gateway's FastAPI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException
from fastapi.exception_handlers import http_exception_handler
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from services.gateway import (
    import_routes,
    journey_event_routes,
    profile_routes,
    webhook_routes,
)
from services.gateway.metrics import watch_collections
from services.gateway.routes import post_event, readiness, router
from services.gateway.wiring import Gateway
from shared import heap
from shared.operations import answer_store_unavailable, operations_router
from shared.settings import Settings, get_settings

_EVENTS = "/v1/events/"


class GatewayApp(FastAPI):
    """FastAPI, with one shortcut: ``POST /v1/events/{eventId}``, the ingestion hot path,
    goes straight to its endpoint (the route FastAPI documents and would call), past the
    middleware stack and the router. An ``HTTPException`` (401, 403, 429) is answered by
    FastAPI's own handler; anything else propagates to uvicorn, which logs it and answers
    500, as ``ServerErrorMiddleware`` would. Every other request is FastAPI's."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path: str = scope["path"]
            event_id = path[len(_EVENTS):]
            if path.startswith(_EVENTS) and event_id and "/" not in event_id:
                scope["app"] = self
                scope["path_params"] = {"event_id": event_id}
                request = Request(scope, receive, send)
                try:
                    response = await post_event(request)
                except HTTPException as error:
                    response = await http_exception_handler(request, error)
                await response(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.gateway = await Gateway.open(settings)
        app.state.authenticator = app.state.gateway.authenticator
        await app.state.authenticator.start(settings.pg_dsn)
        # What startup made (modules, the app, pools, caches) lives as long as the process:
        # frozen, a full collection no longer walks it. Those came during imports, a long
        # file's slices allocating, and paused every request (75,000 objects: 135-250 ms
        # a full collection on a loaded machine, ~0 ms frozen). serve_http froze the
        # imports; this freezes what the lifespan opened too.
        heap.settle()
        watch_collections()
        try:
            yield
        finally:
            await app.state.authenticator.close()
            await app.state.gateway.close()

    # FastAPI's own OpenTelemetry hooks are off: Parcours reports through Prometheus
    # (/metrics), and checking for an OpenTelemetry provider costs every request.
    app = GatewayApp(title="Parcours ingestion API", version="1", lifespan=lifespan,
                     telemetry={"tracing": False, "metrics": False, "logs": False})
    # a profile read, erasure, batch, history: 503, not 500 (post_event answers its own)
    answer_store_unavailable(app)
    app.include_router(router)
    app.include_router(import_routes.router)
    app.include_router(profile_routes.router)
    app.include_router(webhook_routes.router)
    app.include_router(journey_event_routes.router)
    app.include_router(operations_router(readiness))
    return app
