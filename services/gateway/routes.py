"""HTTP routes of the ingestion API (ACS shape: POST an event, GET its status)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.responses import Response

from services.gateway.ingest import (
    Refused,
    accept_once,
    batch_items,
    item_body,
    new_pkey,
    produce_all,
    produce_dumped,
    timed_pkeys,
    unavailable,
    validate,
    validate_batch,
)
from services.gateway.metrics import EVENTS_ACCEPTED, EVENTS_REJECTED, INGEST_SECONDS
from services.gateway.wiring import MAX_BATCH, Gateway
from shared.adapters import contact_history
from shared.adapters.catalog_store import event_configured
from shared.adapters.kafka import encode
from shared.adapters.postgres import DB_UNAVAILABLE
from shared.adapters.status_store import StatusRow, cancel, read_status_kept
from shared.api_auth import Caller, require
from shared.domain.api_keys import Scope
from shared.domain.events import is_event_id, is_journey_message_id, journey_message_refusal
from shared.domain.lifecycle import PublishedEvent
from shared.domain.partitions import status_expired
from shared.domain.pkeys import derive_pkey, pkey_time, verify_pkey
from shared.domain.routing import message_id
from shared.domain.status import TERMINAL, Status
from shared.event_status_api import EventStatus, MessageTrace, event_status, message_trace

MAX_BODY_BYTES = 256 * 1024
MAX_BATCH_BYTES = 16 * 1024 * 1024

router = APIRouter()


async def get_gateway(request: Request) -> Gateway:  # async: no threadpool hop per request
    gateway: Gateway = request.app.state.gateway
    return gateway


GatewayDep = Annotated[Gateway, Depends(get_gateway)]
IngestCaller = Annotated[Caller, Depends(require(Scope.INGEST))]


class _Api(BaseModel):
    # Titles are the field names as the API spells them (pydantic's default: "Pkey").
    model_config = ConfigDict(field_title_generator=lambda name, _info: name)


class Accepted(_Api):
    pKey: str
    href: str
    status: Status = Status.PENDING


class BatchIn(_Api):
    model_config = ConfigDict(extra="forbid")  # {"events": [...], "colour": 1} is a 422
    events: list[dict[str, Any]] = Field(max_length=MAX_BATCH)


class ItemResult(_Api):
    index: int
    status: int
    pKey: str | None = None
    href: str | None = None
    detail: Any = None


class BatchOut(_Api):
    accepted: int
    refused: int
    results: list[ItemResult]


def _answer(refused: Refused) -> JSONResponse:
    EVENTS_REJECTED.labels(refused.reason).inc()
    headers = {"Retry-After": str(refused.retry_after_s)} if refused.retry_after_s else None
    return JSONResponse({"detail": refused.detail}, status_code=refused.status, headers=headers)


def _no_journey_message(event_id: str) -> None:
    """404 saying why for a journey message (JMS…): the catalog has it, but no event
    reaches it from outside its journeys."""
    if is_journey_message_id(event_id):
        raise HTTPException(404, journey_message_refusal(event_id))


async def _published(gateway: Gateway, tenant: str, event_id: str) -> PublishedEvent:
    if is_journey_message_id(event_id):
        raise Refused(404, journey_message_refusal(event_id), "unknown_event")
    try:
        published = await gateway.catalog.get(tenant, event_id)
    except DB_UNAVAILABLE as error:
        raise unavailable("the configuration store", "db_unavailable") from error
    if published is None:
        raise Refused(404, f"event {event_id!r} is not published", "unknown_event")
    return published


async def _body(request: Request, limit: int) -> bytes:
    body = await request.body()
    if len(body) > limit:
        raise Refused(413, f"body is {len(body)} bytes; the limit is {limit}", "too_large")
    return body


class RequestRoute(APIRoute):
    """A route whose endpoint takes the ``Request`` and returns its ``Response``: FastAPI
    solves no dependencies and serialises no response model per request (a third of the
    gateway's CPU under load, measured with py-spy). The OpenAPI entry still comes from the
    route's ``response_model``, ``responses`` and ``openapi_extra``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler: Callable[[Request], Coroutine[Any, Any, Response]] = self.endpoint
        return handler


def client_address(request: Request) -> str | None:
    client = request.scope.get("client")
    return client[0] if client else None


MAX_IDEMPOTENCY_KEY = 255
NOT_SEEN = ("this eventKey has not been seen yet: no record with it has been handled so far;"
            " if this lasts, check the key")
_VALIDATION_ERROR = {"description": "Validation Error", "content": {"application/json": {
    "schema": {"$ref": "#/components/schemas/HTTPValidationError"}}}}
_POST_EVENT_PARAMETERS = [
    {"name": "event_id", "in": "path", "required": True,
     "schema": {"type": "string", "title": "Event Id"}},
    {"name": "idempotency-key", "in": "header", "required": False,
     "schema": {"anyOf": [{"type": "string", "minLength": 1,
                           "maxLength": MAX_IDEMPOTENCY_KEY},
                          {"type": "null"}], "title": "Idempotency-Key"}},
]


def _bad_idempotency_key(value: str) -> JSONResponse:
    """FastAPI's own 422 for a header outside its min_length or max_length: an empty key
    would otherwise be no key, and a retried request a second event."""
    EVENTS_REJECTED.labels("invalid").inc()
    if value:
        kind, msg, ctx = ("string_too_long",
                          f"String should have at most {MAX_IDEMPOTENCY_KEY} characters",
                          {"max_length": MAX_IDEMPOTENCY_KEY})
    else:
        kind, msg, ctx = "string_too_short", "String should have at least 1 character", {
            "min_length": 1}
    return JSONResponse({"detail": [{"type": kind, "loc": ["header", "idempotency-key"],
                                     "msg": msg, "input": value, "ctx": ctx}]}, status_code=422)


_UNSUPPORTED = Refused(415, "send the event as JSON: content-type: application/json",
                       "unsupported_media_type")


def is_json(content_type: str | None) -> bool:
    """``application/json`` (any case, any parameters) or a ``+json`` type."""
    if content_type == "application/json":  # what nearly every client sends: no parsing
        return True
    media = (content_type or "").partition(";")[0].strip().lower()
    return media == "application/json" or (media.startswith("application/")
                                           and media.endswith("+json"))


async def post_event(request: Request) -> Response:
    """Accepts one event; 202 only once Kafka acknowledged it. With an
    ``Idempotency-Key``, repeating the request returns the same pKey (one message)."""
    started = time.perf_counter()
    event_id: str = request.path_params["event_id"]
    gateway: Gateway = request.app.state.gateway
    headers = request.headers
    caller = await gateway.authenticator.authenticate(headers.get("authorization"),
                                                      Scope.INGEST, client_address(request))
    if not is_json(headers.get("content-type")):
        return _answer(_UNSUPPORTED)
    idempotency_key = headers.get("idempotency-key")
    if idempotency_key is not None and not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY:
        return _bad_idempotency_key(idempotency_key)
    try:
        body = await _body(request, MAX_BODY_BYTES)
        published = await _published(gateway, caller.tenant, event_id)
        parsed = validate(gateway, published, body)
        if idempotency_key:
            pkey = await accept_once(gateway, caller.tenant, event_id, parsed, idempotency_key)
        else:
            pkey = new_pkey(gateway, caller.tenant, event_id)
            [ok] = await produce_all(gateway, caller.tenant, event_id, [(parsed, pkey)])
            if not ok:
                raise unavailable("Kafka", "kafka_unavailable")
    except Refused as refused:
        return _answer(refused)
    EVENTS_ACCEPTED.inc()
    INGEST_SECONDS.observe(time.perf_counter() - started)
    return Response(encode({"pKey": pkey, "href": f"/v1/events/{event_id}/{pkey}",
                            "status": "pending"}), 202, media_type="application/json")


router.add_api_route(
    "/v1/events/{event_id}", post_event, methods=["POST"], status_code=202,
    response_model=Accepted, responses={422: _VALIDATION_ERROR, 415: {
        "description": "The body is not JSON (content-type)"}},
    openapi_extra={"parameters": _POST_EVENT_PARAMETERS}, route_class_override=RequestRoute,
)


@router.post("/v1/events/{event_id}/batch", response_model=BatchOut)
async def post_batch(
    event_id: str, request: Request, gateway: GatewayDep, caller: IngestCaller
) -> BatchOut | Response:
    """Up to 1,000 events of one kind; a result per item, in order (202, 413, 422 or 503)."""
    if not is_json(request.headers.get("content-type")):
        return _answer(_UNSUPPORTED)
    try:
        body = await _body(request, MAX_BATCH_BYTES)
        published = await _published(gateway, caller.tenant, event_id)
    except Refused as refused:
        return _answer(refused)
    tenant = caller.tenant
    at_once = validate_batch(gateway.batch_model(published), body)
    if at_once is None or _an_item_too_large(body, at_once[1]):
        # something is refused: item by item, each refusal named
        return await _batch_item_by_item(gateway, tenant, event_id, published, body)
    _, dumped = at_once
    pkeys = timed_pkeys(gateway.settings.pkey_secret.encode(), tenant, event_id,
                        time.time(), os.urandom(12 * len(dumped)))
    acknowledged = await produce_dumped(gateway, tenant, event_id, dumped, pkeys)
    return _batch_answer([_produced_item(index, event_id, pkey, ok) for index, (pkey, ok)
                          in enumerate(zip(pkeys, acknowledged, strict=True))])


def _an_item_too_large(body: bytes, dumped: list[dict[str, Any]]) -> bool:
    """Whether an item is larger than one event may be (``MAX_BODY_BYTES``, the single
    route's limit): only a batch larger than that can hold one."""
    return len(body) > MAX_BODY_BYTES and any(len(encode(d)) > MAX_BODY_BYTES
                                              for d in dumped)


def _too_large_item(index: int, size: int) -> dict[str, Any]:
    """An item no broker request could carry is the caller's to split, not a 503 to retry."""
    EVENTS_REJECTED.labels("too_large").inc()
    return {"index": index, "status": 413, "pKey": None, "href": None,
            "detail": f"this event is {size:,} bytes, over the {MAX_BODY_BYTES:,} an event may"
                      " be (as on POST /v1/events/{eventId}); make its ctx smaller"}


def _produced_item(index: int, event_id: str, pkey: str, acknowledged: bool
                   ) -> dict[str, Any]:
    """An item given to Kafka: 202 once the broker acknowledged it, else 503."""
    if acknowledged:
        return {"index": index, "status": 202, "pKey": pkey,
                "href": f"/v1/events/{event_id}/{pkey}", "detail": None}
    EVENTS_REJECTED.labels("kafka_unavailable").inc()
    return {"index": index, "status": 503, "pKey": None, "href": None,
            "detail": "Kafka is unavailable; retry this item"}


def _batch_answer(results: list[dict[str, Any]]) -> Response:
    """``BatchOut`` as FastAPI would write it, without validating 1,000 ``ItemResult``s."""
    accepted = sum(r["status"] == 202 for r in results)
    EVENTS_ACCEPTED.inc(accepted)
    return Response(encode({"accepted": accepted, "refused": len(results) - accepted,
                            "results": results}), media_type="application/json")


async def _batch_item_by_item(
    gateway: Gateway, tenant: str, event_id: str, published: PublishedEvent, body: bytes
) -> Response:
    try:
        BatchIn.model_validate_json(body)  # count and shape; the items: batch_items
    except ValidationError as error:
        too_many = any(e["type"] == "too_long" for e in error.errors())
        return _answer(Refused(413 if too_many else 422, error.errors(
            include_url=False, include_input=False, include_context=False), "invalid"))
    results: list[dict[str, Any]] = []
    valid: list[tuple[int, BaseModel, str]] = []
    for index, item in enumerate(batch_items(body)):  # numbers as written
        try:
            raw = item_body(item)
            if len(raw) > MAX_BODY_BYTES:
                results.append(_too_large_item(index, len(raw)))
                continue
            parsed = validate(gateway, published, raw)
        except Refused as refused:
            EVENTS_REJECTED.labels(refused.reason).inc()
            results.append({"index": index, "status": 422, "pKey": None, "href": None,
                            "detail": refused.detail})
            continue
        valid.append((index, parsed, new_pkey(gateway, tenant, event_id)))
    acknowledged = await produce_all(gateway, tenant, event_id,
                                     [(parsed, pkey) for _, parsed, pkey in valid])
    results += [_produced_item(index, event_id, pkey, ok)
                for (index, _, pkey), ok in zip(valid, acknowledged, strict=True)]
    results.sort(key=lambda r: int(r["index"]))
    return _batch_answer(results)


@router.get("/v1/events/{event_id}/schema")
async def event_schema(
    event_id: str, gateway: GatewayDep, caller: IngestCaller
) -> dict[str, Any]:
    """The JSON Schema of this published event's request body."""
    _no_journey_message(event_id)
    published = await gateway.catalog.get(caller.tenant, event_id)
    if published is None:
        raise HTTPException(404, f"event {event_id!r} is not published")
    return gateway.ingest_model(published).model_json_schema()


_NOT_FOUND = {"description": "No such event", "content": {"application/json": {
    "schema": {"type": "object", "properties": {"detail": {"type": "string"}}}}}}


async def _status_row(
    gateway: Gateway, tenant: str, event_id: str, pkey: str, *, by_key: bool = False
) -> StatusRow | Response | None:
    """The event's status row; for a key with none, 404 unless its event is configured
    (a second query, only while no stage has recorded the event). A status past the
    tenant's retention (shared/domain/partitions.py) is the 404 ``expired`` response,
    whether its row is still there or its week was dropped: never ``pending`` for ever."""
    row, tenant_days = await read_status_kept(gateway.pool, tenant, event_id, pkey)
    if status_expired(row.accepted_day if row else None,
                      row is not None and row.status in TERMINAL, pkey_time(pkey),
                      datetime.now(UTC).date(), tenant_days,
                      gateway.settings.retention_event_status_days):
        return JSONResponse({"detail": f"the status of {pkey!r} expired: statuses are kept"
                                       " for a retention period", "status": "expired"},
                            status_code=404)
    if row is None and by_key and not await event_configured(gateway.pool, tenant, event_id):
        raise HTTPException(404, f"no event {event_id!r} is configured")
    return row


def _status_of(pkey: str, event_id: str, row: StatusRow | Response | None,
               unseen: str | None) -> EventStatus | Response:
    if isinstance(row, Response):  # expired
        return row
    return event_status(pkey, event_id, row, unseen)


@router.get("/v1/events/{event_id}/keys/{event_key:path}", response_model=EventStatus,
            responses={404: _NOT_FOUND})
async def get_status_by_event_key(
    event_id: str, event_key: str, gateway: GatewayDep, caller: IngestCaller
) -> EventStatus | Response:
    """The status of an event produced straight to Kafka, by the producer's eventKey: 404
    for an event id the tenant has not configured, ``pending`` with the reason "not seen
    yet" for a key no record has brought so far."""
    _no_journey_message(event_id)
    if not is_event_id(event_id):
        raise HTTPException(404, f"no event {event_id!r} is configured")
    pkey = derive_pkey(gateway.settings.pkey_secret.encode(), caller.tenant, event_id, event_key)
    try:
        row = await _status_row(gateway, caller.tenant, event_id, pkey, by_key=True)
    except DB_UNAVAILABLE:
        return _answer(unavailable("the status store", "db_unavailable"))
    return _status_of(pkey, event_id, row, NOT_SEEN)


@router.get("/v1/events/{event_id}/{pkey}", response_model=EventStatus,
            responses={404: _NOT_FOUND})
async def get_status(
    event_id: str, pkey: str, gateway: GatewayDep, caller: IngestCaller
) -> EventStatus | Response:
    """The status of an event by the pKey its 202 gave; 404 for any pKey this gateway did
    not issue to this tenant for this event."""
    _no_journey_message(event_id)
    if not is_event_id(event_id) or not verify_pkey(
            gateway.settings.pkey_secret.encode(), caller.tenant, event_id, pkey):
        raise HTTPException(404, f"no event {pkey!r} for {event_id!r}")
    try:
        row = await _status_row(gateway, caller.tenant, event_id, pkey)
    except DB_UNAVAILABLE:
        return _answer(unavailable("the status store", "db_unavailable"))
    return _status_of(pkey, event_id, row, None)


@router.get("/v1/events/{event_id}/{pkey}/trace", response_model=MessageTrace,
            responses={404: _NOT_FOUND})
async def get_trace(
    event_id: str, pkey: str, gateway: GatewayDep, caller: IngestCaller
) -> MessageTrace | Response:
    """What happened to the event's message, step by step: the delivery rules' decision
    with every rule's verdict (and each new decision of a deferred message), then the
    sender's control rules and hand-over. Empty until the processor decided it."""
    _no_journey_message(event_id)
    if not is_event_id(event_id) or not verify_pkey(
            gateway.settings.pkey_secret.encode(), caller.tenant, event_id, pkey):
        raise HTTPException(404, f"no event {pkey!r} for {event_id!r}")
    message = message_id(caller.tenant, pkey)
    try:
        steps = await contact_history.trace(gateway.pool, caller.tenant, message)
    except DB_UNAVAILABLE:
        return _answer(unavailable("the message trace", "db_unavailable"))
    return message_trace(pkey, event_id, message, steps)


@router.delete("/v1/events/{event_id}/{pkey}", response_model=EventStatus,
               responses={404: _NOT_FOUND, 409: {"description": "Already on its way or done"}})
async def cancel_event(
    event_id: str, pkey: str, gateway: GatewayDep, caller: IngestCaller
) -> EventStatus | Response:
    """Cancel an event that is still pending (not processed yet, scheduled, or deferred by
    a delivery rule) or paused: it ends ``ignored`` with the reason ``cancelled`` and
    nothing is sent. 409 once it is on its way (``processing``) or finished."""
    _no_journey_message(event_id)
    if not is_event_id(event_id) or not verify_pkey(
            gateway.settings.pkey_secret.encode(), caller.tenant, event_id, pkey):
        raise HTTPException(404, f"no event {pkey!r} for {event_id!r}")
    try:
        if isinstance(gone := await _status_row(gateway, caller.tenant, event_id, pkey),
                      Response):
            return gone  # expired: nothing to cancel, and no row written for it again
        async with gateway.pool.acquire() as connection:
            standing = await cancel(connection, caller.tenant, event_id, pkey)
        row = await _status_row(gateway, caller.tenant, event_id, pkey)
    except DB_UNAVAILABLE:
        return _answer(unavailable("the status store", "db_unavailable"))
    if standing is not None:
        raise HTTPException(409, f"the event is already {standing.value}: it can no longer"
                                 " be cancelled")
    return _status_of(pkey, event_id, row, None)


async def readiness(request: Request) -> dict[str, bool]:
    """Ready when Kafka's producer is connected and PostgreSQL answers."""
    gateway = await get_gateway(request)
    checks = {"kafka": gateway.producer.ready}
    try:
        await gateway.pool.fetchval("SELECT 1")
        checks["postgres"] = True
    except DB_UNAVAILABLE:
        checks["postgres"] = False
    return checks
