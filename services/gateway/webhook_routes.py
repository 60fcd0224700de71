"""What SMS providers and apps post back (issue 11).

    POST /v1/webhooks/sms/{provider}/status             a delivery receipt
    POST /v1/webhooks/sms/{provider}/inbound/{tenant}   an inbound SMS (STOP, HELP, START)
    POST /v1/push/opened                                the app: a push was opened

Provider webhooks are signed (``shared.domain.webhook_signature``: HMAC-SHA256 over
"<timestamp>.<body>" under the provider's secret): unsigned, forged, stale or replayed
calls get 401 and nothing is recorded. The tenant of an inbound SMS is in its URL: each
tenant's number (sender id) is configured at the provider with its own URL. A push open
carries the message's ``openToken`` (``shared.domain.push_open``): no key, the token is
the proof.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from functools import lru_cache
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Header, HTTPException, Path, Request
from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.gateway import feedback
from services.gateway.wiring import Gateway
from shared.adapters import feedback_store, sent_messages
from shared.domain.events import Channel
from shared.domain.push_open import valid_open_token
from shared.domain.sms_keywords import Keyword
from shared.domain.sms_receipts import InboundSms, SmsStatus
from shared.domain.webhook_signature import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Verified,
    parse_secrets,
    verify,
)

router = APIRouter(tags=["feedback"])
WEBHOOKS = Counter("parcours_gateway_feedback_requests_total",
                   "Provider webhooks and push opens, by kind and outcome", ["kind", "outcome"])
# kind: sms_status, sms_inbound, push_opened; outcome: recorded (a new reaction or an
# answered keyword), unchanged (known already, unknown message, no keyword), refused (401)
M = TypeVar("M", bound=BaseModel)
Provider = Annotated[str, Path(pattern=r"^[a-z0-9-]{1,40}$")]
MAX_BODY_BYTES = 64 * 1024


class SeenSignatures:
    """Signatures accepted within the replay window, bounded: past ``capacity`` the
    oldest are forgotten (their timestamps are the first to go stale anyway)."""

    def __init__(self, capacity: int = 100_000) -> None:
        self._until: OrderedDict[str, float] = OrderedDict()
        self._capacity = capacity

    def first_time(self, signature: str, until: float, now: float) -> bool:
        while self._until and (next(iter(self._until.values())) < now
                               or len(self._until) >= self._capacity):
            self._until.popitem(last=False)
        if signature in self._until:
            return False
        self._until[signature] = until
        return True


_SEEN = SeenSignatures()


@lru_cache(maxsize=4)
def _secrets(setting: str) -> dict[str, str]:
    return parse_secrets(setting)


def _gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


async def _signed_body(request: Request, kind: str, provider: str, timestamp: str | None,
                       signature: str | None) -> bytes:
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise HTTPException(413, "body too large")
    settings = _gateway(request).settings
    secret = _secrets(settings.provider_webhook_secrets.get_secret_value()).get(provider, "")
    now = time.time()
    verified = verify(secret, timestamp, signature, body, now, settings.webhook_window_s)
    # One answer for every refusal: a caller learns nothing from which check failed.
    if not isinstance(verified, Verified) or not _SEEN.first_time(
            f"{provider}/{verified.signature}", verified.timestamp + settings.webhook_window_s,
            now):
        WEBHOOKS.labels(kind, "refused").inc()
        raise HTTPException(401, "invalid signature")
    return body


def _outcome(kind: str, recorded: bool) -> None:
    WEBHOOKS.labels(kind, "recorded" if recorded else "unchanged").inc()


def _body(model: type[BaseModel]) -> dict[str, Any]:
    """The body a route reads itself (after checking its signature), for the OpenAPI
    document."""
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": model.model_json_schema()}}}}


_REFUSED: dict[int | str, dict[str, Any]] = {
    401: {"description": "unsigned, forged, stale or replayed"}}


Timestamp = Annotated[str | None, Header(alias=TIMESTAMP_HEADER)]
Signature = Annotated[str | None, Header(alias=SIGNATURE_HEADER)]


def _parsed(model: type[M], body: bytes) -> M:
    try:
        return model.model_validate_json(body)
    except ValidationError as error:
        raise HTTPException(422, f"not a valid {model.__name__}: {error.error_count()} errors"
                            ) from None


@router.post("/v1/webhooks/sms/{provider}/status", openapi_extra=_body(SmsStatus),
             responses=_REFUSED)
async def sms_status(request: Request, provider: Provider, timestamp: Timestamp = None,
                     signature: Signature = None) -> dict[str, int]:
    """A delivery receipt: ``smsDelivered`` or ``failed``. An unknown message is
    acknowledged (200, nothing recorded) so the provider does not retry it forever."""
    body = await _signed_body(request, "sms_status", provider, timestamp, signature)
    status = _parsed(SmsStatus, body)
    recorded = await feedback.sms_status(_gateway(request).pool, status)
    _outcome("sms_status", recorded > 0)
    return {"recorded": recorded}


class InboundAnswer(BaseModel):
    keyword: Keyword | None
    reply: str | None = Field(description="the text the provider sends back to the number")


@router.post("/v1/webhooks/sms/{provider}/inbound/{tenant}",
             openapi_extra=_body(InboundSms), responses=_REFUSED)
async def sms_inbound(request: Request, provider: Provider, tenant: str,
                      timestamp: Timestamp = None, signature: Signature = None
                      ) -> InboundAnswer:
    body = await _signed_body(request, "sms_inbound", provider, timestamp, signature)
    message = _parsed(InboundSms, body)
    gateway = _gateway(request)
    if not await feedback_store.tenant_exists(gateway.pool, tenant):
        raise HTTPException(404, "no such tenant")
    found, reply = await feedback.inbound_sms(gateway.pool, gateway.settings, tenant,
                                              provider, message)
    _outcome("sms_inbound", found is not None)
    return InboundAnswer(keyword=found, reply=reply)


class PushOpened(BaseModel):
    model_config = ConfigDict(extra="forbid")

    messageId: uuid.UUID
    openToken: str = Field(min_length=1, max_length=100)


@router.post("/v1/push/opened", responses={401: {"description": "a wrong token"}})
async def push_opened(request: Request, opened: PushOpened) -> dict[str, int]:
    """The app reports a push opened, with the ``openToken`` the push carried in its
    data. A wrong token or an unknown message: 401, nothing recorded."""
    gateway = _gateway(request)
    sent = await sent_messages.find(gateway.pool, str(opened.messageId))
    secret = gateway.settings.push_open_secret.get_secret_value()
    if sent is None or sent.channel != Channel.PUSH or not valid_open_token(
            secret, sent.tenant, sent.message_id, opened.openToken):
        WEBHOOKS.labels("push_opened", "refused").inc()
        raise HTTPException(401, "invalid open token")
    recorded = await feedback.push_opened(gateway.pool, sent)
    _outcome("push_opened", recorded > 0)
    return {"recorded": recorded}
