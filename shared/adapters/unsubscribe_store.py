"""What an unsubscribe writes (issue 11): the consent change and the message's one
``unsubscribed`` reaction, in the caller's transaction. Shared by the tracking service's
one-click link and preference page and the bounce service's mailto address."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from shared.adapters import consent_store, reaction_store, sent_messages
from shared.domain.consent import ConsentChange, unsubscribe
from shared.domain.events import Channel
from shared.domain.reactions import Reaction, ReactionKind, reaction_id
from shared.domain.routing import EventOrigin
from shared.domain.unsubscribe_links import Unsubscribe

LIST_UNSUBSCRIBE = "list-unsubscribe"  # the one-click link and the mailto address
PREFERENCES = "preferences"  # the preference page


async def record_withdrawal(connection: asyncpg.Connection, named: Unsubscribe, detail: str,
                            source: str) -> bool:
    """The ``unsubscribed`` reaction of the message, once (its id is the message's); True
    if it is new."""
    sent = await sent_messages.find(connection, named.message_id)
    origin = (EventOrigin(eventId=sent.origin_id, pKey=sent.pkey)
              if sent and sent.origin_kind == "event" and sent.origin_id and sent.pkey
              else None)
    return bool(await reaction_store.record(connection, [Reaction(
        reactionId=reaction_id(named.tenant, named.message_id, ReactionKind.UNSUBSCRIBED),
        tenant=named.tenant, messageId=named.message_id, kind=ReactionKind.UNSUBSCRIBED,
        at=datetime.now(UTC), channel=Channel(named.channel), profileId=named.profile_id,
        origin=origin, source=source, detail=detail)]))


async def apply(connection: asyncpg.Connection, named: Unsubscribe,
                changes: list[ConsentChange], source: str) -> None:
    await consent_store.apply_changes(connection, named.tenant, [
        (named.profile_id, change, source) for change in changes], datetime.now(UTC))


async def one_click(pool: asyncpg.Pool, named: Unsubscribe, detail: str) -> bool:
    """Marketing consent on the named channel withdrawn and the reaction recorded, in one
    transaction; idempotent. True if the reaction is new."""
    async with pool.acquire() as connection, connection.transaction():
        await apply(connection, named, [unsubscribe(named.channel)], LIST_UNSUBSCRIBE)
        return await record_withdrawal(connection, named, detail, LIST_UNSUBSCRIBE)
