"""Tracked messages (migration 016): what the email sender stores before handing a message
with tracked links over, and the one statement a pixel or a click makes of it (read and
record); and the reactions' rows in the message's trace."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, NamedTuple

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


# An open's or a click's whole write in one statement: its message looked up by primary
# key and, where it is known, not expired and has the link, its reaction recorded (the
# outbox row, its trace row) with the record built here from the message's columns — one
# round trip a batch instead of a look-up and then a write (TRACK: the look-up's wait was
# a fifth of a click's time). Each hit comes with both reactions the message's sending
# time may make of it (``Hit``): a person's, and a scanner's when it came within the
# scanner window; which one is this statement's only judgement.
_HIT = """
WITH judged AS (
    SELECT h.i, h.tenant_id, h.message_id, h.kind, h.idx, h.at, t.channel, t.profile_id,
           t.address, t.origin, t.links[h.idx + 1] AS url,
           CASE WHEN h.idx IS NOT NULL AND h.idx >= cardinality(t.links) THEN 'unknown'
                WHEN $14::interval IS NOT NULL AND t.sent_at < h.at - $14::interval
                THEN 'expired' END AS refused,
           e.early,
           CASE WHEN e.early THEN h.early_id ELSE h.late_id END AS reaction_id,
           CASE WHEN e.early THEN h.early_machine ELSE h.late_machine END AS machine,
           CASE WHEN e.early THEN h.early_reason ELSE h.late_reason END AS machine_reason,
           CASE WHEN e.early THEN h.early_mark ELSE h.late_mark END AS mark
      FROM unnest($1::text[], $2::uuid[], $3::text[], $4::int[], $5::timestamptz[],
                  $6::uuid[], $7::bool[], $8::text[], $9::text[],
                  $10::uuid[], $11::bool[], $12::text[], $13::text[])
           WITH ORDINALITY AS h(tenant_id, message_id, kind, idx, at,
                                late_id, late_machine, late_reason, late_mark,
                                early_id, early_machine, early_reason, early_mark, i)
      JOIN tracked_messages t USING (tenant_id, message_id)
     CROSS JOIN LATERAL (SELECT coalesce(h.at - t.sent_at < $15::interval, false)) AS e(early)
), new AS (
    INSERT INTO reactions (tenant_id, reaction_id, message_id, kind, at, profile_id, record)
    SELECT tenant_id, reaction_id, message_id, kind, at, profile_id,
           json_build_object(
               'v', 1, 'reactionId', reaction_id, 'tenant', tenant_id,
               'messageId', message_id, 'kind', kind, 'at', at, 'channel', channel,
               'profileId', profile_id, 'address', address, 'origin', origin,
               'link', CASE WHEN idx IS NOT NULL
                            THEN json_build_object('index', idx, 'url', url) END,
               'bounce', NULL, 'machine', machine, 'machineReason', machine_reason,
               'source', 'tracking', 'detail', NULL)
      FROM judged
     WHERE refused IS NULL
     ORDER BY i  -- of one reaction twice in the batch, the first is stored
    ON CONFLICT (tenant_id, reaction_id) DO NOTHING
    RETURNING tenant_id, reaction_id, message_id, kind, at
), traced AS (
    INSERT INTO message_trace (tenant_id, message_id, at, stage, outcome, reason, verdicts)
    SELECT DISTINCT ON (reaction_id)
           tenant_id, message_id, at, 'reaction', kind,
           nullif(concat_ws('; ', CASE WHEN idx IS NOT NULL
                                       THEN left('link ' || idx || ': ' || url, 500) END,
                            mark), ''),
           jsonb_build_object('reactionId', reaction_id::text)
      FROM judged
     WHERE refused IS NULL AND reaction_id IN (SELECT reaction_id FROM new)
     ORDER BY reaction_id, i
), outboxed AS (
    INSERT INTO reaction_outbox (tenant_id, reaction_id)
    SELECT tenant_id, reaction_id FROM new
)
-- A reaction id names its tenant (reaction_rows.open_or_click_id): compared alone, and
-- by a hashed subplan rather than a join of the two CTEs (planned as nested loops over
-- their scans: a batch's rows squared).
SELECT i, refused, url, reaction_id::text AS reaction_id,
       refused IS NULL AND reaction_id IN (SELECT reaction_id FROM new) AS new
  FROM judged
"""


class Hit(NamedTuple):
    """An open (``index`` None) or a click of a link, as the request made it: the
    reaction a person's (``late_*``) or a scanner's (``early_*``, within the scanner
    window of the message's sending) would be — id, machine flag and reason, and the mark
    its trace row carries (``reactions.trace_reason`` without the link). The fields are
    the statement's columns, in order: a batch's columns are ``zip(*hits)``."""

    tenant: str
    message_id: str
    kind: str
    index: int | None
    at: datetime
    late_id: str
    late_machine: bool
    late_reason: str | None
    late_mark: str | None
    early_id: str
    early_machine: bool
    early_reason: str | None
    early_mark: str | None


class Recorded(NamedTuple):
    """What became of a hit: ``refused`` "unknown" (no such message or link) or
    "expired"; else the link's URL (None for an open), its reaction's id, and whether the
    reaction is new (a repeat, or an earlier hit of the same batch, is not)."""

    refused: Literal["unknown", "expired"] | None
    url: str | None = None
    reaction_id: str | None = None
    new: bool = False


_UNKNOWN = Recorded("unknown")


async def record_hits(connection: asyncpg.Connection, hits: Sequence[Hit],
                      keep: timedelta | None, window: timedelta) -> list[Recorded]:
    """One statement for a batch of hits (see ``_HIT``), answers in order. ``keep``: the
    links of a message sent longer ago are expired; ``window``: a hit that soon after
    the sending is a scanner's."""
    if not hits:
        return []
    rows = await connection.fetch(_HIT, *zip(*hits, strict=True), keep, window)
    answers = [_UNKNOWN] * len(hits)  # a hit whose message is not stored has no row
    for row in rows:
        answers[row["i"] - 1] = (Recorded(row["refused"]) if row["refused"] is not None else
                                 Recorded(None, row["url"], row["reaction_id"], row["new"]))
    seen: set[str] = set()  # one reaction twice in the batch: the first is new
    for n, answer in enumerate(answers):
        if answer.new and answer.reaction_id in seen:
            answers[n] = answer._replace(new=False)
        if answer.reaction_id is not None:
            seen.add(answer.reaction_id)
    return answers
