"""HTTP routes of the ingestion API (ACS shape: POST an event, GET its status)."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Annotated, Any

from aiokafka.errors import KafkaError
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ValidationError
from starlette.responses import Response

from services.gateway.metrics import EVENTS_ACCEPTED, EVENTS_REJECTED, INGEST_SECONDS
from services.gateway.wiring import Gateway
from shared.adapters.kafka import encode
from shared.adapters.postgres import DB_UNAVAILABLE
from shared.adapters.status_store import StatusWrite, read_status, record_statuses
from shared.api_auth import Caller, require
from shared.domain.api_keys import Scope
from shared.domain.events import trigger_record
from shared.domain.pkeys import mint_pkey, verify_pkey
from shared.domain.status import Status
from shared.topics import EVENTS_IN

MAX_BODY_BYTES = 256 * 1024

router = APIRouter()
log = logging.getLogger(__name__)


async def get_gateway(request: Request) -> Gateway:  # async: no threadpool hop per request
    gateway: Gateway = request.app.state.gateway
    return gateway


GatewayDep = Annotated[Gateway, Depends(get_gateway)]
IngestCaller = Annotated[Caller, Depends(require(Scope.INGEST))]


class Accepted(BaseModel):
    pKey: str
    href: str
    status: str = "pending"


class EventStatus(BaseModel):
    pKey: str
    eventId: str
    status: str
    reason: str | None = None
    updatedAt: str | None = None


def _unavailable(what: str, reason: str) -> HTTPException:
    EVENTS_REJECTED.labels(reason).inc()
    return HTTPException(
        503, f"{what} is unavailable; nothing was accepted, retry later",
        headers={"Retry-After": "5"},
    )


async def _void(gateway: Gateway, tenant: str, event_id: str, pkey: str) -> None:
    """The idempotent producer keeps an unacknowledged record and may still write it when
    the broker is back. The caller was told 503, so the event must not be sent: a final
    status recorded now makes the processor skip it (``begin_processing``)."""
    refused = StatusWrite(pkey, tenant, event_id, Status.IGNORED,
                          "refused with 503 at ingestion (Kafka unavailable)")
    try:
        async with gateway.pool.acquire() as connection:
            await record_statuses(connection, [refused])
    except DB_UNAVAILABLE:
        log.error("could not void a refused event: it may still be delivered once")


@router.post("/v1/events/{event_id}", status_code=202, response_model=Accepted)
async def post_event(
    event_id: str, request: Request, gateway: GatewayDep, caller: IngestCaller
) -> Accepted | Response:
    started = time.perf_counter()
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        EVENTS_REJECTED.labels("too_large").inc()
        raise HTTPException(413, f"body is {len(body)} bytes; the limit is {MAX_BODY_BYTES}")
    try:
        published = await gateway.catalog.get(caller.tenant, event_id)
    except DB_UNAVAILABLE as error:
        raise _unavailable("the configuration store", "db_unavailable") from error
    if published is None:
        EVENTS_REJECTED.labels("unknown_event").inc()
        raise HTTPException(404, f"event {event_id!r} is not published")
    try:
        parsed = gateway.ingest_model(published).model_validate_json(body)
    except ValidationError as error:
        EVENTS_REJECTED.labels("invalid").inc()
        detail = [
            {**e, "loc": ["body", *e["loc"]]}
            for e in error.errors(include_url=False, include_input=False, include_context=False)
        ]
        return JSONResponse({"detail": detail}, status_code=422)
    producer = gateway.producer
    if producer is None:
        raise _unavailable("Kafka", "kafka_unavailable")
    secret = gateway.settings.pkey_secret.encode()
    pkey = mint_pkey(secret, caller.tenant, event_id, os.urandom(12))
    record = trigger_record(
        parsed, pkey=pkey, tenant=caller.tenant, event_id=event_id, accepted_at=time.time()
    )
    key = next(iter(record["target"].values()), pkey).lower().encode()
    bound_s = gateway.settings.kafka_request_timeout_ms / 1000 + 1
    try:
        # 202 only once the broker acknowledged the write (acks=all).
        await asyncio.wait_for(
            producer.send_and_wait(EVENTS_IN.name, encode(record), key),
            bound_s,
        )
    except (KafkaError, TimeoutError) as error:
        await _void(gateway, caller.tenant, event_id, pkey)
        raise _unavailable("Kafka", "kafka_unavailable") from error
    EVENTS_ACCEPTED.inc()
    INGEST_SECONDS.observe(time.perf_counter() - started)
    return Accepted(pKey=pkey, href=f"/v1/events/{event_id}/{pkey}")


@router.get("/v1/events/{event_id}/schema")
async def event_schema(
    event_id: str, gateway: GatewayDep, caller: IngestCaller
) -> dict[str, Any]:
    """The JSON Schema of this published event's request body."""
    published = await gateway.catalog.get(caller.tenant, event_id)
    if published is None:
        raise HTTPException(404, f"event {event_id!r} is not published")
    return gateway.ingest_model(published).model_json_schema()


@router.get("/v1/events/{event_id}/{pkey}", response_model=EventStatus)
async def get_status(
    event_id: str, pkey: str, gateway: GatewayDep, caller: IngestCaller
) -> EventStatus:
    if not verify_pkey(gateway.settings.pkey_secret.encode(), caller.tenant, event_id, pkey):
        raise HTTPException(404, f"no event {pkey!r} for {event_id!r}")
    try:
        row = await read_status(gateway.pool, caller.tenant, event_id, pkey)
    except DB_UNAVAILABLE as error:
        raise _unavailable("the status store", "db_unavailable") from error
    if row is None:  # issued, not yet recorded by any stage
        return EventStatus(pKey=pkey, eventId=event_id, status="pending")
    return EventStatus(
        pKey=pkey, eventId=event_id, status=row.status.value,
        reason=row.reason, updatedAt=row.updated_at,
    )


@router.get("/health/live", include_in_schema=False)
async def live() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/health/ready", include_in_schema=False)
async def ready(gateway: GatewayDep) -> Response:
    checks = {"kafka": gateway.producer is not None}
    try:
        await gateway.pool.fetchval("SELECT 1")
        checks["postgres"] = True
    except DB_UNAVAILABLE:
        checks["postgres"] = False
    return JSONResponse(checks, status_code=200 if all(checks.values()) else 503)


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
