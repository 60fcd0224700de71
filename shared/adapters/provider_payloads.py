"""The JSON bodies Parcours posts to SMS and push providers, one message per request.

A small provider-neutral contract: an adapter for a given vendor maps these fields onto
its API; the local provider sink (services/provider_sink) accepts exactly these.

    POST <sms provider>   {"to": "+15551234567", "text": "…", "messageId": "<uuid>"}
    POST <push provider>  {"token": "…", "application": "…", "platform": "fcm"|"apns",
                           "title": "…", "body": "…", "data": {"k": "v"}, "messageId": "<uuid>"}

Each request also carries ``Idempotency-Key: <messageId>``; the provider answers 2xx
when it accepted the message (``{"id": "<provider id>"}``).
"""

from __future__ import annotations

from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.adapters.delivery_errors import PermanentFailure
from shared.domain.rendering import RenderedMessage
from shared.domain.routing import SendRequest


class SmsPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: str = Field(min_length=1)
    text: str
    messageId: str = Field(min_length=1)


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


def sms_payload(request: SendRequest, rendered: RenderedMessage) -> SmsPayload:
    return _validated(SmsPayload, {
        "to": _target(request, "mobilePhone"),
        "text": rendered.parts["text"],
        "messageId": request.messageId,
    })


def push_payload(request: SendRequest, rendered: RenderedMessage) -> PushPayload:
    return _validated(PushPayload, {
        "token": _target(request, "registrationToken"),
        "application": _target(request, "application"),
        "platform": _target(request, "pushPlatform"),
        "title": rendered.parts["title"],
        "body": rendered.parts["body"],
        "data": rendered.data,
        "messageId": request.messageId,
    })
