"""A profile's recent messages, for the admin API (``GET /admin/v1/profiles/{id}/messages``,
services/admin/profile_routes.py): its contact history, newest first, each message with
what the ledger and the journey engine add.

One statement: the ``limit`` newest rows of the profile's contact history, read backwards
along the index ``contact_history_profile (tenant_id, profile_id, contact_at)``; then per
row, the delivery ledger's row (``deliveries``: the pKey of an event's message, the
sender's state, attempts and reply; its primary key (message_id, accepted_day), one probe
per weekly partition) and, for a journey's message, the engine's ``actionSent`` step
(node and version; ``journey_steps_profile``, the profile's steps). A message excluded or
deferred before it reached a sender has no ledger row: no pKey then (the contact history
does not keep it)."""

from __future__ import annotations

from typing import Any

import asyncpg

_RECENT = """
SELECT h.message_id, h.channel, h.origin_kind, h.origin_id, h.transactional, h.contact_at,
       h.decided_at, h.outcome, h.rule_id, h.reason,
       d.pkey, d.state, d.attempts, d.detail, d.updated_at AS delivery_at,
       j.node, j.version
  FROM (SELECT * FROM contact_history
         WHERE tenant_id = $1 AND profile_id = $2
         ORDER BY contact_at DESC LIMIT $3) h
  LEFT JOIN LATERAL (
        SELECT pkey, state, attempts, detail, updated_at FROM deliveries x
         WHERE x.message_id = h.message_id AND x.tenant_id = $1 LIMIT 1) d ON true
  LEFT JOIN LATERAL (
        SELECT node, version FROM journey_steps s
         WHERE h.origin_kind = 'journey' AND s.tenant_id = $1 AND s.profile_id = $2
           AND s.kind = 'actionSent' AND s.detail = h.message_id::text LIMIT 1) j ON true
 ORDER BY h.contact_at DESC, h.message_id
"""


async def recent_messages(connection: asyncpg.Connection | asyncpg.Pool, tenant: str,
                          profile_id: str, limit: int) -> list[dict[str, Any]]:
    """The profile's ``limit`` newest messages by contact instant (when sent, or due for
    a deferred or scheduled one), as the admin API shows them."""
    rows = await connection.fetch(_RECENT, tenant, profile_id, limit)
    return [_message(row) for row in rows]


def _message(row: asyncpg.Record) -> dict[str, Any]:
    journey = row["origin_kind"] == "journey"
    message: dict[str, Any] = {
        "messageId": str(row["message_id"]), "channel": row["channel"],
        "origin": {"kind": row["origin_kind"], "id": row["origin_id"],
                   **({"version": row["version"], "nodeId": row["node"]}
                      if journey and row["node"] is not None else {})},
        "eventId": None if journey else row["origin_id"],
        "journeyId": row["origin_id"] if journey else None,
        "pKey": row["pkey"], "transactional": row["transactional"],
        "outcome": row["outcome"], "rule": row["rule_id"], "reason": row["reason"],
        "contactAt": row["contact_at"].isoformat(), "decidedAt": row["decided_at"].isoformat(),
        "delivery": None if row["state"] is None else {
            "state": row["state"], "attempts": row["attempts"], "detail": row["detail"],
            "at": row["delivery_at"].isoformat()},
    }
    return message
