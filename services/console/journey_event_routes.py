"""Journey event types (JEV…): what a journey waits for, as the seed's ``JEVpurchase``
identified by ``purchaseMessage == "thank you"`` (``/admin/v1/journey-events``). The
definition (typed fields, the identifying condition, the field naming the profile) is
edited as JSON, with a skeleton to start from; the API's 422 is shown beside it, naming
the place in the definition."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request
from fastapi.responses import RedirectResponse, Response

from services.console.api import ApiRefusal
from services.console.forms import FormProblem, exact_json_text, json_text, text
from services.console.web import Api, Form, SessionDep, render

router = APIRouter()
EventId = Annotated[str, Path(pattern=r"^JEV[A-Za-z0-9_]{1,61}$")]
SKELETON = {"fields": [{"id": "customerId", "type": "string", "required": True},
                       {"id": "purchaseMessage", "type": "string"}],
            "condition": {"path": "event.purchaseMessage", "op": "eq", "value": "thank you"},
            "profileKey": "customerId"}


@router.get("/journey-events")
async def list_types(request: Request, session: SessionDep, api: Api) -> Response:
    types = await api.get("/journey-events")
    return render(request, "journey_events.html", session, title="Journey events",
                  types=types)


def _page(request: Request, session: SessionDep, *, event_id: str, definition: str,
          creating: bool, error: str | None = None, status: int = 200,
          endpoint: str | None = None) -> Response:
    return render(request, "journey_event.html", session, status=status,
                  title=event_id or "New journey event", event_id=event_id,
                  definition=definition, creating=creating, error=error, endpoint=endpoint)


@router.get("/journey-events/new")
async def new_type(request: Request, session: SessionDep) -> Response:
    return _page(request, session, event_id="", definition=exact_json_text(SKELETON),
                 creating=True)


@router.get("/journey-events/{event_id}")
async def show_type(request: Request, session: SessionDep, api: Api, event_id: EventId
                    ) -> Response:
    try:
        found = await api.get(f"/journey-events/{event_id}")
    except ApiRefusal as refused:
        raise HTTPException(404, refused.message) from refused
    definition = {k: v for k, v in found["definition"].items() if k != "eventId"}
    return _page(request, session, event_id=event_id, creating=False,
                 definition=exact_json_text(definition), endpoint=found["endpoint"])


@router.post("/journey-events")
async def save_type(request: Request, session: SessionDep, api: Api, form: Form
                    ) -> Response:
    event_id, raw = text(form, "eventId"), str(form.get("definition") or "")
    creating = form.get("creating") == "1"
    try:
        if not event_id.startswith("JEV") or "/" in event_id:
            raise FormProblem("eventId", "a journey event's id starts with JEV")
        definition: Any = json_text(raw, "definition")
        if not isinstance(definition, dict):
            raise FormProblem("definition", "an object: fields, condition, profileKey")
        await api.put(f"/journey-events/{event_id}", json={**definition, "eventId": event_id})
    except FormProblem as problem:
        return _page(request, session, event_id=event_id, definition=raw, creating=creating,
                     status=422, error=f"Not saved: {problem.field}: {problem.why}")
    except ApiRefusal as refused:
        return _page(request, session, event_id=event_id, definition=raw, creating=creating,
                     status=422, error=f"Not saved: {refused.message}")
    return RedirectResponse(f"/journey-events/{event_id}", status_code=303)


@router.post("/journey-events/{event_id}/delete")
async def delete_type(request: Request, session: SessionDep, api: Api, form: Form,
                      event_id: EventId) -> Response:
    try:
        await api.delete(f"/journey-events/{event_id}")
    except ApiRefusal as refused:
        raise HTTPException(409 if refused.status == 409 else 404, refused.message
                            ) from refused
    return RedirectResponse("/journey-events", status_code=303)
