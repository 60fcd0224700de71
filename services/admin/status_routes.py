"""An event's status and its message's trace by pKey alone, for the console's event
lookup (paste a pKey, see the status, the reason and the trace).

    GET /admin/v1/statuses/{pKey}
    {"pKey": "…", "eventId": "orderShipped", "status": "processed", "reason": null,
     "updatedAt": "…", "trace": {"pKey": "…", "eventId": "…", "messageId": "…",
                                 "steps": [{"at": "…", "stage": "decided", …}, …]}}

The status and the trace are the ingestion API's (``GET /v1/events/{eventId}/{pKey}`` and
``…/trace``: the same models, shared/event_status_api.py), found without the event id:
the status row holds it. A timed pKey (39 characters) names its partition, so that is one
index probe (the primary key (pkey, accepted_day) of one week); another probes each
week's partition (the same as the gateway's read); no index of its own is needed. A pKey
no stage has recorded yet is ``pending`` when the tenant's secret proves it issued it for
one of its configured events (the HMAC checked against each event id, as the gateway
checks the one in its path), else a 404 like a pKey of another tenant's or one never
issued. A status past the tenant's retention is the gateway's 404 ``expired``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request
from fastapi.responses import JSONResponse
from starlette.responses import Response

from services.admin.dependencies import AdminCaller
from shared.adapters import contact_history
from shared.adapters.status_store import find_status
from shared.domain.events import is_journey_message_id
from shared.domain.partitions import status_expired
from shared.domain.pkeys import pkey_time, verify_pkey
from shared.domain.routing import message_id
from shared.domain.status import TERMINAL
from shared.event_status_api import EventStatus, MessageTrace, event_status, message_trace

router = APIRouter(prefix="/admin/v1/statuses", tags=["operations"])

# What a pKey can be: base32 lower case, 32 characters (derived, or minted before
# migration 040) or 39 (timed): anything else is a 422 naming the path parameter.
PKEY = r"^[a-z2-7]{32}([a-z2-7]{7})?$"
PKey = Annotated[str, Path(pattern=PKEY, description="the pKey a 202 gave, or one derived"
                                                     " from a Kafka producer's eventKey")]


class StatusWithTrace(EventStatus):
    trace: MessageTrace


_NOT_FOUND = {"description": "No event of this tenant's has this pKey (or its status"
                             " expired: then ``status`` is ``expired``)"}


@router.get("/{pkey}", response_model=StatusWithTrace, responses={404: _NOT_FOUND})
async def status_by_pkey(pkey: PKey, request: Request, caller: AdminCaller
                         ) -> StatusWithTrace | Response:
    """The event's status (as ``GET /v1/events/{eventId}/{pKey}`` answers it) with its
    message's trace embedded (as ``…/trace``), by pKey alone; only the caller's tenant's."""
    settings = request.app.state.settings
    found = await find_status(request.app.state.pool, caller.tenant, pkey)
    event_id = found.event_id
    if event_id is None:
        secret = settings.pkey_secret.encode()
        event_id = next((e for e in found.configured if not is_journey_message_id(e)
                         and verify_pkey(secret, caller.tenant, e, pkey)), None)
        if event_id is None:
            raise HTTPException(404, f"no event of this tenant's has the pKey {pkey!r}")
    row = found.row
    if status_expired(row.accepted_day if row else None, row is not None
                      and row.status in TERMINAL, pkey_time(pkey), datetime.now(UTC).date(),
                      found.tenant_days, settings.retention_event_status_days):
        return JSONResponse({"detail": f"the status of {pkey!r} expired: statuses are kept"
                                       " for a retention period", "status": "expired"},
                            status_code=404)
    message = message_id(caller.tenant, pkey)
    steps = await contact_history.trace(request.app.state.pool, caller.tenant, message)
    status = event_status(pkey, event_id, row)
    return StatusWithTrace(**status.model_dump(),
                           trace=message_trace(pkey, event_id, message, steps))


