"""What events keep about a profile, for erasure and export: events held for it (paused
or scheduled: their record carries its address and the event's data) and its addresses
quoted in statuses' reasons and in the delivery ledger's provider replies.

Held events of an erased profile are dropped and end ``targetingFailed`` ("its profile
was erased"), so every accepted event still reaches a final status. Reasons and replies
keep their text with each address replaced by ``[erased]``. Both are found through the
profile's addresses, so this runs before the profile row goes; reasons and replies through
trigram indexes on their texts, whatever wrote them and whichever profile's event they
concern (a reply may quote any address).
"""

from __future__ import annotations

import re
from typing import Any

import asyncpg

from shared.adapters import erasure
from shared.adapters.status_store import record_statuses
from shared.domain.status import Status, StatusWrite

ERASED = "[erased]"

_ADDRESSES = """
SELECT email, mobile_phone,
       ARRAY(SELECT d->>'registrationToken' FROM jsonb_array_elements(push_registrations) d)
         AS tokens
  FROM profiles WHERE tenant_id = $1 AND profile_id = $2 AND NOT is_test
"""

# By target (email in any case, phone, a device's token) or by the profile key field the
# event's configuration names.
_HELD = """
SELECT h.pkey, h.event_id, h.trigger FROM held_events h
  LEFT JOIN event_configs c ON c.tenant_id = h.tenant_id AND c.event_id = h.event_id
 WHERE h.tenant_id = $1
   AND (lower(h.trigger->'target'->>'email') = lower($2)
        OR h.trigger->'target'->>'mobilePhone' = $3
        OR h.trigger->'target'->>'registrationToken' = ANY($4::text[])
        OR h.trigger->'ctx'->>coalesce(c.definition->>'profile_key',
                                       c.definition->>'profileKey') = $5)
 ORDER BY h.pkey
"""


async def _addresses(connection: asyncpg.Connection, tenant: str, profile_id: str
                     ) -> tuple[str | None, str | None, list[str]] | None:
    row = await connection.fetchrow(_ADDRESSES, tenant, profile_id)
    return None if row is None else (row["email"], row["mobile_phone"], list(row["tokens"]))


async def _held(connection: asyncpg.Connection, tenant: str, profile_id: str
                ) -> list[asyncpg.Record]:
    found = await _addresses(connection, tenant, profile_id)
    email, phone, tokens = found or (None, None, [])
    return await connection.fetch(_HELD, tenant, email, phone, tokens, profile_id)


# The rows quoting an address are found through the trigram indexes on the texts
# (migration 012), not by reading every status and delivery of the tenant.
REDACT_REASONS = """
UPDATE event_status SET reason = regexp_replace(reason, $2, $3, 'gi')
 WHERE tenant_id = $1 AND reason ~* $2
"""
REDACT_REPLIES = """
UPDATE deliveries SET detail = regexp_replace(detail, $2, $3, 'gi')
 WHERE tenant_id = $1 AND detail ~* $2
"""


def _pattern(terms: list[str]) -> str | None:
    """A case-insensitive regular expression (PostgreSQL's ARE) matching any term."""
    terms = [t for t in terms if t and len(t) >= 4]  # a shorter one would match anything
    return "|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True)) or None


async def _erase(connection: asyncpg.Connection, tenant: str, profile_id: str
                 ) -> dict[str, int]:
    found = await _addresses(connection, tenant, profile_id)
    if found is None:
        return {"heldEvents": 0, "statusReasons": 0, "deliveryReplies": 0}
    email, phone, tokens = found
    held = await connection.fetch(_HELD + " FOR UPDATE OF h", tenant, email, phone, tokens,
                                  profile_id)
    held = await connection.fetch(
        "DELETE FROM held_events WHERE pkey = ANY($1::text[]) RETURNING pkey, event_id",
        [row["pkey"] for row in held])
    await record_statuses(connection, [
        StatusWrite(row["pkey"], tenant, row["event_id"], Status.TARGETING_FAILED,
                    "its profile was erased") for row in held])
    pattern = _pattern([email or "", phone or "", *tokens])
    reasons = replies = "UPDATE 0"
    if pattern is not None:
        reasons = await connection.execute(REDACT_REASONS, tenant, pattern, ERASED)
        replies = await connection.execute(REDACT_REPLIES, tenant, pattern, ERASED)
    return {"heldEvents": len(held), "statusReasons": int(reasons.split()[-1]),
            "deliveryReplies": int(replies.split()[-1])}


async def _export(connection: asyncpg.Connection, tenant: str, profile_id: str
                  ) -> dict[str, Any]:
    held = await _held(connection, tenant, profile_id)
    return {"heldEvents": [{"pKey": row["pkey"], "eventId": row["event_id"],
                            "event": row["trigger"]} for row in held]}


erasure.register(erasure.PersonalData("events", _erase, _export))
