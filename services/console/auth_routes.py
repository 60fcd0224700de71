"""Signing in and out. The sign-in form takes an admin API key; the console asks the
admin API who it is (``GET /admin/v1/me``) and, if it is an admin key, answers with the
session cookie: HttpOnly, SameSite=Lax, Secure when the console is served over TLS, for
the session's lifetime. The form itself carries a token that must match a cookie set with
it (a site cannot sign a visitor in with its own key), and each client address may fail
a few times a second before it waits (the admin API sees only the console's address)."""

from __future__ import annotations

import hmac
import secrets
import time
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from services.console.api import ApiRefusal, ApiUnavailable, SignedOut
from services.console.session import COOKIE
from services.console.web import SessionDep, checked_form, render
from shared.bounded import BoundedDict
from shared.domain.rate_limit import Bucket, take

router = APIRouter()

PRE_COOKIE = "parcours_console_signin"
FAILURES_PER_S, FAILURE_BURST = 1.0, 10  # per client address
_failures: BoundedDict[str, Bucket] = BoundedDict(10_000)


def _safe_next(target: str | None) -> str:
    """Only a path of this console: never another site (an open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    parts = urlsplit(target)
    return "/" if parts.scheme or parts.netloc or "\\" in target else target


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _sign_in_page(request: Request, next_: str, error: str | None = None,
                  status: int = 200) -> Response:
    token = secrets.token_urlsafe(24)
    response = render(request, "sign_in.html", status=status, error=error, next=next_,
                      signin_token=token, title="Sign in")
    response.set_cookie(PRE_COOKIE, token, max_age=3600, httponly=True, samesite="strict",
                        secure=_secure(request), path="/sign-in")
    return response


@router.get("/sign-in")
async def sign_in_form(request: Request, next: str | None = None) -> Response:
    return _sign_in_page(request, _safe_next(next))


@router.post("/sign-in")
async def sign_in(request: Request, api_key: Annotated[str, Form(max_length=200)] = "",
                  signin_token: Annotated[str, Form(max_length=100)] = "",
                  next: Annotated[str, Form(max_length=2000)] = "/") -> Response:
    target = _safe_next(next)
    expected = request.cookies.get(PRE_COOKIE) or ""
    if not expected or not hmac.compare_digest(expected.encode(), signin_token.encode()):
        return _sign_in_page(request, target, "The form expired: sign in again.", 403)
    address = request.client.host if request.client else "unknown"
    api_key = api_key.strip()
    try:
        me = await request.app.state.admin_api.call(api_key, "GET", "/me") if api_key else None
    except SignedOut:
        me = None
    except ApiRefusal:  # 403: a key of another scope
        me = None
    except ApiUnavailable as error:
        return _sign_in_page(request, target, f"{error}; try again in a moment.", 503)
    if me is None:
        bucket, verdict = take(_failures.get(address), time.monotonic(), FAILURES_PER_S,
                               FAILURE_BURST)
        _failures[address] = bucket
        if not verdict.allowed:
            return _sign_in_page(request, target, "Too many failed sign-ins from here: wait"
                                 f" {verdict.retry_after_s} s and try again.", 429)
        return _sign_in_page(request, target, "That is not an admin API key of a tenant"
                             " (create one with `parcours keys create --scope admin`).", 401)
    token, _ = request.app.state.seal.seal(api_key, me["tenant"], me["tenantName"])
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(COOKIE, token, max_age=int(request.app.state.seal.lifetime_s),
                        httponly=True, samesite="lax", secure=_secure(request), path="/")
    response.delete_cookie(PRE_COOKIE, path="/sign-in")
    return response


@router.post("/sign-out")
async def sign_out(request: Request, session: SessionDep) -> Response:
    await checked_form(request, session)
    response = RedirectResponse("/sign-in", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response
