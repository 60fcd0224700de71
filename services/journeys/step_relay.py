"""Step events to ``parcours.journey-steps.v1``: the steps the engine stored with its moves
(``journey_steps``), published in commit order from a watermark (transaction id, step id)
kept in ``journey_step_relay`` (migration 029). Only steps of transactions older than every
transaction still running are read (``pg_snapshot_xmin``): a step whose move commits late
is never skipped. The watermark moves after the broker acknowledged the batch, so a crash
publishes a batch again (same ``stepId``s), never loses one. Several engines take turns
through an advisory lock."""

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

_READ = (
    "SELECT id, tx::text AS tx, tenant_id, journey_id, version, instance_id::text,"
    " profile_id, at, kind, node, detail FROM journey_steps"
    " WHERE (tx, id) > ($1::xid8, $2) AND tx < pg_snapshot_xmin(pg_current_snapshot())"
    # the column, not the text alias above: in xid8 order (as text, tx 1000000 came
    # before 999999, skipping steps past the watermark) and by the (tx, id) index (as
    # text, every batch sorted the whole table)
    " ORDER BY journey_steps.tx, id LIMIT $3")


def step_event(row: asyncpg.Record) -> dict[str, Any]:
    """The record of a step, as StepEvent describes it (built as a plain dict: a model
    per step was a fifth of the relay's CPU at 500 inputs/s)."""
    return {"v": 1, "stepId": row["id"], "tenant": row["tenant_id"],
            "journeyId": row["journey_id"], "version": row["version"],
            "instanceId": row["instance_id"], "profileId": row["profile_id"],
            "at": row["at"].isoformat(), "kind": row["kind"], "node": row["node"],
            "detail": row["detail"]}


async def relay_once(engine: Engine) -> int:
    async with engine.pool.acquire() as connection, connection.transaction():
        if not await connection.fetchval("SELECT pg_try_advisory_xact_lock($1)", _LOCK):
            return 0
        mark = await connection.fetchrow(
            "SELECT last_tx::text AS tx, last_id FROM journey_step_relay WHERE relay = 'kafka'")
        if mark is None:  # the first run publishes what is there from now on
            await connection.execute(
                "INSERT INTO journey_step_relay (relay, last_tx, last_id)"
                " SELECT 'kafka', COALESCE(max(tx), '0'::xid8), COALESCE(max(id), 0)"
                " FROM journey_steps ON CONFLICT DO NOTHING")
            return 0
        rows = await connection.fetch(_READ, int(mark["tx"]), mark["last_id"], BATCH)
        if not rows:
            return 0
        # In the producer's batches directly (one per partition, partitioned as send()
        # would), not a send() each: the relay's CPU was most of the engine's thread when
        # profiles enter by the thousand (three steps each), on cores PostgreSQL needs.
        written = await engine.producer.deliver_batched([
            (JOURNEY_STEPS.name, encode(step_event(r)), r["profile_id"].encode())
            for r in rows], BOUND_S)
        if not all(written):  # the watermark stays: the batch is published again
            raise KafkaError(f"{written.count(False)} of {len(rows)} step events were not"
                             f" written within {BOUND_S:.0f} s")
        await connection.execute(
            "UPDATE journey_step_relay SET last_tx = $1::xid8, last_id = $2"
            " WHERE relay = 'kafka'", int(rows[-1]["tx"]), rows[-1]["id"])
        return len(rows)


async def run(engine: Engine) -> None:
    async def step() -> bool:
        count = await retry_forever(lambda: relay_once(engine), "relaying journey steps",
                                    (*DB_UNAVAILABLE, KafkaError),
                                    on_retry=RETRIES.labels("steps").inc)
        return count == BATCH
    await repeat("relaying journey steps", step, IDLE_S)
