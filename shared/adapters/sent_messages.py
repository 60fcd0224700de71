"""Who a sent message was for, from the delivery ledger (``deliveries``: tenant, channel,
pKey) and the contact history (profile, origin), with the profile's address now: what a
reaction that names only the message id needs to be recorded (a DSN to its return path,
a provider's receipt, an app's push open)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg

from shared.domain.routing import EventOrigin

_FIND = """
SELECT d.tenant_id, d.channel, d.pkey, c.profile_id, c.origin_kind, c.origin_id,
       c.transactional, p.profile_id IS NOT NULL AS profile_exists, p.email
  FROM deliveries d
  LEFT JOIN contact_history c ON c.tenant_id = d.tenant_id AND c.message_id = d.message_id
  LEFT JOIN profiles p ON p.tenant_id = c.tenant_id AND p.profile_id = c.profile_id
 WHERE d.message_id = $1
"""


@dataclass(frozen=True)
class SentMessage:
    message_id: str
    tenant: str
    channel: str
    pkey: str | None  # an event's message; None for a journey's
    profile_id: str | None  # None for an event-based message (sent to an address)
    origin_kind: str | None  # 'event' or 'journey'; None without a contact history row
    origin_id: str | None
    transactional: bool | None
    profile_exists: bool  # not erased since
    profile_email: str | None  # the profile's address now

    @property
    def origin(self) -> EventOrigin | None:
        """An event's message's origin; a journey's is not rebuilt from these rows."""
        if self.origin_kind == "event" and self.origin_id and self.pkey:
            return EventOrigin(eventId=self.origin_id, pKey=self.pkey)
        return None


async def find(connection: asyncpg.Connection | asyncpg.Pool, message_id: str
               ) -> SentMessage | None:
    row = await connection.fetchrow(_FIND, uuid.UUID(message_id))
    if row is None:
        return None
    return SentMessage(message_id, row["tenant_id"], row["channel"], row["pkey"],
                       row["profile_id"], row["origin_kind"], row["origin_id"],
                       row["transactional"], row["profile_exists"], row["email"])
