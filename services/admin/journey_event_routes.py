"""Journey event types through the admin API: typed fields, an identifying condition on
the payload (``event.<field>``) and the field naming the profile. A 422 names the field,
inside the condition too (``["body", "condition", "value"]``).

    PUT    /admin/v1/journey-events/{eventId}   create (201) or replace (200)
    GET    /admin/v1/journey-events             the tenant's types
    GET    /admin/v1/journey-events/{eventId}
    GET    /admin/v1/journey-events/{eventId}/schema   the JSON Schema of its payload
    DELETE /admin/v1/journey-events/{eventId}   (204)

Each type answers with where it is posted (``endpoint``) and where its JSON Schema is.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Path, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from services.admin.dependencies import AdminCaller, Db, body_errors
from shared.adapters import journey_event_store as store
from shared.domain.conditions import ConditionError
from shared.domain.journeys.journey_events import (
    JOURNEY_EVENT_ID,
    JourneyEventType,
    checked_condition,
    payload_model,
)

router = APIRouter(prefix="/admin/v1/journey-events", tags=["journeys"])
EventId = Annotated[str, Path(pattern=JOURNEY_EVENT_ID)]


class JourneyEventOut(BaseModel):
    eventId: str
    definition: dict[str, Any]
    endpoint: str  # POST it here (an ingest key), or produce it to Kafka signed
    jsonSchema: str  # the payload's JSON Schema
    createdAt: datetime
    updatedAt: datetime


def _out(row: dict[str, Any]) -> JourneyEventOut:
    event_id = row["event_id"]
    return JourneyEventOut(eventId=event_id, definition=row["definition"],
                           endpoint=f"/v1/journey-events/{event_id}",
                           jsonSchema=f"/admin/v1/journey-events/{event_id}/schema",
                           createdAt=row["created_at"], updatedAt=row["updated_at"])


def _parsed(event_id: str, body: dict[str, Any]) -> JourneyEventType:
    try:
        event_type = JourneyEventType.model_validate({**body, "eventId": body.get(
            "eventId", event_id)})
    except ValidationError as error:
        raise body_errors(error) from None
    if event_type.event_id != event_id:
        raise HTTPException(422, f"the body's eventId {event_type.event_id!r} is not the"
                                 f" path's {event_id!r}")
    try:
        checked_condition(event_type)
    except ConditionError as error:
        raise RequestValidationError([{"type": "condition", "msg": p.msg,
                                       "loc": ("body", "condition", *p.loc)}
                                      for p in error.problems]) from None
    return event_type


@router.put("/{event_id}", response_model=JourneyEventOut)
async def put_journey_event(event_id: EventId, caller: AdminCaller, connection: Db,
                            response: Response,
                            body: Annotated[dict[str, Any], Body(description="the type")]
                            ) -> JourneyEventOut:
    row, created = await store.put(connection, caller.tenant, _parsed(event_id, body))
    response.status_code = 201 if created else 200
    return _out(row)


@router.get("", response_model=list[JourneyEventOut])
async def list_journey_events(caller: AdminCaller, connection: Db) -> list[JourneyEventOut]:
    return [_out(r) for r in await store.list_types(connection, caller.tenant)]


@router.get("/{event_id}", response_model=JourneyEventOut)
async def get_journey_event(event_id: EventId, caller: AdminCaller, connection: Db
                            ) -> JourneyEventOut:
    row = await store.get(connection, caller.tenant, event_id)
    if row is None:
        raise HTTPException(404, f"no journey event {event_id!r}: create it with PUT")
    return _out(row)


@router.get("/{event_id}/schema")
async def journey_event_schema(event_id: EventId, caller: AdminCaller, connection: Db
                               ) -> dict[str, Any]:
    """The JSON Schema of the payload, as the gateway and the engine validate it."""
    row = await store.get(connection, caller.tenant, event_id)
    if row is None:
        raise HTTPException(404, f"no journey event {event_id!r}: create it with PUT")
    event_type = JourneyEventType.model_validate(row["definition"])
    return payload_model(event_type).model_json_schema(by_alias=True)


@router.delete("/{event_id}", status_code=204)
async def delete_journey_event(event_id: EventId, caller: AdminCaller, connection: Db
                               ) -> None:
    if not await store.delete(connection, caller.tenant, event_id):
        raise HTTPException(404, f"no journey event {event_id!r}")
