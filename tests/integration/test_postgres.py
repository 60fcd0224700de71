"""Migrations are numbered, applied at start, and idempotent."""

import uuid

import asyncpg

from shared.adapters.postgres import apply_migrations
from shared.adapters.status_store import begin_processing, record_statuses
from shared.domain.status import Status, StatusWrite
from tests.integration.conftest import settings


async def test_a_second_run_applies_nothing() -> None:
    assert await apply_migrations(settings.pg_dsn) == []


async def test_processing_replaces_a_held_status_but_never_a_final_one(
    pool: asyncpg.Pool,
) -> None:
    held, done = f"held-{uuid.uuid4().hex}", f"done-{uuid.uuid4().hex}"
    async with pool.acquire() as connection:
        await record_statuses(connection, [
            StatusWrite(held, "default", "EVTx", Status.PAUSED, "paused"),
            StatusWrite(done, "default", "EVTx", Status.IGNORED, "refused")])
        allowed = await begin_processing(connection, [
            StatusWrite(p, "default", "EVTx", Status.PROCESSING, None, str(uuid.uuid4()))
            for p in (held, done)])
        assert allowed == {held}
        rows = dict(await connection.fetch(
            "SELECT pkey, status FROM event_status WHERE pkey = ANY($1)", [held, done]))
    assert rows == {held: "processing", done: "ignored"}
