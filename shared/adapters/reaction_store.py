"""Reactions recorded in PostgreSQL first (migration 015) — once, by their id — and
produced to ``parcours.reactions.v1`` afterwards by a relay from their outbox (migration
050), so whoever records one (the tracking service answering a click, a webhook) answers
at PostgreSQL's speed, whatever Kafka's, and nothing recorded is lost.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg
from aiokafka.errors import KafkaError

from shared.adapters import erasure
from shared.adapters.producer import RenewingProducer
from shared.domain.reactions import Reaction, reason_of
from shared.topics import REACTIONS

# A new reaction, its outbox row and its row in its message's trace (stage 'reaction',
# outcome its kind, reason ``$8``) in one statement; a reaction recorded before gets none
# of them (it is not returned). The trace row is written here, once, rather than by the
# consumer of the topic after a look-up of the trace: the relay marks what it produces
# (``TRACED_HEADER``) and the reactions service traces only records without the mark
# (those a platform team produced straight to the topic).
_RECORD = """
WITH new AS (
    INSERT INTO reactions (tenant_id, reaction_id, message_id, kind, at, profile_id, record)
    SELECT * FROM unnest($1::text[], $2::uuid[], $3::uuid[], $4::text[], $5::timestamptz[],
                         $6::text[], $7::text[]::json[])
    ON CONFLICT (tenant_id, reaction_id) DO NOTHING
    RETURNING tenant_id, reaction_id, message_id, kind, at
), traced AS (
    INSERT INTO message_trace (tenant_id, message_id, at, stage, outcome, reason, verdicts)
    SELECT n.tenant_id, n.message_id, n.at, 'reaction', n.kind, u.reason,
           jsonb_build_object('reactionId', n.reaction_id::text)
      FROM new n JOIN unnest($1::text[], $2::uuid[], $8::text[]) AS u(tenant_id, reaction_id,
                                                                      reason)
           USING (tenant_id, reaction_id)
)
INSERT INTO reaction_outbox (tenant_id, reaction_id)
SELECT tenant_id, reaction_id FROM new
RETURNING reaction_id
"""
# On every record the relay produces: it was traced when it was recorded.
TRACED_HEADER = ("parcours-traced", b"1")


async def record(connection: asyncpg.Connection | asyncpg.Pool, reactions: Sequence[Reaction]
                 ) -> list[Reaction]:
    """Record the reactions not seen before; returns those (the others were already)."""
    if not reactions:
        return []
    rows = await connection.fetch(
        _RECORD, [r.tenant for r in reactions], [uuid.UUID(r.reactionId) for r in reactions],
        [uuid.UUID(r.messageId) for r in reactions], [r.kind.value for r in reactions],
        [r.at for r in reactions], [r.profileId for r in reactions],
        [r.model_dump_json() for r in reactions], [reason_of(r) for r in reactions])
    new = {str(row["reaction_id"]) for row in rows}
    return [r for r in reactions if r.reactionId in new]


# The oldest outbox rows this relay can take (others' are locked: SKIP LOCKED), deleted,
# and the records they name as stored (each was a valid Reaction when recorded) with
# their keys as Reaction.key makes them: produced without parsing and serialising each
# one again (a third of the relay's CPU under a click flood). The deletion holds until the
# transaction commits, after the producing: a failure in between puts them back.
_TAKE = """
WITH taken AS (
    DELETE FROM reaction_outbox
     WHERE id = ANY(ARRAY(SELECT id FROM reaction_outbox{gathered}
                           ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED))
    RETURNING id, tenant_id, reaction_id
)
SELECT r.record::text AS value,
       coalesce(nullif(r.profile_id, ''), nullif(r.record ->> 'address', ''),
                r.record ->> 'messageId') AS key
  FROM taken t JOIN reactions r USING (tenant_id, reaction_id)
 ORDER BY t.id
"""
_UNPUBLISHED = _TAKE.format(gathered="")
# The same, once the oldest row waiting that this relay can take (not locked by another)
# is ``$2`` seconds old (see ``relay``'s gather_s).
_UNPUBLISHED_GATHERED = _TAKE.format(gathered="""
                            WHERE (SELECT recorded_at FROM reaction_outbox ORDER BY id
                                    LIMIT 1 FOR UPDATE SKIP LOCKED)
                                  <= now() - make_interval(secs => $2)""")
GATHER_S = 0.1  # what the services' relay loops pass
RELAY_BOUND_S = 30.0  # a round's records not acknowledged by then go back to the outbox


async def relay(source: asyncpg.Pool | asyncpg.Connection, producer: RenewingProducer,
                limit: int = 500, gather_s: float = 0.0) -> int:
    """Produce up to ``limit`` recorded reactions, oldest first, and take them out of the
    outbox, in one transaction: a crash in between produces them again (a consumer
    deduplicates by reactionId), never loses them. Several relays take different rows.
    The row of a reaction erased meanwhile is taken and nothing produced for it.

    ``gather_s``: nothing is taken until the oldest row waiting (of those no other relay
    holds) is that old, so a flood of reactions goes to Kafka in batches of that many
    seconds' worth (the reactions service's relay, services/reactions/relay.py, and its
    replicas), instead of a few rows per round trip: every produce request, and every
    fetch it wakes in each consumer group, costs the broker and the consumers about the
    same whatever it carries (on this stack a flood of clicks cost Kafka 3-5× more per
    reaction in batches of 20 than of 200). ``source``: a pool, or a connection of the
    relay's own (no reset query after each round)."""
    if isinstance(source, asyncpg.Connection):
        async with source.transaction():
            return await _relay_in(source, producer, limit, gather_s)
    async with source.acquire() as connection, connection.transaction():
        return await _relay_in(connection, producer, limit, gather_s)


async def _relay_in(connection: asyncpg.Connection, producer: RenewingProducer, limit: int,
                    gather_s: float) -> int:
    if gather_s > 0:
        rows = await connection.fetch(_UNPUBLISHED_GATHERED, limit, gather_s)
    else:
        rows = await connection.fetch(_UNPUBLISHED, limit)
    if rows:
        # In the producer's batches directly, a batch per partition (partitioned as send()
        # would): about 14 µs of CPU a record against 24 with a send() each.
        headers = [TRACED_HEADER]
        written = await producer.deliver_batched(
            [(REACTIONS.name, row["value"].encode(), row["key"].encode(), headers)
             for row in rows], RELAY_BOUND_S)
        if not all(written):  # the transaction rolls back: they stay in the outbox
            raise KafkaError(f"{written.count(False)} of {len(rows)} reactions were not"
                             f" written within {RELAY_BOUND_S:.0f} s")
    return len(rows)


async def _erase(connection: asyncpg.Connection, tenant: str, profile_id: str
                 ) -> dict[str, int]:
    status = await connection.execute(
        "DELETE FROM reactions WHERE tenant_id = $1 AND profile_id = $2", tenant, profile_id)
    return {"reactions": int(status.split()[-1])}


async def _export(connection: asyncpg.Connection, tenant: str, profile_id: str
                  ) -> dict[str, object]:
    rows = await connection.fetch(
        "SELECT record FROM reactions WHERE tenant_id = $1 AND profile_id = $2 ORDER BY at",
        tenant, profile_id)
    return {"reactions": [row["record"] for row in rows]}


erasure.register(erasure.PersonalData("reactions", _erase, _export))
