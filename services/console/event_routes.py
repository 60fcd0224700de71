"""Events and their messages: the list of event configurations with their state; create,
publish, unpublish, delete (the admin API's errors beside the field they name); the
message editor with a preview re-rendered as the marketer types (the unsaved parts,
``POST …/message/preview`` with ``template``), proofs, publish, pause, resume, and
versions side by side."""

from __future__ import annotations

import difflib
import secrets
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.console.api import ApiRefusal, Caller
from services.console.forms import (
    CHANNEL_PARTS,
    MAX_FIELD_ROWS,
    FormProblem,
    event_config,
    exact_json_text,
    field_rows,
    json_text,
    message_parts,
    text,
)
from services.console.web import Api, Form, SessionDep, field_errors, is_htmx, render
from shared.bounded import BoundedDict
from shared.domain.exact import exact_json
from shared.domain.sms_encoding import sms_shape

router = APIRouter()

EventId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_]{1,64}$")]
FIELD_TYPES = ("string", "integer", "decimal", "boolean", "date", "datetime", "email", "phone")
LIST_LIMIT = 300
# An email preview is its own document (its own CSP: the email's inline styles and remote
# images, no script at all), fetched by the sandboxed iframe by an unguessable token.
# 64 at most: an HTML part is at most 500,000 characters (admin limits), so 32 MB at worst;
# a frame is fetched within milliseconds of its fragment, long before 64 others come.
_FRAMES: BoundedDict[str, tuple[str, str]] = BoundedDict(64)  # token → (tenant, html)
FRAME_CSP = ("default-src 'none'; img-src https: http: data:; style-src 'unsafe-inline' https:;"
             " font-src https: data:; sandbox")


def _state_of(versions: list[dict[str, Any]]) -> str:
    live = next((v["state"] for v in versions if v["state"] in ("published", "paused")), None)
    return live or (versions[0]["state"] if versions else "none")


@router.get("/events")
async def list_events(request: Request, session: SessionDep, api: Api,
                      q: Annotated[str, Query(max_length=100)] = "") -> Response:
    events = await api.get("/events")
    wanted = q.strip().lower()
    shown = [e for e in events if not wanted or wanted in e["config"]["eventId"].lower()
             or wanted in e["config"]["label"].lower()]
    shown.sort(key=lambda e: e["updatedAt"], reverse=True)
    return render(request, "events.html", session, title="Events & messages",
                  events=shown[:LIST_LIMIT], total=len(events), matching=len(shown), q=q,
                  limit=LIST_LIMIT)


@router.get("/events/new")
async def new_event(request: Request, session: SessionDep) -> Response:
    return render(request, "event_new.html", session, title="New event", values={},
                  rows=[{"id": "", "type": "string", "label": "", "required": False}],
                  errors={}, error=None, field_types=FIELD_TYPES)


@router.get("/events/new/field-row")
async def field_row(request: Request, _session: SessionDep,
                    i: Annotated[int, Query(ge=0, le=199)] = 0) -> Response:
    return render(request, "_field_row_added.html", index=i, row={"id": "", "type": "string",
                  "label": "", "required": False}, errors={}, field_types=FIELD_TYPES)


@router.post("/events")
async def create_event(request: Request, session: SessionDep, api: Api, form: Form
                       ) -> Response:
    values = {k: text(form, k) for k in ("eventId", "label", "channel", "targeting",
                                          "profileKey", "topic", "typology", "collections")
              } | {"marketing": form.get("marketing") == "on"}
    if form.get("add_field") == "1":  # the button without JavaScript: one more row
        rows = [*field_rows(form), {"id": "", "type": "string", "label": "",
                                    "required": False}][:MAX_FIELD_ROWS]
        return render(request, "event_new.html", session, title="New event", values=values,
                      rows=rows, errors={}, error=None, field_types=FIELD_TYPES)
    errors: dict[str, str] = {}
    body: dict[str, Any] = {}
    try:
        body = event_config(form)
        created = await api.post("/events", json=body)
        return RedirectResponse(f"/events/{created['config']['eventId']}", status_code=303)
    except FormProblem as problem:
        errors = {problem.field: problem.why}
    except ApiRefusal as refused:
        errors = refused.fields or {"eventId": refused.message}
    rows = body.get("fields") or [{"id": "", "type": "string", "label": "",
                                   "required": False}]
    return render(request, "event_new.html", session, status=422, title="New event",
                  values=values, rows=rows, errors=errors,
                  error="The event was not created: see the fields marked below.",
                  field_types=FIELD_TYPES)


async def _event_page(request: Request, session: SessionDep, api: Caller, event_id: str,
                      notice: str | None = None, error: str | None = None,
                      status: int = 200) -> Response:
    event = await api.get(f"/events/{event_id}")
    message = None
    if event["state"] != "draft" or event["config"]["eventId"].startswith("JMS"):
        try:
            message = await api.get(f"/events/{event_id}/message")
        except ApiRefusal:
            message = None
    return render(request, "event.html", session, status=status,
                  title=event["config"]["eventId"], event=event, message=message,
                  message_state=_state_of(message["versions"]) if message else "none",
                  notice=notice, error=error)


@router.get("/events/{event_id}")
async def show_event(request: Request, session: SessionDep, api: Api, event_id: EventId
                     ) -> Response:
    try:
        return await _event_page(request, session, api, event_id)
    except ApiRefusal as refused:
        raise HTTPException(404, refused.message) from refused


_EVENT_ACTIONS = {"publish": "Published: the endpoint takes events within 2 seconds.",
                  "unpublish": "Unpublished: the endpoint answers 404 \"not published\"."}


@router.post("/events/{event_id}/{action}")
async def event_action(request: Request, session: SessionDep, api: Api, form: Form,
                       event_id: EventId, action: str) -> Response:
    if action == "delete":
        try:
            await api.delete(f"/events/{event_id}")
        except ApiRefusal as refused:
            return await _event_page(request, session, api, event_id, error=refused.message,
                                     status=409)
        return RedirectResponse("/events", status_code=303)
    if action not in _EVENT_ACTIONS:
        raise HTTPException(404, "no such action")
    try:
        await api.post(f"/events/{event_id}/{action}")
    except ApiRefusal as refused:
        return await _event_page(request, session, api, event_id, error=refused.message,
                                 status=409)
    return await _event_page(request, session, api, event_id, notice=_EVENT_ACTIONS[action])


# --- the message ---------------------------------------------------------------------------

async def _editor(request: Request, session: SessionDep, api: Caller, event_id: str, *,
                  parts: dict[str, Any] | None = None, errors: dict[str, str] | None = None,
                  notice: str | None = None, error: str | None = None, status: int = 200
                  ) -> Response:
    event = await api.get(f"/events/{event_id}")
    message = await api.get(f"/events/{event_id}/message")
    versions = message["versions"]
    latest = versions[0]["template"] if versions else {}
    channel = message["channel"]
    shown = parts if parts is not None else {
        part: (exact_json_text(latest.get(part, {})) if part == "data"
               else latest.get(part, "")) for part in CHANNEL_PARTS[channel]}
    profiles = await api.get("/test-profiles")
    # The first preview is rendered here (the page shows it at once, and without
    # JavaScript); htmx renders the next ones as the parts are typed.
    try:
        typed = {part: (json_text(shown[part], "template.data") if part == "data"
                        and shown[part].strip() else {} if part == "data" else shown[part])
                 for part in CHANNEL_PARTS[channel]}
        preview = await _rendered(api, session, event_id, channel, typed, "",
                                  profiles[0]["profileId"] if profiles else "", "")
    except FormProblem as problem:
        preview = {"channel": channel, "rendered": None, "frame": None, "shape": None,
                   "errors": {problem.field: problem.why}}
    return render(request, "message.html", session, status=status, title=f"Message of {event_id}",
                  event=event, channel=channel, versions=versions, parts=shown,
                  part_names=CHANNEL_PARTS[channel], errors=errors or {}, notice=notice,
                  error=error, profiles=profiles, state=_state_of(versions),
                  variants=sorted((latest.get("variants") or {}).keys()), preview=preview)


@router.get("/events/{event_id}/message")
async def edit_message(request: Request, session: SessionDep, api: Api, event_id: EventId
                       ) -> Response:
    try:
        return await _editor(request, session, api, event_id)
    except ApiRefusal as refused:
        raise HTTPException(404, refused.message) from refused


@router.post("/events/{event_id}/message/preview")
async def preview(request: Request, session: SessionDep, api: Api, form: Form,
                  event_id: EventId) -> Response:
    """The unsaved parts rendered for the chosen test profile (a fragment for htmx)."""
    channel = text(form, "channel")
    if channel not in CHANNEL_PARTS:
        raise HTTPException(422, "channel: unknown")
    try:
        parts = message_parts(form, channel)
    except FormProblem as problem:
        return render(request, "_preview.html", session, channel=channel, rendered=None,
                      frame=None, shape=None, errors={problem.field: problem.why})
    context = await _rendered(api, session, event_id, channel, parts, text(form, "ctx"),
                              text(form, "profileId"), text(form, "locale"))
    return render(request, "_preview.html", session, **context)


async def _rendered(api: Caller, session: SessionDep, event_id: str, channel: str,
                    parts: dict[str, Any], ctx_raw: str, profile_id: str, locale: str
                    ) -> dict[str, Any]:
    """What _preview.html shows for these parts: the rendering, or the errors by part."""
    context: dict[str, Any] = {"channel": channel, "errors": {}, "rendered": None,
                               "frame": None, "shape": None}
    try:
        if ctx_raw:
            json_text(ctx_raw, "ctx")  # checked here, sent as typed: decimals stay exact
        body = b"".join([b'{"template":', exact_json(parts),
                         b',"ctx":', ctx_raw.encode() if ctx_raw else b"{}",
                         *([b',"profileId":', orjson.dumps(profile_id)] if profile_id else []),
                         *([b',"locale":', orjson.dumps(locale)] if locale else []), b"}"])
        rendered = await api.post(f"/events/{event_id}/message/preview", content=body)
        context["rendered"] = rendered
        if channel == "email":
            token = secrets.token_urlsafe(18)
            _FRAMES[token] = (session.tenant, rendered["parts"].get("html", ""))
            context["frame"] = f"/preview-frame/{token}"
        if channel == "sms":
            context["shape"] = sms_shape(rendered["parts"].get("text", ""))
    except FormProblem as problem:
        context["errors"] = {problem.field: problem.why}
    except ApiRefusal as refused:
        context["errors"] = (field_errors(refused.fields, "template") or refused.fields
                             or {"preview": refused.message})
    return context


@router.get("/preview-frame/{token}")
async def preview_frame(session: SessionDep, token: Annotated[str, Path(max_length=40)]
                        ) -> Response:
    found = _FRAMES.get(token)
    if found is None or found[0] != session.tenant:
        return HTMLResponse("<p>This preview has expired: type in the editor to render it"
                            " again.</p>", status_code=404,
                            headers={"content-security-policy": FRAME_CSP})
    return HTMLResponse(found[1], headers={"content-security-policy": FRAME_CSP,
                                           "cache-control": "no-store"})


@router.post("/events/{event_id}/message/save")
async def save_message(request: Request, session: SessionDep, api: Api, form: Form,
                       event_id: EventId) -> Response:
    channel = text(form, "channel")
    if channel not in CHANNEL_PARTS:
        raise HTTPException(422, "channel: unknown")
    raw = {part: str(form.get(f"template.{part}") or "") for part in CHANNEL_PARTS[channel]}
    try:
        parts = message_parts(form, channel)
        latest = (await api.get(f"/events/{event_id}/message"))["versions"]
        variants = (latest[0]["template"].get("variants") if latest else None)
        await api.put(f"/events/{event_id}/message",
                      json=parts | ({"variants": variants} if variants else {}))
    except FormProblem as problem:
        return await _editor(request, session, api, event_id, parts=raw, status=422,
                             errors={problem.field.removeprefix("template."): problem.why},
                             error="Not saved: see the part marked below.")
    except ApiRefusal as refused:
        return await _editor(request, session, api, event_id, parts=raw, status=422,
                             errors=refused.fields,
                             error=f"Not saved: {refused.message}")
    return await _editor(request, session, api, event_id,
                         notice="Draft saved. Publish it to send it.")


@router.post("/events/{event_id}/message/proof")
async def send_proof(request: Request, session: SessionDep, api: Api, form: Form,
                     event_id: EventId) -> Response:
    body: dict[str, Any] = {"profileId": text(form, "profileId")}
    if locale := text(form, "locale"):
        body["locale"] = locale
    try:
        sent = await api.post(f"/events/{event_id}/message/proof", json=body)
        outcome = {"notice": f"Proof of version {sent['version']} sent to {sent['sentTo']}."}
    except ApiRefusal as refused:
        outcome = {"error": f"No proof sent: {refused.message}"}
    if is_htmx(request):
        return render(request, "_outcome.html", session, **outcome)
    return await _editor(request, session, api, event_id, **outcome)


_MESSAGE_ACTIONS = {"publish": "Published: events now send this version.",
                    "unpublish": "Unpublished: events end routingFailed until a version is"
                                 " published.",
                    "pause": "Paused: events are accepted and held until you resume.",
                    "resume": "Resumed: held events are sent within about a second."}


@router.post("/events/{event_id}/message/{action}")
async def message_action(request: Request, session: SessionDep, api: Api, form: Form,
                         event_id: EventId, action: str) -> Response:
    if action not in _MESSAGE_ACTIONS:
        raise HTTPException(404, "no such action")
    try:
        await api.post(f"/events/{event_id}/message/{action}")
    except ApiRefusal as refused:
        return await _editor(request, session, api, event_id, error=refused.message,
                             status=409)
    return await _editor(request, session, api, event_id, notice=_MESSAGE_ACTIONS[action])


@router.get("/events/{event_id}/message/compare")
async def compare_versions(request: Request, session: SessionDep, api: Api,
                           event_id: EventId, a: Annotated[int, Query(ge=1)],
                           b: Annotated[int, Query(ge=1)]) -> Response:
    message = await api.get(f"/events/{event_id}/message")
    by_number = {v["version"]: v for v in message["versions"]}
    if a not in by_number or b not in by_number:
        raise HTTPException(404, "no such version")
    left, right = by_number[a], by_number[b]
    rows = []
    for part in CHANNEL_PARTS[message["channel"]]:
        one, two = (_part_text(v["template"].get(part, "")) for v in (left, right))
        diff = list(difflib.unified_diff(one.splitlines(), two.splitlines(), f"version {a}",
                                         f"version {b}", lineterm="", n=1))
        rows.append({"part": part, "left": one, "right": two, "changed": one != two,
                     "diff": "\n".join(diff)})
    return render(request, "compare.html", session, title=f"{event_id}: v{a} and v{b}",
                  event_id=event_id, left=left, right=right, rows=rows)


def _part_text(value: Any) -> str:
    return value if isinstance(value, str) else exact_json_text(value)
