"""The console's FastAPI application: pages rendered on the server, htmx (served from
here, no CDN) swapping fragments for the live parts, the admin API as the only back end."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.console import (
    audience_routes,
    auth_routes,
    event_routes,
    journey_event_routes,
    journey_routes,
    lookup_routes,
    operations_routes,
    profile_routes,
    test_profile_routes,
)
from services.console.api import AdminApi, ApiUnavailable, SignedOut
from services.console.security import SecurityHeaders
from services.console.session import SessionSeal
from services.console.web import (
    BadCsrf,
    NeedSignIn,
    SessionDep,
    on_bad_csrf,
    on_need_sign_in,
    on_signed_out,
    render,
)
from shared.operations import operations_router
from shared.settings import Settings, get_settings

ROUTERS = [auth_routes, event_routes, test_profile_routes, lookup_routes, profile_routes,
           operations_routes, audience_routes, journey_routes, journey_event_routes]


async def _unavailable(request: Request, error: Exception) -> Response:
    return render(request, "error.html", status=503, title="The admin API is not answering",
                  message=f"{error}. Nothing was changed; try again in a moment.",
                  headers={"Retry-After": "5"})


async def _http_error(request: Request, error: Exception) -> Response:
    """A refusal as a page a person reads (FastAPI would answer JSON)."""
    assert isinstance(error, StarletteHTTPException)
    titles = {404: "Not found", 405: "Not allowed", 422: "Not understood"}
    return render(request, "error.html", status=error.status_code,
                  title=titles.get(error.status_code, f"Refused ({error.status_code})"),
                  message=str(error.detail), headers=error.headers)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with httpx.AsyncClient(base_url=settings.console_admin_url,
                                     timeout=httpx.Timeout(15, connect=3)) as client:
            app.state.admin_api = AdminApi(client)
            yield

    app = FastAPI(title="Parcours console", lifespan=lifespan, docs_url=None,
                  redoc_url=None, openapi_url=None)
    app.state.settings = settings
    app.state.seal = SessionSeal(settings.console_session_keys.get_secret_value(),
                                 settings.console_session_hours * 3600)
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"),
              name="static")

    @app.get("/", include_in_schema=False)
    async def home(_session: SessionDep) -> Response:
        return RedirectResponse("/events", status_code=303)

    for routes in ROUTERS:
        app.include_router(routes.router)
    app.include_router(operations_router())
    app.add_exception_handler(NeedSignIn, on_need_sign_in)
    app.add_exception_handler(SignedOut, on_signed_out)
    app.add_exception_handler(BadCsrf, on_bad_csrf)
    app.add_exception_handler(ApiUnavailable, _unavailable)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_middleware(SecurityHeaders)
    return app
