"""The answers of an event's status and its message's trace, as the ingestion API gives
them (``GET /v1/events/{eventId}/{pKey}`` and ``…/trace``, services/gateway/routes.py) and
the admin API's lookup by pKey alone (``GET /admin/v1/statuses/{pKey}``,
services/admin/status_routes.py): one set of models, so both answer the same shape."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from shared.adapters.status_store import StatusRow
from shared.domain.status import Status


class _Api(BaseModel):
    # Titles are the field names as the API spells them (pydantic's default: "Pkey").
    model_config = ConfigDict(field_title_generator=lambda name, _info: name)


class EventStatus(_Api):
    pKey: str
    eventId: str
    status: Status
    reason: str | None = None
    updatedAt: str | None = None


class TraceStep(_Api):
    at: str
    stage: str  # decided, control, handover
    outcome: str
    rule: str | None = None
    reason: str | None = None
    verdicts: list[dict[str, Any]] | None = None  # every rule's, when decided
    detail: dict[str, Any] | None = None  # what a later stage noted (a reaction's id)


class MessageTrace(_Api):
    pKey: str
    eventId: str
    messageId: str
    steps: list[TraceStep]


def event_status(pkey: str, event_id: str, row: StatusRow | None, unseen: str | None = None
                 ) -> EventStatus:
    """The status a row says; no row: issued (or keyed), not yet recorded by any stage."""
    if row is None:
        return EventStatus(pKey=pkey, eventId=event_id, status=Status.PENDING, reason=unseen)
    return EventStatus(pKey=pkey, eventId=event_id, status=row.status,
                       reason=row.reason, updatedAt=row.updated_at)


def message_trace(pkey: str, event_id: str, message_id: str, steps: list[dict[str, Any]]
                  ) -> MessageTrace:
    """``contact_history.trace``'s steps as the API shows them."""
    return MessageTrace(pKey=pkey, eventId=event_id, messageId=message_id,
                        steps=[TraceStep.model_validate(step) for step in steps])
