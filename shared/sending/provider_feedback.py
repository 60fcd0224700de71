"""What a sender learns from the provider's answer, beyond delivered or not: an SMS's
encoding and segments (the trace shows them beside the provider's reference), and a push
refused because its device is gone (APNs 410, FCM ``UNREGISTERED``): the profile forgets
that device and a ``failed`` reaction is recorded, so nothing is pushed to it again."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from shared.adapters import feedback_store, reaction_store
from shared.domain.events import Channel
from shared.domain.push_open import device_unregistered
from shared.domain.reactions import Reaction, ReactionKind, reaction_id
from shared.domain.rendering import RenderedMessage
from shared.domain.routing import SendRequest
from shared.domain.sms_encoding import sms_shape


def handover_note(request: SendRequest, rendered: RenderedMessage, reference: str | None
                  ) -> str | None:
    """The trace's reason for a delivered message: the provider's reference, and for an
    SMS what it cost ("sms-00000012; gsm7, 2 segments")."""
    if request.channel is not Channel.SMS:
        return reference
    shape = sms_shape(rendered.parts.get("text", ""))
    plural = "" if shape.segments == 1 else "s"
    return f"{reference or 'accepted'}; {shape.encoding}, {shape.segments} segment{plural}"


async def device_gone(pool: asyncpg.Pool, request: SendRequest, reason: str) -> None:
    """After a permanent push refusal: when it says the token is no longer valid, forget
    the device and record ``failed`` (once: the reaction's id is the message's)."""
    if request.channel is not Channel.PUSH or not device_unregistered(reason):
        return
    token = request.to.get("registrationToken", "")
    reaction = Reaction(
        reactionId=reaction_id(request.tenant, request.messageId, ReactionKind.FAILED),
        tenant=request.tenant, messageId=request.messageId, kind=ReactionKind.FAILED,
        at=datetime.now(UTC), channel=Channel.PUSH, profileId=request.profileId,
        address=None if request.profileId else token, origin=request.origin,
        source="provider", detail=f"device unregistered: {reason}"[:2000])
    async with pool.acquire() as connection, connection.transaction():
        if request.profileId and token:
            await feedback_store.forget_device(connection, request.tenant, request.profileId,
                                               token)
        await reaction_store.record(connection, [reaction])
