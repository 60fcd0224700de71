"""The processor's decision for one trigger event: send it on, or end it with a status."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.domain.events import CTX_ON_KAFKA, Channel, EventConfig, Targeting, TriggerEvent
from shared.domain.lifecycle import MessageState
from shared.domain.status import Status

_MESSAGE_NAMESPACE = uuid.UUID("6f1b8f0e-3c1a-5a7e-9d7e-7061726f7572")


def message_id(tenant: str, pkey: str, step: str = "tx") -> str:
    """Stable across retries and restarts: every side effect is deduplicated on it."""
    return str(uuid.uuid5(_MESSAGE_NAMESPACE, f"{tenant}/{pkey}/{step}"))


class EventOrigin(BaseModel):
    """A message a transactional event asked for."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["event"] = "event"
    eventId: str
    pKey: str


class JourneyOrigin(BaseModel):
    """A message a journey's node sends to one profile (the journey issue's)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["journey"] = "journey"
    journeyId: str
    journeyVersion: int
    nodeId: str
    instanceId: str


Origin = Annotated[EventOrigin | JourneyOrigin, Field(discriminator="kind")]


class TemplateRef(BaseModel):
    """The message version decided: published versions never change, so the sender
    renders exactly what was decided, even if a newer version is published meanwhile."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    eventId: str
    version: int


class SendRequest(BaseModel):
    """A message, as it travels on ``parcours.send.<channel>.<priority>.v1`` (record
    version 2; ``read_send_record`` still reads version 1)."""

    # Fields added within a version are additive: a sender not yet upgraded reads a newer
    # processor's records and ignores what it does not know (it refused them once, and
    # every record of a rolling upgrade went to the dead letters).
    model_config = ConfigDict(extra="ignore")

    v: Literal[2] = 2
    messageId: str
    tenant: str
    origin: Origin
    channel: Channel
    priority: Literal["tx", "bulk"] = "tx"
    template: TemplateRef | None = Field(
        default=None, description="the message version to render; absent only on records"
                                  " of version 1, which render the event's live version")
    to: dict[str, str]
    profileId: str | None = None
    typology: str | None = Field(default=None, description="the typology whose control"
                                 " rules the sender runs on the rendered message")
    ctx: dict[str, Any] = Field(description=CTX_ON_KAFKA)
    profile: dict[str, Any] | None = None
    acceptedAt: float = Field(description="when its origin was accepted (Unix seconds)")
    marketing: bool = Field(default=False, description="its event is configured marketing:"
                            " an email to a profile then carries List-Unsubscribe (RFC 8058)")
    locale: str | None = Field(default=None, description="the locale its request named: the"
                               " message's variant is chosen from it, else from the"
                               " profile's locale")

    @property
    def event(self) -> EventOrigin | None:
        """The transactional event it answers, whose status it moves; None for a journey's."""
        return self.origin if isinstance(self.origin, EventOrigin) else None

    @property
    def template_owner(self) -> str | None:
        """The event whose message it renders."""
        if self.template is not None:
            return self.template.eventId
        return self.event.eventId if self.event else None


class _SendRequestV1(BaseModel):
    """Version 1 of the send record, written before messages had an origin."""

    v: Literal[1] = 1
    messageId: str
    pKey: str
    tenant: str
    eventId: str
    channel: Channel
    priority: Literal["tx", "bulk"] = "tx"
    to: dict[str, str]
    ctx: dict[str, Any]
    profile: dict[str, Any] | None = None
    acceptedAt: float


def read_send_record(raw: bytes) -> SendRequest:
    """A send record of any version, as version 2 (raises ValidationError)."""
    try:
        return SendRequest.model_validate_json(raw)
    except ValidationError as error:
        try:
            old = _SendRequestV1.model_validate_json(raw)
        except ValidationError:
            raise error from None
    return SendRequest(
        messageId=old.messageId, tenant=old.tenant,
        origin=EventOrigin(eventId=old.eventId, pKey=old.pKey), channel=old.channel,
        priority=old.priority, to=old.to, ctx=old.ctx, profile=old.profile,
        profileId=(old.profile or {}).get("profile_id"), acceptedAt=old.acceptedAt)


@dataclass(frozen=True)
class Ended:
    status: Status
    reason: str


@dataclass(frozen=True)
class Hold:
    """Keep the event until its message is published (it is paused) and ``until`` has come
    (it is scheduled for later); either or both."""

    until: datetime | None = None
    paused: bool = False


Decision = SendRequest | Ended | Hold


def decide(
    config: EventConfig | None,
    message: MessageState | None,
    trigger: TriggerEvent,
    profile: dict[str, Any] | None,
    now: datetime,
    message_version: int | None = None,
) -> Decision:
    """``message``: the state of the event's live message version (``message_version``),
    None when none is."""
    if config is None:
        return Ended(Status.ROUTING_FAILED, f"event {trigger.eventId} is not published")
    if message not in (MessageState.PUBLISHED, MessageState.PAUSED):
        return Ended(Status.ROUTING_FAILED, "the event's message is not published")
    if trigger.expiration is not None and trigger.expiration <= now:
        return Ended(Status.TOO_OLD, "expiration passed before processing")
    later = trigger.scheduled if trigger.scheduled and trigger.scheduled > now else None
    if message is MessageState.PAUSED or later:
        return Hold(until=later, paused=message is MessageState.PAUSED)
    if config.targeting is Targeting.PROFILE and profile is None:
        return Ended(Status.TARGETING_FAILED, "no profile matches the event's target")
    profile = profile if config.targeting is Targeting.PROFILE else None
    return SendRequest(
        messageId=message_id(trigger.tenant, trigger.pKey),
        tenant=trigger.tenant,
        origin=EventOrigin(eventId=trigger.eventId, pKey=trigger.pKey),
        channel=config.channel,
        template=None if message_version is None else TemplateRef(
            eventId=trigger.eventId, version=message_version),
        to=trigger.target,
        profileId=None if profile is None else profile.get("profile_id"),
        ctx=trigger.ctx,
        profile=profile,
        acceptedAt=trigger.acceptedAt,
        marketing=config.marketing,
        locale=trigger.locale,
    )


def event_of_unreadable(raw: bytes) -> tuple[str, str, str] | None:
    """(tenant, event id, pKey) of a send record that cannot be read as a message, when
    it still says whose event it is: its event must not stay ``processing`` for ever."""
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    origin = data.get("origin")
    named: dict[str, object] = origin if isinstance(origin, dict) else data
    tenant, event_id, pkey = data.get("tenant"), named.get("eventId"), named.get("pKey")
    if isinstance(tenant, str) and isinstance(event_id, str) and isinstance(pkey, str) \
            and tenant and event_id and pkey:
        return tenant, event_id, pkey
    return None
