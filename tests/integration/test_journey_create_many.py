"""journey_store.create_many (a batch of entries, one statement per table) on the real
PostgreSQL: it writes exactly what ``create`` writes one by one — instances, timers,
steps, outbox — and skips what ``create`` skips: an instance that exists, a profile that
already has a live instance of the journey, the second of two entries of one profile in
the batch."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg

from shared.adapters import journey_store
from shared.adapters.journey_store import DOCUMENT
from shared.domain.journeys.advance import start
from shared.domain.journeys.instance import Step
from tests.unit.test_journey_advance import SEED, plan_of

NOW = datetime.now(UTC).replace(microsecond=0)


async def _rows(pool: asyncpg.Pool, tenant: str) -> dict[str, Any]:
    return {
        "instances": [dict(r) for r in await pool.fetch(
            "SELECT instance_id, journey_id, version, profile_id, state, node, token,"
            f" {DOCUMENT}, entered_at FROM journey_instances i WHERE tenant_id = $1"
            " ORDER BY instance_id", tenant)],
        "timers": [dict(r) for r in await pool.fetch(
            "SELECT instance_id, token, due_at FROM journey_timers WHERE tenant_id = $1"
            " ORDER BY instance_id, token", tenant)],
        "steps": [dict(r) for r in await pool.fetch(
            "SELECT journey_id, version, instance_id, profile_id, at, kind, node, detail"
            " FROM journey_steps WHERE tenant_id = $1 ORDER BY instance_id, id", tenant)],
        "outbox": [dict(r) for r in await pool.fetch(
            "SELECT effect_id, instance_id, kind, body FROM journey_outbox"
            " WHERE tenant_id = $1 ORDER BY effect_id", tenant)],
    }


async def test_a_batch_writes_what_create_writes_one_by_one(pool: asyncpg.Pool) -> None:
    plan = plan_of(SEED)
    batch, one_by_one = f"jcm-{uuid.uuid4().hex[:10]}", f"jcm-{uuid.uuid4().hex[:10]}"
    started = [start(plan, f"p{i}", 0, {}, NOW) for i in range(5)]
    async with pool.acquire() as connection:
        stored = await journey_store.create_many(connection, batch, started, NOW)
        for instance, effects in started:
            assert await journey_store.create(connection, one_by_one, instance, effects,
                                              NOW) is not None
    assert [s[0] for s in stored] == [i for i, _ in started]
    assert [[o.kind for o in w.outbox] for _, _, w in stored] == [["send", "send"]] * 5
    written = await _rows(pool, batch)
    assert written == await _rows(pool, one_by_one)
    assert (len(written["instances"]), len(written["timers"]), len(written["outbox"])) \
        == (5, 5, 10)
    assert len(written["steps"]) == 5 * sum(isinstance(e, Step) for e in started[0][1])


async def test_a_batch_skips_what_create_skips(pool: asyncpg.Pool) -> None:
    plan, tenant = plan_of(SEED), f"jcm-{uuid.uuid4().hex[:10]}"
    first = [start(plan, f"p{i}", 0, {}, NOW) for i in range(3)]
    async with pool.acquire() as connection:
        assert len(await journey_store.create_many(connection, tenant, first, NOW)) == 3
        before = await _rows(pool, tenant)
        # The same entries again (a redelivered batch): nothing stored, nothing written.
        assert await journey_store.create_many(connection, tenant, first, NOW) == []
        assert await _rows(pool, tenant) == before
        # p0 is in the journey already (another entry of it); p9 twice in one batch.
        again = [start(plan, "p0", 1, {}, NOW), start(plan, "p9", 0, {}, NOW),
                 start(plan, "p9", 1, {}, NOW)]
        stored = await journey_store.create_many(connection, tenant, again, NOW)
        assert await journey_store.create_many(connection, tenant, [], NOW) == []
    assert [(i.profile_id, i.instance_id) for i, _, _ in stored] == [
        ("p9", again[1][0].instance_id)]
    after = await _rows(pool, tenant)
    assert len(after["instances"]) == 4 and len(after["timers"]) == 4
    assert len(after["outbox"]) == 8
