"""Tracked messages (migration 016): what the email sender stores before handing a message
with tracked links over, and the one indexed read a pixel or a click makes of it; and the
reactions' rows in the message's trace."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import orjson

from shared.adapters import erasure
from shared.adapters.postgres import PLAN_BY_INDEX
from shared.domain.reactions import Reaction, reason_of


@dataclass(frozen=True)
class TrackedMessage:
    tenant: str
    message_id: str
    channel: str
    profile_id: str | None
    address: str | None  # only without a profile id
    origin: dict[str, object]
    links: tuple[str, ...]
    sent_at: datetime | None = None  # the store's clock when remembered


_REMEMBER = """
INSERT INTO tracked_messages (tenant_id, message_id, channel, profile_id, address, origin,
                              links)
SELECT t, m, c, p, a, o::jsonb,
       ARRAY(SELECT e FROM jsonb_array_elements_text(l::jsonb) WITH ORDINALITY AS x(e, i)
              ORDER BY i)
  FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[],
              $7::text[]) AS u(t, m, c, p, a, o, l)
ON CONFLICT (tenant_id, message_id) DO NOTHING
"""


async def remember(connection: asyncpg.Connection | asyncpg.Pool,
                   messages: Sequence[TrackedMessage]) -> None:
    """One statement for many messages. Once per message: a message sent again (a retried
    batch) renders the same links, and its row stays as first stored."""
    if not messages:
        return
    await connection.execute(
        _REMEMBER, [m.tenant for m in messages], [uuid.UUID(m.message_id) for m in messages],
        [m.channel for m in messages], [m.profile_id for m in messages],
        [m.address for m in messages], [orjson.dumps(m.origin).decode() for m in messages],
        # As JSON text: asyncpg would read a list in an array parameter as another
        # dimension, and the messages' link counts differ.
        [orjson.dumps(m.links).decode() for m in messages])


_LOOKUP = """
SELECT k.i, t.tenant_id, t.message_id::text AS message_id, channel, profile_id, address,
       origin::text AS origin, links, sent_at
  FROM unnest($1::text[], $2::uuid[]) WITH ORDINALITY AS k(tenant_id, message_id, i)
  JOIN tracked_messages t USING (tenant_id, message_id)
"""


async def lookup(connection: asyncpg.Connection | asyncpg.Pool,
                 keys: Sequence[tuple[str, str]]) -> list[TrackedMessage | None]:
    """The messages named by (tenant, message id), in order (None: not stored); one
    statement on the primary key. Each row says which key it answers (its ordinal), so
    no id is parsed or compared here."""
    found: list[TrackedMessage | None] = [None] * len(keys)
    for row in await connection.fetch(_LOOKUP, [tenant for tenant, _ in keys],
                                      [message for _, message in keys]):
        found[row["i"] - 1] = TrackedMessage(
            row["tenant_id"], row["message_id"], row["channel"], row["profile_id"],
            row["address"], orjson.loads(row["origin"]), tuple(row["links"]), row["sent_at"])
    return found


_TRACE = """
INSERT INTO message_trace (tenant_id, message_id, at, stage, outcome, reason, verdicts)
SELECT u.t, u.m, u.at, 'reaction', u.kind, u.reason, jsonb_build_object('reactionId', u.r)
  FROM unnest($1::text[], $2::uuid[], $3::timestamptz[], $4::text[], $5::text[], $6::text[])
       AS u(t, m, at, kind, reason, r)
 WHERE NOT EXISTS (SELECT 1 FROM message_trace x
                    WHERE x.tenant_id = u.t AND x.message_id = u.m AND x.stage = 'reaction'
                      AND x.verdicts ->> 'reactionId' = u.r)
RETURNING verdicts ->> 'reactionId' AS reaction_id
"""


async def trace(connection: asyncpg.Connection, reactions: Sequence[Reaction]) -> list[Reaction]:
    """A trace row (stage 'reaction', outcome its kind) per reaction not traced before;
    returns those (a redelivered record adds nothing)."""
    if not reactions:
        return []
    # One reaction twice in a batch (a relay killed after producing and before its commit
    # produces its rows again, and both copies may come in one fetch): the check below
    # sees only rows stored before the statement, so the batch is deduplicated here.
    reactions = list({r.reactionId: r for r in reactions}.values())
    async with connection.transaction():
        # The check that a reaction is not traced yet as a look-up of its message's rows
        # in message_trace_message, whatever the statistics say. Planned from statistics
        # taken while the table was small (a new tenant, after a purge), it became a hash
        # anti-join over a sequential scan of the whole table, for every batch, while a
        # click flood made the table grow: 65-71 µs a reaction in the TRACK bench against
        # 7 by the index (EXPLAIN ANALYZE, batches of 300).
        await connection.execute(PLAN_BY_INDEX)
        rows = await connection.fetch(
            _TRACE, [r.tenant for r in reactions], [r.messageId for r in reactions],
            [r.at for r in reactions], [r.kind.value for r in reactions],
            [reason_of(r) for r in reactions], [r.reactionId for r in reactions])
    new = {row["reaction_id"] for row in rows}
    return [r for r in reactions if r.reactionId in new]


async def _erase(connection: asyncpg.Connection, tenant: str, profile_id: str
                 ) -> dict[str, int]:
    status = await connection.execute(
        "DELETE FROM tracked_messages WHERE tenant_id = $1 AND profile_id = $2",
        tenant, profile_id)
    return {"trackedMessages": int(status.split()[-1])}


async def _export(connection: asyncpg.Connection, tenant: str, profile_id: str
                  ) -> dict[str, object]:
    rows = await connection.fetch(
        "SELECT message_id::text, links, sent_at FROM tracked_messages"
        " WHERE tenant_id = $1 AND profile_id = $2 ORDER BY sent_at", tenant, profile_id)
    return {"trackedMessages": [{"messageId": r["message_id"], "links": list(r["links"]),
                                  "sentAt": r["sent_at"].isoformat()} for r in rows]}


erasure.register(erasure.PersonalData("trackedMessages", _erase, _export))
