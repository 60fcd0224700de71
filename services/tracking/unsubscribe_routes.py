"""Unsubscribe (issue 11): ``POST /u/<token>`` is RFC 8058's one-click unsubscribe (what a
mailbox provider posts when the reader clicks its "unsubscribe" button), ``GET /u/<token>``
the preference page, ``POST /u/<token>/preferences`` its form.

The token (shared/domain/unsubscribe_links.py) names the tenant, the profile, the channel
and the message, signed: it is the only credential, as a link in a mail must be. Whoever
holds it may change that profile's marketing consent on that channel and its topic
subscriptions, never transactional mail nor a block. There is no cookie nor session, so
no CSRF token either: the form posts back to the same tokened URL, which another site
cannot know. The pages say no-store, no-referrer (the token never leaves in a Referer) and
may not be framed.

Every withdrawal records one ``unsubscribed`` reaction per message (its id is the
message's: posting again, or unsubscribing a topic after the one-click, adds none)."""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import asyncpg
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from prometheus_client import Counter

from shared.adapters import consent_store, profile_schema_store, unsubscribe_store
from shared.adapters.postgres import DB_UNAVAILABLE
from shared.adapters.unsubscribe_store import PREFERENCES
from shared.domain.consent import (
    SUBSCRIBED,
    UNSUBSCRIBED,
    ConsentChange,
    ConsentKind,
    Marketing,
    consent_view,
)
from shared.domain.tracking_links import Keyring, parse_keyring
from shared.domain.unsubscribe_links import Unsubscribe, verify

MAX_FORM = 16_384
_HEADERS = {"cache-control": "no-store, private", "referrer-policy": "no-referrer",
            "x-frame-options": "DENY",
            "content-security-policy": "default-src 'none'; style-src 'unsafe-inline';"
                                       " form-action 'self'; frame-ancestors 'none'"}
_MULTIPART_ONE_CLICK = re.compile(
    rb'name="?List-Unsubscribe"?\r?\n(?:[^\r\n]+\r?\n)*\r?\nOne-Click\r?\n')
_templates = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                         autoescape=select_autoescape(default=True), auto_reload=False)
CHANNEL_NAMES = {"email": "email", "sms": "text messages (SMS)", "push": "notifications"}

router = APIRouter(include_in_schema=False)
REQUESTS = Counter(
    "parcours_tracking_unsubscribe_requests_total",
    "Unsubscribe link requests, by route (one-click, page, preferences) and outcome (ok;"
    " refused: a forged token or an erased profile; invalid: not the expected body;"
    " unavailable: PostgreSQL away, 503)", ["route", "outcome"])
_OUTCOMES = {200: "ok", 404: "refused", 503: "unavailable"}
Handler = Callable[..., Awaitable[Response]]


def _counted(route: str) -> Callable[[Handler], Handler]:
    """Counts each answer; PostgreSQL away is 503 with Retry-After (the one-click sender
    tries again), not an unhandled error."""
    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def counted(*args: Any, **kwargs: Any) -> Response:
            try:
                response = await handler(*args, **kwargs)
            except DB_UNAVAILABLE:
                response = PlainTextResponse("unavailable", status_code=503,
                                             headers={**_HEADERS, "retry-after": "1"})
            REQUESTS.labels(route, _OUTCOMES.get(response.status_code, "invalid")).inc()
            return response
        return counted
    return wrap


def _keys(request: Request) -> Keyring:
    keys: Keyring | None = getattr(request.app.state, "unsubscribe_keys", None)
    if keys is None:
        settings = request.app.state.tracking.settings
        keys = parse_keyring(settings.unsubscribe_keys.get_secret_value())
        request.app.state.unsubscribe_keys = keys
    return keys


def _pool(request: Request) -> asyncpg.Pool:
    return request.app.state.tracking.pool


async def _named(request: Request, token: str) -> Unsubscribe | None:
    """What the token names, if it verifies and its profile still exists (an erased
    profile's links lead nowhere: nothing is written about it again)."""
    named = verify(_keys(request), token)
    if named is None:
        return None
    exists = await _pool(request).fetchval(
        "SELECT 1 FROM profiles WHERE tenant_id = $1 AND profile_id = $2",
        named.tenant, named.profile_id)
    return named if exists else None


def _not_found() -> Response:
    return PlainTextResponse("not found", status_code=404, headers=_HEADERS)


def _one_click(body: bytes, content_type: str) -> bool:
    if content_type.startswith("multipart/form-data"):
        return _MULTIPART_ONE_CLICK.search(body) is not None
    try:
        form = parse_qs(body.decode("ascii"), strict_parsing=False)
    except UnicodeDecodeError:
        return False
    return form.get("List-Unsubscribe") == ["One-Click"]


@router.post("/u/{token}")
@_counted("one-click")
async def one_click(token: str, request: Request) -> Response:
    """RFC 8058: the body is ``List-Unsubscribe=One-Click``; marketing consent on the
    link's channel is withdrawn. Idempotent: posted again, nothing more is recorded."""
    body = await request.body()
    named = await _named(request, token)
    if named is None:
        return _not_found()
    if len(body) > MAX_FORM or not _one_click(body, request.headers.get("content-type", "")):
        return PlainTextResponse("expected List-Unsubscribe=One-Click", status_code=400,
                                 headers=_HEADERS)
    await unsubscribe_store.one_click(_pool(request), named,
                                      f"one-click: {named.channel} marketing")
    return PlainTextResponse("unsubscribed", headers=_HEADERS)


async def _state(connection: asyncpg.Connection, named: Unsubscribe
                 ) -> tuple[bool, list[dict[str, Any]]]:
    """Whether the channel's marketing is opted in, and the schema's topics (id, label,
    subscribed)."""
    schema = (await profile_schema_store.load_schema(connection, named.tenant)).schema
    ids = tuple(t.id for t in schema.topics)
    view = consent_view(await consent_store.read_consent(connection, named.tenant,
                                                         named.profile_id), ids)
    opted_in = view["consent"][named.channel]["marketing"] == Marketing.OPTED_IN.value
    topics = [{"id": t.id, "label": t.label or t.id,
               "subscribed": view["topics"][t.id]["subscribed"]} for t in schema.topics]
    return opted_in, topics


def _page(token: str, named: Unsubscribe, opted_in: bool, topics: list[dict[str, Any]],
          saved: bool = False) -> HTMLResponse:
    html = _templates.get_template("preferences.html").render(
        action=f"/u/{token}/preferences", channel=CHANNEL_NAMES[named.channel],
        opted_in=opted_in, topics=topics, saved=saved)
    return HTMLResponse(html, headers=_HEADERS)


@router.get("/u/{token}")
@_counted("page")
async def page(token: str, request: Request) -> Response:
    named = await _named(request, token)
    if named is None:
        return _not_found()
    async with _pool(request).acquire() as connection:
        opted_in, topics = await _state(connection, named)
    return _page(token, named, opted_in, topics)


@router.post("/u/{token}/preferences")
@_counted("preferences")
async def preferences(token: str, request: Request) -> Response:
    """The form: ``marketing=on`` when the box is ticked, ``topic=<id>`` per ticked topic.
    Only what differs from what the page showed is written (an unknown consent left
    unticked stays unknown); topics outside the tenant's schema are ignored."""
    body = await request.body()
    named = await _named(request, token)
    if named is None:
        return _not_found()
    if len(body) > MAX_FORM:
        return PlainTextResponse("form too large", status_code=413, headers=_HEADERS)
    try:
        form = parse_qs(body.decode("utf-8"))
    except UnicodeDecodeError:
        return PlainTextResponse("not a form", status_code=400, headers=_HEADERS)
    wants_marketing = form.get("marketing") == ["on"]
    wanted = set(form.get("topic", []))
    async with _pool(request).acquire() as connection, connection.transaction():
        opted_in, topics = await _state(connection, named)
        changes: list[ConsentChange] = []
        if wants_marketing != opted_in:
            changes.append(ConsentChange(ConsentKind.MARKETING, named.channel, (
                Marketing.OPTED_IN if wants_marketing else Marketing.OPTED_OUT).value))
        for topic in topics:
            if (topic["id"] in wanted) != topic["subscribed"]:
                changes.append(ConsentChange(ConsentKind.TOPIC, topic["id"], (
                    SUBSCRIBED if topic["id"] in wanted else UNSUBSCRIBED)))
        await unsubscribe_store.apply(connection, named, changes, PREFERENCES)
        withdrawn = [f"{c.kind.value} {c.name}" for c in changes
                     if c.value in (Marketing.OPTED_OUT.value, UNSUBSCRIBED)]
        if withdrawn:
            await unsubscribe_store.record_withdrawal(
                connection, named, "preferences: " + ", ".join(withdrawn), PREFERENCES)
        opted_in, topics = await _state(connection, named)
    return _page(token, named, opted_in, topics, saved=True)
