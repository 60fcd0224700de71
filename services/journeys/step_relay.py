"""Step events to ``parcours.journey-steps.v3``: the steps the engine stored with its moves
(``journey_steps``), published in commit order from a watermark (transaction id, step id)
kept in ``journey_step_relay`` (migration 029). Only steps of transactions older than every
transaction still running are read (``pg_snapshot_xmin``): a step whose move commits late
is never skipped. The watermark moves after the broker acknowledged the batch, so a crash
publishes a batch again (same ``stepId``s), never loses one. Several engines take turns
through an advisory lock.

A record holds a batch's consecutive steps of the same members (``runs``): a profile's
steps are a record of one member; a cohort's (profiles entered set-wise: one row a cohort
and step in ``journey_cohort_steps``, migration 056) a record for each partition its
members' profile ids go to, and each 1,000 of them, keyed by the record's first member:
the members read from their instances once a batch, grouped and encoded once, and sent
once for all of the cohort's steps in it (a record a step sent them three times)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import asyncpg
import orjson
from aiokafka.errors import KafkaError

from services.journeys.loops import repeat
from services.journeys.metrics import RETRIES
from services.journeys.wiring import Engine
from shared.adapters.journey_store import WholeCohort
from shared.adapters.kafka import encode
from shared.adapters.postgres import DB_UNAVAILABLE
from shared.adapters.producer import key_partition
from shared.domain.journeys.step_events import MEMBERS_PER_RECORD, STEPS_PER_RECORD
from shared.resilience import retry_forever
from shared.topics import JOURNEY_STEPS

log = logging.getLogger(__name__)
BATCH = 2000
IDLE_S = 0.2
BOUND_S = 30.0  # a batch not acknowledged by then is published again
_LOCK = 7_061_729  # pg_try_advisory_xact_lock: one relay at a time

MEMBERS_AT_ONCE = 40_000  # a batch's cohorts' members: past this, the rest waits a batch

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

# A cohort's members, by journey_instances_cohort_of (migration 057): the cohort alone in
# the inner query (OFFSET 0 keeps the tenant's check out of it), so no index that starts
# with the tenant can be chosen — for a tenant new to the statistics the planner read
# every instance of it a cohort by one (16-21 µs a member for P7J's million). In profile
# id order by the outer query: the order an audience's members entered in (it is read by
# profile id), so the records of its cohorts' steps are the same whether their members
# were kept by the engine (``Engine.entered``, in the chunk's order) or read here (a test
# run's chunk is in the order of its list). Sorting in Python, after making the records
# into tuples, was 2 µs of the engine a member.
_MEMBERS = (
    "SELECT instance_id::text, profile_id FROM ("
    "  SELECT tenant_id, instance_id, profile_id FROM journey_instances"
    "   WHERE cohort_id = $2 OFFSET 0) members"
    " WHERE tenant_id = $1 ORDER BY profile_id")


def step_event(rows: Sequence[asyncpg.Record | dict[str, Any]],
               members: list[dict[str, str]]) -> dict[str, Any]:
    """The record of consecutive steps of the same members, as StepEvent describes it
    (built as a plain dict: a model per step was a fifth of the relay's CPU at 500 inputs/s);
    ``members`` last, so that a cohort's records can be joined from encoded pieces."""
    first = rows[0]
    return {"v": 3, "tenant": first["tenant_id"], "journeyId": first["journey_id"],
            "version": first["version"],
            "steps": [{"stepId": row["id"], "at": row["at"].isoformat(), "kind": row["kind"],
                       "node": row["node"], "detail": row["detail"]} for row in rows],
            "members": members}


def _subject(row: asyncpg.Record | dict[str, Any]) -> tuple[Any, ...]:
    """Whose step a row is: a cohort's (all its members) or one instance's."""
    if row["cohort_id"] is not None:
        return row["tenant_id"], row["cohort_id"], None
    return row["tenant_id"], None, row["instance_id"]


def runs(rows: Sequence[asyncpg.Record]) -> list[list[asyncpg.Record]]:
    """The rows cut into runs of consecutive steps of the same subject (a cohort, or one
    instance), each of at most STEPS_PER_RECORD: a record each (or each part of a
    cohort's). Consecutive only, so the steps keep their commit order in the records."""
    out: list[list[asyncpg.Record]] = []
    last: tuple[Any, ...] | None = None
    for row in rows:
        subject = _subject(row)
        if subject == last and len(out[-1]) < STEPS_PER_RECORD:
            out[-1].append(row)
        else:
            out.append([row])
        last = subject
    return out


def within_budget(rows: list[asyncpg.Record]) -> list[asyncpg.Record]:
    """The rows to publish in one batch: up to MEMBERS_AT_ONCE members of the cohorts in
    it (at least one row, however many members it has). A cohort's members count once,
    whatever its steps in the batch: they are read, grouped and encoded once a batch, so
    its steps stay together (counted a step, a cohort's third step began the next batch,
    which read its members again: 1,350,000 read for a million entering)."""
    members, seen = 0, set()
    for n, row in enumerate(rows):
        cohort = (row["tenant_id"], row["cohort_id"])
        if cohort in seen:
            continue  # its members read already
        if row["cohort_id"] is not None:
            seen.add(cohort)
            members += row["members"]
        if members > MEMBERS_AT_ONCE and n:
            return rows[:n]
    return rows


Part = tuple[bytes, bytes]  # a record's members as JSON (comma-joined), its key


def parts(members: Iterable[tuple[str, str]] | list[asyncpg.Record], partitions: int
          ) -> list[Part]:
    """A cohort's members (instance id, profile id, in profile id order) as records'
    member lists:
    grouped by the partition each profile id goes to, then by MEMBERS_PER_RECORD; each
    keyed by its first member, so the record lands where its members' own steps do."""
    grouped: dict[int, list[tuple[str, str, bytes]]] = {}
    for instance_id, profile_id in members:
        key = profile_id.encode()
        grouped.setdefault(key_partition(key, partitions), []).append(
            (instance_id, profile_id, key))
    out: list[Part] = []
    for partition in sorted(grouped):
        group = grouped[partition]
        for at in range(0, len(group), MEMBERS_PER_RECORD):
            piece = group[at:at + MEMBERS_PER_RECORD]
            # one encoding a record, its brackets cut (a copy of its size, not orjson's
            # buffer): two a member were a third of this (1.54 → 1.09 µs a member)
            listed = orjson.dumps([{"instanceId": i, "profileId": p} for i, p, _ in piece])
            out.append((listed[1:-1], piece[0][2]))
    return out


async def _cohort_parts(connection: asyncpg.Connection, rows: list[asyncpg.Record],
                        partitions: int, kept: dict[tuple[str, Any], WholeCohort]
                        ) -> dict[Any, list[Part]]:
    """Each cohort's members: as they entered when this engine entered it whole (kept,
    taken from ``kept`` once read), else as they are now, read from their instances (an
    erased profile is gone, one moved on since is still a member)."""
    found: dict[Any, list[Part]] = {}
    for row in rows:
        cohort = (row["tenant_id"], row["cohort_id"])
        if row["cohort_id"] is None or cohort in found:
            continue
        whole = kept.pop(cohort, None)
        if whole is not None:
            found[cohort] = parts(zip(map(str, whole.instance_ids), whole.profile_ids,
                                      strict=True), partitions)
        else:  # each record unpacks as (instance id, profile id)
            found[cohort] = parts(await connection.fetch(_MEMBERS, *cohort), partitions)
    return found


def _events(rows: list[asyncpg.Record], cohorts: dict[Any, list[Part]]
            ) -> list[tuple[str, bytes, bytes]]:
    """(topic, value, key) of each run of steps: a profile's, or a cohort's for each of
    its parts — the steps' encoded fields joined with the part's members (a dict encoded
    a member was a tenth of the relay's CPU)."""
    topic = JOURNEY_STEPS.name
    out: list[tuple[str, bytes, bytes]] = []
    for run in runs(rows):
        first = run[0]
        if first["cohort_id"] is None:
            member = {"instanceId": first["instance_id"], "profileId": first["profile_id"]}
            out.append((topic, encode(step_event(run, [member])),
                        first["profile_id"].encode()))
            continue
        head = encode(step_event(run, []))[:-2]  # up to the members' opening bracket
        for members, key in cohorts.get((first["tenant_id"], first["cohort_id"]), ()):
            out.append((topic, b"".join((head, members, b"]}")), key))
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
        partitions = await engine.producer.partitions(JOURNEY_STEPS.name)
        events = _events(rows, await _cohort_parts(connection, rows, partitions,
                                                     engine.entered))
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
