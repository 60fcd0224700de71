"""Journeys: the list with each journey's state and versions, and a journey's page: the
journey drawn as a graph (``journey_graph``: laid out on the server, drawn as SVG, no
script) beside its JSON, re-drawn as the JSON changes (debounced; invalid JSON says where)
and every 3 seconds with each node's live counts (entered, waiting, passed, exited) as a
table too; validation's errors and warnings pinned to their nodes; test mode on test
profiles with each one's step log; publish, pause, resume, stop; the versions."""

from __future__ import annotations

import asyncio
import json
import re
from decimal import Decimal
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from services.console.api import ApiRefusal, Caller
from services.console.forms import exact_json_text, text
from services.console.journey_graph import (
    ENTRY,
    Drawing,
    json_problem,
    layout,
    shape_problems,
    short,
)
from services.console.web import Api, Form, SessionDep, render
from shared.domain.journeys.definition import parse_definition

router = APIRouter()

JourneyId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")]
MAX_DEFINITION = 200_000  # characters of the JSON typed
VERSIONS_LISTED = 100  # journeys of the list whose versions are asked for
COUNT_KEYS = ("entered", "waiting", "passed", "exited")
DETAIL_KEYS = ("actionSent", "actionExcluded", "deferred", "reaction", "event", "timedOut",
               "heldOut")
SKELETON = {"name": "", "entry": {"type": "audience", "audienceId": "", "next": "mail"},
            "nodes": [{"id": "mail", "type": "email", "message": "JMS…", "next": "done"},
                      {"id": "done", "type": "end"}]}


_FIRST = ("id", "name", "type", "entry", "nodes", "message", "branches", "reaction", "event",
          "timeout", "after", "next")


def _ordered(data: Any) -> Any:
    """Keys as people read a journey (id, type, …, next), not as PostgreSQL stores them."""
    if isinstance(data, dict):
        keys = sorted(data, key=lambda k: (_FIRST.index(k) if k in _FIRST else len(_FIRST)))
        return {k: _ordered(data[k]) for k in keys}
    if isinstance(data, list):
        return [_ordered(item) for item in data]
    return data


def _pretty(data: Any) -> str:
    return exact_json_text(_ordered(data))  # a decimal with its digits (19.90)


def _state_line(versions: list[dict[str, Any]]) -> str:
    """``v3 live · v2 test finished`` (newest first, at most four)."""
    return " · ".join(f"v{v['version']} {v['mode'] + ' ' if v['mode'] == 'test' else ''}"
                      f"{v['state']}" for v in versions[:4]) or "no version yet"


@router.get("/journeys")
async def list_journeys(request: Request, session: SessionDep, api: Api) -> Response:
    journeys = await api.get("/journeys")
    journeys.sort(key=lambda j: j["updatedAt"], reverse=True)

    async def versions_of(journey_id: str) -> list[dict[str, Any]]:
        try:
            found: list[dict[str, Any]] = await api.get(f"/journeys/{journey_id}/versions")
            return found
        except ApiRefusal:
            return []

    versions: list[list[dict[str, Any]] | None] = list(await asyncio.gather(
        *(versions_of(j["journeyId"]) for j in journeys[:VERSIONS_LISTED])))
    versions += [None] * (len(journeys) - len(versions))  # past the first 100: not asked
    rows = [{**j, "versions": v, "versions_line": _state_line(v) if v else ""}
            for j, v in zip(journeys, versions, strict=True)]
    return render(request, "journeys.html", session, title="Journeys", journeys=rows)


@router.get("/journeys/new")
async def new_journey(request: Request, session: SessionDep) -> Response:
    return render(request, "journey_new.html", session, title="New journey", journey_id="",
                  definition=_pretty(SKELETON), error=None)


@router.post("/journeys/new")
async def create_journey(request: Request, session: SessionDep, api: Api, form: Form
                         ) -> Response:
    journey_id = text(form, "journeyId")
    raw = str(form.get("definition") or "")
    try:
        body = json.loads(raw, parse_float=Decimal)
        if not isinstance(body, dict):
            raise ValueError("the definition is a JSON object: {\"entry\": …, \"nodes\": […]}")
        await api.put(f"/journeys/{journey_id}", json={**body, "id": journey_id})
        return RedirectResponse(f"/journeys/{journey_id}", status_code=303)
    except ValueError as error:
        why = (json_problem(raw) or str(error))
    except ApiRefusal as refused:
        why = refused.message
    return render(request, "journey_new.html", session, status=422, title="New journey",
                  journey_id=journey_id, definition=raw, error=f"Not created: {why}")


# --- one journey ----------------------------------------------------------------------------

async def _counts(api: Caller, journey_id: str, version: int | None
                  ) -> dict[str, Any] | None:
    try:
        found: dict[str, Any] = await api.get(f"/journeys/{journey_id}/counts",
                                              version=version)
        return found
    except ApiRefusal:
        return None  # no version yet


_AUDIENCE_ID = re.compile(r"^aud_[A-Za-z0-9_-]{1,64}$")


async def _audience_names(api: Caller, definition: dict[str, Any]) -> dict[str, str]:
    """The entry's audience by its name (the box shows it), when it exists."""
    entry = definition.get("entry")
    audience_id = entry.get("audienceId") if isinstance(entry, dict) else None
    if not isinstance(audience_id, str) or not _AUDIENCE_ID.match(audience_id):
        return {}  # typed in the JSON: only an id the admin API could have made
    try:
        audience = await api.get(f"/audiences/{audience_id}")
    except ApiRefusal:
        return {}  # not (yet) an audience: validation says so
    return {audience_id: audience["name"]}


async def _graph_context(api: Caller, journey_id: str, definition: dict[str, Any],
                         version: int | None, saved: dict[str, Any] | None = None
                         ) -> dict[str, Any]:
    """What the graph fragment draws: the layout of ``definition``, the problems of its
    shape (here) and of the saved draft (the admin's validation), the counts of the
    version."""
    drawing = layout(definition, await _audience_names(api, definition))
    try:
        parse_definition({**definition, "id": journey_id})
        shape: list[tuple[str, str]] = []
    except ValidationError as error:
        shape = shape_problems([dict(e) for e in error.errors(include_url=False)],
                               definition)
    if saved is None:
        saved = await api.get(f"/journeys/{journey_id}")
    checked, counts = await asyncio.gather(api.post(f"/journeys/{journey_id}/validate"),
                                           _counts(api, journey_id, version))
    unsaved = _comparable(definition, journey_id) != _comparable(saved.get("definition") or {},
                                                                  journey_id)
    problems = [{"node": p["node"], "severity": p["severity"], "message": p["message"]}
                for p in checked.get("problems", [])]
    problems += [{"node": node, "severity": "error", "message": f"shape: {message}"}
                 for node, message in shape]
    return _graph_parts(journey_id, drawing, problems, counts) | {
        "unsaved": unsaved, "publishable": checked.get("publishable") and not shape}


def _comparable(definition: dict[str, Any], journey_id: str) -> Any:
    return {**definition, "id": definition.get("id", journey_id)}


def _graph_parts(journey_id: str, drawing: Drawing, problems: list[dict[str, Any]],
                 counts: dict[str, Any] | None) -> dict[str, Any]:
    by_node: dict[str, list[dict[str, Any]]] = {}
    drawn = {b.id for b in drawing.boxes}
    for problem in problems:
        by_node.setdefault(problem["node"] if problem["node"] in drawn else "", []
                           ).append(problem)
    node_counts = {n["node"]: n for n in (counts or {}).get("nodes", [])}
    return {"journey_id": journey_id, "drawing": drawing, "problems": problems,
            "by_node": by_node, "counts": counts, "node_counts": node_counts,
            "count_keys": COUNT_KEYS, "detail_keys": DETAIL_KEYS, "short": short,
            "entry_id": ENTRY, "described": " → ".join(
                f"{a.source} to {a.target}{f' ({a.label})' if a.label else ''}"
                for a in drawing.arrows)}


async def _page(request: Request, session: SessionDep, api: Caller, journey_id: str, *,
                version: int | None = None, raw: str | None = None,
                notice: str | None = None, error: str | None = None, status: int = 200
                ) -> Response:
    try:
        journey = await api.get(f"/journeys/{journey_id}")
    except ApiRefusal as refused:
        raise HTTPException(404, refused.message) from refused
    versions, profiles = await asyncio.gather(
        api.get(f"/journeys/{journey_id}/versions"), api.get("/test-profiles"))
    stored = journey.get("definition") or {}
    definition, json_error = stored, None
    if raw is not None:
        json_error = json_problem(raw)
        parsed = json.loads(raw, parse_float=Decimal) if json_error is None else None
        definition = parsed if isinstance(parsed, dict) else stored
    graph = await _graph_context(api, journey_id, definition, version, journey)
    running = {v["state"] for v in versions if v["mode"] == "live"}
    testing = any(v["mode"] == "test" and v["state"] in ("live", "paused") for v in versions)
    return render(request, "journey.html", session, status=status,
                  title=journey["name"] or journey_id, journey=journey, versions=versions,
                  profiles=profiles, version=version,
                  definition_text=raw if raw is not None else _pretty(stored),
                  json_error=json_error, running=running, testing=testing, notice=notice,
                  error=error, **graph)


@router.get("/journeys/{journey_id}")
async def show_journey(request: Request, session: SessionDep, api: Api,
                       journey_id: JourneyId,
                       version: Annotated[int | None, Query(ge=1)] = None) -> Response:
    return await _page(request, session, api, journey_id, version=version)


def _version_of(form: Any) -> int | None:
    value = text(form, "version")
    return int(value) if value.isdigit() and int(value) > 0 else None


@router.post("/journeys/{journey_id}/graph")
async def graph(request: Request, session: SessionDep, api: Api, form: Form,
                journey_id: JourneyId) -> Response:
    """The graph of the JSON as typed (an htmx fragment), with the problems and the
    counts; JSON that does not parse keeps the last graph and says where (out of band)."""
    raw = str(form.get("definition") or "")[:MAX_DEFINITION]
    problem = json_problem(raw)
    parsed = json.loads(raw, parse_float=Decimal) if problem is None else None
    if not isinstance(parsed, dict):
        why = problem or "the definition is a JSON object: {\"entry\": …, \"nodes\": […]}"
        return render(request, "_journey_json_error.html", session, json_error=why,
                      headers={"HX-Reswap": "none"})
    context = await _graph_context(api, journey_id, parsed, _version_of(form))
    return render(request, "_journey_graph.html", session, json_error=None, oob=True,
                  **context)


@router.post("/journeys/{journey_id}/save")
async def save(request: Request, session: SessionDep, api: Api, form: Form,
               journey_id: JourneyId) -> Response:
    raw = str(form.get("definition") or "")[:MAX_DEFINITION]
    version = _version_of(form)
    problem = json_problem(raw)
    parsed = json.loads(raw, parse_float=Decimal) if problem is None else None
    if not isinstance(parsed, dict):
        return await _page(request, session, api, journey_id, version=version, raw=raw,
                           status=422, error=f"Not saved: {problem or 'not a JSON object'}")
    try:
        saved = await api.put(f"/journeys/{journey_id}", json={**parsed, "id": journey_id})
    except ApiRefusal as refused:
        where = shape_problems([{"loc": key.split("."), "msg": why}
                                for key, why in refused.fields.items()], parsed)
        message = "; ".join(f"{node}: {why}" for node, why in where) or refused.message
        return await _page(request, session, api, journey_id, version=version, raw=raw,
                           status=422, error=f"Not saved: {message}")
    ok = "publishable" if saved.get("publishable") else "not publishable yet: see the problems"
    return await _page(request, session, api, journey_id, version=version,
                       notice=f"Draft saved, {ok}.")


_ACTIONS = {"publish": ("/publish", "Published: a new live version; profiles enter it."),
            "pause": ("/pause", "Paused: instances hold where they are, timers wait."),
            "resume": ("/resume", "Resumed: timers due meanwhile fire now."),
            "stop": ("/stop", "Stopped: every waiting instance ended."),
            "test-stop": ("/test/stop", "The test run was stopped.")}


@router.post("/journeys/{journey_id}/test")
async def start_test(request: Request, session: SessionDep, api: Api, form: Form,
                     journey_id: JourneyId) -> Response:
    profiles = [p for p in form.getlist("profiles") if isinstance(p, str) and p]
    speed_text = text(form, "speed") or "1440"
    try:
        speed = float(speed_text)
    except ValueError:
        return await _page(request, session, api, journey_id, status=422,
                           error=f"Speed {speed_text!r} is not a number (1440: a day in a"
                                 " minute).")
    if not profiles:
        return await _page(request, session, api, journey_id, status=422,
                           error="Choose one test profile or more for the test run.")
    try:
        started = await api.post(f"/journeys/{journey_id}/test",
                                 json={"profiles": profiles, "speed": speed})
    except ApiRefusal as refused:
        return await _page(request, session, api, journey_id, status=409 if
                           refused.status == 409 else 422,
                           error=f"No test run: {refused.message}")
    return await _page(request, session, api, journey_id, version=started["version"],
                       notice=f"Test run started: version {started['version']},"
                              f" {len(profiles)} test profile(s), waits divided by {speed:g}.")


@router.post("/journeys/{journey_id}/{action}")
async def lifecycle(request: Request, session: SessionDep, api: Api, form: Form,
                    journey_id: JourneyId, action: str) -> Response:
    if action not in _ACTIONS:
        raise HTTPException(404, "no such action")
    path, done = _ACTIONS[action]
    try:
        answer = await api.post(f"/journeys/{journey_id}{path}")
    except ApiRefusal as refused:
        message = refused.message
        if refused.status == 422 and "problems" in str(refused.message):
            message = "the draft has errors: see the problems on the graph"
        return await _page(request, session, api, journey_id, status=409,
                           error=f"Not done: {message}")
    version = answer.get("version") if isinstance(answer, dict) else None
    return await _page(request, session, api, journey_id,
                       version=version if action == "publish" else None, notice=done)


@router.get("/journeys/{journey_id}/log")
async def step_log(request: Request, session: SessionDep, api: Api, journey_id: JourneyId,
                   profile: Annotated[str, Query(max_length=128)] = "") -> Response:
    """A profile's instances of the journey with their steps (the test mode's log)."""
    found = None
    error = None
    if profile:
        try:
            found = await api.get(f"/journeys/{journey_id}/instances/{quote(profile, safe='')}")
        except ApiRefusal as refused:
            error = refused.message
    return render(request, "_journey_log.html", session, profile=profile, found=found,
                  error=error)
