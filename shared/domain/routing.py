"""The processor's decision for one trigger event: send it on, or end it with a status."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.domain.events import CTX_ON_KAFKA, Channel, EventConfig, Targeting, TriggerEvent
from shared.domain.lifecycle import MessageState
from shared.domain.status import Status

_MESSAGE_NAMESPACE = uuid.UUID("6f1b8f0e-3c1a-5a7e-9d7e-7061726f7572")


def message_id(tenant: str, pkey: str, step: str = "tx") -> str:
    """Stable across retries and restarts: every side effect is deduplicated on it."""
    return str(uuid.uuid5(_MESSAGE_NAMESPACE, f"{tenant}/{pkey}/{step}"))


class SendRequest(BaseModel):
    """The record on ``parcours.send.<channel>.<priority>.v1``."""

    model_config = ConfigDict(extra="forbid")

    v: int = 1
    messageId: str
    pKey: str
    tenant: str
    eventId: str
    channel: Channel
    priority: str = "tx"
    to: dict[str, str]
    ctx: dict[str, Any] = Field(description=CTX_ON_KAFKA)
    profile: dict[str, Any] | None = None
    acceptedAt: float


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
) -> Decision:
    """``message``: the state of the event's live message version, None when none is."""
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
    return SendRequest(
        messageId=message_id(trigger.tenant, trigger.pKey),
        pKey=trigger.pKey,
        tenant=trigger.tenant,
        eventId=trigger.eventId,
        channel=config.channel,
        to=trigger.target,
        ctx=trigger.ctx,
        profile=profile if config.targeting is Targeting.PROFILE else None,
        acceptedAt=trigger.acceptedAt,
    )
