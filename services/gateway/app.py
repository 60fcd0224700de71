"""The gateway's FastAPI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.gateway.handlers import readiness, router
from services.gateway.wiring import Gateway
from shared.operations import operations_router
from shared.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.gateway = await Gateway.open(settings)
        app.state.authenticator = app.state.gateway.authenticator
        try:
            yield
        finally:
            await app.state.gateway.close()

    # FastAPI's own OpenTelemetry hooks are off: Parcours reports through Prometheus
    # (/metrics), and checking for an OpenTelemetry provider costs every request.
    app = FastAPI(title="Parcours ingestion API", version="1", lifespan=lifespan,
                  telemetry={"tracing": False, "metrics": False, "logs": False})
    app.include_router(router)
    app.include_router(operations_router(readiness))
    return app
