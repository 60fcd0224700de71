"""The admin API's FastAPI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from services.admin import (
    address_routes,
    audience_draft_routes,
    audience_routes,
    dkim_routes,
    dry_run_routes,
    event_routes,
    identity_routes,
    journey_event_routes,
    journey_holdout_routes,
    journey_http_host_routes,
    journey_instance_routes,
    journey_lifecycle_routes,
    journey_routes,
    me_routes,
    metrics_summary_routes,
    profile_routes,
    profile_schema_routes,
    proof_routes,
    reconcile_routes,
    retention_routes,
    rule_routes,
    status_routes,
    test_profile_routes,
    webhook_routes,
)
from services.admin.limits import BodyLimit
from services.admin.metrics import RequestMetrics
from shared.adapters.postgres import create_pool
from shared.adapters.producer import RenewingProducer
from shared.api_auth import Authenticator
from shared.domain.lifecycle import LifecycleError
from shared.operations import answer_store_unavailable, operations_router
from shared.settings import Settings, get_settings


async def _refused(_request: Request, error: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(error)}, status_code=409)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.pool = await create_pool(settings.pg_dsn, min_size=1, max_size=4)
        app.state.authenticator = Authenticator(app.state.pool)
        await app.state.authenticator.start(settings.pg_dsn)
        # Test runs' simulated reactions and journey events: connects when Kafka answers.
        app.state.producer = RenewingProducer(settings, "admin")
        app.state.producer.start_in_background()
        try:
            yield
        finally:
            await app.state.producer.stop()
            await app.state.authenticator.close()
            await app.state.pool.close()

    app = FastAPI(title="Parcours admin API", version="1", lifespan=lifespan)
    for routes in (event_routes, proof_routes, test_profile_routes, profile_schema_routes,
                   audience_routes, rule_routes, address_routes, dry_run_routes,
                   identity_routes, dkim_routes, webhook_routes, journey_routes,
                   journey_event_routes, journey_lifecycle_routes, journey_instance_routes,
                   journey_http_host_routes, journey_holdout_routes, reconcile_routes,
                   retention_routes, me_routes, status_routes, profile_routes,
                   metrics_summary_routes, audience_draft_routes):
        app.include_router(routes.router)
    app.include_router(operations_router(event_routes.readiness))
    app.add_exception_handler(LifecycleError, _refused)
    answer_store_unavailable(app)
    app.add_middleware(BodyLimit)
    app.add_middleware(RequestMetrics)  # added last: outermost, it counts the 413s too
    return app
