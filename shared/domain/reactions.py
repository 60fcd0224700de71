"""What comes back from recipients, as records on ``parcours.reactions.v1``: opens, clicks,
bounces, complaints, unsubscribes, delivery receipts.

Each reaction has an id derived from what makes it one (``reaction_id``), so a reaction
seen twice (a pixel loaded ten times, a webhook retried, a DSN delivered twice) is one
record: one per (message, kind), one per (message, link) for clicks — and machine opens
and clicks (mail-privacy proxies, link scanners) apart from human ones, so a flagged open
never hides a later human one. Keyed by profile id (the target address for an event-based
message), so a journey engine co-partitioned on profile id reads a profile's reactions in
order.
"""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Annotated, Any, Literal

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from shared.domain.events import Channel
from shared.domain.routing import Origin

_REACTION_NAMESPACE = uuid.UUID("8b5c3a52-6f0e-5b8e-a3c1-726561637473")


class ReactionKind(StrEnum):
    DELIVERED = "delivered"
    OPENED = "opened"
    CLICKED = "clicked"
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    UNSUBSCRIBED = "unsubscribed"
    PUSH_OPENED = "pushOpened"
    SMS_DELIVERED = "smsDelivered"
    FAILED = "failed"


class Link(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    index: int = Field(ge=0, description="the link's place in the message's HTML")
    url: str


class Bounce(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["hard", "soft"]
    reply: str = Field(description="the remote server's diagnostic, as the DSN gives it")


class Reaction(BaseModel):
    """The record on ``parcours.reactions.v1``."""

    # Additive within a version: a consumer not yet upgraded ignores newer fields.
    model_config = ConfigDict(extra="ignore", frozen=True)

    v: Literal[1] = 1
    reactionId: str = Field(description="one per (message, kind[, link], human or machine)")
    tenant: str
    messageId: str
    kind: ReactionKind
    at: AwareDatetime
    channel: Channel
    profileId: str | None = None
    address: str | None = Field(default=None, description="the target, for an event-based"
                                                          " message (no profile)")
    origin: Origin | None = None
    link: Link | None = None
    bounce: Bounce | None = None
    machine: bool = Field(default=False, description="a mail-privacy proxy or a link"
                                                     " scanner, not a person")
    machineReason: Annotated[str, Field(max_length=200)] | None = None
    source: str = Field(description="where it came from: tracking, dsn, arf (a complaint),"
                                    " provider, app, preferences, list-unsubscribe")
    detail: Annotated[str, Field(max_length=2000)] | None = None

    @property
    def key(self) -> bytes:
        """Partitioned by profile, else by address: a profile's reactions in order."""
        return (self.profileId or self.address or self.messageId).encode()


def trace_reason(link_index: int | None, link_url: str | None, machine: bool,
                 machine_reason: str | None) -> str | None:
    """The reason of a reaction's row in its message's trace: the link clicked, and
    whether a machine did it."""
    parts = []
    if link_index is not None:
        parts.append(f"link {link_index}: {link_url}"[:500])
    if machine:
        parts.append(f"machine: {machine_reason or 'flagged'}")
    return "; ".join(parts) or None


def reason_of(reaction: Reaction) -> str | None:
    link = reaction.link
    return trace_reason(None if link is None else link.index,
                        None if link is None else link.url, reaction.machine,
                        reaction.machineReason)


def reaction_id(tenant: str, message_id: str, kind: ReactionKind, *, link: int | None = None,
                machine: bool = False, bounce: Literal["hard", "soft"] | None = None) -> str:
    """The identity of a reaction: what makes two sightings the same one. A bounce's type
    is part of it: a delay warning (soft) and the failure days later (hard) are two."""
    parts = [tenant, message_id, kind.value, "" if link is None else str(link),
             "machine" if machine else "human", *([bounce] if bounce else [])]
    return str(uuid.uuid5(_REACTION_NAMESPACE, "/".join(parts)))


def unvalidated_fields(value: bytes) -> dict[str, Any] | None:
    """A reaction record's fields read as JSON, not validated (None: not a JSON object), for
    a consumer that skips most records on a field or two before validating the rest (the
    reactions service dead-letters what is not a reaction)."""
    try:
        record = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    return record if isinstance(record, dict) else None
