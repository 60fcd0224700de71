"""The step relay's read (services/journeys/step_relay.py) on the real PostgreSQL: steps
come in transaction-id order as numbers (9 before 10, 99 before 100; as text they came
the other way, and the watermark then skipped the smaller), read through the
(tx, id) index rather than by sorting the table."""

from __future__ import annotations

import uuid

import asyncpg

from services.journeys.step_relay import _READ


async def test_steps_are_read_in_transaction_id_order_through_the_index(
        pool: asyncpg.Pool) -> None:
    tenant = f"jrelay-{uuid.uuid4().hex[:10]}"
    # Long committed, below every real one: initdb and the migrations alone use several
    # hundred transaction ids before the first step exists (a fresh database's real steps
    # came at 823: 999 and 1,000 were not below them).
    txs = [99, 100, 9, 10]
    try:
        for tx in txs:
            await pool.execute(
                "INSERT INTO journey_steps (tenant_id, journey_id, version, instance_id,"
                " profile_id, at, kind, node, tx) VALUES ($1, 'j', 1, $2, 'p', now(),"
                " 'entered', 'entry', $3::text::xid8)", tenant, uuid.uuid4(), str(tx))
        rows = await pool.fetch(_READ, 8, 0, 4)  # after (8, 0): these four, nothing else
        assert [int(r["tx"]) for r in rows] == [9, 10, 99, 100]
        plan = "\n".join(r[0] for r in await pool.fetch(f"EXPLAIN {_READ}", 8, 0, 2000))
        assert "journey_steps_relay" in plan and "Sort" not in plan, plan
    finally:
        await pool.execute("DELETE FROM journey_steps WHERE tenant_id = $1", tenant)
