"""``POST /v1/journey-events/{eventId}`` (an ``ingest`` key): a journey event, its payload
typed by its type's fields (a 422 names the field), identified by the type's condition and
matched to its profile by the type's profile key, then written to
``parcours.journey-events.v1`` keyed by the profile id (202 once the broker has it).

A record that is not an event of the type (its condition does not hold) or names no
profile is answered 202 with ``accepted: false`` and the reason, and counted: never an
error, nothing written.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any

from aiokafka.errors import KafkaError
from fastapi import APIRouter, HTTPException, Path, Request
from pydantic import BaseModel, ConfigDict, ValidationError

from services.gateway.metrics import JOURNEY_EVENTS
from services.gateway.routes import IngestCaller
from services.gateway.wiring import Gateway
from shared.adapters.kafka import encode
from shared.adapters.postgres import DB_UNAVAILABLE
from shared.domain.exact import validate_exact
from shared.domain.journeys.journey_events import (
    JOURNEY_EVENT_ID,
    JourneyEventRecord,
    identify,
)
from shared.topics import JOURNEY_EVENTS as TOPIC

router = APIRouter(prefix="/v1/journey-events", tags=["journey events"])
MAX_BODY_BYTES = 256 * 1024


class JourneyEventAccepted(BaseModel):
    # Titles as the API spells the fields (pydantic's default would say "Eventid").
    model_config = ConfigDict(field_title_generator=lambda name, _info: name)

    eventId: str
    accepted: bool
    profileId: str | None = None
    reason: str | None = None


@router.post("/{event_id}", status_code=202, response_model=JourneyEventAccepted,
             response_model_exclude_none=True)
async def post_journey_event(
        event_id: Annotated[str, Path(pattern=JOURNEY_EVENT_ID)], request: Request,
        caller: IngestCaller) -> JourneyEventAccepted:
    gateway: Gateway = request.app.state.gateway
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise HTTPException(413, f"the body is over {MAX_BODY_BYTES} bytes")
    try:
        compiled = (await gateway.journey_event_types.get(caller.tenant)).get(event_id)
    except DB_UNAVAILABLE:
        raise HTTPException(503, "the event store is unavailable; nothing was accepted,"
                                 " retry", headers={"Retry-After": "1"}) from None
    if compiled is None:
        raise HTTPException(404, f"no journey event {event_id!r}: define it with"
                                 f" PUT /admin/v1/journey-events/{event_id}")
    try:
        payload = validate_exact(compiled.model, body)
    except ValidationError as error:
        raise HTTPException(422, [{**e, "loc": ["body", *e["loc"]]} for e in error.errors(
            include_url=False, include_input=False, include_context=False)]) from None
    typed: dict[str, Any] = payload.model_dump(by_alias=True, exclude_none=True)
    profile_id = identify(compiled.event_type, compiled.condition, typed, datetime.now(UTC))
    if profile_id is None:
        JOURNEY_EVENTS.labels("ignored").inc()
        return JourneyEventAccepted(eventId=event_id, accepted=False, reason=(
            "not an event of this type: its condition does not hold, or it names no"
            f" profile in {compiled.event_type.profile_key!r}"))
    record = JourneyEventRecord(tenant=caller.tenant, eventId=event_id, profileId=profile_id,
                                payload=payload.model_dump(mode="json", by_alias=True,
                                                           exclude_none=True),
                                acceptedAt=time.time())
    try:
        await gateway.producer.deliver(TOPIC.name, encode(record.model_dump(mode="json")),
                                       profile_id.encode())
    except KafkaError:
        raise HTTPException(503, "Kafka is unavailable; nothing was accepted, retry",
                            headers={"Retry-After": "1"}) from None
    JOURNEY_EVENTS.labels("accepted").inc()
    return JourneyEventAccepted(eventId=event_id, accepted=True, profileId=profile_id)
