"""The body of an outbound webhook call (``schemas/webhooks/notification.v1.json``): one
notification — a status change, a reaction, or a ping — the same bytes on every attempt.
Additive within a version: a receiver should ignore fields it does not know."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from shared.domain.events import Channel
from shared.domain.outbound_webhooks import Change, notification_id
from shared.domain.reactions import Reaction
from shared.domain.routing import EventOrigin
from shared.domain.status import Status


class StatusChange(BaseModel):
    """An event reached a status (each status once per event: statuses only move on)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    eventId: str
    pKey: str
    status: Status
    reason: str | None = None
    messageId: str | None = None
    channel: Channel | None = Field(default=None, description="the event's channel")
    at: AwareDatetime


class Ping(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    subscriptionId: str
    message: str = "a test call from Parcours"


class Notification(BaseModel):
    """What is posted. ``id`` is the same on every retry and for every subscription that
    receives it (receivers deduplicate on it); ``type`` is ``status.<status>``,
    ``reaction.<kind>`` or ``ping``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1
    id: str
    type: str = Field(pattern=r"^(status\.[A-Za-z]+|reaction\.[A-Za-z]+|ping)$")
    createdAt: AwareDatetime
    tenant: str
    data: StatusChange | Reaction | Ping


def of_status(tenant: str, change: StatusChange, now: datetime) -> Notification:
    return Notification(
        id=notification_id(tenant, f"status/{change.pKey}/{change.status.value}"),
        type=f"status.{change.status.value}", createdAt=now, tenant=tenant, data=change)


def of_reaction(reaction: Reaction, now: datetime) -> Notification:
    return Notification(
        id=notification_id(reaction.tenant, f"reaction/{reaction.reactionId}"),
        type=f"reaction.{reaction.kind.value}", createdAt=now, tenant=reaction.tenant,
        data=reaction)


def ping(tenant: str, subscription_id: str, nonce: str, now: datetime) -> Notification:
    return Notification(id=notification_id(tenant, f"ping/{nonce}"), type="ping",
                        createdAt=now, tenant=tenant,
                        data=Ping(subscriptionId=subscription_id))


def change_of(notification: Notification) -> Change:
    """What the subscriptions' filters look at."""
    data = notification.data
    if isinstance(data, StatusChange):
        return Change("status", data.status.value, data.eventId,
                      data.channel.value if data.channel else None)
    if isinstance(data, Reaction):
        event_id = data.origin.eventId if isinstance(data.origin, EventOrigin) else None
        return Change("reaction", data.kind.value, event_id, data.channel.value)
    return Change("ping", "ping", None, None)


def body(notification: Notification) -> bytes:
    return notification.model_dump_json(exclude_none=True).encode()
