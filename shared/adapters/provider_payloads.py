"""The JSON bodies Parcours posts to SMS and push providers, one message per request.

A small provider-neutral contract: an adapter for a given vendor maps these fields onto
its API; the local provider sink (services/provider_sink) accepts exactly these.

    POST <sms provider>   {"to": "+15551234567", "text": "…", "messageId": "<uuid>",
                           "senderId": "Shop", "encoding": "gsm7"|"ucs2", "segments": 1}
    POST <push provider>  {"token": "…", "application": "…", "platform": "fcm"|"apns",
                           "title": "…", "body": "…", "data": {"k": "v", "openToken": "…"},
                           "messageId": "<uuid>"}

The SMS's encoding and segment count (``shared.domain.sms_encoding``) are computed here,
at send time: what the provider will bill. A push's data carries ``openToken``
(``shared.domain.push_open``), which the app sends back to ``POST /v1/push/opened``.

Each request also carries ``Idempotency-Key: <messageId>``; the provider answers 2xx
when it accepted the message (``{"id": "<provider id>"}``).
"""

from __future__ import annotations

from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.adapters.delivery_errors import PermanentFailure
from shared.domain.push_open import open_token
from shared.domain.rendering import RenderedMessage
from shared.domain.routing import SendRequest
from shared.domain.sms_encoding import Encoding, sms_shape


class SmsPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: str = Field(min_length=1)
    text: str
    messageId: str = Field(min_length=1)
    senderId: str | None = None  # the tenant's alphanumeric sender id or number
    encoding: Encoding | None = None
    segments: int | None = Field(default=None, ge=0)


class PushPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=1)
    application: str = Field(min_length=1)
    platform: Literal["apns", "fcm"]
    title: str
    body: str
    data: dict[str, str] = Field(default_factory=dict)
    messageId: str = Field(min_length=1)


Payload = TypeVar("Payload", SmsPayload, PushPayload)


def _target(request: SendRequest, key: str) -> str:
    try:
        return request.to[key]
    except KeyError:
        # A send record with the wrong target cannot become deliverable by retrying.
        raise PermanentFailure(f"the {request.channel} target has no {key}") from None


def _validated(model: type[Payload], fields: dict[str, object]) -> Payload:
    try:
        return model.model_validate(fields)
    except ValidationError as error:
        wrong = ", ".join(str(e["loc"][0]) for e in error.errors())
        raise PermanentFailure(f"not a valid {model.__name__}: {wrong}") from None


def sms_payload(request: SendRequest, rendered: RenderedMessage, sender_id: str | None = None
                ) -> SmsPayload:
    shape = sms_shape(rendered.parts["text"])
    return _validated(SmsPayload, {
        "to": _target(request, "mobilePhone"),
        "text": rendered.parts["text"],
        "messageId": request.messageId,
        "senderId": sender_id,
        "encoding": shape.encoding,
        "segments": shape.segments,
    })


def push_payload(request: SendRequest, rendered: RenderedMessage,
                 open_secret: str | None = None) -> PushPayload:
    data = rendered.data if open_secret is None else {
        **rendered.data, "openToken": open_token(open_secret, request.tenant, request.messageId)}
    return _validated(PushPayload, {
        "token": _target(request, "registrationToken"),
        "application": _target(request, "application"),
        "platform": _target(request, "pushPlatform"),
        "title": rendered.parts["title"],
        "body": rendered.parts["body"],
        "data": data,
        "messageId": request.messageId,
    })
