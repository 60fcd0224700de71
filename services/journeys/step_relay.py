"""Step events to ``parcours.journey-steps.v1``: the steps the engine stored with its moves
(``journey_steps``), published in commit order from a watermark (transaction id, step id)
kept in ``journey_step_relay`` (migration 029). Only steps of transactions older than every
transaction still running are read (``pg_snapshot_xmin``): a step whose move commits late
is never skipped. The watermark moves after the broker acknowledged the batch, so a crash
publishes a batch again (same ``stepId``s), never loses one. Several engines take turns
through an advisory lock.

A cohort's steps (profiles entered set-wise: one row a cohort and step in
``journey_cohort_steps``, migration 056) are published as any step, one event a member:
the members read from their instances, each with its own ``stepId`` (``member_step_id``)."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from aiokafka.errors import KafkaError

from services.journeys.loops import repeat
from services.journeys.metrics import RETRIES
from services.journeys.wiring import Engine
from shared.adapters.kafka import encode
from shared.adapters.postgres import DB_UNAVAILABLE
from shared.resilience import retry_forever
from shared.topics import JOURNEY_STEPS

log = logging.getLogger(__name__)
BATCH = 2000
IDLE_S = 0.2
BOUND_S = 30.0  # a batch not acknowledged by then is published again
_LOCK = 7_061_729  # pg_try_advisory_xact_lock: one relay at a time

MEMBERS_AT_ONCE = 40_000  # a batch's cohort members: past this, the rest waits a batch
# The step ids of a cohort's members, beside the sequence's (below 2^50, a million steps a
# second for 35 years): 2^50 + the cohort step's id × 2^16 + the member's place among the
# cohort's instances in id order (a chunk is at most 10,000), all below 2^53, exact in
# JavaScript's numbers too.
MEMBER_IDS = 1 << 50
MEMBER_BITS = 16

# Both tables' steps in one (tx, id) order (one id sequence), each by its relay index.
_READ = """
SELECT s.id, s.tx::text AS tx, s.tenant_id, s.journey_id, s.version, s.instance_id::text,
       s.profile_id, s.at, s.kind, s.node, s.detail, s.cohort_id, s.members
FROM (
  (SELECT tx, id, tenant_id, journey_id, version, instance_id, profile_id, at, kind, node,
          detail, NULL::uuid AS cohort_id, 0 AS members
     FROM journey_steps
    WHERE (tx, id) > ($1::xid8, $2) AND tx < pg_snapshot_xmin(pg_current_snapshot())
    ORDER BY tx, id LIMIT $3)
  UNION ALL
  (SELECT tx, id, tenant_id, journey_id, version, NULL, NULL, at, kind, node, detail,
          cohort_id, members
     FROM journey_cohort_steps
    WHERE (tx, id) > ($1::xid8, $2) AND tx < pg_snapshot_xmin(pg_current_snapshot())
    ORDER BY tx, id LIMIT $3)
) s
-- the columns, not the text alias above: in xid8 order (as text, tx 1000000 came before
-- 999999, skipping steps past the watermark) and by the (tx, id) indexes
ORDER BY s.tx, s.id LIMIT $3"""

_MEMBERS = (  # by journey_instances_cohort_members (tenant, cohort, instance id)
    "SELECT instance_id::text, profile_id FROM journey_instances"
    " WHERE tenant_id = $1 AND cohort_id = $2"
    # the column, not the text alias: uuids sorted as text (a collation) were 16 of the
    # query's 26 ms for a cohort of 10,000; a cohort at a time, 12 ms
    " ORDER BY journey_instances.instance_id")


def step_event(row: asyncpg.Record | dict[str, Any]) -> dict[str, Any]:
    """The record of a step, as StepEvent describes it (built as a plain dict: a model
    per step was a fifth of the relay's CPU at 500 inputs/s)."""
    return {"v": 1, "stepId": row["id"], "tenant": row["tenant_id"],
            "journeyId": row["journey_id"], "version": row["version"],
            "instanceId": row["instance_id"], "profileId": row["profile_id"],
            "at": row["at"].isoformat(), "kind": row["kind"], "node": row["node"],
            "detail": row["detail"]}


def member_step_id(cohort_step_id: int, place: int) -> int:
    return MEMBER_IDS + (cohort_step_id << MEMBER_BITS) + place


def within_budget(rows: list[asyncpg.Record]) -> list[asyncpg.Record]:
    """The rows to publish in one batch: up to MEMBERS_AT_ONCE cohort members (at least
    one row, however many members it has)."""
    members = 0
    for n, row in enumerate(rows):
        members += row["members"]
        if members > MEMBERS_AT_ONCE and n:
            return rows[:n]
    return rows


Member = tuple[bytes, bytes, bytes]  # instance id and profile id as JSON, the record key


async def _members(connection: asyncpg.Connection, rows: list[asyncpg.Record]
                   ) -> dict[Any, list[Member]]:
    """Each cohort's members as they are now, in id order: an erased profile is gone, one
    moved on since is still a member."""
    found: dict[Any, list[Member]] = {}
    for row in rows:
        cohort = (row["tenant_id"], row["cohort_id"])
        if row["cohort_id"] is None or cohort in found:
            continue
        found[cohort] = [
            (encode(m["instance_id"]), encode(m["profile_id"]), m["profile_id"].encode())
            for m in await connection.fetch(_MEMBERS, *cohort)]
    return found


def _events(rows: list[asyncpg.Record], members: dict[Any, list[Member]]
            ) -> list[tuple[str, bytes, bytes]]:
    """(topic, value, key) of each step: a profile's, or each member's of a cohort's —
    the members' records joined from the step's encoded fields and theirs (a dict
    encoded a member was a tenth of the relay's CPU)."""
    topic = JOURNEY_STEPS.name
    out: list[tuple[str, bytes, bytes]] = []
    for row in rows:
        if row["cohort_id"] is None:
            out.append((topic, encode(step_event(row)), row["profile_id"].encode()))
            continue
        shared = step_event({**dict(row), "instance_id": None, "profile_id": None})
        for field in ("stepId", "instanceId", "profileId"):
            del shared[field]
        rest = b"," + encode(shared)[1:]  # the step's own fields, and the closing brace
        first = member_step_id(row["id"], 0)
        for place, (instance_id, profile_id, key) in enumerate(
                members.get((row["tenant_id"], row["cohort_id"]), ())):
            out.append((topic, b"".join((
                b'{"stepId":', b"%d" % (first + place), b',"instanceId":', instance_id,
                b',"profileId":', profile_id, rest)), key))
    return out


async def relay_once(engine: Engine) -> int:
    """Publish the next batch of steps; how many rows it took (steps, cohorts' steps)."""
    async with engine.pool.acquire() as connection, connection.transaction():
        if not await connection.fetchval("SELECT pg_try_advisory_xact_lock($1)", _LOCK):
            return 0
        mark = await connection.fetchrow(
            "SELECT last_tx::text AS tx, last_id FROM journey_step_relay WHERE relay = 'kafka'")
        if mark is None:  # the first run publishes what is there from now on
            await connection.execute(
                "INSERT INTO journey_step_relay (relay, last_tx, last_id)"
                " SELECT 'kafka', GREATEST((SELECT max(tx) FROM journey_steps),"
                "   (SELECT max(tx) FROM journey_cohort_steps), '0'::xid8),"
                "   GREATEST((SELECT max(id) FROM journey_steps),"
                "   (SELECT max(id) FROM journey_cohort_steps), 0)"
                " ON CONFLICT DO NOTHING")
            return 0
        read = await connection.fetch(_READ, int(mark["tx"]), mark["last_id"], BATCH)
        rows = within_budget(read)
        if not rows:
            return 0
        # In the producer's batches directly (one per partition, partitioned as send()
        # would), not a send() each: the relay's CPU was most of the engine's thread when
        # profiles enter by the thousand (three steps each), on cores PostgreSQL needs.
        events = _events(rows, await _members(connection, rows))
        written = await engine.producer.deliver_batched(events, BOUND_S)
        if not all(written):  # the watermark stays: the batch is published again
            raise KafkaError(f"{written.count(False)} of {len(events)} step events were not"
                             f" written within {BOUND_S:.0f} s")
        await connection.execute(
            "UPDATE journey_step_relay SET last_tx = $1::xid8, last_id = $2"
            " WHERE relay = 'kafka'", int(rows[-1]["tx"]), rows[-1]["id"])
        return len(read) if len(rows) == len(read) else BATCH  # cut short: more to do


async def run(engine: Engine) -> None:
    async def step() -> bool:
        count = await retry_forever(lambda: relay_once(engine), "relaying journey steps",
                                    (*DB_UNAVAILABLE, KafkaError),
                                    on_retry=RETRIES.labels("steps").inc)
        return count == BATCH
    await repeat("relaying journey steps", step, IDLE_S)
