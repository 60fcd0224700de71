"""The provider sink's HTTP API (FastAPI): the provider endpoints and the read-back API."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import Body, FastAPI, Header, Query
from fastapi.responses import JSONResponse, Response
from prometheus_client import Counter

from services.provider_sink.callbacks import Callbacks
from services.provider_sink.store import Answer, Fault, Faults, Inbox
from shared.adapters.provider_payloads import PushPayload, SmsPayload
from shared.operations import operations_router
from shared.settings import Settings
from shared.shutdown import Server, http_config

REQUESTS = Counter("parcours_provider_sink_requests_total",
                   "Provider requests, by channel and outcome", ["channel", "outcome"])
# outcome: accepted, replayed (a known idempotency key), injected (a failure asked for by
# /reject), conflict (a known key with another payload)

IdempotencyKey = Annotated[str | None, Header(alias="idempotency-key")]


def _accept(inbox: Inbox, faults: Faults, channel: str, to: str, payload: dict[str, Any],
            key: str | None) -> JSONResponse:
    known = inbox.answer_for(key) if key else None
    if known is not None:
        if known.payload != payload:
            REQUESTS.labels(channel, "conflict").inc()
            return JSONResponse({"detail": "Idempotency-Key reused with another payload"}, 422)
        REQUESTS.labels(channel, "replayed").inc()
        return JSONResponse(known.body, known.status)
    injected = faults.take(channel, to)
    if injected is not None:
        REQUESTS.labels(channel, "injected").inc()
        error = {"error": injected.error} if injected.error else {}
        headers = {"retry-after": injected.retry_after} if injected.retry_after else None
        return JSONResponse({"detail": f"injected failure {injected.status}", **error},
                            injected.status, headers=headers)
    received = inbox.add(channel, to, payload)
    answer = Answer(202, {"id": received.id, "status": "accepted"}, payload)
    if key:
        inbox.remember(key, answer)
    REQUESTS.labels(channel, "accepted").inc()
    return JSONResponse(answer.body, answer.status)


def http_api(inbox: Inbox, faults: Faults, callbacks: Callbacks | None = None) -> FastAPI:
    """``callbacks``: none (unit tests) posts no receipts."""
    callbacks = callbacks or Callbacks(Settings(provider_sink_receipts_url=""))
    api = FastAPI(title="Parcours provider sink")

    @api.post("/sms", status_code=202)
    async def sms(payload: SmsPayload, idempotency_key: IdempotencyKey = None) -> JSONResponse:
        replayed = idempotency_key is not None and inbox.answer_for(idempotency_key)
        answer = _accept(inbox, faults, "sms", payload.to, payload.model_dump(),
                         idempotency_key)
        if answer.status_code == 202 and not replayed:
            callbacks.receipt(orjson.loads(answer.body)["id"], payload.to, payload.messageId)
        return answer

    @api.post("/receipts", status_code=204)
    async def receipts(to: str, error: str | None = None) -> None:
        """The receipts of SMS to ``to`` say failed with ``error`` (none: delivered)."""
        if error:
            callbacks.failing[to] = error
        else:
            callbacks.failing.pop(to, None)

    @api.post("/inbound")
    async def inbound(tenant: str, payload: Annotated[dict[str, Any], Body()]) -> JSONResponse:
        """Deliver an inbound SMS ({"id", "from", "to", "text"}) to the tenant's
        webhook, signed; answers what the webhook answered."""
        answer = await callbacks.post(callbacks.inbound_url(tenant), payload)
        return JSONResponse(answer.json(), answer.status_code)

    @api.post("/push", status_code=202)
    async def push(payload: PushPayload, idempotency_key: IdempotencyKey = None) -> JSONResponse:
        return _accept(inbox, faults, "push", payload.token, payload.model_dump(),
                       idempotency_key)

    @api.get("/messages")
    async def messages(channel: str | None = None, to: str | None = None) -> list[dict[str, Any]]:
        return inbox.list(channel, to)

    @api.delete("/messages", status_code=204)
    async def clear() -> None:
        inbox.clear()

    @api.get("/duplicates")
    async def duplicates() -> dict[str, int]:
        return inbox.duplicates()

    @api.get("/handed")
    async def handed() -> Response:
        """Every message id handed over since ``since`` (SMS and push), with its count:
        what ``parcours reconcile`` asks a sink."""
        return Response(orjson.dumps(inbox.handed.snapshot("sms push")),
                        media_type="application/json")

    @api.post("/reject", status_code=204)
    async def reject(status: Annotated[int, Query(ge=400, le=599)], count: int = 1,
                     channel: str | None = None, to: str | None = None,
                     error: str | None = None, retry_after: str | None = None) -> None:
        """``error`` goes in the answer's body, e.g. ``UNREGISTERED`` (FCM) or
        ``Unregistered`` (APNs, with 410): a push to a device that is gone;
        ``retry_after`` in its Retry-After header (a rate limit's 429)."""
        faults.arm(channel, to, Fault(status, count, error, retry_after))

    api.include_router(operations_router())
    return api


async def serve(settings: Settings, secondary: bool = False) -> None:
    """``secondary``: stand in for the second provider (failover), on its own port."""
    callbacks = Callbacks(settings)
    port = settings.provider_sink_secondary_port if secondary else settings.provider_sink_port
    config = http_config(http_api(Inbox(), Faults(), callbacks), settings.provider_sink_host,
                         port, log_level="warning")
    try:
        await Server(config).serve()
    finally:
        await callbacks.close()
